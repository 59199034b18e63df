// Waiting on a queueConditionThread ring: the main thread never blocks while
// a receive or a send waits, every idle strategy hands messages to and from a
// worker without losing a wake-up, and closing wakes every waiter on both
// ends with the reason.
import t, { type Test as Tap } from 'tap';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { PrimitiveRegistry, type IdleStrategy } from '../dist/lib/index.js';
import { exited, watchExit } from './helpers/exit.js';

const peer = new URL('./fixtures/thread-peer.mjs', import.meta.url);
const IDLES: IdleStrategy[] = ['spin', 'yield', 'block', 'spinThenBlock'];

function registry(t: Tap): PrimitiveRegistry {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  return reg;
}

function startPeer(t: Tap, workerData: Record<string, unknown>): Worker {
  // execArgv: [] keeps tap's TypeScript loader out of the worker (the fixture is plain JS).
  const worker = watchExit(new Worker(peer, { workerData, execArgv: [] }));
  t.teardown(() => worker.terminate());
  return worker;
}

for (const idle of ['block', 'spinThenBlock'] as const) {
  t.test(`the main thread keeps running timers while a receive waits (idle ${idle})`, async (t) => {
    const reg = registry(t);
    const rx = await reg.open('queueConditionThread', { idle });
    t.teardown(() => rx.destroy());
    const worker = startPeer(t, { role: 'sendOnGo', address: rx.address });
    await once(worker, 'message');
    const pending = rx.receive();
    let ticks = 0;
    // The worker sends only after the main thread's timer has fired five
    // times, which it cannot do if the waiting receive blocks the thread.
    const timer = setInterval(() => {
      if (++ticks === 5) worker.postMessage('after-ticks');
    }, 2);
    t.teardown(() => clearInterval(timer));
    const got = Buffer.from(await pending).toString();
    clearInterval(timer);
    t.equal(got, 'after-ticks', 'the receive completes with the message sent after the ticks');
    t.ok(ticks >= 5, `the timer fired ${ticks} times while the receive waited`);
    worker.postMessage('stop');
    await exited(worker);
  });
}

t.test('the main thread keeps running timers while a send waits for room', async (t) => {
  const reg = registry(t);
  const rx = await reg.open('queueConditionThread', { capacityBytes: 1024, idle: 'block' });
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address, idle: 'block' });
  t.teardown(() => tx.destroy());
  while (tx.trySend(new Uint8Array(100))) {
    /* fill */
  }
  const blocked = tx.send(new Uint8Array(100));
  let ticks = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (++ticks === 5) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
  t.equal(ticks, 5, 'the timer fired while the send waited');
  rx.tryReceive();
  await t.resolves(blocked, 'the send completes once a receive makes room');
});

for (const idle of IDLES) {
  // Sleeping strategies are where a lost wake-up would show: they get the most trips.
  const count = idle === 'block' || idle === 'spinThenBlock' ? 2000 : 500;
  t.test(`idle ${idle}: ${count} round trips with a worker lose no wake-up`, async (t) => {
    const reg = registry(t);
    const back = await reg.open('queueConditionThread', { idle });
    t.teardown(() => back.destroy());
    const worker = startPeer(t, { role: 'echo', address: back.address, idle, count });
    const [ready] = (await once(worker, 'message')) as [{ address: Record<string, unknown> }];
    const out = await reg.open('queueConditionThread', { address: ready.address, idle });
    t.teardown(() => out.destroy());
    let wrong = 0;
    for (let i = 0; i < count; i++) {
      await out.send(Buffer.from(String(i)));
      if (Buffer.from(await back.receive()).toString() !== String(i)) wrong++;
    }
    t.equal(wrong, 0, 'every reply is the message sent, in turn');
    await exited(worker);
  });
}

t.test('destroying the receiving end wakes every waiting receive with the reason', async (t) => {
  const reg = registry(t);
  const rx = await reg.open('queueConditionThread', { idle: 'block' });
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  const waiting = [rx.receive(), rx.receive(), rx.receive({ maxBytes: 10 })];
  const reason = new Error('maintenance window');
  await rx.destroy(reason);
  for (const [i, w] of waiting.entries()) {
    await t.rejects(w, { code: 'AMIX_ERR_LINK_CLOSED' }, `waiting receive ${i} is woken with AMIX_ERR_LINK_CLOSED`);
  }
  await t.rejects(
    tx.send(new Uint8Array(1)),
    { code: 'AMIX_ERR_LINK_CLOSED', message: /maintenance window/ },
    'the sending end learns why the ring closed',
  );
  t.equal(await tx.closed, await tx.closed, 'the sending end settles closed');
  t.notOk(tx.isOpen, 'and reports itself closed');
});

for (const view of [false, true]) {
  t.test(
    `a ${view ? 'view' : 'copying'} receive waiting when its end is destroyed still takes what the ring holds`,
    async (t) => {
      // As when a sending thread dies: its last message is in the ring, and watchWorker destroys the
      // receiving end on the exit event before the waiting receive has run.
      const reg = registry(t);
      const rx = await reg.open('queueConditionThread', { idle: 'block' });
      const tx = await reg.open('queueConditionThread', { address: rx.address });
      t.teardown(() => tx.destroy());
      const waiting = view ? rx.receiveView() : rx.receive();
      t.ok(tx.trySend(Buffer.from('last words')), 'the message is accepted');
      const destroyed = rx.destroy(new Error('the sending thread died'));
      t.equal(Buffer.from(await waiting).toString(), 'last words', 'the waiting receive gets it');
      await destroyed;
      await t.rejects(rx.receive(), { code: 'AMIX_ERR_LINK_CLOSED' }, 'the next receive rejects');
    },
  );
}

t.test('destroying the receiving end wakes a sender blocked in another thread, with the reason', async (t) => {
  const reg = registry(t);
  const rx = await reg.open('queueConditionThread', { capacityBytes: 1024, idle: 'block' });
  const worker = startPeer(t, { role: 'blockedSend', address: rx.address, idle: 'block' });
  const [full] = (await once(worker, 'message')) as [{ type: string; queued: number }];
  t.equal(full.type, 'full', `the worker filled the ring (${full.queued} messages) and waits in send`);
  const reported = once(worker, 'message');
  await rx.destroy(new Error('receiver shutting down'));
  const [r] = (await reported) as [{ type: string; error: { code: string; message: string } }];
  t.equal(r.type, 'error', 'the blocked send failed');
  t.equal(r.error.code, 'AMIX_ERR_LINK_CLOSED', 'with AMIX_ERR_LINK_CLOSED');
  t.match(r.error.message, /receiver shutting down/, 'and the message carries the reason across threads');
  await exited(worker);
});

t.test('destroying a sending end wakes its own blocked send', async (t) => {
  const reg = registry(t);
  const rx = await reg.open('queueConditionThread', { capacityBytes: 1024 });
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address, idle: 'block' });
  while (tx.trySend(new Uint8Array(100))) {
    /* fill */
  }
  const blocked = tx.send(new Uint8Array(100));
  await tx.destroy(new Error('sender going away'));
  await t.rejects(
    blocked,
    { code: 'AMIX_ERR_LINK_CLOSED', message: /sender going away/ },
    'the blocked send is woken with the reason',
  );
  t.ok(rx.isOpen, 'the receiving end stays open');
  const again = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => again.destroy());
  t.ok(again.isOpen, 'another sender may attach once the first is gone');
});

t.test('a second sending end is refused while one is attached', async (t) => {
  const reg = registry(t);
  const rx = await reg.open('queueConditionThread');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  await t.rejects(
    reg.open('queueConditionThread', { address: rx.address }),
    { code: 'AMIX_ERR_MAX_CONNECTIONS' },
    'single producer per ring',
  );
});

t.test('cycle sends a null record that is never delivered as a message', async (t) => {
  const reg = registry(t);
  const rx = await reg.open('queueConditionThread');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  await tx.cycle();
  await tx.send(Buffer.from('after'));
  t.equal(
    Buffer.from(await rx.receive()).toString(),
    'after',
    'the first message delivered is the one after the cycle',
  );
  t.equal(rx.stats().received, 1, 'the cycle record is not counted as a message');
});
