/**
 * The `nats` primitive's wire protocol (frame kinds, the per-session tags, the
 * parser), its options, characteristics, counters, and the connection
 * helper that imports `@nats-io/transport-node` on first use. See the
 * module comment of `../nats.ts` for the frame table.
 *
 * @module
 */
import { createCipheriv, createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { ConnectionOptions, NatsConnection, TlsOptions } from '@nats-io/transport-node';
import { AmixError, ErrorCode, invalidArg, type ErrorDetails } from '../../lib/core/errors.js';
import {
  FRAMED_CHARACTERISTICS,
  dataMessages,
  framedBadFrame,
  framedCommon,
  readU64 as readU64Of,
  writeU64,
  type FramedCommon,
  type FramedFrame,
  type FramedStats,
} from '../../lib/core/framedWire.js';
import { emptyStats } from '../../lib/core/channel.js';
import type { ChannelOptions, DiscardPolicy, PrimitiveCharacteristics } from '../../lib/core/primitive.js';

/** Frame kinds (first byte of every frame). */
export const FrameKind = { data: 0x01, hello: 0x02, ping: 0x03, credit: 0x81 } as const;

/** Bytes of the tag that ends every frame (Poly1305, see {@link seal}). */
export const MAC_BYTES = 16;
/** Bytes of a session id. */
export const SESSION_BYTES = 8;
/** Bytes of the nonce after the session id: 4 zero bytes and a u64 counter (sending end), or random (CREDIT). */
export const NONCE_BYTES = 12;
/** Where the fields of every kind start: after kind, session and nonce. */
export const BODY = 1 + SESSION_BYTES + NONCE_BYTES;
/** Bytes of a DATA frame's header (kind, session, nonce, firstSeq, firstUnacked). */
export const DATA_HEADER = BODY + 16;
/** Sizes of the fixed frames, tag included. */
export const HELLO_SIZE = BODY + 16 + MAC_BYTES;
/** See {@link HELLO_SIZE}. */
export const PING_SIZE = BODY + 4 + MAC_BYTES;
/** See {@link HELLO_SIZE}. */
export const CREDIT_SIZE = BODY + 21 + MAC_BYTES;
/** What a DATA frame of one message adds to it: header, length prefix, tag. */
export const FRAME_OVERHEAD = DATA_HEADER + 4 + MAC_BYTES;

/** The primitive's characteristics (the registry carries the same copy). */
export const characteristics: PrimitiveCharacteristics = FRAMED_CHARACTERISTICS;

/** Defaults of {@link NatsOptions}. */
export const NATS_DEFAULTS = Object.freeze({
  servers: 'nats://127.0.0.1:4222',
  prefix: 'amix',
  maxmsg: 4096,
  batchBytes: 64 * 1024,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 2_000,
  helloIntervalMs: 250,
  maxSessions: 1024,
});

/**
 * The primitive-specific options, read from `ChannelOptions.nats`
 * (`registry.open('nats', { nats: { ... } })`). Credentials are this end's
 * own: none of them goes into the address.
 */
export interface NatsOptions {
  /** NATS server URL(s). Receiving end default `nats://127.0.0.1:4222`; sending end default the address's `servers`. */
  servers?: string | string[];
  /** Receiving end: the servers to put in the address instead of `servers` (what the other side can reach). */
  advertise?: string | string[];
  /** A connection of the caller's to use instead of opening one; the primitive never closes it. */
  connection?: NatsConnection;
  /** Token authentication (`authorization { token }` on the server). */
  token?: string;
  /** User and password authentication. */
  user?: string;
  pass?: string;
  /** An NKey seed (`SU...`): the server's `authorization { users: [{ nkey }] }`. */
  nkeySeed?: string;
  /** The contents of a `.creds` file (JWT + NKey seed, decentralised auth with accounts). */
  creds?: string;
  /** TLS to the server (`tls://` URLs, client certificates). */
  tls?: TlsOptions;
  /** Anything else of `@nats-io/transport-node`'s `ConnectionOptions`, passed through (e.g. `reconnectTimeWait`, `name`). */
  connectOptions?: Partial<ConnectionOptions>;
  /** The first subject token of the link's subjects. Default `amix`. */
  prefix?: string;
  /** Receiving end: the link's own subject token (stable across restarts: give it for a durable link). Default random. */
  id?: string;
  /**
   * Receiving end: the link key (base64url of 32 bytes) instead of a random one. A receiver that
   * replaces another on the same `id` (a durable link's restart) takes the old address's `key`, so
   * its senders and the frames already in the stream stay valid.
   */
  key?: string;
  /** Receiving end: carry DATA through a JetStream stream with explicit acks (see the module comment). Default false. */
  durable?: boolean;
  /** Receiving end, durable: the stream's storage. Default `file`. */
  storage?: 'file' | 'memory';
  /** Largest DATA frame built from small messages (at most the server's `max_payload`). Default 64 KiB. */
  batchBytes?: number;
  /** Sending end: how long `connect()` waits for the first CREDIT. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Sending end: how long a graceful close waits for outstanding messages to be acknowledged. Default 2000 ms. */
  closeTimeoutMs?: number;
  /** Sending end: with messages unacknowledged and no CREDIT for this long, say HELLO again (finds losses). Default 250 ms. */
  helloIntervalMs?: number;
  /** Receiving end: the most sending-end sessions it keeps. Default 1024. */
  maxSessions?: number;
  /** Called with an `AMIX_ERR_BAD_FRAME` error for each malformed or unauthenticated frame dropped. */
  onBadFrame?: (error: AmixError) => void;
}

/** {@link ChannelOptions} with the `nats` field. */
export type NatsChannelOptions = ChannelOptions & { nats?: NatsOptions };

/** The address of a receiving end (JSON). `key` is the link's secret: whoever has the address may send on the link. */
export type NatsAddress = {
  readonly servers: readonly string[];
  /** Where DATA, HELLO and PING go; CREDIT goes to `subject + '.c.' + session`. */
  readonly subject: string;
  /** The link key (base64url, 32 bytes): every frame carries a tag under a key derived from it. */
  readonly key: string;
  /** Durable links: the JetStream subject DATA is published to. */
  readonly stream?: string;
  readonly maxmsg: number;
  readonly minmsg: number;
  readonly maxMessageBytes: number;
  /** The largest frame the receiving end takes (the server's `max_payload` at most). */
  readonly maxFrameBytes: number;
  readonly discard: DiscardPolicy;
};

/** `ChannelStats`, the framed ends' counters (`FramedStats` in `lib/core/framedWire.ts`: badFrames, duplicates, resent, lost) and the primitive's own. */
export interface NatsStats extends FramedStats {
  /** Durable sending end: messages JetStream has acknowledged storing. */
  stored: number;
}

/** The state both kinds of end start with (`lib/core/framedWire.ts`, and the connection and link key). */
export interface Common extends FramedCommon {
  /** The end's counters. */
  readonly stats: NatsStats;
  /** @internal */ readonly nc: NatsConnection;
  /** @internal The connection is the caller's (not closed here). */ readonly ownsConnection: boolean;
  /** @internal */ readonly mac: Buffer;
}

/** The state both kinds of end start with. */
export function common(
  options: ChannelOptions,
  maxMessageBytes: number,
  n: NatsOptions,
  conn: { nc: NatsConnection; owns: boolean },
  mac: Buffer,
): Common {
  const stats: NatsStats = { ...emptyStats(), badFrames: 0, duplicates: 0, resent: 0, lost: 0, stored: 0 };
  return {
    ...framedCommon('nats', options.onEvent, stats, maxMessageBytes, n.onBadFrame),
    nc: conn.nc,
    ownsConnection: conn.owns,
    mac,
  };
}

// ---------------------------------------------------------------- connection

function list(v: string | string[] | readonly string[] | undefined, name: string): string[] | undefined {
  if (v === undefined) return undefined;
  const a = typeof v === 'string' ? v.split(',') : [...v];
  if (a.length === 0 || a.some((s) => typeof s !== 'string' || s.length === 0))
    throw invalidArg(name, 'must be a server URL or a non-empty list of them', v);
  return a;
}

/** The server URLs an end uses (`options.nats.servers`, else `fallback`). */
export function serversOf(n: NatsOptions, fallback: readonly string[] | undefined): string[] {
  return list(n.servers, 'options.nats.servers') ?? (fallback ? [...fallback] : [NATS_DEFAULTS.servers]);
}

/** The addresses to advertise. */
export function advertised(n: NatsOptions, servers: string[]): string[] {
  return list(n.advertise, 'options.nats.advertise') ?? servers;
}

/**
 * The end's connection: the caller's, or a new one (the client is imported
 * here, on first use, never when amix loads). It reconnects for ever; the
 * ends re-send what a reconnect lost.
 */
export async function openConnection(
  n: NatsOptions,
  servers: string[],
): Promise<{ nc: NatsConnection; owns: boolean }> {
  if (n.connection !== undefined) return { nc: n.connection, owns: false };
  const mod = await import('@nats-io/transport-node');
  const authenticator = [];
  if (n.nkeySeed !== undefined) authenticator.push(mod.nkeyAuthenticator(new TextEncoder().encode(n.nkeySeed)));
  if (n.creds !== undefined) authenticator.push(mod.credsAuthenticator(new TextEncoder().encode(n.creds)));
  const opts: ConnectionOptions = {
    servers,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    name: 'amix-nats',
    ...(n.token !== undefined ? { token: n.token } : {}),
    ...(n.user !== undefined ? { user: n.user, pass: n.pass } : {}),
    ...(n.tls !== undefined ? { tls: n.tls } : {}),
    ...(authenticator.length > 0 ? { authenticator } : {}),
    ...n.connectOptions,
  };
  try {
    return { nc: await mod.connect(opts), owns: true };
  } catch (err) {
    const auth = /authoriz|authentic|permission/i.test(String((err as Error).message));
    throw new AmixError(
      auth ? ErrorCode.AMIX_ERR_UNAUTHORIZED : ErrorCode.AMIX_ERR_PEER_LOST,
      `nats primitive cannot connect to ${servers.join(',')}: ${(err as Error).message}`,
      { cause: err, details: { endpoint: servers.join(',') } },
    );
  }
}

/** The error of a subscription the server ended: `AMIX_ERR_UNAUTHORIZED` for a permission violation. */
export function subscriptionError(subject: string, err: Error): AmixError {
  const denied = /permission/i.test(err.message) || err.name === 'PermissionViolationError';
  return new AmixError(
    denied ? ErrorCode.AMIX_ERR_UNAUTHORIZED : ErrorCode.AMIX_ERR_PEER_LOST,
    `nats subscription to ${subject} ended: ${err.message}`,
    { cause: err, details: denied ? { endpoint: subject, op: 'subscribe' } : { endpoint: subject } },
  );
}

/** The server's largest payload (default 1 MiB). */
export function maxPayload(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}

// ---------------------------------------------------------------- frames

export { writeU64 };

function readU64(b: Buffer, off: number): number {
  return readU64Of(b, off, badFrame, 'has a sequence number beyond 2^53');
}

/**
 * The key of one session and direction: HMAC-SHA256 of the link key over
 * `amix.nats.<dir>` and the session id. `s`: frames of the sending end
 * (DATA, HELLO, PING), whose nonces are its own counter; `r`: CREDIT, whose
 * nonces are random (a replaced receiving end starts no counter over).
 * Derived once per session, so the per-frame tag is the fast Poly1305.
 */
export function sessionKey(linkKey: Buffer, session: Uint8Array, dir: 's' | 'r'): Buffer {
  return createHmac('sha256', linkKey).update(`amix.nats.${dir}`).update(session).digest();
}

function tag(key: Buffer, frame: Buffer, end: number): Buffer {
  // ChaCha20-Poly1305 over no plaintext is a MAC of the associated data (the whole frame up to the tag), keyed by
  // (key, nonce): safe while a key never sees one nonce with two different frames. A re-sent frame is the same bytes.
  const c = createCipheriv('chacha20-poly1305', key, frame.subarray(1 + SESSION_BYTES, BODY), {
    authTagLength: MAC_BYTES,
  });
  c.setAAD(frame.subarray(0, end), { plaintextLength: 0 });
  c.final();
  return c.getAuthTag();
}

/** Write the tag of `b[0, end)` (its nonce already in place) into `b[end, end + MAC_BYTES)`. */
export function seal(key: Buffer, b: Buffer, end: number): void {
  tag(key, b, end).copy(b, end);
}

/** Put a sending end's nonce (4 zero bytes, then counter `n`) into frame `b`. */
export function counterNonce(b: Buffer, n: number): void {
  b.writeUInt32BE(0, 1 + SESSION_BYTES);
  writeU64(b, 1 + SESSION_BYTES + 4, n);
}

/** Put a random nonce into frame `b` (CREDIT). */
export function randomNonce(b: Buffer): void {
  randomFillSync(b, 1 + SESSION_BYTES, NONCE_BYTES);
}

/** A frame as raw bytes, long enough to hold a session id, a nonce and a tag (else `AMIX_ERR_BAD_FRAME`). */
export function frameBytes(raw: Uint8Array): Buffer {
  const all = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (all.length < BODY + MAC_BYTES) throw badFrame(`of ${all.length} bytes is too short`);
  return all;
}

/**
 * Sign a frame body (kind, session, nonce, fields; no tag) under the link
 * key, the way an end of the link would: for tests and tools.
 */
export function signFrame(linkKey: Buffer, body: Buffer): Buffer {
  const b = Buffer.concat([body, Buffer.alloc(MAC_BYTES)]);
  const dir = b[0] === FrameKind.credit ? 'r' : 's';
  seal(sessionKey(linkKey, b.subarray(1, 1 + SESSION_BYTES), dir), b, body.length);
  return b;
}

/** `AMIX_ERR_BAD_FRAME` for a nats frame. */
export function badFrame(message: string, details: ErrorDetails['AMIX_ERR_BAD_FRAME'] = {}): AmixError {
  return framedBadFrame('nats', message, details);
}

/** A parsed frame; messages are views into the frame. */
export type Frame = FramedFrame;

/**
 * Check a frame's tag under the link key (deriving the session key its kind
 * needs), then parse it: for tests and tools; the ends use `checkedFrame`
 * with the session key they keep. Throws `AMIX_ERR_BAD_FRAME` as that does.
 */
export function parseFrame(raw: Uint8Array, linkKey: Buffer, maxMessageBytes: number): Frame {
  const all = frameBytes(raw);
  const dir = all[0] === FrameKind.credit ? 'r' : 's';
  return checkedFrame(all, sessionKey(linkKey, all.subarray(1, 1 + SESSION_BYTES), dir), maxMessageBytes);
}

/**
 * Check the tag of `all` (from {@link frameBytes}) under the session key
 * `key`, then parse it. Throws `AMIX_ERR_BAD_FRAME` for a tag that does not
 * match (a publisher without the link key), an unknown kind, a wrong size, a
 * length running past the end, or a message above `maxMessageBytes`.
 */
export function checkedFrame(all: Buffer, key: Buffer, maxMessageBytes: number): Frame {
  const end = all.length - MAC_BYTES;
  if (!timingSafeEqual(tag(key, all, end), all.subarray(end)))
    throw badFrame('has a tag that does not match the link key');
  const frame = all.subarray(0, end);
  const kind = frame[0]!;
  const need = (n: number) => {
    if (frame.length !== n) throw badFrame(`of kind 0x${kind.toString(16)} has ${frame.length} bytes, expected ${n}`);
  };
  const session = frame.subarray(1, 1 + SESSION_BYTES);
  switch (kind) {
    case FrameKind.data: {
      if (frame.length < DATA_HEADER) throw badFrame('DATA is shorter than its header');
      const firstSeq = readU64(frame, BODY);
      const firstUnacked = readU64(frame, BODY + 8);
      const messages = dataMessages(frame, DATA_HEADER, maxMessageBytes, firstSeq, firstUnacked, badFrame);
      return { kind: 'data', session, firstSeq, firstUnacked, messages };
    }
    case FrameKind.hello: {
      need(HELLO_SIZE - MAC_BYTES);
      const firstUnacked = readU64(frame, BODY);
      const sentUpTo = readU64(frame, BODY + 8);
      if (firstUnacked > sentUpTo) throw badFrame('HELLO acknowledges beyond what it sent');
      return { kind: 'hello', session, firstUnacked, sentUpTo };
    }
    case FrameKind.ping:
      need(PING_SIZE - MAC_BYTES);
      return { kind: 'ping', session, token: frame.readUInt32BE(BODY) };
    case FrameKind.credit: {
      need(CREDIT_SIZE - MAC_BYTES);
      const flags = frame[BODY + 20]!;
      if (flags > 1) throw badFrame('CREDIT has unknown flags');
      return {
        kind: 'credit',
        session,
        expected: readU64(frame, BODY),
        limit: readU64(frame, BODY + 8),
        token: frame.readUInt32BE(BODY + 16),
        resend: flags === 1,
      };
    }
    default:
      throw badFrame(`has unknown kind 0x${kind.toString(16)}`, { kind });
  }
}

// ---------------------------------------------------------------- helpers of both ends

export { closedError, emit, reportBad } from '../../lib/core/framedWire.js';

/** An option that must be a positive (or non-negative) integer, or its default. */
export function positive(name: string, v: unknown, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (allowZero ? 0 : 1))
    throw invalidArg(`options.nats.${name}`, `must be a ${allowZero ? 'non-negative' : 'positive'} integer`, v);
  return v;
}

/** A subject token: letters, digits, `_` and `-` (no `.`, `*`, `>` or spaces). */
export function token(name: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(v))
    throw invalidArg(name, 'must be 1 to 64 letters, digits, _ or -', v);
  return v;
}

/** The 32-byte link key from its base64url text. */
export function linkKey(name: string, v: unknown): Buffer {
  const b = typeof v === 'string' && /^[A-Za-z0-9_-]{43}$/.test(v) ? Buffer.from(v, 'base64url') : undefined;
  if (b === undefined || b.length !== 32) throw invalidArg(name, 'must be a link key: base64url of 32 bytes', v);
  return b;
}

/** Publish, counting a failure (a closed or draining connection) as the caller's to handle by re-sending. */
export function publish(h: Common, subject: string, b: Uint8Array): boolean {
  try {
    h.nc.publish(subject, b);
    return true;
  } catch {
    return false;
  }
}
