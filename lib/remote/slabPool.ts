/**
 * Reused buffers for the envelopes an outgoing flow keeps (issue 17, memory).
 * Each batch a flow's pump wraps used to get an `ArrayBuffer` of its own (a
 * 1 MiB one for 256 messages of 4 KiB), kept until the peer reported the
 * batch taken and then left to the garbage collector; V8 collects external
 * memory late, so a busy daemon carried tens of MB of such garbage and paid a
 * mark-compact for about every 64 MB allocated. Here the batches of one flow
 * are carved from {@link SLAB_BYTES} slabs, and a slab goes back to the
 * daemon's {@link SlabPool} once nothing can read it again.
 *
 * When a slab may be written again (the safety argument): every envelope
 * carved from it has been reported taken by the peer (so the flow's `kept`
 * list, which {@link FlowSlabs.acked} is called after, holds no view of it,
 * and nothing of it will be re-sent: a re-send copies its envelopes with
 * `withBase` before it queues them), and every send that carried its
 * envelopes has settled (the data channel's `sendMany` holds the views
 * until it has handed each message on, and the zeromq primitive copies each
 * message it takes). Only the flow's own pump writes into its slabs.
 *
 * @module
 */

/** Bytes of one pooled slab: a batch of 256 messages of 4 KiB and their envelopes fits. */
export const SLAB_BYTES = 1152 * 1024;

/** Free slabs a pool keeps at most (beyond them a slab given back is left to the collector). */
export const POOL_MAX_FREE = 4;

/** @internal Counters of a {@link SlabPool}, for the peering's stats. */
export interface SlabPoolStats {
  /** Slabs allocated. */
  allocated: number;
  /** Slabs handed out again from the free list. */
  reused: number;
  /** Slabs given back when the free list was full (left to the collector). */
  dropped: number;
}

/** @internal The free slabs of one daemon's peering, shared by its flows. */
export class SlabPool {
  readonly #free: Uint8Array[] = [];
  readonly #maxFree: number;
  readonly stats: SlabPoolStats = { allocated: 0, reused: 0, dropped: 0 };

  constructor(maxFree = POOL_MAX_FREE) {
    this.#maxFree = maxFree;
  }

  /** Free slabs held now. */
  get free(): number {
    return this.#free.length;
  }

  /** A slab of {@link SLAB_BYTES}: a free one, else a new one. Its bytes are whatever was there. */
  take(): Uint8Array {
    const b = this.#free.pop();
    if (b) {
      this.stats.reused++;
      return b;
    }
    this.stats.allocated++;
    return new Uint8Array(SLAB_BYTES);
  }

  /** A slab nothing reads any more (see the module's comment for when that is). */
  give(b: Uint8Array): void {
    if (b.length !== SLAB_BYTES) return;
    if (this.#free.length < this.#maxFree) this.#free.push(b);
    else this.stats.dropped++;
  }
}

/** One slab in use by a flow. */
interface Slab {
  buf: Uint8Array;
  /** Bytes carved so far. */
  used: number;
  /** One past the last sequence number carved from it. */
  end: number;
  /** Sends carrying its envelopes that have not settled. */
  sending: number;
}

/** A region carved for one batch: write the batch into `bytes`, then call {@link FlowSlabs.settled} with `slab` when its send settles. */
export interface Carved {
  bytes: Uint8Array;
  /** Undefined for a batch too large for a slab (a buffer of its own, left to the collector). */
  slab: object | undefined;
}

/**
 * @internal The slabs of one outgoing flow: the one being carved and the full
 * ones still holding envelopes not reported taken, oldest first.
 */
export class FlowSlabs {
  readonly #pool: SlabPool;
  #cur: Slab | undefined;
  readonly #full: Slab[] = [];
  /** Every sequence number below it was reported taken. */
  #acked: number;

  constructor(pool: SlabPool, acked: number) {
    this.#pool = pool;
    this.#acked = acked;
  }

  /** A region of `bytes` bytes for the batch ending before sequence `end`; its send is counted as pending. */
  carve(bytes: number, end: number): Carved {
    if (bytes > SLAB_BYTES) return { bytes: new Uint8Array(bytes), slab: undefined };
    let s = this.#cur;
    // Everything in the current slab taken and its sends settled: write it again from the start.
    if (s && s.sending === 0 && s.end <= this.#acked) s.used = 0;
    if (s && SLAB_BYTES - s.used < bytes) {
      this.#full.push(s);
      s = undefined;
      this.#release();
    }
    if (!s) s = this.#cur = { buf: this.#pool.take(), used: 0, end: 0, sending: 0 };
    const region = s.buf.subarray(s.used, s.used + bytes);
    s.used += bytes;
    s.end = end;
    s.sending++;
    return { bytes: region, slab: s };
  }

  /** The send of a batch carved from `slab` settled (sent, or given up). */
  settled(slab: object | undefined): void {
    if (!slab) return;
    (slab as Slab).sending--;
    this.#release();
  }

  /** The peer reported every message below `taken` taken (after the flow's `kept` dropped their views). */
  acked(taken: number): void {
    if (taken > this.#acked) this.#acked = taken;
    this.#release();
  }

  /** Full slabs held (for tests). */
  get held(): number {
    return this.#full.length + (this.#cur ? 1 : 0);
  }

  /** The flow is gone: its slabs are not written again by it; those nothing reads go back to the pool. */
  close(): void {
    if (this.#cur) this.#full.push(this.#cur);
    this.#cur = undefined;
    this.#release();
    // Those still held (not taken, or a send pending) are left to the collector, never reused.
    this.#full.length = 0;
  }

  #release(): void {
    while (this.#full.length > 0) {
      const s = this.#full[0]!;
      if (s.sending > 0 || s.end > this.#acked) return;
      this.#full.shift();
      this.#pool.give(s.buf);
    }
  }
}
