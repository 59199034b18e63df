/**
 * The sending end of a message-transport primitive (`zeromq`, `nats`), once:
 * accepted messages are packed into DATA frames, every frame is kept in a
 * {@link ResendRing} until a CREDIT acknowledges it, CREDIT raises the
 * {@link SenderWindow}'s limit and may ask for a re-send, a PING is answered
 * by the CREDIT that echoes its token (or acknowledges everything before it),
 * and a graceful close PINGs until everything is acknowledged.
 *
 * The primitive keeps its frame layout and its transport and passes them in
 * as a {@link SenderIO}, called once per frame (never per message: the
 * per-message path, {@link trySendNow} and {@link accept}, reads only fields
 * of the end, see `bench/RESULTS.md`, "Consolidation"). A DATA frame is
 * `dataHeader` bytes the primitive writes at seal, then `len:u32 bytes` per
 * message, then `trailer` bytes (a tag) it writes too.
 *
 * @module
 */
import { AmixError, ErrorCode, abortError } from './errors.js';
import { ResendRing, SenderWindow } from './credit.js';
import type { DiscardPolicy } from './primitive.js';
import { WaitList } from './waitList.js';
import { closedError, emit, type CreditFrame, type FramedCommon } from './framedWire.js';

/** What the primitive does for its sending end: its frame layout and its transport, per frame. */
export interface SenderIO {
  /**
   * Finish the DATA frame `b[0, len)` holding messages from `first` (write its
   * header, with `acked` as its firstUnacked, and its trailer after `len`).
   */
  sealData(b: Buffer, len: number, first: number, acked: number): void;
  /** Put a sealed DATA frame holding messages `[first, end)` on its way (the first time and at a re-send). */
  out(buf: Uint8Array, first: number, end: number): void;
  /** After {@link out}: start writing what it queued (nothing where `out` sends at once). */
  kick(): void;
  /** The PING frame of `token` (built before the current batch is sealed). */
  pingFrame(token: number): Buffer;
  /** Send a PING frame, behind every DATA frame sealed so far. */
  sendPing(b: Buffer): void;
  /** The error for a message above `sendLimit` (thrown by {@link trySendNow}). */
  tooLarge(data: Uint8Array): AmixError;
  /** Graceful close: true when what is not acknowledged is safe anyway (a durable link's stored frames). */
  drained?(): boolean;
}

/** The sending end's state (the primitive's handle extends it). */
export interface FramedSendState extends FramedCommon {
  readonly role: 'send';
  /** @internal */ readonly io: SenderIO;
  /** @internal Bytes before the first message of a DATA frame. */ readonly dataHeader: number;
  /** @internal Bytes after the last (a tag). */ readonly trailer: number;
  /** @internal The largest message accepted without {@link SenderIO.tooLarge}. */ readonly sendLimit: number;
  /** @internal The largest DATA frame built from small messages. */ readonly batchBytes: number;
  /** @internal */ readonly connectTimeoutMs: number;
  /** @internal */ readonly closeTimeoutMs: number;
  /** @internal Where the receiving end is, for errors: an endpoint or a subject. */ readonly peer: string;
  /** @internal `from <endpoint>` or `on <subject>`: what `connect` times out waiting for an answer from. */
  readonly answerFrom: string;
  /** @internal Sequence numbers, credit, the dropOldest outbox, blocked sends. */ w: SenderWindow;
  /** @internal Every sequence number below it has been put on its way. */ sentUpTo: number;
  /** @internal Sealed DATA frames not yet acknowledged, oldest first. */ readonly frames: ResendRing;
  /** @internal The DATA frame being filled (header written at seal). */ cur: Buffer | undefined;
  /** @internal Reused as `cur` for batches of small messages. */ scratch: Buffer | undefined;
  /** @internal */ curOff: number;
  /** @internal */ curFirst: number;
  /** @internal */ curCount: number;
  /** @internal */ flushScheduled: boolean;
  /** @internal */ credited: boolean;
  /** @internal Waiting for the first CREDIT of a connection. */ readonly connectWaiters: WaitList<void, void>;
  /** @internal PINGs waiting for the CREDIT that answers them: by token, or by acknowledging everything up to `upTo`. */
  readonly pings: WaitList<{ token: number; upTo: number }, void>;
  /** @internal */ nextToken: number;
  /** @internal */ lostPeer: boolean;
  /** @internal */ awaitingWelcome: boolean;
  /** @internal */ attempts: number;
  /** @internal The receiving end refused this one (`connect` rejects with it). */ authError: AmixError | undefined;
  /** @internal */ detached: boolean;
  /** @internal Graceful close: the longest one PING waits before the end looks again (Infinity: till the deadline). */
  readonly drainSliceMs: number;
}

/** The settings of a new sending end (see {@link senderFields}). */
export interface SenderSettings {
  readonly io: SenderIO;
  readonly dataHeader: number;
  readonly trailer: number;
  readonly sendLimit: number;
  readonly batchBytes: number;
  readonly connectTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly peer: string;
  readonly answerFrom: string;
  readonly awaitingWelcome: boolean;
  readonly drainSliceMs: number;
}

/** The fields of a new {@link FramedSendState} but the window (see {@link senderWindow}), spread into the handle. */
export function senderFields(s: SenderSettings): Omit<FramedSendState, keyof FramedCommon | 'role' | 'w'> {
  return {
    ...s,
    sentUpTo: 0,
    frames: new ResendRing(),
    cur: undefined,
    scratch: undefined,
    curOff: s.dataHeader,
    curFirst: 0,
    curCount: 0,
    flushScheduled: false,
    credited: false,
    connectWaiters: new WaitList<void, void>(),
    pings: new WaitList(),
    nextToken: 1,
    lostPeer: false,
    attempts: 0,
    authError: undefined,
    detached: false,
  };
}

/**
 * The window of `h`: the address promises the first `maxmsg` messages, so
 * they need no round trip; `suspended` as soon as the last credit is spent.
 */
export function senderWindow(
  h: FramedSendState,
  discard: DiscardPolicy,
  maxmsg: number,
  receiver: string,
): SenderWindow {
  return new SenderWindow({
    discard,
    outboxMax: maxmsg,
    limit: maxmsg,
    style: 'onExhaustion',
    stats: h.stats,
    emit: (e) => emit(h, e),
    write: (data, seq) => accept(h, data, seq),
    queueFull: () =>
      new AmixError(ErrorCode.AMIX_ERR_QUEUE_FULL, `${receiver} has ${maxmsg} messages pending (maxmsg)`, {
        details: { maxmsg },
      }),
  });
}

/** The connection to the receiving end is gone: no credit until the next answer; `peerLost` once. */
export function senderLost(h: FramedSendState, message: string, endpoint: string): void {
  h.credited = false;
  if (h.lostPeer) return;
  h.lostPeer = true;
  emit(h, { type: 'peerLost', error: new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, message, { details: { endpoint } }) });
}

/** A CREDIT of this end's session (checked by the primitive): acknowledge, credit, re-send, answer PINGs. */
export function onCredit(h: FramedSendState, f: CreditFrame): void {
  // `expected` acknowledges what arrived (not what was consumed): those frames are never needed again.
  if (f.expected > h.w.acked && h.w.ack(Math.min(f.expected, h.sentUpTo))) h.frames.release(h.w.acked);
  h.w.credit(f.limit);
  let resent = 0;
  if (f.resend && f.expected < h.sentUpTo) resent = resendFrom(h, f.expected);
  if (h.awaitingWelcome && f.token === 0) {
    h.awaitingWelcome = false;
    if (h.lostPeer) {
      h.lostPeer = false;
      emit(h, { type: 'reconnected', resent, lost: 0 });
    }
  }
  h.credited = true;
  h.connectWaiters.resolveAll();
  // A PING is answered by the CREDIT that echoes its token, and as well by any
  // CREDIT that acknowledges everything sent before it: a receiving end that
  // closes says so once and never answers a PING that arrives after that.
  const acked = h.w.acked;
  const token = f.token;
  for (const p of h.pings.take((v) => (token !== 0 && v.token === token) || v.upTo <= acked)) p.resolve();
  pump(h);
}

/** Put on its way again every sealed frame holding a sequence number from `from` on; the receiver drops what it has. */
export function resendFrom(h: FramedSendState, from: number): number {
  let resent = 0;
  const fr = h.frames;
  for (let i = 0; i < fr.length; i++) {
    const end = fr.end(i);
    if (end <= from) continue;
    h.io.out(fr.buf(i), fr.first(i), end);
    resent += end - Math.max(fr.first(i), from);
  }
  h.stats.resent += resent;
  h.io.kick();
  return resent;
}

/** Let the window take the outbox and blocked sends while there is credit; it emits resumed/suspended. */
export function pump(h: FramedSendState): void {
  if (!h.closed) h.w.pump();
}

/** What `stats().pending` reports at a sending end: unacknowledged, in the outbox, and blocked. */
export function pendingOf(h: FramedSendState): number {
  return h.w.unacknowledged + h.w.outbox.length + h.w.waiters.length;
}

/** Pack message `seq` (within credit, the window checked) into the DATA frame being filled. */
export function accept(h: FramedSendState, data: Uint8Array, seq: number): void {
  const len = data.byteLength;
  const trailer = h.trailer;
  if (h.cur !== undefined && h.curOff + 4 + len + trailer > h.cur.length) seal(h);
  if (h.cur === undefined) {
    const need = h.dataHeader + 4 + len + trailer;
    h.scratch ??= Buffer.allocUnsafe(h.batchBytes);
    h.cur = need <= h.scratch.length ? h.scratch : Buffer.allocUnsafe(need);
    h.curOff = h.dataHeader;
    h.curFirst = seq;
    h.curCount = 0;
  }
  // Copied into the scratch frame; seal copies the whole batch out in one go.
  const b = h.cur;
  b.writeUInt32BE(len, h.curOff);
  b.set(data, h.curOff + 4);
  h.curOff += 4 + len;
  h.curCount++;
  if (h.curOff + 4 + 64 + trailer > b.length) flush(h);
  else scheduleFlush(h);
}

/** Close the frame being filled (the primitive writes header and trailer), keep it and put it on its way. */
export function seal(h: FramedSendState): void {
  const b = h.cur;
  if (b === undefined || h.curCount === 0) return;
  const first = h.curFirst;
  h.io.sealData(b, h.curOff, first, h.w.acked);
  const len = h.curOff + h.trailer;
  // An exact-size copy, kept until acknowledged; the scratch buffer is reused for the next batch. (Handing a full
  // scratch over instead and allocating a new one measured slower: fresh 64 KiB buffers cost more than the copy.)
  const buf = b === h.scratch ? Buffer.from(b.subarray(0, len)) : b.subarray(0, len);
  const end = first + h.curCount;
  h.cur = undefined;
  h.curCount = 0;
  h.frames.push(buf, 0, first, end);
  h.sentUpTo = end;
  h.io.out(buf, first, end);
}

function scheduleFlush(h: FramedSendState): void {
  // Messages accepted in one tick share frames: they go out together on the next turn of the loop.
  if (h.flushScheduled) return;
  h.flushScheduled = true;
  setImmediate(() => {
    h.flushScheduled = false;
    flush(h);
  });
}

/** Seal the frame being filled and start writing. */
export function flush(h: FramedSendState): void {
  if (h.closed) return;
  seal(h);
  if (!h.detached) h.io.kick();
}

/** The synchronous part of send: accept, apply policy, or return false (must wait). */
export function trySendNow(h: FramedSendState, data: Uint8Array): boolean {
  if (h.closed) throw closedError(h, '');
  if (data.byteLength > h.sendLimit) throw h.io.tooLarge(data);
  const w = h.w;
  const seq = w.admit(data.byteLength);
  if (seq < 0) return w.trySend(data);
  accept(h, data, seq);
  w.admitted();
  return true;
}

/** Wait for credit (abortable). The message is copied: the caller may reuse its buffer while the send waits. */
export function sendBlocking(h: FramedSendState, data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
  return h.w.wait(Buffer.from(data), signal);
}

/** Resolve once this connection has had a CREDIT; `AMIX_ERR_TIMEOUT` after `timeoutMs`, `AMIX_ERR_UNAUTHORIZED` if refused. */
export function waitCredited(h: FramedSendState, timeoutMs: number, what: string): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (h.authError) return Promise.reject(h.authError);
  if (h.credited) return Promise.resolve();
  return h.connectWaiters.wait(undefined, {
    what: `${what} (no answer ${h.answerFrom})`,
    timeoutMs,
    details: { endpoint: h.peer, timeoutMs },
  });
}

/** A PING behind every message accepted so far, answered by the CREDIT that acknowledges them all. */
export function ping(h: FramedSendState, signal?: AbortSignal): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (signal?.aborted) return Promise.reject(abortError(signal, 'cycle'));
  const token = h.nextToken;
  h.nextToken = h.nextToken >= 0xffffffff ? 1 : h.nextToken + 1;
  const b = h.io.pingFrame(token);
  // Behind every message accepted so far: a PING that overtook them would prove nothing.
  seal(h);
  const answered = h.pings.wait({ token, upTo: h.w.seq }, { signal, what: 'cycle' });
  h.io.sendPing(b);
  return answered;
}

/** A graceful close: flush, then PING until everything is acknowledged (or drained) or `closeTimeoutMs` runs out. */
export async function drainOnClose(h: FramedSendState): Promise<void> {
  if (h.closeTimeoutMs === 0 || h.detached) return;
  const deadline = Date.now() + h.closeTimeoutMs;
  flush(h);
  while (!h.closed && h.w.acked < h.w.seq && h.authError === undefined && !h.io.drained?.()) {
    const left = deadline - Date.now();
    if (left <= 0) return;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.min(left, h.drainSliceMs));
    try {
      await ping(h, ac.signal);
    } catch {
      // Unanswered within the slice: look again (a durable link may have stored everything meanwhile).
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Close the sending end: fail what waits; count as lost what is neither
 * acknowledged nor below `safeUpTo` (a durable link's stored prefix), and the outbox.
 */
export function closeSender(h: FramedSendState, safeUpTo = h.w.acked): void {
  const err = closedError(h, 'while sending');
  h.connectWaiters.rejectAll(err);
  h.pings.rejectAll(err);
  h.stats.lost += Math.max(0, h.w.seq - Math.max(h.w.acked, safeUpTo)) + h.w.close(err);
}
