// The zeromq primitive passes the same contract suite as every other
// primitive, over tcp://127.0.0.1 with random ports.
import t from 'tap';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { conformance } from './helpers/conformance.js';

conformance(t, { name: 'zeromq', registry: () => new PrimitiveRegistry() });

t.test(
  'zeromq: the same channel works over ipc:// for the process scope',
  { skip: process.platform === 'win32' ? 'no ipc:// on Windows' : false },
  async (t) => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'amix-zmq-ipc-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const rx = await reg.open('zeromq', { zeromq: { bind: `ipc://${join(dir, 'rx.sock')}` } } as never);
    t.teardown(() => rx.destroy());
    t.match(String(rx.address.endpoint), /^ipc:\/\//, 'the address is an ipc:// endpoint');
    const tx = await reg.open('zeromq', { address: rx.address });
    t.teardown(() => tx.destroy());
    await tx.connect();
    for (let i = 0; i < 100; i++) await tx.send(Buffer.from(`m${i}`));
    let bad = 0;
    for (let i = 0; i < 100; i++) if (Buffer.from(await rx.receive()).toString() !== `m${i}`) bad++;
    t.equal(bad, 0, '100 messages in order over ipc://');
  },
);

t.test('zeromq: two sending ends on one receiving end each keep their order', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('zeromq', { maxmsg: 64, minmsg: 16 });
  t.teardown(() => rx.destroy());
  const senders = await Promise.all(
    [0, 1].map(async () => {
      const tx = await reg.open('zeromq', { address: rx.address });
      t.teardown(() => tx.destroy());
      await tx.connect();
      return tx;
    }),
  );
  const n = 3000;
  const sending = Promise.all(
    senders.map(async (tx, s) => {
      for (let i = 0; i < n; i++) await tx.send(Buffer.from(`${s}:${i}`));
    }),
  );
  const next = [0, 0];
  let bad = 0;
  for (let k = 0; k < 2 * n; k++) {
    const [s, i] = Buffer.from(await rx.receive())
      .toString()
      .split(':')
      .map(Number) as [number, number];
    if (next[s] !== i) bad++;
    next[s] = i + 1;
  }
  await sending;
  t.equal(bad, 0, `both flows of ${n} messages arrived in their own order`);
  t.same(next, [n, n], 'nothing missing from either');
});
