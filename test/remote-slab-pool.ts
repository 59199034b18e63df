// The pooled slabs an outgoing flow writes its envelopes into (lib/remote/slabPool.ts): a slab is
// written again only once every envelope in it was reported taken AND every send carrying them settled.
import t from 'tap';
import { FlowSlabs, POOL_MAX_FREE, SLAB_BYTES, SlabPool } from '../dist/lib/remote/slabPool.js';
import { decodeEnvelope, envelopeWriter } from '../dist/lib/remote/envelope.js';

/** Fill a carved region with `v`, as the pump's envelope writer would. */
const fill = (c: { bytes: Uint8Array }, v: number) => c.bytes.fill(v);

t.test('a full slab is not reused while a send of it is pending, nor before its envelopes are taken', async (t) => {
  const pool = new SlabPool();
  const f = new FlowSlabs(pool, 0);
  const big = Math.floor(SLAB_BYTES / 2) + 1; // two of these do not fit one slab
  const a = f.carve(big, 256);
  fill(a, 1);
  const b = f.carve(big, 512); // a's slab is now full (held), b gets a second one
  fill(b, 2);
  t.not(a.bytes.buffer, b.bytes.buffer, 'a batch that does not fit goes to another slab');
  t.equal(pool.stats.allocated, 2);
  f.acked(256); // a's envelopes taken, but its send has not settled
  t.equal(pool.free, 0, 'taken but still being sent: not back in the pool');
  const c = f.carve(big, 768); // b's slab full: a third one
  fill(c, 3);
  t.equal(pool.stats.allocated, 3, 'a new slab, not the one still being sent');
  t.ok(
    a.bytes.every((x) => x === 1),
    'the pending batch was not overwritten',
  );
  f.settled(a.slab);
  t.equal(pool.free, 1, 'taken and sent: back in the pool');
  f.settled(b.slab); // sent, but not taken
  t.equal(pool.free, 1, 'sent but not taken: kept for a re-send');
  t.ok(
    b.bytes.every((x) => x === 2),
    'what may be re-sent is intact',
  );
  f.acked(512);
  t.equal(pool.free, 2, 'taken as well: back in the pool');
  const d = f.carve(big, 1024);
  t.equal(pool.stats.reused, 1, 'the next slab comes from the pool');
  t.not(d.bytes.buffer, c.bytes.buffer, 'never the slab still pending');
});

t.test('the slab being written is rewound once all of it is taken and sent', async (t) => {
  const pool = new SlabPool();
  const f = new FlowSlabs(pool, 0);
  const a = f.carve(1000, 10);
  const b = f.carve(1000, 20);
  t.equal(b.bytes.byteOffset, 1000, 'batches follow each other in the slab');
  f.acked(20);
  f.settled(a.slab);
  const c = f.carve(1000, 30);
  t.equal(c.bytes.byteOffset, 2000, 'not rewound while a send of it is pending');
  f.settled(b.slab);
  f.settled(c.slab);
  f.acked(30);
  const d = f.carve(1000, 40);
  t.equal(d.bytes.byteOffset, 0, 'rewound: everything in it taken and sent');
  t.equal(pool.stats.allocated, 1, 'one slab for the lot');
});

t.test(
  'a batch larger than a slab gets a buffer of its own; close keeps what is still in use out of the pool',
  async (t) => {
    const pool = new SlabPool();
    const f = new FlowSlabs(pool, 0);
    const huge = f.carve(SLAB_BYTES + 1, 1);
    t.equal(huge.slab, undefined, 'not pooled');
    t.equal(huge.bytes.length, SLAB_BYTES + 1);
    f.settled(huge.slab);
    const a = f.carve(100, 2);
    f.close();
    t.equal(pool.free, 0, 'a slab with a pending send is not given back at close');
    f.settled(a.slab);
    f.acked(2);
    t.equal(pool.free, 0, 'nor later: the closed flow dropped it');
    const g = new FlowSlabs(pool, 0);
    const b = g.carve(100, 1);
    g.settled(b.slab);
    g.acked(1);
    g.close();
    t.equal(pool.free, 1, 'taken and sent: back at close');
  },
);

t.test('the pool keeps at most POOL_MAX_FREE free slabs', async (t) => {
  const pool = new SlabPool();
  const slabs = Array.from({ length: POOL_MAX_FREE + 3 }, () => pool.take());
  for (const s of slabs) pool.give(s);
  t.equal(pool.free, POOL_MAX_FREE);
  t.equal(pool.stats.dropped, 3);
  pool.give(new Uint8Array(10));
  t.equal(pool.free, POOL_MAX_FREE, 'a buffer of another size is never pooled');
});

t.test('envelopes written into a carved region are the bytes of a buffer of their own', async (t) => {
  const wrap = envelopeWriter('dirA.7', 'dirB.3');
  const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(9)];
  const own = wrap.many(5, payloads);
  const pool = new SlabPool();
  const f = new FlowSlabs(pool, 0);
  f.carve(17, 1).bytes.fill(0xee); // something before, to be left alone
  const region = f.carve(wrap.bytes(5, payloads), 8);
  region.bytes.fill(0xff); // a reused slab holds old bytes
  const into = wrap.many(5, payloads, region.bytes);
  t.same(
    into.map((e) => [...e]),
    own.map((e) => [...e]),
  );
  t.equal(into[0]!.byteOffset, 17, 'written at the region, not at the start of the slab');
  t.equal(decodeEnvelope(into[2]!).sequence, 7);
});
