// What the nats primitive promises across failures (docs/nats.md), one test
// per promise, against a real nats-server killed with SIGKILL and started
// again on the same port (same JetStream store):
// - core: a server crash under a running stream loses and duplicates nothing
//   while both ends live (re-send from the ring, de-duplication by number);
// - core: a receiving end replaced on the same id and key gets what its
//   predecessor had not acknowledged, and NOT what had arrived there untaken;
// - durable: a replacement receiving end gets every message not taken,
//   including those that had arrived at its predecessor;
// - durable: messages accepted while the server is down are stored once it is
//   back (the sender re-publishes what was not acknowledged as stored);
// - durable: messages the server acknowledged storing survive the sender's
//   death and a server crash, with no sender left at all.
import t from 'tap';
import { PrimitiveRegistry, type ChannelEvent, type Channel } from '../dist/lib/index.js';
import type { NatsStats } from '../dist/primitives/nats.js';
import { natsSkip, startNats } from './helpers/nats.js';

t.setTimeout(90_000);

const skip = await natsSkip();
const num = (m: Uint8Array) => Buffer.from(m).readUInt32BE(0);
const msg = (i: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(i, 0);
  return b;
};
function nextEvent(ch: Channel, type: ChannelEvent['type']): Promise<ChannelEvent> {
  return new Promise((resolve) => {
    const on = (e: ChannelEvent) => {
      if (e.type === type) {
        ch.off('event', on);
        resolve(e);
      }
    };
    ch.on('event', on);
  });
}
/** Resolve once `f()` holds, checked on every event of `ch` and every 20 ms (stats have no event of their own). */
async function until(f: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

if (skip) {
  t.comment(`skip: ${skip}`);
  t.skip(`nats primitive reconnect: ${skip}`);
} else {
  t.test('core: kill -9 of the NATS server mid-stream loses and duplicates nothing', async (t) => {
    const server = await startNats(t);
    const reg = new PrimitiveRegistry({ channelDefaults: { nats: { servers: server.url } } });
    t.teardown(() => reg.close());
    const rx = await reg.open('nats', { maxmsg: 2000 });
    t.teardown(() => rx.destroy());
    const tx = await reg.open('nats', { address: rx.address });
    t.teardown(() => tx.destroy());
    const txEvents: ChannelEvent[] = [];
    tx.on('event', (e: ChannelEvent) => txEvents.push(e));
    await tx.connect();
    const n = 20_000;
    const crashAt = 6_000;
    let restarted: Promise<void> | undefined;
    // The crash comes from the sending side while it publishes flat out, so frames are in flight in the server.
    const sending = (async () => {
      for (let i = 0; i < n; i++) {
        if (i === crashAt) {
          const reconnected = nextEvent(tx, 'reconnected');
          restarted = server.restart().then(async () => {
            await reconnected;
          });
        }
        if (!tx.trySend(msg(i))) await tx.send(msg(i));
      }
    })();
    let wrong = 0;
    for (let next = 0; next < n; next++) {
      const m = rx.tryReceive() ?? (await rx.receive());
      if (num(m) !== next) wrong++;
    }
    await sending;
    await restarted;
    t.equal(wrong, 0, `all ${n} messages arrived once, in order, across a server crash at message ${crashAt}`);
    await tx.cycle();
    t.equal(rx.tryReceive(), undefined, 'no extra message');
    const types = txEvents.map((e) => e.type);
    t.ok(types.includes('peerLost'), 'the sending end reported peerLost');
    t.ok(types.includes('reconnected'), 'and reconnected');
    const lost = txEvents.find((e) => e.type === 'peerLost') as { error: { code: string } };
    t.equal(lost.error.code, 'AMIX_ERR_PEER_LOST', 'peerLost carries AMIX_ERR_PEER_LOST');
    const rs = rx.stats() as NatsStats;
    const ts = tx.stats() as NatsStats;
    t.equal(ts.lost, 0, 'nothing counted lost');
    t.ok(ts.resent > 0, `frames lost in the crash were re-sent (${ts.resent} messages)`);
    t.comment(`re-sent ${ts.resent}, duplicates dropped ${rs.duplicates}`);
  });

  t.test('core: messages lost in flight (no subscriber for a while) are re-sent, exactly once', async (t) => {
    const server = await startNats(t);
    const reg = new PrimitiveRegistry({ channelDefaults: { nats: { servers: server.url } } });
    t.teardown(() => reg.close());
    const rx1 = await reg.open('nats', { nats: { servers: server.url, id: 'swap' } });
    const tx = await reg.open('nats', { address: rx1.address });
    t.teardown(() => tx.destroy());
    await tx.connect();
    for (let i = 0; i < 10; i++) await tx.send(msg(i));
    for (let i = 0; i < 10; i++) t.equal(num(await rx1.receive()), i, `m${i} at the first receiver`);
    for (let i = 10; i < 13; i++) await tx.send(msg(i));
    await tx.cycle();
    t.equal((rx1.stats() as NatsStats).received, 13, 'm10..m12 arrived at the first receiver (acknowledged)');
    await rx1.destroy(new Error('receiver crash'));
    // Published to a subject nobody listens on: NATS core drops them.
    for (let i = 13; i < 20; i++) await tx.send(msg(i));
    const rx2 = await reg.open('nats', { nats: { servers: server.url, id: 'swap', key: String(rx1.address.key) } });
    t.teardown(() => rx2.destroy());
    const got: number[] = [];
    for (let i = 13; i < 20; i++) got.push(num(await rx2.receive()));
    t.same(got, [13, 14, 15, 16, 17, 18, 19], 'the replacement got exactly what was not acknowledged, in order');
    await tx.cycle();
    t.equal(rx2.tryReceive(), undefined, 'and nothing else: m10..m12, acknowledged on arrival, died with the first');
    t.ok((tx.stats() as NatsStats).resent >= 7, 'counted as re-sent');
  });

  t.test('durable: a replacement receiving end gets every message not taken, nothing lost', async (t) => {
    const server = await startNats(t);
    const reg = new PrimitiveRegistry({ channelDefaults: { nats: { servers: server.url } } });
    t.teardown(() => reg.close());
    const opts = { maxmsg: 500, nats: { servers: server.url, id: 'orders', durable: true } };
    const rx1 = await reg.open('nats', opts);
    const tx = await reg.open('nats', { address: rx1.address });
    t.teardown(() => tx.destroy());
    await tx.connect();
    for (let i = 0; i < 100; i++) await tx.send(msg(i));
    // Not cycle(): its PING goes over core NATS and can overtake DATA still in the stream (docs/nats.md).
    await until(() => (rx1.stats() as NatsStats).received >= 100, 'all 100 to reach the first receiver');
    t.equal((rx1.stats() as NatsStats).received, 100, 'all 100 arrived at the first receiver');
    for (let i = 0; i < 30; i++) t.equal(num(await rx1.receive()), i, `m${i} taken`);
    await rx1.destroy(new Error('receiver crash'));
    for (let i = 100; i < 150; i++) await tx.send(msg(i));
    await until(() => (tx.stats() as NatsStats).stored >= 150, 'the server to store all 150');
    const rx2 = await reg.open('nats', { ...opts, nats: { ...opts.nats, key: String(rx1.address.key) } });
    t.teardown(() => rx2.destroy());
    const got: number[] = [];
    while (got.length === 0 || got[got.length - 1]! < 149) got.push(num(await rx2.receive()));
    const again = got.filter((i) => i < 30);
    t.same(
      got.filter((i) => i >= 30),
      Array.from({ length: 120 }, (_, i) => 30 + i),
      'm30..m149 arrived at the replacement, in order (m30..m99 had reached the first one untaken)',
    );
    t.same(
      again,
      [...again].sort((a, b) => a - b),
      'what came again (taken, in a stream message not all taken) is in order',
    );
    t.ok(
      again.every((i, k) => k === 0 || i === again[k - 1]! + 1),
      `at-least-once: ${again.length} seen again, a run`,
    );
    await tx.send(msg(150));
    t.equal(num(await rx2.receive()), 150, 'the link carries on');
  });

  t.test('durable: messages accepted while the server is down are stored once it is back', async (t) => {
    const server = await startNats(t);
    const reg = new PrimitiveRegistry({ channelDefaults: { nats: { servers: server.url } } });
    t.teardown(() => reg.close());
    const rx = await reg.open('nats', { maxmsg: 500, nats: { servers: server.url, id: 'outage', durable: true } });
    t.teardown(() => rx.destroy());
    const tx = await reg.open('nats', { address: rx.address });
    t.teardown(() => tx.destroy());
    await tx.connect();
    for (let i = 0; i < 20; i++) await tx.send(msg(i));
    await tx.cycle();
    const lost = nextEvent(tx, 'peerLost');
    await server.kill();
    await lost;
    for (let i = 20; i < 70; i++) await tx.send(msg(i));
    t.pass('50 sends accepted within credit while the server is down');
    await server.restart();
    const got: number[] = [];
    for (let i = 0; i < 70; i++) got.push(num(await rx.receive()));
    t.same(
      got,
      Array.from({ length: 70 }, (_, i) => i),
      'all 70 arrived, once each, in order',
    );
    await until(() => (tx.stats() as NatsStats).stored >= 70, 'the server to have stored all 70');
    await tx.cycle();
    t.equal(rx.tryReceive(), undefined, 'and nothing twice');
  });

  t.test('durable: stored messages survive the sender and a server crash', async (t) => {
    const server = await startNats(t);
    const reg = new PrimitiveRegistry({ channelDefaults: { nats: { servers: server.url } } });
    t.teardown(() => reg.close());
    const opts = { maxmsg: 500, nats: { servers: server.url, id: 'ledger', durable: true } };
    const rx1 = await reg.open('nats', opts);
    const key = String(rx1.address.key);
    await rx1.destroy(new Error('receiver down before anything arrives'));
    const tx = await reg.open('nats', { address: rx1.address });
    for (let i = 0; i < 200; i++) await tx.send(msg(i));
    await until(() => (tx.stats() as NatsStats).stored >= 200, 'the server to store all 200');
    await tx.destroy(new Error('sender crash'));
    t.equal((tx.stats() as NatsStats).lost, 0, 'the dead sender counts nothing lost: all was stored');
    await server.restart();
    t.pass('the NATS server was killed with SIGKILL and started again on its store');
    const rx2 = await reg.open('nats', { ...opts, nats: { ...opts.nats, key } });
    t.teardown(() => rx2.destroy());
    const got: number[] = [];
    for (let i = 0; i < 200; i++) got.push(num(await rx2.receive()));
    t.same(
      got,
      Array.from({ length: 200 }, (_, i) => i),
      'all 200 arrived, in order, with no sender left',
    );
    t.equal((rx2.stats() as NatsStats).badFrames, 0, 'every stored frame passed the MAC check');
  });
}
