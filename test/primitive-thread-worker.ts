// Thread-scope points: their worker gets the point's stack size, and a
// worker that dies is detected and reported on the rings it was using.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { PrimitiveRegistry, type ChannelEvent } from '../dist/lib/index.js';
import { startThreadWorker, watchWorker } from '../dist/primitives/queueConditionThread.js';
import { exited, watchExit } from './helpers/exit.js';

const peer = new URL('./fixtures/thread-peer.mjs', import.meta.url);

function start(t: Test, workerData: Record<string, unknown>, stackSizeMb?: number): Worker {
  // execArgv: [] keeps tap's TypeScript loader out of the worker (the fixture is plain JS).
  const worker = watchExit(
    startThreadWorker(peer, { workerData, execArgv: [], ...(stackSizeMb ? { stackSizeMb } : {}) }),
  );
  t.teardown(() => worker.terminate());
  return worker;
}

t.test('a thread point runs with the stack size it asks for', async (t) => {
  const worker = start(t, { role: 'limits' }, 8);
  const [m] = (await once(worker, 'message')) as [{ resourceLimits: { stackSizeMb: number } }];
  t.equal(m.resourceLimits.stackSizeMb, 8, 'the worker sees resourceLimits.stackSizeMb = 8');
});

t.test('an invalid stack size is refused with AMIX_ERR_INVALID_ARG', async (t) => {
  t.throws(() => startThreadWorker(peer, { stackSizeMb: -1 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'negative stack size');
});

for (const how of [
  { label: 'throws', exitCode: undefined, want: 1 },
  { label: 'exits with code 3', exitCode: 3, want: 3 },
]) {
  t.test(`a worker that ${how.label} is reported: waiting receives reject with the cause`, async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const rx = await reg.open('queueConditionThread', { idle: 'block' });
    t.teardown(() => rx.destroy());
    const events: ChannelEvent[] = [];
    rx.on('event', (e: ChannelEvent) => events.push(e));
    const worker = start(t, {
      role: 'die',
      address: rx.address,
      ...(how.exitCode !== undefined ? { exitCode: how.exitCode } : {}),
    });
    await once(worker, 'message');
    const deaths: Error[] = [];
    const stop = watchWorker(worker, [rx], (err) => deaths.push(err));
    t.teardown(stop);
    worker.postMessage('go');
    t.equal(Buffer.from(await rx.receive()).toString(), 'last words', 'messages sent before the death still arrive');
    const err = await rx.receive().then(
      () => undefined,
      (e: unknown) => e as Error & { code: string; cause?: { code: string; details: { exitCode: number } } },
    );
    t.equal(err?.code, 'AMIX_ERR_LINK_CLOSED', 'the next receive rejects with AMIX_ERR_LINK_CLOSED');
    t.equal(err?.cause?.code, 'AMIX_ERR_POINT_DIED', 'its cause is AMIX_ERR_POINT_DIED');
    t.equal(err?.cause?.details.exitCode, how.want, `the cause carries exit code ${how.want}`);
    t.equal(deaths.length, 1, 'onDeath is called once');
    t.match(
      events.find((e) => e.type === 'closed'),
      { type: 'closed', reason: { code: 'AMIX_ERR_POINT_DIED' } },
      'the channel closes with the death as its reason',
    );
  });
}

t.test('a worker that exits cleanly is not a death', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionThread');
  t.teardown(() => rx.destroy());
  const worker = start(t, { role: 'sendOnGo', address: rx.address });
  await once(worker, 'message');
  let died = false;
  t.teardown(
    watchWorker(worker, [rx], () => {
      died = true;
    }),
  );
  worker.postMessage('stop');
  const [code] = (await exited(worker)) as [number];
  t.equal(code, 0, 'the worker exited with 0');
  t.notOk(died, 'no death reported');
  t.ok(rx.isOpen, 'the ring stays open for another sender');
});
