/**
 * The sending end of the `nats` primitive: it packs accepted messages into
 * DATA frames published on the link's subject (a durable link: through
 * JetStream), keeps every frame until a CREDIT acknowledges it, and hears
 * CREDIT on a subject of its own session. Batching, credit, the resend ring,
 * PING and the graceful drain are the framed sending end of
 * `../../lib/core/framedSender.ts`; this file writes the frames (nonce and
 * tag), publishes them, and counts what JetStream stored. NATS core may drop
 * a message (a reconnect, a slow consumer): the receiver asks for a re-send
 * at a gap, and an unanswered end says HELLO again every `helloIntervalMs`,
 * so a lost tail, CREDIT or PING is found too.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { AmixError, ErrorCode, invalidArg } from '../../lib/core/errors.js';
import type { ChannelHandle } from '../../lib/core/primitive.js';
import {
  closeSender,
  flush,
  onCredit,
  resendFrom,
  senderFields,
  senderLost,
  senderWindow,
  type FramedSendState,
} from '../../lib/core/framedSender.js';
import { addressObject, checkAddressLimits } from '../../lib/core/framedWire.js';
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
  type NatsStats,
} from './wire.js';

/** The sending end's state. */
export interface NatsSendHandle extends Omit<ChannelHandle, 'maxMessageBytes'>, FramedSendState, Common {
  readonly role: 'send';
  readonly address: NatsAddress;
  readonly stats: NatsStats;
  /** @internal */ readonly session: Buffer;
  /** @internal This session's key for its own frames, and the one CREDIT comes under (see `sessionKey`). */ readonly sendKey: Buffer;
  /** @internal */ readonly creditKey: Buffer;
  /** @internal The nonce counter of this end's frames: every frame built gets the next. */ ctr: number;
  /** @internal */ readonly maxFrameBytes: number;
  /** @internal Durable: every sequence number below it is stored in the stream. */ storedUpTo: number;
  /** @internal */ lastCreditAt: number;
  /** @internal The client's wait between reconnect attempts (for the `reconnecting` event). */ readonly reconnectWaitMs: number;
  /** @internal */ sub: Subscription | undefined;
  /** @internal */ timer: NodeJS.Timeout | undefined;
  /** @internal Durable links: the JetStream client DATA goes through. */ js: JetStreamClient | undefined;
  /** @internal Durable links: the first message of a frame the server did not store (Infinity: none). */ unstored: number;
}

function checkAddress(a: unknown): NatsAddress {
  const x = addressObject(a, 'nats');
  if (typeof x.subject !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(x.subject))
    throw invalidArg('options.address.subject', 'must be a NATS subject without wildcards', x.subject);
  if (!Array.isArray(x.servers) || x.servers.some((s) => typeof s !== 'string'))
    throw invalidArg('options.address.servers', 'must be a list of server URLs', x.servers);
  linkKey('options.address.key', x.key);
  if (x.stream !== undefined && x.stream !== `${x.subject}.js`)
    throw invalidArg('options.address.stream', "must be the subject followed by '.js'", x.stream);
  checkAddressLimits(x);
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
  const base = common(options, maxMessageBytes, n, conn, linkKey('options.address.key', address.key));
  const session = randomBytes(SESSION_BYTES);
  const h: NatsSendHandle = {
    role: 'send',
    address,
    ...base,
    ...senderFields({
      io: {
        sealData(b, len, first, acked) {
          b[0] = FrameKind.data;
          session.copy(b, 1);
          counterNonce(b, h.ctr++);
          writeU64(b, BODY, first);
          writeU64(b, BODY + 8, acked);
          mac(h.sendKey, b, len);
        },
        out: (buf, first, end) => out(h, buf, first, end),
        kick: () => undefined,
        pingFrame(tok) {
          const b = Buffer.allocUnsafe(PING_SIZE);
          b[0] = FrameKind.ping;
          session.copy(b, 1);
          counterNonce(b, h.ctr++);
          b.writeUInt32BE(tok, BODY);
          mac(h.sendKey, b, PING_SIZE - MAC_BYTES);
          return b;
        },
        sendPing: (b) => void publish(h, address.subject, b),
        tooLarge: (data) => frameTooLarge(h, data),
        drained: () => h.js !== undefined && h.storedUpTo >= h.w.seq,
      },
      dataHeader: DATA_HEADER,
      trailer: MAC_BYTES,
      sendLimit: maxFrameBytes - FRAME_OVERHEAD,
      batchBytes: Math.min(batch, maxFrameBytes),
      connectTimeoutMs,
      closeTimeoutMs,
      peer: address.subject,
      answerFrom: `on ${address.subject}`,
      awaitingWelcome: true,
      // Unanswered within 200 ms, a graceful close looks again: a durable link may have stored everything meanwhile.
      drainSliceMs: 200,
    }),
    w: undefined as never,
    session,
    sendKey: sessionKey(base.mac, session, 's'),
    creditKey: sessionKey(base.mac, session, 'r'),
    ctr: 0,
    maxFrameBytes,
    storedUpTo: 0,
    lastCreditAt: Date.now(),
    reconnectWaitMs: n.connectOptions?.reconnectTimeWait ?? 250,
    sub: undefined,
    timer: undefined,
    js: undefined,
    unstored: Infinity,
  };
  h.w = senderWindow(
    h,
    options.discard ?? address.discard ?? 'block',
    address.maxmsg,
    `nats receiver on ${address.subject}`,
  );
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
        senderLost(h, `lost the connection to NATS server ${st.server}`, st.server);
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
  onCredit(h, f);
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

/** The refusal of a message no frame can carry: the server's `max_payload` is below it. */
function frameTooLarge(h: NatsSendHandle, data: Uint8Array): AmixError {
  const length = data.byteLength + FRAME_OVERHEAD;
  return new AmixError(
    ErrorCode.AMIX_ERR_FRAME_TOO_LARGE,
    `a message of ${data.byteLength} bytes needs a NATS message of ${length} bytes; the server's max_payload allows ${h.maxFrameBytes}`,
    { details: { length, max: h.maxFrameBytes } },
  );
}

/** Close the sending end: fail what waits, count as lost what is neither acknowledged nor stored. */
export async function destroySender(h: NatsSendHandle, graceful: boolean): Promise<void> {
  clearInterval(h.timer);
  closeSender(h, h.js !== undefined ? h.storedUpTo : 0);
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

/** A detached sending end is heard again (`connect()`): the next tick says HELLO at once, and its answer is the new welcome. */
function reattach(h: NatsSendHandle): void {
  h.credited = false;
  h.awaitingWelcome = true;
  h.lastCreditAt = 0;
}

/** The sending end's part of the primitive object (`framedPrimitive`); `disconnect()` only stops publishing (`out`). */
export const sendingEnd = { createSender, destroySender, reattach, detach: () => undefined };
