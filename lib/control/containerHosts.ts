/**
 * Points that run inside a container: the container's side (its agent, the
 * seed's intra_p point, 002 ¶58: it "bootstraps itself in the application
 * process and executes the TCS's commands there"). amixd asks it to start a
 * host for an instance of an in-container point, passes it the fabric's
 * requests for that host, and to stop it:
 *
 * - a `thread` point runs as a worker thread of this process, through the
 *   same {@link HostHandle} a fabric uses (stack size, termination method;
 *   restarts are the daemon's supervisor's, as everywhere);
 * - a coordinator (location {@link COORDINATOR_LOCATION}) is an
 *   {@link Endpoint} of this process itself, which other containers link
 *   to by its name like to any point.
 *
 * A thread primitive's address (a `SharedArrayBuffer`) cannot cross the
 * control socket: it is kept here and the daemon gets a token for it, which
 * only this container can turn back into the address, so two thread points
 * of one container are linked over their ring directly.
 *
 * @module
 */
import type { ControlConnection } from './connection.js';
import { Agent } from '../fabric/agent.js';
import { Endpoint } from '../fabric/endpoint.js';
import { AmixError, ErrorCode, errorToPlain, invalidArg } from '../core/errors.js';
import { HostHandle } from '../fabric/hostHandle.js';
import type { HostExit } from '../fabric/pointHost.js';
import type { PrimitiveRegistry } from '../core/registry.js';
import type { ContainerOps } from './ops.js';

/** The location a coordinator is registered with: it has no module, it is the container's own endpoint. */
export const COORDINATOR_LOCATION = 'amix:coordinator';

/** The ops amixd sends a hosting container. */
const HOST_OPS = ['host.spawn', 'host.request', 'host.kill'] as const;

/** One host here: a worker, or a coordinator's endpoint. */
interface LocalHost {
  request(op: string, args: Record<string, unknown>, timeoutMs: number): Promise<unknown>;
  kill(graceMs: number, force: boolean): Promise<HostExit>;
}

/** @internal The hosts a container runs for amixd, and the answers to the daemon's `host.*` requests. */
export class HostedPoints {
  readonly #conn: ControlConnection<unknown, unknown>;
  readonly #registry: PrimitiveRegistry;
  readonly #container: () => string;
  readonly #hosts = new Map<string, LocalHost>();
  /** Coordinators of this container, by point name. */
  readonly #coordinators = new Map<string, Endpoint>();
  /** Thread-primitive addresses handed out as tokens, by token, with their link (dropped when it closes). */
  readonly #local = new Map<string, { link: unknown; address: unknown }>();
  #seq = 0;

  constructor(conn: ControlConnection<unknown, unknown>, registry: PrimitiveRegistry, container: () => string) {
    this.#conn = conn;
    this.#registry = registry;
    this.#container = container;
  }

  /** True when `op` is a `host.*` request. */
  static handles(op: string): op is keyof ContainerOps {
    return (HOST_OPS as readonly string[]).includes(op);
  }

  /** The endpoint of coordinator `name`, made on first use. */
  coordinator(name: string, options: { maxUnlinked?: number } = {}): Endpoint {
    let e = this.#coordinators.get(name);
    if (!e)
      this.#coordinators.set(
        name,
        (e = new Endpoint(name, options.maxUnlinked !== undefined ? { maxUnlinked: options.maxUnlinked } : {})),
      );
    return e;
  }

  /** Answer one of the daemon's `host.*` requests. */
  async handle(op: keyof ContainerOps, args: Record<string, unknown>): Promise<unknown> {
    const host = args.host;
    if (typeof host !== 'string' || host === '')
      throw invalidArg(`${op}: argument host`, 'must be a non-empty string', host);
    if (op === 'host.spawn') return this.#spawn(host, args as ContainerOps['host.spawn']['args']);
    const h = this.#hosts.get(host);
    if (!h)
      throw new AmixError(ErrorCode.AMIX_ERR_POINT_DIED, `no host ${host} runs in this container`, {
        details: { exitCode: null, signal: null },
      });
    if (op === 'host.kill') {
      const a = args as ContainerOps['host.kill']['args'];
      return h.kill(Number(a.graceMs) || 0, a.force === true);
    }
    const a = args as ContainerOps['host.request']['args'];
    return this.#request(h, String(a.op), a.args ?? {}, Number(a.timeoutMs) || 0);
  }

  /** Stop every host here (the daemon is gone, or this container unplugs). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#hosts.values()].map((h) => h.kill(0, true)));
    for (const e of this.#coordinators.values()) await e.close().catch(() => {});
  }

  async #request(h: LocalHost, op: string, args: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    // A token for a thread-primitive address made here is turned back into the address (its ring).
    if (op === 'openSender') {
      const addr = args.address as { amixLocal?: unknown } | undefined;
      if (addr && typeof addr === 'object' && typeof addr.amixLocal === 'string') {
        const real = this.#local.get(addr.amixLocal)?.address;
        if (real === undefined)
          throw invalidArg('openSender: address', 'is a thread-primitive address of another process', addr.amixLocal);
        this.#local.delete(addr.amixLocal);
        args = { ...args, address: real };
      }
    }
    // A link that closes before its sender attached (a failed connect) leaves no token behind.
    if (op === 'closeLink') for (const [k, v] of this.#local) if (v.link === args.link) this.#local.delete(k);
    const r = await h.request(op, args, timeoutMs);
    if (op === 'openReceiver') {
      const address = (r as { address?: unknown }).address;
      if (holdsSharedMemory(address)) {
        const token = `${this.#container()}.${++this.#seq}`;
        this.#local.set(token, { link: args.link, address });
        return { address: { amixLocal: token } };
      }
    }
    return r;
  }

  #spawn(host: string, a: ContainerOps['host.spawn']['args']): { pid: number } {
    if (this.#hosts.has(host)) throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `host ${host} runs here already`);
    if (a.coordinator === true) this.#hosts.set(host, this.#coordinatorHost(host, String(a.point)));
    else if (a.scope === 'thread') this.#hosts.set(host, this.#workerHost(host, Number(a.stackMb) || 4));
    else throw invalidArg('host.spawn: scope', 'a container runs thread points and coordinators only', a.scope);
    return { pid: process.pid };
  }

  #workerHost(host: string, stackMb: number): LocalHost {
    const h = HostHandle.spawn('thread', host, stackMb);
    h.on('event', (event) => this.#conn.event('host.event', { host, event }));
    h.on('hostError', () => {}); // its exit follows and is what the daemon hears
    h.on('exit', (e) => {
      if (this.#hosts.get(host) === lh) this.#hosts.delete(host);
      this.#conn.event('host.exit', { host, code: e.code, signal: e.signal });
    });
    const lh: LocalHost = {
      request: (op, args, timeoutMs) => h.request(op as never, args as never, timeoutMs),
      kill: (graceMs, force) => (force ? h.forceKill() : h.kill(graceMs)),
    };
    return lh;
  }

  #coordinatorHost(host: string, point: string): LocalHost {
    const end = this.coordinator(point);
    const agent = new Agent(end, this.#registry, (e) => {
      const { error, ...rest } = e as typeof e & { error?: Error };
      this.#conn.event('host.event', { host, event: { ...rest, ...(error ? { error: errorToPlain(error) } : {}) } });
    });
    const ended = (): HostExit => {
      this.#hosts.delete(host);
      const exit = { code: 0, signal: null };
      this.#conn.event('host.exit', { host, ...exit });
      return exit;
    };
    return {
      request: async (op, args) => {
        // The endpoint is this process's own: nothing to load or start, and ending it leaves it to the application.
        if (op === 'init') return { pid: process.pid };
        if (op === 'start' || op === 'terminate') return {};
        return agent.handle(op, args, undefined);
      },
      kill: async () => ended(),
    };
  }
}

/** True for a `SharedArrayBuffer`, or an object holding one at its top level (a thread primitive's `{ sab }`). */
function holdsSharedMemory(x: unknown): boolean {
  if (x instanceof SharedArrayBuffer) return true;
  if (x === null || typeof x !== 'object') return false;
  return Object.values(x).some((v) => v instanceof SharedArrayBuffer);
}
