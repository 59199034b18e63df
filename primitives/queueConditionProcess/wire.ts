/**
 * The wire protocol of `queueConditionProcess` (see the module comment of
 * `../queueConditionProcess.ts` for the table of frame kinds), its options,
 * characteristics and the errors both ends raise.
 *
 * @module
 */
import {
  AmixError,
  asAmixError,
  bufferTooSmallError,
  linkClosedError,
  peerLostError,
  protocolError as coreProtocolError,
  type ErrorDetails,
} from '../../lib/core/errors.js';
import type { FrameKindRule } from '../../lib/core/framing.js';
import { emptyStats } from '../../lib/core/channel.js';
import type {
  ChannelAddress,
  ChannelHandle,
  ChannelOptions,
  ChannelStats,
  PrimitiveCharacteristics,
} from '../../lib/core/primitive.js';

/** The primitive's registered name. */
export const NAME = 'queueConditionProcess';

/** Frame kinds of the wire protocol (see the module comment). */
export const FrameKind = {
  data: 0,
  credit: 1,
  cycle: 2,
  cycleAck: 3,
  hello: 4,
  helloAck: 5,
  close: 6,
  detach: 7,
  error: 8,
  revoke: 9,
  revokeAck: 10,
} as const;
/** One of {@link FrameKind}. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Wire protocol version carried in hello and helloAck (2: credit revocation, kinds 9 and 10). */
export const PROTOCOL_VERSION = 2;

/** Payload bytes of a hello frame: u8 version, 16 B session, f64 firstUnacked, f64 next. */
export const HELLO_BYTES = 1 + 16 + 8 + 8;
/** Payload bytes of a helloAck frame: u8 version, f64 resumeFrom, f64 limit, f64 acked, u32 maxMessageBytes. */
export const HELLO_ACK_BYTES = 1 + 8 + 8 + 8 + 4;
/** Largest error frame payload. */
export const ERROR_MAX_BYTES = 1024;
const fixed = (n: number): FrameKindRule => ({ min: n, max: n });

/** Frame rules a receiving end enforces on what sending ends write. */
export function receiverFrameRules(maxMessageBytes: number): Array<FrameKindRule | undefined> {
  const r: Array<FrameKindRule | undefined> = [];
  r[FrameKind.data] = { min: 0, max: maxMessageBytes };
  r[FrameKind.cycle] = fixed(4);
  r[FrameKind.hello] = fixed(HELLO_BYTES);
  r[FrameKind.close] = fixed(0);
  r[FrameKind.detach] = fixed(0);
  r[FrameKind.error] = { min: 0, max: ERROR_MAX_BYTES };
  r[FrameKind.revokeAck] = fixed(8);
  return r;
}

/**
 * Frame rules a receiving end enforces on a connection until its hello
 * succeeds: a hello, or a close, detach or error frame; nothing else, and
 * nothing larger than an error frame (1 KiB). A header announcing anything
 * else closes the connection before a byte of its payload is buffered.
 */
export function preHelloFrameRules(): Array<FrameKindRule | undefined> {
  const r: Array<FrameKindRule | undefined> = [];
  r[FrameKind.hello] = fixed(HELLO_BYTES);
  r[FrameKind.close] = fixed(0);
  r[FrameKind.detach] = fixed(0);
  r[FrameKind.error] = { min: 0, max: ERROR_MAX_BYTES };
  return r;
}

/** Frame rules a sending end enforces on what its receiving end writes. */
export function senderFrameRules(): Array<FrameKindRule | undefined> {
  const r: Array<FrameKindRule | undefined> = [];
  r[FrameKind.credit] = fixed(16);
  r[FrameKind.cycleAck] = fixed(4);
  r[FrameKind.helloAck] = fixed(HELLO_ACK_BYTES);
  r[FrameKind.close] = fixed(0);
  r[FrameKind.error] = { min: 0, max: ERROR_MAX_BYTES };
  r[FrameKind.revoke] = fixed(8);
  return r;
}

/** Reconnect policy of a sending end. */
export interface ReconnectOptions {
  /** Attempts before giving up (0: never reconnect). Default 8. */
  attempts?: number;
  /** Delay before the first attempt. Default 50 ms; doubled each attempt. */
  initialDelayMs?: number;
  /** Cap on the delay. Default 1000 ms. */
  maxDelayMs?: number;
}

/**
 * The options this primitive reads, beyond the common {@link ChannelOptions}.
 * Pass them through `registry.open(name, options)` like the common ones.
 */
export interface ProcessChannelOptions extends ChannelOptions {
  /**
   * Receiving end: listen on this exact path instead of a new name in the
   * runtime directory (a well-known address a restarted process can take
   * again). A stale socket left by a dead process is removed; a live one is
   * refused with `AMIX_ERR_DUPLICATE`.
   */
  socketPath?: string;
  /** Sending end: how a dropped connection is retried. */
  reconnect?: ReconnectOptions;
  /** Receiving end: how long it remembers a dropped sender's session for an exact resume. Default 15000 ms. */
  sessionLingerMs?: number;
  /** Receiving end: acknowledge consumed messages within this long of their take (when no credit frame did). Default 10 ms. */
  ackIntervalMs?: number;
  /** Sending end: how long create/connect wait for the receiver's handshake. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** Sending end, for benchmarks: when packed frames are flushed (see `FrameWriter`). Default `immediate`. */
  flushSchedule?: 'immediate' | 'microtask';
  /** Receiving end: a connection that has not said hello this long after it was accepted is closed (`AMIX_ERR_TIMEOUT`). Default 5000 ms. */
  helloTimeoutMs?: number;
  /** Receiving end: at most this many connections may be waiting for their hello; more are closed at once (`AMIX_ERR_MAX_CONNECTIONS`). Default 64. */
  maxPreHelloConnections?: number;
  /** Receiving end: a sender that does not confirm a credit revocation this long after it was asked is cut off (it may reconnect and resume). Default 2000 ms. */
  revokeTimeoutMs?: number;
}

/**
 * A receiving end's counters: the common {@link ChannelStats} and what it
 * refused. Each refusal closes one connection and is counted once, in the
 * first of these that applies.
 */
export interface ProcessReceiverStats extends ChannelStats {
  /** Closed before hello: the first frame was not a hello (data before hello, say) or announced more than the pre-hello maximum. */
  preHelloRefused: number;
  /** Closed for saying no hello within `helloTimeoutMs`. */
  helloTimeouts: number;
  /** Closed at once because `maxPreHelloConnections` connections were already waiting for their hello. */
  connectionsOverCap: number;
  /** Closed after hello for a frame outside the framing (unknown kind, wrong or too large a length). */
  badFrames: number;
  /** Closed after hello for a well-framed frame that breaks the protocol (beyond its credit, a second hello, a false revocation answer). */
  protocolErrors: number;
  /** Credit revocations asked of senders (their share shrank as another sender came). */
  creditRevocations: number;
  /** Connections cut for not confirming a revocation within `revokeTimeoutMs`. */
  revokeTimeouts: number;
  /**
   * Messages re-sent to this end in a session it did not know (a previous
   * receiving end at this address, e.g. the instance before a restart, had
   * them and may have consumed some): each is possibly a duplicate. An upper
   * bound; the application cannot tell which.
   */
  redelivered: number;
}

/** A receiving end's counters at zero. */
export function emptyReceiverStats(): ProcessReceiverStats {
  return {
    ...emptyStats(),
    preHelloRefused: 0,
    helloTimeouts: 0,
    connectionsOverCap: 0,
    badFrames: 0,
    protocolErrors: 0,
    creditRevocations: 0,
    revokeTimeouts: 0,
    redelivered: 0,
  };
}

/** What {@link ChannelHandle.address} holds for this primitive: JSON-serialisable. */
export interface ProcessAddress extends ChannelAddress {
  /** The Unix socket path (or Windows named pipe). */
  readonly path: string;
}

/** What this primitive promises (the registry carries the same copy). */
export const characteristics: PrimitiveCharacteristics = Object.freeze({
  scopes: Object.freeze(['process']) as readonly ['process'],
  maxMessageBytes: 64 * 1024 * 1024,
  ordering: 'fifo',
  delivery: 'reliable',
});

/** True on Windows (named pipes; no socket files to manage). */
export const isWindows = process.platform === 'win32';
// 4096: at 1024 a 64 B stream between processes ran about half as fast (a credit round trip per 512 messages).
/** Default `maxmsg` of both ends. */
export const DEFAULT_MAXMSG = 4096;

/** `AMIX_ERR_LINK_CLOSED` naming this primitive. */
export function linkClosed(what: string, reason?: Error): AmixError {
  return linkClosedError(`${NAME} ${what}`, reason);
}

/** `AMIX_ERR_PEER_LOST` naming this primitive. */
export function peerLost(
  message: string,
  cause?: unknown,
  details: ErrorDetails['AMIX_ERR_PEER_LOST'] = {},
): AmixError {
  return peerLostError(`${NAME}: ${message}`, details, cause);
}

/** `AMIX_ERR_PROTOCOL` naming this primitive. */
export function protocolError(message: string, details?: ErrorDetails['AMIX_ERR_PROTOCOL']): AmixError {
  return coreProtocolError(`${NAME}: ${message}`, details);
}

/** Counters at zero. */
export { emptyStats };

/** The payload of an error frame: `CODE: message`, cut at {@link ERROR_MAX_BYTES}. */
export function errorPayload(err: AmixError): Buffer {
  const text = Buffer.from(`${err.code}: ${err.message}`, 'utf8');
  return text.length > ERROR_MAX_BYTES ? text.subarray(0, ERROR_MAX_BYTES) : text;
}

/** `err` if it is an AmixError, else one with `code` wrapping it. */
export const asAmix = asAmixError;

/** `AMIX_ERR_BUFFER_TOO_SMALL`: the next message is larger than the caller accepts. */
export function tooSmall(size: number, maxBytes: number): AmixError {
  return bufferTooSmallError(NAME, size, maxBytes);
}

/** One end's handle: its role, its address, and the state of that end (receiving or sending). */
export class EndHandle<Role extends 'send' | 'receive', State> implements ChannelHandle {
  constructor(
    readonly role: Role,
    readonly address: ProcessAddress,
    /** @internal */ readonly st: State,
  ) {}
}
