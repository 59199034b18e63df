/**
 * {@link DaemonClient}: an application process plugged into `amixd` as a
 * container. It sends control requests, and carries out the daemon's link
 * commands for links where this process is an end (its agent, the seed's
 * intra_p point), so message bytes go straight between this process and the
 * point over the primitive, never through the daemon.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { Agent } from '../fabric/agent.js';
import { ControlConnection } from './connection.js';
import { COORDINATOR_LOCATION, HostedPoints } from './containerHosts.js';
import { DAEMON_FILES } from './files.js';
import { Endpoint, type PointMessage, type PointReceiveOptions, type PointSendOptions } from '../fabric/endpoint.js';
import { AmixError, ErrorCode, peerLostError } from '../core/errors.js';
import { Lifecycle } from '../core/lifecycle.js';
import type { LinkInfo } from '../fabric/fabric.js';
import { defaultDaemonDir } from '../core/paths.js';
import { PROTOCOL_VERSION } from './protocol.js';
import { PrimitiveRegistry } from '../core/registry.js';
import type { AnyArgs, ArgsOf, ResultOf } from '../core/rpc.js';
import type { ConnectArgs, DaemonEvents, DaemonOp, DaemonOps, DaemonStats, ListItem, ListOp, Page } from './ops.js';
import type { AttributeInput, PointView } from '../directory/index.js';
import type { PointCharacteristics, PointRole } from '../fabric/point.js';

/** A container's connection to amixd: it sends daemon ops and hears the daemon's events. */
export type DaemonConnection = ControlConnection<DaemonOps, DaemonEvents>;

/** Options for {@link DaemonClient.connect}. */
export interface DaemonClientOptions {
  /** The daemon's directory. Default: as amixd's default. */
  dir?: string;
  /** A name for this container in `amix daemon status`. Default `pid <pid>`. */
  name?: string;
  /**
   * @deprecated Ignored: the owner of what this container makes is the
   * principal its token names (see {@link DaemonClientOptions.tokenFile}).
   */
  owner?: string;
  /** Say hello with the administrator token (`DIR/admin.token`). Default false. */
  admin?: boolean;
  /**
   * The file holding this container's credential: a principal's token from
   * `amix principal add`. Default `DIR/admin.token` with `admin`, else
   * `$AMIX_TOKEN_FILE` if set, else `DIR/token` (principal `user`).
   */
  tokenFile?: string;
  /**
   * The control socket to connect to, e.g. a daemon's shared socket
   * (`amixd --shared-socket`). Default `$AMIX_SOCKET` if set, else `DIR/amixd.sock`.
   */
  socket?: string;
  /** How long a request may take. Default 15000 ms. */
  timeoutMs?: number;
}

/** A link where this process is an end, as a client holds it. */
export class ClientLink implements AsyncIterable<PointMessage> {
  /** The link's state when it was made. */
  readonly info: LinkInfo;
  readonly #client: DaemonClient;
  readonly #end: Endpoint;

  /** @internal */
  constructor(client: DaemonClient, info: LinkInfo, end: Endpoint) {
    this.#client = client;
    this.info = info;
    this.#end = end;
  }

  /** The link id. */
  get id(): string {
    return this.info.id;
  }
  /** Send to the point(s) at the other end. */
  send(data: Uint8Array, options: PointSendOptions = {}): Promise<void> {
    return this.#end.send(data, options);
  }
  /** The next message from the other end. */
  receive(options: PointReceiveOptions = {}): Promise<PointMessage> {
    return this.#end.receive(options);
  }
  /** Messages until the link closes. */
  messages(options: PointReceiveOptions = {}): AsyncGenerator<PointMessage, void, undefined> {
    return this.#end.messages(options);
  }
  /** Same as {@link ClientLink.messages} with no options. */
  [Symbol.asyncIterator](): AsyncIterator<PointMessage> {
    return this.messages();
  }
  /** Disconnect the link. Idempotent. */
  async close(): Promise<void> {
    await this.#client.request('disconnect', { link: this.id }).catch((err: AmixError) => {
      if (err.code !== ErrorCode.AMIX_ERR_UNKNOWN_LINK && err.code !== ErrorCode.AMIX_ERR_DAEMON_UNAVAILABLE) throw err;
    });
    await this.#end.close();
  }
}

/**
 * A connection to amixd as a container.
 *
 * @example
 * const client = await DaemonClient.connect()
 * await client.request('point.register', { registration: { name: 'upper', location: '/srv/upper.js', characteristics: { scope: 'process' } } })
 * const link = await client.connect(null, 'upper', { direction: 'aToB' })
 * await link.send(Buffer.from('hi'))
 */
export class DaemonClient {
  /** The container id the daemon gave us. */
  readonly container: string;
  /** The principal our token names, as the daemon said. */
  readonly principal: string;
  /** The control connection (events arrive on it as `'event'`, typed by `DaemonEvents`, lib/control/ops.ts). */
  readonly connection: DaemonConnection;
  readonly #timeout: number;
  readonly #registry: PrimitiveRegistry;
  readonly #ends = new Map<string, { end: Endpoint; agent: Agent }>();
  readonly #life = new Lifecycle('daemon client');
  /** The points this container hosts for the daemon (in-container thread points, coordinators). */
  readonly #hosted: HostedPoints;

  private constructor(
    hello: { container: string; principal: string },
    conn: DaemonConnection,
    registry: PrimitiveRegistry,
    timeoutMs: number,
  ) {
    this.container = hello.container;
    this.principal = hello.principal;
    this.connection = conn;
    this.#registry = registry;
    this.#timeout = timeoutMs;
    this.#hosted = new HostedPoints(conn as ControlConnection<unknown, unknown>, registry, () => this.container);
    // The daemon's link commands for our ends: one endpoint and agent per link; and its host.* requests
    // for the points it placed here.
    conn.setHandler((op, args) => {
      if (HostedPoints.handles(op)) return this.#hosted.handle(op, args);
      if (!Agent.handles(op)) throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `a container takes no ${op} request`);
      const e = this.#endFor(args.link as string);
      const r = e.agent.handle(op, args, undefined);
      return op === 'closeLink' ? Promise.resolve(r).then((x: unknown) => this.#linkClosed(args, e).then(() => x)) : r;
    });
    conn.on('close', () => {
      for (const { end } of this.#ends.values()) void end.close();
      // Nobody can drive them any more: the daemon's supervisor has counted them dead.
      void this.#hosted.close();
    });
  }

  /**
   * Plug into the daemon: connect to its socket and say hello with a
   * principal's token (from its owner-only directory, or `tokenFile`).
   * `AMIX_ERR_DAEMON_UNAVAILABLE` if nothing listens; `AMIX_ERR_UNAUTHORIZED`
   * if the token cannot be read or is refused.
   */
  static async connect(options: DaemonClientOptions = {}): Promise<DaemonClient> {
    const dir = options.dir ?? defaultDaemonDir();
    const tokenFile = options.tokenFile ?? (options.admin ? undefined : process.env.AMIX_TOKEN_FILE || undefined);
    const file = tokenFile ?? join(dir, options.admin ? DAEMON_FILES.adminToken : DAEMON_FILES.token);
    const socketPath = options.socket ?? (process.env.AMIX_SOCKET || join(dir, DAEMON_FILES.socket));
    let token: string;
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && tokenFile === undefined)
        throw new AmixError(
          ErrorCode.AMIX_ERR_DAEMON_UNAVAILABLE,
          `no amixd in ${dir} (start one with: amix daemon start)`,
          { cause: err },
        );
      throw new AmixError(
        ErrorCode.AMIX_ERR_UNAUTHORIZED,
        `cannot read the token in ${file}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const socket = netConnect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (err) =>
        reject(
          new AmixError(ErrorCode.AMIX_ERR_DAEMON_UNAVAILABLE, `cannot reach amixd at ${socketPath}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
    });
    const conn: DaemonConnection = new ControlConnection(socket);
    const timeoutMs = options.timeoutMs ?? 15_000;
    const hello = await conn
      .request(
        'hello',
        {
          version: PROTOCOL_VERSION,
          token,
          pid: process.pid,
          name: options.name ?? `pid ${process.pid}`,
        },
        timeoutMs,
      )
      .catch((err) => {
        conn.destroy();
        throw err;
      });
    const registry = new PrimitiveRegistry({ channelDefaults: { runtimeDir: hello.runtimeDir } });
    return new DaemonClient(hello, conn, registry, timeoutMs);
  }

  /**
   * Send one control request, checked against the daemon's op table
   * (`DaemonOps`, lib/control/ops.ts); with the second signature the caller states the
   * result type.
   */
  request<K extends DaemonOp>(op: K, args?: ArgsOf<DaemonOps, K>): Promise<ResultOf<DaemonOps, K>>;
  request<T = unknown>(op: DaemonOp, args?: AnyArgs<DaemonOps>): Promise<T>;
  request(op: DaemonOp, args: AnyArgs<DaemonOps> = {}): Promise<unknown> {
    // Unplugged on purpose: say so (AMIX_ERR_CLOSED), not that the daemon went away.
    if (!this.#life.isOpen) return Promise.reject(this.#life.closedError());
    return this.connection.request(op, args, this.#timeout);
  }

  /**
   * Every item of a listing (`point.ls`, `links`, `instances`), fetched a
   * page at a time so no reply outgrows a control frame, however many there
   * are. Pages are asked by offset: items added or removed while it walks
   * may be missed or seen twice (it is a walk, not a snapshot).
   *
   * @example
   * for await (const p of client.list('point.ls')) console.log(p.name)
   */
  async *list<K extends ListOp>(
    op: K,
    options: { pageSize?: number } = {},
  ): AsyncGenerator<ListItem<K>, void, undefined> {
    for (let offset: number | undefined = 0; offset !== undefined;) {
      const page = (await this.request(op, {
        offset,
        ...(options.pageSize !== undefined ? { limit: options.pageSize } : {}),
      })) as Page<ListItem<K>> | Array<ListItem<K>>;
      // A daemon from before paging answers the whole array, whatever was asked.
      if (Array.isArray(page)) return yield* page;
      yield* page.items;
      offset = page.next;
    }
  }

  /** All of a listing at once: {@link list} gathered into an array. */
  async listAll<K extends ListOp>(op: K): Promise<Array<ListItem<K>>> {
    const out: Array<ListItem<K>> = [];
    for await (const x of this.list(op)) out.push(x);
    return out;
  }

  /**
   * The points matching `expr` (the directory's query language), from
   * `offset`, at most `limit` of them (default: all), fetched in pages that
   * each fit a control frame.
   *
   * @example
   * for await (const p of client.query('role = "receiver"')) console.log(p.id)
   */
  async *query(
    expr: string,
    options: { limit?: number; offset?: number } = {},
  ): AsyncGenerator<PointView, void, undefined> {
    let left = options.limit ?? Infinity;
    for (let offset: number | undefined = options.offset ?? 0; offset !== undefined && left > 0;) {
      // Each request names how many are still wanted (at most the directory's maximum); the daemon may send fewer.
      const r: DaemonOps['query']['result'] = await this.request('query', {
        expr,
        offset,
        limit: Math.min(left, 100_000),
      });
      for (const p of r.points) yield p;
      left -= r.points.length;
      offset = r.more && r.points.length > 0 ? (r.next ?? offset + r.points.length) : undefined;
    }
  }

  /** The daemon's counters: each instance's agent stats, and the links. */
  stats(): Promise<DaemonStats> {
    return this.request('stats', {});
  }

  /**
   * Connect two points, or a point and this process (pass `null` for the
   * end this process takes). The returned link carries this process's send
   * and receive for that end.
   */
  async connect(
    a: string | null,
    b: string | null,
    options: Pick<ConnectArgs, 'direction' | 'mode' | 'direct'> = {},
  ): Promise<ClientLink> {
    const info = (await this.request('connect', { a, b, ...options })) as LinkInfo;
    return new ClientLink(this, info, this.#endFor(info.id).end);
  }

  /**
   * Register a coordinator of this container (seed 000: a container's
   * coordinator is a connection point): a point named `name` whose end is
   * this process itself. Another container connects to it by name like to
   * any point (`connect(null, name)`, `amix connect A name`); the bytes go
   * between the two processes over the planned primitive (by default
   * `queueConditionProcess`), never through the daemon. The returned
   * endpoint sends to every linked peer and receives from them, with the
   * sender's name as `from`. It is ephemeral: when this container goes,
   * its links are taken down and the peers told (`peerLost`).
   *
   * @example
   * const coord = await client.coordinator('orders')
   * for await (const m of coord.messages()) await coord.send(m.data, { to: m.from })
   */
  async coordinator(
    name: string,
    options: {
      role?: PointRole;
      sendPrimitive?: string;
      receivePrimitive?: string;
      characteristics?: Partial<Pick<PointCharacteristics, 'maxmsg' | 'minmsg' | 'maxConnections' | 'discard'>>;
      attributes?: Record<string, AttributeInput>;
    } = {},
  ): Promise<Endpoint> {
    const { attributes, characteristics, ...rest } = options;
    // Made first: the daemon may start the coordinator's host (here) as soon as someone connects.
    const end = this.#hosted.coordinator(
      name,
      characteristics?.maxmsg !== undefined ? { maxUnlinked: characteristics.maxmsg } : {},
    );
    await this.request('point.register', {
      registration: {
        name,
        location: COORDINATOR_LOCATION,
        ...rest,
        // A process of its own from the fabric's point of view: its hops cross processes.
        characteristics: { ...characteristics, scope: 'process', instancing: 'public', termination: 'message' },
      },
      ...(attributes ? { attributes } : {}),
      inContainer: true,
      ephemeral: true,
    });
    return end;
  }

  /** Ask for fabric events on `connection`'s `'event'`. */
  async subscribe(): Promise<void> {
    await this.request('subscribe', {});
  }

  /** Unplug: close every local end and the connection. Idempotent: later calls return the same promise. */
  close(): Promise<void> {
    return this.#life.close(async () => {
      for (const { end } of this.#ends.values()) await end.close();
      await this.#hosted.close();
      void this.connection.close();
      await this.#registry.close();
    });
  }

  /**
   * Unplug at once: every local end is destroyed (their pending sends and
   * receives reject with `reason` as the cause) and the connection is cut.
   */
  destroy(reason?: Error): Promise<void> {
    return this.#life.destroy(reason, async (r) => {
      for (const { end } of this.#ends.values()) await end.destroy(r);
      await this.#hosted.close();
      await this.connection.destroy(r);
      await this.#registry.destroy(r);
    });
  }

  /** Resolves once unplugged, with the reason given to {@link destroy} (undefined after close); never rejects. */
  get closed(): Promise<Error | undefined> {
    return this.#life.closed;
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * A closeLink that ends the link for good (a teardown with a reason: the
   * other end died or was destroyed; or a DISCONNECT): the link's endpoint
   * is ended too, so the application's waiting receives end instead of
   * waiting on a link that is gone. A closeLink without either is a restart
   * re-opening the link under the same id: the endpoint stays.
   */
  async #linkClosed(args: Record<string, unknown>, e: { end: Endpoint }): Promise<void> {
    const link = args.link as string;
    if (typeof args.reason === 'string') {
      this.#ends.delete(link);
      await e.end.destroy(peerLostError(`link ${link} ended: ${args.reason}`, { state: 'closed' }));
    } else if (args.disconnect === true) {
      this.#ends.delete(link);
      await e.end.close();
    }
  }

  #endFor(link: string): { end: Endpoint; agent: Agent } {
    if (typeof link !== 'string') throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, 'link command without a link id');
    let e = this.#ends.get(link);
    if (!e) {
      const end = new Endpoint(this.container);
      e = { end, agent: new Agent(end, this.#registry) };
      this.#ends.set(link, e);
    }
    return e;
  }
}
