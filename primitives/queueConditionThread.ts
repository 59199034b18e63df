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
 * **Received messages** are copies, never views of the ring. Up to 256
 * bytes each is a fresh `Uint8Array`; a larger one is a view into a 256 KiB
 * receive slab shared with the messages around it (as `Buffer`'s pool
 * does), because a fresh `ArrayBuffer` per message costs more than the copy:
 * read it through its `byteOffset`/`byteLength`, not its whole `.buffer`.
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
 * waiter on both ends (`AMIX_ERR_LINK_CLOSED`, message naming the reason);
 * `destroy` of the sending end detaches it so another may attach. Stats live
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
 * @example
 * const rx = await registry.open('queueConditionThread', { maxmsg: 1000 })
 * new Worker(url, { workerData: rx.address }) // there: registry.open('queueConditionThread', { address: workerData })
 *
 * @module
 */
import { Worker, isMainThread, type WorkerOptions } from 'node:worker_threads';
import { AmixError, ErrorCode, abortError } from '../lib/core/errors.js';
import type {
  ChannelEvent,
  ChannelHandle,
  ChannelOptions,
  ChannelStats,
  DiscardPolicy,
  IdleStrategy,
  Primitive,
  PrimitiveCharacteristics,
  ReceiveOptions,
  SendOptions,
} from '../lib/core/primitive.js';

/**
 * The shared header: every offset of the ring, in one place. `i32` entries
 * are indices into an `Int32Array` over the whole buffer, `f64` entries into
 * a `Float64Array`, `byte` entries are byte offsets. Each group sits on its
 * own 64-byte cache line so that the producer's and the consumer's hot words
 * never share a line.
 */
export const Header = {
  // Line 0 (bytes 0-63): configuration, written once by the creator.
  /** `RING_MAGIC` once the header is initialised. */
  MAGIC: 0,
  /** Layout version, {@link LAYOUT_VERSION}. */
  VERSION: 1,
  /** Data-area size in bytes (a power of two). */
  CAPACITY: 2,
  /** Pending messages at which the sender is suspended. */
  MAXMSG: 3,
  /** Pending messages at which the sender is resumed. */
  MINMSG: 4,
  /** Discard policy as an index into `DISCARD_CODES`. */
  DISCARD: 5,
  /** Largest message accepted (bytes). */
  MAX_MESSAGE: 6,
  // Line 1 (bytes 64-127): rarely written flags, read by both ends.
  /** 1 once the receiving end closed the ring. */
  CLOSED: 16,
  /** 1 while the sender is suspended by the `maxmsg` watermark. */
  SUSPENDED: 17,
  /** 1 while the sender is suspended by `suspend()` (either end). */
  PAUSED: 18,
  /** 1 while a sending end is attached. */
  ATTACHED: 19,
  /** Length in bytes of the UTF-8 close reason at `BYTE_REASON`. */
  REASON_LEN: 20,
  // Line 2 (bytes 128-191): producer-owned.
  /** Producer byte position (wrap-safe 32-bit counter). */
  HEAD: 32,
  /** Messages written (wrap-safe 32-bit counter); cycle records excluded. */
  WSEQ: 33,
  /** f64: messages accepted into the ring. */
  F64_SENT: 18,
  /** f64: payload bytes accepted. */
  F64_BYTES_SENT: 19,
  /** f64: messages dropped by `dropNewest` or `dropOldest`. */
  F64_DROPPED: 20,
  /** f64: messages refused by `reject`. */
  F64_REJECTED: 21,
  /** f64: times `maxmsg` was reached. */
  F64_SUSPENSIONS: 22,
  // Line 3 (bytes 192-255): consumer-owned.
  /** Consumer byte position (wrap-safe 32-bit counter). */
  TAIL: 48,
  /** Messages removed (received or dropped as oldest), wrap-safe. */
  RSEQ: 49,
  /** f64: messages received. */
  F64_RECEIVED: 26,
  /** f64: payload bytes received. */
  F64_BYTES_RECEIVED: 27,
  /** f64: cycle (null) records that went through. */
  F64_CYCLES: 28,
  // Line 4: the consumer's sleep flag and wake word.
  /** Number of receivers parked (set before sleeping, so the producer knows to notify). */
  RX_WAITING: 64,
  /** Bumped and notified to wake parked receivers. */
  RX_WAKE: 65,
  // Line 5: the producer's sleep flag and wake word.
  /** Number of senders parked. */
  TX_WAITING: 80,
  /** Bumped and notified to wake parked senders. */
  TX_WAKE: 81,
  /** byte: UTF-8 close reason, up to `REASON_MAX` bytes. */
  BYTE_REASON: 1024,
  /** Longest close reason kept, in bytes. */
  REASON_MAX: 1000,
  /** byte: where the data area starts (the header size). */
  BYTE_DATA: 2048,
} as const;

/** Marks an initialised header ("AMXT"). */
export const RING_MAGIC = 0x414d5854;
/** Version of the {@link Header} layout. */
export const LAYOUT_VERSION = 1;
/**
 * Bytes before each payload: the length word and 4 reserved bytes. Records
 * are 8-byte aligned because copies into and out of a SharedArrayBuffer go
 * word by word only when source and target share an alignment (byte by
 * byte, several times slower, when they do not).
 */
const RECORD_HEADER = 8;
/** Length word of a cycle (null) record: skipped by the receiver, counted in `F64_CYCLES`. */
const CYCLE_RECORD = -1;
/** Default data-area size. */
export const DEFAULT_CAPACITY_BYTES = 1 << 20;
/** Smallest data area. */
const MIN_CAPACITY = 64;
/** Largest data area (positions are 32-bit counters). */
const MAX_CAPACITY = 1 << 30;
/** No message limit. */
const NO_MAXMSG = 0x7fffffff;
/** Polls between event-loop yields with the `spin` strategy. */
export const SPIN_CHUNK = 100_000;
/** Polls before sleeping with `spinThenBlock`. */
export const SPIN_BOUND = 4_000;
/** Received messages up to this size are fresh `slice()`s of the ring; larger ones are views into a slab. */
const SLAB_MIN_MESSAGE = 256;
/** Size of one receive slab. */
const SLAB_BYTES = 256 * 1024;
/** Messages above this size get a buffer of their own. */
const SLAB_MAX_MESSAGE = 64 * 1024;
/** Longest single `Atomics.wait` in a worker before the event loop gets a turn. */
export const BLOCK_SLICE_MS = 20;

const DISCARD_CODES: readonly DiscardPolicy[] = ['block', 'dropNewest', 'dropOldest', 'reject'];
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** The address of a ring: hand it to the other thread (it survives `structuredClone`). */
export interface ThreadAddress {
  readonly [key: string]: unknown;
  readonly sab: SharedArrayBuffer;
}

/** One end of a ring. Everything is the primitive's own; users hold a `Channel`. */
export interface ThreadHandle extends ChannelHandle {
  readonly address: ThreadAddress;
  /** Largest message this ring carries (the smaller of `maxMessageBytes` and the data area less 8). */
  readonly maxMessageBytes: number;
  /** @internal */ readonly i32: Int32Array;
  /** @internal */ readonly f64: Float64Array;
  /** @internal */ readonly u8: Uint8Array;
  /** @internal */ readonly capacity: number;
  /** @internal */ readonly mask: number;
  /** @internal */ readonly dataI32: number;
  /** @internal */ readonly maxmsg: number;
  /** @internal */ readonly minmsg: number;
  /** @internal */ readonly discard: DiscardPolicy;
  /** @internal */ readonly idle: IdleStrategy;
  /** @internal */ readonly onEvent: ((e: ChannelEvent) => void) | undefined;
  /** @internal Own position: head for the sender, tail for the receiver. */ pos: number;
  /** @internal Cached copy of the other side's position. */ otherPos: number;
  /** @internal Own message counter (wseq or rseq). */ seq: number;
  /** @internal Sender: cached rseq. */ otherSeq: number;
  /** @internal Sender: last seen watermark suspension (to emit `resumed` once). */ suspendedSeen: boolean;
  /** @internal Set by destroy of this end. */ destroyed: Error | null;
  /** @internal Sender: the `closed` event for a ring closed by the receiver was emitted. */ peerClosed: boolean;
  /** @internal Async operations queued on this end (keeps them in call order). */ queue: Promise<unknown> | null;
  /** @internal Async operations waiting in `queue`. */ queued: number;
  /** @internal The ring as a Buffer (for native copies). */ readonly buf: Buffer;
  /** @internal Receiver: the slab larger messages are copied into. */ slab: Buffer | null;
  /** @internal Receiver: next free byte in `slab`. */ slabOff: number;
}

function ceilPow2(n: number): number {
  let c = MIN_CAPACITY;
  while (c < n && c < MAX_CAPACITY) c *= 2;
  return c;
}

function emit(h: ThreadHandle, e: ChannelEvent): void {
  try {
    h.onEvent?.(e);
  } catch {
    /* onEvent must not throw; a throwing listener must not break the ring */
  }
}

function closedError(h: ThreadHandle): AmixError {
  if (h.destroyed) {
    return new AmixError(
      ErrorCode.AMIX_ERR_LINK_CLOSED,
      `queueConditionThread ${h.role} end was destroyed: ${h.destroyed.message}`,
      { cause: h.destroyed },
    );
  }
  const n = h.i32[Header.REASON_LEN]!;
  const why = n > 0 ? textDecoder.decode(h.u8.slice(Header.BYTE_REASON, Header.BYTE_REASON + n)) : 'closed';
  return new AmixError(
    ErrorCode.AMIX_ERR_LINK_CLOSED,
    `queueConditionThread ring was closed by its receiving end: ${why}`,
    { details: { reason: why } },
  );
}

function tooLarge(h: ThreadHandle, size: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE,
    `message of ${size} bytes exceeds the queueConditionThread ring maximum of ${h.maxMessageBytes} (raise capacityBytes or maxMessageBytes)`,
    { details: { size, max: h.maxMessageBytes } },
  );
}

function makeHandle(sab: SharedArrayBuffer, role: 'send' | 'receive', options: ChannelOptions): ThreadHandle {
  const i32 = new Int32Array(sab);
  const capacity = i32[Header.CAPACITY]!;
  const maxmsg = i32[Header.MAXMSG]!;
  return {
    address: { sab },
    role,
    maxMessageBytes: i32[Header.MAX_MESSAGE]!,
    i32,
    f64: new Float64Array(sab, 0, Header.BYTE_DATA / 8),
    u8: new Uint8Array(sab),
    capacity,
    mask: capacity - 1,
    dataI32: Header.BYTE_DATA >> 2,
    maxmsg,
    minmsg: i32[Header.MINMSG]!,
    discard: DISCARD_CODES[i32[Header.DISCARD]!] ?? 'block',
    idle: options.idle ?? 'spinThenBlock',
    onEvent: options.onEvent,
    pos: role === 'send' ? Atomics.load(i32, Header.HEAD) : Atomics.load(i32, Header.TAIL),
    otherPos: role === 'send' ? Atomics.load(i32, Header.TAIL) : Atomics.load(i32, Header.HEAD),
    seq: role === 'send' ? Atomics.load(i32, Header.WSEQ) : Atomics.load(i32, Header.RSEQ),
    otherSeq: Atomics.load(i32, Header.RSEQ),
    suspendedSeen: role === 'send' && Atomics.load(i32, Header.SUSPENDED) !== 0,
    destroyed: null,
    peerClosed: false,
    queue: null,
    queued: 0,
    buf: Buffer.from(sab),
    slab: null,
    slabOff: 0,
  };
}

function allocate(options: ChannelOptions): SharedArrayBuffer {
  const capacity = ceilPow2(options.capacityBytes ?? DEFAULT_CAPACITY_BYTES);
  const sab = new SharedArrayBuffer(Header.BYTE_DATA + capacity);
  const i32 = new Int32Array(sab);
  const maxmsg = options.maxmsg ?? NO_MAXMSG;
  i32[Header.VERSION] = LAYOUT_VERSION;
  i32[Header.CAPACITY] = capacity;
  i32[Header.MAXMSG] = maxmsg;
  i32[Header.MINMSG] = options.minmsg ?? (maxmsg === NO_MAXMSG ? NO_MAXMSG - 1 : Math.floor(maxmsg / 2));
  i32[Header.DISCARD] = Math.max(0, DISCARD_CODES.indexOf(options.discard ?? 'block'));
  i32[Header.MAX_MESSAGE] = Math.min(options.maxMessageBytes ?? capacity - RECORD_HEADER, capacity - RECORD_HEADER);
  Atomics.store(i32, Header.MAGIC, RING_MAGIC);
  return sab;
}

/** Wake every parked waiter of one side (`RX_WAKE` or `TX_WAKE`). */
function wake(i32: Int32Array, word: number): void {
  Atomics.add(i32, word, 1);
  Atomics.notify(i32, word);
}

/** `Atomics.waitAsync` (ES2024; present in Node 20, absent from this project's `lib`). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      index: number,
      value: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------------------
// Producer

/** Bytes a record of `len` payload bytes takes in the ring. */
function recordBytes(len: number): number {
  return RECORD_HEADER + ((len + 7) & ~7);
}

/** Write one record at the producer's position, without publishing it. The caller checked room. */
function writeRecord(h: ThreadHandle, data: Uint8Array, len: number, need: number, lengthWord: number): void {
  const { i32, u8, mask, capacity } = h;
  const head = h.pos;
  const at = head & mask;
  i32[h.dataI32 + (at >> 2)] = lengthWord;
  if (len > 0) {
    const start = (at + RECORD_HEADER) & mask;
    if (start + len <= capacity) {
      u8.set(data, Header.BYTE_DATA + start);
    } else {
      const first = capacity - start;
      u8.set(data.subarray(0, first), Header.BYTE_DATA + start);
      u8.set(data.subarray(first), Header.BYTE_DATA);
    }
  }
  h.pos = (head + need) | 0;
}

/** Publish every record written so far and wake a parked receiver. */
function commitHead(h: ThreadHandle): void {
  const { i32 } = h;
  // The seq-cst store of HEAD publishes the record bytes above; the load of
  // RX_WAITING after it pairs with the consumer's store-then-load of HEAD in
  // park() (Dekker): either the consumer sees the new head or we see it parked.
  // Atomics.store is a full fence (and, as a call, a compiler barrier), so a
  // plain read after it is ordered; Atomics.load would cost ~13 ns more per
  // message in Node 20, where it is not inlined.
  Atomics.store(i32, Header.HEAD, h.pos);
  if (i32[Header.RX_WAITING] !== 0) wake(i32, Header.RX_WAKE);
}

/** True when `need` bytes fit, refreshing the cached tail if they do not seem to. */
function fits(h: ThreadHandle, need: number): boolean {
  if (h.capacity - ((h.pos - h.otherPos) | 0) >= need) return true;
  h.otherPos = Atomics.load(h.i32, Header.TAIL);
  return h.capacity - ((h.pos - h.otherPos) | 0) >= need;
}

/** Messages pending as far as the producer knows, refreshing the cached rseq when at the mark. */
function pendingAtMark(h: ThreadHandle): boolean {
  if (((h.seq - h.otherSeq) | 0) < h.maxmsg) return false;
  h.otherSeq = Atomics.load(h.i32, Header.RSEQ);
  return ((h.seq - h.otherSeq) | 0) >= h.maxmsg;
}

/**
 * dropOldest, from the producer. The consumer owns `tail`, so the producer
 * must not simply move it: the consumer might be copying that very record.
 * Instead, in dropOldest mode both ends advance `tail` only with
 * compare-exchange. The producer reads the oldest record's length at `tail`
 * (stable while `tail` is unchanged: the consumer never writes data) and
 * CASes `tail` past it; the consumer copies a record and then CASes, and if
 * its CAS fails the record was dropped under it, so it discards its
 * (possibly torn) copy and retries from the new `tail`. A 32-bit position
 * cannot come back to the same value before 4 GiB have passed, so ABA is
 * not a concern. Returns false when there was nothing to drop.
 */
function dropOldestRecord(h: ThreadHandle): boolean {
  const { i32, mask } = h;
  for (;;) {
    const tail = Atomics.load(i32, Header.TAIL);
    if (tail === h.pos) return false;
    const len = i32[h.dataI32 + ((tail & mask) >> 2)]!;
    const need = len === CYCLE_RECORD ? RECORD_HEADER : recordBytes(len);
    if (Atomics.compareExchange(i32, Header.TAIL, tail, (tail + need) | 0) !== tail) continue;
    h.otherPos = (tail + need) | 0;
    if (len === CYCLE_RECORD) continue;
    Atomics.add(i32, Header.RSEQ, 1);
    h.otherSeq = Atomics.load(i32, Header.RSEQ);
    h.f64[Header.F64_DROPPED]! += 1;
    emit(h, { type: 'dropped', policy: 'dropOldest', count: 1 });
    return true;
  }
}

/** The watermark: called after a message went in. */
function checkSuspend(h: ThreadHandle): void {
  if (!pendingAtMark(h)) return;
  const { i32 } = h;
  if (Atomics.compareExchange(i32, Header.SUSPENDED, 0, 1) !== 0) return;
  h.f64[Header.F64_SUSPENSIONS]! += 1;
  h.suspendedSeen = true;
  emit(h, { type: 'suspended', pending: (h.seq - h.otherSeq) | 0 });
  // The consumer may have drained everything before it could see the flag:
  // look again after setting it, and lift it ourselves if so (the consumer's
  // store of RSEQ/TAIL then load of SUSPENDED pairs with this store-then-load).
  h.otherSeq = Atomics.load(i32, Header.RSEQ);
  if (((h.seq - h.otherSeq) | 0) <= h.minmsg) Atomics.compareExchange(i32, Header.SUSPENDED, 1, 0);
}

/** Emit the sender's `resumed` once it observes the watermark suspension lifted. */
function noticeResume(h: ThreadHandle): boolean {
  if (Atomics.load(h.i32, Header.SUSPENDED) !== 0) return false;
  h.suspendedSeen = false;
  h.otherSeq = Atomics.load(h.i32, Header.RSEQ);
  emit(h, { type: 'resumed', pending: (h.seq - h.otherSeq) | 0 });
  return true;
}

/** Outcome of one send attempt. */
const SendResult = { sent: 0, wait: 1 } as const;

/**
 * One attempt to send: accepts (or discards by policy, counted) and returns
 * `sent`, returns `wait` when the block policy or a suspend must wait, or
 * throws. `lengthWord` is `len`, or `CYCLE_RECORD` for a cycle record.
 */
function attemptSend(h: ThreadHandle, data: Uint8Array, lengthWord: number): 0 | 1 {
  const { i32 } = h;
  if (h.destroyed) throw closedError(h);
  // CLOSED and PAUSED are hints read on every send: a plain read is enough
  // (a send racing a close may still go in; the receiver discards the ring).
  if (i32[Header.CLOSED] !== 0) {
    const err = closedError(h);
    if (!h.peerClosed) {
      h.peerClosed = true;
      emit(h, { type: 'closed', reason: err });
    }
    throw err;
  }
  if (i32[Header.PAUSED] !== 0) return SendResult.wait;
  if (h.suspendedSeen && !noticeResume(h) && h.discard === 'block') return SendResult.wait;
  const len = data.byteLength;
  if (len > h.maxMessageBytes) throw tooLarge(h, len);
  const need = lengthWord === CYCLE_RECORD ? RECORD_HEADER : recordBytes(len);
  const isMessage = lengthWord !== CYCLE_RECORD;
  if (!fits(h, need) || (isMessage && pendingAtMark(h))) {
    switch (h.discard) {
      case 'block':
        return SendResult.wait;
      case 'reject':
        h.f64[Header.F64_REJECTED]! += 1;
        throw new AmixError(
          ErrorCode.AMIX_ERR_QUEUE_FULL,
          `queueConditionThread ring is full (${(h.seq - h.otherSeq) | 0} pending, maxmsg ${h.maxmsg}) and the discard policy is reject`,
          { details: { pending: (h.seq - h.otherSeq) | 0, maxmsg: h.maxmsg } },
        );
      case 'dropNewest':
        if (!isMessage) return SendResult.wait;
        h.f64[Header.F64_DROPPED]! += 1;
        emit(h, { type: 'dropped', policy: 'dropNewest', count: 1 });
        return SendResult.sent;
      case 'dropOldest':
        while (!fits(h, need) || (isMessage && pendingAtMark(h))) {
          if (!dropOldestRecord(h)) return SendResult.wait;
        }
        break;
    }
  }
  if (isMessage) {
    // Counted before the record is published, so the receiver never sees a
    // message its sender has not counted yet.
    h.seq = (h.seq + 1) | 0;
    i32[Header.WSEQ] = h.seq;
    h.f64[Header.F64_SENT]! += 1;
    h.f64[Header.F64_BYTES_SENT]! += len;
  }
  writeRecord(h, data, len, need, lengthWord);
  commitHead(h);
  if (isMessage && h.maxmsg !== NO_MAXMSG) checkSuspend(h);
  return SendResult.sent;
}

// ---------------------------------------------------------------------------
// Consumer

/**
 * One attempt to receive: the next message, or undefined when the ring is
 * empty. Cycle records are consumed on the way and counted. Throws
 * `AMIX_ERR_BUFFER_TOO_SMALL` (message left queued).
 */
function attemptReceive(h: ThreadHandle, maxBytes: number): Uint8Array | undefined {
  const { i32, mask } = h;
  const shared = h.discard === 'dropOldest';
  for (;;) {
    const tail = shared ? Atomics.load(i32, Header.TAIL) : h.pos;
    // Signed distance, not equality: with dropOldest the producer may have
    // moved `tail` past our cached head.
    if (((h.otherPos - tail) | 0) <= 0) {
      h.otherPos = Atomics.load(i32, Header.HEAD);
      if (((h.otherPos - tail) | 0) <= 0) return undefined;
    }
    const at = tail & mask;
    const len = i32[h.dataI32 + (at >> 2)]!;
    if (len === CYCLE_RECORD) {
      if (!release(h, tail, RECORD_HEADER, false)) continue;
      h.f64[Header.F64_CYCLES]! += 1;
      continue;
    }
    if (len < 0 || len > h.maxMessageBytes) {
      // A producer's dropOldest can overwrite the record under us: only a
      // length read while `tail` still points at it is meaningful.
      if (shared && Atomics.load(i32, Header.TAIL) !== tail) continue;
      throw new AmixError(
        ErrorCode.AMIX_ERR_INTERNAL,
        `queueConditionThread ring is corrupt: record length ${len} at ${at}`,
      );
    }
    if (len > maxBytes) {
      if (shared && Atomics.load(i32, Header.TAIL) !== tail) continue;
      throw new AmixError(
        ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL,
        `next message is ${len} bytes, the receiver accepts at most ${maxBytes}; it stays queued`,
        { details: { size: len, maxBytes } },
      );
    }
    const out = copyOut(h, at, len);
    if (!release(h, tail, recordBytes(len), true)) continue;
    h.f64[Header.F64_RECEIVED]! += 1;
    h.f64[Header.F64_BYTES_RECEIVED]! += len;
    return out;
  }
}

/** Copy the payload of the record at ring offset `at` out of the ring. */
function copyOut(h: ThreadHandle, at: number, len: number): Uint8Array {
  const mask = h.mask;
  const start = (at + RECORD_HEADER) & mask;
  const base = Header.BYTE_DATA;
  const contiguous = start + len <= h.capacity;
  let out: Uint8Array;
  if (len <= SLAB_MIN_MESSAGE && contiguous) {
    // slice() allocates and copies in one step; small typed arrays live on the JS heap.
    out = h.u8.slice(base + start, base + start + len);
  } else {
    // A fresh ArrayBuffer per message costs more than copying a few KiB:
    // larger messages are carved out of a slab (as Buffer's pool does).
    let target: Buffer;
    let off: number;
    if (len <= SLAB_MAX_MESSAGE) {
      if (h.slab === null || h.slabOff + len > SLAB_BYTES) {
        h.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        h.slabOff = 0;
      }
      target = h.slab;
      off = h.slabOff;
      h.slabOff = (off + len + 7) & ~7;
    } else {
      target = Buffer.allocUnsafeSlow(len);
      off = 0;
    }
    if (contiguous) {
      h.buf.copy(target, off, base + start, base + start + len);
    } else {
      const first = h.capacity - start;
      h.buf.copy(target, off, base + start, base + h.capacity);
      h.buf.copy(target, off + first, base, base + len - first);
    }
    out = new Uint8Array(target.buffer, target.byteOffset + off, len);
  }
  return out;
}

/** Give `need` bytes at `tail` back to the producer. False when a producer's dropOldest took the record first. */
function release(h: ThreadHandle, tail: number, need: number, isMessage: boolean): boolean {
  const { i32 } = h;
  const next = (tail + need) | 0;
  if (h.discard === 'dropOldest') {
    if (Atomics.compareExchange(i32, Header.TAIL, tail, next) !== tail) return false;
    if (isMessage) Atomics.add(i32, Header.RSEQ, 1);
    h.pos = next;
    afterRelease(h);
    return true;
  }
  commitTail(h, next, isMessage ? 1 : 0);
  return true;
}

/** Single-consumer release (not dropOldest): hand every byte up to `next` back, `messages` of them messages. */
function commitTail(h: ThreadHandle, next: number, messages: number): void {
  const { i32 } = h;
  if (messages > 0) {
    h.seq = (h.seq + messages) | 0;
    i32[Header.RSEQ] = h.seq;
  }
  // Seq-cst: publishes RSEQ too, and orders the loads in afterRelease after it.
  Atomics.store(i32, Header.TAIL, next);
  h.pos = next;
  afterRelease(h);
}

/** After `tail` moved: lift the watermark suspension at minmsg, and wake a parked sender. */
function afterRelease(h: ThreadHandle): void {
  const { i32 } = h;
  // Plain reads after the fence of the TAIL store, as in commitHead().
  if (i32[Header.SUSPENDED] !== 0) {
    const pending = (Atomics.load(i32, Header.WSEQ) - Atomics.load(i32, Header.RSEQ)) | 0;
    if (pending <= h.minmsg && Atomics.compareExchange(i32, Header.SUSPENDED, 1, 0) === 1) {
      emit(h, { type: 'resumed', pending });
      wake(i32, Header.TX_WAKE);
      return;
    }
  }
  if (i32[Header.TX_WAITING] !== 0) wake(i32, Header.TX_WAKE);
}

// ---------------------------------------------------------------------------
// Waiting

/** True when a receive would find a record now. */
function canReceive(h: ThreadHandle): boolean {
  const tail = h.discard === 'dropOldest' ? Atomics.load(h.i32, Header.TAIL) : h.pos;
  return Atomics.load(h.i32, Header.HEAD) !== tail;
}

/** True when a blocked send may go ahead now (or must fail: closed). */
function canSend(h: ThreadHandle, need: number, isMessage: boolean): boolean {
  const { i32 } = h;
  if (Atomics.load(i32, Header.CLOSED) !== 0) return true;
  if (Atomics.load(i32, Header.PAUSED) !== 0) return false;
  if (h.suspendedSeen && Atomics.load(i32, Header.SUSPENDED) !== 0 && h.discard === 'block') return false;
  return fits(h, need) && !(isMessage && pendingAtMark(h));
}

/**
 * Wait, by the end's idle strategy, until `ready()` may have become true
 * (the caller re-checks). `rx` picks the receiver's wake word and waiting
 * counter, otherwise the sender's.
 */
async function park(
  h: ThreadHandle,
  rx: boolean,
  ready: () => boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const idle = h.idle;
  if (idle === 'spin' || idle === 'spinThenBlock') {
    const limit = idle === 'spin' ? SPIN_CHUNK : SPIN_BOUND;
    for (let i = 0; i < limit; i++) if (ready()) return;
    if (idle === 'spin') {
      await immediate();
      return;
    }
  } else if (idle === 'yield') {
    await immediate();
    return;
  }
  const { i32 } = h;
  const wakeWord = rx ? Header.RX_WAKE : Header.TX_WAKE;
  const waitingWord = rx ? Header.RX_WAITING : Header.TX_WAITING;
  const seen = Atomics.load(i32, wakeWord);
  // Announce first, then re-check: pairs with the other side's publish-then-
  // check-flag, so a wake-up cannot fall between our check and our sleep.
  Atomics.add(i32, waitingWord, 1);
  try {
    if (ready()) return;
    if (isMainThread) {
      const r = waitAsync(i32, wakeWord, seen);
      if (!r.async) return;
      if (!signal) {
        await r.value;
        return;
      }
      if (signal.aborted) return;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          // Release the abandoned waitAsync now rather than at the next wake-up.
          wake(i32, wakeWord);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        void r.value.then(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    } else {
      // A worker may sleep, but in slices, so that its own timers, aborts
      // and a destroy of this end still get a turn of the event loop.
      if (Atomics.wait(i32, wakeWord, seen, BLOCK_SLICE_MS) === 'timed-out') await immediate();
    }
  } finally {
    Atomics.sub(i32, waitingWord, 1);
  }
}

/** Run `op` after the async operations already queued on this end, so they complete in call order. */
function enqueue<T>(h: ThreadHandle, op: () => Promise<T>): Promise<T> {
  h.queued++;
  const prev = h.queue;
  const run = prev ? prev.then(op, op) : op();
  const settled = run
    .then(
      () => undefined,
      () => undefined,
    )
    .then(() => {
      if (--h.queued === 0) h.queue = null;
    });
  h.queue = settled;
  return run;
}

function abortIfNeeded(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

// ---------------------------------------------------------------------------
// The primitive

/** Characteristics of queueConditionThread (the registry's built-in entry carries the same). */
export const characteristics: PrimitiveCharacteristics = Object.freeze({
  scopes: Object.freeze(['thread'] as const),
  maxMessageBytes: 16 * 1024 * 1024,
  ordering: 'fifo',
  delivery: 'reliable',
});

function assertSab(address: unknown): SharedArrayBuffer {
  const sab = (address as { sab?: unknown } | null)?.sab;
  if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < Header.BYTE_DATA + MIN_CAPACITY) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      'options.address must be a queueConditionThread address ({ sab: SharedArrayBuffer }) from the receiving end',
      { details: { option: 'address' } },
    );
  }
  const i32 = new Int32Array(sab);
  if (Atomics.load(i32, Header.MAGIC) !== RING_MAGIC || i32[Header.VERSION] !== LAYOUT_VERSION) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `options.address is not a queueConditionThread ring of layout version ${LAYOUT_VERSION}`,
      { details: { option: 'address' } },
    );
  }
  return sab;
}

/**
 * Method: `trySendMany(handle, messages)`. Optional batching fast path:
 * sends messages from the start of `messages` while each is accepted
 * without waiting, publishing the run with one store (one cache-line
 * hand-off for the batch), and returns how many were accepted (dropped by
 * policy counts as accepted, as with `trySend`). Throws like `trySend`;
 * messages before the one that threw were sent.
 */
function trySendMany(h: ThreadHandle, messages: readonly Uint8Array[]): number {
  if (h.queued > 0 || messages.length === 0) return 0;
  // The first message goes through the full checks (closed, paused,
  // suspended, policy); the rest of the run only needs room below the mark.
  if (attemptSend(h, messages[0]!, messages[0]!.byteLength) !== SendResult.sent) return 0;
  let n = 1;
  let written = 0;
  try {
    for (; n < messages.length; n++) {
      const data = messages[n]!;
      const len = data.byteLength;
      if (len > h.maxMessageBytes) throw tooLarge(h, len);
      const need = recordBytes(len);
      if (h.suspendedSeen || !fits(h, need) || pendingAtMark(h)) {
        if (written > 0) {
          commitHead(h);
          written = 0;
        }
        if (attemptSend(h, data, len) !== SendResult.sent) break;
        continue;
      }
      h.seq = (h.seq + 1) | 0;
      h.i32[Header.WSEQ] = h.seq;
      h.f64[Header.F64_SENT]! += 1;
      h.f64[Header.F64_BYTES_SENT]! += len;
      writeRecord(h, data, len, need, len);
      written++;
    }
  } finally {
    if (written > 0) {
      commitHead(h);
      if (h.maxmsg !== NO_MAXMSG) checkSuspend(h);
    }
  }
  return n;
}

/**
 * Method: `tryReceiveMany(handle, maxBytes, maxCount)`. Optional batching
 * fast path: up to `maxCount` messages ready now (possibly none), in order,
 * their space handed back to the sender with one store. A message over
 * `maxBytes` ends the batch (it stays queued); first in the batch, it
 * throws `AMIX_ERR_BUFFER_TOO_SMALL`.
 */
function tryReceiveMany(h: ThreadHandle, maxBytes: number, maxCount: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (h.queued > 0) return out;
  if (h.destroyed) throw closedError(h);
  if (h.discard === 'dropOldest') {
    // Each record must be claimed by compare-exchange: no batching of the release.
    while (out.length < maxCount) {
      const m = attemptReceive(h, maxBytes);
      if (m === undefined) break;
      out.push(m);
    }
    return out;
  }
  const { i32, mask, f64 } = h;
  let tail = h.pos;
  let bytes = 0;
  let cycles = 0;
  while (out.length < maxCount) {
    if (((h.otherPos - tail) | 0) <= 0) {
      h.otherPos = Atomics.load(i32, Header.HEAD);
      if (((h.otherPos - tail) | 0) <= 0) break;
    }
    const at = tail & mask;
    const len = i32[h.dataI32 + (at >> 2)]!;
    if (len === CYCLE_RECORD) {
      tail = (tail + RECORD_HEADER) | 0;
      cycles++;
      continue;
    }
    if (len < 0 || len > h.maxMessageBytes || len > maxBytes) {
      if (out.length > 0 || cycles > 0) break;
      // Nothing taken yet: the single-message path raises the right error.
      const m = attemptReceive(h, maxBytes);
      if (m !== undefined) out.push(m);
      break;
    }
    out.push(copyOut(h, at, len));
    bytes += len;
    tail = (tail + recordBytes(len)) | 0;
  }
  if (tail !== h.pos) {
    f64[Header.F64_RECEIVED]! += out.length;
    f64[Header.F64_BYTES_RECEIVED]! += bytes;
    f64[Header.F64_CYCLES]! += cycles;
    commitTail(h, tail, out.length);
  }
  return out;
}

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
        { details: { max: 1 } },
      );
    }
    return makeHandle(sab, 'send', options);
  },

  /**
   * Receiving end: close the ring (flag + reason in the header) and wake
   * every waiter on both ends; theirs reject with `AMIX_ERR_LINK_CLOSED`
   * naming the reason. Sending end: detach (another sender may attach) and
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
        if (h.destroyed) throw closedError(h);
        const m = attemptReceive(h, maxBytes);
        if (m !== undefined) return m;
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
    return attemptSend(h, data, data.byteLength) === SendResult.sent;
  },

  /** The next message if one is ready now, else undefined. */
  tryReceive(h: ThreadHandle, maxBytes: number): Uint8Array | undefined {
    if (h.queued > 0) return undefined;
    if (h.destroyed) throw closedError(h);
    return attemptReceive(h, maxBytes);
  },

  trySendMany,
  tryReceiveMany,
} satisfies Primitive<ThreadHandle> & {
  trySendMany: typeof trySendMany;
  tryReceiveMany: typeof tryReceiveMany;
};

const EMPTY = new Uint8Array(0);

async function sendRecord(
  h: ThreadHandle,
  data: Uint8Array,
  lengthWord: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  abortIfNeeded(signal, 'send');
  if (h.queued === 0 && attemptSend(h, data, lengthWord) === SendResult.sent) return;
  // The caller may reuse its buffer once send resolves, so until then we
  // still read from `data` itself: nothing is copied but into the ring.
  return enqueue(h, async () => {
    for (;;) {
      abortIfNeeded(signal, 'send');
      if (attemptSend(h, data, lengthWord) === SendResult.sent) return;
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
