/**
 * One home for every abortable wait: a blocked send, receive, request or
 * cycle waits on a {@link WaitList} until it is served, and an abort or a
 * timeout takes it off the list and rejects it (`AMIX_ERR_ABORTED` or
 * `AMIX_ERR_TIMEOUT`). Closing a list rejects every waiter with one reason.
 *
 * @module
 */
import { AmixError, ErrorCode, abortError } from './errors.js';

/** One waiter taken off a {@link WaitList}: what it waits with, and how to settle it. */
export interface Waiter<V, R> {
  /** What the waiter brought (the message to send, the receive's byte limit...). */
  readonly value: V;
  /** Settle the waiter with its result. */
  resolve(result: R): void;
  /** Settle the waiter with an error. */
  reject(err: Error): void;
}

/** What {@link WaitList.wait} may be told beyond the value. */
export interface WaitOptions {
  /** Aborting it takes the waiter off the list and rejects it with `AMIX_ERR_ABORTED`. */
  signal?: AbortSignal | undefined;
  /** Names the operation in the abort and timeout errors. Default `'operation'`. */
  what?: string;
  /** Reject with `AMIX_ERR_TIMEOUT` after this many ms; 0 (default) waits for ever. */
  timeoutMs?: number;
  /** `details` of the timeout error. */
  details?: Record<string, unknown>;
}

/**
 * One waiter. A class, not closures: a blocked send takes one of these per
 * message under load, so it costs one object and the promise, and its
 * methods live on the prototype.
 */
class Entry<V, R> implements Waiter<V, R> {
  /** Still on the list (shift, take and the *All methods take it off before settling). */
  queued = true;
  done = false;
  timer: NodeJS.Timeout | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly list: Array<Entry<V, R>>,
    readonly value: V,
    readonly settleOk: (r: R) => void,
    readonly settleErr: (e: Error) => void,
    readonly signal: AbortSignal | undefined,
  ) {}

  resolve(r: R): void {
    if (this.settle()) this.settleOk(r);
  }

  reject(e: Error): void {
    if (this.settle()) this.settleErr(e);
  }

  /** First settlement wins: leave the list, drop the timer and the abort listener. */
  settle(): boolean {
    if (this.done) return false;
    this.done = true;
    if (this.queued) {
      // Only an abort or a timeout settles a waiter still on the list.
      this.queued = false;
      const i = this.list.indexOf(this);
      if (i >= 0) this.list.splice(i, 1);
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal!.removeEventListener('abort', this.onAbort);
    return true;
  }
}

/**
 * A first-in, first-out list of waiters. Each waiter is served at most once:
 * whichever of serve, abort, timeout or close comes first settles it and
 * removes its abort listener and timer.
 *
 * @example
 * const readers = new WaitList<number, Uint8Array>();
 * const next = readers.wait(maxBytes, { signal, what: 'receive' });
 * // elsewhere, when a message arrives:
 * readers.shift()?.resolve(message);
 */
export class WaitList<V = void, R = void> {
  // A plain array: lists are short (one entry per blocked caller), and
  // splice on abort keeps the order of those left.
  readonly #items: Array<Entry<V, R>> = [];

  /** How many are waiting. */
  get length(): number {
    return this.#items.length;
  }

  /** The oldest waiter's value, without taking it. */
  peek(): V | undefined {
    return this.#items[0]?.value;
  }

  /** The waiters' values, oldest first. */
  values(): V[] {
    return this.#items.map((e) => e.value);
  }

  /** Wait at the end of the list until served, aborted, timed out or the list is closed. */
  wait(value: V, options: WaitOptions = {}): Promise<R> {
    const { signal, what = 'operation', timeoutMs = 0 } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    return new Promise<R>((resolve, reject) => {
      const entry = new Entry<V, R>(this.#items, value, resolve, reject, signal);
      this.#items.push(entry);
      if (signal) {
        entry.onAbort = () => entry.reject(abortError(signal, what));
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      if (timeoutMs > 0) {
        entry.timer = setTimeout(
          () =>
            entry.reject(
              new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `${what} did not finish within ${timeoutMs} ms`, {
                details: options.details ?? { timeoutMs },
              }),
            ),
          timeoutMs,
        );
      }
    });
  }

  /** Take the oldest waiter off the list; settle it with the returned handle. */
  shift(): Waiter<V, R> | undefined {
    const e = this.#items.shift();
    // Off the list now (not when settled), so that settling it need not search
    // the list, and an abort arriving between shift and resolve settles it once.
    if (e) e.queued = false;
    return e;
  }

  /**
   * Take off the list every waiter whose value matches, oldest first (for
   * waits answered by a token or a sequence number rather than in turn).
   */
  take(match: (value: V) => boolean): Array<Waiter<V, R>> {
    const out: Array<Waiter<V, R>> = [];
    for (let i = 0; i < this.#items.length;) {
      const e = this.#items[i]!;
      if (match(e.value)) {
        this.#items.splice(i, 1);
        e.queued = false;
        out.push(e);
      } else i++;
    }
    return out;
  }

  /** Settle every waiter with `result` and empty the list (a gate opening for all). */
  resolveAll(result: R): void {
    for (const e of this.#drain()) e.resolve(result);
  }

  /** Reject every waiter with `err` and empty the list. */
  rejectAll(err: Error): void {
    for (const e of this.#drain()) e.reject(err);
  }

  /** Empty the list, every entry marked as off it. */
  #drain(): Array<Entry<V, R>> {
    const all = this.#items.splice(0);
    for (const e of all) e.queued = false;
    return all;
  }
}
