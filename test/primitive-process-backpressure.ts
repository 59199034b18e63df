// Credit-based flow control across the process boundary: a slow receiver's
// pending queue never exceeds maxmsg, the sender is suspended and resumed,
// and each discard policy counts what it discards.
import t from 'tap';
import { PrimitiveRegistry, type Channel, type ChannelEvent, type ChannelOptions } from '../dist/lib/index.js';
import { spawnPeer, tempDir } from './fixtures/process-helpers.js';
import { until } from './helpers/daemon.js';

t.test('a slow receiver in another process never has more than maxmsg pending', async (t) => {
  const runtimeDir = tempDir(t);
  const maxmsg = 64;
  const minmsg = 16;
  const count = 3000;
  const peer = spawnPeer(t, {
    role: 'receive',
    runtimeDir,
    expect: count,
    slowEvery: 25,
    slowMs: 3,
    options: { maxmsg, minmsg },
  });
  const { address } = await peer.next<{ address: Record<string, unknown> }>(
    (m) => 'address' in m,
    'the receiver address',
  );
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const events: ChannelEvent[] = [];
  const tx = await reg.open('queueConditionProcess', { address, maxmsg, minmsg });
  t.teardown(() => tx.destroy());
  tx.on('event', (e: ChannelEvent) => events.push(e));
  const msg = Buffer.alloc(32);
  let maxInFlight = 0;
  for (let i = 0; i < count; i++) {
    msg.writeUInt32LE(i, 0);
    await tx.send(msg);
    const p = tx.stats().pending;
    if (p > maxInFlight) maxInFlight = p;
  }
  const done = await peer.next<{ done: number; bad: number; maxPending: number }>(
    (m) => 'done' in m,
    'the receiver finished',
  );
  t.equal(done.done, count, 'every message arrived');
  t.equal(done.bad, 0, 'in order');
  t.ok(done.maxPending <= maxmsg, `the receiver's pending peaked at ${done.maxPending}, within maxmsg ${maxmsg}`);
  t.ok(done.maxPending > minmsg, `the receiver was under pressure (peak ${done.maxPending} above minmsg ${minmsg})`);
  t.ok(maxInFlight <= maxmsg, `the sender never had more than maxmsg unacknowledged (peak ${maxInFlight})`);
  const suspended = events.filter((e) => e.type === 'suspended').length;
  const resumed = events.filter((e) => e.type === 'resumed').length;
  t.ok(suspended > 0, `the sender was suspended (${suspended} times)`);
  t.ok(resumed >= suspended - 1 && resumed <= suspended, 'every suspension but perhaps the last was resumed');
  t.equal(tx.stats().suspensions, suspended, 'stats count the suspensions');
});

async function stalled(
  t: Parameters<Parameters<typeof t.test>[1]>[0],
  extra: ChannelOptions,
): Promise<{ rx: Channel; tx: Channel; events: ChannelEvent[] }> {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess', { maxmsg: 4, minmsg: 1 });
  t.teardown(() => rx.destroy());
  const events: ChannelEvent[] = [];
  const tx = await reg.open('queueConditionProcess', { address: rx.address, maxmsg: 4, minmsg: 1, ...extra });
  t.teardown(() => tx.destroy());
  tx.on('event', (e: ChannelEvent) => events.push(e));
  for (let i = 0; i < 4; i++) t.ok(tx.trySend(Buffer.from([i])), `message ${i} fits the credit`);
  return { rx, tx, events };
}

t.test('with no credit, dropNewest drops the new message and counts it', async (t) => {
  const { rx, tx, events } = await stalled(t, { discard: 'dropNewest' });
  await tx.send(Buffer.from([9]));
  t.ok(tx.trySend(Buffer.from([10])), 'trySend reports the message as taken (and dropped)');
  t.equal(tx.stats().dropped, 2, 'both drops counted');
  t.same(
    events.filter((e) => e.type === 'dropped').map((e) => (e as { policy: string }).policy),
    ['dropNewest', 'dropNewest'],
    'a dropped event per drop',
  );
  for (let i = 0; i < 4; i++) t.same([...(await rx.receive())], [i], `message ${i} arrives`);
});

t.test('with no credit, reject rejects with AMIX_ERR_QUEUE_FULL and counts it', async (t) => {
  const { tx } = await stalled(t, { discard: 'reject' });
  await t.rejects(tx.send(Buffer.from([9])), { code: 'AMIX_ERR_QUEUE_FULL' }, 'send rejects');
  t.throws(() => tx.trySend(Buffer.from([9])), { code: 'AMIX_ERR_QUEUE_FULL' }, 'trySend throws');
  t.equal(tx.stats().rejected, 2, 'both refusals counted');
});

t.test('with no credit, dropOldest keeps the newest maxmsg messages waiting and drops older ones', async (t) => {
  const { rx, tx, events } = await stalled(t, { discard: 'dropOldest' });
  for (let i = 4; i < 10; i++) await tx.send(Buffer.from([i]));
  t.equal(tx.stats().dropped, 2, 'two waiting messages were dropped to keep maxmsg waiting');
  t.ok(
    events.some((e) => e.type === 'dropped' && e.policy === 'dropOldest'),
    'dropped events name the policy',
  );
  const got: number[] = [];
  for (let i = 0; i < 8; i++) got.push((await rx.receive())[0]!);
  t.same(got, [0, 1, 2, 3, 6, 7, 8, 9], 'the sent ones, then the newest waiting ones, in order');
});

t.test(
  'with no credit, block waits until the receiver consumes, and a receiving end suspended grants nothing',
  async (t) => {
    const { rx, tx, events } = await stalled(t, {});
    t.notOk(tx.trySend(Buffer.from([4])), 'trySend says it would have to wait');
    await rx.suspend();
    const blocked = tx.send(Buffer.from([4]));
    let settled = false;
    void blocked.then(() => {
      settled = true;
    });
    for (let i = 0; i < 4; i++) t.same([...(await rx.receive())], [i], `message ${i} arrives`);
    await tx.cycle();
    t.notOk(settled, 'no credit was granted while the receiving end was suspended');
    await rx.resume();
    await blocked;
    t.same([...(await rx.receive())], [4], 'the blocked message went through after resume');
    t.ok(
      events.some((e) => e.type === 'suspended') && events.some((e) => e.type === 'resumed'),
      'suspended and resumed events',
    );
  },
);

t.test('takes with more still queued are acknowledged within ackIntervalMs, with no credit frame due', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess', { maxmsg: 64, minmsg: 8, ackIntervalMs: 10 });
  const tx = await reg.open('queueConditionProcess', { address: rx.address });
  // Abrupt ends: 35 messages stay untaken on purpose, which a graceful close would wait for.
  t.teardown(() => {
    tx.destroy();
    rx.destroy();
  });
  for (let i = 0; i < 40; i++) await tx.send(Uint8Array.of(i));
  await until('all 40 queued at the receiver', 5000, async () => rx.stats().pending === 40);
  // Five taken in one turn, then nothing: 35 queued and 24 still granted stay above minmsg, so no grant is due.
  for (let i = 0; i < 5; i++) t.equal(rx.tryReceive()?.[0], i, `message ${i}`);
  await until('the sender to hear of the five', 2000, async () => tx.stats().pending === 35);
  t.equal(tx.stats().pending, 35, 'the sender keeps only the 35 not taken');
  t.equal(rx.stats().pending, 35, 'which the receiver still holds');
});
