// The nats primitive passes the same contract suite as every other
// primitive, against a real nats-server (random port, JetStream in a temp
// dir), in core mode and as a durable (JetStream) link.
import t from 'tap';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { conformance } from './helpers/conformance.js';
import { natsSkip, startNats } from './helpers/nats.js';

const skip = await natsSkip();
if (skip) {
  t.comment(`skip: ${skip}`);
  t.skip(`nats primitive conformance: ${skip}`);
} else {
  const server = await startNats(t);
  const nats = { servers: server.url };
  conformance(t, {
    name: 'nats',
    registry: () => new PrimitiveRegistry({ channelDefaults: { nats } }),
  });

  t.test('durable links pass the suite too', async (t) => {
    let n = 0;
    conformance(t, {
      name: 'nats',
      // Each receiving end its own stream (a durable link's id names it).
      registry: () =>
        new PrimitiveRegistry({ channelDefaults: { nats: { ...nats, durable: true, id: `conf${++n}` } } }),
    });
  });

  t.test('nats: two sending ends on one receiving end each keep their order', async (t) => {
    const reg = new PrimitiveRegistry({ channelDefaults: { nats } });
    t.teardown(() => reg.close());
    const rx = await reg.open('nats', { maxmsg: 64, minmsg: 16 });
    t.teardown(() => rx.destroy());
    const senders = await Promise.all(
      [0, 1].map(async () => {
        const tx = await reg.open('nats', { address: rx.address });
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
}
