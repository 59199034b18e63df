// Malformed input never hurts a queueConditionProcess receiver: a seeded
// fuzz of the frame decoder (random streams, random splits, thousands of
// cases, reproducible from the printed seed), the same garbage thrown at a
// real child process over its socket, and an oversize frame that closes only
// its own connection. Reproduce a run with AMIX_FUZZ_SEED=<seed>.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { FrameDecoder } from '../dist/lib/core/framing.js';
import { FrameKind, PROTOCOL_VERSION, receiverFrameRules } from '../dist/primitives/queueConditionProcess.js';
import { spawnPeer, tempDir } from './fixtures/process-helpers.js';
import { rng } from './helpers/rng.js';

const seed = Number(process.env.AMIX_FUZZ_SEED ?? 0x5eed);
t.comment(`fuzz seed ${seed} (reproduce with AMIX_FUZZ_SEED=${seed})`);

const MAX = 1024;
const RULES = receiverFrameRules(MAX);
const KINDS = RULES.map((r, k) => (r ? k : -1)).filter((k) => k >= 0);

function frame(kind: number, len: number, fill: number): Buffer {
  const b = Buffer.alloc(5 + len, fill);
  b.writeUInt32LE(len, 0);
  b[4] = kind;
  return b;
}

/** A random stream: mostly valid frames, with a random kind of damage in some cases. */
function randomStream(r: () => number): { bytes: Buffer; valid: boolean } {
  const parts: Buffer[] = [];
  const n = Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    const kind = KINDS[Math.floor(r() * KINDS.length)]!;
    const rule = RULES[kind]!;
    const len = rule.min + Math.floor(r() * Math.min(rule.max - rule.min + 1, 300));
    parts.push(frame(kind, len, Math.floor(r() * 256)));
  }
  const damage = Math.floor(r() * 6);
  if (damage === 1) parts.push(randomBytes(1 + Math.floor(r() * 64))); // pure garbage
  if (damage === 2) parts.push(frame(KINDS[0]!, 0, 0).fill(0xff, 0, 4)); // length 4 GiB - 1
  if (damage === 3) {
    const f = frame(0, 0, 0);
    f[4] = 9 + Math.floor(r() * 247);
    parts.push(f);
  } // unknown kind
  if (damage === 4) {
    const f = frame(FrameKind.hello, 3, 1);
    parts.push(f);
  } // wrong size for its kind
  if (damage === 5) {
    const f = frame(0, 0, 0);
    f.writeUInt32LE(MAX + 1 + Math.floor(r() * 1e6), 0);
    parts.push(f);
  } // oversize data
  return { bytes: Buffer.concat(parts), valid: damage === 0 };
}

interface Outcome {
  frames: string[];
  code: string | null;
  other: unknown;
}

function decode(bytes: Buffer, splits: number[]): Outcome {
  const frames: string[] = [];
  const d = new FrameDecoder({ maxPayloadBytes: MAX, kinds: RULES }, (kind, buf, s, e) => {
    frames.push(`${kind}:${buf.toString('hex', s, e)}`);
  });
  let at = 0;
  try {
    for (const cut of [...splits, bytes.length]) {
      d.push(bytes.subarray(at, cut));
      at = cut;
    }
    return { frames, code: null, other: null };
  } catch (err) {
    const code = (err as { code?: string }).code ?? null;
    if (code === 'AMIX_ERR_BAD_FRAME' || code === 'AMIX_ERR_FRAME_TOO_LARGE') return { frames, code, other: null };
    return { frames, code, other: err };
  }
}

t.test('the decoder gives the same frames or the same coded error for any split of any stream', async (t) => {
  const r = rng(seed);
  const cases = 5000;
  let failures = 0;
  let errors = 0;
  let validOk = 0;
  for (let c = 0; c < cases; c++) {
    const { bytes, valid } = randomStream(r);
    const whole = decode(bytes, []);
    const nSplits = Math.floor(r() * 12);
    const splits = Array.from({ length: nSplits }, () => Math.floor(r() * (bytes.length + 1))).sort((a, b) => a - b);
    const split = decode(bytes, splits);
    const byteWise =
      c % 10 === 0
        ? decode(
            bytes,
            Array.from({ length: bytes.length }, (_, i) => i),
          )
        : split;
    const same = (a: Outcome, b: Outcome) => a.code === b.code && a.frames.join() === b.frames.join();
    if (
      whole.other ||
      split.other ||
      byteWise.other ||
      !same(whole, split) ||
      !same(whole, byteWise) ||
      (valid && whole.code !== null)
    ) {
      failures++;
      if (failures <= 3)
        t.fail(
          `case ${c}: whole=${whole.code} split=${split.code} other=${String(whole.other ?? split.other ?? byteWise.other)} (seed ${seed})`,
        );
    }
    if (whole.code) errors++;
    if (valid && whole.code === null) validOk++;
  }
  t.equal(failures, 0, `${cases} streams: every split decodes alike; malformed ones fail with a frame error code`);
  t.ok(errors > cases / 10, `the fuzzer produced malformed streams (${errors}) and they were refused with a code`);
  t.ok(validOk > cases / 10, `well-formed streams (${validOk}) decoded without error`);
});

t.test('a decoder that failed keeps failing with the same error', async (t) => {
  const d = new FrameDecoder({ maxPayloadBytes: 8 }, () => {});
  t.throws(
    () => d.push(frame(0, 9, 0)),
    { code: 'AMIX_ERR_FRAME_TOO_LARGE' },
    'oversize header refused before its payload',
  );
  t.throws(() => d.push(frame(0, 1, 0)), { code: 'AMIX_ERR_FRAME_TOO_LARGE' }, 'later input gets the same error');
});

function hello(): Buffer {
  const p = Buffer.alloc(33);
  p[0] = PROTOCOL_VERSION;
  randomBytes(16).copy(p, 1);
  return Buffer.concat(
    [frame(FrameKind.hello, 0, 0).subarray(0, 5), p].map((b, i) => (i === 0 ? (b.writeUInt32LE(33, 0), b) : b)),
  );
}

/** Write `bytes` in random pieces, end, and resolve with what the receiver wrote back when it closed. */
function throwAt(path: string, bytes: Buffer, r: () => number): Promise<Buffer> {
  return new Promise((resolve) => {
    const s: Socket = connect(path);
    const back: Buffer[] = [];
    s.on('data', (c: Buffer) => back.push(c));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(back)));
    s.on('connect', () => {
      let at = 0;
      while (at < bytes.length) {
        const n = 1 + Math.floor(r() * 200);
        s.write(bytes.subarray(at, at + n));
        at += n;
      }
      s.end();
    });
  });
}

t.test('garbage on the socket of a receiver in a child process closes only that connection', async (t) => {
  const runtimeDir = tempDir(t);
  const r = rng(seed ^ 0x5bd1e995);
  const count = 200;
  const peer = spawnPeer(t, { role: 'receive', runtimeDir, expect: count, options: { maxMessageBytes: MAX } });
  const { address } = await peer.next<{ address: { path: string } }>((m) => 'address' in m, 'the receiver address');
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const tx = await reg.open('queueConditionProcess', { address, maxMessageBytes: MAX });
  t.teardown(() => tx.destroy());
  const cases = 300;
  let refusedWithCode = 0;
  for (let c = 0; c < cases; c += 10) {
    const batch = [];
    for (let j = 0; j < 10; j++) {
      const { bytes } = randomStream(r);
      batch.push(throwAt(address.path, r() < 0.5 ? Buffer.concat([hello(), bytes]) : bytes, r));
    }
    for (const back of await Promise.all(batch))
      if (/AMIX_ERR_[A-Z_]+/.test(back.toString('latin1'))) refusedWithCode++;
    // The legitimate sender keeps going between the bursts of garbage.
    for (let i = 0; i < 10; i++) {
      const m = Buffer.alloc(8);
      m.writeUInt32LE(c * 2 + i, 0);
      await tx.send(m);
    }
  }
  for (let i = 0; i < count - (cases / 10) * 10; i++) {
    const m = Buffer.alloc(8);
    m.writeUInt32LE(cases * 2 + i, 0);
    await tx.send(m);
  }
  const done = await peer.next<{ done: number }>((m) => 'done' in m, 'the receiver got every legitimate message');
  t.equal(done.done, count, `the child survived ${cases} garbage connections and received every legitimate message`);
  t.ok(refusedWithCode > 0, `malformed connections were told why, with a code (${refusedWithCode})`);
  t.equal(peer.proc.exitCode, null, 'the receiving process is still running');
});

t.test(
  'an oversize frame closes its own connection with AMIX_ERR_FRAME_TOO_LARGE; another sender is unaffected',
  async (t) => {
    const runtimeDir = tempDir(t);
    const count = 2000;
    const peer = spawnPeer(t, { role: 'receive', runtimeDir, expect: count, options: { maxMessageBytes: MAX } });
    const { address } = await peer.next<{ address: { path: string } }>((m) => 'address' in m, 'the receiver address');
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    const tx = await reg.open('queueConditionProcess', { address, maxMessageBytes: MAX });
    t.teardown(() => tx.destroy());
    const m = Buffer.alloc(MAX);
    for (let i = 0; i < count / 2; i++) {
      m.writeUInt32LE(i, 0);
      await tx.send(m);
    }
    const oversize = frame(FrameKind.data, 0, 0);
    oversize.writeUInt32LE(MAX + 1, 0);
    const back = await throwAt(address.path, Buffer.concat([hello(), oversize, Buffer.alloc(MAX + 1)]), () => 0.5);
    t.match(back.toString('latin1'), /AMIX_ERR_FRAME_TOO_LARGE/, 'the offending connection was told why and closed');
    for (let i = count / 2; i < count; i++) {
      m.writeUInt32LE(i, 0);
      await tx.send(m);
    }
    const done = await peer.next<{ done: number; bad: number }>((x) => 'done' in x, 'the receiver finished');
    t.equal(done.done, count, 'the other sender delivered every message');
    t.equal(done.bad, 0, 'in order');
    t.ok(tx.isOpen, 'the other sender stayed open');
  },
);
