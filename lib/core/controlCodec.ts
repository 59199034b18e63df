/**
 * The amixd control message codec: the protobuf schema of one control
 * frame body (`lib/control/protocol.proto`, embedded below so nothing depends
 * on file layout; a test checks the two agree), and its encoding and
 * decoding. The stream framing (a 4-byte big-endian length before each body)
 * lives in `lib/control/protocol.ts`; peering carries the same bodies inside
 * its envelopes, which is why this sits in the core layer both use.
 * Decoding never throws anything but an `AMIX_ERR_PROTOCOL` AmixError.
 *
 * @module
 */
import protobuf from 'protobufjs';
import { errorFromPlain, errorToPlain, protocolError } from './errors.js';
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

const FrameType = protobuf.parse(PROTOCOL_PROTO, { keepCase: true }).root.lookupType('amix.control.v1.Frame');

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

/** Encode one message without a length prefix, for carriers that frame it themselves (peering envelopes). */
export function encodeControlBody(m: ControlMessage): Uint8Array {
  let body: Record<string, unknown>;
  if (m.kind === 'request') body = { request: { id: m.id, op: m.op, args_json: JSON.stringify(m.args ?? {}) } };
  else if (m.kind === 'event') body = { event: { type: m.type, body_json: JSON.stringify(m.body ?? {}) } };
  else if (m.ok) body = { reply: { id: m.id, ok: true, result_json: JSON.stringify(m.result ?? null) } };
  else {
    const p = errorToPlain(m.error);
    body = {
      reply: {
        id: m.id,
        ok: false,
        error: { code: p.code, message: p.message, details_json: JSON.stringify(p.details ?? {}) },
      },
    };
  }
  return FrameType.encode(FrameType.fromObject(body)).finish();
}

/** Decode one frame body (without its length prefix). Throws `AMIX_ERR_PROTOCOL` on anything malformed. */
export function decodeControl(body: Uint8Array): ControlMessage {
  let f: Record<string, any>;
  try {
    f = FrameType.toObject(FrameType.decode(body), { defaults: true, oneofs: true }) as Record<string, any>;
  } catch (err) {
    throw protocolError(`malformed control frame: ${(err as Error).message}`);
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
