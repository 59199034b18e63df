import t from 'tap';
import { makeFabric, pointFixture, text } from './helpers/fabric.js';

t.test('connect inserts a broker when the two ends use different primitives', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'src', location: pointFixture('upper') }); // thread, queueConditionThread
  fabric.register({ name: 'dst', location: pointFixture('upper'), characteristics: { scope: 'process' } }); // process, queueConditionProcess
  const into = await fabric.connect(null, 'src', { direction: 'aToB' });
  const link = await fabric.connect('src', 'dst', { direction: 'aToB' });
  const out = await fabric.connect('dst', null, { direction: 'aToB' });
  const info = link.info;
  t.equal(info.brokers.length, 1, 'one broker on the link');
  const broker = info.brokers[0]!;
  t.same(
    info.flows,
    [
      { from: 'src', to: broker, primitive: 'queueConditionThread' },
      { from: broker, to: 'dst', primitive: 'queueConditionProcess' },
    ],
    'src → broker on the thread primitive, broker → dst on the process primitive',
  );
  t.ok(
    fabric.instances().some((i) => i.instance === broker && i.scope === 'thread'),
    'the broker runs as a thread point',
  );
  for (const w of ['a', 'b', 'c']) await into.send(Buffer.from(w));
  t.same(
    [text(await out.receive()), text(await out.receive()), text(await out.receive())],
    ['A', 'B', 'C'],
    'messages cross the broker in order',
  );
  await fabric.disconnect(link.id);
  t.notOk(
    fabric.instances().some((i) => i.instance === broker),
    'the broker ends with its link',
  );
});

t.test('brokers are a registry: listed, replaceable, removable', async (t) => {
  const { fabric } = await makeFabric(t);
  t.ok(fabric.brokerFor('queueConditionThread', 'queueConditionProcess'), 'built in for thread → process');
  t.ok(fabric.brokers().length >= 2, 'listed');
  t.throws(
    () => fabric.registerBroker({ from: 'queueConditionThread', to: 'queueConditionProcess', location: 'x.js' }),
    { code: 'AMIX_ERR_DUPLICATE' },
  );
  t.throws(() => fabric.registerBroker({ from: 'pigeon', to: 'queueConditionProcess', location: 'x.js' }), {
    code: 'AMIX_ERR_UNKNOWN_PRIMITIVE',
  });
  fabric.deleteBroker('queueConditionThread', 'queueConditionProcess');
  fabric.register({ name: 'src', location: pointFixture('sink') });
  fabric.register({ name: 'dst', location: pointFixture('sink'), characteristics: { scope: 'process' } });
  await t.rejects(
    fabric.connect('src', 'dst', { direction: 'aToB' }),
    { code: 'AMIX_ERR_PRIMITIVE_MISMATCH', message: /no broker/ },
    'without a broker the pair is refused',
  );
});
