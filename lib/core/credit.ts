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
 *   all of it promised up front). {@link CreditReceiver.topUp} is the one
 *   grant decision (where a fairness rule goes).
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

// ---------------------------------------------------------------------------
// Receiving end

/** What the credit engine knows of one sender's session at the receiving end. */
export interface CreditSession {
  /** The session's identity (as the wire carries it, in some printable form). */
  readonly key: string;
  /** Next message number expected. */
  next: number;
  /** Messages of this session the application has consumed. */
  consumed: number;
  /** Absolute credit limit granted: the sender may send numbers below it. */
  limit: number;
  /** Messages of this session received and not yet consumed. */
  queued: number;
  /** `consumed` as last reported to the sender. */
  ackSent: number;
  /** Bound to a live connection: takes part in grants of a shared pool. */
  live: boolean;
  /** Its window ran out (session pools): the next grant reports it as resumed. */
  starved: boolean;
}

/** The fields of a new {@link CreditSession} starting at message `start` (spread into the primitive's own session). */
export function creditFields(key: string, start: number): CreditSession {
  return { key, next: start, consumed: start, limit: start, queued: 0, ackSent: start, live: false, starved: false };
}

/** Which messages share one `maxmsg`: every session of the table, or each session on its own. */
export type CreditPool = 'shared' | 'session';

/** Options of a {@link CreditReceiver}. */
export interface CreditReceiverOptions<S extends CreditSession> {
  /** Queued plus outstanding credit never exceeds it (per pool). */
  maxmsg: number;
  /** A pool is topped up when its queued plus outstanding falls to it. */
  minmsg: number;
  /** See {@link CreditPool}. */
  pool: CreditPool;
  /** At most this many sessions; opening one more forgets an idle one (nothing queued). Default unlimited. */
  maxSessions?: number;
  /**
   * Tell `s`'s sender its new limit and acknowledgement (the wire's credit
   * frame). `resumed` is true when its window had run out.
   */
  onGrant(s: S, resumed: boolean): void;
}

/**
 * The receiving end's session table and credit accounting. The primitive
 * reports what happens on the wire (a session opened or bound to a
 * connection, a message admitted, one consumed, a connection lost) and writes
 * a credit frame whenever `onGrant` is called.
 *
 * @example
 * const credit = new CreditReceiver({ maxmsg: 64, minmsg: 32, pool: 'shared', onGrant: (s) => writeCredit(s) })
 * if (!credit.admit(s)) throw protocolError()   // a data frame arrived
 * credit.consume(s)                             // the application took it
 */
export class CreditReceiver<S extends CreditSession> {
  /** The sessions by key, in the order they were opened. */
  readonly sessions = new Map<string, S>();
  readonly maxmsg: number;
  readonly minmsg: number;
  readonly pool: CreditPool;
  /** Messages received and not yet consumed, over all sessions. */
  queued = 0;
  /** Shared pool: credit granted and not yet used, over all sessions. */
  outstanding = 0;
  /** No credit is granted while suspended (senders stop once their credit is spent). */
  suspended = false;
  /** Nothing is granted after close. */
  closed = false;
  readonly #maxSessions: number;
  readonly #onGrant: (s: S, resumed: boolean) => void;

  constructor(o: CreditReceiverOptions<S>) {
    this.maxmsg = o.maxmsg;
    this.minmsg = o.minmsg;
    this.pool = o.pool;
    this.#maxSessions = o.maxSessions ?? Infinity;
    this.#onGrant = o.onGrant;
  }

  /** The session with this key, if known. */
  get(key: string): S | undefined {
    return this.sessions.get(key);
  }

  /**
   * Add a new session (built with {@link creditFields}). A session pool
   * grants it its whole window at once: the address promised it, so the
   * first messages need no round trip.
   */
  open(s: S): S {
    if (this.sessions.size >= this.#maxSessions) {
      for (const [k, old] of this.sessions) {
        if (old.queued === 0) {
          this.sessions.delete(k);
          break;
        }
      }
    }
    if (this.pool === 'session') {
      s.limit = s.consumed + this.maxmsg;
      s.live = true;
    }
    this.sessions.set(s.key, s);
    return s;
  }

  /** A (re)connected session: a shared pool gives it all its free credit now (unless suspended). */
  bind(s: S): void {
    if (this.pool === 'shared' && !this.suspended) {
      const free = this.maxmsg - this.queued - this.outstanding;
      if (free > 0) {
        s.limit += free;
        this.outstanding += free;
      }
    }
    s.live = true;
    s.ackSent = s.consumed;
  }

  /**
   * The sender vouches that everything below `firstUnacked` was acknowledged;
   * that is news only when this end restarted (session pools, where the
   * acknowledgement is what was received).
   */
  resync(s: S, firstUnacked: number): void {
    if (firstUnacked <= s.next) return;
    s.next = firstUnacked;
    s.consumed = Math.max(s.consumed, firstUnacked - s.queued);
    s.limit = Math.max(s.limit, s.consumed + this.maxmsg);
  }

  /** Message number `s.next` arrived. False, and nothing counted, when it is beyond the credit granted. */
  admit(s: S): boolean {
    if (s.next >= s.limit) return false;
    s.next++;
    s.queued++;
    this.queued++;
    if (this.pool === 'shared') this.outstanding--;
    return true;
  }

  /** True once when a session's window has just run out (session pools report it as the receiver's `suspended`). */
  exhausted(s: S): boolean {
    if (s.next < s.limit || s.starved) return false;
    s.starved = true;
    return true;
  }

  /** The application took one message of `s`. True when the grant threshold was reached (credit was offered). */
  consume(s: S): boolean {
    s.queued--;
    s.consumed++;
    this.queued--;
    return this.#decide(s);
  }

  /**
   * The connection of `s` ended without ending the session: its unused
   * credit returns to the pool now (a dead sender must not starve the next
   * one); it gets credit again when it binds.
   */
  unbind(s: S): void {
    s.live = false;
    this.#returnCredit(s);
    if (!this.closed) this.#decide(s);
  }

  /** The session is over: give back its credit and forget it. */
  end(s: S): void {
    s.live = false;
    this.#returnCredit(s);
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    this.#decide(s);
  }

  /** Stop granting. */
  suspend(): void {
    this.suspended = true;
  }

  /** Grant again, at once where a pool is at or below `minmsg`. */
  resume(): void {
    this.suspended = false;
    if (this.pool === 'shared') this.#decide(undefined);
    else for (const s of this.sessions.values()) this.#decide(s);
  }

  /** Report consumption to every live sender told less than it has consumed (an idle receiver's periodic ack). */
  acknowledge(): void {
    for (const s of this.sessions.values()) {
      if (s.live && s.consumed !== s.ackSent) {
        s.ackSent = s.consumed;
        this.#onGrant(s, false);
      }
    }
  }

  /**
   * The grant decision, the one place it is made. A pool whose queued
   * messages plus outstanding credit (`used`) has fallen to `minmsg` is
   * topped up to `maxmsg`, the free credit split evenly among its live
   * sessions in the order they were opened (the first ones get the
   * remainder). A session told nothing new is skipped. Credit already granted
   * to a live, idle sender is not revoked, so it can delay another sender of
   * a shared pool until the receiver consumes. Returns false when the pool is
   * above `minmsg` (nothing offered).
   */
  topUp(used: number, live: readonly S[]): boolean {
    if (used > this.minmsg) return false;
    const free = this.maxmsg - used;
    if (live.length === 0) return true;
    const share = free > 0 ? Math.floor(free / live.length) : 0;
    let extra = free > 0 ? free - share * live.length : 0;
    for (const s of live) {
      const add = share + (extra > 0 ? 1 : 0);
      if (extra > 0) extra--;
      if (add === 0 && s.consumed === s.ackSent) continue;
      s.limit += add;
      if (this.pool === 'shared') this.outstanding += add;
      const resumed = s.starved;
      s.starved = false;
      s.ackSent = s.consumed;
      this.#onGrant(s, resumed);
    }
    return true;
  }

  #decide(s: S | undefined): boolean {
    if (this.suspended || this.closed) return false;
    // This runs once per message consumed: test the threshold before building
    // the list of sessions to top up (topUp tests it again, for its other callers).
    if (this.pool === 'session') {
      // A session is its own pool: what it may still send plus what waits here.
      if (s === undefined || s.limit - s.consumed > this.minmsg) return false;
      return this.topUp(s.limit - s.consumed, [s]);
    }
    const used = this.queued + this.outstanding;
    if (used > this.minmsg) return false;
    const live: S[] = [];
    for (const x of this.sessions.values()) if (x.live) live.push(x);
    return this.topUp(used, live);
  }

  #returnCredit(s: S): void {
    if (this.pool === 'shared') {
      this.outstanding -= s.limit - s.next;
      s.limit = s.next;
    }
  }
}

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
