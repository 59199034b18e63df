/**
 * The `zeromq` primitive: a channel between processes or machines over
 * ZeroMQ (zeromq.js v6), optionally authenticated and encrypted with CURVE.
 *
 * One channel is one directed flow. `create()` without an address binds a
 * ROUTER (default `tcp://127.0.0.1:*`) and returns the receiving end; its
 * address `{ endpoint, serverPublicKey?, maxmsg, minmsg, maxMessageBytes,
 * maxFrameBytes, discard }` is plain JSON. `create({ address })` connects a
 * DEALER there and returns the sending end. Several sending ends may attach
 * to one receiving end; each is a *session* with its own credit window, so
 * `maxmsg` bounds what each sender may have pending there.
 *
 * Wire protocol (one ZeroMQ frame per message, integers big-endian, u64
 * written as two u32):
 *
 * | frame | direction | layout |
 * |---|---|---|
 * | DATA | send → receive | `0x01` session:8 firstSeq:u64 firstUnacked:u64, then per message len:u32 bytes |
 * | HELLO | send → receive | `0x02` session:8 firstUnacked:u64 sentUpTo:u64 |
 * | PING | send → receive | `0x03` session:8 token:u32 |
 * | CREDIT | receive → send | `0x81` session:8 expected:u64 limit:u64 token:u32 flags:u8 (bit 0: resend) |
 *
 * Batching: `send` copies the message and accepts it at once while there is
 * credit; the messages accepted in one tick are packed into DATA frames of
 * up to `batchBytes` (default 64 KiB) on `setImmediate`, or as soon as a
 * batch is full.
 *
 * Backpressure (credit): the receiving end lets a session send sequence
 * numbers below `limit`. It starts at `maxmsg` (the address carries it, so
 * the first messages need no round trip) and is raised to
 * `consumed + maxmsg` whenever `limit - consumed` falls to `minmsg`, so at
 * most `maxmsg` messages are ever pending at the receiver. At zero credit
 * the sending end emits `suspended` and applies its discard policy; `resumed`
 * follows the next grant. Limits are absolute, so a repeated CREDIT is
 * harmless. Policies at zero credit: `block` waits (FIFO, abortable);
 * `reject` throws `AMIX_ERR_QUEUE_FULL`; `dropNewest` drops the message
 * being sent; `dropOldest` keeps up to `maxmsg` messages waiting at the
 * sender and drops the oldest of those (messages already on the wire are
 * never recalled). Every drop and refusal is counted and emitted.
 *
 * Closing: a graceful close (`Channel.close`) flushes and waits up to
 * `closeTimeoutMs` (default 2 s) until the receiving end has acknowledged
 * every message; `destroy` does not wait. Messages still unacknowledged
 * then are counted in `stats().lost`. A receiving end that closes gracefully
 * first acknowledges what it received to every sender (the CREDIT a PING
 * would have got), so a sender closing at the same time finishes at once
 * instead of waiting out its timeout. Sockets close with linger 0, except
 * that last CREDIT, given 100 ms to leave.
 *
 * Peer loss: ZeroMQ reconnects by itself; the sending end turns the socket
 * monitor into `peerLost`, `reconnecting` and `reconnected` events. Every
 * message stays buffered until a CREDIT acknowledges it (`expected`). After
 * a reconnect the sending end says HELLO; the receiving end answers with
 * what it has and the sender re-sends the rest, which the receiver
 * de-duplicates by sequence number. So a connection drop loses nothing and
 * duplicates nothing (`reconnected` reports `resent`, `lost` is 0). If the
 * receiving *process* is replaced, messages it had acknowledged but not
 * handed out are gone with it; the rest are re-sent to the new one.
 *
 * CURVE: a receiving end given `zeromq.curve` keys is a CURVE server and
 * puts its public key in the address; a sending end attached to such an
 * address is a CURVE client (with `zeromq.curve` keys, or a throw-away pair).
 * With `curve.allow`, the process's ZAP handler (`primitives/zeromq/keys.ts`) refuses every
 * client key not listed; refusals are counted in `stats().refused` and
 * reported to `zeromq.onRefused`, and the refused sender's `connect()`
 * rejects with `AMIX_ERR_UNAUTHORIZED`.
 *
 * Malformed frames are dropped whole, counted in `stats().badFrames` and
 * reported to `zeromq.onBadFrame` as `AMIX_ERR_BAD_FRAME`; they never throw
 * out of the receive loop.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { AmixError, ErrorCode, abortError, invalidArg } from '../lib/core/errors.js';
import { queueAbortable, type Abortable } from '../lib/core/waitList.js';
import { AllowList, isCurveKey, zapAuthenticator, type RefusedPeer } from './zeromq/keys.js';
import type {
  ChannelEvent,
  ChannelHandle,
  ChannelOptions,
  ChannelStats,
  DiscardPolicy,
  Primitive,
  PrimitiveCharacteristics,
  ReceiveOptions,
  SendOptions,
} from '../lib/core/primitive.js';

/** Frame kinds of the wire protocol (first byte of every frame). */
export const FrameKind = { data: 0x01, hello: 0x02, ping: 0x03, credit: 0x81 } as const;
/** One of {@link FrameKind}. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const DATA_HEADER = 25;
const HELLO_SIZE = 25;
const PING_SIZE = 13;
const CREDIT_SIZE = 30;
const SESSION_BYTES = 8;
const MAX_SESSIONS = 1024;
/** How long a gracefully closed receiving end's socket keeps its last CREDITs to send. */
const FAREWELL_LINGER_MS = 100;
const TWO32 = 0x1_0000_0000;

/** The primitive's characteristics (the registry carries the same copy). */
export const characteristics: PrimitiveCharacteristics = Object.freeze({
  scopes: Object.freeze(['remote', 'process'] as const),
  maxMessageBytes: 64 * 1024 * 1024,
  ordering: 'fifo',
  delivery: 'reliable',
});

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
  /** Receiving end: called for each client the ZAP handler refused (CURVE allow-list). */
  onRefused?: (peer: RefusedPeer) => void;
  /** Called with an `AMIX_ERR_BAD_FRAME` error for each malformed frame dropped. */
  onBadFrame?: (error: AmixError) => void;
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

/** {@link ChannelStats} plus the primitive's own counters. */
export interface ZeromqStats extends ChannelStats {
  /** Malformed frames dropped. */
  badFrames: number;
  /** Messages that arrived twice (after a re-send) and were dropped. */
  duplicates: number;
  /** Messages sent again after a reconnect or a gap. */
  resent: number;
  /** Receiving end: clients refused at the handshake (allow-list, mechanism). Sending end: refusals seen. */
  refused: number;
  /** Messages accepted but never acknowledged when the end closed. */
  lost: number;
}

interface Counters extends ZeromqStats {}

function newCounters(): Counters {
  return {
    sent: 0,
    received: 0,
    pending: 0,
    dropped: 0,
    rejected: 0,
    suspensions: 0,
    bytesSent: 0,
    bytesReceived: 0,
    badFrames: 0,
    duplicates: 0,
    resent: 0,
    refused: 0,
    lost: 0,
  };
}

/** The state both kinds of end start with. */
function common(options: ChannelOptions, maxMessageBytes: number, z: ZeromqOptions): Common {
  return {
    onEvent: options.onEvent,
    stats: newCounters(),
    maxMessageBytes,
    onBadFrame: z.onBadFrame,
    closed: false,
    closeReason: undefined,
  };
}

interface Common {
  readonly onEvent: ((e: ChannelEvent) => void) | undefined;
  readonly stats: Counters;
  readonly maxMessageBytes: number;
  readonly onBadFrame: ((e: AmixError) => void) | undefined;
  closed: boolean;
  closeReason: Error | undefined;
}

/** The receiving end's state. */
export interface ZeromqReceiveHandle extends Omit<ChannelHandle, 'maxMessageBytes'>, Common {
  readonly role: 'receive';
  readonly address: ZeromqAddress;
  /** @internal */ readonly socket: zmq.Router;
  /** @internal */ readonly queue: Item[];
  /** @internal */ head: number;
  /** @internal */ readonly readers: Reader[];
  /** @internal */ readonly sessions: Map<string, Session>;
  /** @internal */ suspendedByUser: boolean;
  /** @internal */ releaseZap: (() => Promise<void>) | undefined;
  /** @internal */ live: number;
  /** @internal */ refusing: number;
  /** @internal */ lostPeer: boolean;
  /** @internal */ loop: Promise<void>;
}

/** The sending end's state. */
export interface ZeromqSendHandle extends Omit<ChannelHandle, 'maxMessageBytes'>, Common {
  readonly role: 'send';
  readonly address: ZeromqAddress;
  /** @internal */ readonly socket: zmq.Dealer;
  /** @internal */ readonly session: Buffer;
  /** @internal */ readonly discard: DiscardPolicy;
  /** @internal */ readonly batchBytes: number;
  /** @internal */ readonly connectTimeoutMs: number;
  /** @internal */ readonly closeTimeoutMs: number;
  /** @internal */ nextSeq: number;
  /** @internal */ acked: number;
  /** @internal */ limit: number;
  /** @internal Every sequence number below it has been handed to the outbox. */ sentUpTo: number;
  /** @internal Sealed DATA frames not yet acknowledged, oldest first, from index `framesHead`. */ frames: DataFrame[];
  /** @internal */ framesHead: number;
  /** @internal The DATA frame being filled (header written at seal). */ cur: Buffer | undefined;
  /** @internal Reused as `cur` for batches of small messages. */ scratch: Buffer | undefined;
  /** @internal */ curOff: number;
  /** @internal */ curFirst: number;
  /** @internal */ curCount: number;
  /** @internal */ readonly backlog: Buffer[];
  /** @internal */ readonly waiters: Waiter[];
  /** @internal */ readonly outbox: Buffer[];
  /** @internal */ writing: boolean;
  /** @internal */ flushScheduled: boolean;
  /** @internal */ suspendedByUser: boolean;
  /** @internal */ creditSuspended: boolean;
  /** @internal */ credited: boolean;
  /** @internal */ connectWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
  /** @internal */ pings: Map<number, { upTo: number; resolve: () => void; reject: (e: Error) => void }>;
  /** @internal */ nextToken: number;
  /** @internal */ connected: boolean;
  /** @internal */ lostPeer: boolean;
  /** @internal */ awaitingWelcome: boolean;
  /** @internal */ attempts: number;
  /** @internal */ authError: AmixError | undefined;
  /** @internal */ detached: boolean;
  /** @internal */ loop: Promise<void>;
}

/** Either end. */
export type ZeromqHandle = ZeromqReceiveHandle | ZeromqSendHandle;

interface Item {
  data: Buffer;
  session: Session;
}
interface DataFrame {
  buf: Buffer;
  first: number;
  end: number;
}
interface Reader extends Abortable {
  resolve: (b: Uint8Array) => void;
  maxBytes: number;
}
interface Waiter extends Abortable {
  data: Buffer;
  resolve: () => void;
}
interface Session {
  readonly key: string;
  readonly id: Buffer;
  route: Buffer;
  expected: number;
  consumed: number;
  limit: number;
  queued: number;
  resendAskedAt: number;
  suspended: boolean;
}

function writeU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / TWO32), off);
  b.writeUInt32BE(v >>> 0, off + 4);
}
function readU64(b: Buffer, off: number): number {
  const hi = b.readUInt32BE(off);
  if (hi >= 0x200000) throw badFrame('a sequence number is beyond 2^53');
  return hi * TWO32 + b.readUInt32BE(off + 4);
}

function badFrame(message: string, details: Record<string, unknown> = {}): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_BAD_FRAME, `zeromq frame ${message}`, { details });
}

function closedError(h: Common, what: string): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_LINK_CLOSED,
    `zeromq channel closed${what ? ` ${what}` : ''}`,
    h.closeReason ? { cause: h.closeReason } : {},
  );
}

function emit(h: Common, e: ChannelEvent): void {
  try {
    h.onEvent?.(e);
  } catch {
    // onEvent must not throw; if it does, the transport carries on.
  }
}

function reportBad(h: Common, err: AmixError): void {
  h.stats.badFrames++;
  try {
    h.onBadFrame?.(err);
  } catch {
    // An observer's failure must not reach the receive loop.
  }
}

/** A parsed frame. */
export type Frame =
  | { kind: 'data'; session: Buffer; firstSeq: number; firstUnacked: number; messages: Buffer[] }
  | { kind: 'hello'; session: Buffer; firstUnacked: number; sentUpTo: number }
  | { kind: 'ping'; session: Buffer; token: number }
  | { kind: 'credit'; session: Buffer; expected: number; limit: number; token: number; resend: boolean };

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
      const messages: Buffer[] = [];
      let off = DATA_HEADER;
      while (off < frame.length) {
        if (frame.length - off < 4) throw badFrame('ends inside a length prefix', { offset: off });
        const len = frame.readUInt32BE(off);
        off += 4;
        if (len > maxMessageBytes)
          throw badFrame(`carries a message of ${len} bytes, above the channel maximum of ${maxMessageBytes}`, {
            size: len,
          });
        if (len > frame.length - off)
          throw badFrame(`announces ${len} bytes but only ${frame.length - off} follow`, { offset: off });
        messages.push(frame.subarray(off, off + len));
        off += len;
      }
      if (messages.length === 0) throw badFrame('carries no message');
      if (firstUnacked > firstSeq || !Number.isSafeInteger(firstSeq + messages.length))
        throw badFrame('has inconsistent sequence numbers');
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

function checkEndpoint(name: string, v: unknown): string {
  if (typeof v !== 'string' || !/^(tcp|ipc|inproc):\/\/.+/.test(v))
    throw invalidArg(name, 'must be a tcp://, ipc:// or inproc:// endpoint', v);
  return v;
}

function positive(name: string, v: unknown, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (allowZero ? 0 : 1))
    throw invalidArg(`options.zeromq.${name}`, `must be a ${allowZero ? 'non-negative' : 'positive'} integer`, v);
  return v;
}

function socketOptions(z: ZeromqOptions): Record<string, number> {
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

// ---------------------------------------------------------------- receiving end

async function createReceiver(options: ZeromqChannelOptions): Promise<ZeromqReceiveHandle> {
  const z = options.zeromq ?? {};
  const maxMessageBytes = options.maxMessageBytes ?? characteristics.maxMessageBytes;
  const maxmsg = options.maxmsg ?? ZEROMQ_DEFAULTS.maxmsg;
  const minmsg = options.minmsg ?? Math.floor(maxmsg / 2);
  if (!Number.isSafeInteger(maxmsg) || maxmsg < 1)
    throw invalidArg('options.maxmsg', 'must be a positive integer', maxmsg);
  if (!Number.isSafeInteger(minmsg) || minmsg < 0 || minmsg >= maxmsg)
    throw invalidArg('options.minmsg', 'must be an integer from 0 to maxmsg - 1', minmsg);
  const bind = checkEndpoint('options.zeromq.bind', z.bind ?? ZEROMQ_DEFAULTS.bind);
  const curve = z.curve;
  const batchBytes = positive('batchBytes', z.batchBytes, ZEROMQ_DEFAULTS.batchBytes);
  const maxFrameBytes = maxFrameBytesFor(maxMessageBytes, batchBytes);
  const sockOpts: Record<string, unknown> = { ...socketOptions(z), maxMessageSize: maxFrameBytes };
  let releaseZap: (() => Promise<void>) | undefined;
  if (curve) {
    if (!isCurveKey(curve.publicKey) || !isCurveKey(curve.secretKey))
      throw invalidArg(
        'options.zeromq.curve',
        'needs publicKey and secretKey, Z85-encoded CURVE keys (see generateKeyPair)',
      );
    Object.assign(sockOpts, { curveServer: true, curveSecretKey: curve.secretKey, curvePublicKey: curve.publicKey });
    if (curve.allow !== undefined) {
      const allow = curve.allow instanceof AllowList ? curve.allow : new AllowList(curve.allow);
      const domain = zapAuthenticator.newDomain('amix.zeromq');
      const onRefused = z.onRefused;
      releaseZap = await zapAuthenticator.register(domain, { allow, ...(onRefused ? { onRefused } : {}) });
      // Fail closed: without a ZAP handler answering, ZeroMQ would otherwise accept every client.
      Object.assign(sockOpts, { zapDomain: domain, zapEnforceDomain: true });
    }
  } else if (!isLoopback(bind)) {
    process.emitWarning(`zeromq primitive: binding ${bind} without CURVE keys; anyone who can reach it may send`, {
      code: 'AMIX_ZEROMQ_INSECURE',
    });
  }
  const socket = new zmq.Router(sockOpts);
  const h: ZeromqReceiveHandle = {
    role: 'receive',
    address: undefined as unknown as ZeromqAddress,
    ...common(options, maxMessageBytes, z),
    socket,
    queue: [],
    head: 0,
    readers: [],
    sessions: new Map(),
    suspendedByUser: false,
    releaseZap,
    live: 0,
    refusing: 0,
    lostPeer: false,
    loop: Promise.resolve(),
  };
  watchReceiver(h);
  try {
    await socket.bind(bind);
  } catch (err) {
    socket.close();
    await releaseZap?.();
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `zeromq primitive cannot bind ${bind}: ${(err as Error).message}`,
      { cause: err, details: { option: 'options.zeromq.bind' } },
    );
  }
  const endpoint =
    z.advertise !== undefined ? checkEndpoint('options.zeromq.advertise', z.advertise) : socket.lastEndpoint!;
  (h as { address: ZeromqAddress }).address = Object.freeze({
    endpoint,
    ...(curve ? { serverPublicKey: curve.publicKey! } : {}),
    maxmsg,
    minmsg,
    maxMessageBytes,
    maxFrameBytes,
    discard: options.discard ?? 'block',
  });
  h.loop = receiveLoop(h, maxmsg);
  return h;
}

function watchReceiver(h: ZeromqReceiveHandle): void {
  const ev = h.socket.events;
  ev.on('handshake', () => {
    h.live++;
  });
  const refused = () => {
    h.stats.refused++;
    h.refusing++;
  };
  ev.on('handshake:error:auth', refused);
  ev.on('handshake:error:protocol', refused);
  ev.on('handshake:error:other', refused);
  ev.on('disconnect', () => {
    if (h.refusing > 0) {
      h.refusing--;
      return;
    }
    if (h.live > 0) {
      h.live--;
      if (!h.closed && !h.lostPeer) {
        h.lostPeer = true;
        emit(h, {
          type: 'peerLost',
          error: new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, 'a sending end of the zeromq channel disconnected'),
        });
      }
    }
  });
}

async function receiveLoop(h: ZeromqReceiveHandle, maxmsg: number): Promise<void> {
  try {
    for await (const parts of h.socket) {
      if (h.closed) break;
      const route = parts[0]!;
      if (parts.length !== 2) {
        reportBad(h, badFrame(`message has ${parts.length - 1} parts, expected 1`));
        continue;
      }
      let f: Frame;
      try {
        f = parseFrame(parts[1]!, h.maxMessageBytes);
      } catch (err) {
        reportBad(h, err as AmixError);
        continue;
      }
      if (f.kind === 'credit') {
        reportBad(h, badFrame('CREDIT sent to a receiving end'));
        continue;
      }
      const key = f.session.toString('hex');
      let s = h.sessions.get(key);
      if (!s) {
        const start = f.kind === 'ping' ? 0 : f.firstUnacked;
        s = {
          key,
          id: Buffer.from(f.session),
          route,
          expected: start,
          consumed: start,
          limit: start + maxmsg,
          queued: 0,
          resendAskedAt: -1,
          suspended: false,
        };
        addSession(h, s);
      }
      s.route = route;
      if (f.kind === 'data') {
        resync(s, f.firstUnacked, maxmsg);
        onData(h, s, f);
      } else if (f.kind === 'hello') {
        // A HELLO opens each connection: whatever the sender sent beyond `expected` was lost with the old one.
        resync(s, f.firstUnacked, maxmsg);
        const resend = s.expected < f.sentUpTo;
        if (resend) s.resendAskedAt = s.expected;
        if (h.lostPeer) {
          h.lostPeer = false;
          emit(h, { type: 'reconnected', resent: 0, lost: 0 });
        }
        void sendCredit(h, s, 0, resend);
      } else void sendCredit(h, s, f.token, false);
    }
  } catch (err) {
    if (!h.closed) {
      // The socket failed under us (not a close we asked for): end the channel with the reason.
      h.closed = true;
      h.closeReason = new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `zeromq receive failed: ${(err as Error).message}`, {
        cause: err,
      });
      failReaders(h);
      emit(h, { type: 'closed', reason: h.closeReason });
    }
  }
}

/** The sender vouches that everything below `firstUnacked` was acknowledged: true only when this end restarted. */
function resync(s: Session, firstUnacked: number, maxmsg: number): void {
  if (firstUnacked <= s.expected) return;
  s.expected = firstUnacked;
  s.consumed = Math.max(s.consumed, firstUnacked - s.queued);
  s.limit = Math.max(s.limit, s.consumed + maxmsg);
}

function addSession(h: ZeromqReceiveHandle, s: Session): void {
  if (h.sessions.size >= MAX_SESSIONS) {
    for (const [k, old] of h.sessions) {
      if (old.queued === 0) {
        h.sessions.delete(k);
        break;
      }
    }
  }
  h.sessions.set(s.key, s);
}

function onData(h: ZeromqReceiveHandle, s: Session, f: Extract<Frame, { kind: 'data' }>): void {
  let seq = f.firstSeq;
  let gap = false;
  for (const m of f.messages) {
    if (seq < s.expected) {
      h.stats.duplicates++;
      seq++;
      continue;
    }
    if (seq > s.expected) {
      gap = true;
      break;
    }
    if (seq >= s.limit) {
      // Beyond the credit granted: a misbehaving peer. Drop the rest; a correct sender never gets here.
      reportBad(h, badFrame('carries messages beyond the granted credit', { seq, limit: s.limit }));
      break;
    }
    s.expected++;
    seq++;
    s.queued++;
    h.stats.received++;
    h.stats.bytesReceived += m.length;
    deliver(h, { data: m, session: s });
  }
  if (gap && s.resendAskedAt !== s.expected) {
    s.resendAskedAt = s.expected;
    void sendCredit(h, s, 0, true);
  }
  if (s.expected >= s.limit && !s.suspended) {
    s.suspended = true;
    h.stats.suspensions++;
    emit(h, { type: 'suspended', pending: queueLength(h) });
  }
}

function queueLength(h: ZeromqReceiveHandle): number {
  return h.queue.length - h.head;
}

function deliver(h: ZeromqReceiveHandle, item: Item): void {
  while (h.readers.length > 0 && queueLength(h) === 0) {
    const r = h.readers[0]!;
    if (item.data.length > r.maxBytes) {
      h.readers.shift();
      r.cleanup?.();
      r.reject(tooSmall(item.data.length, r.maxBytes));
      continue;
    }
    h.readers.shift();
    r.cleanup?.();
    consumed(h, item);
    r.resolve(item.data);
    return;
  }
  h.queue.push(item);
}

function tooSmall(size: number, max: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL,
    `next zeromq message is ${size} bytes, the caller accepts ${max}`,
    { details: { size, max } },
  );
}

function consumed(h: ZeromqReceiveHandle, item: Item): void {
  const s = item.session;
  s.queued--;
  s.consumed++;
  maybeGrant(h, s);
}

function maybeGrant(h: ZeromqReceiveHandle, s: Session): void {
  const { maxmsg, minmsg } = h.address;
  if (h.suspendedByUser || h.closed || s.limit - s.consumed > minmsg) return;
  s.limit = s.consumed + maxmsg;
  if (s.suspended) {
    s.suspended = false;
    emit(h, { type: 'resumed', pending: queueLength(h) });
  }
  void sendCredit(h, s, 0, false);
}

async function sendCredit(
  h: ZeromqReceiveHandle,
  s: Session,
  token: number,
  resend: boolean,
  closing = false,
): Promise<void> {
  if (h.closed && !closing) return;
  const b = Buffer.allocUnsafe(CREDIT_SIZE);
  b[0] = FrameKind.credit;
  s.id.copy(b, 1);
  writeU64(b, 9, s.expected);
  writeU64(b, 17, s.limit);
  b.writeUInt32BE(token >>> 0, 25);
  b[29] = resend ? 1 : 0;
  try {
    // A ROUTER never blocks: a frame for a peer that is gone is dropped, and the peer's next HELLO asks again.
    await h.socket.send([s.route, b]);
  } catch {
    // Closed meanwhile.
  }
}

function takeNext(h: ZeromqReceiveHandle, maxBytes: number): Uint8Array | undefined {
  if (queueLength(h) === 0) return undefined;
  const item = h.queue[h.head]!;
  if (item.data.length > maxBytes) throw tooSmall(item.data.length, maxBytes);
  h.queue[h.head] = undefined as unknown as Item;
  h.head++;
  if (h.head > 1024 && h.head * 2 > h.queue.length) {
    h.queue.splice(0, h.head);
    h.head = 0;
  }
  consumed(h, item);
  return item.data;
}

function failReaders(h: ZeromqReceiveHandle): void {
  for (const r of h.readers.splice(0)) {
    r.cleanup?.();
    r.reject(closedError(h, 'while receiving'));
  }
}

// ---------------------------------------------------------------- sending end

function checkAddress(a: unknown): ZeromqAddress {
  if (a === null || typeof a !== 'object')
    throw invalidArg('options.address', 'must be the address of a zeromq receiving end', a);
  const x = a as Record<string, unknown>;
  checkEndpoint('options.address.endpoint', x.endpoint);
  if (x.serverPublicKey !== undefined && !isCurveKey(x.serverPublicKey))
    throw invalidArg('options.address.serverPublicKey', 'must be a Z85 CURVE key', x.serverPublicKey);
  for (const k of ['maxmsg', 'maxMessageBytes', 'maxFrameBytes'] as const) {
    if (typeof x[k] !== 'number' || !Number.isSafeInteger(x[k]) || (x[k] as number) < 1)
      throw invalidArg(`options.address.${k}`, 'must be a positive integer', x[k]);
  }
  return x as unknown as ZeromqAddress;
}

async function createSender(options: ZeromqChannelOptions): Promise<ZeromqSendHandle> {
  const address = checkAddress(options.address);
  const z = options.zeromq ?? {};
  const sockOpts: Record<string, unknown> = { ...socketOptions(z), sendHighWaterMark: 0 };
  if (address.serverPublicKey !== undefined) {
    let pair = z.curve;
    if (pair?.publicKey === undefined || pair.secretKey === undefined) pair = zmq.curveKeyPair();
    else if (!isCurveKey(pair.publicKey) || !isCurveKey(pair.secretKey))
      throw invalidArg('options.zeromq.curve', 'needs Z85-encoded publicKey and secretKey');
    Object.assign(sockOpts, {
      curveServerKey: address.serverPublicKey,
      curvePublicKey: pair.publicKey,
      curveSecretKey: pair.secretKey,
    });
  }
  const socket = new zmq.Dealer(sockOpts);
  const maxMessageBytes = Math.min(options.maxMessageBytes ?? characteristics.maxMessageBytes, address.maxMessageBytes);
  const h: ZeromqSendHandle = {
    role: 'send',
    address,
    ...common(options, maxMessageBytes, z),
    socket,
    session: randomBytes(SESSION_BYTES),
    discard: options.discard ?? address.discard ?? 'block',
    batchBytes: Math.min(positive('batchBytes', z.batchBytes, ZEROMQ_DEFAULTS.batchBytes), address.maxFrameBytes),
    connectTimeoutMs: positive('connectTimeoutMs', z.connectTimeoutMs, ZEROMQ_DEFAULTS.connectTimeoutMs),
    closeTimeoutMs: positive('closeTimeoutMs', z.closeTimeoutMs, ZEROMQ_DEFAULTS.closeTimeoutMs, true),
    nextSeq: 0,
    acked: 0,
    limit: address.maxmsg,
    sentUpTo: 0,
    frames: [],
    framesHead: 0,
    cur: undefined,
    scratch: undefined,
    curOff: DATA_HEADER,
    curFirst: 0,
    curCount: 0,
    backlog: [],
    waiters: [],
    outbox: [],
    writing: false,
    flushScheduled: false,
    suspendedByUser: false,
    creditSuspended: false,
    credited: false,
    connectWaiters: [],
    pings: new Map(),
    nextToken: 1,
    connected: false,
    lostPeer: false,
    awaitingWelcome: false,
    attempts: 0,
    authError: undefined,
    detached: false,
    loop: Promise.resolve(),
  };
  watchSender(h);
  socket.connect(address.endpoint);
  h.loop = creditLoop(h);
  return h;
}

function watchSender(h: ZeromqSendHandle): void {
  const ev = h.socket.events;
  ev.on('handshake', () => {
    h.connected = true;
    h.attempts = 0;
    h.authError = undefined;
    h.awaitingWelcome = true;
    sendHello(h);
    flush(h);
  });
  ev.on('disconnect', () => {
    if (h.closed || !h.connected) return;
    h.connected = false;
    h.credited = false;
    if (!h.lostPeer) {
      h.lostPeer = true;
      emit(h, {
        type: 'peerLost',
        error: new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `lost the connection to ${h.address.endpoint}`, {
          details: { endpoint: h.address.endpoint },
        }),
      });
    }
  });
  ev.on('connect:retry', (e) => {
    if (h.closed || h.detached) return;
    emit(h, { type: 'reconnecting', attempt: ++h.attempts, delayMs: e.interval });
  });
  const refused = (e: { error: Error }) => {
    if (h.closed) return;
    h.stats.refused++;
    const err = new AmixError(
      ErrorCode.AMIX_ERR_UNAUTHORIZED,
      `${h.address.endpoint} refused this end at the handshake: ${e.error.message}`,
      { cause: e.error, details: { endpoint: h.address.endpoint } },
    );
    const first = h.authError === undefined;
    h.authError = err;
    for (const w of h.connectWaiters.splice(0)) w.reject(err);
    if (first) emit(h, { type: 'peerLost', error: err });
  };
  ev.on('handshake:error:auth', refused);
  ev.on('handshake:error:protocol', refused);
  ev.on('handshake:error:other', refused);
}

function sendHello(h: ZeromqSendHandle): void {
  const b = Buffer.allocUnsafe(HELLO_SIZE);
  b[0] = FrameKind.hello;
  h.session.copy(b, 1);
  writeU64(b, 9, h.acked);
  writeU64(b, 17, h.sentUpTo);
  // Ahead of queued data: the HELLO reply decides what must be re-sent.
  h.outbox.unshift(b);
  void write(h);
}

async function creditLoop(h: ZeromqSendHandle): Promise<void> {
  try {
    for await (const parts of h.socket) {
      if (h.closed) break;
      let f: Frame;
      try {
        if (parts.length !== 1) throw badFrame(`message has ${parts.length} parts, expected 1`);
        f = parseFrame(parts[0]!, 0);
        if (f.kind !== 'credit') throw badFrame(`of kind ${f.kind} sent to a sending end`);
        if (!f.session.equals(h.session)) throw badFrame('CREDIT for another session');
      } catch (err) {
        reportBad(h, err as AmixError);
        continue;
      }
      onCredit(h, f);
    }
  } catch {
    // Closed under a pending receive: destroy handles the rest.
  }
}

function onCredit(h: ZeromqSendHandle, f: Extract<Frame, { kind: 'credit' }>): void {
  if (f.expected > h.acked) {
    h.acked = Math.min(f.expected, h.sentUpTo);
    while (h.framesHead < h.frames.length && h.frames[h.framesHead]!.end <= h.acked)
      h.frames[h.framesHead++] = undefined as unknown as DataFrame;
    if (h.framesHead > 64 && h.framesHead * 2 > h.frames.length) {
      h.frames.splice(0, h.framesHead);
      h.framesHead = 0;
    }
  }
  if (f.limit > h.limit) h.limit = f.limit;
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
  for (const w of h.connectWaiters.splice(0)) w.resolve();
  if (f.token !== 0) {
    const p = h.pings.get(f.token);
    if (p) {
      h.pings.delete(f.token);
      p.resolve();
    }
  }
  // A PING is answered as well by any CREDIT that acknowledges everything sent
  // before it: a receiving end that closes says so once (see destroy) and never
  // answers a PING that arrives after that.
  for (const [token, p] of h.pings)
    if (p.upTo <= h.acked) {
      h.pings.delete(token);
      p.resolve();
    }
  pump(h);
}

/** Queue again every sealed frame holding a sequence number from `from` on; the receiver drops what it already has. */
function resendFrom(h: ZeromqSendHandle, from: number): number {
  let resent = 0;
  for (let i = h.framesHead; i < h.frames.length; i++) {
    const fr = h.frames[i]!;
    if (fr.end <= from) continue;
    h.outbox.push(fr.buf);
    resent += fr.end - Math.max(fr.first, from);
  }
  h.stats.resent += resent;
  void write(h);
  return resent;
}

function credit(h: ZeromqSendHandle): number {
  return h.limit - h.nextSeq;
}

/** Move backlog and blocked sends into the window while there is credit; emit resumed/suspended. */
function pump(h: ZeromqSendHandle): void {
  if (h.closed) return;
  if (!h.suspendedByUser) {
    while (credit(h) > 0 && h.backlog.length > 0) accept(h, h.backlog.shift()!);
    while (credit(h) > 0 && h.backlog.length === 0 && h.waiters.length > 0) {
      const w = h.waiters.shift()!;
      w.cleanup?.();
      accept(h, w.data);
      w.resolve();
    }
  }
  if (h.creditSuspended && credit(h) > 0) {
    h.creditSuspended = false;
    emit(h, { type: 'resumed', pending: pendingOf(h) });
  }
}

function pendingOf(h: ZeromqSendHandle): number {
  return h.nextSeq - h.acked + h.backlog.length + h.waiters.length;
}

function accept(h: ZeromqSendHandle, data: Uint8Array): void {
  const len = data.byteLength;
  if (h.cur !== undefined && h.curOff + 4 + len > h.cur.length) seal(h);
  if (h.cur === undefined) {
    const need = DATA_HEADER + 4 + len;
    h.scratch ??= Buffer.allocUnsafe(h.batchBytes);
    h.cur = need <= h.scratch.length ? h.scratch : Buffer.allocUnsafe(need);
    h.curOff = DATA_HEADER;
    h.curFirst = h.nextSeq;
    h.curCount = 0;
  }
  // Copied into the scratch frame; seal copies the whole batch out in one go.
  const b = h.cur;
  b.writeUInt32BE(len, h.curOff);
  b.set(data, h.curOff + 4);
  h.curOff += 4 + len;
  h.curCount++;
  h.nextSeq++;
  h.stats.sent++;
  h.stats.bytesSent += len;
  if (credit(h) <= 0 && !h.creditSuspended) {
    h.creditSuspended = true;
    h.stats.suspensions++;
    emit(h, { type: 'suspended', pending: pendingOf(h) });
  }
  if (h.curOff + 4 + 64 > b.length) flush(h);
  else scheduleFlush(h);
}

/** Close the frame being filled and queue it for writing. */
function seal(h: ZeromqSendHandle): void {
  const b = h.cur;
  if (b === undefined || h.curCount === 0) return;
  b[0] = FrameKind.data;
  h.session.copy(b, 1);
  writeU64(b, 9, h.curFirst);
  writeU64(b, 17, h.acked);
  // An exact-size copy, kept until acknowledged; the scratch buffer is reused for the next batch.
  const buf = b === h.scratch ? Buffer.from(b.subarray(0, h.curOff)) : b.subarray(0, h.curOff);
  const fr: DataFrame = { buf, first: h.curFirst, end: h.curFirst + h.curCount };
  h.cur = undefined;
  h.curCount = 0;
  h.frames.push(fr);
  h.sentUpTo = fr.end;
  h.outbox.push(fr.buf);
}

function scheduleFlush(h: ZeromqSendHandle): void {
  // Messages accepted in one tick share frames: they go out together on the next turn of the loop.
  if (h.flushScheduled) return;
  h.flushScheduled = true;
  setImmediate(() => {
    h.flushScheduled = false;
    flush(h);
  });
}

function flush(h: ZeromqSendHandle): void {
  seal(h);
  if (h.closed || h.detached) return;
  void write(h);
}

async function write(h: ZeromqSendHandle): Promise<void> {
  if (h.writing) return;
  h.writing = true;
  try {
    while (h.outbox.length > 0 && !h.closed && !h.detached) {
      await h.socket.send(h.outbox.shift()!);
    }
  } catch {
    // Closed under a pending send; unacknowledged messages are counted lost by destroy.
  } finally {
    h.writing = false;
  }
}

function checkSize(h: Common, data: Uint8Array): void {
  if (data.byteLength > h.maxMessageBytes) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE,
      `message of ${data.byteLength} bytes exceeds the zeromq channel maximum of ${h.maxMessageBytes}`,
      { details: { size: data.byteLength, max: h.maxMessageBytes } },
    );
  }
}

/** The synchronous part of send: accept, apply policy, or return false (must wait). */
function trySendNow(h: ZeromqSendHandle, data: Uint8Array): boolean {
  if (h.closed) throw closedError(h, '');
  checkSize(h, data);
  if (h.suspendedByUser || h.waiters.length > 0) return false;
  if (credit(h) > 0 && h.backlog.length === 0) {
    accept(h, data);
    return true;
  }
  switch (h.discard) {
    case 'dropNewest':
      h.stats.dropped++;
      emit(h, { type: 'dropped', policy: 'dropNewest', count: 1 });
      return true;
    case 'reject':
      h.stats.rejected++;
      throw new AmixError(
        ErrorCode.AMIX_ERR_QUEUE_FULL,
        `zeromq receiver at ${h.address.endpoint} has ${h.address.maxmsg} messages pending (maxmsg)`,
        { details: { maxmsg: h.address.maxmsg } },
      );
    case 'dropOldest':
      h.backlog.push(Buffer.from(data));
      // Messages already on the wire cannot be recalled; the oldest still waiting here go first.
      if (h.backlog.length > h.address.maxmsg) {
        h.backlog.shift();
        h.stats.dropped++;
        emit(h, { type: 'dropped', policy: 'dropOldest', count: 1 });
      }
      return true;
    default:
      return false;
  }
}

function sendBlocking(h: ZeromqSendHandle, data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) =>
    queueAbortable(h.waiters, { data: Buffer.from(data), resolve, reject, cleanup: null }, signal, 'send'),
  );
}

function waitCredited(h: ZeromqSendHandle, timeoutMs: number, what: string): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (h.authError) return Promise.reject(h.authError);
  if (h.credited) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const i = h.connectWaiters.indexOf(w);
      if (i >= 0) h.connectWaiters.splice(i, 1);
      reject(
        new AmixError(
          ErrorCode.AMIX_ERR_TIMEOUT,
          `${what}: no answer from ${h.address.endpoint} within ${timeoutMs} ms`,
          { details: { endpoint: h.address.endpoint, timeoutMs } },
        ),
      );
    }, timeoutMs);
    const w = {
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
      reject: (e: Error) => {
        clearTimeout(timer);
        reject(e);
      },
    };
    h.connectWaiters.push(w);
  });
}

function ping(h: ZeromqSendHandle, signal?: AbortSignal): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (signal?.aborted) return Promise.reject(abortError(signal, 'cycle'));
  const token = h.nextToken;
  h.nextToken = h.nextToken >= 0xffffffff ? 1 : h.nextToken + 1;
  const b = Buffer.allocUnsafe(PING_SIZE);
  b[0] = FrameKind.ping;
  h.session.copy(b, 1);
  b.writeUInt32BE(token, 9);
  // Behind every message accepted so far: a PING that overtook them would prove nothing.
  seal(h);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      h.pings.delete(token);
      reject(abortError(signal, 'cycle'));
    };
    h.pings.set(token, {
      upTo: h.nextSeq,
      resolve: () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      reject: (e) => {
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      },
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    h.outbox.push(b);
    void write(h);
  });
}

async function drainOnClose(h: ZeromqSendHandle): Promise<void> {
  if (h.closeTimeoutMs === 0 || h.detached) return;
  const deadline = Date.now() + h.closeTimeoutMs;
  flush(h);
  while (!h.closed && h.acked < h.nextSeq && h.authError === undefined) {
    const left = deadline - Date.now();
    if (left <= 0) return;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), left);
    try {
      await ping(h, ac.signal);
    } catch {
      return;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * A receiving end closing gracefully acknowledges what it has to every
 * session once more: a sender closing at the same moment would otherwise
 * send a PING this end never reads, wait `closeTimeoutMs`, and count as lost
 * messages that arrived. The socket lingers briefly so the CREDIT leaves.
 */
async function farewell(h: ZeromqReceiveHandle): Promise<void> {
  const sends: Promise<void>[] = [];
  for (const s of h.sessions.values()) sends.push(sendCredit(h, s, 0, false, true));
  await Promise.all(sends);
  try {
    h.socket.linger = FAREWELL_LINGER_MS;
  } catch {
    // A socket already gone: nothing to linger for.
  }
}

// ---------------------------------------------------------------- the primitive

async function destroy(handle: ZeromqHandle, reason?: Error): Promise<void> {
  if (handle.closed) return;
  if (handle.role === 'send' && reason === undefined) await drainOnClose(handle);
  if (handle.closed) return;
  handle.closed = true;
  handle.closeReason = reason;
  if (handle.role === 'receive') {
    failReaders(handle);
    if (reason === undefined) await farewell(handle);
    handle.socket.close();
    await handle.releaseZap?.();
  } else {
    const h = handle;
    const err = closedError(h, 'while sending');
    for (const w of h.waiters.splice(0)) {
      w.cleanup?.();
      w.reject(err);
    }
    for (const w of h.connectWaiters.splice(0)) w.reject(err);
    for (const p of h.pings.values()) p.reject(err);
    h.pings.clear();
    h.stats.lost += h.nextSeq - h.acked + h.backlog.length;
    h.backlog.length = 0;
    h.socket.close();
  }
}

/**
 * The `zeromq` primitive object (the module's default export).
 *
 * @example
 * const rx = await registry.open('zeromq', { zeromq: { curve: { ...serverKeys, allow: [client.publicKey] } } })
 * const tx = await registry.open('zeromq', { address: rx.address, zeromq: { curve: client } })
 */
export const zeromqPrimitive: Primitive<ZeromqHandle> = {
  name: 'zeromq',
  characteristics,

  async create(options: ChannelOptions): Promise<ZeromqHandle> {
    const o = options as ZeromqChannelOptions;
    if (o.zeromq !== undefined && (o.zeromq === null || typeof o.zeromq !== 'object'))
      throw invalidArg('options.zeromq', 'must be an object', o.zeromq);
    return o.address === undefined ? createReceiver(o) : createSender(o);
  },

  destroy,

  async send(handle: ZeromqHandle, data: Uint8Array, options: SendOptions = {}): Promise<void> {
    if (handle.role !== 'send') throw invalidArg('send()', 'needs a sending end');
    if (trySendNow(handle, data)) return;
    if (options.signal?.aborted) throw abortError(options.signal, 'send');
    return sendBlocking(handle, data, options.signal);
  },

  trySend(handle: ZeromqHandle, data: Uint8Array): boolean {
    if (handle.role !== 'send') throw invalidArg('trySend()', 'needs a sending end');
    return trySendNow(handle, data);
  },

  async receive(handle: ZeromqHandle, options: ReceiveOptions): Promise<Uint8Array> {
    if (handle.role !== 'receive') throw invalidArg('receive()', 'needs a receiving end');
    const h = handle;
    const now = takeNext(h, options.maxBytes);
    if (now !== undefined) return now;
    if (h.closed) throw closedError(h, '');
    const signal = options.signal;
    if (signal?.aborted) throw abortError(signal, 'receive');
    return new Promise<Uint8Array>((resolve, reject) =>
      queueAbortable(h.readers, { resolve, reject, maxBytes: options.maxBytes, cleanup: null }, signal, 'receive'),
    );
  },

  tryReceive(handle: ZeromqHandle, maxBytes: number): Uint8Array | undefined {
    if (handle.role !== 'receive') throw invalidArg('tryReceive()', 'needs a receiving end');
    return takeNext(handle, maxBytes);
  },

  /** Sending end: a PING through to the receiving end and its CREDIT back. Receiving end: nothing. */
  async cycle(handle: ZeromqHandle, options: SendOptions = {}): Promise<void> {
    if (handle.role !== 'send') return;
    await ping(handle, options.signal);
  },

  /** Sending end: wait until the receiving end has answered (`AMIX_ERR_TIMEOUT`, `AMIX_ERR_UNAUTHORIZED`). */
  async connect(handle: ZeromqHandle): Promise<void> {
    if (handle.role !== 'send') return;
    const h = handle;
    if (h.detached) {
      h.detached = false;
      h.socket.connect(h.address.endpoint);
    }
    await waitCredited(h, h.connectTimeoutMs, 'connect');
  },

  /** Sending end: drop the connection; messages stay buffered and go out after the next `connect()`. */
  async disconnect(handle: ZeromqHandle): Promise<void> {
    if (handle.role !== 'send' || handle.detached) return;
    const h = handle;
    h.detached = true;
    h.credited = false;
    h.connected = false;
    // Frames not yet written are dropped from the outbox; the HELLO on the next connection gets them re-sent.
    h.outbox.length = 0;
    h.socket.disconnect(h.address.endpoint);
  },

  /** Sending end: hold sends. Receiving end: stop granting credit, so remote senders stop at zero credit. */
  suspend(handle: ZeromqHandle): void {
    handle.suspendedByUser = true;
  },

  resume(handle: ZeromqHandle): void {
    handle.suspendedByUser = false;
    if (handle.role === 'send') pump(handle);
    else for (const s of handle.sessions.values()) maybeGrant(handle, s);
  },

  stats(handle: ZeromqHandle): ZeromqStats {
    const pending = handle.role === 'send' ? pendingOf(handle) : queueLength(handle);
    return { ...handle.stats, pending };
  },
};

export default zeromqPrimitive;
