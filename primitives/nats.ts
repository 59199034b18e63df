/**
 * The `nats` primitive: a channel over NATS subjects, for machines that
 * reach each other only through a NATS server (or cluster). The client
 * (`@nats-io/transport-node`, and `@nats-io/jetstream` for durable links) is
 * imported on the first `create()`, never when amix loads.
 *
 * One channel is one directed flow. `create()` without an address connects
 * to `nats.servers` (default `nats://127.0.0.1:4222`) and subscribes to the
 * link's subject `<prefix>.<id>` (default `amix.<128 random bits>`); its
 * address `{ servers, subject, key, stream?, maxmsg, minmsg, maxMessageBytes,
 * maxFrameBytes, discard }` is plain JSON. `create({ address })` connects
 * (with its own `nats` options: servers, credentials) and returns the
 * sending end. Several sending ends may attach to one receiving end; each is
 * a *session* with its own credit window.
 *
 * Wire protocol (one NATS message per frame, integers big-endian, u64 as
 * two u32; every frame starts with kind, session:8 and nonce:12, and ends
 * with tag:16, a Poly1305 tag of everything before it under the session's
 * key; see "Trust" below):
 *
 * | frame | subject | layout |
 * |---|---|---|
 * | DATA | `<subject>` (durable: `<subject>.js`, a JetStream stream) | `0x01` session:8 nonce:12 firstSeq:u64 firstUnacked:u64, then per message len:u32 bytes |
 * | HELLO | `<subject>` | `0x02` session:8 nonce:12 firstUnacked:u64 sentUpTo:u64 |
 * | PING | `<subject>` | `0x03` session:8 nonce:12 token:u32 |
 * | CREDIT | `<subject>.c.<session hex>` | `0x81` session:8 nonce:12 expected:u64 limit:u64 token:u32 flags:u8 (bit 0: resend) |
 *
 * Backpressure: NATS core has none, so the credit engine of
 * `lib/core/credit.ts` runs on top, as in `zeromq`: the address promises
 * `maxmsg` messages per session; the receiver raises a session's absolute
 * `limit` to `consumed + maxmsg` when what it may still send plus what waits
 * falls to `minmsg`. At zero credit the sending end applies its discard
 * policy (`block`, `reject`, `dropNewest`, `dropOldest`), every drop counted.
 * Each end holds at most `maxmsg` messages per session (the receiver's
 * queue; the sender's resend ring), so memory is bounded on both sides.
 *
 * Batching: the messages accepted in one tick are packed into DATA frames of
 * up to `batchBytes` (default 64 KiB, at most the server's `max_payload`),
 * published on `setImmediate`; an idle sender's one message goes at once.
 * A message whose frame would exceed the server's `max_payload` (default
 * 1 MiB) is refused with `AMIX_ERR_FRAME_TOO_LARGE`.
 *
 * Loss and order: NATS core delivers at most once and may drop (a
 * reconnect, a slow consumer). Every frame stays in the sender's resend ring
 * until a CREDIT acknowledges it; the receiver de-duplicates and orders by
 * sequence number and asks for a re-send (CREDIT with the resend flag) at a
 * gap; a sender with something unanswered for `helloIntervalMs` (default
 * 250 ms) says HELLO, which the receiver answers with what it has. So while
 * both ends live, a NATS server crash or restart, a reconnect or a dropped
 * message loses nothing and duplicates nothing. What each mode promises
 * across process and server failures is in `docs/nats.md`.
 *
 * Durable links (`nats.durable: true` at the receiving end): DATA goes
 * through a JetStream stream `AMIX_<id>` (work queue, file storage) read by
 * a durable consumer with explicit acks (`nats/durable.ts`); credit,
 * HELLO, PING and CREDIT stay on core NATS. A replacement receiving end
 * opened with the same `id` and `key` reads every frame not yet acked,
 * also after a NATS server restart.
 *
 * Trust: the subject is not a credential (anyone allowed to publish on it
 * can). Every frame carries a tag under a key derived from the link key (32
 * random bytes, in the address only): HMAC-SHA256(link key, `amix.nats.s` or
 * `amix.nats.r`, session) for the sending end's frames and for CREDIT; the
 * tag is ChaCha20-Poly1305 over no plaintext with the frame as associated
 * data, its nonce the sending end's frame counter (4 zero bytes, u64) or, for
 * CREDIT, random. So a publisher without the address cannot inject,
 * forge credit or acknowledge; a malformed or unauthenticated frame is
 * dropped, counted in `stats().badFrames` and reported to `nats.onBadFrame`
 * (`AMIX_ERR_BAD_FRAME`). Frames are not encrypted: use TLS to the server
 * and NATS permissions so only the two ends may subscribe to the subjects.
 *
 * Layout: `nats/wire.ts` (frames, options, connection), `nats/receiver.ts`,
 * `nats/sender.ts`, `nats/durable.ts` (JetStream).
 *
 * @module
 */
import { framedPrimitive } from '../lib/core/framedPrimitive.js';
import type { Primitive } from '../lib/core/primitive.js';
import { receivingEnd, type NatsReceiveHandle } from './nats/receiver.js';
import { sendingEnd, type NatsSendHandle } from './nats/sender.js';
import { characteristics } from './nats/wire.js';

export { FRAME_OVERHEAD, FrameKind, NATS_DEFAULTS, characteristics, parseFrame, signFrame } from './nats/wire.js';
export type { Frame, NatsAddress, NatsChannelOptions, NatsOptions, NatsStats } from './nats/wire.js';
export type { NatsReceiveHandle } from './nats/receiver.js';
export type { NatsSendHandle } from './nats/sender.js';

/** Either end. */
export type NatsHandle = NatsReceiveHandle | NatsSendHandle;

/**
 * The `nats` primitive object (the module's default export): the framed
 * primitive of `../lib/core/framedPrimitive.ts` over NATS subjects.
 * `connect` waits until the receiving end has answered (`AMIX_ERR_TIMEOUT`);
 * `disconnect` stops publishing, and messages stay buffered until the next
 * `connect()`; `stats()` is a {@link NatsStats}.
 *
 * @example
 * const rx = await registry.open('nats', { nats: { servers: 'nats://10.0.0.5:4222', token } })
 * const tx = await registry.open('nats', { address: rx.address, nats: { token } })
 */
export const natsPrimitive: Primitive<NatsHandle> = framedPrimitive<NatsReceiveHandle, NatsSendHandle>({
  name: 'nats',
  characteristics,
  ...receivingEnd,
  ...sendingEnd,
});

export default natsPrimitive;
