/**
 * The receiving end of the `zeromq` primitive: a ROUTER whose peers are
 * sending ends' sessions. Credit accounting is the per-session pool of
 * `../../lib/core/credit.ts` (each sender its own `maxmsg`, all of it
 * promised by the address), and de-duplication, delivery and the queue are
 * the framed receiving end of `../../lib/core/framedReceiver.ts`; this file
 * parses frames, keeps the sessions' routes and confirmations and writes
 * CREDIT frames.
 *
 * @module
 */
import * as zmq from 'zeromq';
import { AmixError, ErrorCode, invalidArg } from '../../lib/core/errors.js';
import { MessageQueue, creditFields } from '../../lib/core/credit.js';
import {
  closeReceiver,
  creditWindow,
  onData,
  receiverCredit,
  type FramedReceiveState,
  type FramedSession,
} from '../../lib/core/framedReceiver.js';
import type { ChannelHandle } from '../../lib/core/primitive.js';
import { WaitList } from '../../lib/core/waitList.js';
import { AllowList, isCurveKey, zapAuthenticator } from './keys.js';
import { ZeromqConfirmation } from './confirm.js';
import {
  CREDIT_SIZE,
  FAREWELL_LINGER_MS,
  FrameKind,
  MAX_SESSIONS,
  ZEROMQ_DEFAULTS,
  badFrame,
  characteristics,
  checkEndpoint,
  common,
  emit,
  maxFrameBytesFor,
  parseFrame,
  positive,
  reportBad,
  socketOptions,
  writeU64,
  isLoopback,
  type Common,
  type Counters,
  type Frame,
  type ZeromqAddress,
  type ZeromqChannelOptions,
} from './wire.js';

/** The receiving end's state. */
export interface ZeromqReceiveHandle
  extends Omit<ChannelHandle, 'maxMessageBytes'>, FramedReceiveState<Session>, Common {
  readonly role: 'receive';
  readonly address: ZeromqAddress;
  readonly stats: Counters;
  /** @internal */ readonly socket: zmq.Router;
  /** @internal */ releaseZap: (() => Promise<void>) | undefined;
  /** @internal */ live: number;
  /** @internal */ refusing: number;
  /** @internal */ loop: Promise<void>;
  /** @internal Set with `zeromq.confirmation`: CREDIT acknowledges what was confirmed, not what arrived. */
  readonly confirmation: ZeromqConfirmation | undefined;
}

/** A sender's session: its credit state (`next` is the next sequence number expected), identity and route. */
export interface Session extends FramedSession {
  route: Buffer;
  /** With a {@link ZeromqConfirmation}: messages below it were confirmed (CREDIT acknowledges up to here). */
  confirmed: number;
  /** With a {@link ZeromqConfirmation}: messages below it were taken by the application. */
  taken: number;
  /** Messages below it were sent before this process knew the session (re-sends of a dead predecessor's). */
  resendUpTo: number;
  /** This process has had a HELLO of the session. */
  helloSeen: boolean;
}

/** Bind a ROUTER and return the receiving end (see the module comment of `../zeromq.ts`). */
export async function createReceiver(options: ZeromqChannelOptions): Promise<ZeromqReceiveHandle> {
  const z = options.zeromq ?? {};
  const maxMessageBytes = options.maxMessageBytes ?? characteristics.maxMessageBytes;
  const mx = options.maxmsg ?? ZEROMQ_DEFAULTS.maxmsg;
  const { maxmsg, minmsg } = creditWindow(mx, options.minmsg ?? Math.floor(mx / 2));
  const bind = checkEndpoint('options.zeromq.bind', z.bind ?? ZEROMQ_DEFAULTS.bind);
  const curve = z.curve;
  const batchBytes = positive('batchBytes', z.batchBytes, ZEROMQ_DEFAULTS.batchBytes);
  const maxFrameBytes = maxFrameBytesFor(maxMessageBytes, batchBytes);
  const sockOpts: Record<string, unknown> = { ...socketOptions(z), maxMessageSize: maxFrameBytes };
  let releaseZap: (() => Promise<void>) | undefined;
  if (curve) {
    if (!isCurveKey(curve.publicKey) || !isCurveKey(curve.secretKey))
      throw invalidArg(
        'options.zeromq.curve',
        'needs publicKey and secretKey, Z85-encoded CURVE keys (see generateKeyPair)',
      );
    Object.assign(sockOpts, { curveServer: true, curveSecretKey: curve.secretKey, curvePublicKey: curve.publicKey });
    if (curve.allow !== undefined) {
      const allow = curve.allow instanceof AllowList ? curve.allow : new AllowList(curve.allow);
      const domain = zapAuthenticator.newDomain('amix.zeromq');
      const onRefused = z.onRefused;
      releaseZap = await zapAuthenticator.register(domain, { allow, ...(onRefused ? { onRefused } : {}) });
      // Fail closed: without a ZAP handler answering, ZeroMQ would otherwise accept every client.
      Object.assign(sockOpts, { zapDomain: domain, zapEnforceDomain: true });
    }
  } else if (!isLoopback(bind)) {
    process.emitWarning(`zeromq primitive: binding ${bind} without CURVE keys; anyone who can reach it may send`, {
      code: 'AMIX_ZEROMQ_INSECURE',
    });
  }
  const socket = new zmq.Router(sockOpts);
  const h: ZeromqReceiveHandle = {
    role: 'receive',
    address: undefined as unknown as ZeromqAddress,
    ...common(options, maxMessageBytes, z),
    socket,
    rio: {
      sendCredit: (s, token, resend) => void sendCredit(h, s, token, resend),
      // With a confirmation, a message taken counts as consumed only once confirmed.
      consumed: z.confirmation === undefined ? undefined : (s) => z.confirmation!.taken(s),
    },
    queue: new MessageQueue<Session>(),
    readers: new WaitList<number, Uint8Array>(),
    credit: undefined as never,
    releaseZap,
    live: 0,
    refusing: 0,
    lostPeer: false,
    loop: Promise.resolve(),
    confirmation: z.confirmation,
  };
  h.credit = receiverCredit(h, maxmsg, minmsg, positive('maxSessions', z.maxSessions, MAX_SESSIONS));
  if (z.confirmation !== undefined) {
    if (!(z.confirmation instanceof ZeromqConfirmation))
      throw invalidArg('options.zeromq.confirmation', 'must be a ZeromqConfirmation', z.confirmation);
    z.confirmation.bind((cs, count, upTo) => {
      const s = cs as Session;
      if (upTo > s.confirmed) s.confirmed = upTo;
      if (h.closed) return;
      // Only now does a message count as consumed: credit, like the acknowledgement, follows confirmation.
      if (!h.credit.consume(s, count)) void sendCredit(h, s, 0, false);
    });
  }
  watchReceiver(h);
  try {
    await socket.bind(bind);
  } catch (err) {
    socket.close();
    await releaseZap?.();
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `zeromq primitive cannot bind ${bind}: ${(err as Error).message}`,
      { cause: err, details: { option: 'options.zeromq.bind' } },
    );
  }
  const endpoint =
    z.advertise !== undefined ? checkEndpoint('options.zeromq.advertise', z.advertise) : socket.lastEndpoint!;
  (h as { address: ZeromqAddress }).address = Object.freeze({
    endpoint,
    ...(curve ? { serverPublicKey: curve.publicKey! } : {}),
    maxmsg,
    minmsg,
    maxMessageBytes,
    maxFrameBytes,
    discard: options.discard ?? 'block',
  });
  h.loop = receiveLoop(h);
  return h;
}

function watchReceiver(h: ZeromqReceiveHandle): void {
  const ev = h.socket.events;
  ev.on('handshake', () => {
    h.live++;
  });
  const refused = () => {
    h.stats.refused++;
    h.refusing++;
  };
  ev.on('handshake:error:auth', refused);
  ev.on('handshake:error:protocol', refused);
  ev.on('handshake:error:other', refused);
  ev.on('disconnect', () => {
    if (h.refusing > 0) {
      h.refusing--;
      return;
    }
    if (h.live > 0) {
      h.live--;
      if (!h.closed && !h.lostPeer) {
        h.lostPeer = true;
        emit(h, {
          type: 'peerLost',
          error: new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, 'a sending end of the zeromq channel disconnected'),
        });
      }
    }
  });
}

async function receiveLoop(h: ZeromqReceiveHandle): Promise<void> {
  try {
    for await (const parts of h.socket) {
      if (h.closed) break;
      const route = parts[0]!;
      if (parts.length !== 2) {
        reportBad(h, badFrame(`message has ${parts.length - 1} parts, expected 1`));
        continue;
      }
      let f: Frame;
      try {
        f = parseFrame(parts[1]!, h.maxMessageBytes);
      } catch (err) {
        reportBad(h, err as AmixError);
        continue;
      }
      if (f.kind === 'credit') {
        reportBad(h, badFrame('CREDIT sent to a receiving end'));
        continue;
      }
      const key = f.session.toString('hex');
      let s = h.credit.get(key);
      if (!s) {
        const start = f.kind === 'ping' ? 0 : f.firstUnacked;
        s = h.credit.open({
          ...creditFields(key, start),
          id: Buffer.from(f.session),
          route,
          resendAskedAt: -1,
          confirmed: start,
          taken: start,
          resendUpTo: 0,
          helloSeen: false,
        });
      }
      s.route = route;
      if (f.kind === 'data') {
        h.credit.resync(s, f.firstUnacked);
        vouched(s, f.firstUnacked);
        onData(h, s, f.firstSeq, f.messages);
      } else if (f.kind === 'hello') {
        // A HELLO opens each connection: whatever the sender sent beyond `next` was lost with the old one.
        h.credit.resync(s, f.firstUnacked);
        vouched(s, f.firstUnacked);
        if (!s.helloSeen) {
          // The first HELLO this process sees of the session: what its sender had sent before may have gone to a
          // predecessor of this process (DATA written while it was down can arrive before the HELLO: counted too).
          s.helloSeen = true;
          s.resendUpTo = f.sentUpTo;
        }
        const resend = s.next < f.sentUpTo;
        if (resend) s.resendAskedAt = s.next;
        if (h.lostPeer) {
          h.lostPeer = false;
          emit(h, { type: 'reconnected', resent: 0, lost: 0 });
        }
        void sendCredit(h, s, 0, resend);
      } else void sendCredit(h, s, f.token, false);
    }
  } catch (err) {
    if (!h.closed) {
      // The socket failed under us (not a close we asked for): end the channel with the reason.
      h.closed = true;
      h.closeReason = new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `zeromq receive failed: ${(err as Error).message}`, {
        cause: err,
      });
      closeReceiver(h);
      emit(h, { type: 'closed', reason: h.closeReason });
    }
  }
}

/**
 * The sender vouches that what it no longer holds was acknowledged (so
 * confirmed, with a confirmation): news only when this end restarted.
 */
function vouched(s: Session, firstUnacked: number): void {
  const upTo = Math.min(firstUnacked, s.next);
  if (upTo > s.confirmed) s.confirmed = upTo;
  if (s.confirmed > s.taken) s.taken = s.confirmed;
}

/** Write a CREDIT to `s`: what it has received (`next`), its limit, the PING token answered, the resend flag. */
export async function sendCredit(
  h: ZeromqReceiveHandle,
  s: Session,
  token: number,
  resend: boolean,
  closing = false,
): Promise<void> {
  if (h.closed && !closing) return;
  const b = Buffer.allocUnsafe(CREDIT_SIZE);
  b[0] = FrameKind.credit;
  s.id.copy(b, 1);
  // With a confirmation, what arrived but is not confirmed stays with the sender (re-sent if this end dies).
  writeU64(b, 9, h.confirmation ? s.confirmed : s.next);
  writeU64(b, 17, s.limit);
  b.writeUInt32BE(token >>> 0, 25);
  b[29] = resend ? 1 : 0;
  try {
    // A ROUTER never blocks: a frame for a peer that is gone is dropped, and the peer's next HELLO asks again.
    await h.socket.send([s.route, b]);
  } catch {
    // Closed meanwhile.
  }
}

/**
 * A receiving end closing gracefully acknowledges what it has to every
 * session once more: a sender closing at the same moment would otherwise
 * send a PING this end never reads, wait `closeTimeoutMs`, and count as lost
 * messages that arrived. The socket lingers briefly so the CREDIT leaves.
 */
export async function farewell(h: ZeromqReceiveHandle): Promise<void> {
  const sends: Promise<void>[] = [];
  for (const s of h.credit.sessions.values()) sends.push(sendCredit(h, s, 0, false, true));
  await Promise.all(sends);
  try {
    h.socket.linger = FAREWELL_LINGER_MS;
  } catch {
    // A socket already gone: nothing to linger for.
  }
}

/** Close the receiving end (its credit and blocked receives are closed): say farewell when graceful, release the ZAP domain. */
export async function destroyReceiver(h: ZeromqReceiveHandle, reason: Error | undefined): Promise<void> {
  if (reason === undefined) await farewell(h);
  h.socket.close();
  await h.releaseZap?.();
}

/** The receiving end's part of the primitive object (`framedPrimitive`). */
export const receivingEnd = { createReceiver, destroyReceiver };
