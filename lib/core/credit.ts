/**
 * Credit-based flow control, once, for every primitive that carries
 * messages over a stream it does not control (`queueConditionProcess`,
 * `zeromq`). The primitives keep only their wire encoding and socket I/O;
 * the state machines are here:
 *
 * - {@link CreditReceiver}: the receiving end's session table. Messages of a
 *   session are numbered from 0; the receiver grants an absolute `limit`
 *   (the sender may send numbers below it). The messages queued plus the
 *   credit outstanding in a *pool* never exceed `maxmsg`, and a pool is
 *   topped up only when that sum falls to `minmsg` (hysteresis), so the
 *   receiver's pending never exceeds `maxmsg` with a slow consumer. The pool
 *   is either the whole table (`shared`: one `maxmsg` for all senders, split
 *   among connected ones) or each session (`session`: `maxmsg` per sender,
 *   all of it promised up front). A shared pool is fair: each live session
 *   is held to its share of `maxmsg`, and credit an idle sender holds beyond
 *   its share is revoked when a new session needs it (in
 *   `creditReceiver.ts`).
 * - {@link SenderWindow}: the sending end's sequence numbers, acknowledged
 *   count, credit, the discard outbox and the blocked sends (a
 *   {@link WaitList}), with the `suspended`/`resumed` events.
 * - {@link ResendRing}: the frames of accepted, unacknowledged messages, kept
 *   to be written again after a reconnect and released as acknowledgements
 *   come in.
 *
 * Limits and acknowledgements are absolute numbers, so a repeated grant is
 * harmless. Numbers are JS numbers (exact to 2^53).
 *
 * @module
 */
import type { AmixError } from './errors.js';
import { discardWhenFull } from './discard.js';
import type { ChannelEvent, ChannelStats, DiscardPolicy } from './primitive.js';
import { WaitList } from './waitList.js';
export { MessageQueue, ResendRing } from './creditBuffers.js';
export { CreditReceiver, creditFields } from './creditReceiver.js';
export type { CreditPool, CreditReceiverOptions, CreditSession } from './creditReceiver.js';

// ---------------------------------------------------------------------------
// Sending end

/**
 * When a {@link SenderWindow} reports `suspended` and `resumed`:
 * `onRefusal` when a send finds no credit, resumed as soon as credit arrives;
 * `onExhaustion` as soon as an accepted message spends the last credit,
 * resumed once the queued sends are through and credit is left.
 */
export type SuspendStyle = 'onRefusal' | 'onExhaustion';

/** Options of a {@link SenderWindow}. */
export interface SenderWindowOptions {
  /** The discard policy at zero credit. */
  discard: DiscardPolicy;
  /** `dropOldest`: how many messages wait in the outbox at most. */
  outboxMax: number;
  /** Credit before the first grant (the receiver's promise, or 0). */
  limit: number;
  /** See {@link SuspendStyle}. */
  style: SuspendStyle;
  /** The end's counters (`sent`, `bytesSent`, `suspensions`, `dropped`, `rejected` are raised here). */
  stats: ChannelStats;
  /** Emit a channel event. */
  emit(e: ChannelEvent): void;
  /** Frame message number `seq` and keep it until acknowledged (called within credit). */
  write(data: Uint8Array, seq: number): void;
  /** The `AMIX_ERR_QUEUE_FULL` error for `reject`. */
  queueFull(): AmixError;
}

/**
 * The sending end's flow-control state: numbers `[acked, seq)` are
 * accepted and unacknowledged; numbers below `limit` may be sent. A send
 * is accepted while there is credit and nothing older waits; otherwise the
 * discard policy decides ({@link discardWhenFull}), and `block` waits in
 * {@link waiters} until {@link pump} finds credit.
 *
 * @example
 * const w = new SenderWindow({ discard: 'block', outboxMax: 64, limit: 0, style: 'onRefusal', stats, emit, write, queueFull })
 * if (!w.trySend(msg)) await w.wait(msg, signal)
 * // a credit frame arrived:
 * w.ack(acked); w.credit(limit); w.pump()
 */
export class SenderWindow {
  /** Next message number to assign. */
  seq = 0;
  /** First message number not yet acknowledged. */
  acked = 0;
  /** Credit: numbers below it may be sent. */
  limit: number;
  /** Suspended by the application: sends wait, whatever the policy. */
  paused = false;
  /** Reported `suspended` for want of credit, not yet `resumed`. */
  suspended = false;
  /** `dropOldest`: accepted messages waiting for credit (copies). */
  readonly outbox: Uint8Array[] = [];
  /** Blocked sends, oldest first. */
  readonly waiters = new WaitList<Uint8Array, void>();
  readonly discard: DiscardPolicy;
  readonly outboxMax: number;
  readonly stats: ChannelStats;
  readonly emit: (e: ChannelEvent) => void;
  readonly queueFull: () => AmixError;
  readonly #write: (data: Uint8Array, seq: number) => void;
  readonly #eager: boolean;

  constructor(o: SenderWindowOptions) {
    this.discard = o.discard;
    this.outboxMax = o.outboxMax;
    this.limit = o.limit;
    this.stats = o.stats;
    this.emit = o.emit;
    this.queueFull = o.queueFull;
    this.#write = o.write;
    this.#eager = o.style === 'onExhaustion';
  }

  /** Messages that may still be sent (the credit left). */
  get available(): number {
    return this.limit - this.seq;
  }

  /** Accepted messages not yet acknowledged. */
  get unacknowledged(): number {
    return this.seq - this.acked;
  }

  /**
   * The synchronous part of a send: true when accepted or dealt with by the
   * policy, false when it must wait (paused, older sends waiting, or no
   * credit under `block`). Throws `AMIX_ERR_QUEUE_FULL` under `reject`.
   */
  trySend(data: Uint8Array): boolean {
    // Behind a waiting send a message waits too, whatever the policy: the order of sends is kept.
    if (this.paused || this.waiters.length > 0) return false;
    if (this.seq < this.limit && this.outbox.length === 0) {
      this.#accept(data);
      return true;
    }
    if (!this.#eager) this.#suspend();
    return discardWhenFull(this.discard, data, this);
  }

  /**
   * The hot path of a send, without the write callback: when a message of
   * `bytes` can be accepted at once (not paused, nothing older waiting,
   * credit left), give it its number and count it; the caller frames it
   * under that number and then calls {@link admitted}. -1 when it cannot:
   * call {@link trySend}, which applies the policy. One small method that
   * V8 inlines into the primitive's send, where a callback per message cost
   * the zeromq row about a tenth of its throughput.
   */
  admit(bytes: number): number {
    if (this.paused || this.seq >= this.limit || this.outbox.length > 0 || this.waiters.length > 0) return -1;
    this.stats.sent++;
    this.stats.bytesSent += bytes;
    return this.seq++;
  }

  /** After framing an {@link admit}ted message: report the last credit spent (`onExhaustion`). */
  admitted(): void {
    if (this.#eager && this.seq >= this.limit) this.#suspend();
  }

  /** Wait (after {@link trySend} said false) until {@link pump} accepts `data`; abortable. */
  wait(data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    return this.waiters.wait(data, { signal, what: 'send' });
  }

  /** Raise `acked` to `n`. True when it moved (the caller releases what is now acknowledged). */
  ack(n: number): boolean {
    if (n <= this.acked) return false;
    this.acked = n;
    return true;
  }

  /** Credit arrived: `limit` replaces the old one when `exact` (a handshake), else only raises it. Call {@link pump} next. */
  credit(limit: number, exact = false): void {
    if (exact || limit > this.limit) this.limit = limit;
    if (!this.#eager && this.suspended && this.seq < this.limit) this.#resume();
  }

  /** Accept the outbox, then blocked sends, as far as credit goes; report suspension or resumption. */
  pump(): void {
    if (!this.paused) {
      while (this.outbox.length > 0 && this.seq < this.limit) this.#accept(this.outbox.shift()!);
      while (this.waiters.length > 0 && this.seq < this.limit && this.outbox.length === 0) {
        const w = this.waiters.shift()!;
        this.#accept(w.value);
        w.resolve();
      }
      if (!this.#eager && this.seq >= this.limit && (this.waiters.length > 0 || this.outbox.length > 0))
        this.#suspend();
    }
    if (this.#eager && this.suspended && this.seq < this.limit) this.#resume();
  }

  /** Fail every blocked send with `err` and forget the outbox; returns how many outbox messages were dropped. */
  close(err: Error): number {
    this.waiters.rejectAll(err);
    const n = this.outbox.length;
    this.outbox.length = 0;
    return n;
  }

  #accept(data: Uint8Array): void {
    this.#write(data, this.seq);
    this.seq++;
    this.stats.sent++;
    this.stats.bytesSent += data.length;
    if (this.#eager && this.seq >= this.limit) this.#suspend();
  }

  #pending(): number {
    // onExhaustion counts what waits here too; onRefusal only what the receiver has not acknowledged.
    return this.#eager ? this.seq - this.acked + this.outbox.length + this.waiters.length : this.seq - this.acked;
  }

  #suspend(): void {
    if (this.suspended) return;
    this.suspended = true;
    this.stats.suspensions++;
    this.emit({ type: 'suspended', pending: this.#pending() });
  }

  #resume(): void {
    this.suspended = false;
    this.emit({ type: 'resumed', pending: this.#pending() });
  }
}
