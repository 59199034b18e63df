/**
 * Zero-copy receive on a queueConditionThread ring: messages read as views
 * into the ring under the receiving end's *lease*. Reading a message as a
 * view moves only the consumer's private read position (`pos`); the shared
 * `tail`, which tells the producer what space it may reuse, stays where it
 * was (`published`). So the producer cannot overwrite a leased message:
 * its room check (`fits`, producer.ts) counts from `tail`. The lease ends at
 * `release` (or a copying receive): the bytes of those views may change from
 * then on. `tail` then moves past them by the coalesced release of
 * consumer.ts (`settle`: when the receiver catches up, per bound, or at the
 * end of the thread's burst), never before the lease ends.
 *
 * A payload that runs past the end of the data area (the producer splits it
 * in two) is copied out instead (once per lap of the ring at most), and so
 * is every message on a `dropOldest` ring, whose producer may reclaim the
 * oldest record at any time: a copy is valid for ever, so it honours the
 * lease's promise too.
 *
 * These functions extend the lease; the `Channel` wrapper releases it before
 * each receive, so there a view lasts until the next receive or `release()`.
 *
 * @module
 */
import type { ReceiveOptions } from '../../lib/core/primitive.js';
import * as header from './header.js';
import type { ThreadHandle } from './handle.js';
import * as handle from './handle.js';
import * as producer from './producer.js';
import * as consumer from './consumer.js';
import * as wait from './wait.js';

// Own constants, not imported bindings, on the hot path (see header.ts).
const { CYCLE_RECORD, Header, RECORD_HEADER, SPIN_BOUND } = header;
const { closedError } = handle;
const { recordBytes } = producer;
const { attemptReceive, copyOut, receiveEach, recordError, releaseLease, stillEmpty, walkBatch } = consumer;
const { abortIfNeeded, canReceive, enqueue, park } = wait;

/** The payload of the record at ring offset `at`: a view into the ring, or a copy when it wraps around the end. */
function viewOf(h: ThreadHandle, at: number, len: number): Uint8Array {
  const start = (at + RECORD_HEADER) & h.mask;
  if (start + len > h.capacity) return copyOut(h, at, len);
  return new Uint8Array(h.sab, Header.BYTE_DATA + start, len);
}

/** One attempt: the next message under the lease, or undefined when the ring is empty (not on dropOldest rings). */
export function attemptView(h: ThreadHandle, maxBytes: number): Uint8Array | undefined {
  const { i32, mask } = h;
  for (;;) {
    const tail = h.pos;
    if (((h.otherPos - tail) | 0) <= 0 && stillEmpty(h, tail)) return undefined;
    const at = tail & mask;
    const len = i32[h.dataI32 + (at >> 2)]!;
    if (len === CYCLE_RECORD) {
      // Skipped under the lease: its space goes back with the next release.
      h.pos = (tail + RECORD_HEADER) | 0;
      h.viewing = true;
      h.f64[Header.F64_CYCLES]! += 1;
      continue;
    }
    if (len < 0 || len > h.maxMessageBytes || len > maxBytes) throw recordError(h, len, at, maxBytes);
    const out = viewOf(h, at, len);
    h.pos = (tail + recordBytes(len)) | 0;
    h.leased++;
    h.viewing = true;
    h.f64[Header.F64_RECEIVED]! += 1;
    h.f64[Header.F64_BYTES_RECEIVED]! += len;
    return out;
  }
}

/**
 * Method: `tryReceiveView(handle, maxBytes)`. The next message if one is
 * ready now, as a view into the ring under the end's lease (see the module
 * documentation), else undefined.
 */
export function tryReceiveView(h: ThreadHandle, maxBytes: number): Uint8Array | undefined {
  if (h.queued > 0) return undefined;
  if (h.destroyed) throw closedError(h);
  if (h.discard === 'dropOldest') return attemptReceive(h, maxBytes);
  return attemptView(h, maxBytes);
}

/**
 * Method: `tryReceiveManyView(handle, maxBytes, maxCount)`. Up to
 * `maxCount` messages ready now, as views under the end's lease, in order.
 * A message over `maxBytes` ends the batch (it stays queued); first in the
 * batch, it throws `AMIX_ERR_BUFFER_TOO_SMALL`.
 */
export function tryReceiveManyView(h: ThreadHandle, maxBytes: number, maxCount: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (h.queued > 0) return out;
  if (h.destroyed) throw closedError(h);
  if (h.discard === 'dropOldest') return receiveEach(h, maxBytes, maxCount, out);
  const walk = walkBatch(h, maxBytes, maxCount, viewOf, out);
  if (walk.bad) {
    const at = h.pos & h.mask;
    throw recordError(h, h.i32[h.dataI32 + (at >> 2)]!, at, maxBytes);
  }
  // The views hold their space: only the private position moves; the shared tail waits for the release.
  if (walk.tail !== h.pos) h.viewing = true;
  h.pos = walk.tail;
  h.leased += out.length;
  const f64 = h.f64;
  f64[Header.F64_RECEIVED]! += out.length;
  f64[Header.F64_BYTES_RECEIVED]! += walk.bytes;
  f64[Header.F64_CYCLES]! += walk.cycles;
  return out;
}

/**
 * Method: `receiveView(handle, options)`. The next message as a view under
 * the end's lease, waiting for it by the idle strategy as `receive` does.
 * Rejects like `receive`. Waiting with a lease that holds most of the ring
 * can keep the sender from writing the message waited for: release first
 * (the `Channel` wrapper always does). Not for `dropOldest` rings (the
 * primitive object gives those a copying `receive`).
 */
export async function receiveView(h: ThreadHandle, options: ReceiveOptions): Promise<Uint8Array> {
  const { maxBytes, signal } = options;
  abortIfNeeded(signal, 'receive');
  if (h.queued === 0) {
    if (h.destroyed) throw closedError(h);
    const m = attemptView(h, maxBytes);
    if (m !== undefined) return m;
    if (h.idle === 'spin' || h.idle === 'spinThenBlock') {
      for (let i = 0; i < SPIN_BOUND; i++) {
        if (canReceive(h)) {
          const r = attemptView(h, maxBytes);
          if (r !== undefined) return r;
        }
      }
    }
  }
  return enqueue(h, async () => {
    for (;;) {
      abortIfNeeded(signal, 'receive');
      // As in the copying receive: what the ring holds is taken before a destroy is reported.
      const m = attemptView(h, maxBytes);
      if (m !== undefined) return m;
      if (h.destroyed) throw closedError(h);
      await park(h, true, () => h.destroyed !== null || signal?.aborted === true || canReceive(h), signal);
    }
  });
}

/** Method: `release(handle)`. End the receiving end's lease: the views taken under it may be overwritten from now on. Idempotent; nothing on a sending end. */
export function release(h: ThreadHandle): void {
  if (h.role === 'receive') releaseLease(h);
}
