/**
 * {@link ControlConnection}: one control-protocol connection over a socket,
 * used by both amixd and its clients. Either side sends requests and gets
 * one reply each; incoming requests go to a handler; events are one-way.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { AmixError, ErrorCode } from '../core/errors.js';
import { ControlDecoder, encodeControl, type ControlMessage } from './protocol.js';

/** Answers a request: resolve with the result, or reject with an AmixError. */
export type RequestHandler = (op: string, args: Record<string, unknown>) => Promise<unknown> | unknown;

/**
 * A control connection. Events: `'event'` ({ type, body }), `'close'` (Error | undefined),
 * `'protocolError'` (AmixError) for each malformed frame that was answered.
 */
export class ControlConnection extends EventEmitter {
  readonly socket: Socket;
  #handler: RequestHandler;
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout }
  >();
  readonly #decoder = new ControlDecoder();
  #closed: Error | undefined | null = null;

  constructor(
    socket: Socket,
    handler: RequestHandler = () => {
      throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, 'this side takes no requests');
    },
  ) {
    super();
    this.socket = socket;
    this.#handler = handler;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#finish(err));
    socket.on('close', () => this.#finish(undefined));
  }

  /** True until the socket closes. */
  get isOpen(): boolean {
    return this.#closed === null;
  }

  /** Replace the request handler. */
  setHandler(handler: RequestHandler): void {
    this.#handler = handler;
  }

  /** Send a request; rejects with the peer's error, `AMIX_ERR_TIMEOUT`, or `AMIX_ERR_DAEMON_UNAVAILABLE` if the connection closes first. */
  request<T = unknown>(op: string, args: Record<string, unknown> = {}, timeoutMs = 0): Promise<T> {
    if (this.#closed !== null) return Promise.reject(this.#closedError(op));
    const id = this.#nextId++;
    if (this.#nextId > 0xffffffff) this.#nextId = 1;
    return new Promise<T>((resolve, reject) => {
      const entry: { resolve: (v: unknown) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } = {
        resolve: resolve as (v: unknown) => void,
        reject,
      };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(
            new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `no reply to ${op} within ${timeoutMs} ms`, { details: { op } }),
          );
        }, timeoutMs);
      }
      this.#pending.set(id, entry);
      this.socket.write(encodeControl({ kind: 'request', id, op, args }));
    });
  }

  /** Send a one-way event. Dropped silently if the connection is closed. */
  event(type: string, body: Record<string, unknown> = {}): void {
    if (this.#closed === null) this.socket.write(encodeControl({ kind: 'event', type, body }));
  }

  /** Close the socket (after pending writes). */
  close(): void {
    this.socket.end();
  }

  /** Close at once. */
  destroy(err?: Error): void {
    this.socket.destroy(err);
  }

  #onData(chunk: Buffer): void {
    let msgs: Array<ControlMessage | AmixError>;
    try {
      msgs = this.#decoder.push(chunk);
    } catch (err) {
      // An oversized length cannot be skipped: answer once, then close.
      this.emit('protocolError', err);
      this.socket.end(encodeControl({ kind: 'reply', id: 0, ok: false, error: err as AmixError }));
      return;
    }
    for (const m of msgs) {
      if (m instanceof AmixError) {
        this.emit('protocolError', m);
        this.socket.write(encodeControl({ kind: 'reply', id: 0, ok: false, error: m }));
        continue;
      }
      if (m.kind === 'request') void this.#answer(m.id, m.op, m.args);
      else if (m.kind === 'reply') {
        const p = this.#pending.get(m.id);
        if (!p) continue;
        this.#pending.delete(m.id);
        if (p.timer) clearTimeout(p.timer);
        if (m.ok) p.resolve(m.result);
        else p.reject(m.error);
      } else this.emit('event', { type: m.type, body: m.body });
    }
  }

  async #answer(id: number, op: string, args: Record<string, unknown>): Promise<void> {
    let reply: ControlMessage;
    try {
      reply = { kind: 'reply', id, ok: true, result: await this.#handler(op, args) };
    } catch (err) {
      const error =
        err instanceof AmixError
          ? err
          : new AmixError(ErrorCode.AMIX_ERR_INTERNAL, (err as Error)?.message ?? String(err), { cause: err });
      reply = { kind: 'reply', id, ok: false, error };
    }
    if (this.#closed === null) this.socket.write(encodeControl(reply));
  }

  #finish(err: Error | undefined): void {
    if (this.#closed !== null) return;
    this.#closed = err;
    for (const [, p] of this.#pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(this.#closedError('request'));
    }
    this.#pending.clear();
    this.emit('close', err);
  }

  #closedError(op: string): AmixError {
    return new AmixError(
      ErrorCode.AMIX_ERR_DAEMON_UNAVAILABLE,
      `control connection closed before ${op} was answered`,
      this.#closed ? { cause: this.#closed } : {},
    );
  }
}
