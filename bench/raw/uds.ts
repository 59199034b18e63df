/**
 * The bare mechanism under `queueConditionProcess`, with no fabric: frames
 * (a 4-byte little-endian length, then the payload) over a raw Node `net`
 * Unix socket, for the `raw:uds-batched` row of `bench process`. Nothing
 * here is part of amix; it is the yardstick the primitive is measured
 * against.
 *
 * - {@link TickWriter}: the sender packs every frame pushed during one
 *   event-loop turn into one slab and writes it with one `write` per turn
 *   (flushed from `setImmediate`); slabs are reused once the socket has
 *   written them.
 * - {@link FrameParser}: the receiver parses frames in place from the
 *   chunks the socket delivers (a header split across two chunks is the only
 *   thing it assembles), counting frames and payload bytes without copying.
 *
 * @module
 */
import type { Socket } from 'node:net';

/** A slab's size: at 64 B a write carries about 960 frames. */
export const SLAB_BYTES = 64 * 1024;

/** One `write` per event-loop turn of every frame pushed during it. */
export class TickWriter {
  readonly #socket: Socket;
  readonly #slabBytes: number;
  #slab: Buffer;
  #off = 0;
  #scheduled = false;
  #backedUp = false;
  #waiters: Array<() => void> = [];
  readonly #free: Buffer[] = [];

  constructor(socket: Socket, slabBytes = SLAB_BYTES) {
    this.#socket = socket;
    this.#slabBytes = slabBytes;
    this.#slab = Buffer.allocUnsafeSlow(slabBytes);
    socket.on('drain', () => {
      this.#backedUp = false;
      this.#wake();
    });
  }

  /** Append one frame to this turn's slab; false when the slab is full and the caller should await {@link written}. */
  push(msg: Uint8Array): boolean {
    const need = 4 + msg.length;
    if (this.#off + need > this.#slab.length) {
      // Rare (a frame larger than what is left): grow rather than write twice in one turn.
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.#slab.length * 2, this.#off + need));
      this.#slab.copy(bigger, 0, 0, this.#off);
      this.#slab = bigger;
    }
    this.#slab.writeUInt32LE(msg.length, this.#off);
    this.#slab.set(msg, this.#off + 4);
    this.#off += need;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
    return this.#off + need <= this.#slabBytes;
  }

  /** Resolves once everything pushed so far has been written and the socket is not backed up. */
  written(): Promise<void> {
    if (!this.#scheduled && !this.#backedUp) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #flush = (): void => {
    this.#scheduled = false;
    const out = this.#slab.subarray(0, this.#off);
    const slab = this.#slab;
    this.#slab = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#slabBytes);
    this.#off = 0;
    // The socket holds `out` until it is written; only then may the slab be filled again.
    const ok = this.#socket.write(out, () => {
      if (slab.length === this.#slabBytes) this.#free.push(slab);
    });
    if (!ok) this.#backedUp = true;
    this.#wake();
  };

  #wake(): void {
    if (this.#scheduled || this.#backedUp) return;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/** Parses frames in place from socket chunks and reports each frame's payload length. */
export class FrameParser {
  readonly #onFrame: (len: number) => void;
  /** Payload bytes of the current frame still to come, and its length. */
  #rest = 0;
  #len = 0;
  /** A header split across chunks: its bytes so far. */
  readonly #hdr = Buffer.alloc(4);
  #hdrHave = 0;
  /** Whole frames so far. */
  frames = 0;
  /** Payload bytes of the whole frames so far. */
  bytes = 0;

  constructor(onFrame: (len: number) => void = () => {}) {
    this.#onFrame = onFrame;
  }

  #done(len: number): void {
    this.frames++;
    this.bytes += len;
    this.#onFrame(len);
  }

  /** Feed one chunk; frames completed in it are counted and reported. */
  push(c: Buffer): void {
    let off = 0;
    while (off < c.length) {
      if (this.#rest > 0) {
        const take = Math.min(this.#rest, c.length - off);
        off += take;
        this.#rest -= take;
        if (this.#rest === 0) this.#done(this.#len);
        continue;
      }
      let len: number;
      if (this.#hdrHave === 0 && off + 4 <= c.length) {
        len = c.readUInt32LE(off);
        off += 4;
      } else {
        while (this.#hdrHave < 4 && off < c.length) this.#hdr[this.#hdrHave++] = c[off++]!;
        if (this.#hdrHave < 4) return;
        this.#hdrHave = 0;
        len = this.#hdr.readUInt32LE(0);
      }
      if (off + len <= c.length) {
        // The common case: the whole payload is in this chunk, read in place.
        off += len;
        this.#done(len);
      } else {
        this.#len = len;
        this.#rest = len - (c.length - off);
        off = c.length;
      }
    }
  }
}
