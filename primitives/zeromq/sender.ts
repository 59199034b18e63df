/**
 * The sending end of the `zeromq` primitive: a DEALER that packs accepted
 * messages into DATA frames and keeps every sealed frame until a CREDIT
 * acknowledges it. Sequence numbers, credit, the discard outbox and blocked
 * sends are the {@link SenderWindow} of `../../lib/core/credit.ts`; sealed
 * frames wait in a {@link ResendRing} for a re-send after a reconnect.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { AmixError, ErrorCode, abortError, invalidArg } from '../../lib/core/errors.js';
import { ResendRing, SenderWindow } from '../../lib/core/credit.js';
import type { ChannelHandle } from '../../lib/core/primitive.js';
import { WaitList } from '../../lib/core/waitList.js';
import { isCurveKey } from './keys.js';
import {
  DATA_HEADER,
  FrameKind,
  HELLO_SIZE,
  PING_SIZE,
  SESSION_BYTES,
  ZEROMQ_DEFAULTS,
  badFrame,
  characteristics,
  checkEndpoint,
  checkSize,
  closedError,
  common,
  emit,
  parseFrame,
  positive,
  reportBad,
  socketOptions,
  writeU64,
  type Common,
  type Frame,
  type ZeromqAddress,
  type ZeromqChannelOptions,
} from './wire.js';

/** The sending end's state. */
export interface ZeromqSendHandle extends Omit<ChannelHandle, 'maxMessageBytes'>, Common {
  readonly role: 'send';
  readonly address: ZeromqAddress;
  /** @internal */ readonly socket: zmq.Dealer;
  /** @internal */ readonly session: Buffer;
  /** @internal */ readonly batchBytes: number;
  /** @internal */ readonly connectTimeoutMs: number;
  /** @internal */ readonly closeTimeoutMs: number;
  /** @internal Sequence numbers, credit, the dropOldest outbox, blocked sends. */ readonly w: SenderWindow;
  /** @internal Every sequence number below it has been handed to `writes`. */ sentUpTo: number;
  /** @internal Sealed DATA frames not yet acknowledged, oldest first. */ readonly frames: ResendRing;
  /** @internal The DATA frame being filled (header written at seal). */ cur: Buffer | undefined;
  /** @internal Reused as `cur` for batches of small messages. */ scratch: Buffer | undefined;
  /** @internal */ curOff: number;
  /** @internal */ curFirst: number;
  /** @internal */ curCount: number;
  /** @internal Frames waiting for the socket, in order. */ readonly writes: Buffer[];
  /** @internal */ writing: boolean;
  /** @internal */ flushScheduled: boolean;
  /** @internal */ credited: boolean;
  /** @internal Waiting for the first CREDIT of a connection. */ readonly connectWaiters: WaitList<void, void>;
  /** @internal PINGs waiting for the CREDIT that answers them: by token, or by acknowledging everything up to `upTo`. */
  pings: WaitList<{ token: number; upTo: number }, void>;
  /** @internal */ nextToken: number;
  /** @internal */ connected: boolean;
  /** @internal */ lostPeer: boolean;
  /** @internal */ awaitingWelcome: boolean;
  /** @internal */ attempts: number;
  /** @internal */ authError: AmixError | undefined;
  /** @internal */ detached: boolean;
  /** @internal */ loop: Promise<void>;
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

/** Connect a DEALER to a receiving end's address and return the sending end. */
export async function createSender(options: ZeromqChannelOptions): Promise<ZeromqSendHandle> {
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
  const maxmsg = address.maxmsg;
  const base = common(options, maxMessageBytes, z);
  const h: ZeromqSendHandle = {
    role: 'send',
    address,
    ...base,
    socket,
    session: randomBytes(SESSION_BYTES),
    w: new SenderWindow({
      discard: options.discard ?? address.discard ?? 'block',
      outboxMax: maxmsg,
      // The address promises the first maxmsg messages: no round trip before them.
      limit: maxmsg,
      style: 'onExhaustion',
      stats: base.stats,
      emit: (e) => emit(h, e),
      write: (data, seq) => accept(h, data, seq),
      queueFull: () =>
        new AmixError(
          ErrorCode.AMIX_ERR_QUEUE_FULL,
          `zeromq receiver at ${address.endpoint} has ${maxmsg} messages pending (maxmsg)`,
          { details: { maxmsg } },
        ),
    }),
    batchBytes: Math.min(positive('batchBytes', z.batchBytes, ZEROMQ_DEFAULTS.batchBytes), address.maxFrameBytes),
    connectTimeoutMs: positive('connectTimeoutMs', z.connectTimeoutMs, ZEROMQ_DEFAULTS.connectTimeoutMs),
    closeTimeoutMs: positive('closeTimeoutMs', z.closeTimeoutMs, ZEROMQ_DEFAULTS.closeTimeoutMs, true),
    sentUpTo: 0,
    frames: new ResendRing(),
    cur: undefined,
    scratch: undefined,
    curOff: DATA_HEADER,
    curFirst: 0,
    curCount: 0,
    writes: [],
    writing: false,
    flushScheduled: false,
    credited: false,
    connectWaiters: new WaitList<void, void>(),
    pings: new WaitList(),
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
    h.connectWaiters.rejectAll(err);
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
  writeU64(b, 9, h.w.acked);
  writeU64(b, 17, h.sentUpTo);
  // Ahead of queued data: the HELLO reply decides what must be re-sent.
  h.writes.unshift(b);
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
  // `expected` acknowledges what arrived (not what was consumed): those frames are never needed again.
  if (f.expected > h.w.acked && h.w.ack(Math.min(f.expected, h.sentUpTo))) h.frames.release(h.w.acked);
  h.w.credit(f.limit);
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
  h.connectWaiters.resolveAll();
  // A PING is answered by the CREDIT that echoes its token, and as well by any
  // CREDIT that acknowledges everything sent before it: a receiving end that
  // closes says so once (see destroy) and never answers a PING that arrives
  // after that.
  const acked = h.w.acked;
  for (const p of h.pings.take((v) => (f.token !== 0 && v.token === f.token) || v.upTo <= acked)) p.resolve();
  pump(h);
}

/** Queue again every sealed frame holding a sequence number from `from` on; the receiver drops what it already has. */
function resendFrom(h: ZeromqSendHandle, from: number): number {
  let resent = 0;
  const fr = h.frames;
  for (let i = 0; i < fr.length; i++) {
    const end = fr.end(i);
    if (end <= from) continue;
    h.writes.push(fr.buf(i) as Buffer);
    resent += end - Math.max(fr.first(i), from);
  }
  h.stats.resent += resent;
  void write(h);
  return resent;
}

/** Let the window take the outbox and blocked sends while there is credit; it emits resumed/suspended. */
export function pump(h: ZeromqSendHandle): void {
  if (h.closed) return;
  h.w.pump();
}

/** What `stats().pending` reports at a sending end: unacknowledged, in the outbox, and blocked. */
export function pendingOf(h: ZeromqSendHandle): number {
  return h.w.unacknowledged + h.w.outbox.length + h.w.waiters.length;
}

/** Pack message `seq` (within credit, the window checked) into the DATA frame being filled. */
function accept(h: ZeromqSendHandle, data: Uint8Array, seq: number): void {
  const len = data.byteLength;
  if (h.cur !== undefined && h.curOff + 4 + len > h.cur.length) seal(h);
  if (h.cur === undefined) {
    const need = DATA_HEADER + 4 + len;
    h.scratch ??= Buffer.allocUnsafe(h.batchBytes);
    h.cur = need <= h.scratch.length ? h.scratch : Buffer.allocUnsafe(need);
    h.curOff = DATA_HEADER;
    h.curFirst = seq;
    h.curCount = 0;
  }
  // Copied into the scratch frame; seal copies the whole batch out in one go.
  const b = h.cur;
  b.writeUInt32BE(len, h.curOff);
  b.set(data, h.curOff + 4);
  h.curOff += 4 + len;
  h.curCount++;
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
  writeU64(b, 17, h.w.acked);
  // An exact-size copy, kept until acknowledged; the scratch buffer is reused for the next batch.
  const buf = b === h.scratch ? Buffer.from(b.subarray(0, h.curOff)) : b.subarray(0, h.curOff);
  const end = h.curFirst + h.curCount;
  h.cur = undefined;
  h.curCount = 0;
  h.frames.push(buf, 0, h.curFirst, end);
  h.sentUpTo = end;
  h.writes.push(buf);
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
    while (h.writes.length > 0 && !h.closed && !h.detached) {
      await h.socket.send(h.writes.shift()!);
    }
  } catch {
    // Closed under a pending send; unacknowledged messages are counted lost by destroy.
  } finally {
    h.writing = false;
  }
}

/** The synchronous part of send: accept, apply policy, or return false (must wait). */
export function trySendNow(h: ZeromqSendHandle, data: Uint8Array): boolean {
  if (h.closed) throw closedError(h, '');
  checkSize(h, data);
  const w = h.w;
  const seq = w.admit(data.byteLength);
  if (seq < 0) return w.trySend(data);
  accept(h, data, seq);
  w.admitted();
  return true;
}

/** Wait for credit (abortable). The message is copied: the caller may reuse its buffer while the send waits. */
export function sendBlocking(h: ZeromqSendHandle, data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
  return h.w.wait(Buffer.from(data), signal);
}

/** Resolve once this connection has had a CREDIT; `AMIX_ERR_TIMEOUT` after `timeoutMs`, `AMIX_ERR_UNAUTHORIZED` if refused. */
export function waitCredited(h: ZeromqSendHandle, timeoutMs: number, what: string): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (h.authError) return Promise.reject(h.authError);
  if (h.credited) return Promise.resolve();
  const endpoint = h.address.endpoint;
  return h.connectWaiters.wait(undefined, {
    what: `${what} (no answer from ${endpoint})`,
    timeoutMs,
    details: { endpoint, timeoutMs },
  });
}

/** A PING behind every message accepted so far, answered by the CREDIT that acknowledges them all. */
export function ping(h: ZeromqSendHandle, signal?: AbortSignal): Promise<void> {
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
  const answered = h.pings.wait({ token, upTo: h.w.seq }, { signal, what: 'cycle' });
  h.writes.push(b);
  void write(h);
  return answered;
}

/** A graceful close: flush, then PING until everything is acknowledged or `closeTimeoutMs` runs out. */
export async function drainOnClose(h: ZeromqSendHandle): Promise<void> {
  if (h.closeTimeoutMs === 0 || h.detached) return;
  const deadline = Date.now() + h.closeTimeoutMs;
  flush(h);
  while (!h.closed && h.w.acked < h.w.seq && h.authError === undefined) {
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

/** Close the sending end: fail what waits, count the unacknowledged and the outbox as lost. */
export function destroySender(h: ZeromqSendHandle): void {
  const err = closedError(h, 'while sending');
  h.connectWaiters.rejectAll(err);
  h.pings.rejectAll(err);
  h.stats.lost += h.w.unacknowledged + h.w.close(err);
  h.socket.close();
}
