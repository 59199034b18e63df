/**
 * The consumer side of a queueConditionThread ring: reading records out
 * (small ones as fresh copies, larger ones into a slab), handing their space
 * back to the producer, and lifting the watermark suspension at `minmsg`.
 * Only the receiving end calls these.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../../lib/core/errors.js';
import * as header from './header.js';
import type { ThreadHandle } from './handle.js';
import * as handle from './handle.js';
import * as producer from './producer.js';

// Own constants, not imported bindings, on the hot path (see header.ts).
const { CYCLE_RECORD, Header, RECORD_HEADER, SLAB_BYTES, SLAB_MAX_MESSAGE, SLAB_MIN_MESSAGE } = header;
const { closedError, emit, wake } = handle;
const { endOfBurst, hold, recordBytes, setReleaseCommit } = producer;

/**
 * One attempt to receive: the next message, or undefined when the ring is
 * empty. Cycle records are consumed on the way and counted. Throws
 * `AMIX_ERR_BUFFER_TOO_SMALL` (message left queued).
 */
export function attemptReceive(h: ThreadHandle, maxBytes: number): Uint8Array | undefined {
  const { i32, mask } = h;
  const shared = h.discard === 'dropOldest';
  // A copying receive ends the lease of views taken before it (lease.ts).
  if (h.viewing) releaseLease(h);
  for (;;) {
    const tail = shared ? Atomics.load(i32, Header.TAIL) : h.pos;
    // Signed distance, not equality: with dropOldest the producer may have
    // moved `tail` past our cached head.
    if (((h.otherPos - tail) | 0) <= 0 && stillEmpty(h, tail)) return undefined;
    const at = tail & mask;
    const len = i32[h.dataI32 + (at >> 2)]!;
    if (len === CYCLE_RECORD) {
      if (shared) {
        if (!release(h, tail, RECORD_HEADER, false)) continue;
      } else {
        h.pos = (tail + RECORD_HEADER) | 0;
        settle(h);
      }
      h.f64[Header.F64_CYCLES]! += 1;
      continue;
    }
    if (len < 0 || len > h.maxMessageBytes || len > maxBytes) {
      // A producer's dropOldest can overwrite the record under us: only a
      // length read while `tail` still points at it is meaningful.
      if (shared && Atomics.load(i32, Header.TAIL) !== tail) continue;
      throw recordError(h, len, at, maxBytes);
    }
    const out = copyOut(h, at, len);
    if (shared) {
      if (!release(h, tail, recordBytes(len), true)) continue;
    } else {
      // Copied out: the space may go back, but the store of TAIL is coalesced (settle).
      h.pos = (tail + recordBytes(len)) | 0;
      h.leased++;
      settle(h);
    }
    h.f64[Header.F64_RECEIVED]! += 1;
    h.f64[Header.F64_BYTES_RECEIVED]! += len;
    return out;
  }
}

/** The error for a record that cannot be received: a corrupt length, or one over `maxBytes` (it stays queued). */
export function recordError(h: ThreadHandle, len: number, at: number, maxBytes: number): AmixError {
  if (len < 0 || len > h.maxMessageBytes) {
    return new AmixError(
      ErrorCode.AMIX_ERR_INTERNAL,
      `queueConditionThread ring is corrupt: record length ${len} at ${at}`,
    );
  }
  return new AmixError(
    ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL,
    `next message is ${len} bytes, the receiver accepts at most ${maxBytes}; it stays queued`,
    { details: { size: len, maxBytes } },
  );
}

/**
 * End the receiving end's lease (lease.ts): the space of every message read
 * as a view (and of cycle records skipped and messages copied out on the
 * way) since the last publication may go back to the producer, by the same
 * coalesced release as a copying receive's ({@link settle}): a view loop
 * stores TAIL once per bound, not once per message.
 */
export function releaseLease(h: ThreadHandle): void {
  h.viewing = false;
  if (h.pos !== h.published) settle(h);
}

/*
 * Coalesced release. After a copying receive (not on dropOldest rings, whose
 * ends move TAIL by compare-exchange), the consumer's position moves at once
 * but TAIL, the index the producer reuses space by, is stored only when the
 * consumer has caught up with the head it knows of (so an idle ring always
 * has everything released), every RELEASE_EVERY messages (on a ring with
 * a message limit, a quarter of the band between maxmsg and minmsg if that
 * is less, so the sender's count of pending messages stays close), every
 * `releaseBytes` (an eighth of the ring at most), at once while the
 * watermark suspension is set (so it lifts at exactly minmsg), and at the
 * latest at the end of this thread's burst (producer.ts endOfBurst: a
 * receive that finds nothing or waits, or the end of the turn), so a
 * receiver that stops receiving never keeps space from the sender.
 *
 * A sender parked for room is woken with the store (afterRelease), so it
 * wakes once per RELEASE_EVERY messages rather than once per message: a
 * full ring with a faster sender used to cost a futex wake-up per message
 * received (about a tenth of the receiver's time at 64 bytes). The producer
 * only reads TAIL when the ring looks full to it, so what the coalescing
 * saves besides is the seq-cst store (a fence) per message. SUSPENDED is a
 * plain read: a stale zero only delays the release to the next bound, where
 * commitTail's seq-cst store and the reads after it pair with the
 * producer's set-then-check in checkSuspend().
 */
export function settle(h: ThreadHandle): void {
  const { i32 } = h;
  if (
    h.pos === h.otherPos ||
    h.leased >= h.releaseEvery ||
    ((h.pos - h.published) | 0) >= h.releaseBytes ||
    i32[Header.SUSPENDED] !== 0
  )
    commitTail(h, h.pos, 0);
  else hold(h);
}

// Held releases are stored at the end of the thread's burst too (producer.ts endOfBurst).
setReleaseCommit((h) => commitTail(h, h.pos, 0));

/**
 * The cached head says the ring is empty at `tail` (the callers test that
 * inline, so a ring with records never makes this call): read the shared
 * head again and, if still empty, end this thread's send burst and look once
 * more (refreshAfterPublish). True when there is still nothing to read.
 */
export function stillEmpty(h: ThreadHandle, tail: number): boolean {
  h.otherPos = Atomics.load(h.i32, Header.HEAD);
  return ((h.otherPos - tail) | 0) <= 0 && !(endOfBurst() && refreshAfterPublish(h, tail));
}

/**
 * The ring looked empty, which ended this thread's send burst, and that
 * published records held by sending ends of this thread (producer.ts): the
 * sender may be on this very thread, so look again. True when a record is now there.
 */
export function refreshAfterPublish(h: ThreadHandle, tail: number): boolean {
  h.otherPos = Atomics.load(h.i32, Header.HEAD);
  return ((h.otherPos - tail) | 0) > 0;
}

/** Copy the payload of the record at ring offset `at` out of the ring. */
export function copyOut(h: ThreadHandle, at: number, len: number): Uint8Array {
  const mask = h.mask;
  const start = (at + RECORD_HEADER) & mask;
  const base = Header.BYTE_DATA;
  const contiguous = start + len <= h.capacity;
  let out: Uint8Array;
  if (len <= SLAB_MIN_MESSAGE && contiguous) {
    // slice() allocates and copies in one step; small typed arrays live on the JS heap.
    out = h.u8.slice(base + start, base + start + len);
  } else {
    // A fresh ArrayBuffer per message costs more than copying a few KiB:
    // larger messages are carved out of a slab (as Buffer's pool does).
    let target: Buffer;
    let off: number;
    if (len <= SLAB_MAX_MESSAGE) {
      if (h.slab === null || h.slabOff + len > SLAB_BYTES) {
        h.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        h.slabOff = 0;
      }
      target = h.slab;
      off = h.slabOff;
      h.slabOff = (off + len + 7) & ~7;
    } else {
      target = Buffer.allocUnsafeSlow(len);
      off = 0;
    }
    if (contiguous) {
      h.buf.copy(target, off, base + start, base + start + len);
    } else {
      const first = h.capacity - start;
      h.buf.copy(target, off, base + start, base + h.capacity);
      h.buf.copy(target, off + first, base, base + len - first);
    }
    out = new Uint8Array(target.buffer, target.byteOffset + off, len);
  }
  return out;
}

/** Give `need` bytes at `tail` back to the producer. False when a producer's dropOldest took the record first. */
export function release(h: ThreadHandle, tail: number, need: number, isMessage: boolean): boolean {
  const { i32 } = h;
  const next = (tail + need) | 0;
  if (h.discard === 'dropOldest') {
    if (Atomics.compareExchange(i32, Header.TAIL, tail, next) !== tail) return false;
    if (isMessage) Atomics.add(i32, Header.RSEQ, 1);
    h.pos = next;
    h.published = next;
    afterRelease(h);
    return true;
  }
  commitTail(h, next, isMessage ? 1 : 0);
  return true;
}

/**
 * Single-consumer release (not dropOldest): hand every byte up to `next`
 * back: `messages` messages besides the `leased` ones read (as views or
 * copies) since the last publication.
 */
export function commitTail(h: ThreadHandle, next: number, messages: number): void {
  const { i32 } = h;
  messages += h.leased;
  h.leased = 0;
  if (messages > 0) {
    h.seq = (h.seq + messages) | 0;
    i32[Header.RSEQ] = h.seq;
  }
  // Seq-cst: publishes RSEQ too, and orders the loads in afterRelease after it.
  Atomics.store(i32, Header.TAIL, next);
  h.pos = next;
  h.published = next;
  afterRelease(h);
}

/** After `tail` moved: lift the watermark suspension at minmsg, and wake a parked sender. */
export function afterRelease(h: ThreadHandle): void {
  const { i32 } = h;
  // Plain reads after the fence of the TAIL store, as in commitHead() (producer.ts).
  if (i32[Header.SUSPENDED] !== 0) {
    const pending = (Atomics.load(i32, Header.WSEQ) - Atomics.load(i32, Header.RSEQ)) | 0;
    if (pending <= h.minmsg && Atomics.compareExchange(i32, Header.SUSPENDED, 1, 0) === 1) {
      emit(h, { type: 'resumed', pending });
      wake(i32, Header.TX_WAKE);
      return;
    }
  }
  if (i32[Header.TX_WAITING] !== 0) wake(i32, Header.TX_WAKE);
}

/**
 * Method: `tryReceiveMany(handle, maxBytes, maxCount)`. Optional batching
 * fast path: up to `maxCount` messages ready now (possibly none), in order,
 * their space handed back to the sender with one store. A message over
 * `maxBytes` ends the batch (it stays queued); first in the batch, it
 * throws `AMIX_ERR_BUFFER_TOO_SMALL`.
 */
export function tryReceiveMany(h: ThreadHandle, maxBytes: number, maxCount: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (h.queued > 0) return out;
  if (h.destroyed) throw closedError(h);
  if (h.viewing) releaseLease(h);
  if (h.discard === 'dropOldest') return receiveEach(h, maxBytes, maxCount, out);
  const walk = walkBatch(h, maxBytes, maxCount, copyOut, out);
  if (walk.bad) {
    // Nothing taken yet: the single-message path raises the right error.
    const m = attemptReceive(h, maxBytes);
    if (m !== undefined) out.push(m);
  }
  const f64 = h.f64;
  if (walk.tail !== h.pos) {
    f64[Header.F64_RECEIVED]! += out.length;
    f64[Header.F64_BYTES_RECEIVED]! += walk.bytes;
    f64[Header.F64_CYCLES]! += walk.cycles;
    commitTail(h, walk.tail, out.length);
  }
  return out;
}

/** A `dropOldest` ring's batch: each record must be claimed by compare-exchange, so no batching of the release. */
export function receiveEach(h: ThreadHandle, maxBytes: number, maxCount: number, out: Uint8Array[]): Uint8Array[] {
  while (out.length < maxCount) {
    const m = attemptReceive(h, maxBytes);
    if (m === undefined) break;
    out.push(m);
  }
  return out;
}

/** Where a {@link walkBatch} stopped, and what it passed. */
export interface BatchWalk {
  /** The ring position after the last record taken or skipped (not yet stored). */
  tail: number;
  bytes: number;
  cycles: number;
  /** It stopped at a record it cannot take (too large, or damaged) before taking anything. */
  bad: boolean;
}

/**
 * The records ready from the receiver's position, up to `maxCount`, each
 * handed to `take` (a copy out, or a view) into `out`, in order; cycle
 * records are stepped over. It stores nothing: the caller moves the tail
 * (the copying receive) or the lease (the view receive).
 */
export function walkBatch(
  h: ThreadHandle,
  maxBytes: number,
  maxCount: number,
  take: (h: ThreadHandle, at: number, len: number) => Uint8Array,
  out: Uint8Array[],
): BatchWalk {
  const { i32, mask } = h;
  let tail = h.pos;
  let bytes = 0;
  let cycles = 0;
  let bad = false;
  while (out.length < maxCount) {
    if (((h.otherPos - tail) | 0) <= 0) {
      h.otherPos = Atomics.load(i32, Header.HEAD);
      if (((h.otherPos - tail) | 0) <= 0 && !(out.length === 0 && endOfBurst() && refreshAfterPublish(h, tail))) break;
    }
    const at = tail & mask;
    const len = i32[h.dataI32 + (at >> 2)]!;
    if (len === CYCLE_RECORD) {
      tail = (tail + RECORD_HEADER) | 0;
      cycles++;
      continue;
    }
    if (len < 0 || len > h.maxMessageBytes || len > maxBytes) {
      bad = out.length === 0 && cycles === 0;
      break;
    }
    out.push(take(h, at, len));
    bytes += len;
    tail = (tail + recordBytes(len)) | 0;
  }
  return { tail, bytes, cycles, bad };
}
