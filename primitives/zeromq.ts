/**
 * The `zeromq` primitive: a channel between processes or machines over
 * ZeroMQ (zeromq.js v6), optionally authenticated and encrypted with CURVE.
 *
 * One channel is one directed flow. `create()` without an address binds a
 * ROUTER (default `tcp://127.0.0.1:*`) and returns the receiving end; its
 * address `{ endpoint, serverPublicKey?, maxmsg, minmsg, maxMessageBytes,
 * maxFrameBytes, discard }` is plain JSON. `create({ address })` connects a
 * DEALER there and returns the sending end. Several sending ends may attach
 * to one receiving end; each is a *session* with its own credit window, so
 * `maxmsg` bounds what each sender may have pending there.
 *
 * Wire protocol (one ZeroMQ frame per message, integers big-endian, u64
 * written as two u32):
 *
 * | frame | direction | layout |
 * |---|---|---|
 * | DATA | send → receive | `0x01` session:8 firstSeq:u64 firstUnacked:u64, then per message len:u32 bytes |
 * | HELLO | send → receive | `0x02` session:8 firstUnacked:u64 sentUpTo:u64 |
 * | PING | send → receive | `0x03` session:8 token:u32 |
 * | CREDIT | receive → send | `0x81` session:8 expected:u64 limit:u64 token:u32 flags:u8 (bit 0: resend) |
 *
 * Batching: `send` copies the message and accepts it at once while there is
 * credit; the messages accepted in one tick are packed into DATA frames of
 * up to `batchBytes` (default 64 KiB) on `setImmediate`, or as soon as a
 * batch is full.
 *
 * Backpressure (credit): the receiving end lets a session send sequence
 * numbers below `limit`. It starts at `maxmsg` (the address carries it, so
 * the first messages need no round trip) and is raised to
 * `consumed + maxmsg` whenever `limit - consumed` falls to `minmsg`, so at
 * most `maxmsg` messages are ever pending at the receiver. At zero credit
 * the sending end emits `suspended` and applies its discard policy; `resumed`
 * follows the next grant. Limits are absolute, so a repeated CREDIT is
 * harmless. Policies at zero credit: `block` waits (FIFO, abortable);
 * `reject` throws `AMIX_ERR_QUEUE_FULL`; `dropNewest` drops the message
 * being sent; `dropOldest` keeps up to `maxmsg` messages waiting at the
 * sender and drops the oldest of those (messages already on the wire are
 * never recalled). Every drop and refusal is counted and emitted.
 *
 * Closing: a graceful close (`Channel.close`) flushes and waits up to
 * `closeTimeoutMs` (default 2 s) until the receiving end has acknowledged
 * every message; `destroy` does not wait. Messages still unacknowledged
 * then are counted in `stats().lost`. A receiving end that closes gracefully
 * first acknowledges what it received to every sender (the CREDIT a PING
 * would have got), so a sender closing at the same time finishes at once
 * instead of waiting out its timeout. Sockets close with linger 0, except
 * that last CREDIT, given 100 ms to leave.
 *
 * Peer loss: ZeroMQ reconnects by itself; the sending end turns the socket
 * monitor into `peerLost`, `reconnecting` and `reconnected` events. Every
 * message stays buffered until a CREDIT acknowledges it (`expected`). After
 * a reconnect the sending end says HELLO; the receiving end answers with
 * what it has and the sender re-sends the rest, which the receiver
 * de-duplicates by sequence number. So a connection drop loses nothing and
 * duplicates nothing (`reconnected` reports `resent`, `lost` is 0). If the
 * receiving *process* is replaced, messages it had acknowledged but not
 * handed out are gone with it (unless it acknowledges end to end, below);
 * the rest are re-sent to the new one.
 *
 * CURVE: a receiving end given `zeromq.curve` keys is a CURVE server and
 * puts its public key in the address; a sending end attached to such an
 * address is a CURVE client (with `zeromq.curve` keys, or a throw-away pair).
 * With `curve.allow`, the process's ZAP handler (`primitives/zeromq/keys.ts`) refuses every
 * client key not listed; refusals are counted in `stats().refused` and
 * reported to `zeromq.onRefused`, and the refused sender's `connect()`
 * rejects with `AMIX_ERR_UNAUTHORIZED`.
 *
 * End-to-end acknowledgement: a receiving end given a `zeromq.confirmation`
 * ({@link ZeromqConfirmation}) acknowledges in its CREDIT (`expected`) only
 * what the application confirmed, oldest first, not what arrived. The
 * sender keeps the rest and re-sends it to a replacement process, which
 * then loses nothing the old one did not confirm (and may see again what it
 * took but had not confirmed). Credit follows confirmation too (a message
 * counts as consumed once confirmed), so a sender never holds more than
 * `maxmsg` unacknowledged messages and a replacement process, which grants
 * `maxmsg` afresh, can take all of them back. After its first HELLO of a
 * session, the replacement counts what it takes from below the HELLO's
 * `sentUpTo` as re-sent (`ZeromqConfirmation.takeResent`).
 *
 * Malformed frames are dropped whole, counted in `stats().badFrames` and
 * reported to `zeromq.onBadFrame` as `AMIX_ERR_BAD_FRAME`; they never throw
 * out of the receive loop.
 *
 * Layout: `zeromq/wire.ts` (frames, options, counters), `zeromq/receiver.ts`,
 * `zeromq/sender.ts`, `zeromq/keys.ts` (CURVE keys, ZAP); credit accounting,
 * the sender's window and discard policy are `../lib/core/credit.ts`.
 *
 * @module
 */
import { framedPrimitive } from '../lib/core/framedPrimitive.js';
import type { Primitive } from '../lib/core/primitive.js';
import { receivingEnd, type ZeromqReceiveHandle } from './zeromq/receiver.js';
import { sendingEnd, type ZeromqSendHandle } from './zeromq/sender.js';
import { characteristics } from './zeromq/wire.js';

export {
  FrameKind,
  ZEROMQ_DEFAULTS,
  characteristics,
  isLoopback,
  maxFrameBytesFor,
  parseFrame,
} from './zeromq/wire.js';
export type {
  Frame,
  ZeromqAddress,
  ZeromqChannelOptions,
  ZeromqCurveOptions,
  ZeromqOptions,
  ZeromqStats,
} from './zeromq/wire.js';
export type { ZeromqReceiveHandle } from './zeromq/receiver.js';
export { ZeromqConfirmation } from './zeromq/confirm.js';
export type { ZeromqSendHandle } from './zeromq/sender.js';

/** Either end. */
export type ZeromqHandle = ZeromqReceiveHandle | ZeromqSendHandle;

// ---------------------------------------------------------------- the primitive

/**
 * The `zeromq` primitive object (the module's default export): the framed
 * primitive of `../lib/core/framedPrimitive.ts` over a ROUTER and DEALERs.
 * `connect` waits for the first CREDIT (`AMIX_ERR_TIMEOUT`, or
 * `AMIX_ERR_UNAUTHORIZED` when the CURVE handshake is refused);
 * `disconnect` drops the connection, and messages stay buffered until the
 * next `connect()`; `stats()` is a {@link ZeromqStats}.
 *
 * @example
 * const rx = await registry.open('zeromq', { zeromq: { curve: { ...serverKeys, allow: [client.publicKey] } } })
 * const tx = await registry.open('zeromq', { address: rx.address, zeromq: { curve: client } })
 */
export const zeromqPrimitive: Primitive<ZeromqHandle> = framedPrimitive<ZeromqReceiveHandle, ZeromqSendHandle>({
  name: 'zeromq',
  characteristics,
  ...receivingEnd,
  ...sendingEnd,
});

export default zeromqPrimitive;
