/**
 * Waiting on a queueConditionThread ring by the end's idle strategy
 * (`spin`, `yield`, `block`, `spinThenBlock`): readiness checks, parking on
 * the shared wake words with `Atomics.wait`/`Atomics.waitAsync`, and the
 * per-end queue that keeps async operations in call order.
 *
 * @module
 */
import { isMainThread } from 'node:worker_threads';
import { abortError } from '../../lib/core/errors.js';
import * as header from './header.js';
import type { ThreadHandle } from './handle.js';
import * as handle from './handle.js';
import * as producer from './producer.js';

// Own constants, not imported bindings, on the hot path (see header.ts).
const { BLOCK_SLICE_MS, Header, SPIN_BOUND, SPIN_CHUNK } = header;
const { wake } = handle;
const { endOfBurst, fits, pendingAtMark } = producer;

/** `Atomics.waitAsync` (ES2024; present in Node 20, absent from this project's `lib`). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      index: number,
      value: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** True when a receive would find a record now. */
export function canReceive(h: ThreadHandle): boolean {
  const tail = h.discard === 'dropOldest' ? Atomics.load(h.i32, Header.TAIL) : h.pos;
  return Atomics.load(h.i32, Header.HEAD) !== tail;
}

/** True when a blocked send may go ahead now (or must fail: closed). */
export function canSend(h: ThreadHandle, need: number, isMessage: boolean): boolean {
  const { i32 } = h;
  if (Atomics.load(i32, Header.CLOSED) !== 0) return true;
  if (Atomics.load(i32, Header.PAUSED) !== 0) return false;
  if (h.suspendedSeen && Atomics.load(i32, Header.SUSPENDED) !== 0 && h.discard === 'block') return false;
  return fits(h, need) && !(isMessage && pendingAtMark(h));
}

/**
 * Wait, by the end's idle strategy, until `ready()` may have become true
 * (the caller re-checks). `rx` picks the receiver's wake word and waiting
 * counter, otherwise the sender's.
 *
 * Not a `WaitList` (lib/core/waitList.ts): the waiters of a ring do not sit in a list on our
 * side but on the shared wake word (`Atomics.wait`/`waitAsync`), where the
 * other thread's `Atomics.notify` finds them, and an abort here only ends the
 * sleep (the caller re-checks the signal and throws) instead of rejecting a
 * queued waiter. A WaitList entry (closure, promise, list splice) per park
 * would add work to every blocked send and receive for nothing; call order
 * across waits is kept by {@link enqueue}.
 */
export async function park(
  h: ThreadHandle,
  rx: boolean,
  ready: () => boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  // About to wait: the end of this thread's send burst. What its senders
  // hold must be visible first (the other side may need it to answer, and a
  // worker's Atomics.wait below would hold the turn's end back by a slice).
  endOfBurst();
  const idle = h.idle;
  if (idle === 'spin' || idle === 'spinThenBlock') {
    const limit = idle === 'spin' ? SPIN_CHUNK : SPIN_BOUND;
    for (let i = 0; i < limit; i++) if (ready()) return;
    if (idle === 'spin') {
      await immediate();
      return;
    }
  } else if (idle === 'yield') {
    await immediate();
    return;
  }
  const { i32 } = h;
  const wakeWord = rx ? Header.RX_WAKE : Header.TX_WAKE;
  const waitingWord = rx ? Header.RX_WAITING : Header.TX_WAITING;
  const seen = Atomics.load(i32, wakeWord);
  // Announce first, then re-check: pairs with the other side's publish-then-
  // check-flag, so a wake-up cannot fall between our check and our sleep.
  Atomics.add(i32, waitingWord, 1);
  try {
    if (ready()) return;
    if (isMainThread) {
      const r = waitAsync(i32, wakeWord, seen);
      if (!r.async) return;
      if (!signal) {
        await r.value;
        return;
      }
      if (signal.aborted) return;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          // Release the abandoned waitAsync now rather than at the next wake-up.
          wake(i32, wakeWord);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        void r.value.then(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    } else {
      // A worker may sleep, but in slices, so that its own timers, aborts
      // and a destroy of this end still get a turn of the event loop.
      if (Atomics.wait(i32, wakeWord, seen, BLOCK_SLICE_MS) === 'timed-out') await immediate();
    }
  } finally {
    Atomics.sub(i32, waitingWord, 1);
  }
}

/** Run `op` after the async operations already queued on this end, so they complete in call order. */
export function enqueue<T>(h: ThreadHandle, op: () => Promise<T>): Promise<T> {
  h.queued++;
  const prev = h.queue;
  const run = prev ? prev.then(op, op) : op();
  const settled = run
    .then(
      () => undefined,
      () => undefined,
    )
    .then(() => {
      if (--h.queued === 0) h.queue = null;
    });
  h.queue = settled;
  return run;
}

/** Throw `AMIX_ERR_ABORTED` naming `what` if `signal` has aborted. */
export function abortIfNeeded(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}
