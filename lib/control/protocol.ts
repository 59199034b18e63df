/**
 * The amixd control protocol on the Unix socket: frames are a 4-byte
 * big-endian length and a protobuf `amix.control.v1.Frame` body, whose codec
 * (schema, encode, decode) is `lib/core/controlCodec.ts`, re-exported here.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { CONTROL_LAYOUT, FrameDecoder, encodeFrame } from '../core/framing.js';
import { MAX_CONTROL_FRAME, decodeControl, encodeControlBody, type ControlMessage } from '../core/controlCodec.js';
export {
  MAX_CONTROL_FRAME,
  PROTOCOL_PROTO,
  PROTOCOL_VERSION,
  decodeControl,
  encodeControlBody,
  type ControlMessage,
} from '../core/controlCodec.js';

/** Encode one message as a length-prefixed frame (the Unix control socket's framing, {@link CONTROL_LAYOUT}). */
export function encodeControl(m: ControlMessage): Buffer {
  return encodeFrame(0, encodeControlBody(m), CONTROL_LAYOUT);
}

/** Options for {@link ControlDecoder}. */
export interface ControlDecoderOptions {
  /**
   * The largest frame body taken until {@link ControlDecoder.setMaxFrameBytes}
   * changes it (amixd starts small until hello). Default {@link MAX_CONTROL_FRAME}.
   */
  maxFrameBytes?: number;
}

/**
 * Splits a byte stream into control frames, across any split of the input
 * (the one {@link FrameDecoder}, in {@link CONTROL_LAYOUT}: a frame wholly
 * inside a chunk is decoded from that chunk, without a copy). `push` returns
 * decoded messages; a bad frame yields an error item (the caller replies
 * with it), and a length over the maximum throws `AMIX_ERR_PROTOCOL`
 * (details `{ length, max }`; its `cause` is the decoder's
 * `AMIX_ERR_FRAME_TOO_LARGE`) as soon as the 4-byte length is read, before
 * any of that frame is buffered; the stream cannot be resynchronised: close
 * the connection. Every later `push` throws it again.
 *
 * @example
 * const d = new ControlDecoder()
 * socket.on('data', (chunk) => { for (const m of d.push(chunk)) handle(m) })
 */
export class ControlDecoder {
  #out: Array<ControlMessage | AmixError> = [];
  #failed: AmixError | null = null;
  readonly #decoder: FrameDecoder;

  constructor(options: ControlDecoderOptions = {}) {
    const max = options.maxFrameBytes ?? MAX_CONTROL_FRAME;
    if (!Number.isSafeInteger(max) || max < 0 || max > MAX_CONTROL_FRAME)
      throw invalidArg('options.maxFrameBytes', `must be an integer from 0 to ${MAX_CONTROL_FRAME}`, max);
    this.#decoder = new FrameDecoder({ maxPayloadBytes: max, layout: CONTROL_LAYOUT }, (_kind, buf, start, end) => {
      try {
        this.#out.push(decodeControl(buf.subarray(start, end)));
      } catch (err) {
        this.#out.push(err as AmixError);
      }
    });
  }

  /** The largest frame body taken now. */
  get maxFrameBytes(): number {
    return this.#decoder.maxPayloadBytes;
  }

  /** Change the largest frame body taken, from the next frame on (at most {@link MAX_CONTROL_FRAME}). */
  setMaxFrameBytes(max: number): void {
    if (!Number.isSafeInteger(max) || max < 0 || max > MAX_CONTROL_FRAME)
      throw invalidArg('maxFrameBytes', `must be an integer from 0 to ${MAX_CONTROL_FRAME}`, max);
    this.#decoder.setMaxPayloadBytes(max);
  }

  /** Decode `chunk`; returns the messages (and per-frame errors) it completes, in stream order. */
  push(chunk: Buffer): Array<ControlMessage | AmixError> {
    if (this.#failed) throw this.#failed;
    const out: Array<ControlMessage | AmixError> = (this.#out = []);
    try {
      this.#decoder.push(chunk);
    } catch (err) {
      // The control protocol has always answered an oversized length with AMIX_ERR_PROTOCOL: keep its code.
      const { length, max } = (err as AmixError).details as { length?: number; max?: number };
      this.#failed = new AmixError(
        ErrorCode.AMIX_ERR_PROTOCOL,
        `control frame of ${String(length)} bytes exceeds the maximum of ${String(max)}`,
        { cause: err, details: { length, max } },
      );
      throw this.#failed;
    }
    return out;
  }
}
