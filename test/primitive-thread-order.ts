// A million messages of random sizes cross a small queueConditionThread ring
// from a worker thread, wrapping around it thousands of times: every one
// arrives, in order, byte for byte, none lost and none duplicated.
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { exited, watchExit } from './helpers/exit.js';

const peer = new URL('./fixtures/thread-peer.mjs', import.meta.url);

/** Must match the fixture's generator. */
function makeRandom(s: number): () => number {
  let x = s | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

for (const idle of ['spinThenBlock', 'block'] as const) {
  t.test(`1M random-size messages from a worker arrive in order, whole, once (idle ${idle})`, async (t) => {
    const count = idle === 'block' ? 300_000 : 1_000_000;
    const maxSize = 300;
    const capacityBytes = 16 * 1024;
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const rx = await reg.open('queueConditionThread', { capacityBytes, idle });
    t.teardown(() => rx.destroy());
    const worker = watchExit(
      new Worker(peer, {
        workerData: { role: 'sendSeq', address: rx.address, idle, count, seed: 42, maxSize },
        execArgv: [],
      }),
    );
    t.teardown(() => worker.terminate());
    const reports: Array<{ type: string; stats?: { sent: number }; error?: unknown }> = [];
    worker.on('message', (m) => reports.push(m));

    const rnd = makeRandom(42);
    let wrongSize = 0;
    let wrongSeq = 0;
    let wrongBytes = 0;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const want = rnd() % (maxSize + 1);
      let m = rx.tryReceive();
      if (m === undefined) m = await rx.receive();
      bytes += m.length;
      if (m.length !== want) {
        wrongSize++;
        continue;
      }
      if (want >= 4 && new DataView(m.buffer, m.byteOffset, m.length).getUint32(0) !== i) {
        wrongSeq++;
        continue;
      }
      for (let j = 4; j < want; j++)
        if (m[j] !== ((i * 7 + j) & 0xff)) {
          wrongBytes++;
          break;
        }
    }
    t.equal(wrongSize, 0, 'every message has the size it was sent with, in send order');
    t.equal(wrongSeq, 0, 'every sequence number arrives in its place (none lost, none duplicated)');
    t.equal(wrongBytes, 0, 'every payload byte is intact');
    t.ok(bytes / capacityBytes > 100, `the ring wrapped around many times (${Math.floor(bytes / capacityBytes)})`);
    t.equal(rx.tryReceive(), undefined, 'nothing is left over after the last message');
    await exited(worker);
    t.same(
      reports.filter((r) => r.type === 'error'),
      [],
      'the worker reported no error',
    );
    const stats = rx.stats();
    t.equal(stats.sent, count, 'the shared stats count every send');
    t.equal(stats.received, count, 'the shared stats count every receive');
    t.equal(stats.bytesReceived, bytes, 'received bytes are counted');
    t.equal(stats.pending, 0, 'nothing is pending');
  });
}

t.test('batched sends and receives keep order across wrap-around', async (t) => {
  const { default: qct } = await import('../dist/primitives/queueConditionThread.js');
  const rx = await qct.create({ capacityBytes: 4096 });
  t.teardown(() => qct.destroy(rx));
  const tx = await qct.create({ address: rx.address });
  t.teardown(() => qct.destroy(tx));
  const rnd = makeRandom(7);
  const count = 100_000;
  const sizes: number[] = [];
  const all: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const size = 4 + (rnd() % 200);
    sizes.push(size);
    const m = new Uint8Array(size);
    new DataView(m.buffer).setUint32(0, i);
    m.fill(i & 0xff, 4);
    all.push(m);
  }
  let sent = 0;
  let received = 0;
  let bad = 0;
  while (received < count) {
    if (sent < count) sent += qct.trySendMany(tx, all.slice(sent, sent + 1 + (rnd() % 32)));
    for (const m of qct.tryReceiveMany(rx, 1024, 1 + (rnd() % 50))) {
      const i = new DataView(m.buffer, m.byteOffset, m.length).getUint32(0);
      if (i !== received || m.length !== sizes[received] || m[m.length - 1] !== (i & 0xff)) bad++;
      received++;
    }
  }
  t.equal(bad, 0, 'every message arrives once, in order, whole');
  t.equal(
    qct.stats(rx).bytesReceived,
    sizes.reduce((a, b) => a + b, 0),
    'every byte is counted',
  );
  t.ok(qct.stats(rx).bytesReceived / 4096 > 100, 'the ring wrapped around many times');
});
