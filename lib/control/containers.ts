/**
 * Points that run inside a container (seed 002 ¶58, "Mixing the
 * Intraprocess and Interprocess Models"; seed 000's containers): amixd's
 * side. A container registers a point with `inContainer`; the daemon's
 * fabric then places that point's instances in the container: the
 * supervisor drives a {@link ContainerHost} exactly as it drives a worker
 * or a child (init, start, link commands, terminate, kill), and each
 * request travels over the container's control connection to its agent,
 * which starts the host there (a worker thread of the container's process,
 * or the container's own coordinator endpoint). Message bytes never pass
 * through the daemon: the fabric plans each hop between the container's
 * process and the other end (a process primitive when they differ).
 *
 * When the container goes, its hosts have exited: the supervisor takes
 * that as a death (links torn down, peers told `peerLost`).
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { ControlConnection } from './connection.js';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import type { AnyArgs, ArgsOf, ResultOf } from '../core/rpc.js';
import type { HostOp } from '../fabric/hostHandle.js';
import type { HostEvent, HostOps } from '../fabric/hostProtocol.js';
import type { PointRegistration, PointRegistrationInput } from '../fabric/point.js';
import type { HostExit, HostPlacement, PointHost } from '../fabric/pointHost.js';
import { COORDINATOR_LOCATION } from './containerHosts.js';
import type { ContainerEvents, ContainerOps } from './ops.js';

/** How long a container may take to start a host. */
const SPAWN_TIMEOUT_MS = 15_000;

/** A plugged-in container as the placement needs it. */
export interface HostingContainer {
  readonly id: string;
  readonly pid: number;
  readonly conn: ControlConnection<ContainerOps>;
}

/**
 * Check an `inContainer` registration before it is made: a coordinator must
 * be public (one endpoint in the container serves every link), and a
 * process point has a process of its own, so it cannot run in a container.
 */
export function checkInContainer(input: PointRegistrationInput): void {
  const c = input?.characteristics ?? {};
  if (input?.location === COORDINATOR_LOCATION) {
    if (c.instancing === 'private')
      throw invalidArg('point.register: inContainer', 'a coordinator is public (one endpoint in the container)');
    return;
  }
  if (c.scope === 'process')
    throw invalidArg(
      'point.register: inContainer',
      'takes thread points and coordinators: a process point runs in a process of its own',
    );
}

/** @internal A host living in a container, driven through its control connection. */
export class ContainerHost
  extends EventEmitter<{ event: [HostEvent]; exit: [HostExit]; hostError: [Error] }>
  implements PointHost
{
  /** The container's process id (the host runs there). */
  pid: number | undefined;
  /** Resolves when the host has exited (or its container went). */
  readonly exited: Promise<HostExit>;
  readonly #c: HostingContainer;
  readonly #id: string;
  readonly #spawned: Promise<void>;
  #exit: HostExit | undefined;
  #resolveExit!: (e: HostExit) => void;

  constructor(c: HostingContainer, id: string, reg: PointRegistration) {
    super();
    this.#c = c;
    this.#id = id;
    this.pid = c.pid;
    this.exited = new Promise((r) => {
      this.#resolveExit = r;
    });
    const { scope, stackMb } = reg.characteristics;
    this.#spawned = c.conn
      .request(
        'host.spawn',
        { host: id, point: reg.name, scope, stackMb, coordinator: reg.location === COORDINATOR_LOCATION },
        SPAWN_TIMEOUT_MS,
      )
      .then(
        (r) => {
          // The container's word on where it runs; anything but a pid leaves the pid it said hello with.
          if (Number.isSafeInteger(r?.pid) && r.pid > 0) this.pid = r.pid;
        },
        (err: Error) => {
          this.exitedWith({ code: null, signal: null });
          throw err;
        },
      );
    this.#spawned.catch(() => {});
  }

  /** True once the host has exited. */
  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /** Send one of the host's requests through the container; `AMIX_ERR_POINT_DIED` once the container is gone. */
  request<K extends HostOp>(op: K, args: ArgsOf<HostOps, K>, timeoutMs?: number): Promise<ResultOf<HostOps, K>>;
  request<T = unknown>(op: HostOp, args?: AnyArgs<HostOps>, timeoutMs?: number): Promise<T>;
  async request(op: string, args: object = {}, timeoutMs = 0): Promise<unknown> {
    await this.#spawned;
    if (this.#exit) throw this.#died(op);
    try {
      // The container answers with the host's own reply or error; a little slack for the extra hop.
      return await this.#c.conn.request(
        'host.request',
        { host: this.#id, op, args: args as Record<string, unknown>, timeoutMs },
        timeoutMs > 0 ? timeoutMs + 1000 : 0,
      );
    } catch (err) {
      if ((err as AmixError).code === ErrorCode.AMIX_ERR_DAEMON_UNAVAILABLE || this.#exit) throw this.#died(op, err);
      throw err;
    }
  }

  /** Stop the host as `HostHandle.kill` does, there. */
  kill(graceMs: number): Promise<HostExit> {
    return this.#stop(graceMs, false);
  }

  /** Stop the host at once. */
  forceKill(): Promise<HostExit> {
    return this.#stop(0, true);
  }

  /** @internal The host's exit, as its container reported it (or as the container's going implies). */
  exitedWith(e: HostExit): void {
    if (this.#exit) return;
    this.#exit = e;
    this.#resolveExit(e);
    this.emit('exit', e);
  }

  async #stop(graceMs: number, force: boolean): Promise<HostExit> {
    if (this.#exit) return this.#exit;
    await this.#spawned.catch(() => {});
    if (!this.#exit) {
      const e = await this.#c.conn
        .request('host.kill', { host: this.#id, graceMs, force }, graceMs + SPAWN_TIMEOUT_MS)
        .catch((): HostExit => ({ code: null, signal: 'SIGKILL' }));
      // The host's exit event comes before this reply on the same socket; if it did not, this is its exit.
      this.exitedWith(e);
    }
    return this.exited;
  }

  #died(op: string, cause?: unknown): AmixError {
    return new AmixError(
      ErrorCode.AMIX_ERR_POINT_DIED,
      `point host ${this.#id} in container ${this.#c.id} is gone (before answering ${op})`,
      { details: { exitCode: this.#exit?.code ?? null, signal: this.#exit?.signal ?? null }, cause },
    );
  }
}

/**
 * amixd's placement of in-container points: which container each runs in,
 * the hosts started there, and their events. Given to the daemon's fabric
 * as its {@link HostPlacement}.
 */
export class ContainerPlacement implements HostPlacement {
  /** In-container points by name: their container, and the registration they were placed with. */
  readonly #placed = new Map<string, HostingContainer>();
  /** Live hosts by container id, then host (instance) id. */
  readonly #hosts = new Map<string, Map<string, ContainerHost>>();
  readonly #registration: (name: string) => PointRegistration | undefined;

  /** `registration` gives the fabric's current registration of a name (a placed name re-registered elsewhere is not placed). */
  constructor(registration: (name: string) => PointRegistration | undefined) {
    this.#registration = registration;
  }

  /** Run point `name`'s instances in container `c` from now on. */
  place(name: string, c: HostingContainer): void {
    this.#placed.set(name, c);
  }

  /** Point `name` is gone: forget where it ran. */
  unplace(name: string): void {
    this.#placed.delete(name);
  }

  /** The container `reg` runs in, if it is placed in one. */
  where(reg: PointRegistration): string | undefined {
    return this.#containerOf(reg)?.id;
  }

  /** A host in `reg`'s container for instance `id`, or undefined for a point that is not placed. */
  host(reg: PointRegistration, id: string): PointHost | undefined {
    const c = this.#containerOf(reg);
    if (!c) return undefined;
    if (!c.conn.isOpen)
      throw new AmixError(ErrorCode.AMIX_ERR_POINT_DIED, `container ${c.id}, where point ${reg.name} runs, is gone`);
    const h = new ContainerHost(c, id, reg);
    let hosts = this.#hosts.get(c.id);
    if (!hosts) this.#hosts.set(c.id, (hosts = new Map()));
    hosts.set(id, h);
    void h.exited.then(() => {
      if (hosts.get(id) === h) hosts.delete(id);
    });
    return h;
  }

  /** An event container `c` sent about one of its hosts. */
  onEvent(c: HostingContainer, type: string, body: unknown): void {
    const b = body as Partial<ContainerEvents['host.event'] & ContainerEvents['host.exit']>;
    const h = typeof b?.host === 'string' ? this.#hosts.get(c.id)?.get(b.host) : undefined;
    if (!h) return; // a host this daemon did not start there (or already gone): nothing to tell
    if (type === 'host.event' && hostEvent(b.event)) h.emit('event', b.event);
    else if (type === 'host.exit') h.exitedWith({ code: b.code ?? null, signal: b.signal ?? null });
  }

  /**
   * Container `c` went: its hosts have exited with it. Its points stay
   * placed there until they are removed ({@link unplace}), so a restart
   * finds the container gone (a death) instead of starting them here.
   */
  unplug(c: HostingContainer): void {
    const hosts = this.#hosts.get(c.id);
    this.#hosts.delete(c.id);
    for (const h of hosts?.values() ?? []) h.exitedWith({ code: null, signal: 'SIGKILL' });
  }

  #containerOf(reg: PointRegistration): HostingContainer | undefined {
    const c = this.#placed.get(reg.name);
    // Only the registration placed (a broker instance, or a later point of the same name, is not).
    return c && this.#registration(reg.name) === reg ? c : undefined;
  }
}

/** True for an event a host may report (a container is not trusted to send well-formed ones). */
function hostEvent(e: unknown): e is HostEvent {
  if (e === null || typeof e !== 'object') return false;
  const x = e as Record<string, unknown>;
  if (x.type === 'mainEnded') return true;
  if (typeof x.link !== 'string' || typeof x.peer !== 'string') return false;
  return x.type === 'linkEnded' || (x.type === 'channel' && typeof x.event === 'string');
}
