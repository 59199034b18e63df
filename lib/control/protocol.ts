/**
 * The amixd control protocol on the Unix socket: frames are a 4-byte
 * big-endian length and a protobuf `amix.control.v1.Frame` body, whose codec
 * (schema, encode, decode) is `lib/core/controlCodec.ts`, re-exported here.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';
import { MAX_CONTROL_FRAME, decodeControl, encodeControlBody, type ControlMessage } from '../core/controlCodec.js';
export {
  MAX_CONTROL_FRAME,
  PROTOCOL_PROTO,
  PROTOCOL_VERSION,
  decodeControl,
  encodeControlBody,
  type ControlMessage,
} from '../core/controlCodec.js';

function protocolError(message: string): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, message);
}

/** Encode one message as a length-prefixed frame (the Unix control socket's framing). */
export function encodeControl(m: ControlMessage): Buffer {
  const bytes = encodeControlBody(m);
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  out.set(bytes, 4);
  return out;
}

/**
 * Splits a byte stream into control frames, across any split of the input.
 * `push` returns decoded messages; a bad frame yields an error item (the
 * caller replies with it), and an oversized length throws `AMIX_ERR_PROTOCOL`
 * (the stream cannot be resynchronised: close the connection).
 */
export class ControlDecoder {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Array<ControlMessage | AmixError> {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Array<ControlMessage | AmixError> = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_CONTROL_FRAME)
        throw protocolError(`control frame of ${len} bytes exceeds the maximum of ${MAX_CONTROL_FRAME}`);
      if (this.#buf.length < 4 + len) break;
      const body = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      try {
        out.push(decodeControl(body));
      } catch (err) {
        out.push(err as AmixError);
      }
    }
    return out;
  }
}
