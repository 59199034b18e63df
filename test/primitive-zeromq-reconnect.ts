// Peer loss on the zeromq primitive: connections cut under a running
// stream (through a TCP relay the test controls) lose nothing and duplicate
// nothing; the ends report peerLost / reconnecting / reconnected; a
// replaced receiving process gets every message not yet acknowledged.
import t from 'tap';
import net from 'node:net';
import { PrimitiveRegistry, type ChannelEvent } from '../dist/lib/index.js';
import type { ZeromqStats } from '../dist/primitives/zeromq.js';

t.setTimeout(60_000);

/**
 * A loopback TCP relay to `port`. `cut()` destroys its live connections;
 * `swallow()` makes it drop what senders write until the next cut, and
 * resolves once it has dropped something (bytes lost in flight for sure).
 */
async function relay(
  port: number,
): Promise<{ endpoint: string; cut: () => number; swallow: () => Promise<void>; close: () => Promise<void> }> {
  const live = new Set<net.Socket>();
  let swallowing: (() => void) | undefined;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      live.add(s);
      s.on('error', () => {});
      s.on('close', () => live.delete(s));
    }
    client.on('data', (chunk) => {
      if (swallowing) {
        swallowing();
        return;
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port: relayPort } = server.address() as net.AddressInfo;
  return {
    endpoint: `tcp://127.0.0.1:${relayPort}`,
    cut: () => {
      swallowing = undefined;
      const n = live.size;
      for (const s of live) s.destroy();
      live.clear();
      return n;
    },
    swallow: () =>
      new Promise<void>((resolve) => {
        swallowing = resolve;
      }),
    close: () =>
      new Promise((r) => {
        for (const s of live) s.destroy();
        server.close(() => r());
      }),
  };
}

const portOf = (endpoint: unknown) => Number(String(endpoint).split(':').pop());

t.test('cutting the connection mid-stream loses and duplicates nothing', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rxEvents: ChannelEvent[] = [];
  const rx = await reg.open('zeromq', { maxmsg: 2000 });
  t.teardown(() => rx.destroy());
  rx.on('event', (e: ChannelEvent) => rxEvents.push(e));
  const r = await relay(portOf(rx.address.endpoint));
  t.teardown(() => r.close());
  const tx = await reg.open('zeromq', {
    address: { ...rx.address, endpoint: r.endpoint },
    zeromq: { reconnectIntervalMs: 10, reconnectMaxIntervalMs: 50 },
  } as never);
  t.teardown(() => tx.destroy());
  const txEvents: ChannelEvent[] = [];
  tx.on('event', (e: ChannelEvent) => txEvents.push(e));
  await tx.connect();

  const n = 30_000;
  const cuts = [7_000, 19_000];
  const sending = (async () => {
    const b = Buffer.alloc(16);
    for (let i = 0; i < n; i++) {
      b.writeUInt32BE(i, 0);
      await tx.send(b);
    }
  })();
  let next = 0;
  let wrong = 0;
  while (next < n) {
    const m = Buffer.from(await rx.receive());
    if (m.readUInt32BE(0) !== next) wrong++;
    if (cuts.includes(next)) t.ok(r.cut() > 0, `connection cut after receiving message ${next}`);
    next++;
  }
  await sending;
  t.equal(wrong, 0, `all ${n} messages arrived once, in order`);
  await tx.cycle();
  t.equal(rx.tryReceive(), undefined, 'no extra message');
  const types = txEvents.map((e) => e.type);
  t.ok(types.includes('peerLost'), 'the sending end reported peerLost');
  t.ok(types.includes('reconnected'), 'the sending end reported reconnected');
  const lost = txEvents.find((e) => e.type === 'peerLost') as { error: { code: string } };
  t.equal(lost.error.code, 'AMIX_ERR_PEER_LOST', 'peerLost carries AMIX_ERR_PEER_LOST');
  const re = txEvents.filter((e) => e.type === 'reconnected') as Array<{ resent: number; lost: number }>;
  t.ok(
    re.every((e) => e.lost === 0),
    'nothing reported lost',
  );
  t.ok(
    rxEvents.some((e) => e.type === 'peerLost'),
    'the receiving end reported peerLost too',
  );
  const s = tx.stats() as ZeromqStats;
  t.comment(
    `resent ${s.resent}, duplicates dropped ${(rx.stats() as ZeromqStats).duplicates}, reconnects ${re.length}`,
  );
});

t.test('messages lost in flight are re-sent after the reconnect, exactly once', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('zeromq');
  t.teardown(() => rx.destroy());
  const r = await relay(portOf(rx.address.endpoint));
  t.teardown(() => r.close());
  const tx = await reg.open('zeromq', {
    address: { ...rx.address, endpoint: r.endpoint },
    zeromq: { reconnectIntervalMs: 10, reconnectMaxIntervalMs: 50 },
  } as never);
  t.teardown(() => tx.destroy());
  const events: ChannelEvent[] = [];
  tx.on('event', (e: ChannelEvent) => events.push(e));
  await tx.connect();
  for (let i = 0; i < 100; i++) await tx.send(Buffer.from(`m${i}`));
  for (let i = 0; i < 100; i++) await rx.receive();
  const swallowed = r.swallow();
  for (let i = 100; i < 150; i++) await tx.send(Buffer.from(`m${i}`));
  await swallowed;
  const reconnected = new Promise<ChannelEvent>((resolve) =>
    tx.on('event', (e: ChannelEvent) => {
      if (e.type === 'reconnected') resolve(e);
    }),
  );
  t.ok(r.cut() > 0, 'cut with bytes lost in the relay');
  const got: string[] = [];
  for (let i = 100; i < 150; i++) got.push(Buffer.from(await rx.receive()).toString());
  t.same(
    got,
    Array.from({ length: 50 }, (_, i) => `m${100 + i}`),
    'the lost messages arrived, in order',
  );
  await tx.cycle();
  t.equal(rx.tryReceive(), undefined, 'and only once');
  const e = (await reconnected) as { resent: number; lost: number };
  t.ok(e.resent > 0, `reconnected reports ${e.resent} re-sent`);
  t.equal(e.lost, 0, 'and none lost');
  t.ok((tx.stats() as ZeromqStats).resent > 0, 'stats count the re-sent messages');
});

t.test('a replaced receiving end gets every message not yet acknowledged', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx1 = await reg.open('zeromq');
  t.teardown(() => rx1.destroy());
  const endpoint = String(rx1.address.endpoint);
  const tx = await reg.open('zeromq', {
    address: rx1.address,
    zeromq: { reconnectIntervalMs: 10, reconnectMaxIntervalMs: 50 },
  } as never);
  t.teardown(() => tx.destroy());
  const events: ChannelEvent[] = [];
  tx.on('event', (e: ChannelEvent) => events.push(e));
  await tx.connect();
  for (let i = 0; i < 10; i++) await tx.send(Buffer.from(`m${i}`));
  for (let i = 0; i < 10; i++) await rx1.receive();
  await tx.cycle();
  const lostSeen = new Promise<void>((resolve) =>
    tx.on('event', (e: ChannelEvent) => {
      if (e.type === 'peerLost') resolve();
    }),
  );
  await rx1.destroy();
  await lostSeen;
  t.pass('peerLost when the receiving end went away');
  for (let i = 10; i < 15; i++) await tx.send(Buffer.from(`m${i}`));
  const reconnected = new Promise<ChannelEvent>((resolve) =>
    tx.on('event', (e: ChannelEvent) => {
      if (e.type === 'reconnected') resolve(e);
    }),
  );
  const rx2 = await reg.open('zeromq', { zeromq: { bind: endpoint } } as never);
  t.teardown(() => rx2.destroy());
  const got: string[] = [];
  for (let i = 0; i < 5; i++) got.push(Buffer.from(await rx2.receive()).toString());
  t.same(got, ['m10', 'm11', 'm12', 'm13', 'm14'], 'the new receiving end got exactly the unacknowledged messages');
  const e = (await reconnected) as { resent: number; lost: number };
  t.equal(e.lost, 0, 'reconnected reports nothing lost');
  t.ok(
    events.some((x) => x.type === 'reconnecting'),
    'reconnecting attempts were reported',
  );
});

t.test('disconnect keeps messages and connect delivers them', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('zeromq');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('zeromq', { address: rx.address });
  t.teardown(() => tx.destroy());
  await tx.connect();
  await tx.send(Buffer.from('before'));
  t.equal(Buffer.from(await rx.receive()).toString(), 'before', 'delivered while connected');
  await tx.disconnect();
  await tx.send(Buffer.from('while detached'));
  await tx.connect();
  t.equal(Buffer.from(await rx.receive()).toString(), 'while detached', 'delivered after connect');
  await tx.cycle();
  t.equal(rx.tryReceive(), undefined, 'exactly once');
});
