/**
 * One home for request/reply: {@link RpcPeer} numbers requests, keeps the
 * pending ones with their timers, settles them from replies, fails them all
 * with one error when the transport goes away, answers incoming requests
 * through a handler (usually a table built with {@link handlerTable}) and
 * passes one-way events on. It knows nothing of the transport: each side
 * gives it a `send(msg)` function and feeds it what arrives
 * ({@link RpcPeer.receive}). The point host's port, the amixd control
 * socket and the peering control channel between daemons all use it, each
 * with its own wire shape and its own error codes.
 *
 * @module
 */
import { AmixError, ErrorCode, asAmixError, describe } from './errors.js';

/** A request, a reply or a one-way event, as every transport hands them to an {@link RpcPeer}. */
export type RpcMessage =
  | { kind: 'request'; id: number; op: string; args: Record<string, unknown> }
  | { kind: 'reply'; id: number; ok: true; result: unknown }
  | { kind: 'reply'; id: number; ok: false; error: AmixError }
  | { kind: 'event'; type: string; body: Record<string, unknown> };

/** One operation's argument and result types, as an op table declares them. */
export interface OpSpec {
  args: object;
  result: unknown;
}

/**
 * An op table is an interface mapping each operation name to its
 * {@link OpSpec} (an interface, so no index signature: the helpers below
 * take any `T` and read `args` and `result` off its members).
 */
export type OpTable<T> = { [K in keyof T]: OpSpec };

/** The arguments of `op` in table `T`. */
export type ArgsOf<T, K extends keyof T> = T[K] extends { args: infer A } ? A : never;
/** The result of `op` in table `T`. */
export type ResultOf<T, K extends keyof T> = T[K] extends { result: infer R } ? R : never;
/** The arguments of any op in table `T` (for a call whose result type the caller states). */
export type AnyArgs<T> = ArgsOf<T, keyof T>;

/** A table of handlers answering the ops of `T`; `C` is what each is told about the caller. */
export type Handlers<T, C = void> = {
  [K in keyof T]: (args: ArgsOf<T, K>, from: C) => Promise<ResultOf<T, K>> | ResultOf<T, K>;
};

/** Answers any request: resolve with the result, or reject with an AmixError. */
export type RpcHandler<C = void> = (op: string, args: Record<string, unknown>, from: C) => unknown;

/**
 * A handler that dispatches on the op name through `table`. An op the table
 * does not hold rejects with `unknown(op)` (by default `AMIX_ERR_PROTOCOL`
 * "unknown request"). Own properties only: `'constructor'` or `'toString'`
 * on the wire are unknown ops, not prototype methods.
 *
 * @example
 * const handle = handlerTable<HostOps>({ start: () => ({}), ... });
 * new RpcPeer({ send, handle });
 */
export function handlerTable<T, C = void>(
  table: Handlers<T, C>,
  unknown: (op: string) => Error = (op) =>
    new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown request ${describe(op)}`),
): RpcHandler<C> {
  return (op, args, from) => {
    if (!Object.hasOwn(table, op)) throw unknown(op);
    return (table[op as keyof T] as (a: unknown, f: C) => unknown)(args, from);
  };
}

/** How one request is sent by {@link RpcPeer.request}. */
export interface RequestOptions<C> {
  /** Reject with `AMIX_ERR_TIMEOUT` after this many ms; 0 or absent waits for ever. */
  timeoutMs?: number | undefined;
  /** Where the request goes; handed to `send` (one peer serving several remotes). */
  to?: C;
  /** A mark kept with the pending request, for {@link RpcPeer.failWhere}. */
  tag?: string;
}

/** What an {@link RpcPeer} is built from. */
export interface RpcPeerOptions<C = void> {
  /**
   * Put one message on the transport. A throw or a rejected promise fails
   * the request it carried (a reply or event that cannot go is dropped).
   */
  send(msg: RpcMessage, to: C): void | Promise<void>;
  /** Answers incoming requests. Default: refuse every request with `AMIX_ERR_PROTOCOL`. */
  handle?: RpcHandler<C>;
  /** Hears incoming one-way events. */
  onEvent?: (type: string, body: Record<string, unknown>, from: C) => void;
  /** The error of a request that got no reply within its timeout. */
  timeoutError(op: string, timeoutMs: number, to: C): AmixError;
  /** The error of a request made, or pending, once the transport has gone; `op` is `'request'` for pending ones. */
  closedError(op: string): AmixError;
  /** Called with true when the first request starts waiting, and false when the last one settles. */
  onBusy?: (busy: boolean) => void;
  /** The largest id before numbering starts again at 1. Default 2^32 - 1 (a protobuf uint32). */
  maxId?: number;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
  tag: string | undefined;
}

/**
 * One side of a request/reply conversation over some transport.
 *
 * @example
 * const peer = new RpcPeer({ send: (m) => port.postMessage(m), timeoutError, closedError });
 * port.on('message', (m) => peer.receive(m));
 * const r = await peer.request('stats', {}, { timeoutMs: 1000 });
 */
export class RpcPeer<C = void> {
  readonly #o: RpcPeerOptions<C>;
  readonly #pending = new Map<number, Pending>();
  readonly #maxId: number;
  #nextId = 1;
  #closed = false;

  constructor(options: RpcPeerOptions<C>) {
    this.#o = options;
    this.#maxId = options.maxId ?? 0xffffffff;
  }

  /** How many requests wait for a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The next request id; ids wrap at `maxId` (a protobuf uint32 by default). */
  #id(): number {
    const id = this.#nextId++;
    if (this.#nextId > this.#maxId) this.#nextId = 1;
    return id;
  }

  /**
   * Send a request and wait for its reply: resolves with the result, or
   * rejects with the remote's error, the timeout error, the send's error, or
   * the closed error.
   */
  request<T = unknown>(op: string, args: Record<string, unknown>, options: RequestOptions<C> = {}): Promise<T> {
    if (this.#closed) return Promise.reject(this.#o.closedError(op));
    const id = this.#id();
    const to = options.to as C;
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 0;
      const p: Pending = {
        resolve: resolve as (v: unknown) => void,
        reject,
        tag: options.tag,
        timer:
          timeoutMs > 0
            ? setTimeout(() => this.#settle(id)?.reject(this.#o.timeoutError(op, timeoutMs, to)), timeoutMs)
            : undefined,
      };
      this.#pending.set(id, p);
      if (this.#pending.size === 1) this.#o.onBusy?.(true);
      const failed = (err: unknown): void => this.#settle(id)?.reject(err as Error);
      try {
        const sent = this.#o.send({ kind: 'request', id, op, args }, to);
        if (sent) sent.catch(failed);
      } catch (err) {
        failed(err);
      }
    });
  }

  /** Send a one-way event. Dropped once closed, or if the transport refuses it. */
  event(type: string, body: Record<string, unknown>, to?: C): void {
    if (this.#closed) return;
    this.#sendQuietly({ kind: 'event', type, body }, to as C);
  }

  /** Feed one message that arrived from `from`: a reply settles its request, a request is answered, an event is passed on. */
  receive(msg: RpcMessage, from?: C): void {
    if (msg.kind === 'reply') {
      const p = this.#settle(msg.id);
      if (!p) return; // late (timed out) or never ours
      if (msg.ok) p.resolve(msg.result);
      else p.reject(msg.error);
    } else if (msg.kind === 'request') void this.#answer(msg, from as C);
    else this.#o.onEvent?.(msg.type, msg.body, from as C);
  }

  /** Fail every pending request whose tag is `tag` with `err` (one remote of several went away). */
  failWhere(tag: string, err: Error): void {
    for (const [id, p] of this.#pending) if (p.tag === tag) this.#settle(id)?.reject(err);
  }

  /**
   * The transport has gone: fail every pending request with `err` (default
   * `closedError('request')`), and refuse new ones. Idempotent; replies to
   * requests still being answered are not sent.
   */
  close(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(err ?? this.#o.closedError('request'));
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (!p) return undefined;
    this.#pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (this.#pending.size === 0) this.#o.onBusy?.(false);
    return p;
  }

  async #answer(m: Extract<RpcMessage, { kind: 'request' }>, from: C): Promise<void> {
    let reply: RpcMessage;
    try {
      const handle = this.#o.handle ?? refuseRequests;
      reply = { kind: 'reply', id: m.id, ok: true, result: await handle(m.op, m.args, from) };
    } catch (err) {
      reply = { kind: 'reply', id: m.id, ok: false, error: asAmixError(err) };
    }
    if (!this.#closed) this.#sendQuietly(reply, from);
  }

  #sendQuietly(msg: RpcMessage, to: C): void {
    // A reply or event has nobody waiting on it here: a transport that
    // refuses it (gone, full) reports through its own close path.
    try {
      const sent = this.#o.send(msg, to);
      if (sent) sent.catch(() => {});
    } catch {
      /* see above */
    }
  }
}

/** The handler of a side that serves no requests: every one is refused with `AMIX_ERR_PROTOCOL`. */
export function refuseRequests(): never {
  throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, 'this side takes no requests');
}

/**
 * Argument `key` of request `op`, which must be a non-empty string:
 * `AMIX_ERR_INVALID_ARG` otherwise (arguments come off a socket, so every
 * server checks them where it reads them).
 */
export function stringArg(op: string, args: object, key: string): string {
  const v = (args as Record<string, unknown>)[key];
  if (typeof v !== 'string' || v === '')
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `${op}: argument ${key} must be a non-empty string (got ${describe(v)})`,
      {
        details: { option: key },
      },
    );
  return v;
}
