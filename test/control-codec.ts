// The control frame body is written and read by hand (lib/core/protoWire.ts
// says why); protobufjs over the embedded schema is the reference. The bytes
// must be equal both ways, and malformed bodies fail with AMIX_ERR_PROTOCOL only.
import t from 'tap';
import protobuf from 'protobufjs';
import { AmixError, PROTOCOL_PROTO, decodeControl, encodeControlBody } from '../dist/lib/internal.js';
import { rng } from './helpers/rng.js';

const Frame = protobuf.parse(PROTOCOL_PROTO, { keepCase: true }).root.lookupType('amix.control.v1.Frame');

/** The body protobufjs writes for a message, as the codec did before it was written by hand. */
function reference(m: any): Uint8Array {
  let body: Record<string, unknown>;
  if (m.kind === 'request') body = { request: { id: m.id, op: m.op, args_json: JSON.stringify(m.args ?? {}) } };
  else if (m.kind === 'event') body = { event: { type: m.type, body_json: JSON.stringify(m.body ?? {}) } };
  else if (m.ok) body = { reply: { id: m.id, ok: true, result_json: JSON.stringify(m.result ?? null) } };
  else
    body = {
      reply: {
        id: m.id,
        ok: false,
        error: { code: m.error.code, message: m.error.message, details_json: JSON.stringify(m.error.details ?? {}) },
      },
    };
  return Frame.encode(Frame.fromObject(body)).finish();
}

const messages: any[] = [
  { kind: 'request', id: 0, op: 'hello', args: {} },
  { kind: 'request', id: 1, op: 'point.register', args: { name: 'ü-☃', location: 'x', n: [1, 2, { a: null }] } },
  { kind: 'request', id: 0xffffffff, op: 'status', args: { big: 'x'.repeat(70000) } },
  { kind: 'reply', id: 7, ok: true, result: null },
  { kind: 'reply', id: 8, ok: true, result: { items: [1, 2, 3], next: 3 } },
  { kind: 'reply', id: 9, ok: true, result: 0 },
  {
    kind: 'reply',
    id: 10,
    ok: false,
    error: new AmixError('AMIX_ERR_UNKNOWN_POINT', 'no point "a"', { details: { name: 'a' } }),
  },
  { kind: 'reply', id: 11, ok: false, error: new AmixError('AMIX_ERR_TIMEOUT', '', {}) },
  { kind: 'event', type: 'link.up', body: { link: 'l1' } },
  { kind: 'event', type: '', body: {} },
];

t.test('the hand-written encoder writes the bytes protobufjs writes', async (t) => {
  for (const m of messages) {
    const ours = Buffer.from(encodeControlBody(m));
    t.equal(ours.toString('hex'), Buffer.from(reference(m)).toString('hex'), `${m.kind} ${m.op ?? m.type ?? m.id}`);
  }
});

t.test('the decoder reads what protobufjs writes, and what it writes itself', async (t) => {
  for (const m of messages) {
    for (const bytes of [reference(m), encodeControlBody(m)]) {
      const got: any = decodeControl(bytes);
      t.equal(got.kind, m.kind);
      if (m.kind === 'request') t.same([got.id, got.op, got.args], [m.id, m.op, m.args]);
      else if (m.kind === 'event') t.same([got.type, got.body], [m.type, m.body]);
      else if (m.ok) t.same([got.id, got.ok, got.result], [m.id, true, m.result]);
      else {
        t.equal(got.ok, false);
        t.equal(got.error.code, m.error.code);
        t.equal(got.error.message, m.error.message);
      }
    }
  }
});

t.test('unknown fields are skipped, a known field of the wrong wire type is malformed', async (t) => {
  const m = { kind: 'request', id: 5, op: 'status', args: { a: 1 } } as const;
  const inner = Frame.encode(Frame.fromObject({ request: { id: 5, op: 'status', args_json: '{"a":1}' } })).finish();
  // Field 9 (varint 300) and field 10 (bytes "zz") appended at the frame level: a newer peer's additions.
  const extended = Buffer.concat([Buffer.from(inner), Buffer.from([0x48, 0xac, 0x02, 0x52, 0x02, 0x7a, 0x7a])]);
  const got: any = decodeControl(extended);
  t.same([got.kind, got.id, got.op, got.args], ['request', 5, 'status', { a: 1 }], 'decoded past unknown fields');
  t.throws(() => decodeControl(Buffer.from([0x08, 0x01])), { code: 'AMIX_ERR_PROTOCOL' }, 'request as a varint');
  t.throws(() => decodeControl(new Uint8Array(0)), { code: 'AMIX_ERR_PROTOCOL' }, 'empty frame');
  const enc = encodeControlBody(m);
  t.throws(() => decodeControl(enc.subarray(0, enc.length - 2)), { code: 'AMIX_ERR_PROTOCOL' }, 'truncated');
  t.throws(
    () => decodeControl(Buffer.from([0x0a, 0x02, 0x08, 0x01])),
    { code: 'AMIX_ERR_PROTOCOL' },
    'request without op',
  );
});

t.test('seeded fuzz: mutated and random bodies decode or fail with AMIX_ERR_PROTOCOL only', async (t) => {
  const rand = rng(Number(process.env.AMIX_FUZZ_SEED ?? 0xc0de));
  const bases = messages.filter((m) => JSON.stringify(m).length < 2000).map((m) => encodeControlBody(m));
  let other = 0;
  let rejected = 0;
  let decoded = 0;
  for (let i = 0; i < 20000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = new Uint8Array(Math.floor(rand() * 60));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
    } else {
      bytes = Uint8Array.from(bases[i % bases.length]!);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips && bytes.length > 0; k++)
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    }
    try {
      decodeControl(bytes);
      decoded++;
    } catch (err) {
      if ((err as AmixError).code === 'AMIX_ERR_PROTOCOL') rejected++;
      else other++;
    }
  }
  t.equal(other, 0, 'no error other than AMIX_ERR_PROTOCOL');
  t.ok(rejected > 1000 && decoded > 0, `both outcomes seen (${rejected} rejected, ${decoded} decoded)`);
});
