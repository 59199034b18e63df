// The same point code as a process point: links, suspend/resume and restart
// behave as they do for thread points.
import t from 'tap';
import { makeFabric, nextEvent, pointFixture, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';

t.test('a process point echoes over its link from another process', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({
    name: 'echo',
    location: pointFixture('echo'),
    data: { tag: true },
    characteristics: { scope: 'process' },
  });
  const link = await fabric.connect(null, 'echo');
  t.not(fabric.instance('echo').pid, process.pid, 'runs in its own process');
  for (let i = 0; i < 100; i++) await link.send(Buffer.from(`m${i}`));
  const got: string[] = [];
  for (let i = 0; i < 100; i++) got.push(text(await link.receive()));
  t.same(
    got,
    Array.from({ length: 100 }, (_, i) => `echo:m${i}`),
    'in order, none lost',
  );
  await link.suspend();
  const later = link.send(Buffer.from('later'));
  t.equal(
    (await link.receive({ signal: timeoutSignal(t, 150) }).catch((e) => e)).code,
    'AMIX_ERR_ABORTED',
    'nothing while suspended',
  );
  await link.resume();
  await later;
  t.equal(text(await link.receive()), 'echo:later', 'flows after resume');
});

t.test('a restartable process point killed with SIGKILL comes back with its link', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({
    name: 'phoenix',
    location: pointFixture('echo'),
    characteristics: { scope: 'process', restart: true },
  });
  const link = await fabric.connect(null, 'phoenix');
  const firstPid = fabric.instance('phoenix').pid;
  const restarted = nextEvent(fabric, events, 'instanceRestarted');
  await fabric.kill('phoenix');
  await restarted;
  t.not(fabric.instance('phoenix').pid, firstPid, 'a new process');
  t.match(
    events.find((e) => e.type === 'instanceDied'),
    { signal: 'SIGKILL' },
    'the death names the signal',
  );
  await link.send(Buffer.from('again'));
  t.equal(text(await link.receive({ signal: timeoutSignal(t, 10_000) })), 'again', 'the link works again');
});

t.test('a disconnect right after a burst loses none of the accepted messages', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'upper', location: pointFixture('slowupper'), characteristics: { scope: 'process' } });
  const into = await fabric.connect(null, 'upper', { direction: 'aToB' });
  const out = await fabric.connect('upper', null, { direction: 'aToB' });
  const n = 2000;
  for (let i = 0; i < n; i++) await into.send(Buffer.from(`m${i}`));
  await into.close(); // at once: most of the burst is still in the channels and the point
  const got: string[] = [];
  for (let i = 0; i < n; i++) got.push(text(await out.receive({ signal: timeoutSignal(t, 20_000) })));
  t.same(
    got,
    Array.from({ length: n }, (_, i) => `M${i}`),
    `all ${n} arrived, in order, after the disconnect`,
  );
});
