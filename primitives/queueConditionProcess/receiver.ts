/**
 * The receiving end of `queueConditionProcess`: a Unix socket server whose
 * connections carry sending ends' sessions. Credit accounting is the shared
 * pool of `../../lib/core/credit.ts` (one `maxmsg` for all senders, held to
 * fair shares, the excess of an idle sender revoked); this file decodes and
 * writes the frames.
 *
 * Until its hello succeeds a connection costs little and is on a clock: its
 * decoder takes only the small pre-hello frames (a larger or other header
 * closes it before its payload is buffered), it must say hello within
 * `helloTimeoutMs`, and at most `maxPreHelloConnections` may wait so. Each
 * refusal is counted in {@link ProcessReceiverStats}.
 *
 * @module
 */
import { unlinkSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { AmixError, ErrorCode, amixError, timeoutError } from '../../lib/core/errors.js';
import { CreditReceiver, MessageQueue, creditFields, type CreditSession } from '../../lib/core/credit.js';
import { FrameDecoder, FrameWriter, encodeFrame } from '../../lib/core/framing.js';
import type { ChannelEvent } from '../../lib/core/primitive.js';
import { WaitList } from '../../lib/core/waitList.js';
import {
  NAME,
  DEFAULT_MAXMSG,
  ERROR_MAX_BYTES,
  FrameKind,
  HELLO_ACK_BYTES,
  PROTOCOL_VERSION,
  asAmix,
  characteristics,
  emptyReceiverStats,
  errorPayload,
  isWindows,
  linkClosed,
  peerLost,
  preHelloFrameRules,
  protocolError,
  receiverFrameRules,
  tooSmall,
  EndHandle,
  type ProcessAddress,
  type ProcessChannelOptions,
  type ProcessReceiverStats,
} from './wire.js';

const EMPTY = new Uint8Array(0);
/** How long a connection refused before hello has to read its error frame before it is destroyed. */
const PRE_HELLO_GRACE_MS = 100;

/** A sender's session as the receiver knows it; outlives one connection for `sessionLingerMs`. */
export interface RxSession extends CreditSession {
  conn: RxConn | null;
  linger: NodeJS.Timeout | null;
  /** Cuts the connection off if a revocation is not confirmed in time. */
  revokeTimer: NodeJS.Timeout | null;
  /** Messages the application took this turn, reported to the credit engine at its end ({@link ReceiverState.consumed}). */
  taken: number;
}

/** One accepted connection. */
export interface RxConn {
  socket: Socket;
  /** Made at hello: a connection that never says hello costs no slab. */
  writer: FrameWriter | null;
  decoder: FrameDecoder;
  session: RxSession | null;
  /** Set once the connection is being closed on purpose (close/detach frame, bad frame, destroy). */
  ending: boolean;
  /** Still waiting for its hello: counted against `maxPreHelloConnections`, on the hello clock. */
  preHello: boolean;
  helloTimer: NodeJS.Timeout | null;
}

/** The receiving end's handle. */
export class ReceiverHandle extends EndHandle<'receive', ReceiverState> {
  constructor(address: ProcessAddress, st: ReceiverState) {
    super('receive', address, st);
  }
}

/** The receiving end's state: sessions, connections, the queue and blocked receives. */
export class ReceiverState {
  readonly path: string;
  readonly server: Server;
  readonly maxMessageBytes: number;
  readonly lingerMs: number;
  readonly ackIntervalMs: number;
  readonly onEvent: (e: ChannelEvent) => void;
  readonly helloTimeoutMs: number;
  readonly maxPreHello: number;
  readonly revokeTimeoutMs: number;
  /** Connections accepted that have not said hello yet (and are not being closed). */
  preHelloCount = 0;
  readonly queue = new MessageQueue<RxSession>();
  /** Blocked receives, each with the largest message it accepts. */
  readonly readers = new WaitList<number, Uint8Array>();
  readonly credit: CreditReceiver<RxSession>;
  readonly conns = new Set<RxConn>();
  closed = false;
  closeReason: Error | undefined;
  ackTimer: NodeJS.Timeout | null = null;
  /** Sessions with messages taken this turn (each once; the count is in `taken`). */
  readonly takenFrom: RxSession[] = [];
  /** A {@link settle} is scheduled for this turn. */
  settleScheduled = false;
  readonly stats: ProcessReceiverStats = emptyReceiverStats();
  /** The frame rules after hello (one array shared by every connection). */
  readonly rules: ReturnType<typeof receiverFrameRules>;
  readonly preHelloRules = preHelloFrameRules();

  constructor(path: string, server: Server, o: ProcessChannelOptions) {
    this.path = path;
    this.server = server;
    const maxmsg = o.maxmsg ?? DEFAULT_MAXMSG;
    this.credit = new CreditReceiver<RxSession>({
      maxmsg,
      minmsg: o.minmsg ?? Math.floor(maxmsg / 2),
      pool: 'shared',
      onGrant: (s) => this.sendCredit(s),
      onRevoke: (s, limit) => this.sendRevoke(s, limit),
    });
    this.maxMessageBytes = o.maxMessageBytes ?? characteristics.maxMessageBytes;
    this.rules = receiverFrameRules(this.maxMessageBytes);
    this.helloTimeoutMs = o.helloTimeoutMs ?? 5000;
    this.maxPreHello = o.maxPreHelloConnections ?? 64;
    this.revokeTimeoutMs = o.revokeTimeoutMs ?? 2000;
    this.lingerMs = o.sessionLingerMs ?? 15_000;
    this.ackIntervalMs = o.ackIntervalMs ?? 10;
    this.onEvent = o.onEvent ?? (() => {});
    server.on('connection', (s) => this.accept(s));
  }

  accept(socket: Socket): void {
    socket.on('error', () => {});
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.preHelloCount >= this.maxPreHello) {
      // Refused before anything is allocated for it, told why, and destroyed shortly after.
      this.stats.connectionsOverCap++;
      const err = amixError(
        ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
        `${this.maxPreHello} connections are already waiting for their hello`,
        { limit: this.maxPreHello },
      );
      // Not read at all: the stream buffers one chunk at most until the peer closes or the timer does.
      socket.end(encodeFrame(FrameKind.error, errorPayload(err)));
      setTimeout(() => socket.destroy(), PRE_HELLO_GRACE_MS).unref();
      return;
    }
    const conn: RxConn = {
      socket,
      writer: null,
      decoder: null!,
      session: null,
      ending: false,
      preHello: true,
      helloTimer: null,
    };
    // The small pre-hello rules until hello succeeds (then `rules`): no payload larger than an error frame is buffered.
    conn.decoder = new FrameDecoder(
      { maxPayloadBytes: ERROR_MAX_BYTES, kinds: this.preHelloRules },
      (kind, buf, start, end) => this.frame(conn, kind, buf, start, end),
    );
    this.preHelloCount++;
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      if (!conn.preHello || conn.ending) return;
      this.stats.helloTimeouts++;
      this.fail(
        conn,
        timeoutError(`${NAME}: no hello within ${this.helloTimeoutMs} ms`, {
          op: 'hello',
          timeoutMs: this.helloTimeoutMs,
        }),
        false,
      );
    }, this.helloTimeoutMs);
    conn.helloTimer.unref();
    this.conns.add(conn);
    socket.on('data', (chunk: Buffer) => {
      // A connection being closed is read and dropped: nothing more is decoded or buffered for it.
      if (conn.ending) return;
      try {
        conn.decoder.push(chunk);
      } catch (err) {
        this.refuse(conn, err);
      }
    });
    socket.on('close', () => this.dropped(conn));
  }

  /** The decoder or a frame handler threw: count it where it belongs, then close the connection. */
  refuse(conn: RxConn, thrown: unknown): void {
    let err = asAmix(thrown, ErrorCode.AMIX_ERR_INTERNAL, 'frame handler failed');
    if (conn.preHello) {
      this.stats.preHelloRefused++;
      const d = err.details as { kind?: number; length?: number };
      const framing = err.code === ErrorCode.AMIX_ERR_BAD_FRAME || err.code === ErrorCode.AMIX_ERR_FRAME_TOO_LARGE;
      if (framing && d.kind === FrameKind.data) {
        err = protocolError(`data frame before hello (a header announcing ${d.length} bytes)`);
      }
    } else if (err.code === ErrorCode.AMIX_ERR_BAD_FRAME || err.code === ErrorCode.AMIX_ERR_FRAME_TOO_LARGE) {
      this.stats.badFrames++;
    } else if (err.code === ErrorCode.AMIX_ERR_PROTOCOL) {
      this.stats.protocolErrors++;
    }
    this.fail(conn, err);
  }

  /** Leave the pre-hello state (hello done, or the connection is closing): off the clock and the cap. */
  greeted(conn: RxConn): void {
    if (!conn.preHello) return;
    conn.preHello = false;
    this.preHelloCount--;
    if (conn.helloTimer) {
      clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
    }
  }

  /**
   * Close one connection because of what it sent (or did not send in time);
   * others are unaffected. `report`: emit `peerLost` (not for a connection
   * that never said hello: it was never a peer).
   */
  fail(conn: RxConn, err: AmixError, report = true): void {
    if (conn.ending) return;
    conn.ending = true;
    const wasPreHello = conn.preHello;
    this.greeted(conn);
    conn.writer?.flush();
    // Half-close and keep reading (and dropping) until the peer closes: closing
    // with its bytes unread would reset the connection and could discard the
    // error frame before the peer reads it. A peer that never closes is cut off.
    conn.socket.end(encodeFrame(FrameKind.error, errorPayload(err)));
    // A connection that never said hello is not read on, and gets a shorter grace: each one refused holds a read
    // chunk (64 KiB) until destroyed, so a flood of them costs what arrives in that time, not in a second.
    if (wasPreHello) conn.socket.pause();
    setTimeout(() => conn.socket.destroy(), wasPreHello ? PRE_HELLO_GRACE_MS : 1000).unref();
    if (conn.session) this.detachSession(conn.session);
    if (report && !wasPreHello) this.onEvent({ type: 'peerLost', error: err });
  }

  /** The chunk the last message view was made of, its ArrayBuffer and offset (read once per chunk, not per frame). */
  viewOf: Buffer | null = null;
  viewBuffer: ArrayBufferLike | null = null;
  viewOffset = 0;

  frame(conn: RxConn, kind: number, buf: Buffer, start: number, end: number): void {
    if (conn.ending) return;
    const s = conn.session;
    if (kind === FrameKind.data) {
      if (s === null) throw protocolError('data frame before hello');
      if (!this.credit.admit(s)) {
        throw protocolError(`sender exceeded its credit (message ${s.next}, limit ${s.limit})`, {
          next: s.next,
          limit: s.limit,
        });
      }
      if (start === end) {
        this.deliver(EMPTY, s);
        return;
      }
      // The message is a view of the chunk read from the socket, never a copy: the
      // decoder never writes into a chunk and Node gives each read a fresh one, so
      // what the application holds is never overwritten. A chunk carries hundreds of
      // small frames; its buffer and offset are fetched once for all of them (about
      // half the cost of making each view).
      if (buf !== this.viewOf) {
        this.viewOf = buf;
        this.viewBuffer = buf.buffer;
        this.viewOffset = buf.byteOffset;
      }
      this.deliver(new Uint8Array(this.viewBuffer!, this.viewOffset + start, end - start), s);
      return;
    }
    switch (kind) {
      case FrameKind.revokeAck: {
        const limit = buf.readDoubleLE(start);
        if (s === null || !this.credit.revoked(s, limit)) {
          throw protocolError(`a revocation answer of limit ${limit} that answers no revocation`, { limit });
        }
        if (s.revokeTimer) {
          clearTimeout(s.revokeTimer);
          s.revokeTimer = null;
        }
        return;
      }
      case FrameKind.cycle:
        conn.writer!.control(FrameKind.cycleAck, 4, (b, o) => buf.copy(b, o, start, end));
        return;
      case FrameKind.hello:
        this.hello(conn, buf, start);
        return;
      case FrameKind.close:
        conn.ending = true;
        this.greeted(conn);
        if (s) this.endSession(s);
        conn.socket.end();
        return;
      case FrameKind.detach:
        conn.ending = true;
        this.greeted(conn);
        if (s) this.detachSession(s);
        conn.socket.end();
        return;
      case FrameKind.error:
        conn.ending = true;
        this.greeted(conn);
        conn.socket.destroy();
        if (s) this.detachSession(s);
        this.onEvent({ type: 'peerLost', error: peerLost(`sender reported: ${buf.toString('utf8', start, end)}`) });
        return;
      default:
        throw protocolError(`unexpected frame kind ${kind} at a receiving end`);
    }
  }

  hello(conn: RxConn, buf: Buffer, at: number): void {
    if (conn.session !== null) throw protocolError('second hello on one connection');
    const version = buf[at]!;
    if (version !== PROTOCOL_VERSION) {
      throw protocolError(`protocol version ${version} is not supported (want ${PROTOCOL_VERSION})`, { version });
    }
    const id = buf.toString('hex', at + 1, at + 17);
    const firstUnacked = buf.readDoubleLE(at + 17);
    const next = buf.readDoubleLE(at + 25);
    if (!Number.isSafeInteger(firstUnacked) || !Number.isSafeInteger(next) || firstUnacked < 0 || next < firstUnacked) {
      throw protocolError(`hello with bad sequence numbers ${firstUnacked}..${next}`);
    }
    let s = this.credit.get(id);
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
      s = this.credit.open({
        ...creditFields(id, firstUnacked),
        conn: null,
        linger: null,
        revokeTimer: null,
        taken: 0,
      });
      // The sender had sent up to `next` to someone: what it re-sends below that may have been consumed there.
      this.stats.redelivered += next - firstUnacked;
    }
    // Bound first: a revocation bind asks of other senders goes to their connections, and this one's is set.
    s.conn = conn;
    conn.session = s;
    this.greeted(conn);
    conn.decoder.setRules(Math.max(this.maxMessageBytes, ERROR_MAX_BYTES), this.rules);
    const writer = (conn.writer = new FrameWriter(conn.socket, { slabBytes: 16 * 1024, flushBytes: 16 * 1024 }));
    this.credit.bind(s);
    const limit = s.limit;
    const acked = s.consumed;
    const resumeFrom = s.next;
    const max = this.maxMessageBytes;
    writer.control(FrameKind.helloAck, HELLO_ACK_BYTES, (b, o) => {
      b[o] = PROTOCOL_VERSION;
      b.writeDoubleLE(resumeFrom, o + 1);
      b.writeDoubleLE(limit, o + 9);
      b.writeDoubleLE(acked, o + 17);
      b.writeUInt32LE(max, o + 25);
    });
    writer.flush();
  }

  deliver(msg: Uint8Array, s: RxSession): void {
    this.stats.bytesReceived += msg.length;
    if (this.queue.length === 0 && this.readers.length > 0) {
      const r = this.readers.shift()!;
      if (msg.length <= r.value) {
        this.consumed(s);
        r.resolve(msg);
        return;
      }
      this.queue.push(msg, s);
      r.reject(tooSmall(msg.length, r.value));
      return;
    }
    this.queue.push(msg, s);
  }

  /** The application took one message of session `s`. */
  consumed(s: RxSession): void {
    this.stats.received++;
    // Reported at the end of this turn, not now. The report can reach the
    // sender at once (a credit frame after a quiet spell is written
    // through), and its acknowledgement lets the sender drop the message:
    // a kill -9 between that write and the application's own code after the
    // take (writing the message down, say) would lose it, the new instance
    // being sent only what is unacknowledged. By the next turn every
    // synchronous continuation of the take, promise jobs included, has run.
    if (s.taken++ === 0) this.takenFrom.push(s);
    if (!this.settleScheduled) {
      this.settleScheduled = true;
      setImmediate(this.settle);
    }
  }

  /** The turn's takes, reported to the credit engine: credit and acknowledgement go out from here. */
  readonly settle = (): void => {
    this.settleScheduled = false;
    // Let the last chunk go once nothing of this turn needs its view cache.
    this.viewOf = null;
    this.viewBuffer = null;
    let offered = false;
    for (const s of this.takenFrom) {
      const n = s.taken;
      s.taken = 0;
      if (this.credit.consume(s, n)) offered = true;
    }
    this.takenFrom.length = 0;
    // No credit frame went out with this turn's takes: acknowledge them within ackIntervalMs anyway, whether or
    // not more is queued. Until the sender hears of them it keeps them for a re-send, and a new receiving
    // process after a crash would be given them again.
    if (!offered && this.ackTimer === null) this.armAck();
  };

  take(maxBytes: number): Uint8Array | undefined {
    const m = this.queue.peek();
    if (m === undefined) return undefined;
    if (m.length > maxBytes) throw tooSmall(m.length, maxBytes);
    const s = this.queue.peekFrom();
    this.queue.shift();
    this.consumed(s);
    return m;
  }

  /** Up to `maxCount` queued messages, stopping before one larger than `maxBytes` (an error if it is the first). */
  takeMany(maxBytes: number, maxCount: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const q = this.queue;
    while (out.length < maxCount) {
      const m = q.peek();
      if (m === undefined) break;
      if (m.length > maxBytes) {
        if (out.length === 0) throw tooSmall(m.length, maxBytes);
        break;
      }
      const s = q.peekFrom();
      q.shift();
      this.consumed(s);
      out.push(m);
    }
    return out;
  }

  /** Tell `s`'s sender its limit and what the application consumed (the credit engine's grant). */
  sendCredit(s: RxSession): void {
    const limit = s.limit;
    const acked = s.consumed;
    s.conn!.writer!.control(FrameKind.credit, 16, (b, o) => {
      b.writeDoubleLE(limit, o);
      b.writeDoubleLE(acked, o + 8);
    });
  }

  /** Ask `s`'s sender to lower its limit to `limit` (the credit engine's revocation); cut it off if it does not answer. */
  sendRevoke(s: RxSession, limit: number): void {
    const conn = s.conn;
    if (conn === null) return;
    this.stats.creditRevocations++;
    conn.writer!.control(FrameKind.revoke, 8, (b, o) => b.writeDoubleLE(limit, o));
    if (s.revokeTimer) clearTimeout(s.revokeTimer);
    s.revokeTimer = setTimeout(() => {
      s.revokeTimer = null;
      if (s.conn !== conn || s.revokeTo < 0) return;
      this.stats.revokeTimeouts++;
      // Its credit returns to the pool as the connection ends; the sender may reconnect and resume its session.
      this.fail(
        conn,
        timeoutError(`${NAME}: the sender did not confirm a credit revocation within ${this.revokeTimeoutMs} ms`, {
          op: 'revoke',
          timeoutMs: this.revokeTimeoutMs,
        }),
      );
    }, this.revokeTimeoutMs);
    s.revokeTimer.unref();
  }

  armAck(): void {
    if (this.closed) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.credit.acknowledge();
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
    if (s.revokeTimer) {
      clearTimeout(s.revokeTimer);
      s.revokeTimer = null;
    }
    if (s.conn) s.conn.session = null;
    s.conn = null;
    this.credit.unbind(s);
    if (s.linger || this.closed || this.credit.get(s.key) !== s) return;
    s.linger = setTimeout(() => this.endSession(s), this.lingerMs);
    s.linger.unref();
  }

  endSession(s: RxSession): void {
    if (s.revokeTimer) {
      clearTimeout(s.revokeTimer);
      s.revokeTimer = null;
    }
    if (s.linger) {
      clearTimeout(s.linger);
      s.linger = null;
    }
    if (s.conn) {
      s.conn.session = null;
      s.conn = null;
    }
    this.credit.end(s);
  }

  dropped(conn: RxConn): void {
    this.conns.delete(conn);
    this.greeted(conn);
    if (conn.ending || this.closed) return;
    conn.ending = true;
    const s = conn.session;
    if (s) {
      this.detachSession(s);
      this.onEvent({
        type: 'peerLost',
        error: peerLost('a sending end went away without closing', undefined, { session: s.key }),
      });
    }
  }

  /** Release everything now; nothing here waits for I/O, so pending receives fail in this same job. */
  destroy(reason: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.credit.closed = true;
    this.closeReason = reason;
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    for (const s of this.credit.sessions.values()) {
      if (s.linger) clearTimeout(s.linger);
      if (s.revokeTimer) clearTimeout(s.revokeTimer);
    }
    for (const c of this.conns) if (c.helloTimer) clearTimeout(c.helloTimer);
    this.credit.sessions.clear();
    for (const c of this.conns) {
      c.ending = true;
      if (reason === undefined) {
        c.writer?.control(FrameKind.close, 0, () => {});
        c.writer?.flush();
        // As in fail(): half-close so the close frame is read before any reset.
        c.socket.end();
        setTimeout(() => c.socket.destroy(), 1000).unref();
      } else {
        c.socket.destroy();
      }
    }
    this.conns.clear();
    this.readers.rejectAll(linkClosed('receiving end closed', reason));
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
