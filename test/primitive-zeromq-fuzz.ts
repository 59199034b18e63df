// Malformed frames on the zeromq primitive (seeded, reproducible fuzz):
// parseFrame fails with AMIX_ERR_BAD_FRAME only, and a receiving end fed
// garbage by a raw socket counts every bad frame, never crashes, and keeps
// serving its real sender.
import t from 'tap';
import * as zmq from 'zeromq';
import { PrimitiveRegistry, type AmixError } from '../dist/lib/index.js';
import { FrameKind, parseFrame, type ZeromqStats } from '../dist/primitives/zeromq.js';
import { rng } from './helpers/rng.js';

t.setTimeout(60_000);

const SEED = Number(process.env.AMIX_FUZZ_SEED ?? 0xa31c);

/** A valid DATA frame of `count` small messages, for mutation. */
function dataFrame(count: number): Buffer {
  const parts = [Buffer.from([FrameKind.data]), Buffer.alloc(8, 7), Buffer.alloc(8), Buffer.alloc(8)];
  for (let i = 0; i < count; i++) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(3);
    parts.push(len, Buffer.from('abc'));
  }
  return Buffer.concat(parts);
}

function fuzzFrames(rand: () => number, n: number): Buffer[] {
  const kinds = [FrameKind.data, FrameKind.hello, FrameKind.ping, FrameKind.credit, 0x00, 0x7f, 0xff];
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    let b: Buffer;
    switch (i % 3) {
      case 0:
        b = Buffer.alloc(Math.floor(rand() * 64));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
        break;
      case 1:
        b = Buffer.alloc(1 + Math.floor(rand() * 40));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
        b[0] = kinds[Math.floor(rand() * kinds.length)]!;
        break;
      default: {
        b = dataFrame(1 + Math.floor(rand() * 4));
        const flips = 1 + Math.floor(rand() * 3);
        for (let k = 0; k < flips; k++) b[1 + Math.floor(rand() * (b.length - 1))] = Math.floor(rand() * 256);
        if (rand() < 0.5) b = b.subarray(0, Math.floor(rand() * b.length));
      }
    }
    out.push(b);
  }
  return out;
}

t.test('parseFrame accepts or rejects with AMIX_ERR_BAD_FRAME, nothing else', async (t) => {
  const rand = rng(SEED);
  let other = 0;
  let rejected = 0;
  for (const f of fuzzFrames(rand, 30_000)) {
    try {
      parseFrame(f, 1024);
    } catch (err) {
      if ((err as AmixError).code === 'AMIX_ERR_BAD_FRAME') rejected++;
      else other++;
    }
  }
  t.equal(other, 0, `seed ${SEED}: no other kind of error`);
  t.ok(rejected > 20_000, `seed ${SEED}: ${rejected} of 30000 rejected`);
  t.throws(() => parseFrame(Buffer.alloc(0)), { code: 'AMIX_ERR_BAD_FRAME' }, 'an empty frame');
  const big = dataFrame(1);
  big.writeUInt32BE(2000, 25);
  t.throws(() => parseFrame(big, 1024), { code: 'AMIX_ERR_BAD_FRAME' }, 'a length past the end');
});

t.test('a receiving end counts garbage from a raw socket and keeps serving its sender', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rand = rng(SEED + 1);
  const garbage = fuzzFrames(rand, 3000).filter((f) => {
    try {
      parseFrame(f, 1024);
      return false;
    } catch {
      return true;
    }
  });
  const expected = garbage.length + 5 + 3;
  const errors: AmixError[] = [];
  let allSeen!: () => void;
  const seen = new Promise<void>((r) => {
    allSeen = r;
  });
  const rx = await reg.open('zeromq', {
    maxMessageBytes: 1024,
    zeromq: {
      onBadFrame: (e: AmixError) => {
        errors.push(e);
        if (errors.length === expected) allSeen();
      },
    },
  } as never);
  t.teardown(() => rx.destroy());
  const raw = new zmq.Dealer({ linger: 0 });
  t.teardown(() => raw.close());
  raw.connect(String(rx.address.endpoint));
  for (const f of garbage) await raw.send(f);
  for (let i = 0; i < 5; i++) await raw.send([Buffer.from([FrameKind.ping]), Buffer.from('two parts')]);
  const credit = Buffer.alloc(30);
  credit[0] = FrameKind.credit;
  for (let i = 0; i < 3; i++) await raw.send(credit);
  await seen;
  t.equal((rx.stats() as ZeromqStats).badFrames, expected, `all ${expected} bad frames counted`);
  t.ok(
    errors.every((e) => e.code === 'AMIX_ERR_BAD_FRAME'),
    'each reported as AMIX_ERR_BAD_FRAME',
  );
  const tx = await reg.open('zeromq', { address: rx.address });
  t.teardown(() => tx.destroy());
  await tx.connect();
  for (let i = 0; i < 100; i++) await tx.send(Buffer.from(`ok${i}`));
  let bad = 0;
  for (let i = 0; i < 100; i++) if (Buffer.from(await rx.receive()).toString() !== `ok${i}`) bad++;
  t.equal(bad, 0, 'the real sender is served, in order');
  t.equal(rx.tryReceive(), undefined, 'no garbage was delivered as a message');
});
