/**
 * {@link ControlConnection}: one control-protocol connection over a socket,
 * used by both amixd and its clients. Either side sends requests and gets
 * one reply each; incoming requests go to a handler; events are one-way.
 * Request/reply itself is the {@link RpcPeer}; this adds the socket's
 * framing and its error codes.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { AmixError, ErrorCode } from '../core/errors.js';
import { Lifecycle } from '../core/lifecycle.js';
import { RpcPeer, refuseRequests, type AnyArgs, type ArgsOf, type ResultOf } from '../core/rpc.js';
import { ControlDecoder, encodeControl, type ControlMessage } from './protocol.js';

/** Answers a request: resolve with the result, or reject with an AmixError. */
export type RequestHandler = (op: string, args: Record<string, unknown>) => Promise<unknown> | unknown;

/** An event as it arrives on a connection: its `type` and the `body` its map gives that type. */
export type EventMessage<E> = { [K in keyof E & string]: { type: K; body: E[K] } }[keyof E & string];

/** Options for {@link ControlConnection}. */
export interface ControlConnectionOptions {
  /** The timeout of a request that names none. Default 0 (no limit). */
  timeoutMs?: number;
}

/**
 * A control connection. `Out` is the op table of the requests this side
 * sends, `E` the event map of the events it receives. Events: `'event'`
 * ({ type, body }), `'close'` (Error | undefined), `'protocolError'`
 * (AmixError) for each malformed frame that was answered.
 */
export class ControlConnection<
  Out = Record<string, { args: object; result: unknown }>,
  E = Record<string, unknown>,
> extends EventEmitter<{
  event: [EventMessage<E>];
  close: [Error | undefined];
  protocolError: [AmixError];
}> {
  readonly socket: Socket;
  #handler: RequestHandler;
  readonly #rpc: RpcPeer;
  readonly #decoder = new ControlDecoder();
  readonly #timeout: number;
  #closed: Error | undefined | null = null;
  readonly #life = new Lifecycle('control connection');
  #closedHere = false;

  constructor(socket: Socket, handler: RequestHandler = refuseRequests, options: ControlConnectionOptions = {}) {
    super();
    this.socket = socket;
    this.#handler = handler;
    this.#timeout = options.timeoutMs ?? 0;
    this.#rpc = new RpcPeer({
      send: (m) => {
        this.socket.write(encodeControl(m));
      },
      handle: (op, args) => this.#handler(op, args),
      onEvent: (type, body) => this.emit('event', { type, body } as EventMessage<E>),
      timeoutError: (op, timeoutMs) =>
        new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `no reply to ${op} within ${timeoutMs} ms`, { details: { op } }),
      closedError: (op) =>
        new AmixError(
          ErrorCode.AMIX_ERR_DAEMON_UNAVAILABLE,
          `control connection closed before ${op} was answered`,
          this.#closed ? { cause: this.#closed } : {},
        ),
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#finish(err));
    socket.on('close', () => this.#finish(undefined));
  }

  /** True until the socket closes. */
  get isOpen(): boolean {
    return this.#closed === null;
  }

  /** Replace the request handler (e.g. with a {@link handlerTable} over an op table). */
  setHandler(handler: RequestHandler): void {
    this.#handler = handler;
  }

  /**
   * Send a request; rejects with the peer's error, `AMIX_ERR_TIMEOUT`, or
   * `AMIX_ERR_DAEMON_UNAVAILABLE` if the connection closes first. The first
   * signature is checked against `Out`; with the second the caller states
   * the result type.
   */
  request<K extends keyof Out & string>(op: K, args: ArgsOf<Out, K>, timeoutMs?: number): Promise<ResultOf<Out, K>>;
  request<T = unknown>(op: keyof Out & string, args?: AnyArgs<Out>, timeoutMs?: number): Promise<T>;
  request(op: string, args: unknown = {}, timeoutMs: number = this.#timeout): Promise<unknown> {
    // Closed on purpose here: AMIX_ERR_CLOSED. Closed by the far side: the RpcPeer says the daemon is gone.
    if (this.#closedHere) return Promise.reject(this.#life.closedError());
    return this.#rpc.request(op, args as Record<string, unknown>, { timeoutMs });
  }

  /** Send a one-way event. Dropped silently if the connection is closed. */
  event(type: string, body: Record<string, unknown> = {}): void {
    if (this.#closed === null) this.#rpc.event(type, body);
  }

  /** Resolves once the socket has closed, with its error (undefined for a clean close); never rejects. */
  get closed(): Promise<Error | undefined> {
    return this.#life.closed;
  }

  /** Close the socket after pending writes; resolves once it has closed. Idempotent. */
  close(): Promise<void> {
    this.#closedHere = true;
    return this.#life.close(() => this.#ended(() => this.socket.end()));
  }

  /** Close at once; pending requests reject with `AMIX_ERR_DAEMON_UNAVAILABLE` (cause `err`). */
  destroy(err?: Error): Promise<void> {
    this.#closedHere = true;
    return this.#life.destroy(err, (r) => this.#ended(() => this.socket.destroy(r)));
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Run `end` and wait for the socket's close (at once if it is gone already). */
  #ended(end: () => void): Promise<void> {
    if (this.#closed !== null) return Promise.resolve();
    const gone = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    end();
    return gone;
  }

  #onData(chunk: Buffer): void {
    let msgs: Array<ControlMessage | AmixError>;
    try {
      msgs = this.#decoder.push(chunk);
    } catch (err) {
      // An oversized length cannot be skipped: answer once, then close.
      this.emit('protocolError', err as AmixError);
      this.socket.end(encodeControl({ kind: 'reply', id: 0, ok: false, error: err as AmixError }));
      return;
    }
    for (const m of msgs) {
      if (m instanceof AmixError) {
        this.emit('protocolError', m);
        this.socket.write(encodeControl({ kind: 'reply', id: 0, ok: false, error: m }));
        continue;
      }
      this.#rpc.receive(m);
    }
  }

  #finish(err: Error | undefined): void {
    if (this.#closed !== null) return;
    this.#closed = err;
    this.#rpc.close();
    // The far side (or the kernel) ended it: the lifecycle is over, whoever started it.
    this.#life.settle(err);
    this.emit('close', err);
  }
}
