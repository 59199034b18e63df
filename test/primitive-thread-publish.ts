// Coalesced publication of a queueConditionThread ring's write index: the
// first message of a burst is visible to the other thread at once (an idle
// receiver sleeping in `block` wakes for a message sent alone), the rest of
// a synchronous burst at its end (a receive on the sending thread that finds
// nothing, publishPending(), or the end of the turn), and a sender that
// finds the ring full has published everything it wrote.
import t, { type Test } from 'tap';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { PrimitiveRegistry, type Channel } from '../dist/lib/index.js';
import { Header, publishPending } from '../dist/primitives/queueConditionThread.js';
import { exited, watchExit } from './helpers/exit.js';

const counterPeer = new URL('./fixtures/thread-counter.mjs', import.meta.url);

interface Peer {
  tx: Channel;
  count: Int32Array;
  worker: Worker;
  ringWords: Int32Array;
}

/** A worker counting what it receives, and this thread's sending end to it. */
async function peer(t: Test, workerData: Record<string, unknown> = {}): Promise<Peer> {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const counter = new SharedArrayBuffer(4);
  const worker = watchExit(new Worker(counterPeer, { workerData: { counter, ...workerData }, execArgv: [] }));
  t.teardown(() => worker.terminate());
  const [{ address }] = (await once(worker, 'message')) as [{ address: { sab: SharedArrayBuffer } }];
  const tx = await reg.open('queueConditionThread', { address });
  t.teardown(() => tx.destroy());
  return { tx, count: new Int32Array(counter), worker, ringWords: new Int32Array(address.sab) };
}

/** Wait synchronously (this turn does not end) until the worker counted `n`, or `ms` passed; the count. */
function waitCount(count: Int32Array, n: number, ms: number): number {
  const deadline = Date.now() + ms;
  for (let seen = Atomics.load(count, 0); seen < n; seen = Atomics.load(count, 0)) {
    const left = deadline - Date.now();
    if (left <= 0 || Atomics.wait(count, 0, seen, left) === 'timed-out') break;
  }
  return Atomics.load(count, 0);
}

/** Resolve once the receiver of the ring is parked on its wake word (an event of the ring, polled per turn). */
async function receiverParked(ringWords: Int32Array): Promise<void> {
  while (Atomics.load(ringWords, Header.RX_WAITING) === 0) await new Promise((r) => setImmediate(r));
}

t.test('a message sent alone wakes a receiver sleeping in block mode, within the same turn', async (t) => {
  const p = await peer(t, { idle: 'block' });
  await receiverParked(p.ringWords);
  t.ok(p.tx.trySend(Buffer.from('one')), 'accepted');
  // Synchronous wait: no microtask, no end of turn can publish it for us.
  t.equal(waitCount(p.count, 1, 5000), 1, 'the sleeping receiver got it without a later send or the end of the turn');
  await p.tx.send(new Uint8Array(0));
  await exited(p.worker);
});

t.test('the rest of a burst is held until its end, then published', async (t) => {
  const p = await peer(t, { idle: 'block' });
  await receiverParked(p.ringWords);
  for (let i = 0; i < 3; i++) t.ok(p.tx.trySend(Buffer.from(`m${i}`)), `message ${i} accepted`);
  t.equal(waitCount(p.count, 1, 5000), 1, 'the first of the burst arrived at once');
  t.equal(waitCount(p.count, 2, 100), 1, 'the next two are held while the turn goes on');
  publishPending();
  t.equal(waitCount(p.count, 3, 5000), 3, 'publishPending() publishes them within the turn');
  for (let i = 0; i < 3; i++) p.tx.trySend(Buffer.from(`n${i}`));
  await new Promise((r) => setImmediate(r));
  t.equal(waitCount(p.count, 6, 5000), 6, 'a burst left at the end of a turn is published by then');
  await p.tx.send(new Uint8Array(0));
  await exited(p.worker);
});

t.test('a burst longer than the bound is published as it goes', async (t) => {
  const p = await peer(t, { idle: 'block' });
  for (let i = 0; i < 100; i++) p.tx.trySend(Buffer.from(`m${i}`));
  t.ok(waitCount(p.count, 97, 5000) >= 97, 'all but the last few of 100 arrive before the turn ends (bound 32)');
  await p.tx.send(new Uint8Array(0));
  await exited(p.worker);
  t.equal(Atomics.load(p.count, 0), 100, 'and every one of them in the end');
});

t.test('a sender that finds the ring full has published every message it wrote', async (t) => {
  const p = await peer(t, { idle: 'block', waitGo: true, ring: { capacityBytes: 4096 } });
  let n = 0;
  while (p.tx.trySend(new Uint8Array(40))) n++;
  t.ok(n > 32, `the ring took ${n} messages before it was full`);
  p.worker.postMessage('go');
  t.equal(waitCount(p.count, n, 5000), n, 'the receiver gets all of them while the sender is still in its turn');
  await p.tx.send(new Uint8Array(0));
  await exited(p.worker);
});

t.test('a receive makes room for a sender blocked in another thread, even if it receives nothing more', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  // The default 1 MiB ring: the release of one message is coalesced (held for more), not stored at once.
  const rx = await reg.open('queueConditionThread', { idle: 'block' });
  t.teardown(() => rx.destroy());
  const worker = watchExit(
    new Worker(new URL('./fixtures/thread-peer.mjs', import.meta.url), {
      workerData: { role: 'blockedSend', address: rx.address, idle: 'block' },
      execArgv: [],
    }),
  );
  t.teardown(() => worker.terminate());
  const [full] = (await once(worker, 'message')) as [{ type: string; queued: number }];
  t.equal(full.type, 'full', `the worker filled the ring (${full.queued} messages) and waits in send`);
  const next = once(worker, 'message');
  t.equal((await rx.receive()).length, 64, 'one message received, and no other receive after it');
  const [r] = (await next) as [{ type: string }];
  t.equal(r.type, 'sent', 'the blocked send went in: the held release was stored by the end of the turn');
  await rx.destroy();
  await exited(worker);
});

t.test('on one thread a receive that finds nothing publishes what the thread holds', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionThread');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  for (let i = 0; i < 5; i++) tx.trySend(Buffer.from(`m${i}`));
  t.equal(tx.stats().sent, 5, 'stats count every accepted message at once');
  const got: string[] = [];
  for (let m; (m = rx.tryReceive()) !== undefined;) got.push(Buffer.from(m).toString());
  t.same(got, ['m0', 'm1', 'm2', 'm3', 'm4'], 'every message of the burst, in order, in the same turn');
  t.equal(tx.trySendMany([Buffer.from('a'), Buffer.from('b')]), 2, 'a batch is accepted');
  t.same(
    (await rx.receiveMany()).map((m) => Buffer.from(m).toString()),
    ['a', 'b'],
    'and received whole',
  );
});
