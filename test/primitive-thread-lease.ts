// Zero-copy receive on a queueConditionThread ring (Channel.receiveView and
// friends): a view is a window on the ring, valid until release() or the next
// receive on the channel; until then the sender cannot reuse its space, so
// its bytes do not change even under a producer thread pushing as fast as it
// can; a message that wraps around the end, and every message of a
// dropOldest ring, is a copy instead; misuse fails with AMIX_ERR_INVALID_ARG.
import t, { type Test } from 'tap';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { PrimitiveRegistry, type Channel, type ChannelOptions } from '../dist/lib/index.js';
import { exited, watchExit } from './helpers/exit.js';

const peer = new URL('./fixtures/thread-peer.mjs', import.meta.url);

async function pair(t: Test, options: ChannelOptions = {}): Promise<{ rx: Channel; tx: Channel }> {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionThread', options);
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  return { rx, tx };
}

const msg = (i: number, size = 40): Uint8Array => new Uint8Array(size).fill(i & 0xff);
/** Fill the ring with 40-byte messages numbered from `from`; how many went in. */
function fill(tx: Channel, from = 0): number {
  let n = 0;
  while (tx.trySend(msg(from + n))) n++;
  return n;
}
const isView = (m: Uint8Array): boolean => m.buffer instanceof SharedArrayBuffer;

t.test('a view holds its space until release, and its bytes stay put', async (t) => {
  const { rx, tx } = await pair(t, { capacityBytes: 256 });
  const n = fill(tx);
  t.ok(n >= 4, `the ring is full after ${n} messages`);
  const v = rx.tryReceiveView()!;
  t.ok(isView(v), 'the message is a view into the ring, not a copy');
  t.same([...v], [...msg(0)], 'with the first message');
  t.notOk(tx.trySend(msg(99)), 'the sender cannot reuse the leased space');
  t.equal(rx.stats().received, 1, 'the message counts as received');
  t.equal(rx.stats().pending, n, 'and as pending until released');
  t.same([...v], [...msg(0)], 'the view still holds the message');
  rx.release();
  rx.release();
  t.equal(rx.stats().pending, n - 1, 'release hands it back (twice is harmless)');
  t.ok(tx.trySend(msg(99)), 'then the sender may reuse it');
  const copy = await rx.receive();
  t.notOk(isView(copy), 'receive still copies');
  t.same([...copy], [...msg(1)], 'and gets the next message');
});

t.test('the next receive releases the view before it', async (t) => {
  const { rx, tx } = await pair(t, { capacityBytes: 256 });
  fill(tx);
  const a = await rx.receiveView();
  t.notOk(tx.trySend(msg(50)), 'the first view holds its space');
  const b = rx.tryReceiveView()!;
  t.same([...a, ...b], [...msg(0), ...msg(1)], 'two views in order');
  t.ok(tx.trySend(msg(50)), 'the second view released the first');
  t.notOk(tx.trySend(msg(51)), 'but holds its own space');
  rx.tryReceive();
  t.ok(tx.trySend(msg(51)), 'a copying receive releases the lease too');
});

t.test('receiveManyView leases a whole batch until release', async (t) => {
  const { rx, tx } = await pair(t, { capacityBytes: 256 });
  const n = fill(tx);
  const batch = await rx.receiveManyView({ maxCount: 3 });
  t.equal(batch.length, 3, 'three views');
  t.ok(batch.every(isView), 'all views into the ring');
  t.same(
    batch.map((m) => m[0]),
    [0, 1, 2],
    'in order',
  );
  t.notOk(tx.trySend(msg(60)), 'none of their space is reusable');
  rx.release();
  t.equal(fill(tx, 60), 3, 'release frees exactly the three');
  const rest = await rx.receiveManyView();
  t.same(
    rest.map((m) => m[0]),
    [...Array.from({ length: n - 3 }, (_, i) => 3 + i), 60, 61, 62],
    'the rest in order',
  );
  const waiting = rx.receiveManyView();
  tx.trySend(msg(70));
  t.same(
    (await waiting).map((m) => m[0]),
    [70],
    'on an empty ring it waits for a message',
  );
});

t.test('a producer thread pushing flat out never overwrites a leased view', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  // 512 bytes: a few messages per lap, so without the lease the producer would lap a held view at once.
  const rx = await reg.open('queueConditionThread', { capacityBytes: 512, idle: 'spinThenBlock' });
  t.teardown(() => rx.destroy());
  const count = 3000;
  const worker = watchExit(
    new Worker(peer, { workerData: { role: 'sendSeq', address: rx.address, count, maxSize: 120 }, execArgv: [] }),
  );
  t.teardown(() => worker.terminate());
  await once(worker, 'message');
  let changed = 0;
  let bad = 0;
  let views = 0;
  for (let i = 0; i < count; i++) {
    const batch = i % 2 === 0 ? [await rx.receiveView()] : await rx.receiveManyView({ maxCount: 4 });
    const kept = batch.map((m) => m.slice());
    // Let the producer run: it has every chance to write into the held space now.
    await new Promise((r) => setImmediate(r));
    for (const [j, m] of batch.entries()) {
      if (isView(m)) views++;
      if (Buffer.compare(Buffer.from(m), Buffer.from(kept[j]!)) !== 0) changed++;
      const seq = m.length >= 4 ? new DataView(m.buffer, m.byteOffset, m.length).getUint32(0) : -1;
      for (let k = 4; k < m.length; k++)
        if (m[k] !== ((seq * 7 + k) & 0xff)) {
          bad++;
          break;
        }
    }
    i += batch.length - 1;
  }
  t.equal(changed, 0, 'no held view changed while the producer pushed');
  t.equal(bad, 0, 'and every one held its message intact');
  t.ok(views > count / 2, `most were views, not copies (${views} of ${count})`);
  await exited(worker);
});

t.test('a message that wraps around the end of the ring is a copy, whole', async (t) => {
  const { rx, tx } = await pair(t, { capacityBytes: 256 });
  tx.trySend(new Uint8Array(200));
  await rx.receive();
  // The next record starts at 208: its payload runs from 216 past the end at 256.
  const wrapped = Uint8Array.from({ length: 100 }, (_, i) => i);
  t.ok(tx.trySend(wrapped), 'accepted');
  const v = rx.tryReceiveView()!;
  t.notOk(isView(v), 'a copy, not a view');
  t.same([...v], [...wrapped], 'with every byte in order');
});

t.test('on a dropOldest ring the views are copies (its sender may reclaim the oldest)', async (t) => {
  const { rx, tx } = await pair(t, { capacityBytes: 256, discard: 'dropOldest' });
  for (let i = 0; i < 5; i++) tx.trySend(msg(i));
  const v = rx.tryReceiveView()!;
  t.notOk(isView(v), 'a copy');
  for (let i = 0; i < 20; i++) await tx.send(msg(100 + i));
  t.same([...v], [...msg(0)], 'unchanged while the sender dropped and wrote over the oldest');
  t.equal((await rx.receiveView()).length, 40, 'receiveView works there too');
  t.ok(tx.stats().dropped > 0, 'drops were counted');
});

t.test('misuse of views fails with AMIX_ERR_INVALID_ARG', async (t) => {
  const { rx, tx } = await pair(t);
  const waiting = rx.receive();
  await t.rejects(rx.receiveView(), { code: 'AMIX_ERR_INVALID_ARG' }, 'a view receive overlapping another receive');
  const view = rx.receiveView === undefined ? undefined : waiting.then(() => rx.receiveView());
  tx.trySend(msg(1));
  await waiting;
  tx.trySend(msg(2));
  t.equal((await view)![0], 2, 'a view receive after the other settled is fine');
  const pendingView = rx.receiveView();
  await t.rejects(rx.receive(), { code: 'AMIX_ERR_INVALID_ARG' }, 'a receive while a view receive waits');
  t.throws(() => rx.tryReceive(), { code: 'AMIX_ERR_INVALID_ARG' }, 'a tryReceive while a view receive waits');
  tx.trySend(msg(3));
  t.equal((await pendingView)[0], 3, 'the view receive completes');
  t.throws(() => tx.release(), { code: 'AMIX_ERR_INVALID_ARG' }, 'release on a sending end');
  t.throws(() => tx.tryReceiveView(), { code: 'AMIX_ERR_INVALID_ARG' }, 'a view receive on a sending end');
  await rx.close();
  t.doesNotThrow(() => rx.release(), 'release after close is harmless');
  await t.rejects(rx.receiveView(), { code: 'AMIX_ERR_LINK_CLOSED' }, 'a view receive after close');
});

t.test('on a primitive without views, the view receives copy and release does nothing', async (t) => {
  const { fileURLToPath } = await import('node:url');
  const reg = new PrimitiveRegistry({ builtins: false });
  t.teardown(() => reg.close());
  reg.register({
    name: 'memory',
    location: fileURLToPath(new URL('./fixtures/memory-primitive.mjs', import.meta.url)),
    characteristics: { scopes: ['thread'], maxMessageBytes: 1 << 20, ordering: 'fifo', delivery: 'reliable' },
  });
  const rx = await reg.open('memory');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('memory', { address: rx.address });
  t.teardown(() => tx.destroy());
  for (const s of ['a', 'b', 'c']) await tx.send(Buffer.from(s));
  t.equal(Buffer.from(await rx.receiveView()).toString(), 'a', 'receiveView gives the message');
  rx.release();
  const batch = (await rx.receiveManyView()).map((m) => Buffer.from(m).toString());
  // This primitive has no tryReceive: a batch is the one message waited for.
  t.same(batch, ['b'], 'receiveManyView gives the next message');
  t.equal(Buffer.from(await rx.receiveView()).toString(), 'c', 'and receiveView the last');
  t.equal(rx.tryReceiveView(), undefined, 'tryReceiveView: nothing (no fast path)');
});
