/**
 * Length-prefixed framing for byte streams (Unix sockets, pipes, TCP), the
 * one decoder for every such stream in amix.
 *
 * Wire format of one frame, readable on one screen. The header layout is a
 * {@link FrameLayout}: the process primitive's ({@link PROCESS_LAYOUT}, the
 * default) is
 *
 * | offset | size | field                                        |
 * |-------:|-----:|----------------------------------------------|
 * | 0      | 4    | payload length, unsigned 32-bit little-endian |
 * | 4      | 1    | kind (what the payload means; the user's table) |
 * | 5      | n    | payload                                      |
 *
 * and the daemon's control socket ({@link CONTROL_LAYOUT}) has a 32-bit
 * big-endian length and no kind byte (every frame is kind 0).
 *
 * {@link FrameDecoder} accepts the stream in chunks split anywhere (down to
 * one byte at a time) and hands out whole frames; a frame that lies wholly
 * inside one chunk is passed as a range of that chunk, without a copy.
 * {@link FrameWriter} packs frames into a slab so that everything written in
 * one tick leaves in one `write`.
 *
 * @module
 */
import { AmixError, ErrorCode } from './errors.js';

/** Bytes before the payload of every frame of the default layout ({@link PROCESS_LAYOUT}). */
export const FRAME_HEADER_BYTES = 5;

/** How a frame header is laid out: a 32-bit length in `endian` byte order, then (if `kind`) one kind byte. */
export interface FrameLayout {
  /** A kind byte follows the length. Without it every frame is kind 0. */
  readonly kind: boolean;
  /** Byte order of the length. */
  readonly endian: 'le' | 'be';
}

/** The process primitive's layout: u32 little-endian length, u8 kind. The default. */
export const PROCESS_LAYOUT: FrameLayout = Object.freeze({ kind: true, endian: 'le' });

/** The control socket's layout: u32 big-endian length, no kind byte. */
export const CONTROL_LAYOUT: FrameLayout = Object.freeze({ kind: false, endian: 'be' });

/** Header bytes of a frame in `layout`. */
export function headerBytes(layout: FrameLayout): number {
  return layout.kind ? 5 : 4;
}

/** The largest payload length the header can carry. */
export const FRAME_LENGTH_LIMIT = 0xffff_ffff;

/**
 * Called for each whole frame: the payload is `buf[start, end)`. `buf` is
 * either the chunk given to {@link FrameDecoder.push} (the caller may keep a
 * `subarray` of it: the decoder never writes into chunks) or a buffer the
 * decoder allocated for a frame that spanned chunks.
 */
export type FrameHandler = (kind: number, buf: Buffer, start: number, end: number) => void;

/**
 * The payload lengths one frame kind may have. Checked as soon as a header
 * is complete, before any payload is buffered: below `min` is
 * `AMIX_ERR_BAD_FRAME`, above `max` is `AMIX_ERR_FRAME_TOO_LARGE`.
 */
export interface FrameKindRule {
  readonly min: number;
  readonly max: number;
}

/** Options for {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Hard maximum payload length. A header announcing more fails the decoder
   * with `AMIX_ERR_FRAME_TOO_LARGE` before anything is allocated for it.
   */
  maxPayloadBytes: number;
  /**
   * Rules indexed by kind. A kind without a rule is `AMIX_ERR_BAD_FRAME`.
   * Default: every kind, any length up to `maxPayloadBytes`.
   */
  kinds?: ReadonlyArray<FrameKindRule | undefined>;
  /** The header layout. Default {@link PROCESS_LAYOUT}. */
  layout?: FrameLayout;
}

/**
 * Incremental frame decoder. Feed it chunks with {@link push}; it calls the
 * handler for each whole frame in stream order. A malformed stream throws an
 * `AmixError` (`AMIX_ERR_FRAME_TOO_LARGE` or `AMIX_ERR_BAD_FRAME`, with
 * `details.offset`, the stream offset of the bad header) and the decoder
 * stays failed: every later `push` throws the same error. Errors thrown by
 * the handler propagate unchanged and also fail the decoder.
 *
 * @example
 * const d = new FrameDecoder({ maxPayloadBytes: 1 << 20 }, (kind, b, s, e) => got.push(b.subarray(s, e)))
 * socket.on('data', (chunk) => { try { d.push(chunk) } catch (err) { socket.destroy(err) } })
 */
export class FrameDecoder {
  #max: number;
  #kinds: ReadonlyArray<FrameKindRule | undefined> | undefined;
  readonly #onFrame: FrameHandler;
  /** Header size and length byte order of the layout. */
  readonly #hb: number;
  readonly #be: boolean;
  /** Header bytes of a frame split across chunks. */
  readonly #head: Buffer;
  #headLen = 0;
  /** Payload of a frame split across chunks, being filled. */
  #body: Buffer | null = null;
  #bodyLen = 0;
  #kind = 0;
  /** Stream offset of the start of the current chunk, for error details. */
  #offset = 0;
  #failed: Error | null = null;

  constructor(options: FrameDecoderOptions, onFrame: FrameHandler) {
    this.#max = checkMax(options.maxPayloadBytes);
    this.#kinds = options.kinds;
    this.#onFrame = onFrame;
    const layout = options.layout ?? PROCESS_LAYOUT;
    this.#hb = headerBytes(layout);
    this.#be = layout.endian === 'be';
    this.#head = Buffer.alloc(this.#hb);
  }

  /** The hard maximum payload length now in force. */
  get maxPayloadBytes(): number {
    return this.#max;
  }

  /**
   * Change the hard maximum for every header not yet complete (a protocol
   * that allows larger frames once the peer has authenticated). A partial
   * frame already being buffered was checked against the old maximum and
   * is kept. `AMIX_ERR_INVALID_ARG` outside 0 to {@link FRAME_LENGTH_LIMIT}.
   */
  setMaxPayloadBytes(max: number): void {
    this.setRules(max, this.#kinds);
  }

  /**
   * Replace the limits for every header still to come, including the rest
   * of the chunk being decoded (a frame handler may call it): a stream that
   * starts with small frames until a handshake succeeds, then takes its
   * full rules. A frame whose header was already checked is not affected.
   */
  setRules(maxPayloadBytes: number, kinds?: ReadonlyArray<FrameKindRule | undefined>): void {
    this.#max = checkMax(maxPayloadBytes);
    this.#kinds = kinds;
  }

  /** The error that failed the decoder, if any. */
  get failed(): Error | null {
    return this.#failed;
  }

  /** True when no partial frame is buffered (the stream ended on a frame boundary). */
  get isIdle(): boolean {
    return this.#headLen === 0 && this.#body === null;
  }

  /** Decode `chunk`, calling the handler for every frame it completes. Throws on malformed input. */
  push(chunk: Buffer): void {
    if (this.#failed) throw this.#failed;
    try {
      this.#push(chunk);
    } catch (err) {
      this.#failed = err as Error;
      throw err;
    }
    this.#offset += chunk.length;
  }

  #push(chunk: Buffer): void {
    const n = chunk.length;
    let off = 0;
    if (this.#headLen > 0 || this.#body !== null) {
      off = this.#continue(chunk);
      if (off < 0) return;
    }
    const hb = this.#hb;
    // Hot path: whole frames inside this chunk are handed out as ranges of it.
    while (n - off >= hb) {
      const len = this.#be
        ? chunk[off]! * 0x100_0000 + ((chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!)
        : (chunk[off]! | (chunk[off + 1]! << 8) | (chunk[off + 2]! << 16)) + chunk[off + 3]! * 0x100_0000;
      const kind = hb === 5 ? chunk[off + 4]! : 0;
      this.#check(kind, len, off);
      const start = off + hb;
      const end = start + len;
      if (end > n) {
        this.#startBody(kind, len, chunk, start, n);
        return;
      }
      off = end;
      this.#onFrame(kind, chunk, start, end);
    }
    if (off < n) {
      chunk.copy(this.#head, 0, off, n);
      this.#headLen = n - off;
    }
  }

  /** Continue a frame split across chunks; returns the offset after it, or -1 if `chunk` ran out. */
  #continue(chunk: Buffer): number {
    let off = 0;
    const n = chunk.length;
    if (this.#body === null) {
      const hb = this.#hb;
      const need = hb - this.#headLen;
      const take = Math.min(need, n);
      chunk.copy(this.#head, this.#headLen, 0, take);
      this.#headLen += take;
      off = take;
      if (this.#headLen < hb) return -1;
      const len = this.#be ? this.#head.readUInt32BE(0) : this.#head.readUInt32LE(0);
      const kind = hb === 5 ? this.#head[4]! : 0;
      this.#headLen = 0;
      this.#check(kind, len, -hb + take);
      if (n - off >= len) {
        // The rest of the frame is in this chunk: no copy needed.
        const end = off + len;
        this.#onFrame(kind, chunk, off, end);
        return end;
      }
      this.#startBody(kind, len, chunk, off, n);
      return -1;
    }
    const body = this.#body;
    const take = Math.min(body.length - this.#bodyLen, n);
    chunk.copy(body, this.#bodyLen, 0, take);
    this.#bodyLen += take;
    if (this.#bodyLen < body.length) return -1;
    this.#body = null;
    this.#onFrame(this.#kind, body, 0, body.length);
    return take;
  }

  #startBody(kind: number, len: number, chunk: Buffer, start: number, end: number): void {
    // One allocation per frame that spans chunks, sized by the (already checked) header.
    const body = Buffer.allocUnsafe(len);
    chunk.copy(body, 0, start, end);
    this.#body = body;
    this.#bodyLen = end - start;
    this.#kind = kind;
  }

  #check(kind: number, len: number, off: number): void {
    if (len > this.#max) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_FRAME_TOO_LARGE,
        `frame of ${len} bytes (kind ${kind}) exceeds the maximum of ${this.#max}`,
        { details: { length: len, max: this.#max, kind, offset: this.#offset + off } },
      );
    }
    if (this.#kinds === undefined) return;
    const rule = this.#kinds[kind];
    if (rule === undefined) {
      throw new AmixError(ErrorCode.AMIX_ERR_BAD_FRAME, `bad frame: unknown kind ${kind} (${len} bytes)`, {
        details: { length: len, kind, offset: this.#offset + off },
      });
    }
    if (len > rule.max) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_FRAME_TOO_LARGE,
        `frame of ${len} bytes (kind ${kind}) exceeds the maximum of ${rule.max} for its kind`,
        { details: { length: len, max: rule.max, kind, offset: this.#offset + off } },
      );
    }
    if (len < rule.min) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_BAD_FRAME,
        `bad frame: kind ${kind} needs at least ${rule.min} bytes (got ${len})`,
        { details: { length: len, kind, offset: this.#offset + off } },
      );
    }
  }
}

function checkMax(max: number): number {
  if (!Number.isSafeInteger(max) || max < 0 || max > FRAME_LENGTH_LIMIT) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `options.maxPayloadBytes must be an integer from 0 to ${FRAME_LENGTH_LIMIT} (got ${String(max)})`,
      { details: { option: 'maxPayloadBytes' } },
    );
  }
  return max;
}

/** One frame in a buffer of its own (header in `layout`, and a copy of `payload`). */
export function encodeFrame(kind: number, payload: Uint8Array | null, layout: FrameLayout = PROCESS_LAYOUT): Buffer {
  const len = payload === null ? 0 : payload.length;
  const hb = headerBytes(layout);
  const buf = Buffer.allocUnsafe(hb + len);
  if (layout.endian === 'be') buf.writeUInt32BE(len, 0);
  else buf.writeUInt32LE(len, 0);
  if (layout.kind) buf[4] = kind;
  if (len > 0) buf.set(payload!, hb);
  return buf;
}

/** Where {@link FrameWriter} sends what it packed. */
export interface FrameSink {
  /** Write one buffer; the writer never changes bytes after handing them over. */
  write(buf: Uint8Array): unknown;
  cork?(): void;
  uncork?(): void;
}

/** Options for {@link FrameWriter}. */
export interface FrameWriterOptions {
  /** Size of each slab the writer packs frames into. Default 256 KiB. */
  slabBytes?: number;
  /**
   * Most bytes one flush writes (unless a single frame is larger): a frame
   * that would take the packed bytes past it is packed after a flush.
   * Default 64 KiB, what Node reads from a socket at a time, so a receiver
   * keeping up reads each write whole (a frame cut at a read boundary costs
   * a second read and a copy).
   */
  flushBytes?: number;
  /**
   * When a packed frame is flushed without an explicit {@link FrameWriter.flush}:
   * `immediate` (default) after I/O in this loop turn (`setImmediate`), so a
   * loop of awaited sends coalesces; `microtask` at the end of this job.
   */
  schedule?: 'immediate' | 'microtask';
  /**
   * Write a frame at once when nothing is pending and the last write was
   * more than {@link FrameWriterOptions.quietMicros} ago; the frames after it
   * in the same turn are packed and flushed at the turn's end: a lone
   * request/response pays no scheduling delay, a burst still leaves in a
   * few writes (at most one written through per turn). Default true.
   */
  writeThrough?: boolean;
  /** How long after a write the stream counts as quiet again. Default 5 microseconds. */
  quietMicros?: number;
}

/**
 * Packs frames (in {@link PROCESS_LAYOUT}) into slabs and writes everything packed in one event-loop
 * turn with one `write` (several slabs: one corked batch), or at once when
 * the frame comes after a quiet spell (see `writeThrough`). Measured between
 * two processes with awaited 64 B sends, this beats both a microtask flush
 * and cork/uncork around one write per message by 4x or more
 * (`bench/RESULTS.md`, process). Slab bytes are never reused after they are
 * written, so a frame located by {@link slab} and the offset {@link frame}
 * returns stays valid (a sender may write it again after a reconnect).
 *
 * @example
 * const w = new FrameWriter(socket)
 * w.frame(1, payload)   // written now if the stream was quiet, else with the rest of this turn
 */
export class FrameWriter {
  #sink: FrameSink | null;
  readonly #slabBytes: number;
  readonly #flushBytes: number;
  readonly #micro: boolean;
  #slab: Buffer;
  /** Start of the packed, unflushed region of the current slab. */
  #start = 0;
  #end = 0;
  /** Regions of earlier slabs that filled up before the flush. */
  #full: Uint8Array[] = [];
  #packed = 0;
  #scheduled = false;
  readonly #writeThrough: boolean;
  readonly #quietMs: number;
  /** `performance.now()` of the last write to the sink. */
  #lastWrite = -Infinity;
  readonly #flushBound = () => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(sink: FrameSink | null, options: FrameWriterOptions = {}) {
    this.#sink = sink;
    this.#slabBytes = options.slabBytes ?? 256 * 1024;
    this.#flushBytes = options.flushBytes ?? 64 * 1024;
    this.#micro = options.schedule === 'microtask';
    this.#writeThrough = options.writeThrough ?? true;
    this.#quietMs = (options.quietMicros ?? 5) / 1000;
    this.#slab = Buffer.allocUnsafeSlow(this.#slabBytes);
  }

  /** Bytes packed and not yet flushed. */
  get packedBytes(): number {
    return this.#packed;
  }

  /** Change the sink (after a reconnect). Packed bytes go to the new sink at the next flush. */
  setSink(sink: FrameSink | null): void {
    this.#sink = sink;
  }

  /**
   * The slab the last {@link frame} was packed into. With the offset `frame`
   * returned, it locates the frame's bytes, which stay valid (the writer
   * never reuses slab bytes), so a sender can write them again later.
   */
  get slab(): Buffer {
    return this.#slab;
  }

  /**
   * Pack one frame and schedule a flush. Returns the frame's offset in
   * {@link slab}. `payload` is copied, so the caller may reuse it at once.
   */
  frame(kind: number, payload: Uint8Array | null): number {
    const len = payload === null ? 0 : payload.length;
    const total = FRAME_HEADER_BYTES + len;
    if (this.#packed + total > this.#flushBytes && this.#packed > 0) this.flush();
    if (this.#slab.length - this.#end < total) this.#newSlab(total);
    const s = this.#slab;
    const at = this.#end;
    s[at] = len & 0xff;
    s[at + 1] = (len >>> 8) & 0xff;
    s[at + 2] = (len >>> 16) & 0xff;
    s[at + 3] = len >>> 24;
    s[at + 4] = kind;
    if (len > 0) s.set(payload!, at + FRAME_HEADER_BYTES);
    this.#end = at + total;
    this.#packed += total;
    this.#after();
    return at;
  }

  /** Pack a control frame whose payload is `n` bytes written by `fill` at `offset` in `buf`. */
  control(kind: number, n: number, fill: (buf: Buffer, offset: number) => void): void {
    if (this.#packed + FRAME_HEADER_BYTES + n > this.#flushBytes && this.#packed > 0) this.flush();
    if (this.#slab.length - this.#end < FRAME_HEADER_BYTES + n) this.#newSlab(FRAME_HEADER_BYTES + n);
    const s = this.#slab;
    const at = this.#end;
    s.writeUInt32LE(n, at);
    s[at + 4] = kind;
    fill(s, at + FRAME_HEADER_BYTES);
    this.#end = at + FRAME_HEADER_BYTES + n;
    this.#packed += FRAME_HEADER_BYTES + n;
    this.#after();
  }

  /** Queue bytes already framed (a kept frame view being written again). */
  raw(bytes: Uint8Array): void {
    this.#seal();
    this.#full.push(bytes);
    this.#packed += bytes.length;
    this.#after();
  }

  /** Write everything packed now. Without a sink the bytes are discarded (the caller keeps views to resend). */
  flush(): void {
    this.#seal();
    const full = this.#full;
    if (full.length === 0) return;
    this.#full = [];
    this.#packed = 0;
    const sink = this.#sink;
    if (sink === null) return;
    if (this.#writeThrough) this.#lastWrite = performance.now();
    if (full.length === 1) {
      sink.write(full[0]!);
      return;
    }
    sink.cork?.();
    for (const b of full) sink.write(b);
    sink.uncork?.();
  }

  /** Drop packed, unflushed bytes (the connection is gone). */
  discard(): void {
    this.#seal();
    this.#full = [];
    this.#packed = 0;
  }

  #after(): void {
    if (this.#scheduled) {
      if (this.#packed >= this.#flushBytes) this.flush();
      return;
    }
    if (this.#writeThrough && this.#sink !== null && this.#full.length === 0) {
      const now = performance.now();
      if (now - this.#lastWrite > this.#quietMs) {
        // A frame after a quiet spell goes out now; what follows it in this
        // turn is packed and waits for the turn's flush, scheduled here. Without
        // that flush pending, a sender slower than the quiet spell per frame (a
        // cold start, a loaded machine, a message built between sends) wrote
        // every frame through on its own: one system call per message.
        this.#lastWrite = now;
        this.#sink.write(this.#slab.subarray(this.#start, this.#end));
        this.#start = this.#end;
        this.#packed = 0;
        this.#schedule();
        return;
      }
    }
    if (this.#packed >= this.#flushBytes) this.flush();
    else this.#schedule();
  }

  #schedule(): void {
    this.#scheduled = true;
    if (this.#micro) queueMicrotask(this.#flushBound);
    else setImmediate(this.#flushBound);
  }

  #seal(): void {
    if (this.#end > this.#start) {
      // A Buffer view: a stream turns any other Uint8Array into one anyway.
      this.#full.push(this.#slab.subarray(this.#start, this.#end));
      this.#start = this.#end;
    }
  }

  #newSlab(total: number): void {
    this.#seal();
    this.#slab = Buffer.allocUnsafeSlow(Math.max(this.#slabBytes, total));
    this.#start = 0;
    this.#end = 0;
  }
}
