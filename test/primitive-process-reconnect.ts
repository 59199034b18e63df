// Losing the peer: SIGKILL of a child process mid-stream gives the other
// side a clear event, the sender reconnects when a receiver comes back at the
// same path, and nothing accepted is lost. A dropped connection to a live
// receiver resumes exactly (no loss, no duplicate).
import t from 'tap';
import { join } from 'node:path';
import { PrimitiveRegistry, type ChannelEvent } from '../dist/lib/index.js';
import qcp, {
  type ProcessChannelOptions,
  type ReceiverHandle,
  type SenderHandle,
} from '../dist/primitives/queueConditionProcess.js';
import { spawnPeer, tempDir } from './fixtures/process-helpers.js';

function waitEvent(
  events: ChannelEvent[],
  on: (f: () => void) => void,
  pred: (e: ChannelEvent) => boolean,
): Promise<ChannelEvent> {
  return new Promise((resolve) => {
    const check = () => {
      const e = events.find(pred);
      if (e) resolve(e);
      else on(check);
    };
    check();
  });
}

function eventLog(ch: { on(ev: 'event', f: (e: ChannelEvent) => void): unknown }): {
  events: ChannelEvent[];
  until: (pred: (e: ChannelEvent) => boolean) => Promise<ChannelEvent>;
} {
  const events: ChannelEvent[] = [];
  let wake: Array<() => void> = [];
  ch.on('event', (e: ChannelEvent) => {
    events.push(e);
    const w = wake;
    wake = [];
    for (const f of w) f();
  });
  return { events, until: (pred) => waitEvent(events, (f) => wake.push(f), pred) };
}

t.test(
  'SIGKILL of the receiving process: peerLost, then the sender reconnects to its successor and loses nothing',
  async (t) => {
    const runtimeDir = tempDir(t);
    const socketPath = join(runtimeDir, 'service.sock');
    const total = 3000;
    const pauseAt = 499;
    const first = spawnPeer(t, { role: 'receive', runtimeDir, socketPath, pauseAt, options: { maxmsg: 256 } });
    const { address } = await first.next<{ address: Record<string, unknown> }>(
      (m) => 'address' in m,
      'the first receiver address',
    );
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    const options: ProcessChannelOptions = {
      address,
      reconnect: { attempts: 30, initialDelayMs: 20, maxDelayMs: 200 },
    };
    const tx = await reg.open('queueConditionProcess', options);
    t.teardown(() => tx.destroy());
    const log = eventLog(tx);
    const sending = (async () => {
      const m = Buffer.alloc(16);
      for (let i = 0; i < total; i++) {
        m.writeUInt32LE(i, 0);
        await tx.send(m);
      }
    })();
    await first.next((m) => 'paused' in m, 'the first receiver stopped consuming');
    first.proc.kill('SIGKILL');
    t.equal((await first.exited).signal, 'SIGKILL', 'the first receiver was killed');
    const lost = await log.until((e) => e.type === 'peerLost');
    t.equal(
      (lost as { error: { code: string } }).error.code,
      'AMIX_ERR_PEER_LOST',
      'the sender got peerLost with AMIX_ERR_PEER_LOST',
    );
    await log.until((e) => e.type === 'reconnecting');
    t.ok(tx.isOpen, 'the sending end stays open while it reconnects');
    // The successor takes over the same path: the dead process's socket file is stale and gets removed.
    const second = spawnPeer(t, { role: 'receive', runtimeDir, socketPath, until: total - 1 });
    const back = (await log.until((e) => e.type === 'reconnected')) as { resent: number; lost: number };
    t.ok(back.resent > 0, `unacknowledged messages were re-sent (${back.resent})`);
    t.equal(back.lost, 0, 'none reported lost');
    await sending;
    const done = await second.next<{ first: number; last: number; bad: number }>(
      (m) => 'done' in m,
      'the successor got the last message',
    );
    t.ok(
      done.first <= pauseAt + 1,
      `the successor starts at ${done.first}, no later than the first unconsumed message ${pauseAt + 1}: nothing lost`,
    );
    t.equal(done.last, total - 1, 'it got the last message');
    t.equal(done.bad, 0, 'and everything in between, in order');
  },
);

t.test('SIGKILL of the sending process: the receiver gets peerLost and keeps serving new senders', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess');
  t.teardown(() => rx.destroy());
  const log = eventLog(rx);
  const sender = spawnPeer(t, { role: 'send', address: rx.address, runtimeDir, count: 1e9, reportEvery: 1000 });
  await sender.next((m) => 'progress' in m, 'the sender is streaming');
  await rx.receive();
  sender.proc.kill('SIGKILL');
  const lost = await log.until((e) => e.type === 'peerLost');
  t.equal((lost as { error: { code: string } }).error.code, 'AMIX_ERR_PEER_LOST', 'peerLost with AMIX_ERR_PEER_LOST');
  t.ok(rx.isOpen, 'the receiving end stays open');
  while (rx.tryReceive() !== undefined) {
    /* drain what the dead sender sent */
  }
  const next = spawnPeer(t, { role: 'send', address: rx.address, runtimeDir, count: 100 });
  let n = 0;
  for (; n < 100; n++) {
    const m = await rx.receive();
    if (Buffer.from(m.buffer, m.byteOffset, m.length).readUInt32LE(0) !== n) break;
  }
  t.equal(n, 100, 'a new sender process delivers all its messages in order');
  await next.next((m) => 'sent' in m, 'the new sender finished');
});

t.test('a sender that died holding unused credit does not starve the next sender', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess', { maxmsg: 16, minmsg: 8 });
  t.teardown(() => rx.destroy());
  const log = eventLog(rx);
  const first = spawnPeer(t, { role: 'send', address: rx.address, runtimeDir, count: 2, hold: true });
  await first.next((m) => 'sent' in m, 'the first sender sent its two messages');
  first.proc.kill('SIGKILL');
  await log.until((e) => e.type === 'peerLost');
  t.equal(
    (await rx.receive()).length + (await rx.receive()).length,
    16,
    "the dead sender's messages are still delivered",
  );
  const next = spawnPeer(t, { role: 'send', address: rx.address, runtimeDir, count: 200 });
  let n = 0;
  for (; n < 200; n++) {
    const m = await rx.receive();
    if (Buffer.from(m.buffer, m.byteOffset, m.length).readUInt32LE(0) !== n) break;
  }
  t.equal(n, 200, 'the next sender got credit at once and delivered 200 messages through a window of 16');
  await next.next((m) => 'sent' in m, 'the next sender finished');
});

t.test('a dropped connection to a live receiver resumes exactly: no loss, no duplicate', async (t) => {
  const runtimeDir = tempDir(t);
  const events: ChannelEvent[] = [];
  const rx = (await qcp.create({ runtimeDir, maxmsg: 64 })) as ReceiverHandle;
  t.teardown(() => qcp.destroy(rx));
  const tx = (await qcp.create({
    runtimeDir,
    address: rx.address,
    onEvent: (e) => events.push(e),
    reconnect: { initialDelayMs: 5 },
  } as ProcessChannelOptions)) as SenderHandle;
  t.teardown(() => qcp.destroy(tx));
  const got: number[] = [];
  const m = Buffer.alloc(8);
  let sent = 0;
  for (let round = 0; round < 5; round++) {
    const consume = (async () => {
      for (let i = 0; i < 60; i++) {
        const x = await qcp.receive(rx, { maxBytes: 8 });
        got.push(Buffer.from(x.buffer, x.byteOffset, x.length).readUInt32LE(0));
      }
    })();
    for (let i = 0; i < 60; i++) {
      m.writeUInt32LE(sent++, 0);
      await qcp.send(tx, m);
    }
    // Cut every connection from the receiving side, mid-stream: some frames are still packed, some in the kernel.
    for (const c of rx.st.conns) c.socket.destroy();
    await consume;
  }
  await qcp.cycle(tx);
  for (let x; (x = qcp.tryReceive(rx, 8)) !== undefined;) got.push(Buffer.from(x.buffer, x.byteOffset).readUInt32LE(0));
  t.same(
    got,
    Array.from({ length: sent }, (_, i) => i),
    `all ${sent} messages arrived once each, in order, across 5 dropped connections`,
  );
  t.ok(events.filter((e) => e.type === 'reconnected').length >= 1, 'the sender reported reconnecting');
  t.ok(
    events.every((e) => e.type !== 'reconnected' || e.lost === 0),
    'and never a lost message',
  );
});

t.test('disconnect keeps the session; sends while disconnected go out on connect, exactly once', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionProcess', { address: rx.address });
  t.teardown(() => tx.destroy());
  const rxLog = eventLog(rx);
  await tx.send(Buffer.from([1]));
  await tx.disconnect();
  await tx.send(Buffer.from([2]));
  await tx.send(Buffer.from([3]));
  await tx.connect();
  const got = [(await rx.receive())[0], (await rx.receive())[0], (await rx.receive())[0]];
  t.same(got, [1, 2, 3], 'every message once, in order');
  await tx.cycle();
  t.equal(rx.tryReceive(), undefined, 'nothing more');
  t.notOk(
    rxLog.events.some((e) => e.type === 'peerLost'),
    'a deliberate disconnect is not reported as a lost peer',
  );
});

t.test(
  'a receiver that never comes back: the sender gives up, closes with AMIX_ERR_PEER_LOST and counts the unacknowledged',
  async (t) => {
    const runtimeDir = tempDir(t);
    const peer = spawnPeer(t, { role: 'receive', runtimeDir, pauseAt: 9 });
    const { address } = await peer.next<{ address: Record<string, unknown> }>(
      (m) => 'address' in m,
      'the receiver address',
    );
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    const tx = await reg.open('queueConditionProcess', {
      address,
      reconnect: { attempts: 2, initialDelayMs: 5 },
    } as ProcessChannelOptions);
    t.teardown(() => tx.destroy());
    const log = eventLog(tx);
    for (let i = 0; i < 20; i++) {
      const m = Buffer.alloc(4);
      m.writeUInt32LE(i, 0);
      await tx.send(m);
    }
    await peer.next((m) => 'paused' in m, 'the receiver stopped consuming');
    peer.proc.kill('SIGKILL');
    const reason = (await tx.closed) as { code: string; details: { unacknowledged: number } };
    t.equal(reason.code, 'AMIX_ERR_PEER_LOST', 'closed with AMIX_ERR_PEER_LOST');
    t.ok(
      reason.details.unacknowledged >= 10,
      `the unacknowledged messages are reported (${reason.details.unacknowledged}), not silently lost`,
    );
    t.same(
      log.events.filter((e) => e.type === 'reconnecting').map((e) => (e as { attempt: number }).attempt),
      [1, 2],
      'two attempts, then it gave up',
    );
    await t.rejects(tx.send(Buffer.from([0])), { code: 'AMIX_ERR_CLOSED' }, 'send after the channel closed');
  },
);

t.test('a receiving end closed gracefully closes its senders with peerLost', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess');
  const tx = await reg.open('queueConditionProcess', { address: rx.address });
  t.teardown(() => tx.destroy());
  const log = eventLog(tx);
  await rx.close();
  const reason = (await tx.closed) as { code: string };
  t.equal(reason.code, 'AMIX_ERR_PEER_LOST', 'the sending end closed with AMIX_ERR_PEER_LOST');
  t.ok(
    log.events.some((e) => e.type === 'peerLost'),
    'after a peerLost event',
  );
});
