/**
 * The sending end of `queueConditionProcess`: dials the receiver's socket,
 * says hello with its session, and writes data frames within the credit the
 * receiver grants. Sequence numbers, credit, the discard outbox and blocked
 * sends are the {@link SenderWindow} of `../../lib/core/credit.ts`; the
 * framed bytes of every accepted, unacknowledged message stay in a
 * {@link ResendRing} so a reconnect can write them again.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { AmixError, ErrorCode } from '../../lib/core/errors.js';
import { ResendRing, SenderWindow } from '../../lib/core/credit.js';
import { WaitList } from '../../lib/core/waitList.js';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameWriter, encodeFrame } from '../../lib/core/framing.js';
import type { ChannelEvent } from '../../lib/core/primitive.js';
import {
  DEFAULT_MAXMSG,
  ERROR_MAX_BYTES,
  FrameKind,
  HELLO_BYTES,
  NAME,
  PROTOCOL_VERSION,
  asAmix,
  emptyStats,
  linkClosed,
  peerLost,
  protocolError,
  senderFrameRules,
  EndHandle,
  type ProcessAddress,
  type ProcessChannelOptions,
} from './wire.js';

/** The sending end's handle. */
export class SenderHandle extends EndHandle<'send', SenderState> {
  constructor(address: ProcessAddress, st: SenderState) {
    super('send', address, st);
  }
}

const TxState = { connecting: 0, open: 1, reconnecting: 2, detached: 3, closed: 4 } as const;
type TxState = (typeof TxState)[keyof typeof TxState];

/** The sending end's state: the connection, its handshake, the credit window and the resend ring. */
export class SenderState {
  readonly path: string;
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
  /** Sequence numbers, credit (none until the helloAck), the dropOldest outbox and blocked sends. */
  readonly w: SenderWindow;
  /** Next message number to write on the current connection. */
  wire = 0;
  /** Framed bytes of every accepted, unacknowledged message, one entry per message. */
  readonly unacked = new ResendRing();
  /** Cycles waiting for their acknowledgement, by token (answered in order, re-sent after a reconnect). */
  readonly cycles = new WaitList<number, void>();
  cycleToken = 0;
  peerMaxBytes = Number.MAX_SAFE_INTEGER;
  reconnectTimer: NodeJS.Timeout | null = null;
  lastError: AmixError | null = null;
  /** Resolves the handshake of the connection being made. */
  handshake: { resolve: () => void; reject: (e: Error) => void } | null = null;

  constructor(path: string, o: ProcessChannelOptions) {
    this.path = path;
    this.onEvent = o.onEvent ?? (() => {});
    this.w = new SenderWindow({
      discard: o.discard ?? 'block',
      outboxMax: o.maxmsg ?? DEFAULT_MAXMSG,
      limit: 0,
      style: 'onRefusal',
      stats: this.stats,
      emit: this.onEvent,
      write: (data, seq) => this.accept(data, seq),
      queueFull: () =>
        new AmixError(
          ErrorCode.AMIX_ERR_QUEUE_FULL,
          `${NAME}: no credit from the receiving end (maxmsg reached) and the policy is reject`,
          { details: { pending: this.w.unacknowledged } },
        ),
    });
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
        hello.writeDoubleLE(this.w.acked, 17);
        hello.writeDoubleLE(this.w.seq, 25);
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
        if (this.handshake) throw protocolError('credit before helloAck');
        this.credit(buf.readDoubleLE(start), buf.readDoubleLE(start + 8));
        return;
      }
      case FrameKind.revoke: {
        if (this.handshake) throw protocolError('revoke before helloAck');
        this.revoke(buf.readDoubleLE(start));
        return;
      }
      case FrameKind.cycleAck: {
        const token = buf.readUInt32LE(start);
        for (const c of this.cycles.take((t) => t === token)) c.resolve();
        return;
      }
      case FrameKind.helloAck:
        this.helloAck(socket, buf, start);
        return;
      case FrameKind.close:
        // The receiver closed on purpose: it will not come back, so no reconnect.
        this.lastError = peerLost(
          `the receiving end at ${this.path} closed the channel; ${this.w.unacknowledged} accepted messages are unacknowledged`,
          undefined,
          { unacknowledged: this.w.unacknowledged },
        );
        this.onEvent({ type: 'peerLost', error: this.lastError });
        this.finalClose(this.lastError);
        return;
      case FrameKind.error:
        this.lastError = peerLost(`the receiving end refused the connection: ${buf.toString('utf8', start, end)}`);
        socket.destroy();
        return;
      default:
        throw protocolError(`unexpected frame kind ${kind} at a sending end`);
    }
  }

  helloAck(socket: Socket, buf: Buffer, at: number): void {
    if (!this.handshake) throw protocolError('unexpected helloAck');
    if (buf[at] !== PROTOCOL_VERSION) throw protocolError(`receiver speaks protocol ${buf[at]}`);
    const resumeFrom = buf.readDoubleLE(at + 1);
    const limit = buf.readDoubleLE(at + 9);
    const acked = buf.readDoubleLE(at + 17);
    this.peerMaxBytes = buf.readUInt32LE(at + 25);
    const w = this.w;
    if (!(resumeFrom >= w.acked && resumeFrom <= w.seq && acked <= resumeFrom && limit >= resumeFrom)) {
      throw protocolError(`helloAck resumes from ${resumeFrom}, outside ${w.acked}..${w.seq}`);
    }
    this.ack(acked);
    this.wire = resumeFrom;
    // A new receiver's limit may be below the old one's: the handshake's is the truth.
    w.credit(limit, true);
    this.writer.discard();
    this.writer.setSink(socket);
    this.handshake!.resolve();
    this.state = TxState.open;
    this.resent = w.seq - resumeFrom;
    for (const token of this.cycles.values()) this.packCycle(token);
    this.pump();
  }

  /** Messages re-sent by the last handshake (for the `reconnected` event). */
  resent = 0;

  ack(acked: number): void {
    if (this.w.ack(acked)) this.unacked.release(acked);
  }

  credit(limit: number, acked: number): void {
    this.ack(acked);
    this.w.credit(limit);
    this.pump();
  }

  /**
   * The receiver took back credit (its share of `maxmsg` shrank as another
   * sender came): lower the limit to `limit`, or to what this connection has
   * already written if that is more, and confirm the limit now in force. The
   * confirmation follows every data frame written before it on the stream,
   * so the receiver knows exactly what is still on its way.
   */
  revoke(limit: number): void {
    const w = this.w;
    if (!Number.isSafeInteger(limit)) throw protocolError(`revocation to a bad limit ${limit}`);
    const now = Math.max(this.wire, Math.min(limit, w.limit));
    w.credit(now, true);
    this.writer.control(FrameKind.revokeAck, 8, (b, o) => b.writeDoubleLE(now, o));
  }

  /** Write held resends, then let the window take the outbox and blocked sends, as far as credit goes. */
  pump(): void {
    const w = this.w;
    if (this.state === TxState.open) {
      while (this.wire < w.seq && this.wire < w.limit) this.writer.raw(this.view(this.wire++));
    }
    w.pump();
  }

  /** The frame bytes of message `seq` (a new view: only resends need one). */
  view(seq: number): Uint8Array {
    // One entry per message, and the oldest held is the first unacknowledged.
    const i = seq - this.unacked.first(0);
    const b = this.unacked.buf(i);
    const o = this.unacked.off(i);
    const len = b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | ((b[o + 3]! << 24) >>> 0);
    return new Uint8Array(b.buffer, b.byteOffset + o, FRAME_HEADER_BYTES + len);
  }

  /** Take message `seq` (credit checked by the window): frame it, keep it until acknowledged. */
  accept(data: Uint8Array, seq: number): void {
    if (this.state === TxState.open && this.wire === seq) {
      const off = this.writer.frame(FrameKind.data, data);
      this.unacked.push(this.writer.slab, off, seq, seq + 1);
      this.wire++;
    } else {
      this.unacked.push(encodeFrame(FrameKind.data, data), 0, seq, seq + 1);
    }
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
    // Hot path: open, nothing of an earlier connection left to re-send, credit left. The
    // window's admit numbers the message without the write callback, and the frame goes
    // straight into the writer's slab (one copy), its place kept for a resend.
    if (this.state === TxState.open && data.length <= this.peerMaxBytes && this.wire === this.w.seq) {
      const seq = this.w.admit(data.length);
      if (seq >= 0) {
        const writer = this.writer;
        const off = writer.frame(FrameKind.data, data);
        this.unacked.push(writer.slab, off, seq, seq + 1);
        this.wire = seq + 1;
        this.w.admitted();
        return true;
      }
    }
    this.check(data);
    return this.w.trySend(data);
  }

  /** {@link trySend} for a batch: how many of `messages` (a prefix) were taken now. */
  trySendMany(messages: readonly Uint8Array[]): number {
    let i = 0;
    try {
      while (i < messages.length && this.trySend(messages[i]!)) i++;
    } catch (err) {
      // Those before it were taken: report them; the caller meets the error again on the next call.
      if (i === 0) throw err;
    }
    return i;
  }

  send(data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    if (this.trySend(data)) return Promise.resolve();
    return this.w.wait(data, signal);
  }

  packCycle(token: number): void {
    this.writer.control(FrameKind.cycle, 4, (b, o) => b.writeUInt32LE(token, o));
  }

  cycle(signal: AbortSignal | undefined): Promise<void> {
    if (this.state === TxState.closed) return Promise.reject(linkClosed('sending end is closed'));
    const token = (this.cycleToken = (this.cycleToken + 1) >>> 0);
    const acked = this.cycles.wait(token, { signal, what: 'cycle' });
    if (this.state === TxState.open) this.packCycle(token);
    return acked;
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
          `gave up reconnecting to ${this.path} after ${this.attempts} attempts; ${this.w.unacknowledged} accepted messages are unacknowledged`,
          why,
          { attempts: this.attempts, unacknowledged: this.w.unacknowledged },
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
    // The outbox stays: stats().pending still counts what was accepted and never sent.
    this.w.waiters.rejectAll(err);
    this.cycles.rejectAll(err);
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
