// The seed's link scenarios of issue 15 in every scope: thread points,
// process points, and mixed links (a thread point or the caller as a thread
// end, and a process point, so the fabric inserts a broker between their
// primitives). Each test names the paragraph it follows; items that cannot
// vary by link say why where they loop over fewer scopes. The instance
// scenarios are in fabric-instances-scopes.ts (tap runs the files in
// parallel). One fabric per test, few points: every host costs a worker or a fork.
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINK_SCOPES, callerIn, makeFabric, pointFixture, scopeOf, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';

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

  t.test(
    `002 ¶314 (${scope}): DISCONNECT runs the primitive's own disconnect on every sending end of the link`,
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
    `002 ¶68 broker (${scope}): each point names the other alike, on a direct link or through a broker`,
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

// The process variant of this flush is in fabric-process.ts.
for (const scope of ['thread', 'mixed'] as const) {
  t.test(`002 ¶314 (${scope}): a DISCONNECT right after a burst loses none of the accepted messages`, async (t) => {
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
  });
}
