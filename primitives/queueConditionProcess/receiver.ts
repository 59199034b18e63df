/**
 * The receiving end of `queueConditionProcess`: a Unix socket server whose
 * connections carry sending ends' sessions. Credit accounting is the shared
 * pool of `../../lib/core/credit.ts` (one `maxmsg` for all senders); this
 * file decodes and writes the frames.
 *
 * @module
 */
import { unlinkSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { ErrorCode, type AmixError } from '../../lib/core/errors.js';
import { CreditReceiver, MessageQueue, creditFields, type CreditSession } from '../../lib/core/credit.js';
import { FrameDecoder, FrameWriter, encodeFrame } from '../../lib/core/framing.js';
import type { ChannelEvent } from '../../lib/core/primitive.js';
import { WaitList } from '../../lib/core/waitList.js';
import {
  DEFAULT_MAXMSG,
  ERROR_MAX_BYTES,
  FrameKind,
  HELLO_ACK_BYTES,
  PROTOCOL_VERSION,
  asAmix,
  characteristics,
  emptyStats,
  errorPayload,
  isWindows,
  linkClosed,
  peerLost,
  protocolError,
  receiverFrameRules,
  tooSmall,
  EndHandle,
  type ProcessAddress,
  type ProcessChannelOptions,
} from './wire.js';

const EMPTY = new Uint8Array(0);

/** A sender's session as the receiver knows it; outlives one connection for `sessionLingerMs`. */
export interface RxSession extends CreditSession {
  conn: RxConn | null;
  linger: NodeJS.Timeout | null;
}

/** One accepted connection. */
export interface RxConn {
  socket: Socket;
  writer: FrameWriter;
  decoder: FrameDecoder;
  session: RxSession | null;
  /** Set once the connection is being closed on purpose (close/detach frame, bad frame, destroy). */
  ending: boolean;
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
  readonly queue = new MessageQueue<RxSession>();
  /** Blocked receives, each with the largest message it accepts. */
  readonly readers = new WaitList<number, Uint8Array>();
  readonly credit: CreditReceiver<RxSession>;
  readonly conns = new Set<RxConn>();
  closed = false;
  closeReason: Error | undefined;
  ackTimer: NodeJS.Timeout | null = null;
  /**
   * `redelivered`: messages re-sent to this end in a session it did not
   * know (a previous receiving end at this address, e.g. the instance before
   * a restart, had them and may have consumed some): each is possibly a
   * duplicate. An upper bound; the application cannot tell which.
   */
  readonly stats = { ...emptyStats(), redelivered: 0 };

  constructor(path: string, server: Server, o: ProcessChannelOptions) {
    this.path = path;
    this.server = server;
    const maxmsg = o.maxmsg ?? DEFAULT_MAXMSG;
    this.credit = new CreditReceiver<RxSession>({
      maxmsg,
      minmsg: o.minmsg ?? Math.floor(maxmsg / 2),
      pool: 'shared',
      onGrant: (s) => this.sendCredit(s),
    });
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
      if (s === null) throw protocolError('data frame before hello');
      if (!this.credit.admit(s)) {
        throw protocolError(`sender exceeded its credit (message ${s.next}, limit ${s.limit})`, {
          next: s.next,
          limit: s.limit,
        });
      }
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
      s = this.credit.open({ ...creditFields(id, firstUnacked), conn: null, linger: null });
      // The sender had sent up to `next` to someone: what it re-sends below that may have been consumed there.
      this.stats.redelivered += next - firstUnacked;
    }
    this.credit.bind(s);
    s.conn = conn;
    conn.session = s;
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
    if (!this.credit.consume(s) && this.ackTimer === null && this.queue.length === 0) this.armAck();
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

  /** Tell `s`'s sender its limit and what the application consumed (the credit engine's grant). */
  sendCredit(s: RxSession): void {
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
    if (s.conn) s.conn.session = null;
    s.conn = null;
    this.credit.unbind(s);
    if (s.linger || this.closed || this.credit.get(s.key) !== s) return;
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
    this.credit.end(s);
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
    for (const s of this.credit.sessions.values()) if (s.linger) clearTimeout(s.linger);
    this.credit.sessions.clear();
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
