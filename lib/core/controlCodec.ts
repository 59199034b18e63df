/**
 * The amixd control message codec: the protobuf schema of one control
 * frame body (`lib/control/protocol.proto`, embedded below so nothing depends
 * on file layout; a test checks the two agree), and its encoding and
 * decoding, written by hand over `protoWire.ts` (which says why not
 * protobufjs at run time; the tests keep the bytes equal to protobufjs's).
 * The stream framing (a 4-byte big-endian length before each body)
 * lives in `lib/control/protocol.ts`; peering carries the same bodies inside
 * its envelopes, which is why this sits in the core layer both use.
 * Decoding never throws anything but an `AMIX_ERR_PROTOCOL` AmixError.
 *
 * @module
 */
import { errorFromPlain, errorToPlain, protocolError } from './errors.js';
import { WireType, varintSize, walkFields, writeVarint } from './protoWire.js';
import type { RpcMessage } from './rpc.js';

/** The schema, identical to `lib/control/protocol.proto`. */
export const PROTOCOL_PROTO = `// amixd control protocol, version 1. One frame on the Unix control socket is
// a 4-byte big-endian length and then one encoded Frame (at most 1 MiB).
// Either side may send requests (the daemon asks a container's agent to open
// channel ends); every request gets exactly one reply. Arguments and results
// are JSON objects: the op set grows without schema churn, while the
// envelope, the error and the event stay typed.
syntax = "proto3";
package amix.control.v1;

message Frame {
  oneof kind {
    Request request = 1;
    Reply reply = 2;
    Event event = 3;
  }
}

message Request {
  uint32 id = 1;          // chosen by the sender, echoed in the reply
  string op = 2;          // e.g. "hello", "point.register", "connect"
  string args_json = 3;   // a JSON object
}

message Reply {
  uint32 id = 1;
  bool ok = 2;
  string result_json = 3; // a JSON value when ok
  Error error = 4;        // when not ok
}

message Error {
  string code = 1;        // an AMIX_ERR_* code
  string message = 2;
  string details_json = 3;
}

message Event {
  string type = 1;        // a FabricEvent type, or "daemon.*"
  string body_json = 2;
}
`;

/** Protocol version spoken by this build (the package name's `v1`). */
export const PROTOCOL_VERSION = 1;
/** Largest control frame body accepted, in bytes. */
export const MAX_CONTROL_FRAME = 1 << 20;

/** A decoded control message, as a discriminated union: exactly what an `RpcPeer` (`lib/core/rpc.ts`) sends and takes. */
export type ControlMessage = RpcMessage;

function parseJson(text: string, what: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw protocolError(`${what} is not valid JSON`);
  }
}

// The schema above, written and read by hand (protoWire.ts says why not
// protobufjs). Every field is written, zeros included, in field order: the
// bytes protobufjs writes for the same object, which a test keeps true.

const utf8Encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8');

/** A field of a message being written: its tag and its bytes or its varint. */
type Part = { field: number; bytes: Uint8Array } | { field: number; varint: number };

function partsSize(parts: readonly Part[]): number {
  let n = 0;
  for (const p of parts) {
    n += varintSize(p.field * 8);
    n += 'bytes' in p ? varintSize(p.bytes.length) + p.bytes.length : varintSize(p.varint);
  }
  return n;
}

function writeParts(parts: readonly Part[]): Uint8Array {
  const out = new Uint8Array(partsSize(parts));
  let o = 0;
  for (const p of parts) {
    if ('bytes' in p) {
      o = writeVarint(out, o, p.field * 8 + WireType.LengthDelimited);
      o = writeVarint(out, o, p.bytes.length);
      out.set(p.bytes, o);
      o += p.bytes.length;
    } else {
      o = writeVarint(out, o, p.field * 8 + WireType.Varint);
      o = writeVarint(out, o, p.varint);
    }
  }
  return out;
}

const str = (field: number, s: string): Part => ({ field, bytes: utf8Encoder.encode(s) });

/** Encode one message without a length prefix, for carriers that frame it themselves (peering envelopes). */
export function encodeControlBody(m: ControlMessage): Uint8Array {
  let kind: number;
  let inner: Part[];
  if (m.kind === 'request') {
    kind = 1;
    inner = [{ field: 1, varint: m.id >>> 0 }, str(2, m.op), str(3, JSON.stringify(m.args ?? {}))];
  } else if (m.kind === 'event') {
    kind = 3;
    inner = [str(1, m.type), str(2, JSON.stringify(m.body ?? {}))];
  } else if (m.ok) {
    kind = 2;
    inner = [{ field: 1, varint: m.id >>> 0 }, { field: 2, varint: 1 }, str(3, JSON.stringify(m.result ?? null))];
  } else {
    const p = errorToPlain(m.error);
    kind = 2;
    const error = writeParts([str(1, p.code), str(2, p.message), str(3, JSON.stringify(p.details ?? {}))]);
    inner = [
      { field: 1, varint: m.id >>> 0 },
      { field: 2, varint: 0 },
      { field: 4, bytes: error },
    ];
  }
  return writeParts([{ field: kind, bytes: writeParts(inner) }]);
}

/** The fields of one decoded submessage: varints by field number, strings by field number, sub-spans by field number. */
interface Decoded {
  varints: Map<number, number>;
  strings: Map<number, [number, number]>;
}

const malformed = (reason: string): Error => protocolError(`malformed control frame: ${reason}`);

/**
 * Read one (sub)message whose varint fields are `varintFields` and whose
 * length-delimited ones are the rest of `known`; a known field with the
 * other wire type is malformed, unknown fields are skipped, and the last of
 * a repeated field counts (protobuf's rule).
 */
function readMessage(
  b: Uint8Array,
  start: number,
  end: number,
  varintFields: readonly number[],
  bytesFields: readonly number[],
): Decoded {
  const d: Decoded = { varints: new Map(), strings: new Map() };
  walkFields(
    b,
    start,
    end,
    (f) => {
      if (varintFields.includes(f.field)) {
        if (f.wire !== WireType.Varint) throw malformed(`field ${f.field} has wire type ${f.wire}`);
        d.varints.set(f.field, f.value);
      } else if (bytesFields.includes(f.field)) {
        if (f.wire !== WireType.LengthDelimited) throw malformed(`field ${f.field} has wire type ${f.wire}`);
        d.strings.set(f.field, [f.start, f.end]);
      }
    },
    malformed,
  );
  return d;
}

function text(b: Uint8Array, d: Decoded, field: number): string {
  const span = d.strings.get(field);
  return span === undefined ? '' : utf8.decode(b.subarray(span[0], span[1]));
}

function uint32(d: Decoded, field: number): number {
  const v = d.varints.get(field) ?? 0;
  // protobufjs keeps the low 32 bits of a longer varint; so do we.
  return v > 0xffffffff ? Number(BigInt(v) & 0xffffffffn) : v;
}

/** Decode one frame body (without its length prefix). Throws `AMIX_ERR_PROTOCOL` on anything malformed. */
export function decodeControl(body: Uint8Array): ControlMessage {
  if (!(body instanceof Uint8Array)) throw malformed('not bytes');
  // The oneof: the last of request (1), reply (2) and event (3) counts.
  let kind = 0;
  let span: [number, number] = [0, 0];
  walkFields(
    body,
    0,
    body.length,
    (fl) => {
      if (fl.field < 1 || fl.field > 3) return;
      if (fl.wire !== WireType.LengthDelimited) throw malformed(`field ${fl.field} has wire type ${fl.wire}`);
      kind = fl.field;
      span = [fl.start, fl.end];
    },
    malformed,
  );
  const f: Record<string, any> = {
    kind: kind === 1 ? 'request' : kind === 2 ? 'reply' : kind === 3 ? 'event' : undefined,
  };
  if (kind === 1) {
    const d = readMessage(body, span[0], span[1], [1], [2, 3]);
    f.request = { id: uint32(d, 1), op: text(body, d, 2), args_json: text(body, d, 3) };
  } else if (kind === 2) {
    const d = readMessage(body, span[0], span[1], [1, 2], [3, 4]);
    const e = d.strings.get(4);
    let error: Record<string, string> | undefined;
    if (e !== undefined) {
      const ed = readMessage(body, e[0], e[1], [], [1, 2, 3]);
      error = { code: text(body, ed, 1), message: text(body, ed, 2), details_json: text(body, ed, 3) };
    }
    f.reply = { id: uint32(d, 1), ok: (d.varints.get(2) ?? 0) !== 0, result_json: text(body, d, 3), error };
  } else if (kind === 3) {
    const d = readMessage(body, span[0], span[1], [], [1, 2]);
    f.event = { type: text(body, d, 1), body_json: text(body, d, 2) };
  }
  if (f.kind === 'request') {
    const r = f.request;
    if (!r.op) throw protocolError('request without op');
    const args = parseJson(r.args_json, 'request args') ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args))
      throw protocolError('request args must be a JSON object');
    return { kind: 'request', id: r.id, op: r.op, args: args as Record<string, unknown> };
  }
  if (f.kind === 'reply') {
    const r = f.reply;
    if (r.ok) return { kind: 'reply', id: r.id, ok: true, result: parseJson(r.result_json, 'reply result') };
    const e = r.error ?? {};
    const details = (parseJson(e.details_json ?? '', 'error details') ?? {}) as Record<string, unknown>;
    return {
      kind: 'reply',
      id: r.id,
      ok: false,
      error: errorFromPlain({ code: e.code ?? '', message: e.message ?? 'error', details }),
    };
  }
  if (f.kind === 'event') {
    const body = (parseJson(f.event.body_json, 'event body') ?? {}) as Record<string, unknown>;
    return { kind: 'event', type: f.event.type, body };
  }
  throw protocolError('empty control frame');
}
