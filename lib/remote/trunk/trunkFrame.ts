/**
 * The trunk link's frames (seed 002 ¶363, "Thread Trunk Link"): what two
 * trunk points send each other over ZeroMQ. One trunk frame is one message
 * of the `zeromq` primitive; a BATCH packs the switch frames read in one
 * round (data, sequenced data, acknowledgements, routes), a HELLO tells the
 * far point where this point's receiving end is. See docs/switching.md.
 *
 * ```
 * BATCH  0xB1 | n u16 | n × (len u32 | switch frame)
 * HELLO  0xB2 | UTF-8 JSON { "endpoint": string }
 * ```
 *
 * @module
 */
import { badFrameError, type AmixError } from '../../core/errors.js';

/** The first byte of a batch of switch frames. */
export const TRUNK_BATCH = 0xb1;
/** The first byte of a hello. */
export const TRUNK_HELLO = 0xb2;
/** Switch frames in one batch at most (the count is a u16). */
export const TRUNK_MAX_FRAMES = 0xffff;

/** Writes switch frames into one reusable buffer and hands out batches. */
export class BatchWriter {
  #buf: Buffer;
  #len = 3;
  #n = 0;

  constructor(readonly batchBytes: number) {
    this.#buf = Buffer.allocUnsafe(batchBytes);
  }

  /** Frames in the batch being built. */
  get count(): number {
    return this.#n;
  }

  /** True if `f` fits in the batch being built (an empty batch takes any frame: it grows for it). */
  fits(f: Uint8Array): boolean {
    return this.#n === 0 || (this.#len + 4 + f.length <= this.batchBytes && this.#n < TRUNK_MAX_FRAMES);
  }

  /** Copy `f` in (it may be a view that the next receive overwrites). */
  add(f: Uint8Array): void {
    const need = this.#len + 4 + f.length;
    if (need > this.#buf.length) {
      const b = Buffer.allocUnsafe(need);
      this.#buf.copy(b, 0, 0, this.#len);
      this.#buf = b;
    }
    this.#buf.writeUInt32BE(f.length, this.#len);
    this.#buf.set(f, this.#len + 4);
    this.#len = need;
    this.#n++;
  }

  /** The batch built so far, a view valid until the next {@link add} (senders copy), and start a new one. */
  take(): Uint8Array {
    this.#buf[0] = TRUNK_BATCH;
    this.#buf.writeUInt16BE(this.#n, 1);
    const out = this.#buf.subarray(0, this.#len);
    this.#len = 3;
    this.#n = 0;
    // A buffer grown for one large frame goes back to the usual size.
    if (this.#buf.length > this.batchBytes * 2) this.#buf = Buffer.allocUnsafe(this.batchBytes);
    return out;
  }
}

/** A hello frame. */
export function encodeHello(endpoint: string): Uint8Array {
  const body = Buffer.from(JSON.stringify({ endpoint }));
  const out = Buffer.allocUnsafe(1 + body.length);
  out[0] = TRUNK_HELLO;
  body.copy(out, 1);
  return out;
}

/** A decoded trunk frame; switch frames are views of the message. */
export type TrunkFrame = { kind: 'batch'; frames: Uint8Array[] } | { kind: 'hello'; endpoint: string };

/** Decode one trunk frame; `AMIX_ERR_BAD_FRAME` (returned, not thrown) for a malformed one, which is dropped whole. */
export function decodeTrunkFrame(m: Uint8Array): TrunkFrame | AmixError {
  if (m.length >= 3 && m[0] === TRUNK_BATCH) {
    const n = (m[1]! << 8) | m[2]!;
    const frames: Uint8Array[] = [];
    const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
    let o = 3;
    for (let i = 0; i < n; i++) {
      if (o + 4 > m.length) return badFrameError(`trunk batch cut short at frame ${i} of ${n}`);
      const len = dv.getUint32(o);
      if (len === 0 || o + 4 + len > m.length) return badFrameError(`trunk batch frame ${i} has a bad length ${len}`);
      frames.push(m.subarray(o + 4, o + 4 + len));
      o += 4 + len;
    }
    if (o !== m.length) return badFrameError(`trunk batch has ${m.length - o} bytes after its ${n} frames`);
    return { kind: 'batch', frames };
  }
  if (m.length >= 1 && m[0] === TRUNK_HELLO && m.length <= 4096) {
    try {
      const h = JSON.parse(Buffer.from(m.buffer, m.byteOffset + 1, m.length - 1).toString('utf8')) as {
        endpoint?: unknown;
      };
      if (typeof h?.endpoint === 'string' && /^tcp:\/\/[^\s]{1,250}:\d{1,5}$/.test(h.endpoint))
        return { kind: 'hello', endpoint: h.endpoint };
    } catch {
      // falls through to the error below
    }
    return badFrameError('trunk hello is not { "endpoint": "tcp://host:port" }');
  }
  return badFrameError(`not a trunk frame (first byte ${m[0] ?? 'none'})`);
}
