// The seed's own scenarios (002) where the fabric once strayed from its letter:
// each test names the paragraph it follows, and runs for thread and process points.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { makeFabric, pointFixture, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';
import { RECONNECT_FROM } from '../dist/lib/index.js';

for (const scope of ['thread', 'process', 'mixed'] as const) {
  t.test(`002 ¶122 (${scope}): a call on hold takes no part in sends; the new call gets every message`, async (t) => {
    const { fabric } = await makeFabric(t);
    // A small window, so a held link that still took sends would fill and block P within a few messages.
    // Mixed: P is a thread point and Q, R process points, so both calls go through brokers.
    const scopeOf = (name: string) => (scope === 'mixed' ? (name === 'P' ? 'thread' : 'process') : scope);
    for (const name of ['P', 'Q', 'R'])
      fabric.register({ name, location: pointFixture('relay'), characteristics: { scope: scopeOf(name), maxmsg: 4 } });
    const toP = await fabric.connect(null, 'P', { direction: 'aToB' });
    const first = await fabric.connect('P', 'Q', { direction: 'aToB' });
    const second = await fabric.connect('P', 'R', { direction: 'aToB', mode: 'hold' });
    t.equal(first.info.state, 'held', 'P put its first call on hold');
    const fromQ = await fabric.connect('Q', null, { direction: 'aToB' });
    const fromR = await fabric.connect('R', null, { direction: 'aToB' });

    const N = 50;
    const got: string[] = [];
    const receiving = (async () => {
      const signal = timeoutSignal(t, 20_000);
      while (got.length < N) got.push(text(await fromR.receive({ signal })));
    })();
    for (let i = 0; i < N; i++) await toP.send(Buffer.from(`m${i}`));
    await receiving;
    t.same(
      got,
      Array.from({ length: N }, (_, i) => `m${i}`),
      'every message reached the new call, in order',
    );
    const onHold = await fromQ.receive({ signal: timeoutSignal(t, 200) }).catch((e: { code?: string }) => e);
    t.equal((onHold as { code?: string }).code, 'AMIX_ERR_ABORTED', 'the held call received nothing');

    await second.close();
    t.equal(first.info.state, 'active', 'hanging up the new call restores the held one');
    await toP.send(Buffer.from('after'));
    t.equal(text(await fromQ.receive({ signal: timeoutSignal(t, 10_000) })), 'after', 'the restored call takes sends');
  });
}

for (const scope of ['thread', 'process'] as const) {
  t.test(`002 ¶698 (${scope}): RECONNECT sends a null message to a point that only sends`, async (t) => {
    const { fabric } = await makeFabric(t);
    fabric.register({ name: 'W', location: pointFixture('nullwatch'), characteristics: { scope } });
    // W's only link sends from W to the caller: nothing reaches W through a link.
    const fromW = await fabric.connect('W', null, { direction: 'aToB' });
    const [info] = await fabric.reconnect('W');
    t.equal(info!.state, 'running', 'the state is reported');
    t.equal(
      text(await fromW.receive({ signal: timeoutSignal(t, 10_000) })),
      `null size=0 from=${RECONNECT_FROM}`,
      'the point received a size-0 message from the fabric',
    );
  });
}

t.test("002 ¶297-303: connect records the list entries in the seed's step order", async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'A', location: pointFixture('sink') });
  fabric.register({ name: 'B', location: pointFixture('sink') });
  const cases = [
    { direction: 1, steps: [1, 2, 3, 4], lists: ['A sender B', 'B receiver A', 'B sender A', 'A receiver B'] },
    { direction: 2, steps: [3, 4], lists: ['B sender A', 'A receiver B'] },
    { direction: 3, steps: [1, 2], lists: ['A sender B', 'B receiver A'] },
    { direction: 4, steps: [], lists: [] },
  ] as const;
  for (const c of cases) {
    const link = await fabric.connect('A', 'B', { direction: c.direction });
    const seen = events.filter(
      (e): e is Extract<typeof e, { type: 'linkStep' }> => e.type === 'linkStep' && e.link === link.id,
    );
    t.same(
      seen.map((e) => e.step),
      c.steps,
      `direction ${c.direction}: steps ${c.steps.join(',') || 'none'}`,
    );
    t.same(
      seen.map((e) => `${e.end.split('#')[0]} ${e.list} ${e.peer.split('#')[0]}`),
      c.lists,
      `direction ${c.direction}: each step's list entry`,
    );
    t.same(
      link.info.steps.filter((n) => n <= 4),
      c.steps,
      'the link reports the same list steps (5 and 6 reactivate the ends)',
    );
    await link.close();
  }
});

t.test('002 ¶297-303: through a broker, the steps number only the ends, in order', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'T', location: pointFixture('sink') });
  fabric.register({ name: 'P', location: pointFixture('sink'), characteristics: { scope: 'process' } });
  // T is a thread point, P its own process: a broker converts between their two primitives.
  const link = await fabric.connect('T', 'P', { direction: 1 });
  t.ok(link.info.brokers.length > 0, 'the link has a broker');
  const seen = events.filter(
    (e): e is Extract<typeof e, { type: 'linkStep' }> => e.type === 'linkStep' && e.link === link.id,
  );
  t.same(
    seen.map((e) => e.step),
    [1, 2, 3, 4],
    'steps 1-4 in order',
  );
  t.same(
    seen.map((e) => `${e.end.split('#')[0]} ${e.list} ${e.peer.split('#')[0]}`),
    ['T sender P', 'P receiver T', 'P sender T', 'T receiver P'],
    "each end's entry names the far end, not the broker",
  );
});

t.test('a live broker: terminate(broker) ends it and its link; close() finishes within the grace period', async (t) => {
  const { fabric, events } = await makeFabric(t);
  const graceMs = 2000;
  fabric.register({ name: 'T', location: pointFixture('sink'), characteristics: { graceMs } });
  fabric.register({ name: 'P', location: pointFixture('sink'), characteristics: { scope: 'process', graceMs } });
  const first = await fabric.connect('T', 'P');
  const [broker] = first.info.brokers;
  t.ok(broker, 'the link has a broker');
  await fabric.terminate(broker!);
  t.notOk(fabric.hasLink(first.id), "the broker's link is gone");
  t.notOk(
    fabric.instances().some((i) => i.instance === broker),
    'the broker is gone',
  );
  t.ok(
    events.some((e) => e.type === 'instanceTerminated' && e.instance === broker),
    'its termination was reported',
  );

  const second = await fabric.connect('T', 'P');
  t.ok(second.info.brokers.length > 0, 'a new link gets a new broker');
  const started = Date.now();
  await fabric.close();
  t.ok(Date.now() - started < graceMs * 2, `close finished in ${Date.now() - started} ms`);
});

t.test('002 ¶304-306: the caller sends only where its direction lets it, and reads its own lists', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  fabric.register({ name: 'src', location: pointFixture('counter'), data: { count: 1 } });
  // The caller as A of bToA only receives: it is on no sender list.
  const inbound = await fabric.connect(null, 'src', { direction: 'bToA' });
  await t.rejects(inbound.send(Buffer.from('x')), { code: 'AMIX_ERR_BAD_DIRECTION' }, 'send on a receive-only link');
  t.same(inbound.senderList, [], "the caller's sender list on it is empty");
  t.same(
    inbound.receiverList.map((e) => e.peer),
    ['src'],
    "the caller's receiver list names the sender",
  );
  t.equal((await inbound.receive({ signal: timeoutSignal(t, 10_000) })).size, 16, 'and it receives');
  const outbound = await fabric.connect(null, 'echo', { direction: 'aToB' });
  await t.rejects(outbound.receive(), { code: 'AMIX_ERR_BAD_DIRECTION' }, 'receive on a send-only link');
  t.same(
    outbound.senderList.map((e) => e.peer),
    ['echo'],
    "the caller's sender list names the receiver",
  );
  await outbound.send(Buffer.from('fine'));
});

t.test('002 ¶292-293: CREATE checks the requested role against the registration', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'rx', location: pointFixture('sink'), role: 'receiver' });
  fabric.register({ name: 'any', location: pointFixture('sink') });
  await t.rejects(fabric.create('rx', { role: 'sender' }), { code: 'AMIX_ERR_BAD_DIRECTION' }, 'a receiver as sender');
  await t.rejects(fabric.create('rx', { role: 'both' }), { code: 'AMIX_ERR_BAD_DIRECTION' }, 'a receiver as both');
  t.equal(fabric.instances('rx').length, 0, 'nothing was started for a refused create');
  t.equal((await fabric.create('rx', { role: 'receiver' })).state, 'running', 'a receiver as receiver');
  t.equal((await fabric.create('any', { role: 'sender' })).state, 'running', 'a point of both roles as sender');
  await t.rejects(fabric.create('any', { role: 'boss' as never }), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('002 ¶702: EXECUTE creates the point if needed, then resumes it', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'idle', location: pointFixture('relay'), characteristics: { idle: true } });
  const created = await fabric.create('idle');
  t.equal(created.state, 'idle', 'an idle point is created but not run');
  const link = await fabric.connect('idle', null, { direction: 'aToB' });
  const feed = await fabric.connect(null, 'idle', { direction: 'aToB' });
  await link.suspend();
  t.equal(link.info.state, 'suspended', 'its sending link is suspended');
  const info = await fabric.execute('idle');
  t.equal(info.instance, created.instance, 'the same instance');
  t.equal(info.state, 'running', 'running');
  t.equal(link.info.state, 'active', 'its suspended sending link was resumed');
  await feed.send(Buffer.from('go'));
  t.equal(text(await link.receive({ signal: timeoutSignal(t, 10_000) })), 'go', 'and it works');
  const fresh = await fabric.execute('idle2').catch((e: { code?: string }) => e);
  t.equal((fresh as { code?: string }).code, 'AMIX_ERR_UNKNOWN_POINT');
});

t.test("002 DISCONNECT: the primitive's own disconnect operation runs on the link's sending ends", async (t) => {
  const { fabric } = await makeFabric(t);
  const calls = ((globalThis as { __amixSpyCalls?: string[] }).__amixSpyCalls ??= []);
  fabric.registry.register({
    name: 'spyThread',
    location: fileURLToPath(new URL('./fixtures/spy-thread-primitive.mjs', import.meta.url)),
    characteristics: { scopes: ['thread'], maxMessageBytes: 1 << 20, ordering: 'fifo', delivery: 'reliable' },
  });
  fabric.register({
    name: 'sink',
    location: pointFixture('sink'),
    sendPrimitive: 'spyThread',
    receivePrimitive: 'spyThread',
  });
  // The caller is A and sends: its sending end is in this thread, where the spy records.
  const link = await fabric.connect(null, 'sink', { direction: 'aToB' });
  t.same(calls, ['connect'], 'connect ran as the sending end attached');
  await link.send(Buffer.from('x'));
  await link.close();
  t.same(calls, ['connect', 'disconnect'], 'disconnect ran when the link was disconnected');
});

t.test('002 stack (¶86): a process point gets the stack its registration asks for', async (t) => {
  const { fabric } = await makeFabric(t);
  const depths: Record<string, number> = {};
  for (const stackMb of [1, 6]) {
    const name = `deep${stackMb}`;
    fabric.register({ name, location: pointFixture('depth'), characteristics: { scope: 'process', stackMb } });
    const link = await fabric.connect(null, name);
    await link.send(Buffer.from('?'));
    depths[name] = Number(text(await link.receive({ signal: timeoutSignal(t, 20_000) })));
  }
  t.ok(depths.deep6! > 3 * depths.deep1!, `6 MiB recurses deeper than 1 MiB (${depths.deep6} vs ${depths.deep1})`);
});

t.test('002 broker service: a broker is invisible to both points; the link still lists it', async (t) => {
  const { fabric } = await makeFabric(t);
  // CP-A is a thread point, CP-B a process point: every flow between them goes through a broker.
  fabric.register({ name: 'CP-A', location: pointFixture('relay') });
  fabric.register({
    name: 'CP-B',
    location: pointFixture('named'),
    data: { from: 'CP-A' },
    characteristics: { scope: 'process' },
  });
  const ab = await fabric.connect('CP-A', 'CP-B');
  t.ok(ab.info.brokers.length > 0, 'link.info lists the brokers');
  // The caller feeds CP-A, which relays to CP-B and to the caller; CP-B takes it with
  // receive({ from: 'CP-A' }) and answers with send({ to: 'CP-A' }), which CP-A relays on.
  const feed = await fabric.connect(null, 'CP-A', { direction: 'aToB' });
  const out = await fabric.connect('CP-A', null, { direction: 'aToB' });
  await feed.send(Buffer.from('hi'));
  const signal = timeoutSignal(t, 20_000);
  const seen: string[] = [];
  while (!seen.includes('CP-A>hi')) seen.push(text(await out.receive({ signal })));
  t.ok(seen.includes('CP-A>hi'), `CP-B received from CP-A by name and answered it by name (${seen.join(', ')})`);
});

t.test('002 broker service: receive({ from }) and send({ to }) name the far point through a broker', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'CP-A', location: pointFixture('sink') });
  fabric.register({ name: 'CP-B', location: pointFixture('sink'), characteristics: { scope: 'process' } });
  await fabric.connect('CP-A', 'CP-B');
  const a = fabric.instance('CP-A');
  const b = fabric.instance('CP-B');
  t.same(
    [...a.senderList, ...a.receiverList].map((e) => e.peer),
    ['CP-B', 'CP-B'],
    "both of CP-A's lists name CP-B",
  );
  t.same(
    [...b.senderList, ...b.receiverList].map((e) => e.peer),
    ['CP-A', 'CP-A'],
    "both of CP-B's lists name CP-A",
  );
});
