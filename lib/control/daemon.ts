/**
 * `amixd`, the machine-wide service (seed 002's interprocess TCS, shaped by
 * seed 000's general runtime): it listens on a Unix control socket in an
 * owner-only directory, holds the machine's registry of primitives and
 * points, runs point instances, and takes application processes as
 * *containers*: each plugs into one of its slots, proves it is the same
 * principal (the credential it presents: a token file only that principal
 * can read; see `principals.ts`), and may then register points, link them,
 * and be a link end itself through its agent (the intra_p point). What it
 * made is its own: only it or the administrator may change or end it.
 * When a container goes away its links are taken down (their peers told)
 * and its ephemeral points ended, inside out.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { ControlConnection } from './connection.js';
import { ControlGuard, type ControlLimits } from './guard.js';
import { DIRECTORY_FILE, Directory, type PointView, type Principal } from '../directory/index.js';
import { AmixError, ErrorCode, describe, invalidArg } from '../core/errors.js';
import { Lifecycle } from '../core/lifecycle.js';
import { handlerTable, stringArg, type Handlers, type RpcHandler } from '../core/rpc.js';
import type { AgentOps, Empty } from '../fabric/agent.js';
import { Fabric, type FabricEvent, type LinkInfo } from '../fabric/fabric.js';
import { parseDirection } from '../fabric/point.js';
import { createPrivateFile, defaultDaemonDir, ensurePrivateDir } from '../core/paths.js';
import type { Peering, PeeringOptions, RemoteLinkInfo } from '../remote/peering.js';
import { PROTOCOL_VERSION } from './protocol.js';
import { DAEMON_FILES, checkStateFiles } from './files.js';
import { ADMIN_PRINCIPAL, Principals, principalHandlers } from './principals.js';
import {
  DAEMON_PRINCIPAL,
  checkRemoteConnect,
  clearSocket,
  listenUnix,
  fabricStats,
  positiveInt,
  restoreRegistrations,
} from './state.js';
import { requireAdmin, requireOwner } from './access.js';
import { listing } from './paging.js';
import { listPoints, queryPage, registerPoint, registerPoints } from './points.js';
import { ContainerPlacement, checkInContainer } from './containers.js';
import type { MetricsEndpoint } from './metrics.js';
import type { MetricsOptions } from './metricsAddress.js';
import {
  admitHello,
  caller,
  containerInfo,
  newPlugged,
  principal,
  type ContainerConnection,
  type Plugged,
} from './plugged.js';
import { serviceHostOf, type DaemonService } from './services.js';
import type { Cluster, ClusterOptions } from '../cluster/cluster.js';
import { checkClusterOptions } from '../cluster/options.js';
import type {
  ConnectArgs,
  ContainerInfo,
  ContainerOps,
  DaemonEvent,
  DaemonOps,
  DaemonStatus,
  HelloArgs,
  HelloResult,
} from './ops.js';
export { DAEMON_FILES, isAlive } from './files.js';
export type { ContainerInfo } from './ops.js';

/** Options for {@link Daemon}. */
export interface DaemonOptions {
  /** The daemon's directory (socket, tokens, state). Default {@link defaultDaemonDir}. */
  dir?: string;
  /** How many containers may be plugged in at once. Default 64. */
  slots?: number;
  /** Where to log one-line notices. Default: nowhere. */
  log?: (line: string) => void;
  /**
   * Peering with other daemons (see `lib/remote/peering.ts`): `listen` binds the
   * control endpoint peers dial, `peers` are dialled, `keys` and `allow`
   * turn on CURVE. Without `listen` and `peers` the daemon opens no network
   * socket at all.
   */
  peering?: PeeringOptions;
  /**
   * A second control socket, created mode 0666 at this path, for other local
   * users: the same protocol, and a principal's token is the only way in.
   * Its parent directory (who may reach it) is the administrator's choice.
   * Default: none (only the daemon's uid reaches the socket in `dir`).
   */
  sharedSocket?: string;
  /** Administrator connections allowed beyond `slots` (so a full daemon still lets the administrator in). Default 4. */
  adminSlots?: number;
  /** Bounds on the control socket before and after hello (see `lib/control/guard.ts` for the defaults). */
  limits?: ControlLimits;
  /** Serve Prometheus metrics on `GET /metrics` at this address (`metrics.ts`; loopback unless `allowRemote`). Default: none. */
  metrics?: MetricsOptions;
  /** Services above the daemon (`lib/services/`) with ops of their own (`services.ts`). Default none. */
  services?: readonly DaemonService[];
  /** Join a cluster over NATS JetStream (`lib/cluster/`; needs `peering` with `listen`). Default: none (no NATS loaded). */
  cluster?: ClusterOptions;
}

/**
 * The daemon. `start()` listens; `stop()` shuts down inside out.
 *
 * @example
 * const d = new Daemon({ dir: '/tmp/amix-test' }); await d.start()
 * // ... clients connect with DaemonClient.connect({ dir })
 * await d.stop()
 */
export class Daemon extends EventEmitter {
  /** The daemon's directory. */
  readonly dir: string;
  /** The control socket's path. */
  readonly socketPath: string;
  /** The fabric holding the machine's points and links. */
  readonly fabric: Fabric;
  readonly #slots: number;
  readonly #adminSlots: number;
  /** The shared socket's path, if any. */
  readonly sharedSocket: string | undefined;
  #shared: Server | undefined;
  #principals: Principals | undefined;
  /** Each link's owner: the principal of the container that connected it. */
  readonly #linkOwners = new Map<string, string>();
  readonly #log: (line: string) => void;
  #server: Server | undefined;
  readonly #containers = new Map<string, Plugged>();
  #directory: Directory | undefined;
  /** Set once start() has checked the state files: from then until stop(), #dir may open the directory. */
  #directoryReady = false;
  #seq = 0;
  #startedAt = 0;
  readonly #life = new Lifecycle('amixd');
  readonly #peeringOptions: PeeringOptions | undefined;
  #peering: Peering | undefined;
  #cluster: Cluster | undefined;
  readonly #clusterOptions: ClusterOptions | undefined;
  readonly #metricsOptions: MetricsOptions | undefined;
  #metrics: MetricsEndpoint | undefined;
  readonly #services: readonly DaemonService[];
  readonly #serviceOps = new Map<string, DaemonService['ops'][string]>();
  readonly #ops: RpcHandler<Plugged>;
  /** One guard per socket: a flood on the shared socket cannot fill the private socket's places before hello. */
  readonly #guard: ControlGuard;
  readonly #sharedGuard: ControlGuard;
  /** Where containers' in-container points run (`containers.ts`). */
  readonly #placement = new ContainerPlacement((n) => this.fabric.points().find((p) => p.name === n));

  constructor(options: DaemonOptions = {}) {
    super();
    this.dir = options.dir ?? defaultDaemonDir();
    this.socketPath = join(this.dir, DAEMON_FILES.socket);
    this.#slots = positiveInt('options.slots', options.slots ?? 64);
    this.#adminSlots = positiveInt('options.adminSlots', options.adminSlots ?? 4);
    this.sharedSocket = options.sharedSocket;
    this.#log = options.log ?? (() => {});
    this.#guard = new ControlGuard(options.limits, this.#log);
    this.#sharedGuard = new ControlGuard(options.limits, this.#log);
    const po = options.peering;
    this.#peeringOptions = po && (po.listen !== undefined || (po.peers?.length ?? 0) > 0) ? po : undefined;
    this.fabric = new Fabric({ runtimeDir: join(this.dir, DAEMON_FILES.run), placement: this.#placement });
    this.fabric.on('event', (e: FabricEvent) => this.#broadcast(e));
    this.#metricsOptions = options.metrics;
    // Checked now, loaded at start: the cluster's modules stay out of a daemon without one (issue 17).
    this.#clusterOptions = options.cluster && (checkClusterOptions(options.cluster), options.cluster);
    this.#services = options.services ?? [];
    const handlers = this.#handlers();
    const unknown = (op: string) => new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown request ${describe(op)}`);
    const base = handlerTable(handlers, unknown);
    const extra = new Map<string, (args: unknown, c: Plugged) => unknown>();
    for (const svc of this.#services)
      for (const [op, fn] of Object.entries(svc.ops)) {
        if (Object.hasOwn(handlers, op) || extra.has(op))
          throw invalidArg('options.services', `op ${op} of ${svc.name} is taken`);
        extra.set(op, (args, c) => fn((args ?? {}) as Record<string, unknown>, caller(c)));
        this.#serviceOps.set(op, fn);
      }
    this.#ops = (op, args, c) => {
      const fn = extra.get(op);
      return fn ? fn(args, c) : base(op, args, c);
    };
  }

  /**
   * Start listening. The directory and every state file in it must be ours,
   * owner-only and no symlinks (`AMIX_ERR_UNSAFE_DIR` otherwise: refused,
   * never repaired). A socket file left by a daemon that died (nobody
   * answers on it) is removed; a live daemon on the same directory makes
   * this reject with `AMIX_ERR_DUPLICATE`.
   */
  async start(): Promise<void> {
    await ensurePrivateDir(this.dir);
    await ensurePrivateDir(join(this.dir, DAEMON_FILES.run));
    await checkStateFiles(this.dir);
    await clearSocket(this.socketPath);
    if (this.sharedSocket !== undefined) await clearSocket(this.sharedSocket);
    this.#principals = await Principals.open(this.dir);
    // SQLite (a native addon, some 6 MB resident) is opened now only when there is a directory to restore;
    // a fresh daemon opens it at the first request that needs it (#dir).
    this.#directoryReady = true;
    if (existsSync(join(this.dir, DIRECTORY_FILE))) restoreRegistrations(this.#dir, this.fabric, this.#log);
    const serviceHost = serviceHostOf(this.fabric, this.dir, this.#log, () => this.#peering);
    for (const svc of this.#services) await svc.start?.(serviceHost);
    // The directory is 0700 already; the umask makes the socket 0600 from birth, with no window.
    this.#server = await listenUnix(this.socketPath, 0o177, (s) => this.#accept(s, this.#guard));
    this.#guard.watch(this.#server);
    // The shared one is for every local user: 0666 from birth (no chmod on a path someone could swap).
    if (this.sharedSocket !== undefined) {
      this.#shared = await listenUnix(this.sharedSocket, 0o111, (s) => this.#accept(s, this.#sharedGuard));
      this.#sharedGuard.watch(this.#shared);
    }
    const pid = join(this.dir, DAEMON_FILES.pid);
    await rm(pid, { force: true });
    await createPrivateFile(pid, `${process.pid}\n`);
    if (this.#peeringOptions) {
      // Loaded only for a peering daemon: it brings the zeromq addon (a daemon without --listen or --peer maps none).
      const { Peering } = await import('../remote/peering.js');
      const host = { fabric: this.fabric, directory: this.#dir, stateDir: this.dir, log: this.#log };
      // A peer asks a service op as itself: its caller is the daemon its key authenticated.
      const service = async (peer: string, op: string, args: Record<string, unknown>) => {
        const fn = this.#serviceOps.get(op);
        if (!fn) throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown service op ${describe(op)}`);
        return fn(args, { container: `peer:${peer}`, owner: `peer:${peer}`, admin: false, peer });
      };
      this.#peering = new Peering({ ...host, service, broadcast: (e) => this.#broadcast(e) }, this.#peeringOptions);
    }
    try {
      await this.#peering?.start();
      if (this.#clusterOptions)
        this.#cluster = new (await import('../cluster/cluster.js')).Cluster(this.#clusterOptions, this.#log);
      await this.#cluster?.start({ directory: this.#dir, peering: this.#peering!, stateDir: this.dir });
      if (this.#metricsOptions) {
        // Loaded only with --metrics. Read at scrape time from the same answers as the stats and status requests.
        const { MetricsEndpoint } = await import('./metrics.js');
        const f = this.fabric;
        const source = { stats: () => fabricStats(f), instances: () => f.instances(), status: () => this.status() };
        this.#metrics = new MetricsEndpoint(this.#metricsOptions, source, this.#log);
        await this.#metrics.start();
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#startedAt = Date.now();
    this.#log(`amixd ${process.pid} listening on ${this.socketPath} (${this.#slots} slots)`);
  }

  /** A snapshot for `amix daemon status`. */
  status(): DaemonStatus {
    return {
      pid: process.pid,
      dir: this.dir,
      socket: this.socketPath,
      version: PROTOCOL_VERSION,
      uptimeMs: this.#startedAt ? Date.now() - this.#startedAt : 0,
      slots: this.#slots,
      adminSlots: this.#adminSlots,
      ...(this.sharedSocket !== undefined ? { sharedSocket: this.sharedSocket } : {}),
      containers: [...this.#containers.values()].map((c) => containerInfo(c)),
      directory: this.#directory?.id,
      points: this.fabric.points().length,
      instances: this.fabric.instances().length,
      links: this.fabric.links().length,
      ...(this.#peering ? { peering: this.#peering.status() } : {}),
      ...(this.#cluster ? { cluster: this.#cluster.status() } : {}),
      guard: this.#guard.stats(),
      ...(this.#shared ? { sharedGuard: this.#sharedGuard.stats() } : {}),
      ...(this.#metrics?.url ? { metrics: this.#metrics.url } : {}),
    };
  }

  /**
   * Stop, inside out: refuse new containers, end every point instance (each
   * with its termination method, escalating on a timer), close the
   * containers, then remove the socket and pid file. Idempotent.
   */
  stop(): Promise<void> {
    return this.#life.close(async () => {
      this.#log('amixd stopping');
      this.#directoryReady = false;
      this.#server?.close();
      this.#shared?.close();
      await this.#metrics?.close();
      await this.#cluster?.close();
      await this.#peering?.close();
      for (const svc of this.#services) await Promise.resolve(svc.close?.()).catch(() => {});
      await this.fabric.close();
      for (const c of this.#containers.values()) c.conn.close();
      this.#directory?.close();
      this.#guard.close();
      this.#sharedGuard.close();
      await rm(this.socketPath, { force: true });
      if (this.#shared) await rm(this.sharedSocket!, { force: true });
      await rm(join(this.dir, DAEMON_FILES.pid), { force: true });
      this.emit('stopped');
    });
  }

  /** The lifecycle contract's name for {@link stop}: graceful, idempotent, the same promise each time. */
  close(): Promise<void> {
    return this.stop();
  }

  /** Resolves once the daemon has stopped; never rejects. */
  get closed(): Promise<Error | undefined> {
    return this.#life.closed;
  }

  /** Calls {@link stop}, so `await using daemon = ...` stops it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #accept(socket: Socket, guard: ControlGuard): void {
    let plugged: Plugged | undefined;
    // Bounded before hello (timer, cap, small frames) and after (backpressure, unsent cap); null: refused.
    const conn: ContainerConnection | null = guard.connection(socket, { timeoutMs: 10_000 }, () => plugged?.id);
    if (!conn) return;
    conn.setHandler(async (op, args) => {
      if (op === 'hello') {
        if (plugged) throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, 'hello was already said on this connection');
        plugged = this.#hello(conn, args as Partial<HelloArgs>);
        guard.authenticated(conn);
        const hello: HelloResult = {
          container: plugged.id,
          daemonPid: process.pid,
          version: PROTOCOL_VERSION,
          runtimeDir: join(this.dir, DAEMON_FILES.run),
          admin: plugged.admin,
          principal: plugged.owner,
        };
        return hello;
      }
      if (!plugged)
        throw new AmixError(
          ErrorCode.AMIX_ERR_UNAUTHORIZED,
          `say hello with the daemon's token before ${describe(op)}`,
        );
      return this.#ops(op, args, plugged);
    });
    // A hosting container's word on the hosts it runs for us (their events and exits).
    conn.on('event', (m) => plugged && this.#placement.onEvent(plugged, m.type, m.body));
    conn.on('close', () => {
      if (plugged) void this.#unplug(plugged);
    });
  }

  #hello(conn: ContainerConnection, a: Partial<HelloArgs>): Plugged {
    // Who the client is comes from its credential alone; a.owner is ignored.
    const who = admitHello(conn, a, this.#principals!.identify(a.token), this.#containers.values(), {
      slots: this.#slots,
      adminSlots: this.#adminSlots,
    });
    const id = `c${++this.#seq}`;
    const p = newPlugged(id, conn, who, a);
    this.#containers.set(id, p);
    this.#broadcast({ type: 'daemon.containerPlugged', container: id, name: p.name, pid: p.pid });
    return p;
  }

  /** The daemon's op table (all but hello), each handler told the asking container. */
  #handlers(): Handlers<Omit<DaemonOps, 'hello'>, Plugged> {
    const f = this.fabric;
    /** The link `a.link`, once `c` is found to own it (an unknown one is left for the op to refuse). */
    const ownLink = (op: string, a: { link: string }, c: Plugged): string => {
      const link = stringArg(op, a, 'link');
      if (f.hasLink(link) || this.#peering?.hasLink(link))
        requireOwner(principal(c), { link }, this.#linkOwners.get(link), op);
      return link;
    };
    /** The point `a.name` as `c` sees it, once `c` is found to own it. */
    const ownPoint = (op: string, a: { name: string }, c: Plugged): PointView => {
      const view = this.#view(stringArg(op, a, 'name'), c);
      requireOwner(principal(c), { point: view.name }, view.owner, op);
      return view;
    };
    const suspend = async (op: 'suspend' | 'resume', a: { link: string }, c: Plugged) => {
      const link = ownLink(op, a, c);
      if (this.#peering?.hasLink(link)) return this.#peering.setSuspended(link, op === 'suspend');
      await (op === 'suspend' ? f.suspend(link) : f.resume(link));
      return f.link(link);
    };
    const rm = async (op: string, a: { name: string }, c: Plugged): Promise<Empty> => {
      const view = ownPoint(op, a, c);
      this.#dir.deletePoint(view.id, { as: principal(c) }); // AMIX_ERR_NOT_OWNER unless owner or admin
      await f.destroy(view.name);
      this.#placement.unplace(view.name);
      c.ephemeral.delete(view.name);
      return {};
    };
    return {
      status: () => this.status(),
      stop: (_a, c) => {
        requireAdmin(principal(c), 'stop');
        setImmediate(() => void this.stop().then(() => this.emit('exit')));
        return { stopping: true };
      },
      subscribe: (_a, c) => {
        c.subscribed = true;
        return {};
      },
      'primitive.add': async (a, c) => {
        requireAdmin(principal(c), 'primitive.add');
        const reg = a.registration;
        f.registry.register(reg);
        try {
          this.#dir.registerPrimitive(reg);
        } catch (err) {
          await f.registry.delete(reg.name).catch(() => {});
          throw err;
        }
        return f.registry.get(reg.name);
      },
      'primitive.rm': async (a, c) => {
        const name = stringArg('primitive.rm', a, 'name');
        f.registry.get(name); // AMIX_ERR_UNKNOWN_PRIMITIVE first
        // Only the administrator adds primitives, so it owns every one, built in or not.
        requireOwner(principal(c), { primitive: name }, ADMIN_PRINCIPAL, 'primitive.rm');
        await f.registry.delete(name);
        if (this.#dir.getPrimitive(name)) this.#dir.deletePrimitive(name);
        return {};
      },
      'primitive.ls': () => f.registry.list(),
      'point.register': async (a, c) => {
        // An in-container point (run by this container's agent) is ephemeral: it cannot outlive its container.
        if (a.inContainer === true) checkInContainer(a.registration);
        const info = await registerPoint(this.#dir, f, a.inContainer === true ? { ...a, ephemeral: true } : a, {
          owner: c.owner,
          container: c.id,
        });
        if (a.ephemeral === true || a.inContainer === true) c.ephemeral.add(info.name);
        if (a.inContainer === true) this.#placement.place(info.name, c);
        return info;
      },
      'point.registerBatch': async (a, c) => {
        if (Array.isArray(a.points) && a.points.some((p) => p?.inContainer === true))
          throw new AmixError(
            ErrorCode.AMIX_ERR_INVALID_ARG,
            'point.registerBatch: register inContainer points one by one',
          );
        const infos = await registerPoints(this.#dir, f, a.points, { owner: c.owner, container: c.id });
        a.points.forEach((p, i) => p.ephemeral === true && c.ephemeral.add(infos[i]!.name));
        return infos;
      },
      'point.rm': (a, c) => rm('point.rm', a, c),
      destroy: (a, c) => rm('destroy', a, c),
      'point.ls': (a) => listPoints(this.#dir, f, a),
      'point.show': async (a, c) => {
        const { view, remote } = (await this.#end(stringArg('point.show', a, 'name'), 'name', c))!;
        if (remote) return { ...view, daemon: remote.peer.id, instances: [] };
        return { ...view, instances: f.instances(view.name) };
      },
      query: (a, c) => queryPage(this.#dir, a, principal(c)),
      connect: (a, c) => this.#connect(a, c),
      disconnect: async (a, c) => {
        const link = ownLink('disconnect', a, c);
        if (this.#peering?.hasLink(link)) {
          await this.#peering.disconnect(link);
          return {};
        }
        await f.disconnect(link, a.terminate ? { terminate: a.terminate } : {});
        c.links.delete(link);
        return {};
      },
      suspend: (a, c) => suspend('suspend', a, c),
      resume: (a, c) => suspend('resume', a, c),
      peers: () => this.#peering?.status() ?? { peers: [] },
      reconnect: (a, c) => f.reconnect(ownPoint('reconnect', a, c).name),
      execute: (a, c) => f.execute(ownPoint('execute', a, c).name),
      'switch.ls': () => f.switches.ls(),
      'switch.show': (a, c) => f.switches.showAny(this.#view(stringArg('switch.show', a, 'name'), c).name),
      'switch.suspend': (a, c) => f.switches.suspendRoute(ownPoint('switch.suspend', a, c).name, a.dest),
      'switch.resume': (a, c) => f.switches.resumeRoute(ownPoint('switch.resume', a, c).name, a.dest),
      ...principalHandlers(
        () => this.#principals!,
        (name) => {
          // Its token is dead: so are the connections it opened.
          for (const p of this.#containers.values()) if (p.owner === name && !p.admin) void p.conn.close();
        },
      ),
      links: (a) =>
        listing('links', [...f.links(), ...(this.#peering?.links() ?? [])], a, (l) => ({
          ...l,
          owner: this.#linkOwners.get(l.id),
        })),
      instances: (a) => listing('instances', f.instances(), a),
      stats: () => fabricStats(f),
    };
  }

  async #connect(a: ConnectArgs, c: Plugged): Promise<LinkInfo | RemoteLinkInfo> {
    const f = this.fabric;
    const ea = await this.#end(a.a, 'a', c);
    const eb = await this.#end(a.b, 'b', c);
    checkRemoteConnect(ea, eb, a.mode, a.direct);
    if (ea?.remote || eb?.remote) {
      const remote = (ea!.remote ?? eb!.remote)!;
      const rl = await this.#peering!.connect(
        (ea!.remote ? eb! : ea!).view,
        remote,
        !ea!.remote,
        parseDirection(a.direction),
        a.direct === true,
      );
      this.#linkOwners.set(rl.id, c.owner);
      return rl;
    }
    const link = await f.connect(ea?.view.name ?? null, eb?.view.name ?? null, {
      ...(a.direction !== undefined ? { direction: a.direction } : {}),
      ...(a.mode !== undefined ? { mode: a.mode } : {}),
      // The container's own agent, across its control connection (10 s per request unless told).
      as: { name: c.id, target: c.conn },
    });
    if (!ea || !eb) c.links.add(link.id);
    this.#linkOwners.set(link.id, c.owner);
    return link.info;
  }

  /** The directory, opened on first use (see start()). */
  get #dir(): Directory {
    if (!this.#directory) {
      if (!this.#directoryReady) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'amixd is not started');
      this.#directory = new Directory({ stateDir: this.dir });
    }
    return this.#directory;
  }

  /** A point by name or identifier, as `c` may see it; `AMIX_ERR_UNKNOWN_POINT` if there is none. */
  #view(nameOrId: string, c: Plugged): PointView {
    const v = this.#dir.getPoint(nameOrId, { as: principal(c) });
    if (!v)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point named or identified ${describe(nameOrId)}`, {
        details: { name: nameOrId },
      });
    return v;
  }

  /**
   * A point by name or identifier, here or (through the peers) on another
   * daemon; null for a null `v` (the container itself as a link end).
   * `AMIX_ERR_UNKNOWN_POINT` when nobody has it.
   */
  async #end(
    v: unknown,
    k: string,
    c: Plugged,
  ): Promise<{ view: PointView; remote?: NonNullable<Awaited<ReturnType<Peering['resolve']>>> } | null> {
    if (v === null || v === undefined) return null;
    if (typeof v !== 'string' || v === '')
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `connect: argument ${k} must be a non-empty string or null (got ${describe(v)})`,
      );
    const local = this.#dir.getPoint(v, { as: principal(c) });
    if (local) return { view: local };
    const remote = await (this.#cluster ?? this.#peering)?.resolve(v);
    if (remote) return { view: remote.view, remote };
    return { view: this.#view(v, c) }; // throws AMIX_ERR_UNKNOWN_POINT
  }

  async #unplug(c: Plugged): Promise<void> {
    if (!this.#containers.delete(c.id)) return;
    // Its hosts went with it: each instance there dies (its links torn down, peers told peerLost).
    this.#placement.unplug(c);
    // Inside out: the container's links first (their peers are told), then its own points.
    for (const link of c.links) {
      if (!this.fabric.hasLink(link)) continue;
      const info = this.fabric.link(link);
      await this.fabric.disconnect(link).catch(() => {});
      for (const peer of [info.a, ...info.b].filter((x) => x !== c.id))
        this.#broadcast({ type: 'peerLost', link, instance: peer, peer: c.id });
    }
    for (const name of c.ephemeral) {
      await this.fabric.destroy(name).catch(() => {});
      this.#placement.unplace(name);
      const v = this.#directory?.getPoint(name);
      if (v && !this.#directory!.closed) this.#directory!.deletePoint(v.id, { as: DAEMON_PRINCIPAL });
    }
    for (const svc of this.#services) await Promise.resolve(svc.unplugged?.(caller(c))).catch(() => {});
    this.#broadcast({ type: 'daemon.containerUnplugged', container: c.id, name: c.name });
  }

  #broadcast(e: DaemonEvent): void {
    if (e.type === 'linkDisconnected' || e.type === 'remote.linkDisconnected') this.#linkOwners.delete(e.link);
    this.emit('event', e);
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e))
      if (k !== 'type') body[k] = v instanceof Error ? { message: v.message, code: (v as AmixError).code } : v;
    for (const c of this.#containers.values()) if (c.subscribed) c.conn.event(e.type, body);
  }
}
