// The seed's instance scenarios of issue 15 in every scope: thread points,
// process points, and mixed links (a thread point or the caller as a thread
// end, and a process point, so the fabric inserts a broker between their
// primitives). Each test names the paragraph it follows; items that cannot
// vary by link say why where they loop over fewer scopes. The link scenarios
// are in fabric-letter-scopes.ts (tap runs the files in parallel). One fabric
// per test, few points: every host costs a worker or a fork.
import t from 'tap';
import { LINK_SCOPES, callerIn, makeFabric, pointFixture, scopeOf, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';
import { RECONNECT_FROM } from '../dist/lib/index.js';

for (const scope of LINK_SCOPES) {
  t.test(`002 ¶320 (${scope}): EXECUTE creates the point if needed, then resumes it`, async (t) => {
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

  t.test(`002 ¶318 (${scope}): RECONNECT sends a null message to a point that only sends`, async (t) => {
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

  t.test(`002 ¶53 (${scope}): a private point is one instance per client; maxConnections caps instances`, async (t) => {
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
  });
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
  t.test(`002 ¶42 (${scope}): a point gets the stack its registration asks for`, async (t) => {
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
