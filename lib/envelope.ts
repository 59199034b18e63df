/**
 * The remote envelope (seed 002, paragraph 65): what a conduit point wraps
 * around each message crossing to another machine. Protobuf, via protobufjs;
 * the schema is `lib/envelope.proto`, embedded here as {@link ENVELOPE_PROTO}
 * so nothing depends on where the package's files lie (a test checks that
 * the two agree).
 *
 * Decoding is strict where protobuf is lax: random bytes often "decode" to a
 * message of defaults, so a decoded envelope must also carry both
 * identifiers and a sequence that is a safe integer; anything else is
 * `AMIX_ERR_BAD_FRAME`. Unknown fields are skipped, as
 * protobuf intends, so a newer peer may add fields.
 *
 * @module
 */
import protobuf from 'protobufjs';
import { AmixError, ErrorCode } from './errors.js';

/** The schema of `lib/envelope.proto` (package `amix.remote.v1`). */
export const ENVELOPE_PROTO = `
syntax = "proto3";
package amix.remote.v1;
message Envelope {
  string sender = 1;
  string receiver = 2;
  uint64 sequence = 3;
  bytes payload = 4;
}
`;

/** The fully qualified protobuf type name of the envelope. */
export const ENVELOPE_TYPE = 'amix.remote.v1.Envelope';

/** The longest identifier accepted, in UTF-16 code units. */
export const MAX_IDENTIFIER_LENGTH = 1024;

/** One remote message with its routing. */
export interface Envelope {
  /** Unique communication identifier of the sending point. */
  sender: string;
  /** Unique communication identifier of the receiving point. */
  receiver: string;
  /** Per (sender, receiver) flow, from 0; a non-negative safe integer. */
  sequence: number;
  /** The message bytes. */
  payload: Uint8Array;
}

const EnvelopeType = protobuf.parse(ENVELOPE_PROTO, { keepCase: true }).root.lookupType(ENVELOPE_TYPE);

function badFrame(message: string, cause?: unknown): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_BAD_FRAME, `envelope ${message}`, cause === undefined ? {} : { cause });
}

function checkIdentifier(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw badFrame(`${name} must be a non-empty identifier`);
  if (value.length > MAX_IDENTIFIER_LENGTH) throw badFrame(`${name} is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  return value;
}

/**
 * Encode an envelope. Throws `AMIX_ERR_INVALID_ARG` for an empty or
 * over-long identifier, a sequence that is not a non-negative safe
 * integer, or a payload that is not bytes.
 *
 * @example
 * const bytes = encodeEnvelope({ sender: 'dirA.7', receiver: 'dirB.3', sequence: 0, payload })
 */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  const { sender, receiver, sequence, payload } = envelope;
  for (const [name, v] of [['envelope.sender', sender], ['envelope.receiver', receiver]] as const) {
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_IDENTIFIER_LENGTH) {
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${name} must be a string of 1 to ${MAX_IDENTIFIER_LENGTH} characters`, { details: { option: name } });
    }
  }
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'envelope.sequence must be a non-negative safe integer', { details: { option: 'envelope.sequence' } });
  }
  if (!(payload instanceof Uint8Array)) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'envelope.payload must be a Uint8Array', { details: { option: 'envelope.payload' } });
  }
  return EnvelopeType.encode({ sender, receiver, sequence, payload }).finish();
}

/**
 * Decode an envelope. Throws `AMIX_ERR_BAD_FRAME` (with the protobuf error
 * as `cause` where there is one) for bytes that are not a well-formed
 * envelope: truncated or invalid protobuf, a missing identifier, a sequence
 * beyond 2^53. The payload is a view into `bytes`, not a copy.
 *
 * @example
 * const { receiver, payload } = decodeEnvelope(frame)
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (!(bytes instanceof Uint8Array)) throw badFrame('must be bytes');
  let msg: Record<string, unknown>;
  try {
    msg = EnvelopeType.decode(bytes) as unknown as Record<string, unknown>;
  } catch (err) {
    throw badFrame(`is not valid protobuf: ${(err as Error).message}`, err);
  }
  const sender = checkIdentifier('sender', msg.sender);
  const receiver = checkIdentifier('receiver', msg.receiver);
  const raw = msg.sequence;
  let sequence: number;
  if (typeof raw === 'number') sequence = raw;
  else if (raw && typeof raw === 'object' && 'high' in raw && 'low' in raw) {
    const { high, low } = raw as { high: number; low: number };
    // uint64 arrives as a Long; above 2^53 it cannot be a JS number without loss.
    if (high >>> 0 >= 0x200000) throw badFrame('sequence is beyond 2^53');
    sequence = (high >>> 0) * 0x1_0000_0000 + (low >>> 0);
  } else sequence = 0;
  const payload = msg.payload instanceof Uint8Array ? msg.payload : new Uint8Array(0);
  return { sender, receiver, sequence, payload };
}
