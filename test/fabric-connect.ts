import t from 'tap';
import { DIRECTION_STEPS } from '../dist/lib/index.js';
import { makeFabric, pointFixture, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';

t.test("the four directions produce exactly the seed's list entries", async (t) => {
  const { fabric } = await makeFabric(t);
  // Expected entries per step (seed 002): 1 B's receiver on A's sender list; 2 A's sender on
  // B's receiver list; 3 A's receiver on B's sender list; 4 B's sender on A's receiver list.
  const cases = [
    { direction: 'both', number: 1, aSend: ['B'], aRecv: ['B'], bSend: ['A'], bRecv: ['A'] },
    { direction: 'bToA', number: 2, aSend: [], aRecv: ['B'], bSend: ['A'], bRecv: [] },
    { direction: 'aToB', number: 3, aSend: ['B'], aRecv: [], bSend: [], bRecv: ['A'] },
    { direction: 'none', number: 4, aSend: [], aRecv: [], bSend: [], bRecv: [] },
  ] as const;
  for (const c of cases) {
    const A = `A${c.number}`;
    const B = `B${c.number}`;
    fabric.register({ name: A, location: pointFixture('sink') });
    fabric.register({ name: B, location: pointFixture('sink') });
    const link = await fabric.connect(A, B, { direction: c.number });
    const peers = (entries: Array<{ peer: string }>) => entries.map((e) => e.peer.replace(/\d+$/, ''));
    const a = fabric.instance(A);
    const b = fabric.instance(B);
    t.same(
      link.info.steps,
      DIRECTION_STEPS[c.direction],
      `direction ${c.direction} (${c.number}) did steps ${DIRECTION_STEPS[c.direction].join(',')}`,
    );
    t.equal(link.info.direction, c.direction, 'the seed number maps to its name');
    t.same(peers(a.senderList), c.aSend, `${c.direction}: A's sender list`);
    t.same(peers(a.receiverList), c.aRecv, `${c.direction}: A's receiver list`);
    t.same(peers(b.senderList), c.bSend, `${c.direction}: B's sender list`);
    t.same(peers(b.receiverList), c.bRecv, `${c.direction}: B's receiver list`);
    t.equal(a.state, 'running', 'step 5: A active');
    t.equal(b.state, 'running', 'step 6: B active');
  }
});

t.test('data flows only the way the direction says', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  const both = await fabric.connect(null, 'echo');
  await both.send(Buffer.from('ping'));
  t.equal(text(await both.receive()), 'ping', 'both: the caller sends and receives');
  t.equal(
    (await both.receive({ signal: timeoutSignal(t, 1) }).catch((e) => e)).code,
    'AMIX_ERR_ABORTED',
    'nothing else queued',
  );
  const none = await fabric.connect(null, 'echo', { direction: 'none' });
  await t.rejects(
    none.send(Buffer.from('x'), { to: 'echo' }),
    { code: 'AMIX_ERR_BAD_DIRECTION' },
    'none: the caller may not send on it',
  );
});

t.test('when only one point is named, the caller is the other end', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'greeter', location: pointFixture('greeter'), role: 'sender', data: { count: 2 } });
  fabric.register({ name: 'sink', location: pointFixture('sink'), role: 'receiver' });
  const fromGreeter = await fabric.connect('greeter', null, { direction: 'aToB' });
  t.same(
    [text(await fromGreeter.receive()), text(await fromGreeter.receive())],
    ['hello 0', 'hello 1'],
    'caller as B receives from the sender point; messages sent before the link were kept',
  );
  t.same(
    fabric.instance('greeter').senderList.map((e) => e.peer),
    ['caller'],
  );
  const toSink = await fabric.connect(null, 'sink', { direction: 'aToB' });
  await toSink.send(Buffer.from('x'));
  t.same(
    fabric.instance('sink').receiverList.map((e) => e.peer),
    ['caller'],
    "caller as A is on the sink's receiver list",
  );
  await t.rejects(
    fabric.connect('sink', null, { direction: 'aToB' }),
    { code: 'AMIX_ERR_BAD_DIRECTION' },
    'a receiver-only point cannot send',
  );
});

t.test('conference: one send reaches every receiver on the link', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'e1', location: pointFixture('echo'), data: { tag: true } });
  fabric.register({ name: 'e2', location: pointFixture('echo'), data: { tag: true } });
  const link = await fabric.connect(null, 'e1');
  const same = await fabric.connect(null, 'e2', { mode: 'conference' });
  t.equal(same.id, link.id, 'the conference joins the current link');
  t.same(link.info.b, ['e1', 'e2'], 'both points are on the link');
  await link.send(Buffer.from('hi'));
  const got = [text(await link.receive()), text(await link.receive())].sort();
  t.same(got, ['e1:hi', 'e2:hi'], 'both receivers got the one send');
});

t.test('hold and disconnect: disconnect restores the prior link', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'first', location: pointFixture('echo'), data: { tag: true } });
  fabric.register({ name: 'second', location: pointFixture('echo'), data: { tag: true } });
  const l1 = await fabric.connect(null, 'first');
  const l2 = await fabric.connect(null, 'second', { mode: 'hold' });
  t.equal(l1.info.state, 'held', 'the first call is on hold');
  t.equal(l2.info.state, 'active');
  const held = l1.send(Buffer.from('while held'));
  await l2.send(Buffer.from('b'));
  t.equal(text(await l2.receive()), 'second:b', 'the new link works');
  t.equal(
    (await l1.receive({ signal: timeoutSignal(t, 100) }).catch((e) => e)).code,
    'AMIX_ERR_ABORTED',
    'nothing flows on the held link',
  );
  await l2.close();
  t.notOk(fabric.hasLink(l2.id), 'the current link is removed');
  t.equal(l1.info.state, 'active', 'the prior link is restored');
  await held;
  t.equal(text(await l1.receive()), 'first:while held', 'the held message flows after the restore');
  const order = events.filter((e) => e.type === 'linkDisconnected' || e.type === 'linkRestored').map((e) => e.type);
  t.same(order, ['linkDisconnected', 'linkRestored'], 'disconnect, then restore');
});

t.test('suspend and resume a link', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  const link = await fabric.connect(null, 'echo');
  await link.suspend();
  t.equal(link.info.state, 'suspended');
  const sending = link.send(Buffer.from('later'));
  t.equal(
    (await link.receive({ signal: timeoutSignal(t, 100) }).catch((e) => e)).code,
    'AMIX_ERR_ABORTED',
    'nothing flows while suspended',
  );
  await link.resume();
  await sending;
  t.equal(text(await link.receive()), 'later', 'flows after resume');
  t.ok(link.info.suspendedMs >= 100, 'suspended time is counted');
  t.same(
    events.filter((e) => e.type === 'linkSuspended' || e.type === 'linkResumed').map((e) => e.type),
    ['linkSuspended', 'linkResumed'],
  );
});

t.test('reconnect cycles the primitive with a null message and reports the state', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  const link = await fabric.connect(null, 'echo');
  const [info] = await fabric.reconnect('echo');
  t.equal(info!.state, 'running', 'state reported');
  t.same(info!.links, [link.id], 'with its links');
  await link.send(Buffer.from('still there'));
  t.equal(
    text(await link.receive({ signal: timeoutSignal(t, 10_000) })),
    'still there',
    'the cycled link still carries messages',
  );
  await t.rejects(fabric.reconnect('nobody'), { code: 'AMIX_ERR_UNKNOWN_POINT' });
});

t.test('bad input gets its code', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  await t.rejects(fabric.connect(null, 'nobody'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'unknown point');
  await t.rejects(
    fabric.connect(null, 'echo', { direction: 7 as never }),
    { code: 'AMIX_ERR_BAD_DIRECTION' },
    'bad direction',
  );
  await t.rejects(
    fabric.connect(null, 'echo', { direction: 'sideways' as never }),
    { code: 'AMIX_ERR_BAD_DIRECTION' },
    'bad direction name',
  );
  t.throws(
    () => fabric.register({ name: 'x', location: pointFixture('echo'), sendPrimitive: 'pigeon' }),
    { code: 'AMIX_ERR_UNKNOWN_PRIMITIVE' },
    'unknown primitive',
  );
  t.throws(
    () => fabric.register({ name: 'echo', location: pointFixture('echo') }),
    { code: 'AMIX_ERR_DUPLICATE' },
    'duplicate',
  );
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxmsg: 0 }, /characteristics.maxmsg must be an integer >= 1/],
    [{ maxmsg: 10, minmsg: 10 }, /minmsg must be below/],
    [{ scope: 'galaxy' }, /characteristics.scope must be one of thread, process/],
    [{ termination: 'nicely' }, /characteristics.termination/],
    [{ stackMb: -1 }, /characteristics.stackMb/],
    [{ discard: 'shred' }, /characteristics.discard/],
    [{ instancing: 'shared' }, /characteristics.instancing/],
    [{ restart: 'yes' }, /characteristics.restart must be a boolean/],
    [{ colour: 'blue' }, /characteristics.colour is not a known characteristic/],
  ];
  for (const [characteristics, message] of bad) {
    t.throws(
      () => fabric.register({ name: 'bad', location: 'x.js', characteristics }),
      { code: 'AMIX_ERR_INVALID_ARG', message },
      `rejects ${JSON.stringify(characteristics)}`,
    );
  }
  t.throws(() => fabric.register({ name: 'bad', location: 'x.js', role: 'listener' as never }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /point.role/,
  });
  t.throws(() => fabric.register({ name: '', location: 'x.js' }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /point.name/,
  });
  await fabric.destroy('echo');
  await t.rejects(fabric.connect(null, 'echo'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'connect to a destroyed point');
  fabric.register({ name: 'mixed', location: pointFixture('echo'), sendPrimitive: 'queueConditionProcess' });
  fabric.register({ name: 'threadOnly', location: pointFixture('sink') });
  t.ok(fabric.deleteBroker('queueConditionProcess', 'queueConditionThread'), 'remove the built-in broker for the pair');
  await t.rejects(
    fabric.connect('mixed', 'threadOnly', { direction: 'aToB' }),
    { code: 'AMIX_ERR_PRIMITIVE_MISMATCH', message: /queueConditionProcess.*queueConditionThread/ },
    'primitive mismatch names both',
  );
});
