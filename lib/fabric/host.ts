/**
 * The point host: the script a point instance runs in, as a worker thread
 * (scope `thread`) or a child process (scope `process`). It loads the point's
 * module through the module model, runs its `main(point)`, and carries out
 * the fabric's control requests (open a channel end, close a link, suspend,
 * resume, cycle, stats, terminate). Control travels over the worker port or
 * the child's IPC channel; message bytes never do: they go over the
 * primitives' channels.
 *
 * A point module's default export is `main(point: PointContext)`.
 *
 * @module
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Agent } from './agent.js';
import { Endpoint } from './endpoint.js';
import { AmixError, ErrorCode, errorToPlain } from '../core/errors.js';
import { Container } from '../core/module.js';
import { PrimitiveRegistry, importSpecifier } from '../core/registry.js';
import { RpcPeer, handlerTable } from '../core/rpc.js';
import { isSwitchLocation } from './switchFrame.js';
import { TRUNK_LOCATION } from './switchTrunk.js';
import { fromHostWire, toHostWire, type HostInit, type HostMessage, type HostOps } from './hostProtocol.js';
export type { HostInit, HostMessage } from './hostProtocol.js';

/** What a point's `main` receives: its lists, send and receive, and a signal aborted on termination. */
export interface PointContext extends Endpoint {
  /** The registration name. */
  readonly name: string;
  /** This instance's name (`name` for a public point, `name#n` for a private instance). */
  readonly instance: string;
  /** The registration's free-form `data`. */
  readonly data: unknown;
  /** Aborted when the point is asked to terminate (method `message`): finish and return. */
  readonly signal: AbortSignal;
}

/** The signature of a point module's default export. */
export type PointMain = (point: PointContext) => unknown;

interface Port {
  post(msg: HostMessage): void;
  onMessage(fn: (msg: HostMessage) => void): void;
}

function portOf(): Port | undefined {
  if (!isMainThread && parentPort && (workerData as { amixHost?: boolean } | undefined)?.amixHost) {
    const p = parentPort;
    return { post: (m) => p.postMessage(m), onMessage: (fn) => p.on('message', fn) };
  }
  if (isMainThread && typeof process.send === 'function' && process.env.AMIX_HOST === '1') {
    // The parent going away means nobody can terminate us: leave.
    process.on('disconnect', () => process.exit(0));
    // With a callback, a send racing the parent's death reports to it instead of throwing EPIPE at the process.
    const ignore = (): void => {};
    return {
      post: (m) => {
        if (process.connected) process.send!(m, undefined, undefined, ignore);
      },
      onMessage: (fn) => process.on('message', fn as (m: unknown) => void),
    };
  }
  return undefined;
}

class Host {
  readonly #rpc: RpcPeer;
  #reg!: PrimitiveRegistry;
  #init!: HostInit;
  #point!: Endpoint & { instance: string; data: unknown; signal: AbortSignal };
  readonly #abort = new AbortController();
  readonly #container = new Container({ name: 'point-host' });
  #main: PointMain | undefined;
  #agent!: Agent;
  #running: Promise<void> | undefined;
  #mainReturned = false;

  readonly #onRecycle: () => void;

  /** `onRecycle`: put a new Host in this one's place (on the same port), for the next point. */
  constructor(port: Port, onRecycle: () => void) {
    this.#onRecycle = onRecycle;
    const own = handlerTable<Pick<HostOps, 'init' | 'start' | 'terminate' | 'recycle'>>(
      {
        init: (a) => this.#doInit(a),
        start: () => this.#start(),
        terminate: (a) => this.#terminate(a.timeoutMs),
        recycle: () => this.#recycle(),
      },
      (op) => new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown host request ${JSON.stringify(op)}`),
    );
    this.#rpc = new RpcPeer({
      send: (m) => port.post(toHostWire(m)),
      // The link commands go to the agent, which has its own table.
      handle: (op, args) => (Agent.handles(op) ? this.#agent.handle(op, args, undefined) : own(op, args)),
      // The host asks nothing of the fabric: these never fire.
      timeoutError: (op) => new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `fabric did not answer ${op}`),
      closedError: (op) => new AmixError(ErrorCode.AMIX_ERR_CLOSED, `point host closed before ${op}`),
    });
  }

  /** A request from the fabric. */
  receive(m: HostMessage): void {
    if (m.kind === 'req') this.#rpc.receive(fromHostWire(m));
  }

  #event(type: string, body: Record<string, unknown> = {}): void {
    this.#rpc.event(type, body);
  }

  async #doInit(init: HostInit): Promise<{ pid: number }> {
    this.#init = init;
    this.#reg = new PrimitiveRegistry({
      baseDir: init.baseDir,
      ...(init.runtimeDir ? { channelDefaults: { runtimeDir: init.runtimeDir } } : {}),
    });
    for (const p of init.primitives) if (!this.#reg.has(p.name)) this.#reg.register(p);
    const c = init.registration.characteristics;
    const point = new Endpoint(init.registration.name, { maxUnlinked: c.maxmsg, discard: c.discard }) as Endpoint & {
      instance: string;
      data: unknown;
      signal: AbortSignal;
    };
    Object.defineProperties(point, {
      instance: { value: init.instance, enumerable: true },
      data: { value: init.registration.data, enumerable: true },
      signal: { value: this.#abort.signal, enumerable: true },
    });
    this.#point = point;
    this.#agent = new Agent(point, this.#reg, (e) => {
      const { type, ...rest } = e;
      const { error, ...body } = rest as typeof rest & { error?: Error };
      this.#event(type, { ...body, ...(error ? { error: errorToPlain(error) } : {}) });
    });
    const location = init.registration.location;
    // The switch and trunk point kinds are built in: their locations name them rather than a module path. The
    // trunk point is a layer above (it needs ZeroMQ): named by URL and imported on use, as primitives are.
    const specifier = isSwitchLocation(location)
      ? new URL('./switchPoint.js', import.meta.url).href
      : location === TRUNK_LOCATION
        ? new URL('../remote/trunk/trunkPoint.js', import.meta.url).href
        : importSpecifier(location, init.baseDir);
    this.#container.add(init.instance, {
      load: async () => {
        let mod: { default?: unknown; main?: unknown };
        try {
          mod = (await import(specifier)) as { default?: unknown; main?: unknown };
        } catch (err) {
          throw new AmixError(
            ErrorCode.AMIX_ERR_INVALID_ARG,
            `cannot import point "${init.registration.name}" from ${location}: ${(err as Error).message}`,
            { cause: err },
          );
        }
        const main = mod.default ?? mod.main;
        if (typeof main !== 'function') {
          throw new AmixError(
            ErrorCode.AMIX_ERR_INVALID_ARG,
            `point module ${location} must export a main(point) function as its default export`,
          );
        }
        this.#main = main as PointMain;
      },
      quiesce: () => {
        this.#abort.abort(new Error('terminating'));
        return this.#point.close();
      },
    });
    await this.#container.load(init.instance);
    return { pid: process.pid };
  }

  async #start(): Promise<Record<string, never>> {
    if (this.#running) return {};
    await this.#container.start(this.#init.instance);
    this.#running = this.#container.run(this.#init.instance, async () => {
      try {
        await this.#main!(this.#point as unknown as PointContext);
        this.#event('mainEnded');
      } catch (err) {
        this.#event('mainEnded', { error: errorToPlain(err) });
      }
      this.#mainReturned = true;
    });
    return {};
  }

  async #terminate(timeoutMs: number): Promise<Record<string, never>> {
    const state = this.#container.get(this.#init.instance).state;
    if (state === 'started') await this.#container.quiesce(this.#init.instance, { timeoutMs });
    else {
      this.#abort.abort(new Error('terminating'));
      await this.#point.close();
    }
    await this.#reg.close().catch(() => {});
    return {};
  }

  async #recycle(): Promise<Record<string, never>> {
    // Only once the point has ended and its main has returned: a main still running would go on
    // beside the next point, on the same event loop, with its timers and its channels. (After a
    // terminate that succeeded it has: quiesce waited for it.)
    if (!this.#abort.signal.aborted || (this.#running !== undefined && !this.#mainReturned))
      throw new AmixError(
        ErrorCode.AMIX_ERR_BAD_TRANSITION,
        this.#abort.signal.aborted ? 'point host: its main still runs' : 'point host: recycle before terminate',
      );
    // The next request (an init) arrives as a later message: the new Host is in place by then. This
    // one's RpcPeer still sends this reply.
    this.#onRecycle();
    return {};
  }
}

const port = portOf();
if (port) {
  // One Host per point; a recycled host (FabricOptions.reuseHosts) gets a fresh one on the same port.
  // The modules it imported stay loaded, and V8's compiled code for them with them: the reason to reuse.
  const fresh = (): Host => new Host(port, () => (current = fresh()));
  let current = fresh();
  port.onMessage((m) => current.receive(m));
}
