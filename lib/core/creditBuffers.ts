/**
 * The two buffers of the credit engine (`credit.ts`): the sending end's
 * {@link ResendRing} of frames kept until acknowledged, and the receiving
 * end's {@link MessageQueue} of messages with the session each came from.
 * Both are parallel arrays in a power-of-two ring that doubles when full,
 * so the per-message path allocates nothing.
 *
 * @module
 */

/**
 * The frames of accepted, unacknowledged messages, oldest first: each entry
 * is a range of a buffer (`buf` from `off`; the primitive knows the frame's
 * length) holding messages `[first, end)`. Parallel arrays in a ring that
 * doubles when full: no object per entry on the hot path.
 */
export class ResendRing {
  #bufs: Array<Uint8Array | undefined> = new Array(1024);
  #offs = new Int32Array(1024);
  #firsts = new Float64Array(1024);
  #ends = new Float64Array(1024);
  #mask = 1023;
  #head = 0;
  #tail = 0;

  /** Entries held. */
  get length(): number {
    return this.#tail - this.#head;
  }

  /** Keep the frame at `buf[off..]` holding messages `[first, end)`. */
  push(buf: Uint8Array, off: number, first: number, end: number): void {
    if (this.#tail - this.#head > this.#mask) this.#grow();
    const i = this.#tail++ & this.#mask;
    this.#bufs[i] = buf;
    this.#offs[i] = off;
    this.#firsts[i] = first;
    this.#ends[i] = end;
  }

  /** Forget the entries whose messages are all below `acked`. */
  release(acked: number): void {
    while (this.#head < this.#tail && this.#ends[this.#head & this.#mask]! <= acked) {
      this.#bufs[this.#head++ & this.#mask] = undefined;
    }
  }

  /** The buffer of entry `i` (0: the oldest held). */
  buf(i: number): Uint8Array {
    return this.#bufs[(this.#head + i) & this.#mask]!;
  }

  /** The offset in {@link buf} of entry `i`. */
  off(i: number): number {
    return this.#offs[(this.#head + i) & this.#mask]!;
  }

  /** The first message number of entry `i`. */
  first(i: number): number {
    return this.#firsts[(this.#head + i) & this.#mask]!;
  }

  /** One past the last message number of entry `i`. */
  end(i: number): number {
    return this.#ends[(this.#head + i) & this.#mask]!;
  }

  #grow(): void {
    const n = (this.#mask + 1) * 2;
    const bufs = new Array<Uint8Array | undefined>(n);
    const offs = new Int32Array(n);
    const firsts = new Float64Array(n);
    const ends = new Float64Array(n);
    for (let s = this.#head, j = 0; s < this.#tail; s++, j++) {
      const k = s & this.#mask;
      bufs[j] = this.#bufs[k];
      offs[j] = this.#offs[k]!;
      firsts[j] = this.#firsts[k]!;
      ends[j] = this.#ends[k]!;
    }
    this.#tail -= this.#head;
    this.#head = 0;
    this.#bufs = bufs;
    this.#offs = offs;
    this.#firsts = firsts;
    this.#ends = ends;
    this.#mask = n - 1;
  }
}

/** A FIFO of received messages with the session each came from (parallel arrays: no object per message). */
export class MessageQueue<S> {
  #msgs: Array<Uint8Array | undefined> = new Array(1024);
  #from: Array<S | undefined> = new Array(1024);
  #mask = 1023;
  #head = 0;
  #tail = 0;

  /** Messages queued. */
  get length(): number {
    return this.#tail - this.#head;
  }

  /** Queue `m`, received from `s`. */
  push(m: Uint8Array, s: S): void {
    if (this.#tail - this.#head > this.#mask) this.#grow();
    const i = this.#tail++ & this.#mask;
    this.#msgs[i] = m;
    this.#from[i] = s;
  }

  /** The oldest message, not taken. */
  peek(): Uint8Array | undefined {
    return this.#msgs[this.#head & this.#mask];
  }

  /** The session of the oldest message (only when there is one). */
  peekFrom(): S {
    return this.#from[this.#head & this.#mask]!;
  }

  /** Drop the oldest message. */
  shift(): void {
    const i = this.#head++ & this.#mask;
    this.#msgs[i] = undefined;
    this.#from[i] = undefined;
  }

  /** Drop everything. */
  clear(): void {
    while (this.length > 0) this.shift();
  }

  #grow(): void {
    const n = (this.#mask + 1) * 2;
    const msgs = new Array<Uint8Array | undefined>(n);
    const from = new Array<S | undefined>(n);
    for (let s = this.#head, j = 0; s < this.#tail; s++, j++) {
      msgs[j] = this.#msgs[s & this.#mask];
      from[j] = this.#from[s & this.#mask];
    }
    this.#tail -= this.#head;
    this.#head = 0;
    this.#msgs = msgs;
    this.#from = from;
    this.#mask = n - 1;
  }
}
