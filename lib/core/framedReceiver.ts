/**
 * The receiving end of a message-transport primitive (`zeromq`, `nats`),
 * once: senders are sessions of a {@link CreditReceiver} with a per-session
 * pool (each sender its own `maxmsg`, all of it promised by the address);
 * DATA is de-duplicated and ordered by sequence number, a gap asks for a
 * re-send once per position, messages go to a blocked receive or the queue,
 * and a message taken gives its credit back.
 *
 * The primitive keeps its frame checks, its sessions' own fields and its
 * transport, and passes in a {@link ReceiverIO}: the CREDIT frame it writes
 * (once per grant or gap, never per message) and, only where a message's
 * credit does not go straight back when it is taken (end-to-end
 * confirmation, a durable link's stream message), a hook per taken message.
 *
 * @module
 */
import { bufferTooSmallError, invalidArg } from './errors.js';
import { CreditReceiver, type CreditSession, type MessageQueue } from './credit.js';
import type { WaitList } from './waitList.js';
import { closedError, emit, framedBadFrame, reportBad, type FramedCommon } from './framedWire.js';

/** A sender's session at a framed receiving end (the primitive's session extends it). */
export interface FramedSession extends CreditSession {
  /** The session id, as the wire carries it. */
  readonly id: Buffer;
  /** The position a re-send was last asked from (-1: none), so a gap is asked about once. */
  resendAskedAt: number;
}

/** What the primitive does for its receiving end. */
export interface ReceiverIO<S extends FramedSession, O> {
  /** Write a CREDIT to `s`: what it has (`next`, or what was confirmed), its limit, the PING token answered, the resend flag. */
  sendCredit(s: S, token: number, resend: boolean): void;
  /**
   * A message from `o` was taken by the application. Undefined (the usual
   * case) gives the credit back at once (`credit.consume`), with no call.
   */
  readonly consumed: ((o: O) => void) | undefined;
}

/** A stream message whose messages wait in the queue (a durable link): the receiving end tells it what it kept. */
export interface HeldMessages<S> {
  /** The session its frame came from. */
  session: S | undefined;
  /** One more of its messages was queued or delivered. */
  keep(): void;
  /** Every message of it is counted. */
  settle(): void;
}

/** The receiving end's state (the primitive's handle extends it); `O` is where a queued message came from. */
export interface FramedReceiveState<S extends FramedSession, O = S> extends FramedCommon {
  readonly role: 'receive';
  /** @internal */ readonly rio: ReceiverIO<S, O>;
  /** @internal */ readonly queue: MessageQueue<O>;
  /** @internal Blocked receives, each with the largest message it accepts. */
  readonly readers: WaitList<number, Uint8Array>;
  /** @internal Sessions and their credit windows. */ credit: CreditReceiver<S>;
  /** @internal */ lostPeer: boolean;
}

/** `maxmsg` and `minmsg` of a receiving end: the options or their defaults (`minmsg`: half), checked. */
export function creditWindow(maxmsg: number, minmsg: number): { maxmsg: number; minmsg: number } {
  if (!Number.isSafeInteger(maxmsg) || maxmsg < 1)
    throw invalidArg('options.maxmsg', 'must be a positive integer', maxmsg);
  if (!Number.isSafeInteger(minmsg) || minmsg < 0 || minmsg >= maxmsg)
    throw invalidArg('options.minmsg', 'must be an integer from 0 to maxmsg - 1', minmsg);
  return { maxmsg, minmsg };
}

/** The session table of `h`: each session its own `maxmsg`; a grant writes a CREDIT (and `resumed` after a stop). */
export function receiverCredit<S extends FramedSession, O>(
  h: FramedReceiveState<S, O>,
  maxmsg: number,
  minmsg: number,
  maxSessions: number,
): CreditReceiver<S> {
  return new CreditReceiver<S>({
    maxmsg,
    minmsg,
    pool: 'session',
    maxSessions,
    onGrant: (s, resumed) => {
      if (resumed) emit(h, { type: 'resumed', pending: h.queue.length });
      h.rio.sendCredit(s, 0, false);
    },
  });
}

/**
 * The messages of a DATA frame of `s` from `firstSeq` on: duplicates
 * counted and dropped, a gap asked about, anything beyond the credit granted
 * dropped as a bad frame. `held` (a durable link's stream message) is told
 * each message kept and is the messages' origin.
 */
export function onData<S extends FramedSession, O>(
  h: FramedReceiveState<S, O>,
  s: S,
  firstSeq: number,
  messages: readonly Buffer[],
  held?: HeldMessages<S> & O,
): void {
  let seq = firstSeq;
  let gap = false;
  if (held !== undefined) held.session = s;
  const origin = (held ?? s) as O;
  for (const m of messages) {
    if (seq < s.next) {
      h.stats.duplicates++;
      seq++;
      continue;
    }
    if (seq > s.next) {
      gap = true;
      break;
    }
    if (!h.credit.admit(s)) {
      // Beyond the credit granted: a misbehaving peer. Drop the rest; a correct sender never gets here.
      reportBad(h, framedBadFrame(h.primitive, 'carries messages beyond the granted credit', { seq, limit: s.limit }));
      break;
    }
    seq++;
    h.stats.received++;
    h.stats.bytesReceived += m.length;
    held?.keep();
    deliver(h, m, origin);
  }
  held?.settle();
  if (gap && s.resendAskedAt !== s.next) {
    // The transport lost something (a reconnect, a slow consumer): ask for it once per position.
    s.resendAskedAt = s.next;
    h.rio.sendCredit(s, 0, true);
  }
  if (h.credit.exhausted(s)) {
    h.stats.suspensions++;
    emit(h, { type: 'suspended', pending: h.queue.length });
  }
}

/** A message from `o` was taken: its credit goes back (or to the primitive's hook). */
function consumed<S extends FramedSession, O>(h: FramedReceiveState<S, O>, o: O): void {
  const c = h.rio.consumed;
  if (c === undefined) h.credit.consume(o as unknown as S);
  else c(o);
}

function deliver<S extends FramedSession, O>(h: FramedReceiveState<S, O>, data: Buffer, o: O): void {
  while (h.readers.length > 0 && h.queue.length === 0) {
    const r = h.readers.shift()!;
    if (data.length > r.value) {
      r.reject(bufferTooSmallError(h.primitive, data.length, r.value));
      continue;
    }
    consumed(h, o);
    r.resolve(data);
    return;
  }
  h.queue.push(data, o);
}

/** The next queued message, or undefined; `AMIX_ERR_BUFFER_TOO_SMALL` leaves it queued. */
export function takeNext<S extends FramedSession, O>(
  h: FramedReceiveState<S, O>,
  maxBytes: number,
): Uint8Array | undefined {
  const m = h.queue.peek();
  if (m === undefined) return undefined;
  if (m.length > maxBytes) throw bufferTooSmallError(h.primitive, m.length, maxBytes);
  const o = h.queue.peekFrom();
  h.queue.shift();
  consumed(h, o);
  return m;
}

/** Close the receiving end's credit and fail the blocked receives (the primitive then says farewell and closes). */
export function closeReceiver<S extends FramedSession, O>(h: FramedReceiveState<S, O>): void {
  h.credit.closed = true;
  h.readers.rejectAll(closedError(h, 'while receiving'));
}
