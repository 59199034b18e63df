/**
 * `queueConditionProcess`: the primitive between processes of one machine,
 * over Unix domain sockets (named pipes on Windows: untested, but nothing in
 * the design depends on Unix).
 *
 * One channel is one directed flow. `create()` without an address makes the
 * receiving end: it listens on a new socket in the runtime directory and its
 * address is `{ path }`. `create({ address })` makes the sending end, which
 * dials that socket. One receiving end accepts several sending ends (each
 * connection is independent: a bad frame closes only its own).
 *
 * Wire protocol (frames from `../lib/core/framing.js`: u32 LE length, u8 kind, payload):
 *
 * | kind | name      | direction | payload                                              |
 * |-----:|-----------|-----------|------------------------------------------------------|
 * | 0    | data      | tx → rx   | the message (at most the receiver's maxMessageBytes) |
 * | 1    | credit    | rx → tx   | f64 limit, f64 acked (consumed count)                |
 * | 2    | cycle     | tx → rx   | u32 token (the null message)                         |
 * | 3    | cycleAck  | rx → tx   | u32 token                                            |
 * | 4    | hello     | tx → rx   | u8 version, 16 B session, f64 firstUnacked, f64 next |
 * | 5    | helloAck  | rx → tx   | u8 version, f64 resumeFrom, f64 limit, f64 acked, u32 maxMessageBytes |
 * | 6    | close     | both      | none: the session ends                               |
 * | 7    | detach    | tx → rx   | none: the connection ends, the session stays         |
 * | 8    | error     | both      | UTF-8 `CODE: message` (at most 1 KiB), then the connection ends |
 *
 * Messages of a session are numbered from 0 (the number is implied by order,
 * never sent). **Credit-based flow control**: the receiver grants an
 * absolute `limit` (the sender may send message numbers below it); the
 * receiver's pending queue plus the credit it has outstanding never exceeds
 * `maxmsg`, and it grants more only when that sum falls to `minmsg`
 * (hysteresis), so the receiver's pending never exceeds `maxmsg` even with a
 * slow consumer. A sender exceeding its credit is a protocol error (its
 * connection is closed with `AMIX_ERR_PROTOCOL`). With several sending ends
 * the credit is shared: free credit is split among connected senders when
 * granted, and a sender that disconnects or dies gives its unused credit
 * back at once; credit already granted to a live, idle sender is not
 * revoked, so it can delay a second sender until the receiver consumes.
 *
 * **Acknowledgement and reconnect**: `acked` in a credit frame counts the
 * messages the receiving *application* has consumed. The sender keeps every
 * accepted message until it is acknowledged (at most `maxmsg` of them). When
 * a connection drops, the sender retries with bounded exponential backoff
 * and, on reconnect, re-sends exactly what the receiver has not yet received
 * (the receiver remembers each session for `sessionLingerMs`): no loss, no
 * duplicate. If the receiving *process* was replaced, the new one starts a
 * fresh session from the first unacknowledged message: nothing is lost, and
 * messages the dead process consumed in its last moments (since its last
 * acknowledgement, sent at least every `ackIntervalMs` while it is idle) are
 * delivered again: at-least-once across a receiver restart. If the sender
 * gives up, the channel closes with `AMIX_ERR_PEER_LOST` whose `details.unacknowledged`
 * reports how many accepted messages may not have been consumed.
 *
 * **Suspend/resume**: on a sending end, suspend pauses it (sends wait,
 * whatever the discard policy; `trySend` returns false); on a receiving end,
 * suspend stops granting credit, so senders stop once their credit is spent.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmixError, ErrorCode, abortError, invalidArg } from '../lib/core/errors.js';
import { queueAbortable } from '../lib/core/waitList.js';
import type {
  ChannelAddress,
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
import { FRAME_HEADER_BYTES, FrameDecoder, FrameWriter, encodeFrame, type FrameKindRule } from '../lib/core/framing.js';

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
} as const;
/** One of {@link FrameKind}. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Wire protocol version carried in hello and helloAck. */
export const PROTOCOL_VERSION = 1;

const HELLO_BYTES = 1 + 16 + 8 + 8;
const HELLO_ACK_BYTES = 1 + 8 + 8 + 8 + 4;
const ERROR_MAX_BYTES = 1024;
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
  /** Receiving end: while idle, acknowledge consumed messages at least this often. Default 10 ms. */
  ackIntervalMs?: number;
  /** Sending end: how long create/connect wait for the receiver's handshake. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** Sending end, for benchmarks: when packed frames are flushed (see `FrameWriter`). Default `immediate`. */
  flushSchedule?: 'immediate' | 'microtask';
}

/** What {@link ChannelHandle.address} holds for this primitive: JSON-serialisable. */
export interface ProcessAddress extends ChannelAddress {
  /** The Unix socket path (or Windows named pipe). */
  readonly path: string;
}

const isWindows = process.platform === 'win32';
// 4096: at 1024 a 64 B stream between processes ran about half as fast (a credit round trip per 512 messages).
const DEFAULT_MAXMSG = 4096;
const EMPTY = new Uint8Array(0);

function linkClosed(what: string, reason?: Error): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_LINK_CLOSED, `${NAME} ${what}`, reason ? { cause: reason } : {});
}

function peerLost(message: string, cause?: unknown, details: Record<string, unknown> = {}): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `${NAME}: ${message}`, { cause, details });
}

function emptyStats(): ChannelStats {
  return { sent: 0, received: 0, pending: 0, dropped: 0, rejected: 0, suspensions: 0, bytesSent: 0, bytesReceived: 0 };
}

function errorPayload(err: AmixError): Buffer {
  const text = Buffer.from(`${err.code}: ${err.message}`, 'utf8');
  return text.length > ERROR_MAX_BYTES ? text.subarray(0, ERROR_MAX_BYTES) : text;
}

function asAmix(err: unknown, code: ErrorCode, message: string): AmixError {
  if (err instanceof AmixError) return err;
  return new AmixError(code, `${message}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

// ---------------------------------------------------------------------------
// Runtime directory and socket files

const swept = new Set<string>();

/**
 * The runtime directory: `options.runtimeDir`, or `amix-<uid>` under the OS
 * temp dir. Created 0700 when missing; an existing one must be a directory
 * (not a symlink) owned by this user and closed to group and others
 * (`AMIX_ERR_INVALID_ARG` otherwise; the default one is re-closed with chmod).
 */
export async function runtimeDirectory(dir?: string): Promise<string> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const path = dir ?? join(tmpdir(), `amix-${uid ?? 'user'}`);
  if (isWindows) return path;
  try {
    await mkdir(path, { mode: 0o700, recursive: dir !== undefined });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
      throw asAmix(err, ErrorCode.AMIX_ERR_INVALID_ARG, `options.runtimeDir ${path} cannot be created`);
  }
  const st = await lstat(path);
  if (!st.isDirectory()) throw invalidArg('options.runtimeDir', 'must be a directory, not a symlink or file', path);
  if (uid !== undefined && st.uid !== uid)
    throw invalidArg('options.runtimeDir', `must be owned by this user (uid ${uid}; owner is ${st.uid})`, path);
  if ((st.mode & 0o077) !== 0) {
    if (dir !== undefined)
      throw invalidArg(
        'options.runtimeDir',
        `must not be accessible by group or others (mode ${(st.mode & 0o777).toString(8)}; want 700)`,
        path,
      );
    await chmod(path, 0o700);
  }
  return path;
}

const SOCKET_RE = /^qcp-(\d+)-[0-9a-f]+\.sock$/;

/** Remove socket files in `dir` named by this primitive for processes that no longer exist. Once per dir per process. */
async function sweepStale(dir: string): Promise<void> {
  if (isWindows || swept.has(dir)) return;
  swept.add(dir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = SOCKET_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') await unlink(join(dir, name)).catch(() => {});
    }
  }
}

/** Probe `path`: true when a live process accepts connections there. */
function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Make `path` free to listen on: remove a stale socket, refuse a live one or a non-socket. */
async function clearStale(path: string): Promise<void> {
  if (isWindows) return;
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw invalidArg('options.socketPath', 'exists and is not a socket', path);
  if (await probe(path)) {
    throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `${NAME}: a live process is listening on ${path}`, {
      details: { path },
    });
  }
  await unlink(path).catch(() => {});
}

// ---------------------------------------------------------------------------
// A ring of values indexed by a growing sequence number

/** Where each accepted, unacknowledged message's frame bytes are: a buffer and an offset, by message number. */
class FrameRing {
  #bufs: Array<Uint8Array | undefined> = new Array(1024);
  #offs = new Int32Array(1024);
  #mask = 1023;
  /** Store at `seq`; `first` is the lowest live number (so the ring can grow without losing live entries). */
  set(seq: number, first: number, buf: Uint8Array, off: number): void {
    if (seq - first > this.#mask) this.#grow(first, seq - first + 1);
    const i = seq & this.#mask;
    this.#bufs[i] = buf;
    this.#offs[i] = off;
  }
  /** The frame bytes of message `seq` (a new view: only resends need one). */
  view(seq: number): Uint8Array {
    const i = seq & this.#mask;
    const b = this.#bufs[i]!;
    const o = this.#offs[i]!;
    const len = b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | ((b[o + 3]! << 24) >>> 0);
    return new Uint8Array(b.buffer, b.byteOffset + o, FRAME_HEADER_BYTES + len);
  }
  clear(from: number, to: number): void {
    for (let s = from; s < to; s++) this.#bufs[s & this.#mask] = undefined;
  }
  #grow(first: number, need: number): void {
    let c = (this.#mask + 1) * 2;
    while (c < need) c *= 2;
    const bufs = new Array<Uint8Array | undefined>(c);
    const offs = new Int32Array(c);
    const mask = c - 1;
    for (let s = first; s <= first + this.#mask; s++) {
      bufs[s & mask] = this.#bufs[s & this.#mask];
      offs[s & mask] = this.#offs[s & this.#mask]!;
    }
    this.#bufs = bufs;
    this.#offs = offs;
    this.#mask = mask;
  }
}

/** FIFO of messages with the session each came from (parallel arrays: no object per message). */
class MessageQueue {
  #msgs: Array<Uint8Array | undefined> = new Array(1024);
  #from: Array<RxSession | undefined> = new Array(1024);
  #mask = 1023;
  #head = 0;
  #tail = 0;
  get length(): number {
    return this.#tail - this.#head;
  }
  push(m: Uint8Array, s: RxSession): void {
    if (this.#tail - this.#head > this.#mask) this.#grow();
    const i = this.#tail++ & this.#mask;
    this.#msgs[i] = m;
    this.#from[i] = s;
  }
  peek(): Uint8Array | undefined {
    return this.#msgs[this.#head & this.#mask];
  }
  peekFrom(): RxSession {
    return this.#from[this.#head & this.#mask]!;
  }
  shift(): void {
    const i = this.#head++ & this.#mask;
    this.#msgs[i] = undefined;
    this.#from[i] = undefined;
  }
  clear(): void {
    while (this.length > 0) this.shift();
  }
  #grow(): void {
    const n = (this.#mask + 1) * 2;
    const msgs = new Array<Uint8Array | undefined>(n);
    const from = new Array<RxSession | undefined>(n);
    for (let s = this.#head, j = 0; s < this.#tail; s++, j++) {
      msgs[j] = this.#msgs[s & this.#mask];
      from[j] = this.#from[s & this.#mask];
    }
    this.#tail -= this.#head;
    this.#head = 0;
    this.#msgs = msgs;
    this.#from = from;
    this.#mask = n - 1;
  }
}

// ---------------------------------------------------------------------------
// Receiving end

interface Reader {
  resolve: (m: Uint8Array) => void;
  reject: (e: Error) => void;
  maxBytes: number;
  cleanup: (() => void) | null;
}

/** A sender's session as the receiver knows it; outlives one connection for `sessionLingerMs`. */
interface RxSession {
  id: string;
  /** Next message number expected. */
  next: number;
  /** Messages of this session the application has consumed. */
  consumed: number;
  /** Credit limit granted. */
  limit: number;
  /** `consumed` as last reported to the sender. */
  ackSent: number;
  conn: RxConn | null;
  linger: NodeJS.Timeout | null;
}

interface RxConn {
  socket: Socket;
  writer: FrameWriter;
  decoder: FrameDecoder;
  session: RxSession | null;
  /** Set once the connection is being closed on purpose (close/detach frame, bad frame, destroy). */
  ending: boolean;
}

/** The receiving end's handle. */
export class ReceiverHandle implements ChannelHandle {
  readonly role = 'receive' as const;
  readonly address: ProcessAddress;
  /** @internal */ readonly st: ReceiverState;
  constructor(address: ProcessAddress, st: ReceiverState) {
    this.address = address;
    this.st = st;
  }
}

class ReceiverState {
  readonly path: string;
  readonly server: Server;
  readonly maxmsg: number;
  readonly minmsg: number;
  readonly maxMessageBytes: number;
  readonly lingerMs: number;
  readonly ackIntervalMs: number;
  readonly onEvent: (e: ChannelEvent) => void;
  readonly queue = new MessageQueue();
  readonly readers: Reader[] = [];
  readonly sessions = new Map<string, RxSession>();
  readonly conns = new Set<RxConn>();
  outstanding = 0;
  suspended = false;
  closed = false;
  closeReason: Error | undefined;
  ackTimer: NodeJS.Timeout | null = null;
  readonly stats = emptyStats();

  constructor(path: string, server: Server, o: ProcessChannelOptions) {
    this.path = path;
    this.server = server;
    this.maxmsg = o.maxmsg ?? DEFAULT_MAXMSG;
    this.minmsg = o.minmsg ?? Math.floor(this.maxmsg / 2);
    this.maxMessageBytes = o.maxMessageBytes ?? characteristics.maxMessageBytes;
    this.lingerMs = o.sessionLingerMs ?? 15_000;
    this.ackIntervalMs = o.ackIntervalMs ?? 10;
    this.onEvent = o.onEvent ?? (() => {});
    server.on('connection', (s) => this.accept(s));
  }

  accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const conn: RxConn = {
      socket,
      writer: new FrameWriter(socket, { slabBytes: 16 * 1024, flushBytes: 16 * 1024 }),
      decoder: null!,
      session: null,
      ending: false,
    };
    conn.decoder = new FrameDecoder(
      {
        maxPayloadBytes: Math.max(this.maxMessageBytes, ERROR_MAX_BYTES),
        kinds: receiverFrameRules(this.maxMessageBytes),
      },
      (kind, buf, start, end) => this.frame(conn, kind, buf, start, end),
    );
    this.conns.add(conn);
    socket.on('data', (chunk: Buffer) => {
      try {
        conn.decoder.push(chunk);
      } catch (err) {
        this.fail(conn, asAmix(err, ErrorCode.AMIX_ERR_INTERNAL, 'frame handler failed'));
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.dropped(conn));
  }

  /** Close one connection because of what it sent; others are unaffected. */
  fail(conn: RxConn, err: AmixError): void {
    if (conn.ending) return;
    conn.ending = true;
    conn.writer.flush();
    // Half-close and keep reading (and dropping) until the peer closes: closing
    // with its bytes unread would reset the connection and could discard the
    // error frame before the peer reads it. A peer that never closes is cut off.
    conn.socket.end(encodeFrame(FrameKind.error, errorPayload(err)));
    setTimeout(() => conn.socket.destroy(), 1000).unref();
    if (conn.session) this.detachSession(conn.session);
    this.onEvent({ type: 'peerLost', error: err });
  }

  frame(conn: RxConn, kind: number, buf: Buffer, start: number, end: number): void {
    if (conn.ending) return;
    const s = conn.session;
    if (kind === FrameKind.data) {
      if (s === null) throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: data frame before hello`);
      if (s.next >= s.limit) {
        throw new AmixError(
          ErrorCode.AMIX_ERR_PROTOCOL,
          `${NAME}: sender exceeded its credit (message ${s.next}, limit ${s.limit})`,
          { details: { next: s.next, limit: s.limit } },
        );
      }
      s.next++;
      this.outstanding--;
      this.deliver(start === end ? EMPTY : new Uint8Array(buf.buffer, buf.byteOffset + start, end - start), s);
      return;
    }
    switch (kind) {
      case FrameKind.cycle:
        conn.writer.control(FrameKind.cycleAck, 4, (b, o) => buf.copy(b, o, start, end));
        return;
      case FrameKind.hello:
        this.hello(conn, buf, start);
        return;
      case FrameKind.close:
        conn.ending = true;
        if (s) this.endSession(s);
        conn.socket.end();
        return;
      case FrameKind.detach:
        conn.ending = true;
        if (s) this.detachSession(s);
        conn.socket.end();
        return;
      case FrameKind.error:
        conn.ending = true;
        conn.socket.destroy();
        if (s) this.detachSession(s);
        this.onEvent({ type: 'peerLost', error: peerLost(`sender reported: ${buf.toString('utf8', start, end)}`) });
        return;
      default:
        throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: unexpected frame kind ${kind} at a receiving end`);
    }
  }

  hello(conn: RxConn, buf: Buffer, at: number): void {
    if (conn.session !== null)
      throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: second hello on one connection`);
    const version = buf[at]!;
    if (version !== PROTOCOL_VERSION) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PROTOCOL,
        `${NAME}: protocol version ${version} is not supported (want ${PROTOCOL_VERSION})`,
        { details: { version } },
      );
    }
    const id = buf.toString('hex', at + 1, at + 17);
    const firstUnacked = buf.readDoubleLE(at + 17);
    const next = buf.readDoubleLE(at + 25);
    if (!Number.isSafeInteger(firstUnacked) || !Number.isSafeInteger(next) || firstUnacked < 0 || next < firstUnacked) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PROTOCOL,
        `${NAME}: hello with bad sequence numbers ${firstUnacked}..${next}`,
      );
    }
    let s = this.sessions.get(id);
    if (s && (s.next < firstUnacked || s.next > next)) {
      // The sender's view contradicts ours: start the session afresh from its first unacknowledged message.
      this.endSession(s);
      s = undefined;
    }
    if (s) {
      if (s.conn && s.conn !== conn) {
        const old = s.conn;
        old.ending = true;
        this.detachSession(s);
        old.socket.destroy();
      }
      if (s.linger) {
        clearTimeout(s.linger);
        s.linger = null;
      }
    } else {
      s = {
        id,
        next: firstUnacked,
        consumed: firstUnacked,
        limit: firstUnacked,
        ackSent: firstUnacked,
        conn: null,
        linger: null,
      };
      this.sessions.set(id, s);
    }
    if (!this.suspended) {
      const free = this.maxmsg - this.queue.length - this.outstanding;
      if (free > 0) {
        s.limit += free;
        this.outstanding += free;
      }
    }
    s.conn = conn;
    conn.session = s;
    s.ackSent = s.consumed;
    const limit = s.limit;
    const acked = s.consumed;
    const resumeFrom = s.next;
    const max = this.maxMessageBytes;
    conn.writer.control(FrameKind.helloAck, HELLO_ACK_BYTES, (b, o) => {
      b[o] = PROTOCOL_VERSION;
      b.writeDoubleLE(resumeFrom, o + 1);
      b.writeDoubleLE(limit, o + 9);
      b.writeDoubleLE(acked, o + 17);
      b.writeUInt32LE(max, o + 25);
    });
    conn.writer.flush();
  }

  deliver(msg: Uint8Array, s: RxSession): void {
    this.stats.bytesReceived += msg.length;
    if (this.queue.length === 0 && this.readers.length > 0) {
      const r = this.readers.shift()!;
      r.cleanup?.();
      if (msg.length <= r.maxBytes) {
        this.consumed(s);
        r.resolve(msg);
        return;
      }
      this.queue.push(msg, s);
      r.reject(tooSmall(msg.length, r.maxBytes));
      return;
    }
    this.queue.push(msg, s);
  }

  /** The application took one message of session `s`. */
  consumed(s: RxSession): void {
    s.consumed++;
    this.stats.received++;
    if (!this.suspended && this.queue.length + this.outstanding <= this.minmsg) this.grant();
    else if (this.ackTimer === null && this.queue.length === 0) this.armAck();
  }

  take(maxBytes: number): Uint8Array | undefined {
    const m = this.queue.peek();
    if (m === undefined) return undefined;
    if (m.length > maxBytes) throw tooSmall(m.length, maxBytes);
    const s = this.queue.peekFrom();
    this.queue.shift();
    this.consumed(s);
    return m;
  }

  /** Share the free credit among connected sessions and tell each its new limit and acknowledgement. */
  grant(): void {
    const free = this.maxmsg - this.queue.length - this.outstanding;
    const live: RxSession[] = [];
    for (const c of this.conns) if (c.session !== null && !c.ending) live.push(c.session);
    if (live.length === 0) return;
    const share = free > 0 ? Math.floor(free / live.length) : 0;
    let extra = free > 0 ? free - share * live.length : 0;
    for (const s of live) {
      const add = share + (extra > 0 ? 1 : 0);
      if (extra > 0) extra--;
      if (add === 0 && s.consumed === s.ackSent) continue;
      s.limit += add;
      this.outstanding += add;
      this.sendCredit(s);
    }
  }

  sendCredit(s: RxSession): void {
    s.ackSent = s.consumed;
    const limit = s.limit;
    const acked = s.consumed;
    s.conn!.writer.control(FrameKind.credit, 16, (b, o) => {
      b.writeDoubleLE(limit, o);
      b.writeDoubleLE(acked, o + 8);
    });
  }

  armAck(): void {
    if (this.closed) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      for (const c of this.conns) {
        const s = c.session;
        if (s !== null && !c.ending && s.consumed !== s.ackSent) this.sendCredit(s);
      }
    }, this.ackIntervalMs);
    this.ackTimer.unref();
  }

  /**
   * The connection ended without a close frame: the sender may come back
   * within the linger time and resume exactly. Its unused credit returns to
   * the pool now (a dead sender must not starve the next one); it gets
   * credit again when it reconnects.
   */
  detachSession(s: RxSession): void {
    if (s.conn) s.conn.session = null;
    s.conn = null;
    this.outstanding -= s.limit - s.next;
    s.limit = s.next;
    if (!this.closed && !this.suspended && this.queue.length + this.outstanding <= this.minmsg) this.grant();
    if (s.linger || this.closed || !this.sessions.has(s.id)) return;
    s.linger = setTimeout(() => this.endSession(s), this.lingerMs);
    s.linger.unref();
  }

  endSession(s: RxSession): void {
    if (s.linger) {
      clearTimeout(s.linger);
      s.linger = null;
    }
    if (s.conn) {
      s.conn.session = null;
      s.conn = null;
    }
    this.outstanding -= s.limit - s.next;
    s.limit = s.next;
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    if (!this.suspended && this.queue.length + this.outstanding <= this.minmsg) this.grant();
  }

  dropped(conn: RxConn): void {
    this.conns.delete(conn);
    if (conn.ending || this.closed) return;
    conn.ending = true;
    const s = conn.session;
    if (s) {
      this.detachSession(s);
      this.onEvent({
        type: 'peerLost',
        error: peerLost('a sending end went away without closing', undefined, { session: s.id }),
      });
    }
  }

  /** Release everything now; nothing here waits for I/O, so pending receives fail in this same job. */
  destroy(reason: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    for (const s of this.sessions.values()) if (s.linger) clearTimeout(s.linger);
    this.sessions.clear();
    for (const c of this.conns) {
      c.ending = true;
      if (reason === undefined) {
        c.writer.control(FrameKind.close, 0, () => {});
        c.writer.flush();
        // As in fail(): half-close so the close frame is read before any reset.
        c.socket.end();
        setTimeout(() => c.socket.destroy(), 1000).unref();
      } else {
        c.socket.destroy();
      }
    }
    this.conns.clear();
    const err = linkClosed('receiving end closed', reason);
    for (const r of this.readers.splice(0)) {
      r.cleanup?.();
      r.reject(err);
    }
    this.queue.clear();
    this.server.close();
    if (!isWindows) {
      try {
        unlinkSync(this.path);
      } catch {
        /* already gone */
      }
    }
  }
}

function tooSmall(size: number, maxBytes: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL,
    `${NAME}: next message is ${size} bytes, the caller accepts ${maxBytes}`,
    { details: { size, maxBytes } },
  );
}

// ---------------------------------------------------------------------------
// Sending end

interface Waiter {
  data: Uint8Array;
  resolve: () => void;
  reject: (e: Error) => void;
  cleanup: (() => void) | null;
}

interface CycleWait {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** The sending end's handle. */
export class SenderHandle implements ChannelHandle {
  readonly role = 'send' as const;
  readonly address: ProcessAddress;
  /** @internal */ readonly st: SenderState;
  constructor(address: ProcessAddress, st: SenderState) {
    this.address = address;
    this.st = st;
  }
}

const TxState = { connecting: 0, open: 1, reconnecting: 2, detached: 3, closed: 4 } as const;
type TxState = (typeof TxState)[keyof typeof TxState];

class SenderState {
  readonly path: string;
  readonly discard: DiscardPolicy;
  readonly outboxMax: number;
  readonly onEvent: (e: ChannelEvent) => void;
  readonly attempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly handshakeMs: number;
  readonly session = randomBytes(16);
  readonly writer: FrameWriter;
  readonly stats = emptyStats();
  state: TxState = TxState.connecting;
  socket: Socket | null = null;
  /** Next message number to assign. */
  seq = 0;
  /** First message number not yet acknowledged (consumed) by the receiver. */
  acked = 0;
  /** Credit: messages numbered below it may be sent. */
  limit = 0;
  /** Next message number to write on the current connection. */
  wire = 0;
  /** Framed bytes of every accepted, unacknowledged message, by number. */
  readonly unacked = new FrameRing();
  /** dropOldest: accepted messages waiting for credit (copies). */
  readonly outbox: Buffer[] = [];
  readonly waiters: Waiter[] = [];
  readonly cycles = new Map<number, CycleWait>();
  cycleToken = 0;
  paused = false;
  creditSuspended = false;
  peerMaxBytes = Number.MAX_SAFE_INTEGER;
  reconnectTimer: NodeJS.Timeout | null = null;
  lastError: AmixError | null = null;
  /** Resolves the handshake of the connection being made. */
  handshake: { resolve: () => void; reject: (e: Error) => void } | null = null;

  constructor(path: string, o: ProcessChannelOptions) {
    this.path = path;
    this.discard = o.discard ?? 'block';
    this.outboxMax = o.maxmsg ?? DEFAULT_MAXMSG;
    this.onEvent = o.onEvent ?? (() => {});
    this.attempts = o.reconnect?.attempts ?? 8;
    this.initialDelayMs = o.reconnect?.initialDelayMs ?? 50;
    this.maxDelayMs = o.reconnect?.maxDelayMs ?? 1000;
    this.handshakeMs = o.handshakeTimeoutMs ?? 5000;
    this.writer = new FrameWriter(null, o.flushSchedule ? { schedule: o.flushSchedule } : {});
  }

  /** Dial and handshake; resolves once the receiver's helloAck is in and resends are packed. */
  dial(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = netConnect(this.path);
      this.socket = socket;
      let settled = false;
      const timer = setTimeout(() => {
        socket.destroy(
          new AmixError(
            ErrorCode.AMIX_ERR_TIMEOUT,
            `${NAME}: no handshake from ${this.path} within ${this.handshakeMs} ms`,
          ),
        );
      }, this.handshakeMs);
      this.handshake = {
        resolve: () => {
          settled = true;
          clearTimeout(timer);
          this.handshake = null;
          resolve();
        },
        reject: (e) => {
          settled = true;
          clearTimeout(timer);
          this.handshake = null;
          reject(e);
        },
      };
      const decoder = new FrameDecoder(
        { maxPayloadBytes: ERROR_MAX_BYTES, kinds: senderFrameRules() },
        (kind, buf, start, end) => this.frame(socket, kind, buf, start, end),
      );
      socket.on('connect', () => {
        const hello = Buffer.allocUnsafe(HELLO_BYTES);
        hello[0] = PROTOCOL_VERSION;
        this.session.copy(hello, 1);
        hello.writeDoubleLE(this.acked, 17);
        hello.writeDoubleLE(this.seq, 25);
        socket.write(encodeFrame(FrameKind.hello, hello));
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch (err) {
          socket.destroy(asAmix(err, ErrorCode.AMIX_ERR_INTERNAL, 'frame handler failed'));
        }
      });
      let error: Error | undefined;
      socket.on('error', (err) => {
        error = err;
      });
      socket.on('close', () => {
        if (this.socket === socket) {
          this.socket = null;
          this.writer.setSink(null);
          this.writer.discard();
        }
        const why =
          this.lastError ??
          (error
            ? asAmix(error, ErrorCode.AMIX_ERR_PEER_LOST, `${NAME}: connection to ${this.path} failed`)
            : peerLost(`the receiving end at ${this.path} went away`));
        this.lastError = null;
        if (!settled) {
          this.handshake?.reject(why);
          return;
        }
        if (this.socket === null && this.state === TxState.open) this.connectionLost(why as AmixError);
      });
    });
  }

  frame(socket: Socket, kind: number, buf: Buffer, start: number, end: number): void {
    if (socket !== this.socket) return;
    switch (kind) {
      case FrameKind.credit: {
        if (this.handshake) throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: credit before helloAck`);
        this.credit(buf.readDoubleLE(start), buf.readDoubleLE(start + 8));
        return;
      }
      case FrameKind.cycleAck: {
        const token = buf.readUInt32LE(start);
        const c = this.cycles.get(token);
        if (c) {
          this.cycles.delete(token);
          c.resolve();
        }
        return;
      }
      case FrameKind.helloAck:
        this.helloAck(socket, buf, start);
        return;
      case FrameKind.close:
        // The receiver closed on purpose: it will not come back, so no reconnect.
        this.lastError = peerLost(
          `the receiving end at ${this.path} closed the channel; ${this.seq - this.acked} accepted messages are unacknowledged`,
          undefined,
          { unacknowledged: this.seq - this.acked },
        );
        this.onEvent({ type: 'peerLost', error: this.lastError });
        this.finalClose(this.lastError);
        return;
      case FrameKind.error:
        this.lastError = peerLost(`the receiving end refused the connection: ${buf.toString('utf8', start, end)}`);
        socket.destroy();
        return;
      default:
        throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: unexpected frame kind ${kind} at a sending end`);
    }
  }

  helloAck(socket: Socket, buf: Buffer, at: number): void {
    if (!this.handshake) throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: unexpected helloAck`);
    if (buf[at] !== PROTOCOL_VERSION)
      throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `${NAME}: receiver speaks protocol ${buf[at]}`);
    const resumeFrom = buf.readDoubleLE(at + 1);
    const limit = buf.readDoubleLE(at + 9);
    const acked = buf.readDoubleLE(at + 17);
    this.peerMaxBytes = buf.readUInt32LE(at + 25);
    if (!(resumeFrom >= this.acked && resumeFrom <= this.seq && acked <= resumeFrom && limit >= resumeFrom)) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PROTOCOL,
        `${NAME}: helloAck resumes from ${resumeFrom}, outside ${this.acked}..${this.seq}`,
      );
    }
    this.ack(acked);
    this.limit = limit;
    this.wire = resumeFrom;
    if (this.creditSuspended && this.seq < this.limit) {
      this.creditSuspended = false;
      this.onEvent({ type: 'resumed', pending: this.seq - this.acked });
    }
    this.writer.discard();
    this.writer.setSink(socket);
    this.handshake!.resolve();
    this.state = TxState.open;
    this.resent = this.seq - resumeFrom;
    for (const token of this.cycles.keys()) this.packCycle(token);
    this.pump();
  }

  /** Messages re-sent by the last handshake (for the `reconnected` event). */
  resent = 0;

  ack(acked: number): void {
    if (acked > this.acked) {
      this.unacked.clear(this.acked, acked);
      this.acked = acked;
    }
  }

  credit(limit: number, acked: number): void {
    this.ack(acked);
    if (limit > this.limit) this.limit = limit;
    if (this.creditSuspended && this.seq < this.limit) {
      this.creditSuspended = false;
      this.onEvent({ type: 'resumed', pending: this.seq - this.acked });
    }
    this.pump();
  }

  /** Write held resends, then the outbox, then blocked sends, as far as credit goes. */
  pump(): void {
    if (this.state === TxState.open) {
      while (this.wire < this.seq && this.wire < this.limit) this.writer.raw(this.unacked.view(this.wire++));
    }
    if (this.paused) return;
    while (this.outbox.length > 0 && this.seq < this.limit) this.accept(this.outbox.shift()!);
    while (this.waiters.length > 0 && this.seq < this.limit && this.outbox.length === 0) {
      const w = this.waiters.shift()!;
      w.cleanup?.();
      this.accept(w.data);
      w.resolve();
    }
    if (this.seq >= this.limit && (this.waiters.length > 0 || this.outbox.length > 0)) this.noCredit();
  }

  /** Take one message (credit checked by the caller): frame it, keep it until acknowledged. */
  accept(data: Uint8Array): void {
    if (this.state === TxState.open && this.wire === this.seq) {
      const off = this.writer.frame(FrameKind.data, data);
      this.unacked.set(this.seq, this.acked, this.writer.slab, off);
      this.wire++;
    } else {
      this.unacked.set(this.seq, this.acked, encodeFrame(FrameKind.data, data), 0);
    }
    this.seq++;
    this.stats.sent++;
    this.stats.bytesSent += data.length;
  }

  noCredit(): void {
    if (this.creditSuspended) return;
    this.creditSuspended = true;
    this.stats.suspensions++;
    this.onEvent({ type: 'suspended', pending: this.seq - this.acked });
  }

  check(data: Uint8Array): void {
    if (this.state === TxState.closed) throw linkClosed('sending end is closed', this.lastError ?? undefined);
    if (data.length > this.peerMaxBytes) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE,
        `${NAME}: message of ${data.length} bytes exceeds the receiving end's maximum of ${this.peerMaxBytes}`,
        { details: { size: data.length, max: this.peerMaxBytes } },
      );
    }
  }

  /** The synchronous part of send: true when taken (or discarded by policy), false when it must wait. */
  trySend(data: Uint8Array): boolean {
    this.check(data);
    if (this.paused) return false;
    if (this.seq < this.limit && this.waiters.length === 0 && this.outbox.length === 0) {
      this.accept(data);
      return true;
    }
    this.noCredit();
    switch (this.discard) {
      case 'dropNewest':
        this.dropped('dropNewest', 1);
        return true;
      case 'reject':
        this.stats.rejected++;
        throw new AmixError(
          ErrorCode.AMIX_ERR_QUEUE_FULL,
          `${NAME}: no credit from the receiving end (maxmsg reached) and the policy is reject`,
          { details: { pending: this.seq - this.acked } },
        );
      case 'dropOldest': {
        const copy = Buffer.allocUnsafe(data.length);
        copy.set(data);
        this.outbox.push(copy);
        if (this.outbox.length > this.outboxMax) {
          this.outbox.shift();
          this.dropped('dropOldest', 1);
        }
        return true;
      }
      default:
        return false;
    }
  }

  dropped(policy: DiscardPolicy, count: number): void {
    this.stats.dropped += count;
    this.onEvent({ type: 'dropped', policy, count });
  }

  send(data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    if (this.trySend(data)) return Promise.resolve();
    return new Promise<void>((resolve, reject) =>
      queueAbortable(this.waiters, { data, resolve, reject, cleanup: null }, signal, 'send'),
    );
  }

  packCycle(token: number): void {
    this.writer.control(FrameKind.cycle, 4, (b, o) => b.writeUInt32LE(token, o));
  }

  cycle(signal: AbortSignal | undefined): Promise<void> {
    if (this.state === TxState.closed) return Promise.reject(linkClosed('sending end is closed'));
    const token = (this.cycleToken = (this.cycleToken + 1) >>> 0);
    return new Promise<void>((resolve, reject) => {
      let onAbort: (() => void) | null = null;
      const done = () => {
        if (onAbort) signal!.removeEventListener('abort', onAbort);
      };
      this.cycles.set(token, {
        resolve: () => {
          done();
          resolve();
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      if (signal) {
        onAbort = () => {
          this.cycles.delete(token);
          reject(abortError(signal, 'cycle'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      if (this.state === TxState.open) this.packCycle(token);
    });
  }

  /** The connection dropped unexpectedly: report it, then retry with backoff. */
  connectionLost(why: AmixError): void {
    this.state = TxState.reconnecting;
    this.onEvent({ type: 'peerLost', error: why });
    this.retry(1, why);
  }

  retry(attempt: number, why: AmixError): void {
    if (this.state !== TxState.reconnecting) return;
    if (attempt > this.attempts) {
      this.finalClose(
        peerLost(
          `gave up reconnecting to ${this.path} after ${this.attempts} attempts; ${this.seq - this.acked} accepted messages are unacknowledged`,
          why,
          { attempts: this.attempts, unacknowledged: this.seq - this.acked },
        ),
      );
      return;
    }
    const delayMs = Math.min(this.initialDelayMs * 2 ** (attempt - 1), this.maxDelayMs);
    this.onEvent({ type: 'reconnecting', attempt, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state !== TxState.reconnecting) return;
      this.dial().then(
        () => this.onEvent({ type: 'reconnected', resent: this.resent, lost: 0 }),
        (err: Error) => this.retry(attempt + 1, err instanceof AmixError ? err : why),
      );
    }, delayMs);
  }

  /** The channel is over (peer closed it, or reconnecting gave up): fail everything pending and say so. */
  finalClose(reason: AmixError): void {
    if (this.state === TxState.closed) return;
    this.shutdown(reason);
    this.onEvent({ type: 'closed', reason });
  }

  shutdown(reason: Error | undefined): void {
    this.state = TxState.closed;
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const err = linkClosed('sending end closed', reason);
    for (const w of this.waiters.splice(0)) {
      w.cleanup?.();
      w.reject(err);
    }
    for (const c of this.cycles.values()) c.reject(err);
    this.cycles.clear();
    this.handshake?.reject(err);
    this.socket?.destroy();
    this.socket = null;
    this.writer.setSink(null);
    this.writer.discard();
  }

  async destroy(reason: Error | undefined): Promise<void> {
    if (this.state === TxState.closed) return;
    const socket = this.socket;
    if (reason === undefined && socket !== null && this.state === TxState.open) {
      this.state = TxState.closed;
      this.writer.control(FrameKind.close, 0, () => {});
      this.writer.flush();
      this.writer.setSink(null);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          socket.destroy();
          resolve();
        }, 1000);
        t.unref();
        socket.end(() => {
          clearTimeout(t);
          resolve();
        });
      });
      this.socket = null;
    }
    this.shutdown(reason);
  }

  async detach(): Promise<void> {
    if (this.state !== TxState.open) {
      if (this.state === TxState.reconnecting) {
        this.state = TxState.detached;
        if (this.reconnectTimer) {
          clearTimeout(this.reconnectTimer);
          this.reconnectTimer = null;
        }
      }
      return;
    }
    this.state = TxState.detached;
    const socket = this.socket!;
    this.socket = null;
    this.writer.control(FrameKind.detach, 0, () => {});
    this.writer.flush();
    this.writer.setSink(null);
    await new Promise<void>((resolve) => socket.end(() => resolve()));
  }

  async attach(): Promise<void> {
    if (this.state === TxState.open || this.state === TxState.connecting) return;
    if (this.state === TxState.closed) throw linkClosed('sending end is closed');
    if (this.state === TxState.reconnecting && this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.state = TxState.connecting;
    try {
      await this.dial();
    } catch (err) {
      this.state = TxState.detached;
      throw asAmix(err, ErrorCode.AMIX_ERR_PEER_LOST, `${NAME}: cannot reach ${this.path}`);
    }
  }
}

// ---------------------------------------------------------------------------
// The primitive

/** What this primitive promises (the registry carries the same copy). */
export const characteristics: PrimitiveCharacteristics = Object.freeze({
  scopes: Object.freeze(['process']) as readonly ['process'],
  maxMessageBytes: 64 * 1024 * 1024,
  ordering: 'fifo',
  delivery: 'reliable',
});

/** Either end of a `queueConditionProcess` channel. */
export type ProcessHandle = ReceiverHandle | SenderHandle;

function addressPath(address: ChannelAddress): string {
  const p = (address as { path?: unknown }).path;
  if (typeof p !== 'string' || p.length === 0)
    throw invalidArg('options.address.path', 'must be a non-empty string (the socket path)', p);
  return p;
}

async function createReceiver(o: ProcessChannelOptions): Promise<ReceiverHandle> {
  let path: string;
  if (o.socketPath !== undefined) {
    if (typeof o.socketPath !== 'string' || o.socketPath.length === 0)
      throw invalidArg('options.socketPath', 'must be a non-empty string', o.socketPath);
    path = o.socketPath;
    if (!isWindows) await runtimeDirectory(o.runtimeDir);
  } else if (isWindows) {
    path = `\\\\.\\pipe\\amix-qcp-${process.pid}-${randomBytes(6).toString('hex')}`;
  } else {
    const dir = await runtimeDirectory(o.runtimeDir);
    await sweepStale(dir);
    path = join(dir, `qcp-${process.pid}-${randomBytes(6).toString('hex')}.sock`);
  }
  await clearStale(path);
  const server = createServer({ pauseOnConnect: false });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(asAmix(err, ErrorCode.AMIX_ERR_INVALID_ARG, `${NAME}: cannot listen on ${path}`)),
    );
    server.listen(path, () => resolve());
  });
  server.on('error', () => {});
  if (!isWindows) await chmod(path, 0o600);
  return new ReceiverHandle({ path }, new ReceiverState(path, server, o));
}

async function createSender(o: ProcessChannelOptions): Promise<SenderHandle> {
  const path = addressPath(o.address!);
  const st = new SenderState(path, o);
  try {
    await st.dial();
  } catch (err) {
    st.shutdown(undefined);
    throw asAmix(err, ErrorCode.AMIX_ERR_PEER_LOST, `${NAME}: cannot reach ${path}`);
  }
  return new SenderHandle({ path }, st);
}

const primitive = {
  name: NAME,
  characteristics,

  /**
   * Without `options.address`: listen on a new socket (0600, in a 0700
   * runtime directory) and return the receiving end, address `{ path }`.
   * With it: dial `address.path`, handshake, and return the sending end;
   * rejects with `AMIX_ERR_PEER_LOST` when nobody listens there.
   */
  async create(options: ChannelOptions): Promise<ProcessHandle> {
    const o = options as ProcessChannelOptions;
    return o.address === undefined ? createReceiver(o) : createSender(o);
  },

  /** Release the end. Graceful (no reason): flush and send a close frame first. Idempotent. */
  async destroy(handle: ProcessHandle, reason?: Error): Promise<void> {
    await handle.st.destroy(reason);
  },

  /**
   * Resolve once the message is accepted (framed and kept until the
   * receiving application consumes it) or discarded by policy. With no
   * credit: `block` waits, `dropNewest` drops it, `dropOldest` queues it and
   * drops the oldest queued one beyond `maxmsg`, `reject` rejects with `AMIX_ERR_QUEUE_FULL`.
   */
  send(handle: ProcessHandle, data: Uint8Array, options?: SendOptions): Promise<void> {
    if (handle.role !== 'send') return Promise.reject(invalidArg('send()', 'needs a sending end'));
    try {
      return handle.st.send(data, options?.signal);
    } catch (err) {
      return Promise.reject(err);
    }
  },

  /** Resolve with the next message; `AMIX_ERR_BUFFER_TOO_SMALL` leaves it queued. */
  receive(handle: ProcessHandle, options: ReceiveOptions): Promise<Uint8Array> {
    if (handle.role !== 'receive') return Promise.reject(invalidArg('receive()', 'needs a receiving end'));
    const st = handle.st;
    try {
      const m = st.take(options.maxBytes);
      if (m !== undefined) return Promise.resolve(m);
    } catch (err) {
      return Promise.reject(err);
    }
    if (st.closed) return Promise.reject(linkClosed('receiving end is closed', st.closeReason));
    const signal = options.signal;
    return new Promise<Uint8Array>((resolve, reject) =>
      queueAbortable(st.readers, { resolve, reject, maxBytes: options.maxBytes, cleanup: null }, signal, 'receive'),
    );
  },

  /**
   * Send a null frame through and wait for the receiving end's ack (it
   * follows every message sent before it). While reconnecting it waits for
   * the connection. On a receiving end it resolves at once.
   */
  cycle(handle: ProcessHandle, options?: SendOptions): Promise<void> {
    if (handle.role !== 'send') return Promise.resolve();
    return handle.st.cycle(options?.signal);
  },

  /** Sending end: dial again after {@link disconnect} (resuming the session exactly). Receiving end: nothing. */
  async connect(handle: ProcessHandle): Promise<void> {
    if (handle.role === 'send') await handle.st.attach();
  },

  /** Sending end: end the connection but keep the session, so connect resumes it. Receiving end: nothing. */
  async disconnect(handle: ProcessHandle): Promise<void> {
    if (handle.role === 'send') await handle.st.detach();
  },

  /** Sending end: pause sending. Receiving end: stop granting credit. */
  suspend(handle: ProcessHandle): void {
    if (handle.role === 'send') handle.st.paused = true;
    else handle.st.suspended = true;
  },

  /** Undo {@link suspend}. */
  resume(handle: ProcessHandle): void {
    if (handle.role === 'send') {
      handle.st.paused = false;
      handle.st.pump();
    } else {
      const st = handle.st;
      st.suspended = false;
      if (st.queue.length + st.outstanding <= st.minmsg) st.grant();
    }
  },

  /** Counters; `pending` is the queue at a receiving end, accepted-but-unacknowledged at a sending end. */
  stats(handle: ProcessHandle): ChannelStats {
    if (handle.role === 'send') {
      const st = handle.st;
      return { ...st.stats, pending: st.seq - st.acked + st.outbox.length };
    }
    return { ...handle.st.stats, pending: handle.st.queue.length };
  },

  /** Synchronous send: true when accepted (or discarded by policy), false when `send` would wait. */
  trySend(handle: ProcessHandle, data: Uint8Array): boolean {
    if (handle.role !== 'send') throw invalidArg('trySend()', 'needs a sending end');
    return handle.st.trySend(data);
  },

  /** Synchronous receive: the next message, or undefined when none is queued. */
  tryReceive(handle: ProcessHandle, maxBytes: number): Uint8Array | undefined {
    if (handle.role !== 'receive') throw invalidArg('tryReceive()', 'needs a receiving end');
    if (handle.st.closed) throw linkClosed('receiving end is closed', handle.st.closeReason);
    return handle.st.take(maxBytes);
  },
} satisfies Primitive<ProcessHandle>;

/** The `queueConditionProcess` primitive object (also the default export). */
export default primitive;
export { primitive };
