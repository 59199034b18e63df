/**
 * The remote envelope (seed 002, paragraph 65): what a conduit point wraps
 * around each message crossing to another machine. Protobuf, read and
 * written by hand (`lib/core/protoWire.ts` says why not protobufjs at run
 * time); the schema is `lib/remote/envelope.proto`, embedded here as
 * {@link ENVELOPE_PROTO} so nothing depends on where the package's files lie.
 * protobufjs is the tests' reference: they keep these bytes equal to what it
 * writes and reads, and the embedded schema equal to the file.
 *
 * Decoding is strict where protobuf is lax: random bytes often "decode" to a
 * message of defaults, so a decoded envelope must also carry both
 * identifiers and a sequence that is a safe integer; anything else is
 * `AMIX_ERR_BAD_FRAME`. Unknown fields are skipped, as
 * protobuf intends, so a newer peer may add fields.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';
import { WireType, varintSize, walkFields, writeVarint } from '../core/protoWire.js';

/** The schema of `lib/remote/envelope.proto` (package `amix.remote.v1`). */
export const ENVELOPE_PROTO = `
syntax = "proto3";
package amix.remote.v1;
message Envelope {
  string sender = 1;
  string receiver = 2;
  uint64 sequence = 3;
  bytes payload = 4;
  uint64 base = 5;
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
  /**
   * A re-sent envelope's mark: the receiving daemon reported every message of
   * the flow below it taken (see {@link withBase}). Absent on a first send.
   */
  base?: number;
}

function badFrame(message: string, cause?: unknown): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_BAD_FRAME, `envelope ${message}`, cause === undefined ? {} : { cause });
}

function checkIdentifier(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw badFrame(`${name} must be a non-empty identifier`);
  if (value.length > MAX_IDENTIFIER_LENGTH)
    throw badFrame(`${name} is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  return value;
}

/** `AMIX_ERR_INVALID_ARG` unless both identifiers are strings of 1 to {@link MAX_IDENTIFIER_LENGTH} characters. */
function checkEncodableIdentifiers(sender: unknown, receiver: unknown): void {
  for (const [name, v] of [
    ['envelope.sender', sender],
    ['envelope.receiver', receiver],
  ] as const) {
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_IDENTIFIER_LENGTH) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `${name} must be a string of 1 to ${MAX_IDENTIFIER_LENGTH} characters`,
        { details: { option: name } },
      );
    }
  }
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
  checkEncodableIdentifiers(sender, receiver);
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'envelope.sequence must be a non-negative safe integer', {
      details: { option: 'envelope.sequence' },
    });
  }
  if (!(payload instanceof Uint8Array)) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'envelope.payload must be a Uint8Array', {
      details: { option: 'envelope.payload' },
    });
  }
  const base = envelope.base;
  if (base !== undefined && (!Number.isSafeInteger(base) || base < 0)) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'envelope.base must be a non-negative safe integer', {
      details: { option: 'envelope.base' },
    });
  }
  // The same bytes protobufjs writes for this object (a test keeps it so): fields in order, zeros included.
  const bytes = envelopeWriter(sender, receiver)(sequence, payload);
  return base === undefined ? bytes : withBase(bytes, base);
}

/**
 * Decode an envelope (with {@link scanEnvelope}, not protobufjs). Throws
 * `AMIX_ERR_BAD_FRAME` for bytes that are not a well-formed envelope:
 * truncated or invalid protobuf, a missing or non-UTF-8 identifier, a
 * sequence beyond 2^53. The payload is a view into `bytes`, not a copy.
 *
 * @example
 * const { receiver, payload } = decodeEnvelope(frame)
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const span = scanEnvelope(bytes);
  return {
    sender: envelopeIdentifier(bytes, span.senderStart, span.senderEnd, 'sender'),
    receiver: envelopeIdentifier(bytes, span.receiverStart, span.receiverEnd, 'receiver'),
    sequence: span.sequence,
    payload: bytes.subarray(span.payloadStart, span.payloadEnd),
    ...(span.base >= 0 ? { base: span.base } : {}),
  };
}

// ---------------------------------------------------------------------------
// The hot path. The conduits wrap and unwrap every remote message, so these
// read and write the same protobuf bytes as the schema above without going
// through protobufjs: no object per message, no strings when the identifiers
// are the ones the previous envelope carried. A test keeps them equal to
// protobufjs on well-formed envelopes and to each other on garbage.

/** Where the parts of an envelope lie in its bytes: offsets, no copies, no strings. */
export interface EnvelopeSpan {
  senderStart: number;
  senderEnd: number;
  receiverStart: number;
  receiverEnd: number;
  sequence: number;
  payloadStart: number;
  payloadEnd: number;
  /** Field 5 ({@link Envelope.base}), -1 when absent. */
  base: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();
/** An identifier of 1024 UTF-16 units takes at most 3 bytes per unit in UTF-8. */
const MAX_IDENTIFIER_BYTES = MAX_IDENTIFIER_LENGTH * 3;

/**
 * Find the fields of an envelope without decoding them. Strict: a known
 * field with the wrong wire type, a truncated field, a missing or empty
 * identifier, a sequence beyond 2^53 are all `AMIX_ERR_BAD_FRAME`. Unknown
 * fields are skipped. When a field repeats, the last one counts (protobuf's rule).
 */
export function scanEnvelope(b: Uint8Array): EnvelopeSpan {
  if (!(b instanceof Uint8Array)) throw badFrame('must be bytes');
  const span: EnvelopeSpan = {
    senderStart: 0,
    senderEnd: 0,
    receiverStart: 0,
    receiverEnd: 0,
    sequence: 0,
    payloadStart: 0,
    payloadEnd: 0,
    base: -1,
  };
  // The walk refuses truncation, long varints, bad tags and unknown wire types; here, a known field of the wrong type.
  walkFields(
    b,
    0,
    b.length,
    (f) => {
      const { field, wire } = f;
      if (field < 1 || field > 5) return; // unknown: skipped, so a newer peer may add fields
      const varint = field === 3 || field === 5;
      if (wire !== (varint ? WireType.Varint : WireType.LengthDelimited))
        throw badFrame(
          varint && wire === WireType.LengthDelimited
            ? `field ${field} must be a varint`
            : `field ${field} has wire type ${wire}`,
        );
      if (field === 1) {
        span.senderStart = f.start;
        span.senderEnd = f.end;
      } else if (field === 2) {
        span.receiverStart = f.start;
        span.receiverEnd = f.end;
      } else if (field === 4) {
        span.payloadStart = f.start;
        span.payloadEnd = f.end;
      } else {
        if (f.value > Number.MAX_SAFE_INTEGER) throw badFrame(`${field === 3 ? 'sequence' : 'base'} is beyond 2^53`);
        if (field === 3) span.sequence = f.value;
        else span.base = f.value;
      }
    },
    (reason) => badFrame(`is malformed: ${reason}`),
  );
  if (span.senderEnd === span.senderStart) throw badFrame('sender must be a non-empty identifier');
  if (span.receiverEnd === span.receiverStart) throw badFrame('receiver must be a non-empty identifier');
  if (
    span.senderEnd - span.senderStart > MAX_IDENTIFIER_BYTES ||
    span.receiverEnd - span.receiverStart > MAX_IDENTIFIER_BYTES
  ) {
    throw badFrame(`identifier is longer than ${MAX_IDENTIFIER_LENGTH} characters`);
  }
  return span;
}

/** The identifier between `start` and `end`, checked like {@link decodeEnvelope} checks it. */
export function envelopeIdentifier(b: Uint8Array, start: number, end: number, name: 'sender' | 'receiver'): string {
  let s: string;
  try {
    s = utf8.decode(b.subarray(start, end));
  } catch (err) {
    throw badFrame(`${name} is not UTF-8`, err);
  }
  return checkIdentifier(name, s);
}

/**
 * An envelope (as {@link envelopeWriter} wrote it) marked as re-sent: field 5
 * ({@link Envelope.base}) appended, in a new buffer. The fast reader does not
 * take it ({@link EnvelopeReader.match} wants the payload last), so a re-sent
 * envelope always goes through {@link scanEnvelope}, which reads the mark.
 */
export function withBase(envelope: Uint8Array, base: number): Uint8Array {
  const out = new Uint8Array(envelope.length + 1 + varintSize(base));
  out.set(envelope, 0);
  out[envelope.length] = 0x28;
  writeVarint(out, envelope.length + 1, base);
  return out;
}

/**
 * Writes the envelopes of one flow: the identifiers are encoded once. Call it
 * for one envelope, or use {@link EnvelopeWriter.many} for a batch.
 */
export interface EnvelopeWriter {
  /** One envelope, in a buffer of its own (the same bytes protobufjs writes for it). */
  (sequence: number, payload: Uint8Array): Uint8Array;
  /**
   * One envelope per payload, numbered from `firstSequence`, written into one
   * shared buffer and returned as views of it: one allocation per batch
   * instead of one per message (an `ArrayBuffer` costs far more than
   * the bytes of a small message). With `into`, written there instead (its
   * length at least {@link EnvelopeWriter.bytes}): no allocation at all.
   */
  many(firstSequence: number, payloads: readonly Uint8Array[], into?: Uint8Array): Uint8Array[];
  /** The bytes {@link EnvelopeWriter.many} writes for these payloads from `firstSequence`. */
  bytes(firstSequence: number, payloads: readonly Uint8Array[]): number;
}

/**
 * A writer for one flow's envelopes (see {@link EnvelopeWriter}).
 *
 * @example
 * const wrap = envelopeWriter('dirA.7', 'dirB.3'); const frame = wrap(0, payload); const frames = wrap.many(1, payloads)
 */
export function envelopeWriter(sender: string, receiver: string): EnvelopeWriter {
  checkEncodableIdentifiers(sender, receiver);
  const prefix = identifierFields(sender, receiver);
  const sizeOf = (sequence: number, n: number): number => prefix.length + 2 + varintSize(sequence) + varintSize(n) + n;
  /** Write one envelope at `o` in `out`; returns its end. */
  const writeAt = (out: Uint8Array, o: number, sequence: number, payload: Uint8Array): number => {
    const n = payload.length;
    out.set(prefix, o);
    o += prefix.length;
    // Written even when zero, as protobufjs writes a field that is set.
    out[o++] = 0x18;
    o = writeVarint(out, o, sequence);
    out[o++] = 0x22;
    o = writeVarint(out, o, n);
    out.set(payload, o);
    return o + n;
  };
  const one = (sequence: number, payload: Uint8Array): Uint8Array => {
    const out = new Uint8Array(sizeOf(sequence, payload.length));
    writeAt(out, 0, sequence, payload);
    return out;
  };
  one.bytes = (firstSequence: number, payloads: readonly Uint8Array[]): number => {
    let total = 0;
    for (let i = 0; i < payloads.length; i++) total += sizeOf(firstSequence + i, payloads[i]!.length);
    return total;
  };
  one.many = (firstSequence: number, payloads: readonly Uint8Array[], into?: Uint8Array): Uint8Array[] => {
    // `into` (a region of a pooled slab, `slabPool.ts`): written from its start, exactly `bytes(...)` long.
    const slab = into ?? new Uint8Array(one.bytes(firstSequence, payloads));
    const frames = new Array<Uint8Array>(payloads.length);
    let o = 0;
    for (let i = 0; i < payloads.length; i++) {
      const end = writeAt(slab, o, firstSequence + i, payloads[i]!);
      frames[i] = slab.subarray(o, end);
      o = end;
    }
    return frames;
  };
  return one;
}

/** Fields 1 and 2 (sender, receiver) as protobuf writes them: the bytes every envelope of one flow starts with. */
function identifierFields(sender: string, receiver: string): Uint8Array {
  const s = utf8Encoder.encode(sender);
  const r = utf8Encoder.encode(receiver);
  const prefix = new Uint8Array(2 + varintSize(s.length) + s.length + varintSize(r.length) + r.length);
  let p = 0;
  prefix[p++] = 0x0a;
  p = writeVarint(prefix, p, s.length);
  prefix.set(s, p);
  p += s.length;
  prefix[p++] = 0x12;
  p = writeVarint(prefix, p, r.length);
  prefix.set(r, p);
  return prefix;
}

/**
 * Recognises the envelopes of one flow in the layout {@link envelopeWriter}
 * (and protobufjs) writes: the two identifiers, then the sequence, then the
 * payload, nothing else. {@link EnvelopeReader.match} compares the
 * identifier bytes and reads the rest in one pass, with no allocation; an
 * envelope it does not match (another flow, another field order, extra
 * fields, anything malformed) is left to {@link scanEnvelope}. Where it
 * matches, it reads what `scanEnvelope` would.
 *
 * @example
 * const r = new EnvelopeReader(sender, receiver); if (r.match(frame)) use(frame.subarray(r.payloadStart))
 */
export class EnvelopeReader {
  readonly #prefix: Uint8Array;
  /** The sequence of the last matched envelope. */
  sequence = 0;
  /** Where the payload of the last matched envelope starts (it runs to the end). */
  payloadStart = 0;
  /** Read position inside {@link EnvelopeReader.match}. */
  #pos = 0;

  constructor(sender: string, receiver: string) {
    this.#prefix = identifierFields(sender, receiver);
  }

  /** True when `b` is an envelope of this flow in the usual layout; then {@link sequence} and {@link payloadStart} describe it. */
  match(b: Uint8Array): boolean {
    const p = this.#prefix;
    const n = p.length;
    const len = b.length;
    if (len < n + 4) return false;
    for (let i = 0; i < n; i++) if (b[i] !== p[i]) return false;
    this.#pos = n;
    if (b[this.#pos++] !== 0x18) return false;
    // A sequence below 2^53 takes at most 8 varint bytes; a length below 2^32, 5.
    const seq = this.#varint(b, 8);
    if (seq < 0 || seq > Number.MAX_SAFE_INTEGER || this.#pos >= len || b[this.#pos++] !== 0x22) return false;
    const size = this.#varint(b, 5);
    if (size < 0 || this.#pos + size !== len) return false;
    this.sequence = seq;
    this.payloadStart = this.#pos;
    return true;
  }

  /** Read a varint of at most `maxBytes` at {@link EnvelopeReader.#pos}, moving past it; -1 if it is cut short or longer. */
  #varint(b: Uint8Array, maxBytes: number): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < maxBytes && this.#pos < b.length; i++) {
      const byte = b[this.#pos++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
    return -1;
  }
}
