// The seed's scenarios of issue 15 in every scope: thread points, process
// points, and mixed links (a thread point and a process point, so the fabric
// inserts a broker between their primitives). Each test names the paragraph
// it follows. Items that cannot vary by link say why where they loop over
// fewer scopes. One fabric per test, few points: a process point costs a fork.
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINK_SCOPES, callerIn, makeFabric, pointFixture, scopeOf, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';
import { RECONNECT_FROM } from '../dist/lib/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

for (const scope of LINK_SCOPES) {
  t.test(`002 ¶297-303 (${scope}): connect records the list entries in the seed's step order`, async (t) => {
    const { fabric, events } = await makeFabric(t);
    for (const name of ['A', 'B'])
      fabric.register({
        name,
        location: pointFixture('sink'),
        characteristics: { scope: scopeOf(scope, name, ['A']) },
      });
    const cases = [
      { direction: 1, steps: [1, 2, 3, 4], lists: ['A sender B', 'B receiver A', 'B sender A', 'A receiver B'] },
      { direction: 2, steps: [3, 4], lists: ['B sender A', 'A receiver B'] },
      { direction: 3, steps: [1, 2], lists: ['A sender B', 'B receiver A'] },
      { direction: 4, steps: [], lists: [] },
    ] as const;
    for (const c of cases) {
      const link = await fabric.connect('A', 'B', { direction: c.direction });
      // Mixed: one broker per flow; the steps still number only A's and B's entries.
      t.equal(
        link.info.brokers.length,
        scope === 'mixed' ? c.steps.length / 2 : 0,
        `direction ${c.direction}: brokers`,
      );
      const seen = events.filter(
        (e): e is Extract<typeof e, { type: 'linkStep' }> => e.type === 'linkStep' && e.link === link.id,
      );
      t.same(
        seen.map((e) => e.step),
        c.steps,
        `direction ${c.direction}: steps ${c.steps.join(',') || 'none'}`,
      );
      t.same(
        seen.map((e) => `${e.end} ${e.list} ${e.peer}`),
        c.lists,
        `direction ${c.direction}: each step's entry names the far end`,
      );
      t.same(
        link.info.steps.filter((n) => n <= 4),
        c.steps,
        'the link reports the same list steps (5 and 6 reactivate the ends)',
      );
      await link.close();
    }
  });

  t.test(
    `002 ¶304-306 (${scope}): the caller sends only where its direction lets it, and reads its own lists`,
    async (t) => {
      const { fabric } = await makeFabric(t);
      // Mixed: the caller is a thread end and both points process points, so each flow has a broker.
      const pointScope = scope === 'mixed' ? 'process' : scope;
      const as = callerIn(scope);
      fabric.register({ name: 'echo', location: pointFixture('echo'), characteristics: { scope: pointScope } });
      fabric.register({
        name: 'src',
        location: pointFixture('counter'),
        data: { count: 1 },
        characteristics: { scope: pointScope },
      });
      // The caller as A of bToA only receives: it is on no sender list.
      const inbound = await fabric.connect(null, 'src', { direction: 'bToA', ...as });
      t.equal(inbound.info.brokers.length, scope === 'mixed' ? 1 : 0, 'brokers on the inbound link');
      await t.rejects(
        inbound.send(Buffer.from('x')),
        { code: 'AMIX_ERR_BAD_DIRECTION' },
        'send on a receive-only link',
      );
      t.same(inbound.senderList, [], "the caller's sender list on it is empty");
      t.same(
        inbound.receiverList.map((e) => e.peer),
        ['src'],
        "the caller's receiver list names the sender",
      );
      const m = await inbound.receive({ signal: timeoutSignal(t, 10_000) });
      t.equal(m.size, 16, 'and it receives');
      t.equal(m.from, 'src', 'from the sender by name');
      const outbound = await fabric.connect(null, 'echo', { direction: 'aToB', ...as });
      await t.rejects(outbound.receive(), { code: 'AMIX_ERR_BAD_DIRECTION' }, 'receive on a send-only link');
      t.same(
        outbound.senderList.map((e) => e.peer),
        ['echo'],
        "the caller's sender list names the receiver",
      );
      t.same(outbound.receiverList, [], "the caller's receiver list on it is empty");
      await outbound.send(Buffer.from('fine'));
    },
  );

  t.test(`002 ¶702 (${scope}): EXECUTE creates the point if needed, then resumes it`, async (t) => {
    const { fabric } = await makeFabric(t);
    // Mixed: the points are process points and the caller receives as a thread end, so the
    // links they send on run through a broker.
    const pointScope = scope === 'mixed' ? 'process' : scope;
    const as = callerIn(scope);
    fabric.register({
      name: 'idle',
      location: pointFixture('relay'),
      characteristics: { idle: true, scope: pointScope },
    });
    const created = await fabric.create('idle');
    t.equal(created.state, 'idle', 'an idle point is created but not run');
    const link = await fabric.connect('idle', null, { direction: 'aToB', ...as });
    t.equal(link.info.brokers.length, scope === 'mixed' ? 1 : 0, 'brokers on the link it sends on');
    const feed = await fabric.connect(null, 'idle', { direction: 'aToB' });
    await link.suspend();
    t.equal(link.info.state, 'suspended', 'its sending link is suspended');
    const info = await fabric.execute('idle');
    t.equal(info.instance, created.instance, 'the same instance');
    t.equal(info.state, 'running', 'running');
    t.equal(link.info.state, 'active', 'its suspended sending link was resumed');
    await feed.send(Buffer.from('go'));
    t.equal(text(await link.receive({ signal: timeoutSignal(t, 10_000) })), 'go', 'and messages flow through it');
    // A point that does not run yet is created, in its own scope, and started with nobody linked:
    // what it sends waits for its first receiver (¶321).
    fabric.register({
      name: 'D',
      location: pointFixture('greeter'),
      role: 'sender',
      data: { count: 1 },
      characteristics: { idle: true, scope: pointScope },
    });
    const d = await fabric.execute('D');
    t.match(d, { state: 'running', scope: pointScope, senderList: [] }, 'created and started, unlinked');
    const fromD = await fabric.connect('D', null, { direction: 'aToB', ...as });
    t.equal(text(await fromD.receive({ signal: timeoutSignal(t, 10_000) })), 'hello 0', 'its first message was kept');
    const fresh = await fabric.execute('T2').catch((e: { code?: string }) => e);
    t.equal((fresh as { code?: string }).code, 'AMIX_ERR_UNKNOWN_POINT', 'an unregistered point is refused');
  });

  t.test(`002 ¶698 (${scope}): RECONNECT sends a null message to a point that only sends`, async (t) => {
    const { fabric } = await makeFabric(t);
    // W's only link sends from W to the caller: nothing reaches W through a link. Mixed: W is a
    // process point and the caller a thread end, a broker between them.
    fabric.register({
      name: 'W',
      location: pointFixture('nullwatch'),
      characteristics: { scope: scope === 'mixed' ? 'process' : scope },
    });
    const fromW = await fabric.connect('W', null, { direction: 'aToB', ...callerIn(scope) });
    t.equal(fromW.info.brokers.length, scope === 'mixed' ? 1 : 0, "brokers on W's link");
    const [info] = await fabric.reconnect('W');
    t.equal(info!.state, 'running', 'the state is reported');
    t.equal(
      text(await fromW.receive({ signal: timeoutSignal(t, 10_000) })),
      `null size=0 from=${RECONNECT_FROM}`,
      'the point received a size-0 message from the fabric',
    );
  });

  t.test(
    `002 ¶118 (${scope}): a private point is one instance per client; maxConnections caps instances`,
    async (t) => {
      const { fabric } = await makeFabric(t);
      // Mixed: priv is a process point and its point clients thread points, so their links have a
      // broker (one flow each, to keep the brokers few); the caller's are direct.
      fabric.register({
        name: 'priv',
        location: pointFixture('echo'),
        data: { tag: true },
        characteristics: { instancing: 'private', maxConnections: 2, scope: scopeOf(scope, 'priv', ['c1', 'c2']) },
      });
      for (const c of ['c1', 'c2'])
        fabric.register({
          name: c,
          location: pointFixture('sink'),
          characteristics: { scope: scopeOf(scope, c, ['c1', 'c2']) },
        });
      const a = await fabric.connect(null, 'priv');
      const b = await fabric.connect(null, 'priv');
      t.equal(fabric.instances('priv').length, 1, "the caller's second link reaches its own instance again");
      await a.send(Buffer.from('x'));
      await b.send(Buffer.from('y'));
      const signal = timeoutSignal(t, 10_000);
      const ta = text(await a.receive({ signal }));
      const tb = text(await b.receive({ signal }));
      t.equal(ta.split(':')[0], tb.split(':')[0], `one instance answered both (${ta}, ${tb})`);
      const c1 = await fabric.connect('c1', 'priv', { direction: 'aToB' });
      t.equal(c1.info.brokers.length, scope === 'mixed' ? 1 : 0, "brokers on c1's link");
      t.same(
        fabric
          .instances('priv')
          .map((i) => i.client)
          .sort(),
        ['c1', 'caller'],
        'another client gets an instance of its own',
      );
      await fabric.connect('c1', 'priv', { direction: 'aToB' });
      t.equal(fabric.instances('priv').length, 2, 'and keeps it on its next connect');
      await t.rejects(
        fabric.connect('c2', 'priv', { direction: 'aToB' }),
        { code: 'AMIX_ERR_MAX_CONNECTIONS' },
        'a third instance is refused',
      );
      await a.close();
      t.equal(fabric.instances('priv').length, 2, "the caller's instance stays while it has a link");
      await b.close();
      t.equal(fabric.instances('priv').length, 1, 'the private instance ended with its last link to its client');
      await fabric.connect('c2', 'priv', { direction: 'aToB' });
      t.equal(fabric.instances('priv').length, 2, 'admitted after one went away');
    },
  );

  t.test(
    `002 DISCONNECT (${scope}): the primitive's own disconnect runs on every sending end of the link`,
    async (t) => {
      const { fabric } = await makeFabric(t);
      // The spies append "connect <host>" / "disconnect <host>" to this file from whichever host runs
      // the end: thread points, brokers (threads of the fabric's process) and process points alike.
      const dir = await mkdtemp(join(tmpdir(), 'amix-spy-'));
      const log = join(dir, 'calls');
      process.env.AMIX_SPY_LOG = log;
      t.teardown(async () => {
        delete process.env.AMIX_SPY_LOG;
        await rm(dir, { recursive: true, force: true });
      });
      const calls = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      const spyOf = { thread: 'spyThread', process: 'spyProcess' } as const;
      for (const s of ['thread', 'process'] as const)
        fabric.registry.register({
          name: spyOf[s],
          location: fixture(`spy-${s}-primitive.mjs`),
          characteristics: { scopes: [s], maxMessageBytes: 1 << 20, ordering: 'fifo', delivery: 'reliable' },
        });
      // Mixed: A is a thread point on spyThread, B a process point on spyProcess; a broker converts each way.
      const broker = fileURLToPath(new URL('../dist/lib/fabric/brokerPoint.js', import.meta.url));
      fabric.registerBroker({ from: 'spyThread', to: 'spyProcess', location: broker });
      fabric.registerBroker({ from: 'spyProcess', to: 'spyThread', location: broker });
      for (const name of ['A', 'B']) {
        const s = scopeOf(scope, name, ['A']);
        fabric.register({
          name,
          location: pointFixture('sink'),
          sendPrimitive: spyOf[s],
          receivePrimitive: spyOf[s],
          characteristics: { scope: s },
        });
      }
      const link = await fabric.connect('A', 'B');
      // The caller sends to B on B's primitive, from this thread.
      const fromCaller = await fabric.connect(null, 'B', { direction: 'aToB' });
      const ends = scope === 'mixed' ? 5 : 3; // A → B and B → A (each through a broker in mixed), caller → B
      t.equal(link.info.brokers.length, scope === 'mixed' ? 2 : 0, 'brokers');
      const connected = await calls();
      t.equal(connected.length, ends, `connect ran as each of the ${ends} sending ends attached`);
      t.ok(
        connected.every((c) => c.startsWith('connect ')),
        'and nothing else ran yet',
      );
      await fromCaller.send(Buffer.from('x'));
      await fromCaller.close();
      t.same(
        (await calls()).slice(ends),
        [`disconnect ${process.pid}:0`],
        "disconnecting the caller's link ran its sending end's disconnect, here",
      );
      await link.close();
      const after = await calls();
      const hosts = (op: string) =>
        after
          .filter((c) => c.startsWith(`${op} `))
          .map((c) => c.slice(op.length + 1))
          .sort();
      t.same(hosts('disconnect'), hosts('connect'), 'disconnect ran on every sending end, in its own host');
    },
  );
}

for (const scope of LINK_SCOPES) {
  t.test(
    `002 broker service (${scope}): each point names the other alike, on a direct link or through a broker`,
    async (t) => {
      const { fabric } = await makeFabric(t);
      // The caller feeds CP-A, which relays to CP-B and to the caller; CP-B takes it with
      // receive({ from: 'CP-A' }) and answers with send({ to: 'CP-A' }), which CP-A relays on.
      // Mixed: CP-A is a thread point, CP-B a process point: every flow between them has a broker.
      const threads = ['CP-A'];
      fabric.register({
        name: 'CP-A',
        location: pointFixture('relay'),
        characteristics: { scope: scopeOf(scope, 'CP-A', threads) },
      });
      fabric.register({
        name: 'CP-B',
        location: pointFixture('named'),
        data: { from: 'CP-A' },
        characteristics: { scope: scopeOf(scope, 'CP-B', threads) },
      });
      const ab = await fabric.connect('CP-A', 'CP-B');
      t.equal(ab.info.brokers.length, scope === 'mixed' ? 2 : 0, 'link.info lists the brokers');
      const peers = (name: string) => {
        const i = fabric.instance(name);
        return [...i.senderList, ...i.receiverList].filter((e) => e.link === ab.id).map((e) => e.peer);
      };
      t.same(peers('CP-A'), ['CP-B', 'CP-B'], "both of CP-A's lists name CP-B");
      t.same(peers('CP-B'), ['CP-A', 'CP-A'], "both of CP-B's lists name CP-A");
      const feed = await fabric.connect(null, 'CP-A', { direction: 'aToB' });
      const out = await fabric.connect('CP-A', null, { direction: 'aToB' });
      await feed.send(Buffer.from('hi'));
      const signal = timeoutSignal(t, 20_000);
      const seen: string[] = [];
      while (!seen.includes('CP-A>hi')) seen.push(text(await out.receive({ signal })));
      t.ok(seen.includes('CP-A>hi'), `CP-B received from CP-A by name and answered it by name (${seen.join(', ')})`);
    },
  );
}

// CREATE names one point and no link: a broker never takes part, so there is no mixed variant.
for (const scope of ['thread', 'process'] as const) {
  t.test(`002 ¶292-293 (${scope}): CREATE checks the requested role against the registration`, async (t) => {
    const { fabric } = await makeFabric(t);
    fabric.register({ name: 'rx', location: pointFixture('sink'), role: 'receiver', characteristics: { scope } });
    fabric.register({ name: 'any', location: pointFixture('sink'), characteristics: { scope } });
    await t.rejects(
      fabric.create('rx', { role: 'sender' }),
      { code: 'AMIX_ERR_BAD_DIRECTION' },
      'a receiver as sender',
    );
    await t.rejects(fabric.create('rx', { role: 'both' }), { code: 'AMIX_ERR_BAD_DIRECTION' }, 'a receiver as both');
    t.equal(fabric.instances('rx').length, 0, 'nothing was started for a refused create');
    const rx = await fabric.create('rx', { role: 'receiver' });
    t.equal(rx.state, 'running', 'a receiver as receiver');
    t.equal(rx.scope, scope, `in its scope (${scope})`);
    t.equal(rx.pid !== process.pid, scope === 'process', 'a process point has a process of its own');
    t.equal((await fabric.create('any', { role: 'sender' })).state, 'running', 'a point of both roles as sender');
    await t.rejects(fabric.create('any', { role: 'boss' as never }), { code: 'AMIX_ERR_INVALID_ARG' });
  });

  // The stack is a property of one point's host, not of a link: brokers are threads of the
  // fabric's own, sized by default. So thread and process only.
  t.test(`002 stack ¶86 (${scope}): a point gets the stack its registration asks for`, async (t) => {
    const { fabric } = await makeFabric(t);
    const depths: Record<string, number> = {};
    for (const stackMb of [1, 6]) {
      const name = `deep${stackMb}`;
      fabric.register({ name, location: pointFixture('depth'), characteristics: { scope, stackMb } });
      const link = await fabric.connect(null, name);
      await link.send(Buffer.from('?'));
      depths[name] = Number(text(await link.receive({ signal: timeoutSignal(t, 20_000) })));
    }
    t.ok(depths.deep6! > 3 * depths.deep1!, `6 MiB recurses deeper than 1 MiB (${depths.deep6} vs ${depths.deep1})`);
  });
}

// The process variant of this flush is in fabric-process.ts.
for (const scope of ['thread', 'mixed'] as const) {
  t.test(
    `002 DISCONNECT (${scope}): a disconnect right after a burst loses none of the accepted messages`,
    async (t) => {
      const { fabric } = await makeFabric(t);
      // Mixed: the caller sends as a thread end to a process point, through a broker, whose ends
      // the disconnect closes (after its flush) before the broker is ended.
      fabric.register({
        name: 'upper',
        location: pointFixture('slowupper'),
        characteristics: { scope: scope === 'mixed' ? 'process' : scope },
      });
      const into = await fabric.connect(null, 'upper', { direction: 'aToB', ...callerIn(scope) });
      t.equal(into.info.brokers.length, scope === 'mixed' ? 1 : 0, 'brokers');
      const out = await fabric.connect('upper', null, { direction: 'aToB' });
      const n = 1000;
      for (let i = 0; i < n; i++) await into.send(Buffer.from(`m${i}`));
      await into.close(); // at once: most of the burst is still in the channels, the broker and the point
      const got: string[] = [];
      const signal = timeoutSignal(t, 20_000);
      for (let i = 0; i < n; i++) got.push(text(await out.receive({ signal })));
      t.same(
        got,
        Array.from({ length: n }, (_, i) => `M${i}`),
        `all ${n} arrived, in order, after the disconnect`,
      );
    },
  );
}
