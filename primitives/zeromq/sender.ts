/**
 * The sending end of the `zeromq` primitive: a DEALER that packs accepted
 * messages into DATA frames and keeps every sealed frame until a CREDIT
 * acknowledges it. Batching, credit, the resend ring, PING and the graceful
 * drain are the framed sending end of `../../lib/core/framedSender.ts`; this
 * file writes the frames' headers, queues them for the socket and turns the
 * socket monitor into events.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';
import { AmixError, ErrorCode, invalidArg } from '../../lib/core/errors.js';
import type { ChannelHandle } from '../../lib/core/primitive.js';
import {
  closeSender,
  flush,
  onCredit,
  senderFields,
  senderLost,
  senderWindow,
  type FramedSendState,
} from '../../lib/core/framedSender.js';
import { addressObject, checkAddressLimits } from '../../lib/core/framedWire.js';
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
  common,
  emit,
  parseFrame,
  positive,
  reportBad,
  socketOptions,
  tooLarge,
  writeU64,
  type Common,
  type Counters,
  type Frame,
  type ZeromqAddress,
  type ZeromqChannelOptions,
} from './wire.js';

/** The sending end's state. */
export interface ZeromqSendHandle extends Omit<ChannelHandle, 'maxMessageBytes'>, FramedSendState, Common {
  readonly role: 'send';
  readonly address: ZeromqAddress;
  readonly stats: Counters;
  /** @internal */ readonly socket: zmq.Dealer;
  /** @internal */ readonly session: Buffer;
  /** @internal Frames waiting for the socket, in order. */ readonly writes: Buffer[];
  /** @internal */ writing: boolean;
  /** @internal */ connected: boolean;
  /** @internal */ loop: Promise<void>;
}

// ---------------------------------------------------------------- sending end

function checkAddress(a: unknown): ZeromqAddress {
  const x = addressObject(a, 'zeromq');
  checkEndpoint('options.address.endpoint', x.endpoint);
  if (x.serverPublicKey !== undefined && !isCurveKey(x.serverPublicKey))
    throw invalidArg('options.address.serverPublicKey', 'must be a Z85 CURVE key', x.serverPublicKey);
  checkAddressLimits(x);
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
  const session = randomBytes(SESSION_BYTES);
  const writes: Buffer[] = [];
  const h: ZeromqSendHandle = {
    role: 'send',
    address,
    ...common(options, maxMessageBytes, z),
    ...senderFields({
      io: {
        sealData(b, _len, first, acked) {
          b[0] = FrameKind.data;
          session.copy(b, 1);
          writeU64(b, 9, first);
          writeU64(b, 17, acked);
        },
        out: (buf) => writes.push(buf as Buffer),
        kick: () => void write(h),
        pingFrame(token) {
          const b = Buffer.allocUnsafe(PING_SIZE);
          b[0] = FrameKind.ping;
          session.copy(b, 1);
          b.writeUInt32BE(token, 9);
          return b;
        },
        sendPing(b) {
          writes.push(b);
          void write(h);
        },
        tooLarge: (data) => tooLarge(h, data),
      },
      dataHeader: DATA_HEADER,
      trailer: 0,
      sendLimit: maxMessageBytes,
      batchBytes: Math.min(positive('batchBytes', z.batchBytes, ZEROMQ_DEFAULTS.batchBytes), address.maxFrameBytes),
      connectTimeoutMs: positive('connectTimeoutMs', z.connectTimeoutMs, ZEROMQ_DEFAULTS.connectTimeoutMs),
      closeTimeoutMs: positive('closeTimeoutMs', z.closeTimeoutMs, ZEROMQ_DEFAULTS.closeTimeoutMs, true),
      peer: address.endpoint,
      answerFrom: `from ${address.endpoint}`,
      awaitingWelcome: false,
      drainSliceMs: Infinity,
    }),
    w: undefined as never,
    socket,
    session,
    writes,
    writing: false,
    connected: false,
    loop: Promise.resolve(),
  };
  h.w = senderWindow(
    h,
    options.discard ?? address.discard ?? 'block',
    address.maxmsg,
    `zeromq receiver at ${address.endpoint}`,
  );
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
    senderLost(h, `lost the connection to ${h.address.endpoint}`, h.address.endpoint);
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

/** Close the sending end: fail what waits, count the unacknowledged and the outbox as lost. */
export function destroySender(h: ZeromqSendHandle): void {
  closeSender(h);
  h.socket.close();
}

/** A detached sending end connects its socket again (`connect()`). */
function reattach(h: ZeromqSendHandle): void {
  h.socket.connect(h.address.endpoint);
}

/** Drop the connection (`disconnect()`): messages stay buffered and go out after the next `connect()`. */
function detach(h: ZeromqSendHandle): void {
  h.connected = false;
  // Frames not yet written are dropped from the outbox; the HELLO on the next connection gets them re-sent.
  h.writes.length = 0;
  h.socket.disconnect(h.address.endpoint);
}

/** The sending end's part of the primitive object (`framedPrimitive`). */
export const sendingEnd = { createSender, destroySender, reattach, detach };
