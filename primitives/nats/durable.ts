/**
 * Durable links of the `nats` primitive: DATA frames go through a JetStream
 * stream (one per link, work-queue retention, file storage by default) read
 * by one durable pull consumer with explicit acks. The receiving end acks a
 * stream message once the application has taken every message of it that
 * was new; until then it keeps telling the server it is still working on
 * it, so nothing is redelivered under a slow reader, and a replacement
 * receiver (same `id` and `key`) gets every frame not acked. The sending end
 * publishes through the JetStream client and counts what the server has
 * acknowledged storing. `@nats-io/jetstream` is imported here, on first use.
 *
 * @module
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { AmixError, ErrorCode } from '../../lib/core/errors.js';

/** How long the server waits for an ack before redelivering (the receiver says "working" well within it). */
export const ACK_WAIT_MS = 3_000;

/** A stream message whose new messages sit in the receiver's queue: acked once all are taken. */
export interface Held<S> {
  readonly held: true;
  /** The session its messages belong to (set before the first is queued). */
  session: S | undefined;
  /** One more of its messages was queued. */
  keep(): void;
  /** Every message of it has been looked at: ack now if none waits. */
  settle(): void;
  /** One of its messages was taken by the application. */
  taken(): void;
  /** Ack it at once (nothing of it is kept: a bad frame or duplicates). */
  done(): void;
}

/** A durable receiving end's consumer. */
export interface Durable {
  stop(): Promise<void>;
}

/** What {@link openDurable} needs. */
export interface DurableOptions<S> {
  /** The link's id (the stream is `AMIX_<id>`). */
  id: string;
  /** The stream's subject. */
  stream: string;
  maxmsg: number;
  maxFrameBytes: number;
  storage: 'file' | 'memory';
  onFrame(data: Uint8Array, held: Held<S>): void;
}

class HeldFrame<S> implements Held<S> {
  readonly held = true as const;
  session: S | undefined = undefined;
  #left = 0;
  #settled = false;
  #acked = false;
  constructor(
    public msg: JsMsg,
    private readonly holding: Map<number, HeldFrame<S>>,
  ) {}
  keep(): void {
    this.#left++;
  }
  settle(): void {
    this.#settled = true;
    if (this.#left === 0) this.done();
  }
  taken(): void {
    if (--this.#left === 0 && this.#settled) this.done();
  }
  done(): void {
    if (this.#acked) return;
    this.#acked = true;
    this.holding.delete(this.msg.seq);
    this.msg.ack();
  }
}

/** Make (or find) the link's stream and consumer and start consuming into `o.onFrame`. */
export async function openDurable<S>(h: { nc: NatsConnection }, o: DurableOptions<S>): Promise<Durable> {
  const { jetstreamManager, jetstream, AckPolicy, DiscardPolicy, RetentionPolicy, StorageType } =
    await import('@nats-io/jetstream');
  const name = `AMIX_${o.id}`;
  const jsm = await jetstreamManager(h.nc);
  const config = {
    name,
    subjects: [o.stream],
    retention: RetentionPolicy.Workqueue,
    storage: o.storage === 'memory' ? StorageType.Memory : StorageType.File,
    // Credit bounds what a sender may have unconsumed; the stream's bound is a backstop (re-sends may repeat frames).
    discard: DiscardPolicy.New,
    max_msgs: 8 * o.maxmsg,
    max_msg_size: o.maxFrameBytes,
    num_replicas: 1,
  };
  try {
    await jsm.streams.info(name);
  } catch {
    await jsm.streams.add(config);
  }
  const consumer = {
    durable_name: 'amix',
    ack_policy: AckPolicy.Explicit,
    ack_wait: ACK_WAIT_MS * 1_000_000,
    max_ack_pending: Math.max(64, o.maxmsg),
  };
  try {
    await jsm.consumers.info(name, 'amix');
  } catch {
    await jsm.consumers.add(name, consumer);
  }
  const holding = new Map<number, HeldFrame<S>>();
  const c = await jetstream(h.nc).consumers.get(name, 'amix');
  const messages = await c.consume({
    max_messages: 256,
    callback: (m) => {
      const was = holding.get(m.seq);
      if (was !== undefined) {
        // Redelivered while its messages still wait here: ack through the newest delivery when they are taken.
        was.msg = m;
        return;
      }
      const f = new HeldFrame<S>(m, holding);
      holding.set(m.seq, f);
      o.onFrame(m.data, f);
    },
  });
  // Frames whose messages wait for a slow reader are not redelivered: the server hears "working" well within ack_wait.
  const timer = setInterval(() => {
    for (const f of holding.values()) f.msg.working();
  }, ACK_WAIT_MS / 3);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await messages.close().catch(() => undefined);
    },
  };
}

/** The JetStream client of a durable sending end. */
export async function durablePublisher(nc: NatsConnection): Promise<JetStreamClient> {
  try {
    const { jetstream } = await import('@nats-io/jetstream');
    return jetstream(nc);
  } catch (err) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_PRIMITIVE_LOAD,
      `cannot load @nats-io/jetstream: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
