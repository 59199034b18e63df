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
 * Wire protocol (frames from `../lib/core/framing.js`: u32 LE length, u8 kind, payload;
 * encoded in `queueConditionProcess/wire.ts`):
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
 * | 9    | revoke    | rx → tx   | f64 limit: lower your limit to this                  |
 * | 10   | revokeAck | tx → rx   | f64 limit now in force: max(limit asked, messages already written) |
 *
 * Protocol version 2 (hello and helloAck carry it; version 1 had no kinds
 * 9 and 10 and is refused with `AMIX_ERR_PROTOCOL`).
 *
 * Messages of a session are numbered from 0 (the number is implied by order,
 * never sent). **Credit-based flow control**: the receiver grants an
 * absolute `limit` (the sender may send message numbers below it); the
 * receiver's pending queue plus the credit it has outstanding never exceeds
 * `maxmsg`, and it grants more only when that sum falls to `minmsg`
 * (hysteresis), so the receiver's pending never exceeds `maxmsg` even with a
 * slow consumer. A sender exceeding its credit is a protocol error (its
 * connection is closed with `AMIX_ERR_PROTOCOL`). With several sending ends
 * the credit is shared **fairly**: each connected sender is held to a share
 * of `maxmsg` (`maxmsg / senders`, at least 1; with one sender, all of it,
 * so the single-sender path is unchanged), counting its queued messages and
 * the credit it may still use. When a sender connects and the pool cannot
 * give it its share, every sender holding more than the new share is sent a
 * `revoke`; it lowers its limit at once (never below what it has already
 * written) and answers `revokeAck` with the limit now in force. That answer
 * follows every data frame it wrote before it, so the receiver then knows
 * exactly what is in flight: the revoked credit counts as outstanding until
 * the answer, and pending never exceeds `maxmsg`. A sender that does not
 * answer within `revokeTimeoutMs` (default 2000) is cut off (it may
 * reconnect and resume its session). A sender that disconnects or dies gives
 * its unused credit back at once. So an idle sender holds at most its share
 * and cannot starve the others.
 *
 * **Before hello** a connection is held to little: only hello (33 B), close,
 * detach and error (at most 1 KiB) frames are taken, checked at the header,
 * so a data frame or any larger length closes the connection before a byte
 * of its payload is buffered; it must say hello within `helloTimeoutMs`
 * (default 5000, `AMIX_ERR_TIMEOUT`); at most `maxPreHelloConnections`
 * (default 64) may be waiting for their hello, more are closed at once with
 * `AMIX_ERR_MAX_CONNECTIONS`. A refused connection is told why in an error
 * frame, not read on, and destroyed 100 ms later. Each refusal is counted in
 * the receiving end's stats ({@link ProcessReceiverStats}: `preHelloRefused`,
 * `helloTimeouts`, `connectionsOverCap`, and after hello `badFrames`,
 * `protocolErrors`, `creditRevocations`, `revokeTimeouts`).
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
 * acknowledgement, sent within `ackIntervalMs` of the application's takes) are
 * delivered again: at-least-once across a receiver restart. If the sender
 * gives up, the channel closes with `AMIX_ERR_PEER_LOST` whose `details.unacknowledged`
 * reports how many accepted messages may not have been consumed.
 *
 * **Fast paths**: an accepted message is framed straight into the sending
 * end's slab (its one copy, kept there for a re-send); a frame after a quiet
 * spell is written at once, and the rest of that turn leaves in writes of at
 * most 64 KiB (Node's read size) at the turn's end. A received message is a
 * view of the socket chunk it arrived in (a copy only when it spans chunks).
 * `trySendMany`/`tryReceiveMany` are the batch forms; a batch's takes, like
 * single ones, reach the credit engine at the end of the turn.
 *
 * **Suspend/resume**: on a sending end, suspend pauses it (sends wait,
 * whatever the discard policy; `trySend` returns false); on a receiving end,
 * suspend stops granting credit, so senders stop once their credit is spent.
 *
 *
 * Layout: `queueConditionProcess/wire.ts` (frame kinds, options, errors),
 * `receiver.ts`, `sender.ts`, `runtimeDir.ts`; the credit accounting, the
 * sender's window and discard policy are `../lib/core/credit.ts`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, invalidArg } from '../lib/core/errors.js';
import type {
  ChannelAddress,
  ChannelOptions,
  ChannelStats,
  Primitive,
  ReceiveOptions,
  SendOptions,
} from '../lib/core/primitive.js';
import { ReceiverHandle, ReceiverState } from './queueConditionProcess/receiver.js';
import type { ProcessReceiverStats } from './queueConditionProcess/wire.js';
import { clearStale, runtimeDirectory, sweepStale } from './queueConditionProcess/runtimeDir.js';
import { SenderHandle, SenderState } from './queueConditionProcess/sender.js';
import {
  NAME,
  asAmix,
  characteristics,
  isWindows,
  linkClosed,
  type ProcessChannelOptions,
} from './queueConditionProcess/wire.js';

export {
  FrameKind,
  NAME,
  PROTOCOL_VERSION,
  characteristics,
  preHelloFrameRules,
  receiverFrameRules,
  senderFrameRules,
} from './queueConditionProcess/wire.js';
export type {
  ProcessAddress,
  ProcessChannelOptions,
  ProcessReceiverStats,
  ReconnectOptions,
} from './queueConditionProcess/wire.js';
export { runtimeDirectory } from './queueConditionProcess/runtimeDir.js';
export { ReceiverHandle } from './queueConditionProcess/receiver.js';
export { SenderHandle } from './queueConditionProcess/sender.js';

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
  // A sender may connect between listen and the receiving end's own handler
  // (a restarted point's peer retries every 100 ms at this very path): such a
  // connection would never be read, and its sender would wait out its
  // handshake timeout. Keep them, and hand them over below.
  const early: Socket[] = [];
  const keep = (s: Socket): void => void early.push(s);
  server.on('connection', keep);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(asAmix(err, ErrorCode.AMIX_ERR_INVALID_ARG, `${NAME}: cannot listen on ${path}`)),
    );
    server.listen(path, () => resolve());
  });
  server.on('error', () => {});
  if (!isWindows) await chmod(path, 0o600);
  const st = new ReceiverState(path, server, o);
  server.off('connection', keep);
  for (const s of early) if (!s.destroyed) st.accept(s);
  return new ReceiverHandle({ path }, st);
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

/** The primitive object (the default export; `export { primitive }` names it). */
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
    return st.readers.wait(options.maxBytes, { signal: options.signal, what: 'receive' });
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
    if (handle.role === 'send') handle.st.w.paused = true;
    else handle.st.credit.suspend();
  },

  /** Undo {@link suspend}. */
  resume(handle: ProcessHandle): void {
    if (handle.role === 'send') {
      handle.st.w.paused = false;
      handle.st.pump();
    } else {
      handle.st.credit.resume();
    }
  },

  /**
   * Counters; `pending` is the queue at a receiving end, accepted-but-unacknowledged at a sending end.
   * A receiving end's are a {@link ProcessReceiverStats}: what it refused, too.
   */
  stats(handle: ProcessHandle): ChannelStats | ProcessReceiverStats {
    if (handle.role === 'send') {
      const st = handle.st;
      return { ...st.stats, pending: st.w.unacknowledged + st.w.outbox.length };
    }
    return { ...handle.st.stats, pending: handle.st.queue.length };
  },

  /** Synchronous send: true when accepted (or discarded by policy), false when `send` would wait. */
  trySend(handle: ProcessHandle, data: Uint8Array): boolean {
    if (handle.role !== 'send') throw invalidArg('trySend()', 'needs a sending end');
    return handle.st.trySend(data);
  },

  /** Batch form of {@link trySend}: how many of `messages` (a prefix) were taken now, each framed into the same slab. */
  trySendMany(handle: ProcessHandle, messages: readonly Uint8Array[]): number {
    if (handle.role !== 'send') throw invalidArg('trySendMany()', 'needs a sending end');
    return handle.st.trySendMany(messages);
  },

  /**
   * Batch form of {@link tryReceive}: up to `maxCount` queued messages, oldest
   * first (stopping before one larger than `maxBytes`; `AMIX_ERR_BUFFER_TOO_SMALL`
   * when that is the first). Their consumption is reported once, at the end of the turn.
   */
  tryReceiveMany(handle: ProcessHandle, maxBytes: number, maxCount: number): Uint8Array[] {
    if (handle.role !== 'receive') throw invalidArg('tryReceiveMany()', 'needs a receiving end');
    if (handle.st.closed) throw linkClosed('receiving end is closed', handle.st.closeReason);
    return handle.st.takeMany(maxBytes, maxCount);
  },

  /** Synchronous receive: the next message, or undefined when none is queued. */
  tryReceive(handle: ProcessHandle, maxBytes: number): Uint8Array | undefined {
    if (handle.role !== 'receive') throw invalidArg('tryReceive()', 'needs a receiving end');
    if (handle.st.closed) throw linkClosed('receiving end is closed', handle.st.closeReason);
    return handle.st.take(maxBytes);
  },
} satisfies Primitive<ProcessHandle> & {
  trySendMany: (handle: ProcessHandle, messages: readonly Uint8Array[]) => number;
  tryReceiveMany: (handle: ProcessHandle, maxBytes: number, maxCount: number) => Uint8Array[];
};

/** The `queueConditionProcess` primitive object (also the default export). */
export default primitive;
export { primitive };
