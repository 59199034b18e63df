/**
 * The shared-memory layout of a queueConditionThread ring: the header's
 * offsets, the record format's constants, and allocating and checking a
 * ring. Every offset is named here and nowhere else.
 *
 * The other modules of the primitive re-bind what they use from here (and
 * from each other) as their own constants, `const { Header } = header`,
 * rather than using the imported bindings directly: V8 folds a module's own
 * `const` into optimised code, but loads an imported binding through its
 * module cell at every use. On the hot path that measured about 10 ns more
 * per message (trySend + tryReceive of 64 bytes, ~130 against ~117 ns).
 *
 * @module
 */
import { AmixError, ErrorCode } from '../../lib/core/errors.js';
import type { ChannelOptions, DiscardPolicy } from '../../lib/core/primitive.js';

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
export const RECORD_HEADER = 8;
/** Length word of a cycle (null) record: skipped by the receiver, counted in `F64_CYCLES`. */
export const CYCLE_RECORD = -1;
/** Default data-area size. */
export const DEFAULT_CAPACITY_BYTES = 1 << 20;
/** Smallest data area. */
export const MIN_CAPACITY = 64;
/** Largest data area (positions are 32-bit counters). */
export const MAX_CAPACITY = 1 << 30;
/** No message limit. */
export const NO_MAXMSG = 0x7fffffff;
/** Polls between event-loop yields with the `spin` strategy. */
export const SPIN_CHUNK = 100_000;
/** Polls before sleeping with `spinThenBlock`. */
export const SPIN_BOUND = 4_000;
/** Received messages up to this size are fresh `slice()`s of the ring; larger ones are views into a slab. */
export const SLAB_MIN_MESSAGE = 256;
/** Size of one receive slab. */
export const SLAB_BYTES = 256 * 1024;
/** Messages above this size get a buffer of their own. */
export const SLAB_MAX_MESSAGE = 64 * 1024;
/**
 * Coalesced publication of the write index: within one synchronous turn of
 * the sender's thread, after the first record (published at once), records
 * are published when this many are waiting, when {@link PUBLISH_BYTES} are,
 * when the sender would wait or the turn ends (a microtask), whichever
 * comes first.
 */
export const PUBLISH_EVERY = 32;
/** Bytes of unpublished records at which the write index is published (see {@link PUBLISH_EVERY}). */
export const PUBLISH_BYTES = 16 * 1024;
/**
 * Coalesced release of the read index after copying receives: stored when
 * the receiver catches up with the sender, after this many messages, after
 * {@link RELEASE_BYTES} (an eighth of the ring at most), or at once when the
 * sender waits for room or the watermark suspension is set.
 */
export const RELEASE_EVERY = 32;
/** Bytes of received records at which the read index is stored (see {@link RELEASE_EVERY}). */
export const RELEASE_BYTES = 16 * 1024;
/** Longest single `Atomics.wait` in a worker before the event loop gets a turn. */
export const BLOCK_SLICE_MS = 20;

/** The discard policies by their code in `Header.DISCARD`. */
export const DISCARD_CODES: readonly DiscardPolicy[] = ['block', 'dropNewest', 'dropOldest', 'reject'];

/** The data-area size for a requested capacity: a power of two from `MIN_CAPACITY` to `MAX_CAPACITY`. */
export function ceilPow2(n: number): number {
  let c = MIN_CAPACITY;
  while (c < n && c < MAX_CAPACITY) c *= 2;
  return c;
}

/** Allocate a ring and write its configuration words (the receiving point's options); the magic goes last. */
export function allocate(options: ChannelOptions): SharedArrayBuffer {
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

/** The ring of a sending end's `options.address`, or `AMIX_ERR_INVALID_ARG` when it is not one of this layout. */
export function assertSab(address: unknown): SharedArrayBuffer {
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
