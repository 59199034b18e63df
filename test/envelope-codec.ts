// The remote envelope: round trips, the embedded schema agrees with
// lib/remote/envelope.proto, and malformed bytes (seeded fuzz) are rejected with
// AMIX_ERR_BAD_FRAME, never with anything else.
import t from 'tap';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import {
  ENVELOPE_PROTO,
  ENVELOPE_TYPE,
  EnvelopeReader,
  decodeEnvelope,
  encodeEnvelope,
  envelopeWriter,
  scanEnvelope,
  withBase,
} from '../dist/lib/remote/envelope.js';
import { rng } from './helpers/rng.js';

t.test('the embedded schema and lib/remote/envelope.proto describe the same message', async (t) => {
  const file = readFileSync(new URL('../lib/remote/envelope.proto', import.meta.url), 'utf8');
  const fromFile = protobuf.parse(file, { keepCase: true }).root.lookupType(ENVELOPE_TYPE).toJSON();
  const embedded = protobuf.parse(ENVELOPE_PROTO, { keepCase: true }).root.lookupType(ENVELOPE_TYPE).toJSON();
  t.same(embedded, fromFile, 'same fields, numbers and types');
});

t.test('an envelope round-trips with identifiers, sequence and payload intact', async (t) => {
  const payload = new Uint8Array([0, 1, 2, 255]);
  const cases = [
    { sender: 'dirA.7', receiver: 'dirB.3', sequence: 0, payload },
    { sender: 'x', receiver: 'ü-ñ', sequence: 2 ** 53 - 1, payload: new Uint8Array(0) },
    { sender: 'a'.repeat(1024), receiver: 'b', sequence: 123456789012, payload: new Uint8Array(70000).fill(7) },
  ];
  for (const env of cases) {
    const got = decodeEnvelope(encodeEnvelope(env));
    t.equal(got.sender, env.sender, 'sender');
    t.equal(got.receiver, env.receiver, 'receiver');
    t.equal(got.sequence, env.sequence, `sequence ${env.sequence}`);
    t.equal(
      Buffer.compare(Buffer.from(got.payload), Buffer.from(env.payload)),
      0,
      `payload of ${env.payload.length} bytes`,
    );
  }
});

t.test('encode refuses an envelope it could not decode again', async (t) => {
  const payload = new Uint8Array(1);
  t.throws(
    () => encodeEnvelope({ sender: '', receiver: 'b', sequence: 0, payload }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'empty sender',
  );
  t.throws(
    () => encodeEnvelope({ sender: 'a', receiver: 'b'.repeat(1025), sequence: 0, payload }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'receiver too long',
  );
  t.throws(
    () => encodeEnvelope({ sender: 'a', receiver: 'b', sequence: -1, payload }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'negative sequence',
  );
  t.throws(
    () => encodeEnvelope({ sender: 'a', receiver: 'b', sequence: 2 ** 53, payload }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'unsafe sequence',
  );
  t.throws(
    () => encodeEnvelope({ sender: 'a', receiver: 'b', sequence: 0, payload: 'x' as unknown as Uint8Array }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'payload not bytes',
  );
});

t.test('decode rejects malformed envelopes with AMIX_ERR_BAD_FRAME', async (t) => {
  const good = encodeEnvelope({ sender: 'dirA.7', receiver: 'dirB.3', sequence: 9, payload: new Uint8Array(10) });
  t.throws(() => decodeEnvelope(good.subarray(0, good.length - 3)), { code: 'AMIX_ERR_BAD_FRAME' }, 'truncated');
  t.throws(() => decodeEnvelope(new Uint8Array(0)), { code: 'AMIX_ERR_BAD_FRAME' }, 'empty: no identifiers');
  const Type = protobuf.parse(ENVELOPE_PROTO, { keepCase: true }).root.lookupType(ENVELOPE_TYPE);
  const noReceiver = Type.encode({ sender: 'a', sequence: 1 }).finish();
  t.throws(() => decodeEnvelope(noReceiver), { code: 'AMIX_ERR_BAD_FRAME' }, 'missing receiver');
  const huge = Type.encode({
    sender: 'a',
    receiver: 'b',
    sequence: protobuf.util.Long.fromString('18446744073709551615', true),
  }).finish();
  t.throws(() => decodeEnvelope(huge), { code: 'AMIX_ERR_BAD_FRAME' }, 'sequence beyond 2^53');
  t.throws(() => decodeEnvelope(Buffer.from([0x0f])), { code: 'AMIX_ERR_BAD_FRAME' }, 'invalid wire type');
});

t.test('seeded fuzz: random and mutated bytes decode or fail with AMIX_ERR_BAD_FRAME only', async (t) => {
  const seed = Number(process.env.AMIX_FUZZ_SEED ?? 0x5eed);
  const rand = rng(seed);
  const base = encodeEnvelope({
    sender: 'dirA.7',
    receiver: 'dirB.3',
    sequence: 77,
    payload: new Uint8Array(40).fill(3),
  });
  let other = 0;
  let rejected = 0;
  let decoded = 0;
  for (let i = 0; i < 20000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = new Uint8Array(Math.floor(rand() * 80));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
    } else {
      bytes = Uint8Array.from(base);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      if (rand() < 0.3) bytes = bytes.subarray(0, Math.floor(rand() * bytes.length));
    }
    try {
      const env = decodeEnvelope(bytes);
      decoded++;
      if (env.sender.length === 0 || env.receiver.length === 0 || !Number.isSafeInteger(env.sequence)) other++;
    } catch (err) {
      if ((err as { code?: string }).code === 'AMIX_ERR_BAD_FRAME') rejected++;
      else other++;
    }
  }
  t.equal(other, 0, `seed ${seed}: no other error and no invalid envelope accepted`);
  t.ok(rejected > 10000, `seed ${seed}: most inputs rejected (${rejected}, ${decoded} decoded)`);
});

t.test('envelopeWriter writes what protobufjs writes, and both decoders agree', async (t) => {
  const { envelopeWriter } = await import('../dist/lib/remote/envelope.js');
  const random = rng(31);
  for (let i = 0; i < 500; i++) {
    const sender = `${'s'.repeat(1 + Math.floor(random() * 40))}.${i}`;
    const receiver = i % 7 === 0 ? 'é→雪.1' : `r${Math.floor(random() * 1e9)}.2`;
    const sequence = i % 5 === 0 ? 0 : i % 11 === 0 ? Number.MAX_SAFE_INTEGER - i : Math.floor(random() * 2 ** 40);
    const payload = new Uint8Array(Math.floor(random() * 300)).map(() => Math.floor(random() * 256));
    const fast = envelopeWriter(sender, receiver)(sequence, payload);
    const ref = encodeEnvelope({ sender, receiver, sequence, payload });
    if (!Buffer.from(fast).equals(Buffer.from(ref))) {
      t.fail(`case ${i}: bytes differ`);
      return;
    }
    const back = decodeEnvelope(fast);
    if (
      back.sender !== sender ||
      back.receiver !== receiver ||
      back.sequence !== sequence ||
      !Buffer.from(back.payload).equals(Buffer.from(payload))
    ) {
      t.fail(`case ${i}: does not round-trip`);
      return;
    }
  }
  t.pass('500 envelopes: identical bytes, round trip');
});

t.test('envelopeWriter.many writes a batch into one buffer, each envelope what protobufjs writes', async (t) => {
  const { envelopeWriter } = await import('../dist/lib/remote/envelope.js');
  const random = rng(33);
  const sender = 'a1b2c3d4e5f60718.12';
  const receiver = 'ffeeddccbbaa9988.3';
  const wrap = envelopeWriter(sender, receiver);
  // Sequence numbers cross the varint size steps (127/128, 16383/16384, 2^35), so envelope sizes vary inside a batch.
  for (const first of [0, 100, 16_300, 2 ** 35 - 50]) {
    const payloads = Array.from({ length: 200 }, () =>
      new Uint8Array(Math.floor(random() * 200)).map(() => Math.floor(random() * 256)),
    );
    const frames = wrap.many(first, payloads);
    t.equal(frames.length, payloads.length, `first ${first}: one frame per payload`);
    t.ok(
      frames.every((f) => f.buffer === frames[0]!.buffer),
      `first ${first}: all views of one buffer`,
    );
    const bad = frames.findIndex(
      (f, i) =>
        !Buffer.from(f).equals(
          Buffer.from(encodeEnvelope({ sender, receiver, sequence: first + i, payload: payloads[i]! })),
        ),
    );
    t.equal(bad, -1, `first ${first}: every envelope byte-identical to protobufjs`);
    t.equal(
      frames.reduce((n, f) => n + f.length, 0),
      frames[0]!.buffer.byteLength,
      `first ${first}: the views tile the buffer exactly`,
    );
  }
  t.same(wrap.many(5, []), [], 'an empty batch gives no frames');
});

t.test(
  "EnvelopeReader matches its flow's envelopes and reads what scanEnvelope reads; anything it matches, scanEnvelope accepts alike",
  async (t) => {
    const { EnvelopeReader, envelopeWriter, scanEnvelope, envelopeIdentifier } =
      await import('../dist/lib/remote/envelope.js');
    const random = rng(34);
    const sender = 'a1b2c3d4e5f60718.12';
    const receiver = 'ffeeddccbbaa9988.3';
    const reader = new EnvelopeReader(sender, receiver);
    const wrap = envelopeWriter(sender, receiver);
    const other = envelopeWriter(sender, 'ffeeddccbbaa9988.4');
    let matched = 0;
    let disagreed = 0;
    let mutatedMatches = 0;
    for (let i = 0; i < 5000; i++) {
      const seq = i % 3 === 0 ? i : Math.floor(random() * 2 ** 50);
      const payload = new Uint8Array(Math.floor(random() * 300)).map(() => Math.floor(random() * 256));
      const good = wrap(seq, payload);
      if (
        !reader.match(good) ||
        reader.sequence !== seq ||
        !Buffer.from(good.subarray(reader.payloadStart)).equals(Buffer.from(payload))
      )
        disagreed++;
      else matched++;
      if (reader.match(other(seq, payload))) disagreed++;
      // Flip, cut or extend the bytes: whatever the reader still matches must scan to the same fields.
      const m = Uint8Array.from(good);
      const k = Math.floor(random() * 3);
      const bad =
        k === 0
          ? ((m[Math.floor(random() * m.length)] ^= 1 << Math.floor(random() * 8)), m)
          : k === 1
            ? m.subarray(0, Math.floor(random() * m.length))
            : Uint8Array.from([...m, Math.floor(random() * 256)]);
      if (reader.match(bad)) {
        mutatedMatches++;
        try {
          const span = scanEnvelope(bad);
          const same =
            envelopeIdentifier(bad, span.senderStart, span.senderEnd, 'sender') === sender &&
            envelopeIdentifier(bad, span.receiverStart, span.receiverEnd, 'receiver') === receiver &&
            span.sequence === reader.sequence &&
            span.payloadStart === reader.payloadStart &&
            span.payloadEnd === bad.length;
          if (!same) disagreed++;
        } catch {
          disagreed++;
        }
      }
    }
    t.equal(matched, 5000, 'every envelope of the flow matched, with its sequence and payload');
    t.equal(
      disagreed,
      0,
      `no disagreement with scanEnvelope (${mutatedMatches} mutated envelopes still matched, all alike)`,
    );
  },
);

t.test('garbage: the fast decoder rejects with AMIX_ERR_BAD_FRAME and never throws anything else', async (t) => {
  const random = rng(32);
  const good = encodeEnvelope({
    sender: 'a'.repeat(16) + '.1',
    receiver: 'b'.repeat(16) + '.2',
    sequence: 99,
    payload: new Uint8Array(40),
  });
  let rejected = 0;
  let other = 0;
  for (let i = 0; i < 20_000; i++) {
    // Half pure noise, half a real envelope with bytes flipped, cut or appended.
    let m: Uint8Array;
    if (i % 2 === 0) m = new Uint8Array(Math.floor(random() * 80)).map(() => Math.floor(random() * 256));
    else {
      m = Uint8Array.from(good);
      for (let k = 0; k < 1 + Math.floor(random() * 3); k++)
        m[Math.floor(random() * m.length)] = Math.floor(random() * 256);
      if (random() < 0.3) m = m.subarray(0, Math.floor(random() * m.length));
    }
    // A Buffer (what the zeromq primitive hands out) and a plain Uint8Array decode alike.
    const outcome = (input: Uint8Array): string => {
      try {
        const e = decodeEnvelope(input);
        return JSON.stringify([e.sender, e.receiver, e.sequence, [...e.payload]]);
      } catch (err) {
        if ((err as { code?: string }).code === 'AMIX_ERR_BAD_FRAME') {
          rejected++;
          return 'bad';
        }
        other++;
        return 'other';
      }
    };
    if (outcome(m) !== outcome(Buffer.from(m))) {
      t.fail(`case ${i}: Buffer and Uint8Array decode differently`);
      return;
    }
  }
  t.equal(other, 0, 'no error other than AMIX_ERR_BAD_FRAME');
  t.ok(rejected > 10_000, `most garbage rejected (${rejected} of 40000)`);
});

t.test("a re-sent envelope's base: written by withBase as protobufjs writes it, read by the scan only", async (t) => {
  const payload = new Uint8Array([9, 8, 7]);
  const first = envelopeWriter('dirA.7', 'dirB.3')(41, payload);
  const marked = withBase(first, 40);
  t.same(
    Buffer.from(marked),
    Buffer.from(encodeEnvelope({ sender: 'dirA.7', receiver: 'dirB.3', sequence: 41, payload, base: 40 })),
    'the same bytes as the reference encoder',
  );
  const got = decodeEnvelope(marked);
  t.equal(got.base, 40, 'base');
  t.equal(got.sequence, 41, 'sequence');
  t.same([...got.payload], [9, 8, 7], 'payload intact (the mark follows it)');
  t.equal(decodeEnvelope(first).base, undefined, 'absent on a first send');
  t.equal(scanEnvelope(first).base, -1, 'the scan reports it absent as -1');
  const reader = new EnvelopeReader('dirA.7', 'dirB.3');
  t.ok(reader.match(first), 'the fast reader takes a first send');
  t.notOk(reader.match(marked), 'but leaves a marked one to the scan');
  t.throws(
    () => encodeEnvelope({ sender: 'a', receiver: 'b', sequence: 0, payload, base: -1 }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'a negative base is refused',
  );
  const bad = Buffer.concat([first, Buffer.from([0x2a, 0x01, 0x00])]);
  t.throws(() => decodeEnvelope(bad), { code: 'AMIX_ERR_BAD_FRAME' }, 'base with a length wire type');
});

t.test('encodeEnvelope writes the bytes protobufjs writes (the reference codec)', async (t) => {
  const Type = protobuf.parse(ENVELOPE_PROTO, { keepCase: true }).root.lookupType(ENVELOPE_TYPE);
  const rand = rng(0xe1);
  for (let i = 0; i < 300; i++) {
    const env: { sender: string; receiver: string; sequence: number; payload: Uint8Array; base?: number } = {
      sender: `dir${i}.${Math.floor(rand() * 1e6)}`,
      receiver: i % 7 === 0 ? 'ü-ñ-☃' : `r.${i}`,
      sequence: i % 5 === 0 ? 0 : Math.floor(rand() * 2 ** (1 + (i % 53))),
      payload: new Uint8Array(Math.floor(rand() * (i % 3 === 0 ? 300 : 20))).fill(i & 255),
    };
    if (i % 4 === 0) env.base = i % 8 === 0 ? 0 : Math.floor(rand() * 1e9);
    const ours = encodeEnvelope(env);
    const reference = Type.encode(env).finish();
    if (Buffer.compare(Buffer.from(ours), Buffer.from(reference)) !== 0) {
      t.fail(
        `envelope ${i} differs from protobufjs: ${Buffer.from(ours).toString('hex')} vs ${Buffer.from(reference).toString('hex')}`,
      );
      return;
    }
  }
  t.pass('300 envelopes byte for byte equal, with and without base');
});
