/**
 * The sending end of the `nats` primitive: it packs accepted messages into
 * DATA frames published on the link's subject (a durable link: through
 * JetStream), keeps every frame until a CREDIT acknowledges it, and hears
 * CREDIT on a subject of its own session. Sequence numbers, credit, the
 * discard outbox and blocked sends are the {@link SenderWindow} of
 * `../../lib/core/credit.ts`; frames wait in a {@link ResendRing}. NATS core
 * may drop a message (a reconnect, a slow consumer): the receiver asks for a
 * re-send at a gap, and an unanswered end says HELLO again every
 * `helloIntervalMs`, so a lost tail, CREDIT or PING is found too.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { AmixError, ErrorCode, abortError, invalidArg } from '../../lib/core/errors.js';
import { ResendRing, SenderWindow } from '../../lib/core/credit.js';
import type { ChannelHandle } from '../../lib/core/primitive.js';
import { WaitList } from '../../lib/core/waitList.js';
import { durablePublisher } from './durable.js';
import {
  BODY,
  DATA_HEADER,
  FRAME_OVERHEAD,
  FrameKind,
  HELLO_SIZE,
  MAC_BYTES,
  NATS_DEFAULTS,
  PING_SIZE,
  SESSION_BYTES,
  badFrame,
  characteristics,
  closedError,
  common,
  emit,
  linkKey,
  maxPayload,
  openConnection,
  checkedFrame,
  counterNonce,
  frameBytes,
  positive,
  publish,
  reportBad,
  seal as mac,
  serversOf,
  sessionKey,
  subscriptionError,
  writeU64,
  type Common,
  type NatsAddress,
  type NatsChannelOptions,
} from './wire.js';

/** The sending end's state. */
export interface NatsSendHandle extends Omit<ChannelHandle, 'maxMessageBytes'>, Common {
  readonly role: 'send';
  readonly address: NatsAddress;
  /** @internal */ readonly session: Buffer;
  /** @internal This session's key for its own frames, and the one CREDIT comes under (see `sessionKey`). */ readonly sendKey: Buffer;
  /** @internal */ readonly creditKey: Buffer;
  /** @internal The nonce counter of this end's frames: every frame built gets the next. */ ctr: number;
  /** @internal */ readonly batchBytes: number;
  /** @internal */ readonly maxFrameBytes: number;
  /** @internal */ readonly connectTimeoutMs: number;
  /** @internal */ readonly closeTimeoutMs: number;
  /** @internal */ readonly w: SenderWindow;
  /** @internal Every sequence number below it has been published. */ sentUpTo: number;
  /** @internal Durable: every sequence number below it is stored in the stream. */ storedUpTo: number;
  /** @internal Published DATA frames not yet acknowledged, oldest first. */ readonly frames: ResendRing;
  /** @internal */ cur: Buffer | undefined;
  /** @internal */ scratch: Buffer | undefined;
  /** @internal */ curOff: number;
  /** @internal */ curFirst: number;
  /** @internal */ curCount: number;
  /** @internal */ flushScheduled: boolean;
  /** @internal */ credited: boolean;
  /** @internal */ lastCreditAt: number;
  /** @internal */ readonly connectWaiters: WaitList<void, void>;
  /** @internal */ readonly pings: WaitList<{ token: number; upTo: number }, void>;
  /** @internal */ nextToken: number;
  /** @internal */ lostPeer: boolean;
  /** @internal */ awaitingWelcome: boolean;
  /** @internal */ attempts: number;
  /** @internal The client's wait between reconnect attempts (for the `reconnecting` event). */ readonly reconnectWaitMs: number;
  /** @internal */ detached: boolean;
  /** @internal */ sub: Subscription | undefined;
  /** @internal */ timer: NodeJS.Timeout | undefined;
  /** @internal Durable links: the JetStream client DATA goes through. */ js: JetStreamClient | undefined;
  /** @internal Durable links: the first message of a frame the server did not store (Infinity: none). */ unstored: number;
}

function checkAddress(a: unknown): NatsAddress {
  if (a === null || typeof a !== 'object')
    throw invalidArg('options.address', 'must be the address of a nats receiving end', a);
  const x = a as Record<string, unknown>;
  if (typeof x.subject !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(x.subject))
    throw invalidArg('options.address.subject', 'must be a NATS subject without wildcards', x.subject);
  if (!Array.isArray(x.servers) || x.servers.some((s) => typeof s !== 'string'))
    throw invalidArg('options.address.servers', 'must be a list of server URLs', x.servers);
  linkKey('options.address.key', x.key);
  if (x.stream !== undefined && x.stream !== `${x.subject}.js`)
    throw invalidArg('options.address.stream', "must be the subject followed by '.js'", x.stream);
  for (const k of ['maxmsg', 'maxMessageBytes', 'maxFrameBytes'] as const) {
    if (typeof x[k] !== 'number' || !Number.isSafeInteger(x[k]) || (x[k] as number) < 1)
      throw invalidArg(`options.address.${k}`, 'must be a positive integer', x[k]);
  }
  return x as unknown as NatsAddress;
}

/** Connect to the address's link and return the sending end. */
export async function createSender(options: NatsChannelOptions): Promise<NatsSendHandle> {
  const address = checkAddress(options.address);
  const n = options.nats ?? {};
  const batch = positive('batchBytes', n.batchBytes, NATS_DEFAULTS.batchBytes);
  const connectTimeoutMs = positive('connectTimeoutMs', n.connectTimeoutMs, NATS_DEFAULTS.connectTimeoutMs);
  const closeTimeoutMs = positive('closeTimeoutMs', n.closeTimeoutMs, NATS_DEFAULTS.closeTimeoutMs, true);
  const helloMs = positive('helloIntervalMs', n.helloIntervalMs, NATS_DEFAULTS.helloIntervalMs);
  const conn = await openConnection(n, serversOf(n, address.servers));
  const maxFrameBytes = Math.min(address.maxFrameBytes, maxPayload(conn.nc));
  const maxMessageBytes = Math.min(options.maxMessageBytes ?? characteristics.maxMessageBytes, address.maxMessageBytes);
  const maxmsg = address.maxmsg;
  const base = common(options, maxMessageBytes, n, conn, linkKey('options.address.key', address.key));
  const session = randomBytes(SESSION_BYTES);
  const h: NatsSendHandle = {
    role: 'send',
    address,
    ...base,
    session,
    sendKey: sessionKey(base.mac, session, 's'),
    creditKey: sessionKey(base.mac, session, 'r'),
    ctr: 0,
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
          `nats receiver on ${address.subject} has ${maxmsg} messages pending (maxmsg)`,
          { details: { maxmsg } },
        ),
    }),
    batchBytes: Math.min(batch, maxFrameBytes),
    maxFrameBytes,
    connectTimeoutMs,
    closeTimeoutMs,
    sentUpTo: 0,
    storedUpTo: 0,
    frames: new ResendRing(),
    cur: undefined,
    scratch: undefined,
    curOff: DATA_HEADER,
    curFirst: 0,
    curCount: 0,
    flushScheduled: false,
    credited: false,
    lastCreditAt: Date.now(),
    connectWaiters: new WaitList<void, void>(),
    pings: new WaitList(),
    nextToken: 1,
    lostPeer: false,
    awaitingWelcome: true,
    attempts: 0,
    reconnectWaitMs: n.connectOptions?.reconnectTimeWait ?? 250,
    detached: false,
    sub: undefined,
    timer: undefined,
    js: undefined,
    unstored: Infinity,
  };
  try {
    if (address.stream !== undefined) h.js = await durablePublisher(h.nc);
    // Subscribed before the first HELLO leaves on the same connection, so the server routes its answer here.
    const creditSubject = `${address.subject}.c.${h.session.toString('hex')}`;
    h.sub = h.nc.subscribe(creditSubject, {
      callback: (err, m) => {
        if (err) {
          // E.g. no permission to subscribe: say why, and let connect() fail with it rather than time out.
          const e = subscriptionError(creditSubject, err);
          emit(h, { type: 'peerLost', error: e });
          h.connectWaiters.rejectAll(e);
        } else onCreditFrame(h, m.data);
      },
    });
  } catch (err) {
    if (conn.owns) await conn.nc.close().catch(() => undefined);
    throw err;
  }
  sendHello(h);
  h.timer = setInterval(() => tick(h, helloMs), Math.max(10, Math.floor(helloMs / 2)));
  h.timer.unref();
  void watchStatus(h);
  return h;
}

/** Say HELLO again when something waits for an answer that has not come for `helloMs`. */
function tick(h: NatsSendHandle, helloMs: number): void {
  if (h.closed || h.detached) return;
  if (h.unstored !== Infinity && !h.lostPeer && !h.nc.isClosed()) {
    // A durable frame the server refused or never acknowledged: publish it (and what follows) again, once connected.
    const from = Math.max(h.unstored, h.w.acked);
    h.unstored = Infinity;
    resendFrom(h, from);
  }
  const waiting = !h.credited || h.w.unacknowledged > 0 || h.pings.length > 0 || h.w.waiters.length > 0;
  if (waiting && Date.now() - h.lastCreditAt >= helloMs) {
    h.lastCreditAt = Date.now();
    sendHello(h);
  }
}

async function watchStatus(h: NatsSendHandle): Promise<void> {
  try {
    for await (const st of h.nc.status()) {
      if (h.closed) break;
      if (st.type === 'disconnect') {
        h.credited = false;
        if (!h.lostPeer) {
          h.lostPeer = true;
          emit(h, {
            type: 'peerLost',
            error: new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `lost the connection to NATS server ${st.server}`, {
              details: { endpoint: st.server },
            }),
          });
        }
      } else if (st.type === 'reconnecting') {
        emit(h, { type: 'reconnecting', attempt: ++h.attempts, delayMs: h.reconnectWaitMs });
      } else if (st.type === 'reconnect') {
        h.attempts = 0;
        h.awaitingWelcome = true;
        sendHello(h);
      }
    }
  } catch {
    // The connection closed.
  }
}

function sendHello(h: NatsSendHandle): void {
  const b = Buffer.allocUnsafe(HELLO_SIZE);
  b[0] = FrameKind.hello;
  h.session.copy(b, 1);
  counterNonce(b, h.ctr++);
  writeU64(b, BODY, h.w.acked);
  writeU64(b, BODY + 8, h.sentUpTo);
  mac(h.sendKey, b, HELLO_SIZE - MAC_BYTES);
  // Frames of the current batch go first: the HELLO's answer must see them.
  flush(h);
  publish(h, h.address.subject, b);
}

function onCreditFrame(h: NatsSendHandle, data: Uint8Array): void {
  if (h.closed) return;
  let f;
  try {
    f = checkedFrame(frameBytes(data), h.creditKey, 0);
    if (f.kind !== 'credit') throw badFrame(`of kind ${f.kind} sent to a sending end`);
    if (!f.session.equals(h.session)) throw badFrame('CREDIT for another session');
  } catch (err) {
    reportBad(h, err as AmixError);
    return;
  }
  h.lastCreditAt = Date.now();
  // `expected` acknowledges what arrived: those frames are never needed again.
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
  const acked = h.w.acked;
  for (const p of h.pings.take((v) => (f.token !== 0 && v.token === f.token) || v.upTo <= acked)) p.resolve();
  pump(h);
}

/** Publish again every frame holding a sequence number from `from` on; the receiver drops what it already has. */
function resendFrom(h: NatsSendHandle, from: number): number {
  let resent = 0;
  const fr = h.frames;
  for (let i = 0; i < fr.length; i++) {
    const end = fr.end(i);
    if (end <= from) continue;
    out(h, fr.buf(i), fr.first(i), end);
    resent += end - Math.max(fr.first(i), from);
  }
  h.stats.resent += resent;
  return resent;
}

/** Put one DATA frame on its way: the subject, or (durable) the stream, counting what the server stored. */
function out(h: NatsSendHandle, buf: Uint8Array, first: number, end: number): void {
  if (h.detached) return;
  if (h.js === undefined) {
    publish(h, h.address.subject, buf);
    return;
  }
  h.js.publish(h.address.stream!, buf).then(
    () => {
      h.stats.stored += end - first;
      // Publishes on one connection are stored in order: the contiguous prefix is what a graceful close may leave.
      if (first <= h.storedUpTo && end > h.storedUpTo) h.storedUpTo = end;
    },
    () => {
      // Not stored (the server is gone, the stream full), or not known to be: the next tick publishes it again
      // (the receiver drops a copy it has). HELLO finds no losses on a durable link: the stream may lag behind it.
      if (first < h.unstored) h.unstored = first;
    },
  );
}

/** Let the window take the outbox and blocked sends while there is credit. */
export function pump(h: NatsSendHandle): void {
  if (!h.closed) h.w.pump();
}

/** What `stats().pending` reports at a sending end: unacknowledged, in the outbox, and blocked. */
export function pendingOf(h: NatsSendHandle): number {
  return h.w.unacknowledged + h.w.outbox.length + h.w.waiters.length;
}

/** Pack message `seq` (within credit) into the DATA frame being filled. */
function accept(h: NatsSendHandle, data: Uint8Array, seq: number): void {
  const len = data.byteLength;
  if (h.cur !== undefined && h.curOff + 4 + len + MAC_BYTES > h.cur.length) seal(h);
  if (h.cur === undefined) {
    const need = FRAME_OVERHEAD + len;
    h.scratch ??= Buffer.allocUnsafe(h.batchBytes);
    h.cur = need <= h.scratch.length ? h.scratch : Buffer.allocUnsafe(need);
    h.curOff = DATA_HEADER;
    h.curFirst = seq;
    h.curCount = 0;
  }
  const b = h.cur;
  b.writeUInt32BE(len, h.curOff);
  b.set(data, h.curOff + 4);
  h.curOff += 4 + len;
  h.curCount++;
  if (h.curOff + 4 + 64 + MAC_BYTES > b.length) flush(h);
  else scheduleFlush(h);
}

/** Close the frame being filled (header, nonce, tag), keep it and publish it. */
function seal(h: NatsSendHandle): void {
  const b = h.cur;
  if (b === undefined || h.curCount === 0) return;
  b[0] = FrameKind.data;
  h.session.copy(b, 1);
  counterNonce(b, h.ctr++);
  writeU64(b, BODY, h.curFirst);
  writeU64(b, BODY + 8, h.w.acked);
  mac(h.sendKey, b, h.curOff);
  const len = h.curOff + MAC_BYTES;
  // An exact-size copy, kept until acknowledged; the scratch buffer is reused for the next batch. (Handing a full
  // scratch over instead and allocating a new one measured slower: fresh 64 KiB buffers cost more than the copy.)
  const buf = b === h.scratch ? Buffer.from(b.subarray(0, len)) : b.subarray(0, len);
  const first = h.curFirst;
  const end = first + h.curCount;
  h.cur = undefined;
  h.curCount = 0;
  h.frames.push(buf, 0, first, end);
  h.sentUpTo = end;
  out(h, buf, first, end);
}

function scheduleFlush(h: NatsSendHandle): void {
  // Messages accepted in one tick share frames; an idle sender's single message goes on the next turn.
  if (h.flushScheduled) return;
  h.flushScheduled = true;
  setImmediate(() => {
    h.flushScheduled = false;
    flush(h);
  });
}

function flush(h: NatsSendHandle): void {
  if (!h.closed) seal(h);
}

/** Refuse a message no frame can carry: the server's `max_payload` is below it. */
function checkFrame(h: NatsSendHandle, data: Uint8Array): void {
  const length = data.byteLength + FRAME_OVERHEAD;
  if (length > h.maxFrameBytes) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_FRAME_TOO_LARGE,
      `a message of ${data.byteLength} bytes needs a NATS message of ${length} bytes; the server's max_payload allows ${h.maxFrameBytes}`,
      { details: { length, max: h.maxFrameBytes } },
    );
  }
}

/** The synchronous part of send: accept, apply policy, or return false (must wait). */
export function trySendNow(h: NatsSendHandle, data: Uint8Array): boolean {
  if (h.closed) throw closedError(h, '');
  if (data.byteLength + FRAME_OVERHEAD > h.maxFrameBytes) checkFrame(h, data);
  const w = h.w;
  const seq = w.admit(data.byteLength);
  if (seq < 0) return w.trySend(data);
  accept(h, data, seq);
  w.admitted();
  return true;
}

/** Wait for credit (abortable). The message is copied: the caller may reuse its buffer while the send waits. */
export function sendBlocking(h: NatsSendHandle, data: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
  return h.w.wait(Buffer.from(data), signal);
}

/** Resolve once the receiving end has answered; `AMIX_ERR_TIMEOUT` after `timeoutMs`. */
export function waitCredited(h: NatsSendHandle, timeoutMs: number, what: string): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (h.credited) return Promise.resolve();
  const subject = h.address.subject;
  return h.connectWaiters.wait(undefined, {
    what: `${what} (no answer on ${subject})`,
    timeoutMs,
    details: { endpoint: subject, timeoutMs },
  });
}

/** A PING behind every message accepted so far, answered by the CREDIT that acknowledges them all. */
export function ping(h: NatsSendHandle, signal?: AbortSignal): Promise<void> {
  if (h.closed) return Promise.reject(closedError(h, ''));
  if (signal?.aborted) return Promise.reject(abortError(signal, 'cycle'));
  const tok = h.nextToken;
  h.nextToken = h.nextToken >= 0xffffffff ? 1 : h.nextToken + 1;
  const b = Buffer.allocUnsafe(PING_SIZE);
  b[0] = FrameKind.ping;
  h.session.copy(b, 1);
  counterNonce(b, h.ctr++);
  b.writeUInt32BE(tok, BODY);
  mac(h.sendKey, b, PING_SIZE - MAC_BYTES);
  flush(h);
  const answered = h.pings.wait({ token: tok, upTo: h.w.seq }, { signal, what: 'cycle' });
  publish(h, h.address.subject, b);
  return answered;
}

/** A graceful close: flush, then PING until everything is acknowledged (durable: or stored), or the time is up. */
export async function drainOnClose(h: NatsSendHandle): Promise<void> {
  if (h.closeTimeoutMs === 0 || h.detached) return;
  const deadline = Date.now() + h.closeTimeoutMs;
  flush(h);
  const done = () => h.w.acked >= h.w.seq || (h.js !== undefined && h.storedUpTo >= h.w.seq);
  while (!h.closed && !done()) {
    const left = deadline - Date.now();
    if (left <= 0) return;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.min(left, 200));
    try {
      await ping(h, ac.signal);
    } catch {
      // Unanswered within 200 ms: look again (a durable link may have stored everything meanwhile).
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Close the sending end: fail what waits, count as lost what is neither acknowledged nor stored. */
export async function destroySender(h: NatsSendHandle, graceful: boolean): Promise<void> {
  const err = closedError(h, 'while sending');
  clearInterval(h.timer);
  h.connectWaiters.rejectAll(err);
  h.pings.rejectAll(err);
  const safe = Math.max(h.w.acked, h.js !== undefined ? h.storedUpTo : 0);
  h.stats.lost += Math.max(0, h.w.seq - safe) + h.w.close(err);
  try {
    h.sub?.unsubscribe();
    if (h.ownsConnection) {
      if (graceful) await h.nc.flush().catch(() => undefined);
      await h.nc.close();
    }
  } catch {
    // Already closed.
  }
}
