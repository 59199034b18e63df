/**
 * {@link ControlConnection}: one control-protocol connection over a socket,
 * used by both amixd and its clients. Either side sends requests and gets
 * one reply each; incoming requests go to a handler; events are one-way.
 * Request/reply itself is the {@link RpcPeer}; this adds the socket's
 * framing and its error codes, and (opt-in, amixd's side) write
 * backpressure: requests are not answered into an unbounded buffer toward
 * a peer that does not read.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { AmixError, ErrorCode } from '../core/errors.js';
import { Lifecycle } from '../core/lifecycle.js';
import { RpcPeer, refuseRequests, type AnyArgs, type ArgsOf, type ResultOf, type RpcMessage } from '../core/rpc.js';
import { ControlDecoder, MAX_CONTROL_FRAME, encodeControl, type ControlMessage } from './protocol.js';

/** Answers a request: resolve with the result, or reject with an AmixError. */
export type RequestHandler = (op: string, args: Record<string, unknown>) => Promise<unknown> | unknown;

/** An event as it arrives on a connection: its `type` and the `body` its map gives that type. */
export type EventMessage<E> = { [K in keyof E & string]: { type: K; body: E[K] } }[keyof E & string];

/** Options for {@link ControlConnection}. Every limit is off unless given (a client sets none). */
export interface ControlConnectionOptions {
  /** The timeout of a request that names none. Default 0 (no limit). */
  timeoutMs?: number;
  /**
   * The largest frame body taken (until {@link ControlConnection.setLimits}
   * changes it); a longer announced length closes the connection before any
   * of it is buffered. Default {@link MAX_CONTROL_FRAME}.
   */
  maxFrameBytes?: number;
  /**
   * Stop answering incoming requests (and answering bad frames), and stop
   * reading the socket, while more than this many bytes wait to be written;
   * go on once the peer has read them. Default: no limit (every request is
   * answered as it arrives).
   */
  highWaterBytes?: number;
  /**
   * With `highWaterBytes`: more than this many requests and bad frames read
   * and waiting to be answered refuses the peer (`AMIX_ERR_PROTOCOL`
   * `{ limit }`); amixd allows a handful before hello. Default: no limit
   * (what waits is then at most what one socket read brought).
   */
  maxHeldRequests?: number;
  /**
   * Destroy the connection, with `AMIX_ERR_SLOW_CONSUMER` `{ unsent, limit }`
   * as its close error, when more than this many bytes (replies and events)
   * wait to be written: events cannot be held back, so this is what cuts off
   * a peer that stopped reading. Default: no limit.
   */
  maxUnsentBytes?: number;
}

/** Requests answered in one go before the unsent bytes are looked at again (their replies are written later). */
const ANSWER_BATCH = 64;

/**
 * Answer `err` as a connection-level error (a reply with id 0, which no
 * request has) and close: at once after that frame is handed to the
 * kernel, and at the latest after `graceMs` if the peer does not take it.
 * Nothing more is read from the socket.
 */
export function hangUp(socket: Socket, err: AmixError, graceMs = 1000): void {
  if (socket.destroyed) return;
  socket.pause();
  socket.removeAllListeners('data');
  // Cheap only: a peer with a full buffer gets no reply, just the close.
  if (socket.writableLength > 64 * 1024) {
    socket.destroy();
    return;
  }
  socket.write(errorFrame(err));
  // Taken by the kernel already (the usual case): close now, so nothing more is read into memory.
  if (socket.writableLength === 0) {
    socket.destroy();
    return;
  }
  socket.end(() => socket.destroy());
  setTimeout(() => socket.destroy(), graceMs).unref();
}

/** A connection-level error reply (id 0: no request has it). */
function errorFrame(err: AmixError): Buffer {
  return encodeControl({ kind: 'reply', id: 0, ok: false, error: err });
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
  readonly #decoder: ControlDecoder;
  readonly #timeout: number;
  #closed: Error | undefined | null = null;
  readonly #life = new Lifecycle('control connection');
  #closedHere = false;
  readonly #maxUnsent: number;
  #highWater: number;
  #maxHeld: number;
  /** Requests and bad frames read but not yet answered because the peer is not taking replies (only with a high-water mark). */
  #inbox: Array<Extract<RpcMessage, { kind: 'request' }> | AmixError> = [];
  #inboxAt = 0;
  /** The socket is paused by {@link #pump}, waiting for `'drain'` or the next turn. */
  #held = false;
  #waiting = false;
  readonly #pumpNow = (): void => {
    this.#waiting = false;
    this.#pump();
  };
  /** No more input is taken (a fatal frame, or a hang-up). */
  #deaf = false;
  /** Why this side refused the peer ({@link refuse}): the close error, whatever the socket then says. */
  #refusal: AmixError | undefined;
  /** The connection-level error (reply id 0) the peer sent last: why it is closing, if it then does. */
  #peerReason: AmixError | undefined;

  constructor(socket: Socket, handler: RequestHandler = refuseRequests, options: ControlConnectionOptions = {}) {
    super();
    this.socket = socket;
    this.#handler = handler;
    this.#timeout = options.timeoutMs ?? 0;
    this.#decoder = new ControlDecoder(
      options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {},
    );
    this.#highWater = options.highWaterBytes ?? Infinity;
    this.#maxHeld = options.maxHeldRequests ?? Infinity;
    this.#maxUnsent = options.maxUnsentBytes ?? Infinity;
    this.#rpc = new RpcPeer({
      send: (m) => this.#write(encodeControl(m)),
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

  /** Bytes handed to the socket and not yet written to the kernel. */
  get unsentBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Change limits from the next frame on (amixd relaxes them once the peer
   * has said hello). The write gating itself (a `highWaterBytes` given or not)
   * is fixed at construction; here only its numbers change.
   */
  setLimits(limits: Pick<ControlConnectionOptions, 'maxFrameBytes' | 'highWaterBytes' | 'maxHeldRequests'>): void {
    if (limits.maxFrameBytes !== undefined) this.#decoder.setMaxFrameBytes(limits.maxFrameBytes);
    if (limits.highWaterBytes !== undefined && this.#highWater !== Infinity) this.#highWater = limits.highWaterBytes;
    if (limits.maxHeldRequests !== undefined) this.#maxHeld = limits.maxHeldRequests;
  }

  /**
   * Refuse the peer: send `err` as a connection-level error (reply id 0)
   * and close at once, reading nothing more; {@link closed} and `'close'`
   * then carry `err`. Resolves once the socket has closed.
   */
  refuse(err: AmixError): Promise<void> {
    this.#closedHere = true;
    this.#deaf = true;
    this.#refusal ??= err;
    return this.#ended(() => hangUp(this.socket, err));
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

  /** Every frame this side writes goes through here, so the unsent cap sees replies and events alike. */
  #write(frame: Buffer): void {
    // After a hang-up (or any end) nothing more goes out: replies still being answered are dropped.
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(frame);
    const unsent = this.socket.writableLength;
    if (unsent > this.#maxUnsent) {
      void this.destroy(
        new AmixError(
          ErrorCode.AMIX_ERR_SLOW_CONSUMER,
          `the peer stopped reading: ${unsent} bytes of replies and events unsent (limit ${this.#maxUnsent})`,
          { details: { unsent, limit: this.#maxUnsent } },
        ),
      );
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#deaf) return;
    let msgs: Array<ControlMessage | AmixError>;
    try {
      msgs = this.#decoder.push(chunk);
    } catch (err) {
      // An oversized length cannot be skipped: answer once and close now, reading nothing more
      // (the decoder refused it by its length, so none of it was buffered).
      this.#deaf = true;
      this.emit('protocolError', err as AmixError);
      hangUp(this.socket, err as AmixError);
      return;
    }
    const gated = this.#highWater !== Infinity;
    for (const m of msgs) {
      if (this.#deaf || this.socket.destroyed) return;
      if (m instanceof AmixError || m.kind === 'request') {
        if (gated) {
          // Answered by #pump, as the peer takes replies; counted now, as it arrived.
          if (m instanceof AmixError) this.emit('protocolError', m);
          this.#inbox.push(m);
          continue;
        }
        if (m instanceof AmixError) {
          this.emit('protocolError', m);
          this.#write(errorFrame(m));
          continue;
        }
      }
      // Id 0 is no request's: the peer's word on the whole connection, kept as the reason if it then closes.
      if (m.kind === 'reply' && m.id === 0 && !m.ok) this.#peerReason = m.error;
      // Replies and events never wait (a held request may itself wait on a reply behind it).
      this.#rpc.receive(m);
    }
    if (!gated || this.#inbox.length === this.#inboxAt) return;
    this.#pump();
    // What the peer could not wait to be answered (a hello first in the batch has relaxed the limit already).
    if (this.#inbox.length - this.#inboxAt > this.#maxHeld) this.#tooMany();
  }

  #tooMany(): void {
    const err = new AmixError(
      ErrorCode.AMIX_ERR_PROTOCOL,
      `more than ${this.#maxHeld} requests waiting to be answered`,
      { details: { limit: this.#maxHeld } },
    );
    this.#inbox = [];
    this.#inboxAt = 0;
    this.#deaf = true;
    this.emit('protocolError', err);
    void this.refuse(err);
  }

  /**
   * Answer held requests while the peer takes replies. Replies are written
   * a little later than a request is handed over (handlers are async), so
   * at most {@link ANSWER_BATCH} go per turn before the unsent bytes are
   * looked at again; while requests wait, the socket is paused, so what is
   * held is at most what one read brought.
   */
  #pump(): void {
    let n = 0;
    while (this.#inboxAt < this.#inbox.length) {
      if (this.#closed !== null || this.#deaf || this.socket.destroyed) {
        this.#inbox = [];
        this.#inboxAt = 0;
        return;
      }
      if (this.socket.writableLength > this.#highWater || n === ANSWER_BATCH) {
        this.#hold();
        return;
      }
      n++;
      const m = this.#inbox[this.#inboxAt++]!;
      if (m instanceof AmixError) this.#write(errorFrame(m));
      else this.#rpc.receive(m);
    }
    this.#inbox = [];
    this.#inboxAt = 0;
    if (this.#held) {
      this.#held = false;
      this.socket.resume();
    }
  }

  #hold(): void {
    if (!this.#held) {
      this.#held = true;
      this.socket.pause();
    }
    if (this.#waiting) return;
    this.#waiting = true;
    // 'drain' comes only after a write the socket refused; below its own mark, look again next turn.
    if (this.socket.writableLength > this.#highWater && this.socket.writableNeedDrain)
      this.socket.once('drain', this.#pumpNow);
    else setImmediate(this.#pumpNow);
  }

  #finish(err: Error | undefined): void {
    if (this.#closed !== null) return;
    err = this.#refusal ?? err;
    this.#closed = err;
    this.#inbox = [];
    // Pending requests fail with the peer's stated reason when it gave one (e.g. AMIX_ERR_MAX_CONNECTIONS).
    this.#rpc.close(!this.#closedHere ? this.#peerReason : undefined);
    // The far side (or the kernel) ended it: the lifecycle is over, whoever started it.
    this.#life.settle(err);
    this.emit('close', err);
  }
}
