import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Fabric } from '../dist/lib/index.js';
import { makeFabric, nextEvent, pointFixture, text } from './helpers/fabric.js';

t.test('an idle point is loaded but not started until something connects', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'lazy', location: pointFixture('echo'), characteristics: { idle: true } });
  const info = await fabric.create('lazy');
  t.equal(info.state, 'idle', 'created idle');
  t.notOk(
    events.some((e) => e.type === 'instanceStarted'),
    'not started',
  );
  const link = await fabric.connect(null, 'lazy');
  t.equal(fabric.instance('lazy').state, 'running', 'connect reactivated it (step 6)');
  await link.send(Buffer.from('wake'));
  t.equal(text(await link.receive()), 'wake');
});

t.test('execute starts a point with nobody connected, even an idle one', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({
    name: 'daemon',
    location: pointFixture('greeter'),
    role: 'sender',
    characteristics: { idle: true },
    data: { count: 1 },
  });
  const info = await fabric.execute('daemon');
  t.equal(info.state, 'running');
  t.same(info.senderList, [], 'nobody connected');
  const link = await fabric.connect('daemon', null, { direction: 'aToB' });
  t.equal(
    text(await link.receive()),
    'hello 0',
    'what it sent before anyone connected was kept for the first receiver',
  );
});

t.test('maxConnections refuses the next client and admits one after a leave', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'busy', location: pointFixture('echo'), characteristics: { maxConnections: 2 } });
  const c1 = await fabric.connect(null, 'busy');
  await fabric.connect(null, 'busy');
  await t.rejects(
    fabric.connect(null, 'busy'),
    { code: 'AMIX_ERR_MAX_CONNECTIONS', details: { maxConnections: 2 } },
    'third client refused',
  );
  await c1.close();
  const c3 = await fabric.connect(null, 'busy');
  await c3.send(Buffer.from('in'));
  t.equal(text(await c3.receive()), 'in', 'admitted after a client left');
});

// 002 ¶53 (a private point is one instance per client) runs per scope in fabric-instances-scopes.ts.

t.test('a public point is one instance shared by every client', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'pub', location: pointFixture('echo'), data: { tag: true } });
  const a = await fabric.connect(null, 'pub');
  const b = await fabric.connect(null, 'pub');
  await a.send(Buffer.from('1'));
  await b.send(Buffer.from('2'));
  t.equal(text(await a.receive()), 'pub:1');
  t.equal(text(await b.receive()), 'pub:2');
  t.equal(fabric.instances('pub').length, 1);
});

t.test('a restartable point that dies is restarted with its links', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'phoenix', location: pointFixture('crashy'), characteristics: { restart: true } });
  const link = await fabric.connect(null, 'phoenix');
  await link.send(Buffer.from('before'));
  t.equal(text(await link.receive()), 'before');
  const restarted = nextEvent(fabric, events, 'instanceRestarted');
  await link.send(Buffer.from('die'));
  const e = await restarted;
  t.same(e.links, [link.id], 'its link was re-established');
  t.ok(events.findIndex((x) => x.type === 'instanceDied') < events.indexOf(e), 'death reported before the restart');
  t.equal(fabric.instance('phoenix').restarts, 1);
  await link.send(Buffer.from('after'));
  t.equal(text(await link.receive()), 'after', 'the same link works after the restart');
});

t.test('a restarted point starts with its links back (none of its ends is missing when it runs)', async (t) => {
  const { fabric, events } = await makeFabric(t);
  const dieOnce = join(await mkdtemp(join(tmpdir(), 'amix-liststart-')), 'died');
  t.teardown(() => rm(dirname(dieOnce), { recursive: true, force: true }));
  fabric.register({
    name: 'lister',
    location: pointFixture('liststart'),
    data: { dieOnce },
    characteristics: { restart: true },
  });
  const link = await fabric.connect(null, 'lister');
  await link.send(Buffer.from('lists'));
  t.equal(text(await link.receive()), '0/0', 'first start: created before its first link');
  const restarted = nextEvent(fabric, events, 'instanceRestarted');
  await link.send(Buffer.from('die'));
  await restarted;
  await link.send(Buffer.from('lists'));
  // Started before its link was reopened, it saw 0/0, and under load it could take a re-sent
  // message and answer on a link whose sending end was not back yet (AMIX_ERR_UNKNOWN_LINK).
  t.equal(text(await link.receive()), '1/1', 'restart: its sending and receiving ends were back before it ran');
});

t.test('a point function that throws is reported (mainEnded with the error), not silent', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'quitter', location: pointFixture('liststart'), data: { dieOnce: '/nonexistent/x' } });
  const link = await fabric.connect(null, 'quitter');
  const ended = nextEvent(fabric, events, 'mainEnded');
  await link.send(Buffer.from('throw'));
  t.match(await ended, {
    point: 'quitter',
    instance: 'quitter',
    error: { code: 'AMIX_ERR_INTERNAL', message: /the point gave up/ },
  });
});

t.test('a point that is not restartable dies with a clear event to its peers', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'mortal', location: pointFixture('crashy') });
  const link = await fabric.connect(null, 'mortal');
  const lost = nextEvent(fabric, events, 'peerLost', (e) => e.peer === 'mortal');
  const died = nextEvent(fabric, events, 'instanceDied');
  await link.send(Buffer.from('die'));
  t.match(await died, { instance: 'mortal', code: 3 }, 'death with its exit code');
  t.match(await lost, { link: link.id, instance: 'caller' }, 'the caller is told');
  t.notOk(fabric.hasLink(link.id), 'the link is gone');
  await t.rejects(link.receive(), { code: 'AMIX_ERR_LINK_CLOSED' }, 'a receive on it ends');
});

t.test('destroy terminates with the chosen method', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'polite', location: pointFixture('sink'), characteristics: { termination: 'message' } });
  fabric.register({ name: 'blunt', location: pointFixture('sink'), characteristics: { termination: 'signal' } });
  fabric.register({
    name: 'stubborn',
    location: pointFixture('stubborn'),
    characteristics: { termination: 'messageThenSignal', graceMs: 200 },
  });
  for (const p of ['polite', 'blunt', 'stubborn']) await fabric.execute(p);
  for (const p of ['polite', 'blunt', 'stubborn']) await fabric.destroy(p);
  const ended = (p: string) => events.find((e) => e.type === 'instanceTerminated' && e.point === p);
  t.match(ended('polite'), { method: 'message', escalated: false }, 'message: the point ended its own work');
  t.match(ended('blunt'), { method: 'signal', escalated: false }, 'signal: stopped at once');
  t.match(
    ended('stubborn'),
    { method: 'signal', escalated: true },
    'messageThenSignal: escalated after the grace period',
  );
  t.same(fabric.points(), [], 'registrations removed');
});

t.test('termination order: coordinator withdrawn first; fabric close ends points inside out', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'outer', location: pointFixture('sink') });
  fabric.register({ name: 'inner', location: pointFixture('sink') });
  await fabric.execute('outer');
  await fabric.execute('inner');
  await fabric.connect('outer', 'inner', { direction: 'aToB' });
  const terminating = fabric.terminate('inner');
  const w = events.findIndex((e) => e.type === 'coordinatorWithdrawn' && e.instance === 'inner');
  t.ok(w >= 0, 'the coordinator is withdrawn as soon as termination starts');
  t.equal(fabric.instance('inner').state, 'terminating', 'and the instance is terminating, not reachable');
  await terminating;
  const done = events.findIndex((e) => e.type === 'instanceTerminated' && e.instance === 'inner');
  t.ok(w < done, 'withdrawn before terminated');
  t.same(fabric.instance('outer').senderList, [], 'its link went with it');
  await fabric.execute('inner');
  const before = events.length;
  await fabric.close();
  const order = events
    .slice(before)
    .map((e) => (e.type === 'instanceTerminated' ? `end ${e.instance}` : e.type))
    .filter((x) => x.startsWith('end') || x === 'closed');
  t.same(order, ['end inner', 'end outer', 'closed'], 'the last created ends first, then the fabric closes');
});

t.test('stats per point and link', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  const link = await fabric.connect(null, 'echo');
  for (let i = 0; i < 10; i++) await link.send(Buffer.from(`m${i}`));
  for (let i = 0; i < 10; i++) await link.receive();
  const s = (await fabric.stats('echo')) as {
    point: { sent: number; received: number };
    linkInfo: Record<string, unknown>;
  };
  t.equal(s.point.received, 10, 'received counted');
  t.equal(s.point.sent, 10, 'sent counted');
  t.ok(s.linkInfo[link.id], 'link info included');
});

t.test('a point with endWhenUnused ends when its last client leaves', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'shortLived', location: pointFixture('echo'), characteristics: { endWhenUnused: true } });
  const a = await fabric.connect(null, 'shortLived');
  const b = await fabric.connect(null, 'shortLived');
  await a.close();
  t.equal(fabric.instances('shortLived').length, 1, 'still running while a client remains');
  await b.close();
  t.same(fabric.instances('shortLived'), [], 'ended after the last client left');
  t.ok(events.some((e) => e.type === 'instanceTerminated' && e.point === 'shortLived'));
});

t.test('await using closes links and the fabric', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'echo', location: pointFixture('echo') });
  let id = '';
  {
    await using link = await fabric.connect(null, 'echo');
    id = link.id;
    t.ok(fabric.hasLink(id));
  }
  t.notOk(fabric.hasLink(id), 'the link was disconnected at the end of the block');
  await fabric.close();
  await fabric.close();
  await t.rejects(fabric.connect(null, 'echo'), { code: 'AMIX_ERR_CLOSED' }, 'a closed fabric refuses work');
});

t.test('hostExecArgv: the Node flags of point hosts, checked', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-execargv-'));
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: ['--trace-warnings'] });
  t.teardown(async () => {
    await fabric.close();
    await rm(dir, { recursive: true, force: true });
  });
  t.comment(`this test runs with ${JSON.stringify(process.execArgv)}`);
  for (const scope of ['thread', 'process'] as const) {
    fabric.register({ name: `flags-${scope}`, location: pointFixture('execargv'), characteristics: { scope } });
    const link = await fabric.connect(`flags-${scope}`, null, { direction: 'aToB' });
    const flags = JSON.parse(text(await link.receive({ signal: AbortSignal.timeout(20_000) }))) as string[];
    t.ok(flags.includes('--trace-warnings'), `a ${scope} host runs with the given flags`);
    t.notOk(
      flags.some((f) => f.includes('tsimp') || f.includes('@tapjs')),
      `and not with tap's loader (${scope})`,
    );
  }
  t.throws(() => new Fabric({ hostExecArgv: 'no' as unknown as string[] }), { code: 'AMIX_ERR_INVALID_ARG' });
  // A flag a worker refuses (a process-wide one) is a clear error at the thread point's start.
  const heavy = new Fabric({ runtimeDir: join(dir, 'run2'), hostExecArgv: ['--max-old-space-size=123'] });
  t.teardown(() => heavy.close());
  heavy.register({ name: 'flags', location: pointFixture('execargv'), characteristics: { scope: 'thread' } });
  await t.rejects(heavy.connect('flags', null, { direction: 'aToB' }), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('hostExecArgv by default: an application run with process-wide flags starts thread points', async (t) => {
  // `node --max-old-space-size=N app.js` is common; a worker refuses such flags when they are named, so
  // the default must let it inherit them rather than name them.
  const script = fileURLToPath(new URL('./fixtures/inherit-flags.mjs', import.meta.url));
  const flags = ['--max-old-space-size=200', '--expose-gc'];
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, script], { timeout: 60_000 });
  const out = JSON.parse(stdout) as { thread?: string[]; process?: string[]; error?: unknown };
  t.same(out.error, undefined, 'no error starting either host');
  for (const scope of ['thread', 'process'] as const)
    t.ok(
      flags.every((f) => out[scope]?.includes(f)),
      `a ${scope} host runs with the application's flags (${JSON.stringify(out[scope])})`,
    );
});
