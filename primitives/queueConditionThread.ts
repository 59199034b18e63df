/**
 * `queueConditionThread`: the primitive between threads of one process. One
 * channel is one single-producer/single-consumer ring in a
 * `SharedArrayBuffer`, synchronised with `Atomics`; message bytes are copied
 * straight into the ring by the sender and straight out by the receiver, and
 * never pass through `postMessage`.
 *
 * **Layout.** A 2 KiB header ({@link Header}: every offset named there and
 * nowhere else) followed by a power-of-two data area
 * (`capacityBytes`, default 1 MiB, rounded up). Records are an 8-byte header
 * (the length) followed by the payload, padded to 8 bytes; a payload that runs past the
 * end of the data area is split in two copies, so every byte of the area is
 * usable. A message may be at most the data area less 8 bytes (and at most
 * the channel's `maxMessageBytes`). Positions are wrap-safe 32-bit byte
 * counters; the producer owns `head`, the consumer owns `tail`, each on its
 * own cache line, and each side caches the other's index so that a cache
 * line crosses cores once per batch rather than once per message.
 *
 * **Received messages** are copies by default, never views of the ring. Up
 * to 256 bytes each is a fresh `Uint8Array`; a larger one is a view into a
 * 256 KiB receive slab shared with the messages around it (as `Buffer`'s
 * pool does), because a fresh `ArrayBuffer` per message costs more than the
 * copy: read it through its `byteOffset`/`byteLength`, not its whole `.buffer`.
 *
 * **Zero-copy receive** (`receiveView`, `tryReceiveView`,
 * `tryReceiveManyView`, `release`; on a `Channel`: `receiveView()`,
 * `tryReceiveView()`, `receiveManyView()`, `release()`): the message as a
 * view into the ring's `SharedArrayBuffer`, under the receiving end's lease:
 * the shared read index stays behind the leased messages, so the sender
 * cannot write over them, until `release` or (through a `Channel`) the next
 * receive. Their bytes may change at any moment after that. A payload that
 * wraps around the end of the data area is copied instead, and so is every
 * message of a `dropOldest` ring (see `queueConditionThread/lease.ts`). A
 * leased message counts as received at once and as pending until released.
 * A view saves the copy (4 KiB: about a quarter of the cost of a copying
 * receive, same thread); up to about 64 bytes a copy costs about as much.
 *
 * **Publication.** The write index is published once per burst of sends,
 * not per message: the first message of a burst at once (a lone message
 * costs what it did), the rest every {@link PUBLISH_EVERY} messages or
 * {@link PUBLISH_BYTES}, before the sender waits, when a receive on the
 * sending thread finds nothing or waits, and at the latest at the end of the
 * turn. {@link publishPending} publishes at once, for a thread that then
 * blocks outside amix (see `queueConditionThread/producer.ts`).
 *
 * **Ends.** `create()` without an address allocates the ring and returns its
 * receiving end; its `address` (`{ sab }`) survives `structuredClone`, so it
 * can be posted to a worker, which attaches the sending end with
 * `registry.open('queueConditionThread', { address })`. One sender may be
 * attached at a time (a second gets `AMIX_ERR_MAX_CONNECTIONS`); the ring
 * options (`maxmsg`, `minmsg`, `discard`, `capacityBytes`) are the receiving
 * point's and are read from the header by the sender.
 *
 * **Idle strategies** (`options.idle`, per end; used by `receive` when the
 * ring is empty and by a blocked `send` when it is full):
 * - `spin`: poll the ring in a tight loop, yielding to the event loop only
 *   every ~{@link SPIN_CHUNK} polls. Lowest latency (a hand-off costs about
 *   a cache-line transfer, ~1-3 us round trip here) at the price of a full
 *   core while waiting. Never sleeps. Use it only with a core per spinning
 *   thread: on an oversubscribed machine the spinner steals the CPU from the
 *   thread it waits for (4 KiB throughput fell from ~230k to ~24k msg/s in
 *   our bench with both ends spinning on 2 busy cores).
 * - `yield`: poll once per event-loop turn (`setImmediate`). Keeps the
 *   thread responsive, still burns a core, latency of one loop turn.
 * - `block`: sleep at once: `Atomics.wait` in a worker (in slices of
 *   {@link BLOCK_SLICE_MS} ms so the worker's own timers and aborts still
 *   run), `Atomics.waitAsync` on the main thread, which never blocks. No CPU
 *   while idle; a wake-up costs a few to tens of microseconds.
 * - `spinThenBlock` (default): spin up to {@link SPIN_BOUND} polls (tens of
 *   microseconds), then block. Near-spin latency while traffic flows, no CPU
 *   when idle.
 *
 * `receive` runs its spin phase before it makes any promise, so a message
 * arriving within it costs about what `tryReceive` does. `trySend` and
 * `tryReceive` are the synchronous fast paths (no promise, no allocation on
 * the send side: bytes go straight into the ring); `trySendMany` and
 * `tryReceiveMany` are optional batch forms on the primitive object.
 *
 * **Other operations.** `cycle` puts a null record through the ring (same
 * backpressure as a message); the receiver skips it, never delivers it, and
 * counts it. `suspend`/`resume` set a flag in the header that the sender
 * honours, so either end may suspend the link. `destroy` of the receiving
 * end closes the ring (flag + reason text in the header) and wakes every
 * waiter on both ends (`AMIX_ERR_LINK_CLOSED`, message naming the reason;
 * a receive already waiting takes a message the ring still holds first, so
 * what a dying sender sent before {@link watchWorker} destroys the end is
 * delivered); `destroy` of the sending end detaches it so another may attach. Stats live
 * in the header: both ends report the same figures. {@link startThreadWorker}
 * starts a thread point with its stack size and {@link watchWorker} reports
 * its death on its rings (`AMIX_ERR_POINT_DIED` as the close reason).
 *
 * **Backpressure.** `maxmsg` pending messages suspend the sender and
 * `minmsg` resume it (hysteresis; default no message limit, `minmsg` =
 * half of `maxmsg`). The sender sees the crossing of `maxmsg` and emits
 * `suspended`; the receiver emits `resumed` when a receive brings the
 * pending count down to `minmsg`, and the sender emits its own `resumed`
 * when it next observes the suspension lifted. With `discard: 'block'` a
 * suspended sender waits for the resume (and any sender waits while the
 * bytes do not fit); `dropNewest`, `dropOldest` and `reject` act when
 * `maxmsg` messages are pending or the bytes do not fit, and count every
 * message they drop or refuse in the shared stats.
 *
 * **Parts** (in `queueConditionThread/`): `header.ts` (the layout: every
 * offset and constant, allocating and checking a ring), `handle.ts` (one
 * end, its errors and events), `producer.ts` (writing, publishing, the
 * discard policies, the watermark), `consumer.ts` (reading out, releasing,
 * lifting the watermark), `lease.ts` (views under a lease) and `wait.ts`
 * (idle strategies, parking, call order). This file is the primitive object and the worker helpers.
 *
 * @example
 * const rx = await registry.open('queueConditionThread', { maxmsg: 1000 })
 * new Worker(url, { workerData: rx.address }) // there: registry.open('queueConditionThread', { address: workerData })
 *
 * @module
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { AmixError, ErrorCode } from '../lib/core/errors.js';
import type {
  ChannelOptions,
  ChannelStats,
  Primitive,
  PrimitiveCharacteristics,
  ReceiveOptions,
  SendOptions,
} from '../lib/core/primitive.js';
import * as header from './queueConditionThread/header.js';
import type { ThreadHandle } from './queueConditionThread/handle.js';
import * as handle from './queueConditionThread/handle.js';
import * as producer from './queueConditionThread/producer.js';
import * as consumer from './queueConditionThread/consumer.js';
import * as wait from './queueConditionThread/wait.js';
import * as lease from './queueConditionThread/lease.js';

export {
  BLOCK_SLICE_MS,
  DEFAULT_CAPACITY_BYTES,
  Header,
  LAYOUT_VERSION,
  PUBLISH_BYTES,
  PUBLISH_EVERY,
  RING_MAGIC,
  SPIN_BOUND,
  SPIN_CHUNK,
} from './queueConditionThread/header.js';
export type { ThreadAddress, ThreadHandle } from './queueConditionThread/handle.js';
export { publishPending } from './queueConditionThread/producer.js';

// Own constants, not imported bindings, on the hot path (see queueConditionThread/header.ts).
const { CYCLE_RECORD, Header, RECORD_HEADER, SPIN_BOUND, allocate, assertSab } = header;
const { closedError, makeHandle, wake } = handle;
const { SendResult, attemptSend, endOfBurst, flushEnd, publish, recordBytes, trySendMany } = producer;
const { attemptReceive, tryReceiveMany } = consumer;
const { abortIfNeeded, canReceive, canSend, enqueue, park } = wait;
const { release, receiveView, tryReceiveManyView, tryReceiveView } = lease;

// ---------------------------------------------------------------------------
// The primitive

/** Characteristics of queueConditionThread (the registry's built-in entry carries the same). */
export const characteristics: PrimitiveCharacteristics = Object.freeze({
  scopes: Object.freeze(['thread'] as const),
  maxMessageBytes: 16 * 1024 * 1024,
  ordering: 'fifo',
  delivery: 'reliable',
});

/**
 * The queueConditionThread primitive (see the module documentation for the
 * ring, the idle strategies and the watermarks). Default export of this
 * module; the registry loads it on first use.
 */
const queueConditionThread = {
  name: 'queueConditionThread',
  characteristics,

  /**
   * Without `options.address`: allocate a ring (header + `capacityBytes`
   * rounded up to a power of two) and return its receiving end. With it:
   * attach the sending end; `AMIX_ERR_MAX_CONNECTIONS` if a sender is
   * already attached, `AMIX_ERR_LINK_CLOSED` if the ring is closed.
   */
  async create(options: ChannelOptions): Promise<ThreadHandle> {
    if (options.address === undefined) return makeHandle(allocate(options), 'receive', options);
    const sab = assertSab(options.address);
    const i32 = new Int32Array(sab);
    if (Atomics.load(i32, Header.CLOSED) !== 0) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_LINK_CLOSED,
        'queueConditionThread ring is already closed by its receiving end',
      );
    }
    if (Atomics.compareExchange(i32, Header.ATTACHED, 0, 1) !== 0) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
        'queueConditionThread ring already has its one sending end attached (single producer)',
        { details: { maxConnections: 1 } },
      );
    }
    return makeHandle(sab, 'send', options);
  },

  /**
   * Receiving end: close the ring (flag + reason in the header) and wake
   * every waiter on both ends; theirs reject with `AMIX_ERR_LINK_CLOSED`
   * naming the reason (a receive already waiting first takes a message the
   * ring still holds). Sending end: detach (another sender may attach) and
   * wake its own waiters. Idempotent.
   */
  async destroy(h: ThreadHandle, reason?: Error): Promise<void> {
    if (h.destroyed) return;
    h.destroyed = reason ?? new Error('closed');
    const { i32 } = h;
    if (h.role === 'receive') {
      if (Atomics.load(i32, Header.CLOSED) === 0) {
        const bytes = textEncoder
          .encode(reason?.message ?? 'the receiving end was closed')
          .subarray(0, Header.REASON_MAX);
        h.u8.set(bytes, Header.BYTE_REASON);
        i32[Header.REASON_LEN] = bytes.length;
        Atomics.store(i32, Header.CLOSED, 1);
      }
    } else {
      // Records written but not yet published (coalesced) were accepted: publish them before detaching.
      flushEnd(h);
      Atomics.store(i32, Header.ATTACHED, 0);
    }
    wake(i32, Header.RX_WAKE);
    wake(i32, Header.TX_WAKE);
  },

  /**
   * Copy `data` into the ring. Fast path without a promise wait when there
   * is room; otherwise applies the discard policy (`block` waits by the idle
   * strategy). Rejects `AMIX_ERR_MESSAGE_TOO_LARGE`, `AMIX_ERR_QUEUE_FULL`,
   * `AMIX_ERR_LINK_CLOSED`, `AMIX_ERR_ABORTED`.
   */
  async send(h: ThreadHandle, data: Uint8Array, options: SendOptions = {}): Promise<void> {
    return sendRecord(h, data, data.byteLength, options.signal);
  },

  /**
   * The next message, copied out of the ring (its length is its size).
   * Rejects `AMIX_ERR_BUFFER_TOO_SMALL` (message stays queued),
   * `AMIX_ERR_LINK_CLOSED` once this end or the ring is closed,
   * `AMIX_ERR_ABORTED`. Waits by the idle strategy.
   */
  async receive(h: ThreadHandle, options: ReceiveOptions): Promise<Uint8Array> {
    const { maxBytes, signal } = options;
    abortIfNeeded(signal, 'receive');
    if (h.queued === 0) {
      if (h.destroyed) throw closedError(h);
      const m = attemptReceive(h, maxBytes);
      if (m !== undefined) return m;
      if (h.idle === 'spin' || h.idle === 'spinThenBlock') {
        // The spin phase runs before any promise is made: a message that
        // arrives within it costs no more than a tryReceive.
        for (let i = 0; i < SPIN_BOUND; i++) {
          if (canReceive(h)) {
            const r = attemptReceive(h, maxBytes);
            if (r !== undefined) return r;
          }
        }
      }
    }
    return enqueue(h, async () => {
      for (;;) {
        abortIfNeeded(signal, 'receive');
        // What the ring holds is taken before a destroy is reported: watchWorker destroys this end on
        // the sending thread's exit event, which may run before this wait's wake-up, and the messages
        // that thread sent before it died were accepted.
        const m = attemptReceive(h, maxBytes);
        if (m !== undefined) return m;
        if (h.destroyed) throw closedError(h);
        await park(h, true, () => h.destroyed !== null || signal?.aborted === true || canReceive(h), signal);
      }
    });
  },

  /**
   * A null record through the ring: accepted like a message (same
   * backpressure), skipped by the receiver and counted there
   * (`F64_CYCLES`); never delivered to the application.
   */
  async cycle(h: ThreadHandle, options: SendOptions = {}): Promise<void> {
    if (h.role !== 'send') return;
    return sendRecord(h, EMPTY, CYCLE_RECORD, options.signal);
  },

  /** Suspend the sender through the header (either end may call it); sends wait until resume. */
  suspend(h: ThreadHandle): void {
    Atomics.store(h.i32, Header.PAUSED, 1);
  },

  /** Resume a sender suspended by {@link suspend} and wake it. */
  resume(h: ThreadHandle): void {
    Atomics.store(h.i32, Header.PAUSED, 0);
    wake(h.i32, Header.TX_WAKE);
  },

  /** The shared counters: both ends see the same figures. */
  stats(h: ThreadHandle): ChannelStats {
    // Sends held for the end of this thread's burst are counted when published: publish them first.
    endOfBurst();
    const { f64, i32 } = h;
    return {
      sent: f64[Header.F64_SENT]!,
      received: f64[Header.F64_RECEIVED]!,
      pending: Math.max(0, (Atomics.load(i32, Header.WSEQ) - Atomics.load(i32, Header.RSEQ)) | 0),
      dropped: f64[Header.F64_DROPPED]!,
      rejected: f64[Header.F64_REJECTED]!,
      suspensions: f64[Header.F64_SUSPENSIONS]!,
      bytesSent: f64[Header.F64_BYTES_SENT]!,
      bytesReceived: f64[Header.F64_BYTES_RECEIVED]!,
    };
  },

  /** Copy `data` in now and return true, or return false when `send` would wait (full with `block`, suspended). */
  trySend(h: ThreadHandle, data: Uint8Array): boolean {
    if (h.queued > 0) {
      if (h.destroyed || Atomics.load(h.i32, Header.CLOSED) !== 0) throw closedError(h);
      return false;
    }
    if (attemptSend(h, data, data.byteLength) !== SendResult.sent) return false;
    publish(h);
    return true;
  },

  /** The next message if one is ready now, else undefined. */
  tryReceive(h: ThreadHandle, maxBytes: number): Uint8Array | undefined {
    if (h.queued > 0) return undefined;
    if (h.destroyed) throw closedError(h);
    return attemptReceive(h, maxBytes);
  },

  /** Batch send: accept a prefix of the messages now, one publication of the write index for the batch. */
  trySendMany,
  /** Batch receive: up to `maxCount` ready messages, one publication of the read index for the batch. */
  tryReceiveMany,

  /**
   * The next message as a view into the ring, under the end's lease (see
   * the module documentation): valid until {@link release} or a copying
   * receive. Waits and rejects like `receive`. On a `dropOldest` ring, a copy.
   */
  receiveView(h: ThreadHandle, options: ReceiveOptions): Promise<Uint8Array> {
    return h.discard === 'dropOldest' ? queueConditionThread.receive(h, options) : receiveView(h, options);
  },
  /** The next message as a view under the lease if one is ready now, else undefined. */
  tryReceiveView,
  /** Up to `maxCount` ready messages as views under the lease. */
  tryReceiveManyView,
  /** End the lease: hand the leased messages' space back to the sender with one store. */
  release,
} satisfies Primitive<ThreadHandle>;

const EMPTY = new Uint8Array(0);
const textEncoder = new TextEncoder();

async function sendRecord(
  h: ThreadHandle,
  data: Uint8Array,
  lengthWord: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  abortIfNeeded(signal, 'send');
  if (h.queued === 0 && attemptSend(h, data, lengthWord) === SendResult.sent) {
    publish(h);
    return;
  }
  // The caller may reuse its buffer once send resolves, so until then we
  // still read from `data` itself: nothing is copied but into the ring.
  return enqueue(h, async () => {
    for (;;) {
      abortIfNeeded(signal, 'send');
      if (attemptSend(h, data, lengthWord) === SendResult.sent) {
        publish(h);
        return;
      }
      const need = lengthWord === CYCLE_RECORD ? RECORD_HEADER : recordBytes(data.byteLength);
      await park(
        h,
        false,
        () => h.destroyed !== null || signal?.aborted === true || canSend(h, need, lengthWord !== CYCLE_RECORD),
        signal,
      );
    }
  });
}

/** Options for {@link startThreadWorker}. */
export interface ThreadWorkerOptions extends Omit<WorkerOptions, 'resourceLimits'> {
  /** The point's stack size in MiB (`resourceLimits.stackSizeMb`). Default: Node's (4). */
  stackSizeMb?: number;
  /** Other `resourceLimits` of the worker. */
  resourceLimits?: Omit<NonNullable<WorkerOptions['resourceLimits']>, 'stackSizeMb'>;
}

/** Anything with an abrupt close, such as a `Channel`. */
export interface Destroyable {
  /** End it at once, failing what waits on it with `reason`. */
  destroy(reason?: Error): Promise<void>;
}

/**
 * Function: `startThreadWorker(script, [options])`. Start a thread-scope
 * point's worker with the point's stack size. Wire its death to its rings
 * with {@link watchWorker}.
 *
 * @example
 * const w = startThreadWorker(new URL('./point.js', import.meta.url), { stackSizeMb: 8, workerData: { address: rx.address } })
 * watchWorker(w, [rx])
 */
export function startThreadWorker(script: string | URL, options: ThreadWorkerOptions = {}): Worker {
  const { stackSizeMb, resourceLimits, ...rest } = options;
  if (stackSizeMb !== undefined && !(Number.isFinite(stackSizeMb) && stackSizeMb > 0)) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `options.stackSizeMb must be a positive number (got ${String(stackSizeMb)})`,
      { details: { option: 'stackSizeMb' } },
    );
  }
  return new Worker(script, {
    ...rest,
    resourceLimits: { ...resourceLimits, ...(stackSizeMb !== undefined ? { stackSizeMb } : {}) },
  });
}

/**
 * Function: `watchWorker(worker, ends[, onDeath])`. Detect the death of the
 * thread on the other side of some rings: when `worker` throws an uncaught
 * error or exits with a non-zero code, every end in `ends` is destroyed with
 * an `AMIX_ERR_POINT_DIED` reason (`details.exitCode`, and the error's
 * message), so receives and sends waiting on them reject with
 * `AMIX_ERR_LINK_CLOSED` whose `cause` says how the thread died; then
 * `onDeath` is called with that error. A clean exit (code 0) is not a
 * death. Returns a function that stops watching. Restarting is the
 * fabric's business.
 */
export function watchWorker(
  worker: Worker,
  ends: readonly Destroyable[],
  onDeath?: (err: AmixError) => void,
): () => void {
  let lastError: Error | undefined;
  const threadId = worker.threadId;
  const onError = (err: Error): void => {
    lastError = err;
  };
  const onExit = (exitCode: number): void => {
    if (exitCode === 0 && !lastError) return;
    const why = lastError ? `threw ${lastError.message}` : `exited with code ${exitCode}`;
    const died = new AmixError(ErrorCode.AMIX_ERR_POINT_DIED, `thread ${threadId} ${why}`, {
      cause: lastError,
      details: { threadId, exitCode, ...(lastError ? { error: lastError.message } : {}) },
    });
    for (const end of ends) void end.destroy(died).catch(() => undefined);
    onDeath?.(died);
  };
  worker.on('error', onError);
  worker.once('exit', onExit);
  return () => {
    worker.off('error', onError);
    worker.off('exit', onExit);
  };
}

export default queueConditionThread;
