/**
 * What both ends of the message-transport primitives share (`zeromq` and
 * `nats`, whose frames are whole transport messages rather than a byte
 * stream): the state common to a sending and a receiving end, their events,
 * bad-frame counting and close errors, the big-endian u64 and the message
 * list of a DATA frame. Each primitive keeps its frame layout, its transport
 * and its options; the sending and receiving machinery over the credit
 * engine is `framedSender.ts` and `framedReceiver.ts`.
 *
 * @module
 */
import { badFrameError, invalidArg, linkClosedError, type AmixError, type ErrorDetails } from './errors.js';
import type { ChannelEvent, ChannelStats, PrimitiveCharacteristics } from './primitive.js';

const TWO32 = 0x1_0000_0000;

/** The characteristics of both primitives (the registry carries the same copy). */
export const FRAMED_CHARACTERISTICS: PrimitiveCharacteristics = Object.freeze({
  scopes: Object.freeze(['remote', 'process'] as const),
  maxMessageBytes: 64 * 1024 * 1024,
  ordering: 'fifo',
  delivery: 'reliable',
});

/** `options.address` as an object (else `AMIX_ERR_INVALID_ARG`), for the primitive to check its own fields. */
export function addressObject(a: unknown, primitive: string): Record<string, unknown> {
  if (a === null || typeof a !== 'object')
    throw invalidArg('options.address', `must be the address of a ${primitive} receiving end`, a);
  return a as Record<string, unknown>;
}

/** The receiving end's limits in an address: `maxmsg`, `maxMessageBytes`, `maxFrameBytes`, positive integers. */
export function checkAddressLimits(x: Record<string, unknown>): void {
  for (const k of ['maxmsg', 'maxMessageBytes', 'maxFrameBytes'] as const) {
    if (typeof x[k] !== 'number' || !Number.isSafeInteger(x[k]) || (x[k] as number) < 1)
      throw invalidArg(`options.address.${k}`, 'must be a positive integer', x[k]);
  }
}

/** {@link ChannelStats} plus the counters every framed end keeps. */
export interface FramedStats extends ChannelStats {
  /** Frames dropped: malformed, not allowed, beyond credit. */
  badFrames: number;
  /** Messages that arrived twice (after a re-send) and were dropped. */
  duplicates: number;
  /** Messages sent again after a reconnect or a gap. */
  resent: number;
  /** Messages accepted but never acknowledged when the end closed. */
  lost: number;
}

/** The state both kinds of end start with. */
export interface FramedCommon {
  /** The primitive's name, as error messages say it (`zeromq channel closed`). */
  readonly primitive: string;
  /** Hears the end's channel events (the option of the same name). */
  readonly onEvent: ((e: ChannelEvent) => void) | undefined;
  /** The end's counters. */
  readonly stats: FramedStats;
  /** The largest message this end carries. */
  readonly maxMessageBytes: number;
  /** Hears frames the end dropped as malformed or not allowed (counted as `badFrames` too). */
  readonly onBadFrame: ((e: AmixError) => void) | undefined;
  closed: boolean;
  closeReason: Error | undefined;
}

/** The fields of a new {@link FramedCommon} (spread into the primitive's own end). */
export function framedCommon<S extends FramedStats>(
  primitive: string,
  onEvent: ((e: ChannelEvent) => void) | undefined,
  stats: S,
  maxMessageBytes: number,
  onBadFrame: ((e: AmixError) => void) | undefined,
): FramedCommon & { readonly stats: S } {
  return { primitive, onEvent, stats, maxMessageBytes, onBadFrame, closed: false, closeReason: undefined };
}

/** Emit a channel event; an observer that throws does not stop the transport. */
export function emit(h: FramedCommon, e: ChannelEvent): void {
  try {
    h.onEvent?.(e);
  } catch {
    // onEvent must not throw; if it does, the transport carries on.
  }
}

/** Count a dropped frame and tell `onBadFrame`. */
export function reportBad(h: FramedCommon, err: AmixError): void {
  h.stats.badFrames++;
  try {
    h.onBadFrame?.(err);
  } catch {
    // An observer's failure must not reach the receive loop.
  }
}

/** `AMIX_ERR_LINK_CLOSED` for an end, with its close reason as the cause. */
export function closedError(h: FramedCommon, what: string): AmixError {
  return linkClosedError(`${h.primitive} channel closed${what ? ` ${what}` : ''}`, h.closeReason ?? undefined);
}

/** Write `v` (below 2^53) as a big-endian u64 (two u32). */
export function writeU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / TWO32), off);
  b.writeUInt32BE(v >>> 0, off + 4);
}

/** Read a big-endian u64; a value from 2^53 on throws `AMIX_ERR_BAD_FRAME` with `message`. */
export function readU64(b: Buffer, off: number, bad: BadFrame, message: string): number {
  const hi = b.readUInt32BE(off);
  if (hi >= 0x200000) throw bad(message);
  return hi * TWO32 + b.readUInt32BE(off + 4);
}

/** A primitive's `AMIX_ERR_BAD_FRAME` factory (its message prefix). */
export type BadFrame = (message: string, details?: ErrorDetails['AMIX_ERR_BAD_FRAME']) => AmixError;

/** `AMIX_ERR_BAD_FRAME` whose message starts with `<primitive> frame`. */
export function framedBadFrame(primitive: string, message: string, details: ErrorDetails['AMIX_ERR_BAD_FRAME'] = {}) {
  return badFrameError(`${primitive} frame ${message}`, details);
}

/**
 * The messages of a DATA frame: `len:u32 bytes` from `off` to the end of
 * `frame`, as views into it, and the frame's sequence numbers checked.
 * Throws (through `bad`) for a length running past the end, a message above
 * `maxMessageBytes`, no message at all, or `firstUnacked` beyond `firstSeq`.
 */
export function dataMessages(
  frame: Buffer,
  off: number,
  maxMessageBytes: number,
  firstSeq: number,
  firstUnacked: number,
  bad: BadFrame,
): Buffer[] {
  const messages: Buffer[] = [];
  while (off < frame.length) {
    if (frame.length - off < 4) throw bad('ends inside a length prefix', { offset: off });
    const len = frame.readUInt32BE(off);
    off += 4;
    if (len > maxMessageBytes)
      throw bad(`carries a message of ${len} bytes, above the channel maximum of ${maxMessageBytes}`, {
        length: len,
      });
    if (len > frame.length - off)
      throw bad(`announces ${len} bytes but only ${frame.length - off} follow`, { offset: off });
    messages.push(frame.subarray(off, off + len));
    off += len;
  }
  if (messages.length === 0) throw bad('carries no message');
  if (firstUnacked > firstSeq || !Number.isSafeInteger(firstSeq + messages.length))
    throw bad('has inconsistent sequence numbers');
  return messages;
}

/** The CREDIT fields a sending end acts on (both primitives' parsed CREDIT frame has them). */
export interface CreditFrame {
  /** Everything below it has arrived (or, end to end, been confirmed). */
  readonly expected: number;
  /** The absolute credit limit. */
  readonly limit: number;
  /** The PING answered, 0 for none. */
  readonly token: number;
  /** Re-send from `expected` on. */
  readonly resend: boolean;
}

/** A parsed frame of either primitive (the layouts differ; the fields do not). */
export type FramedFrame =
  | { kind: 'data'; session: Buffer; firstSeq: number; firstUnacked: number; messages: Buffer[] }
  | { kind: 'hello'; session: Buffer; firstUnacked: number; sentUpTo: number }
  | { kind: 'ping'; session: Buffer; token: number }
  | ({ kind: 'credit'; session: Buffer } & CreditFrame);
