/**
 * The producer side of a queueConditionThread ring: writing and publishing
 * records, room and watermark checks, the discard policies, and dropOldest's
 * compare-exchange on the consumer's `tail`. Only the sending end calls these.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../../lib/core/errors.js';
import * as header from './header.js';
import type { ThreadHandle } from './handle.js';
import * as handle from './handle.js';

// Own constants, not imported bindings, on the hot path (see header.ts).
const { CYCLE_RECORD, Header, NO_MAXMSG, PUBLISH_BYTES, PUBLISH_EVERY, RECORD_HEADER } = header;
const { closedError, emit, tooLarge, wake } = handle;

/** Bytes a record of `len` payload bytes takes in the ring. */
export function recordBytes(len: number): number {
  return RECORD_HEADER + ((len + 7) & ~7);
}

/** Write one record at the producer's position, without publishing it. The caller checked room. */
export function writeRecord(h: ThreadHandle, data: Uint8Array, len: number, need: number, lengthWord: number): void {
  const { i32, u8, mask, capacity } = h;
  const head = h.pos;
  const at = head & mask;
  i32[h.dataI32 + (at >> 2)] = lengthWord;
  if (len > 0) {
    const start = (at + RECORD_HEADER) & mask;
    if (start + len <= capacity) {
      u8.set(data, Header.BYTE_DATA + start);
    } else {
      const first = capacity - start;
      u8.set(data.subarray(0, first), Header.BYTE_DATA + start);
      u8.set(data.subarray(first), Header.BYTE_DATA);
    }
  }
  h.pos = (head + need) | 0;
}

/** Publish every record written so far and wake a parked receiver. */
export function commitHead(h: ThreadHandle): void {
  const { i32 } = h;
  // The seq-cst store of HEAD publishes the record bytes above (all of them
  // since the last publication: plain stores before a seq-cst store are
  // visible to whoever loads that store's value); the load of RX_WAITING
  // after it pairs with the consumer's store-then-load of HEAD in
  // park() (Dekker): either the consumer sees the new head or we see it parked.
  // Atomics.store is a full fence (and, as a call, a compiler barrier), so a
  // plain read after it is ordered; Atomics.load would cost ~13 ns more per
  // message in Node 20, where it is not inlined.
  // The counts go first, so the receiver never sees a message its sender
  // has not counted yet. They share the cache line of HEAD: written once
  // per publication rather than per message, the line moves to the
  // receiver's core once per publication too.
  i32[Header.WSEQ] = h.seq;
  if (h.sentHeld !== 0) {
    h.f64[Header.F64_SENT]! += h.sentHeld;
    h.f64[Header.F64_BYTES_SENT]! += h.bytesHeld;
    h.sentHeld = 0;
    h.bytesHeld = 0;
  }
  Atomics.store(i32, Header.HEAD, h.pos);
  h.published = h.pos;
  h.unpublished = 0;
  if (i32[Header.RX_WAITING] !== 0) wake(i32, Header.RX_WAKE);
}

/*
 * Coalesced publication. A thread's sends come in bursts: the first record a
 * sending end writes in a burst is published at once, so a message sent
 * alone reaches an idle receiver as fast as before. The records after it in
 * the same burst are only written; they are published together when
 * PUBLISH_EVERY of them (or PUBLISH_BYTES) are waiting, when the sender is
 * about to wait or fail (full, suspended, paused: see attemptSend), and at
 * the end of the burst. A burst ends when a receive on this thread finds
 * its ring empty or is about to wait (the thread has nothing else to do; the
 * sender may be on this very thread, or the other side may need the records
 * to answer: consumer.ts, wait.ts), and at the latest in a microtask at the
 * end of the current turn of the event loop. A burst is a number (`epoch`)
 * bumped at each end, so telling a burst's first record costs a compare, and
 * a lone send per burst (a request and its reply) never queues a microtask.
 * A receiver that parks in between is woken by the publication
 * (commitHead's RX_WAITING check), so no wake-up is lost: it only comes at
 * the end of the burst instead of at its first message. Nothing here changes
 * what is accepted or the backpressure bound: room and the watermark count
 * written records, published or not.
 */

/**
 * Ends of this thread (module state is per thread) with a publication held
 * for the end of the burst: sending ends' records, receiving ends' releases.
 */
const dueEnds: ThreadHandle[] = [];
/** Stores a receiving end's TAIL (consumer.ts, which sets it: the consumer imports this module, not the reverse). */
let commitReleased: (h: ThreadHandle) => void = () => undefined;
/** @internal Called once by consumer.ts. */
export function setReleaseCommit(f: (h: ThreadHandle) => void): void {
  commitReleased = f;
}
/** The current burst of this thread. */
let epoch = 0;
let flushQueued = false;
const settled = Promise.resolve();
const endOfTurn = (): void => {
  flushQueued = false;
  endOfBurst();
};

/**
 * Function: `publishPending()`. End this thread's burst now: publish what
 * every sending end of this thread has written but not yet published, and
 * hand back the space every receiving end has received from but not yet
 * released (otherwise done when a receive on this thread finds nothing, or
 * at the end of the current turn). Only a thread that sends with `trySend` and then
 * blocks synchronously outside amix (its own `Atomics.wait`, a long
 * computation) needs to call it; amix's own waits do.
 */
export function publishPending(): void {
  endOfBurst();
}

/** End this thread's burst (a receive found nothing, or waits); true when it published held records. */
export function endOfBurst(): boolean {
  epoch = (epoch + 1) | 0;
  if (dueEnds.length === 0) return false;
  for (let i = 0; i < dueEnds.length; i++) {
    const h = dueEnds[i]!;
    h.due = false;
    if (h.pos === h.published) continue;
    if (h.role === 'send') commitHead(h);
    // A receiving end's coalesced release (consumer.ts settle), unless views hold it.
    else if (!h.viewing) commitReleased(h);
  }
  dueEnds.length = 0;
  return true;
}

/** Hold this end's publication (records, or a receiving end's release) for the end of the burst, listing it once, with the end-of-turn microtask. */
export function hold(h: ThreadHandle): void {
  if (h.due) return;
  h.due = true;
  dueEnds.push(h);
  if (!flushQueued) {
    flushQueued = true;
    void settled.then(endOfTurn);
  }
}

/** After one record went in: publish at once (first of the burst) or hold it until a bound or the burst's end. */
export function publish(h: ThreadHandle): void {
  // While the watermark suspension is seen, every record is published at
  // once: the receiver lifts it by the published count (consumer.ts afterRelease).
  if (h.turn !== epoch || !h.coalesce || h.suspendedSeen) {
    commitHead(h);
    h.turn = epoch;
    return;
  }
  if (++h.unpublished >= PUBLISH_EVERY || ((h.pos - h.published) | 0) >= PUBLISH_BYTES) commitHead(h);
  else hold(h);
}

/** The end of a batch: publish now, and hold single sends after it in this burst. */
export function publishNow(h: ThreadHandle): void {
  if (h.pos !== h.published) commitHead(h);
  h.turn = epoch;
}

/** Publish this end's written records if any (before it waits, fails or detaches). */
export function flushEnd(h: ThreadHandle): void {
  if (h.pos !== h.published) commitHead(h);
}

/** True when `need` bytes fit, refreshing the cached tail if they do not seem to. */
export function fits(h: ThreadHandle, need: number): boolean {
  if (h.capacity - ((h.pos - h.otherPos) | 0) >= need) return true;
  h.otherPos = Atomics.load(h.i32, Header.TAIL);
  return h.capacity - ((h.pos - h.otherPos) | 0) >= need;
}

/** Messages pending as far as the producer knows, refreshing the cached rseq when at the mark. */
export function pendingAtMark(h: ThreadHandle): boolean {
  if (((h.seq - h.otherSeq) | 0) < h.maxmsg) return false;
  h.otherSeq = Atomics.load(h.i32, Header.RSEQ);
  return ((h.seq - h.otherSeq) | 0) >= h.maxmsg;
}

/**
 * dropOldest, from the producer. The consumer owns `tail`, so the producer
 * must not simply move it: the consumer might be copying that very record.
 * Instead, in dropOldest mode both ends advance `tail` only with
 * compare-exchange. The producer reads the oldest record's length at `tail`
 * (stable while `tail` is unchanged: the consumer never writes data) and
 * CASes `tail` past it; the consumer copies a record and then CASes, and if
 * its CAS fails the record was dropped under it, so it discards its
 * (possibly torn) copy and retries from the new `tail`. A 32-bit position
 * cannot come back to the same value before 4 GiB have passed, so ABA is
 * not a concern. Returns false when there was nothing to drop.
 */
export function dropOldestRecord(h: ThreadHandle): boolean {
  const { i32, mask } = h;
  // dropOldest ends never coalesce (h.coalesce), so every record up to h.pos is published.
  for (;;) {
    const tail = Atomics.load(i32, Header.TAIL);
    if (tail === h.pos) return false;
    const len = i32[h.dataI32 + ((tail & mask) >> 2)]!;
    const need = len === CYCLE_RECORD ? RECORD_HEADER : recordBytes(len);
    if (Atomics.compareExchange(i32, Header.TAIL, tail, (tail + need) | 0) !== tail) continue;
    h.otherPos = (tail + need) | 0;
    if (len === CYCLE_RECORD) continue;
    Atomics.add(i32, Header.RSEQ, 1);
    h.otherSeq = Atomics.load(i32, Header.RSEQ);
    h.f64[Header.F64_DROPPED]! += 1;
    emit(h, { type: 'dropped', policy: 'dropOldest', count: 1 });
    return true;
  }
}

/** The watermark: called after a message went in. */
export function checkSuspend(h: ThreadHandle): void {
  if (!pendingAtMark(h)) return;
  const { i32 } = h;
  if (Atomics.compareExchange(i32, Header.SUSPENDED, 0, 1) !== 0) return;
  h.f64[Header.F64_SUSPENSIONS]! += 1;
  h.suspendedSeen = true;
  emit(h, { type: 'suspended', pending: (h.seq - h.otherSeq) | 0 });
  // The consumer can lift the suspension only by draining: give it everything.
  flushEnd(h);
  // The consumer may have drained everything before it could see the flag:
  // look again after setting it, and lift it ourselves if so (the consumer's
  // store of RSEQ/TAIL then load of SUSPENDED pairs with this store-then-load).
  h.otherSeq = Atomics.load(i32, Header.RSEQ);
  if (((h.seq - h.otherSeq) | 0) <= h.minmsg) Atomics.compareExchange(i32, Header.SUSPENDED, 1, 0);
}

/** Emit the sender's `resumed` once it observes the watermark suspension lifted. */
export function noticeResume(h: ThreadHandle): boolean {
  if (Atomics.load(h.i32, Header.SUSPENDED) !== 0) return false;
  h.suspendedSeen = false;
  h.otherSeq = Atomics.load(h.i32, Header.RSEQ);
  emit(h, { type: 'resumed', pending: (h.seq - h.otherSeq) | 0 });
  return true;
}

/** Outcome of one send attempt. */
export const SendResult = { sent: 0, wait: 1 } as const;

/**
 * One attempt to send: accepts (or discards by policy, counted) and returns
 * `sent`, returns `wait` when the block policy or a suspend must wait, or
 * throws. `lengthWord` is `len`, or `CYCLE_RECORD` for a cycle record.
 * An accepted record is written, not published: the caller calls
 * {@link publish} (one message) or publishes at its batch end.
 */
export function attemptSend(h: ThreadHandle, data: Uint8Array, lengthWord: number): 0 | 1 {
  const { i32 } = h;
  if (h.destroyed) throw closedError(h);
  // CLOSED and PAUSED are hints read on every send: a plain read is enough
  // (a send racing a close may still go in; the receiver discards the ring).
  if (i32[Header.CLOSED] !== 0) {
    const err = closedError(h);
    if (!h.peerClosed) {
      h.peerClosed = true;
      emit(h, { type: 'closed', reason: err });
    }
    throw err;
  }
  if (i32[Header.PAUSED] !== 0) {
    flushEnd(h);
    return SendResult.wait;
  }
  if (h.suspendedSeen && !noticeResume(h) && h.discard === 'block') {
    flushEnd(h);
    return SendResult.wait;
  }
  const len = data.byteLength;
  if (len > h.maxMessageBytes) throw tooLarge(h, len);
  const need = lengthWord === CYCLE_RECORD ? RECORD_HEADER : recordBytes(len);
  const isMessage = lengthWord !== CYCLE_RECORD;
  if (!fits(h, need) || (isMessage && pendingAtMark(h))) {
    // Whatever the policy does next (wait, fail, drop), the consumer must
    // see every record written so far: it is what frees the room.
    flushEnd(h);
    switch (h.discard) {
      case 'block':
        return SendResult.wait;
      case 'reject':
        h.f64[Header.F64_REJECTED]! += 1;
        throw new AmixError(
          ErrorCode.AMIX_ERR_QUEUE_FULL,
          `queueConditionThread ring is full (${(h.seq - h.otherSeq) | 0} pending, maxmsg ${h.maxmsg}) and the discard policy is reject`,
          { details: { pending: (h.seq - h.otherSeq) | 0, maxmsg: h.maxmsg } },
        );
      case 'dropNewest':
        if (!isMessage) return SendResult.wait;
        h.f64[Header.F64_DROPPED]! += 1;
        emit(h, { type: 'dropped', policy: 'dropNewest', count: 1 });
        return SendResult.sent;
      case 'dropOldest':
        while (!fits(h, need) || (isMessage && pendingAtMark(h))) {
          if (!dropOldestRecord(h)) return SendResult.wait;
        }
        break;
    }
  }
  if (isMessage) {
    // Counted before the record is published, so the receiver never sees a
    // message its sender has not counted yet.
    // Counted here, written to the header with the publication (commitHead),
    // so per message the sender touches no line the receiver polls.
    h.seq = (h.seq + 1) | 0;
    h.sentHeld++;
    h.bytesHeld += len;
  }
  writeRecord(h, data, len, need, lengthWord);
  if (isMessage && h.maxmsg !== NO_MAXMSG) checkSuspend(h);
  return SendResult.sent;
}

/**
 * Method: `trySendMany(handle, messages)`. Optional batching fast path:
 * sends messages from the start of `messages` while each is accepted
 * without waiting, publishing the run at its end (and every
 * `PUBLISH_EVERY` messages or `PUBLISH_BYTES` within it), and returns how
 * many were accepted (dropped by policy counts as accepted, as with
 * `trySend`). Throws like `trySend`; messages before the one that threw
 * were sent (and are published).
 */
export function trySendMany(h: ThreadHandle, messages: readonly Uint8Array[]): number {
  if (h.queued > 0 || messages.length === 0) return 0;
  // The first message goes through the full checks (closed, paused,
  // suspended, policy); the rest of the run only needs room below the mark.
  if (attemptSend(h, messages[0]!, messages[0]!.byteLength) !== SendResult.sent) return 0;
  let n = 1;
  try {
    for (; n < messages.length; n++) {
      const data = messages[n]!;
      const len = data.byteLength;
      if (len > h.maxMessageBytes) throw tooLarge(h, len);
      const need = recordBytes(len);
      if (h.suspendedSeen || !fits(h, need) || pendingAtMark(h)) {
        if (attemptSend(h, data, len) !== SendResult.sent) break;
        continue;
      }
      h.seq = (h.seq + 1) | 0;
      h.sentHeld++;
      h.bytesHeld += len;
      writeRecord(h, data, len, need, len);
      if (++h.unpublished >= PUBLISH_EVERY || ((h.pos - h.published) | 0) >= PUBLISH_BYTES) commitHead(h);
    }
  } finally {
    // The batch end: published now (a batch sent alone wakes an idle
    // receiver), and single sends after it in this turn coalesce.
    publishNow(h);
    if (h.maxmsg !== NO_MAXMSG) checkSuspend(h);
  }
  return n;
}
