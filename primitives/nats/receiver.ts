/**
 * The receiving end of the `nats` primitive: a subscription on the link's
 * subject (and, for a durable link, a JetStream consumer), whose senders
 * are sessions of the credit engine's per-session pool
 * (`../../lib/core/credit.ts`: each sender its own `maxmsg`, all of it
 * promised by the address); de-duplication, delivery and the queue are the
 * framed receiving end of `../../lib/core/framedReceiver.ts`. This file
 * checks and parses frames, keeps the sessions' keys and publishes CREDIT
 * frames.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import { AmixError, ErrorCode, invalidArg } from '../../lib/core/errors.js';
import { MessageQueue, creditFields } from '../../lib/core/credit.js';
import {
  creditWindow,
  onData,
  receiverCredit,
  type FramedReceiveState,
  type FramedSession,
} from '../../lib/core/framedReceiver.js';
import type { ChannelHandle } from '../../lib/core/primitive.js';
import { WaitList } from '../../lib/core/waitList.js';
import { openDurable, type Durable, type Held } from './durable.js';
import {
  BODY,
  CREDIT_SIZE,
  FRAME_OVERHEAD,
  FrameKind,
  NATS_DEFAULTS,
  advertised,
  badFrame,
  characteristics,
  common,
  emit,
  maxPayload,
  openConnection,
  checkedFrame,
  frameBytes,
  positive,
  publish,
  reportBad,
  MAC_BYTES,
  SESSION_BYTES,
  randomNonce,
  seal,
  serversOf,
  sessionKey,
  subscriptionError,
  linkKey,
  token,
  writeU64,
  type Common,
  type NatsStats,
  type Frame,
  type NatsAddress,
  type NatsChannelOptions,
} from './wire.js';

/** A sender's session: its credit state (`next` is the next sequence number expected) and where its CREDIT goes. */
export interface Session extends FramedSession {
  readonly creditSubject: string;
  /** The session's keys (`sessionKey`): its frames come under the first, its CREDIT goes under the second. */
  readonly macKey: Buffer;
  readonly creditKey: Buffer;
}

/** Where a queued message came from: its session, or (durable) the stream message holding it. */
export type Origin = Session | Held<Session>;

/** The receiving end's state. */
export interface NatsReceiveHandle
  extends Omit<ChannelHandle, 'maxMessageBytes'>, FramedReceiveState<Session, Origin>, Common {
  readonly role: 'receive';
  readonly address: NatsAddress;
  readonly stats: NatsStats;
  /** @internal */ sub: Subscription | undefined;
  /** @internal Durable links: the stream consumer. */ durable: Durable | undefined;
}

/** Subscribe to a new link subject (durable: make its stream and consumer) and return the receiving end. */
export async function createReceiver(options: NatsChannelOptions): Promise<NatsReceiveHandle> {
  const n = options.nats ?? {};
  const mx = options.maxmsg ?? NATS_DEFAULTS.maxmsg;
  const { maxmsg, minmsg } = creditWindow(mx, options.minmsg ?? Math.floor(mx / 2));
  const prefix = token('options.nats.prefix', n.prefix ?? NATS_DEFAULTS.prefix);
  const id = n.id === undefined ? randomBytes(16).toString('hex') : token('options.nats.id', n.id);
  const batchBytes = positive('batchBytes', n.batchBytes, NATS_DEFAULTS.batchBytes);
  const maxSessions = positive('maxSessions', n.maxSessions, NATS_DEFAULTS.maxSessions);
  if (n.durable !== undefined && typeof n.durable !== 'boolean')
    throw invalidArg('options.nats.durable', 'must be a boolean', n.durable);
  // A durable link's stream outlives its ends: it is named by the caller, never by chance (one per random id would pile up).
  if (n.durable && n.id === undefined)
    throw invalidArg('options.nats.id', 'is needed for a durable link (it names the stream AMIX_<id>)', n.id);
  const key = n.key === undefined ? randomBytes(32) : linkKey('options.nats.key', n.key);
  const servers = serversOf(n, undefined);
  const advertise = advertised(n, servers);
  // Every option is checked above: nothing below throws before the connection is handed to the end.
  const conn = await openConnection(n, servers);
  const maxMessageBytes = options.maxMessageBytes ?? characteristics.maxMessageBytes;
  // One frame must fit the server's max_payload; a message that cannot is refused at send (AMIX_ERR_FRAME_TOO_LARGE).
  const maxFrameBytes = Math.min(maxPayload(conn.nc), Math.max(maxMessageBytes + FRAME_OVERHEAD, batchBytes));
  const subject = `${prefix}.${id}`;
  const h: NatsReceiveHandle = {
    role: 'receive',
    address: Object.freeze({
      servers: Object.freeze(advertise),
      subject,
      key: key.toString('base64url'),
      ...(n.durable ? { stream: `${subject}.js` } : {}),
      maxmsg,
      minmsg,
      maxMessageBytes,
      maxFrameBytes,
      discard: options.discard ?? 'block',
    }),
    ...common(options, maxMessageBytes, n, conn, key),
    rio: {
      sendCredit: (s, tok, resend) => sendCredit(h, s, tok, resend),
      // A durable link's message also tells its stream message it was taken (acked once all of it is).
      consumed: n.durable ? (o) => consumedHeld(h, o) : undefined,
    },
    queue: new MessageQueue<Origin>(),
    readers: new WaitList<number, Uint8Array>(),
    credit: undefined as never,
    sub: undefined,
    durable: undefined,
    lostPeer: false,
  };
  h.credit = receiverCredit(h, maxmsg, minmsg, maxSessions);
  try {
    if (n.durable) {
      h.durable = await openDurable<Session>(h, {
        id,
        stream: h.address.stream!,
        maxmsg,
        maxFrameBytes,
        storage: n.storage ?? 'file',
        onFrame: (data, held) => onFrame(h, data, held),
      });
    }
    h.sub = h.nc.subscribe(subject, {
      callback: (err, m) =>
        err ? emit(h, { type: 'peerLost', error: subscriptionError(subject, err) }) : onFrame(h, m.data, undefined),
    });
  } catch (err) {
    if (conn.owns) await conn.nc.close().catch(() => undefined);
    if (err instanceof AmixError) throw err;
    throw new AmixError(
      ErrorCode.AMIX_ERR_PEER_LOST,
      `nats primitive cannot open ${subject}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  void watchStatus(h);
  return h;
}

async function watchStatus(h: NatsReceiveHandle): Promise<void> {
  try {
    for await (const st of h.nc.status()) {
      if (h.closed) break;
      if (st.type === 'disconnect' && !h.lostPeer) {
        h.lostPeer = true;
        emit(h, {
          type: 'peerLost',
          error: new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `lost the connection to NATS server ${st.server}`, {
            details: { endpoint: st.server },
          }),
        });
      } else if (st.type === 'reconnect' && h.lostPeer) {
        h.lostPeer = false;
        emit(h, { type: 'reconnected', resent: 0, lost: 0 });
      }
    }
  } catch {
    // The connection closed.
  }
}

/** One frame from the subject or (durable) the stream. Never throws: a bad frame is counted and dropped. */
function onFrame(h: NatsReceiveHandle, data: Uint8Array, held: Held<Session> | undefined): void {
  if (h.closed) return;
  let f: Frame;
  let s: Session | undefined;
  let macKey: Buffer;
  try {
    const all = frameBytes(data);
    const id = all.subarray(1, 1 + SESSION_BYTES);
    s = h.credit.get(id.toString('hex'));
    // A session's key is derived once; an unknown session's (new, or a forger's) for this frame only, until it checks.
    macKey = s?.macKey ?? sessionKey(h.mac, id, 's');
    f = checkedFrame(all, macKey, h.maxMessageBytes);
    if (f.kind === 'credit') throw badFrame('CREDIT sent to a receiving end');
    if (held !== undefined && f.kind !== 'data') throw badFrame(`${f.kind} in the stream`);
  } catch (err) {
    reportBad(h, err as AmixError);
    held?.done();
    return;
  }
  if (!s) {
    const key = f.session.toString('hex');
    const start = f.kind === 'ping' ? 0 : f.firstUnacked;
    const id = Buffer.from(f.session);
    s = h.credit.open({
      ...creditFields(key, start),
      id,
      creditSubject: `${h.address.subject}.c.${key}`,
      macKey,
      creditKey: sessionKey(h.mac, id, 'r'),
      resendAskedAt: -1,
    });
  }
  if (f.kind === 'data') {
    h.credit.resync(s, f.firstUnacked);
    onData(h, s, f.firstSeq, f.messages, held);
  } else if (f.kind === 'hello') {
    // A HELLO asks what this end has: whatever the sender sent beyond `next` was lost on the way. Not so on a
    // durable link, whose DATA may still be in the stream: its sender re-publishes what the server did not store.
    h.credit.resync(s, f.firstUnacked);
    const resend = h.durable === undefined && s.next < f.sentUpTo;
    if (resend) s.resendAskedAt = s.next;
    sendCredit(h, s, 0, resend);
  } else sendCredit(h, s, f.token, false);
}

function sessionOf(o: Origin): Session {
  return 'held' in o ? o.session! : o;
}

function consumedHeld(h: NatsReceiveHandle, o: Origin): void {
  if ('held' in o) o.taken();
  h.credit.consume(sessionOf(o));
}

/** Publish a CREDIT to `s`: what arrived (`next`), its limit, the PING token answered, the resend flag. */
export function sendCredit(h: NatsReceiveHandle, s: Session, tok: number, resend: boolean, closing = false): void {
  if (h.closed && !closing) return;
  const b = Buffer.allocUnsafe(CREDIT_SIZE);
  b[0] = FrameKind.credit;
  s.id.copy(b, 1);
  randomNonce(b);
  writeU64(b, BODY, s.next);
  writeU64(b, BODY + 8, s.limit);
  b.writeUInt32BE(tok >>> 0, BODY + 16);
  b[BODY + 20] = resend ? 1 : 0;
  seal(s.creditKey, b, CREDIT_SIZE - MAC_BYTES);
  // Lost on the way (no subscriber, a reconnect): the sender's next HELLO asks again.
  publish(h, s.creditSubject, b);
}

/**
 * Close the receiving end (its credit and blocked receives are closed): when graceful, acknowledge
 * what arrived to every session once more (a sender closing at the same time
 * then finishes at once) and flush; then unsubscribe and close the
 * connection if it is ours.
 */
export async function destroyReceiver(h: NatsReceiveHandle, reason: Error | undefined): Promise<void> {
  if (reason === undefined) for (const s of h.credit.sessions.values()) sendCredit(h, s, 0, false, true);
  try {
    h.sub?.unsubscribe();
    await h.durable?.stop();
    if (h.ownsConnection) {
      if (reason === undefined) await h.nc.flush().catch(() => undefined);
      await h.nc.close();
    }
  } catch {
    // Already closed.
  }
}

/** The receiving end's part of the primitive object (`framedPrimitive`). */
export const receivingEnd = { createReceiver, destroyReceiver };
