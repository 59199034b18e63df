// Backpressure on a queueConditionThread ring: the maxmsg/minmsg watermarks
// with their events, each discard policy counted in the shared stats, and
// the size errors.
import t, { type Test } from 'tap';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { PrimitiveRegistry, type Channel, type ChannelEvent, type ChannelOptions } from '../dist/lib/index.js';

const peer = new URL('./fixtures/thread-peer.mjs', import.meta.url);

interface Pair {
  rx: Channel;
  tx: Channel;
  events: Array<{ end: 'rx' | 'tx'; e: ChannelEvent }>;
}

async function pair(t: Test, options: ChannelOptions): Promise<Pair> {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const events: Pair['events'] = [];
  const rx = await reg.open('queueConditionThread', options);
  t.teardown(() => rx.destroy());
  rx.on('event', (e: ChannelEvent) => events.push({ end: 'rx', e }));
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  tx.on('event', (e: ChannelEvent) => events.push({ end: 'tx', e }));
  return { rx, tx, events };
}

const num = (i: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i);
  return b;
};
const seqOf = (m: Uint8Array): number => new DataView(m.buffer, m.byteOffset, m.length).getUint32(0);
const kinds = (p: Pair): string[] =>
  p.events
    .filter((x) => x.e.type !== 'closed')
    .map((x) => `${x.end}:${x.e.type}${'pending' in x.e ? `@${x.e.pending}` : ''}`);

t.test('watermarks suspend the sender at maxmsg and resume it at minmsg, in that order', async (t) => {
  const p = await pair(t, { maxmsg: 8, minmsg: 2, discard: 'block' });
  for (let i = 0; i < 7; i++) t.ok(p.tx.trySend(num(i)), `message ${i} goes in below the mark`);
  t.same(kinds(p), [], 'no event below maxmsg');
  t.ok(p.tx.trySend(num(7)), 'the message reaching maxmsg is accepted');
  t.same(kinds(p), ['tx:suspended@8'], 'the sender sees the suspension when pending reaches maxmsg');
  t.notOk(p.tx.trySend(num(8)), 'a suspended sender cannot trySend');
  let sentLate = false;
  const late = p.tx.send(num(8)).then(() => {
    sentLate = true;
  });
  for (let i = 0; i < 5; i++) t.equal(seqOf(await p.rx.receive()), i, `receive ${i} in order`);
  t.notOk(p.tx.trySend(num(99)), 'still suspended at 3 pending (above minmsg)');
  t.notOk(sentLate, 'the blocked send has not gone through above minmsg');
  t.equal(seqOf(await p.rx.receive()), 5, 'the receive that reaches minmsg');
  t.same(kinds(p), ['tx:suspended@8', 'rx:resumed@2'], 'the receiver sees the resume when pending falls to minmsg');
  await late;
  t.same(
    kinds(p),
    ['tx:suspended@8', 'rx:resumed@2', 'tx:resumed@2'],
    'then the sender observes the resume and its send goes through',
  );
  const rest: number[] = [];
  for (let i = 0; i < 3; i++) rest.push(seqOf(await p.rx.receive()));
  t.same(rest, [6, 7, 8], 'the held message follows the others');
  t.equal(p.rx.stats().suspensions, 1, 'one suspension is counted');
  t.equal(p.tx.stats().suspensions, 1, 'both ends see the same counter');
});

t.test('block waits for bytes as well as for the message mark', async (t) => {
  const p = await pair(t, { capacityBytes: 1024, discard: 'block' });
  const big = new Uint8Array(300);
  let n = 0;
  while (p.tx.trySend(big)) n++;
  t.equal(n, 3, 'three 300-byte records fill a 1 KiB ring');
  const blocked = p.tx.send(big);
  t.equal((await p.rx.receive()).length, 300, 'a receive makes room');
  await t.resolves(blocked, 'the blocked send goes through once there is room');
  t.equal(p.rx.stats().pending, 3, 'three pending again');
});

t.test('dropNewest drops the message being sent, and counts it', async (t) => {
  const p = await pair(t, { maxmsg: 4, discard: 'dropNewest' });
  for (let i = 0; i < 6; i++) await p.tx.send(num(i));
  const got: number[] = [];
  let m: Uint8Array | undefined;
  while ((m = p.rx.tryReceive()) !== undefined) got.push(seqOf(m));
  t.same(got, [0, 1, 2, 3], 'the first four are kept, the newest two dropped');
  t.equal(p.rx.stats().dropped, 2, 'two drops counted in the shared stats');
  t.same(
    p.events.filter((x) => x.e.type === 'dropped').map((x) => x.e),
    [
      { type: 'dropped', policy: 'dropNewest', count: 1 },
      { type: 'dropped', policy: 'dropNewest', count: 1 },
    ],
    'each drop is an event on the sender',
  );
});

t.test('dropOldest drops the oldest pending message to make room, and counts it', async (t) => {
  const p = await pair(t, { maxmsg: 4, discard: 'dropOldest' });
  for (let i = 0; i < 6; i++) await p.tx.send(num(i));
  const got: number[] = [];
  let m: Uint8Array | undefined;
  while ((m = p.rx.tryReceive()) !== undefined) got.push(seqOf(m));
  t.same(got, [2, 3, 4, 5], 'the oldest two are gone, the newest four kept in order');
  t.equal(p.rx.stats().dropped, 2, 'two drops counted');
  t.equal(p.rx.stats().sent, 6, 'all six were accepted');
  t.same(
    p.events.filter((x) => x.e.type === 'dropped').map((x) => (x.e as { policy: string }).policy),
    ['dropOldest', 'dropOldest'],
    'each drop is an event',
  );
});

t.test('dropOldest also makes room for bytes', async (t) => {
  const p = await pair(t, { capacityBytes: 1024, discard: 'dropOldest' });
  for (let i = 0; i < 5; i++) {
    const b = new Uint8Array(300);
    b.set(num(i));
    await p.tx.send(b);
  }
  const got: number[] = [];
  let m: Uint8Array | undefined;
  while ((m = p.rx.tryReceive()) !== undefined) got.push(seqOf(m));
  t.same(got, [2, 3, 4], 'the oldest records were dropped for the newest');
  t.equal(p.rx.stats().dropped, 2, 'two drops counted');
});

t.test('reject refuses with AMIX_ERR_QUEUE_FULL at maxmsg, and counts it', async (t) => {
  const p = await pair(t, { maxmsg: 4, discard: 'reject' });
  for (let i = 0; i < 4; i++) await p.tx.send(num(i));
  await t.rejects(p.tx.send(num(4)), { code: 'AMIX_ERR_QUEUE_FULL' }, 'the fifth send is refused');
  t.throws(() => p.tx.trySend(num(5)), { code: 'AMIX_ERR_QUEUE_FULL' }, 'trySend throws the same code');
  t.equal(p.rx.stats().rejected, 2, 'both refusals counted');
  t.equal(seqOf(await p.rx.receive()), 0, 'the queued messages are intact');
  await t.resolves(p.tx.send(num(6)), 'a send below maxmsg goes through again');
});

t.test('dropOldest against a receiving worker loses nothing silently and never tears a message', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  // The ring's marks and policy are the receiving point's: the worker makes it with them.
  const ring = { maxmsg: 16, minmsg: 8, discard: 'dropOldest', capacityBytes: 4096 };
  const worker = new Worker(peer, { workerData: { role: 'recvCheck', idle: 'block', ring }, execArgv: [] });
  t.teardown(() => worker.terminate());
  const [ready] = (await once(worker, 'message')) as [{ address: Record<string, unknown> }];
  const done = once(worker, 'message');
  const tx = await reg.open('queueConditionThread', { address: ready.address });
  t.teardown(() => tx.destroy());
  const count = 200_000;
  const msg = new Uint8Array(64);
  for (let i = 0; i < count; i++) {
    new DataView(msg.buffer).setUint32(0, i);
    for (let j = 4; j < 64; j++) msg[j] = (i * 7 + j) & 0xff;
    if (!tx.trySend(msg)) await tx.send(msg);
  }
  await tx.send(new Uint8Array(0));
  const [report] = (await done) as [
    { received: number; bad: number; outOfOrder: number; last: number; stats: { dropped: number; sent: number } },
  ];
  t.equal(report.bad, 0, 'no torn message was delivered');
  t.equal(report.outOfOrder, 0, 'messages arrive in order');
  t.equal(report.last, count - 1, 'the newest message arrives');
  t.equal(report.received + report.stats.dropped, count, 'every message is either received or counted as dropped');
  // A sleeping receiver with 16 slots cannot keep up with a sender in a tight loop.
  t.ok(report.stats.dropped > 0, `the race was exercised: ${report.stats.dropped} dropped as oldest`);
});

t.test(
  'an oversize send gives AMIX_ERR_MESSAGE_TOO_LARGE; an undersized receive gives AMIX_ERR_BUFFER_TOO_SMALL',
  async (t) => {
    const p = await pair(t, { capacityBytes: 1024 });
    await t.rejects(
      p.tx.send(new Uint8Array(1017)),
      { code: 'AMIX_ERR_MESSAGE_TOO_LARGE' },
      'larger than the ring carries (1 KiB less its 8-byte record header)',
    );
    t.throws(
      () => p.tx.trySend(new Uint8Array(5000)),
      { code: 'AMIX_ERR_MESSAGE_TOO_LARGE' },
      'trySend throws the same code',
    );
    await p.tx.send(new Uint8Array(1016));
    await t.rejects(p.rx.receive({ maxBytes: 1015 }), { code: 'AMIX_ERR_BUFFER_TOO_SMALL' }, 'receive one byte short');
    t.throws(() => p.rx.tryReceive(10), { code: 'AMIX_ERR_BUFFER_TOO_SMALL' }, 'tryReceive throws the same code');
    t.equal((await p.rx.receive({ maxBytes: 1016 })).length, 1016, 'the message stayed queued and arrives whole');
  },
);

t.test('the batching fast paths move runs of messages in order and stop at the mark', async (t) => {
  const { default: qct } = await import('../dist/primitives/queueConditionThread.js');
  const rx = await qct.create({ maxmsg: 10, discard: 'block' });
  t.teardown(() => qct.destroy(rx));
  const tx = await qct.create({ address: rx.address });
  t.teardown(() => qct.destroy(tx));
  const batch = Array.from({ length: 16 }, (_, i) => num(i));
  t.equal(qct.trySendMany(tx, batch), 10, 'trySendMany stops when the ring reaches maxmsg');
  const got = qct.tryReceiveMany(rx, 1024, 4);
  t.same(got.map(seqOf), [0, 1, 2, 3], 'tryReceiveMany returns at most maxCount, in order');
  t.same(qct.tryReceiveMany(rx, 1024, 100).map(seqOf), [4, 5, 6, 7, 8, 9], 'then the rest');
  t.same(qct.tryReceiveMany(rx, 1024, 100), [], 'an empty ring gives an empty batch');
  t.equal(qct.trySendMany(tx, batch.slice(10)), 6, 'the remaining messages go in once resumed');
  t.equal(qct.stats(rx).sent, 16, 'each batched message is counted');
  qct.tryReceiveMany(rx, 1024, 100);
  t.equal(qct.trySendMany(tx, [num(1), new Uint8Array(100), num(2)]), 3, 'a mixed batch goes in');
  t.same(qct.tryReceiveMany(rx, 50, 100).map(seqOf), [1], 'a batch stops before a message over maxBytes');
  t.throws(
    () => qct.tryReceiveMany(rx, 50, 100),
    { code: 'AMIX_ERR_BUFFER_TOO_SMALL' },
    'and throws when that message comes first',
  );
  t.equal(qct.tryReceiveMany(rx, 1024, 100).length, 2, 'the message stayed queued');
});
