/**
 * The bare mechanism under `queueConditionThread`, with no fabric: a
 * single-producer single-consumer ring in a `SharedArrayBuffer` between two
 * threads, for the `raw:sab-ring` and `raw:sab-ring-batch` rows of
 * `bench thread`. Nothing here is part of amix; it is the yardstick the
 * primitive is measured against.
 *
 * Layout: a 128-byte header of two `Int32` positions, each on its own cache
 * line (`W`: bytes written, owned by the producer; `R`: bytes read, owned by
 * the consumer), plus a "waiting" flag per side, then a power-of-two data
 * area. A record is a 4-byte length followed by the payload, padded to 4
 * bytes, so a length never straddles the end of the area; a payload that
 * does is copied in two pieces. Positions are wrap-safe 32-bit counters
 * (`(w - r) | 0` is the fill). Each side caches the other's position and
 * reloads it only when the cached value says empty (or full), as any SPSC
 * ring does.
 *
 * Idle: spin up to {@link SPIN} polls (or as set per end; `Infinity` spins
 * only, as the round trip does), then `Atomics.wait` on the other
 * side's position after raising its own waiting flag; the other side
 * notifies only when it sees that flag after publishing (all `Atomics` are
 * sequentially consistent, so either the publisher sees the flag or the
 * waiter sees the new position and `wait` returns at once).
 *
 * @module
 */

/** Header slots (Int32 indices), a cache line (64 bytes) apart. */
const W = 0;
const R = 16;
const CONSUMER_WAITING = 1;
const PRODUCER_WAITING = 17;
const HEADER_BYTES = 128;

/**
 * Polls before a side sleeps in `Atomics.wait` (tens of microseconds): the
 * same bound as `queueConditionThread`'s `spinThenBlock`. Longer spins lose
 * on 2 shared cores: the spinner takes the CPU from the thread it waits for
 * (the batched ring at 4 KiB ran at ~0.25M msg/s with 20,000 polls, ~0.5M
 * with 4,000).
 */
export const SPIN = 4_000;

/** Default data area: 1 MiB, the same as `queueConditionThread`'s default `capacityBytes`. */
export const RAW_RING_BYTES = 1 << 20;

/** A data area for messages of `size` bytes: {@link RAW_RING_BYTES}, or the power of two that holds four such records. */
export function ringBytesFor(size: number): number {
  let cap = RAW_RING_BYTES;
  while (cap < 4 * (size + 8)) cap *= 2;
  return cap;
}

/** Allocate a ring with a data area of `capacity` bytes (a power of two). */
export function rawRing(capacity = RAW_RING_BYTES): SharedArrayBuffer {
  if (capacity & (capacity - 1)) throw new Error('rawRing: capacity must be a power of two');
  return new SharedArrayBuffer(HEADER_BYTES + capacity);
}

function pad(n: number): number {
  return (n + 3) & ~3;
}

/** Shared views of one ring, for either end. */
class Ring {
  /** Polls before sleeping; `Infinity`: spin only, never sleep. */
  protected readonly spin: number;
  protected readonly hdr: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly lens: Int32Array;
  protected readonly mask: number;
  protected readonly cap: number;
  constructor(sab: SharedArrayBuffer, spin: number) {
    this.spin = spin;
    this.hdr = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.cap = sab.byteLength - HEADER_BYTES;
    this.mask = this.cap - 1;
    this.data = new Uint8Array(sab, HEADER_BYTES, this.cap);
    this.lens = new Int32Array(sab, HEADER_BYTES, this.cap / 4);
  }
}

/** The producing end. `write` publishes each record; `stage` + `publish` publish a batch at once. */
export class RawProducer extends Ring {
  #w: number;
  /** The consumer's position as last seen. */
  #r: number;
  constructor(sab: SharedArrayBuffer, spin = SPIN) {
    super(sab, spin);
    this.#w = Atomics.load(this.hdr, W);
    this.#r = Atomics.load(this.hdr, R);
  }

  /** Wait (spin, then sleep) until `need` bytes are free. */
  #room(need: number): void {
    if (need > this.cap) throw new Error(`rawRing: a ${need}-byte record does not fit a ${this.cap}-byte ring`);
    if (this.cap - ((this.#w - this.#r) | 0) >= need) return;
    // Staged records first: a consumer waiting for them is what frees the space.
    this.publish();
    for (let i = 0; ; i++) {
      this.#r = Atomics.load(this.hdr, R);
      if (this.cap - ((this.#w - this.#r) | 0) >= need) return;
      if (i >= this.spin) {
        Atomics.store(this.hdr, PRODUCER_WAITING, 1);
        Atomics.wait(this.hdr, R, this.#r);
        Atomics.store(this.hdr, PRODUCER_WAITING, 0);
      }
    }
  }

  /** Copy one record into the ring without publishing it. */
  stage(msg: Uint8Array): void {
    const rec = 4 + pad(msg.length);
    this.#room(rec);
    const off = this.#w & this.mask;
    this.lens[off >> 2] = msg.length;
    const at = (off + 4) & this.mask;
    const first = Math.min(msg.length, this.cap - at);
    this.data.set(first === msg.length ? msg : msg.subarray(0, first), at);
    if (first < msg.length) this.data.set(msg.subarray(first), 0);
    this.#w = (this.#w + rec) | 0;
  }

  /** Make every staged record visible to the consumer, and wake it if it sleeps. */
  publish(): void {
    Atomics.store(this.hdr, W, this.#w);
    if (Atomics.load(this.hdr, CONSUMER_WAITING)) Atomics.notify(this.hdr, W);
  }

  /** One record, published at once (the per-message ring). */
  write(msg: Uint8Array): void {
    this.stage(msg);
    this.publish();
  }
}

/** The consuming end. */
export class RawConsumer extends Ring {
  #r: number;
  /** The producer's position as last seen. */
  #w: number;
  constructor(sab: SharedArrayBuffer, spin = SPIN) {
    super(sab, spin);
    this.#r = Atomics.load(this.hdr, R);
    this.#w = Atomics.load(this.hdr, W);
  }

  /** Wait (spin, then sleep) until at least one record is published. */
  #some(): void {
    if (this.#w !== this.#r) return;
    for (let i = 0; ; i++) {
      this.#w = Atomics.load(this.hdr, W);
      if (this.#w !== this.#r) return;
      if (i >= this.spin) {
        Atomics.store(this.hdr, CONSUMER_WAITING, 1);
        Atomics.wait(this.hdr, W, this.#r);
        Atomics.store(this.hdr, CONSUMER_WAITING, 0);
      }
    }
  }

  #release(): void {
    Atomics.store(this.hdr, R, this.#r);
    if (Atomics.load(this.hdr, PRODUCER_WAITING)) Atomics.notify(this.hdr, R);
  }

  /** Take one record as a fresh `Uint8Array` (the copy-out), releasing its space at once. */
  read(): Uint8Array {
    this.#some();
    const off = this.#r & this.mask;
    const len = this.lens[off >> 2]!;
    const at = (off + 4) & this.mask;
    let out: Uint8Array;
    if (at + len <= this.cap) {
      // One call allocates and copies (slice of a shared view gives an unshared copy).
      out = this.data.slice(at, at + len);
    } else {
      out = new Uint8Array(len);
      const first = this.cap - at;
      out.set(this.data.subarray(at));
      out.set(this.data.subarray(0, len - first), first);
    }
    this.#r = (this.#r + 4 + pad(len)) | 0;
    this.#release();
    return out;
  }

  /**
   * Take every published record without copying it (waiting for at least
   * one): returns how many and adds their payload bytes to `sum[0]`. Space
   * is released once for the whole run.
   */
  drain(sum: number[]): number {
    this.#some();
    let n = 0;
    let bytes = 0;
    while (this.#r !== this.#w) {
      const len = this.lens[(this.#r & this.mask) >> 2]!;
      bytes += len;
      n++;
      this.#r = (this.#r + 4 + pad(len)) | 0;
    }
    sum[0]! += bytes;
    this.#release();
    return n;
  }
}

/** Producer side of the batched ring: the write index published every `every` messages (and after the last). */
export function produceBatched(p: RawProducer, msg: Uint8Array, count: number, every = 16): void {
  for (let i = 1; i <= count; i++) {
    p.stage(msg);
    if (i % every === 0 || i === count) p.publish();
  }
}
