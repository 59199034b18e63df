/**
 * The `zeromq` primitive's wire protocol (frame kinds, sizes, the parser and
 * the u64 big-endian helpers), its options, characteristics, counters and
 * the helpers both ends share. See the module comment of `../zeromq.ts` for
 * the frame table.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg, type ErrorDetails } from '../../lib/core/errors.js';
import {
  FRAMED_CHARACTERISTICS,
  dataMessages,
  framedBadFrame,
  framedCommon,
  readU64 as readU64Of,
  type FramedCommon,
  type FramedFrame,
  type FramedStats,
} from '../../lib/core/framedWire.js';
import type { ChannelOptions, DiscardPolicy, PrimitiveCharacteristics } from '../../lib/core/primitive.js';
import type { RefusedPeer } from './keys.js';
import type { ZeromqConfirmation } from './confirm.js';
import { emptyStats } from '../../lib/core/channel.js';

/** Frame kinds of the wire protocol (first byte of every frame). */
export const FrameKind = { data: 0x01, hello: 0x02, ping: 0x03, credit: 0x81 } as const;
/** One of {@link FrameKind}. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const DATA_HEADER = 25;
export const HELLO_SIZE = 25;
export const PING_SIZE = 13;
export const CREDIT_SIZE = 30;
export const SESSION_BYTES = 8;
export const MAX_SESSIONS = 1024;
/** How long a gracefully closed receiving end's socket keeps its last CREDITs to send. */
export const FAREWELL_LINGER_MS = 100;

/** The primitive's characteristics (the registry carries the same copy). */
export const characteristics: PrimitiveCharacteristics = FRAMED_CHARACTERISTICS;

/** Defaults of the options below. */
export const ZEROMQ_DEFAULTS = Object.freeze({
  bind: 'tcp://127.0.0.1:*',
  maxmsg: 4096,
  batchBytes: 64 * 1024,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 2_000,
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 5_000,
  reconnectIntervalMs: 100,
  reconnectMaxIntervalMs: 2_000,
});

/** CURVE settings of one end. */
export interface ZeromqCurveOptions {
  /** This end's key pair (Z85). A sending end without one uses a throw-away pair. */
  publicKey?: string;
  secretKey?: string;
  /** Receiving end: the client public keys accepted; absent = any key (encryption only). */
  allow?: Iterable<string>;
}

/**
 * The primitive-specific options, read from `ChannelOptions.zeromq`
 * (`registry.open('zeromq', { zeromq: { ... } })`).
 */
export interface ZeromqOptions {
  /** Receiving end: where to bind. Default `tcp://127.0.0.1:*`. A non-loopback bind without CURVE warns. */
  bind?: string;
  /** Receiving end: the endpoint to put in the address instead of the bound one (e.g. a public host name). */
  advertise?: string;
  /** CURVE keys and allow-list. */
  curve?: ZeromqCurveOptions;
  /** Sending end: how long `connect()` waits for the first CREDIT. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Sending end: how long a graceful close waits for outstanding messages to be acknowledged. Default 2000 ms. */
  closeTimeoutMs?: number;
  /** ZMTP heartbeat interval (0: off) and timeout. Defaults 1000 and 5000 ms. */
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** Reconnect back-off, first and largest. Defaults 100 and 2000 ms. */
  reconnectIntervalMs?: number;
  reconnectMaxIntervalMs?: number;
  /** Largest DATA frame built from small messages (a sender also stays below the receiver's `maxFrameBytes`). Default 64 KiB. */
  batchBytes?: number;
  /**
   * Receiving end: the most sending-end sessions it keeps (each holds up to
   * `maxmsg` messages); frames opening one more are dropped and counted as
   * bad frames. Default 1024.
   */
  maxSessions?: number;
  /** Receiving end: called for each client the ZAP handler refused (CURVE allow-list). */
  onRefused?: (peer: RefusedPeer) => void;
  /** Called with an `AMIX_ERR_BAD_FRAME` error for each malformed frame dropped. */
  onBadFrame?: (error: AmixError) => void;
  /**
   * Receiving end: acknowledge to senders only what the application
   * confirms through this object (end-to-end), not what arrived. One
   * instance per receiving end.
   */
  confirmation?: ZeromqConfirmation;
}

/**
 * The largest frame a receiving end takes, as its address says: one batch,
 * or one message that alone exceeds a batch, plus the header. Exported so a
 * sender that knows a receiver's settings (amixd dialling a peer's `--listen`
 * endpoint) can write its address without asking it first.
 */
export function maxFrameBytesFor(maxMessageBytes: number, batchBytes: number = ZEROMQ_DEFAULTS.batchBytes): number {
  return Math.max(maxMessageBytes + DATA_HEADER + 4, batchBytes);
}

/** {@link ChannelOptions} with the `zeromq` field. */
export type ZeromqChannelOptions = ChannelOptions & { zeromq?: ZeromqOptions };

/** The address of a receiving end (JSON-serialisable). */
export type ZeromqAddress = {
  readonly endpoint: string;
  /** Present when the receiving end is a CURVE server. */
  readonly serverPublicKey?: string;
  readonly maxmsg: number;
  readonly minmsg: number;
  readonly maxMessageBytes: number;
  /** The largest frame the receiving end takes; senders keep their batches below it. */
  readonly maxFrameBytes: number;
  /** The receiving point's discard policy, used by senders that do not set their own. */
  readonly discard: DiscardPolicy;
};

/** `ChannelStats`, the framed ends' counters (`FramedStats` in `lib/core/framedWire.ts`: badFrames, duplicates, resent, lost) and the primitive's own. */
export interface ZeromqStats extends FramedStats {
  /**
   * Receiving end: failed handshakes (allow-list, mechanism), each attempt
   * (a refused client that keeps reconnecting counts each time; see
   * `onRefused` for who). Sending end: refusals seen.
   */
  refused: number;
}

/** The counters of an end. */
export interface Counters extends ZeromqStats {}

/** The state both kinds of end start with. */
export function common(options: ChannelOptions, maxMessageBytes: number, z: ZeromqOptions): Common {
  const stats: Counters = { ...emptyStats(), badFrames: 0, duplicates: 0, resent: 0, refused: 0, lost: 0 };
  return framedCommon('zeromq', options.onEvent, stats, maxMessageBytes, z.onBadFrame);
}

/** The state both kinds of end share (`lib/core/framedWire.ts`), with this primitive's counters. */
export interface Common extends FramedCommon {
  readonly stats: Counters;
}

export { closedError, emit, reportBad, writeU64 } from '../../lib/core/framedWire.js';

/** Read a big-endian u64 below 2^53. */
export function readU64(b: Buffer, off: number): number {
  return readU64Of(b, off, badFrame, 'a sequence number is beyond 2^53');
}

/** `AMIX_ERR_BAD_FRAME` for a zeromq frame. */
export function badFrame(message: string, details: ErrorDetails['AMIX_ERR_BAD_FRAME'] = {}): AmixError {
  return framedBadFrame('zeromq', message, details);
}

/** A parsed frame. */
export type Frame = FramedFrame;

/**
 * Parse one frame of the wire protocol. Throws `AMIX_ERR_BAD_FRAME` for an
 * unknown kind, a wrong size, a message length running past the end, or a
 * message above `maxMessageBytes`. Messages are views into `frame`.
 */
export function parseFrame(frame: Buffer, maxMessageBytes: number = characteristics.maxMessageBytes): Frame {
  if (frame.length < 1) throw badFrame('is empty');
  const kind = frame[0];
  const need = (n: number, exact: boolean) => {
    if (exact ? frame.length !== n : frame.length < n)
      throw badFrame(
        `of kind 0x${kind!.toString(16)} has ${frame.length} bytes, expected ${exact ? '' : 'at least '}${n}`,
      );
  };
  const session = () => frame.subarray(1, 1 + SESSION_BYTES);
  switch (kind) {
    case FrameKind.data: {
      need(DATA_HEADER, false);
      const firstSeq = readU64(frame, 9);
      const firstUnacked = readU64(frame, 17);
      const messages = dataMessages(frame, DATA_HEADER, maxMessageBytes, firstSeq, firstUnacked, badFrame);
      return { kind: 'data', session: session(), firstSeq, firstUnacked, messages };
    }
    case FrameKind.hello: {
      need(HELLO_SIZE, true);
      const firstUnacked = readU64(frame, 9);
      const sentUpTo = readU64(frame, 17);
      if (firstUnacked > sentUpTo) throw badFrame('HELLO acknowledges beyond what it sent');
      return { kind: 'hello', session: session(), firstUnacked, sentUpTo };
    }
    case FrameKind.ping:
      need(PING_SIZE, true);
      return { kind: 'ping', session: session(), token: frame.readUInt32BE(9) };
    case FrameKind.credit: {
      need(CREDIT_SIZE, true);
      const flags = frame[29]!;
      if (flags > 1) throw badFrame('CREDIT has unknown flags');
      return {
        kind: 'credit',
        session: session(),
        expected: readU64(frame, 9),
        limit: readU64(frame, 17),
        token: frame.readUInt32BE(25),
        resend: (flags & 1) === 1,
      };
    }
    default:
      throw badFrame(`has unknown kind 0x${(kind ?? 0).toString(16)}`, { kind });
  }
}

/** True for an endpoint that cannot leave this machine (loopback TCP, ipc, inproc). */
export function isLoopback(endpoint: string): boolean {
  const m = /^tcp:\/\/(\[[^\]]*\]|[^:]*):/.exec(endpoint);
  if (!m) return true; // ipc:// and inproc:// never leave the machine
  const host = m[1]!;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || host.startsWith('127.');
}

export function checkEndpoint(name: string, v: unknown): string {
  if (typeof v !== 'string' || !/^(tcp|ipc|inproc):\/\/.+/.test(v))
    throw invalidArg(name, 'must be a tcp://, ipc:// or inproc:// endpoint', v);
  return v;
}

export function positive(name: string, v: unknown, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (allowZero ? 0 : 1))
    throw invalidArg(`options.zeromq.${name}`, `must be a ${allowZero ? 'non-negative' : 'positive'} integer`, v);
  return v;
}

export function socketOptions(z: ZeromqOptions): Record<string, number> {
  const hb = positive('heartbeatIntervalMs', z.heartbeatIntervalMs, ZEROMQ_DEFAULTS.heartbeatIntervalMs, true);
  return {
    linger: 0,
    reconnectInterval: positive('reconnectIntervalMs', z.reconnectIntervalMs, ZEROMQ_DEFAULTS.reconnectIntervalMs),
    reconnectMaxInterval: positive(
      'reconnectMaxIntervalMs',
      z.reconnectMaxIntervalMs,
      ZEROMQ_DEFAULTS.reconnectMaxIntervalMs,
    ),
    heartbeatInterval: hb,
    ...(hb > 0
      ? { heartbeatTimeout: positive('heartbeatTimeoutMs', z.heartbeatTimeoutMs, ZEROMQ_DEFAULTS.heartbeatTimeoutMs) }
      : {}),
  };
}

/** `AMIX_ERR_MESSAGE_TOO_LARGE` for a message above the channel maximum. */
export function tooLarge(h: Common, data: Uint8Array): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE,
    `message of ${data.byteLength} bytes exceeds the zeromq channel maximum of ${h.maxMessageBytes}`,
    { details: { size: data.byteLength, max: h.maxMessageBytes } },
  );
}
