// FabricOptions.reuseHosts: a point that ended by its termination message leaves its host (worker
// thread or child process) to the next point of the same scope, which then runs in the same process
// and thread, with the module already imported; a point that would not end is not kept; the pool's
// limits, idle expiry and the fabric's close.
import t, { type Test } from 'tap';
import { Fabric, type FabricEvent, type FabricOptions } from '../dist/lib/index.js';
import { until } from './helpers/daemon.js';
import { makeFabric, pointFixture, text } from './helpers/fabric.js';

const fabricWith = (t: Test, reuseHosts: FabricOptions['reuseHosts']) => makeFabric(t, { reuseHosts });

interface Where {
  pid: number;
  threadId: number;
  runs: number;
  echo: string;
}

/** Register `name` (the hostid fixture) in `scope`, link to it and ask where it runs. */
async function where(fabric: Fabric, name: string, scope: 'thread' | 'process'): Promise<Where> {
  fabric.register({ name, location: pointFixture('hostid'), characteristics: { scope, termination: 'message' } });
  const link = await fabric.connect(null, name);
  await link.send(Buffer.from(`hi ${name}`));
  return JSON.parse(text(await link.receive())) as Where;
}

const created = (events: FabricEvent[], point: string) =>
  events.find((e) => e.type === 'instanceCreated' && e.point === point) as
    Extract<FabricEvent, { type: 'instanceCreated' }> | undefined;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

for (const scope of ['thread', 'process'] as const) {
  t.test(`${scope}: the next point runs in the ended point's host`, async (t) => {
    const { fabric, events } = await fabricWith(t, true);
    const a = await where(fabric, 'a', scope);
    t.equal(a.runs, 1, 'the first point is the module first run in its host');
    t.equal(created(events, 'a')?.reused, undefined, 'a fresh host is not marked reused');
    await fabric.destroyPoint('a');
    t.match(
      events.find((e) => e.type === 'instanceTerminated' && e.point === 'a'),
      { method: 'message' },
    );
    t.match(
      fabric.hostPool(),
      { max: 2, idleMs: 30_000, idle: [{ scope, stackMb: Number, pid: a.pid }], kept: 1, reused: 0 },
      'hostPool() shows the kept host',
    );
    t.equal(fabric.hostPool().idle.length, 1);
    const b = await where(fabric, 'b', scope);
    t.equal(b.echo, 'hi b', 'the new point works');
    t.equal(b.pid, a.pid, 'same process');
    t.equal(b.threadId, a.threadId, 'same thread');
    t.equal(b.runs, 2, "the module was not imported again: its state is the first run's");
    t.equal(created(events, 'b')?.reused, true, 'instanceCreated says reused');
    t.match(fabric.hostPool(), { idle: [], kept: 1, reused: 1, expired: 0, notKept: 0 }, 'taken out of the pool');
    if (scope === 'process') t.not(a.pid, process.pid, 'a process of its own');
    else t.not(a.threadId, 0, 'a worker thread, not the main thread');
  });
}

t.test('a host is kept only for its own scope; off by default', async (t) => {
  const { fabric, events } = await fabricWith(t, true);
  const a = await where(fabric, 'a', 'process');
  await fabric.destroyPoint('a');
  const b = await where(fabric, 'b', 'thread');
  t.equal(created(events, 'b')?.reused, undefined, 'a thread point does not take an idle process');
  t.not(b.pid, a.pid);
  const c = await where(fabric, 'c', 'process');
  t.equal(c.pid, a.pid, 'the process host was still idle for the next process point');
  await fabric.destroyPoint('c');
  // Another module in the same host: it is imported there beside the first.
  fabric.register({ name: 'e', location: pointFixture('echo'), characteristics: { scope: 'process' } });
  const link = await fabric.connect(null, 'e');
  await link.send(Buffer.from('ping'));
  t.equal(text(await link.receive()), 'ping', 'a point of another module runs in the kept host');
  t.match(created(events, 'e'), { reused: true, pid: a.pid });

  const off = await fabricWith(t, undefined);
  const x = await where(off.fabric, 'x', 'process');
  await off.fabric.destroyPoint('x');
  const y = await where(off.fabric, 'y', 'process');
  t.not(y.pid, x.pid, 'without reuseHosts every point gets a new host');
  t.equal(created(off.events, 'y')?.reused, undefined);
  t.same(
    off.fabric.hostPool(),
    { max: 0, idleMs: 30_000, idle: [], kept: 0, reused: 0, expired: 0, notKept: 0, died: 0 },
    'the pool is off: nothing counted',
  );
});

t.test('a point that does not end on its message is not kept', async (t) => {
  const { fabric, events } = await fabricWith(t, true);
  fabric.register({
    name: 'stubborn',
    location: pointFixture('stubborn'),
    characteristics: { scope: 'process', termination: 'messageThenSignal', graceMs: 200 },
  });
  const info = await fabric.execute('stubborn');
  await fabric.destroyPoint('stubborn');
  t.match(
    events.find((e) => e.type === 'instanceTerminated'),
    { method: 'signal', escalated: true },
  );
  t.notOk(alive(info.pid!), 'its process was stopped');
  await where(fabric, 'next', 'process');
  t.equal(created(events, 'next')?.reused, undefined, 'the next point got a new host');
});

t.test('max: idle hosts kept per scope; idleMs: then stopped; close stops the idle ones', async (t) => {
  const { fabric, events } = await fabricWith(t, { max: 1, idleMs: 60_000 });
  const a = await where(fabric, 'a', 'process');
  const b = await where(fabric, 'b', 'process');
  await fabric.destroyPoint('a');
  await fabric.destroyPoint('b');
  t.ok(alive(a.pid), 'the first ended host is kept');
  t.notOk(alive(b.pid), 'the second is stopped: max 1');
  t.match(fabric.hostPool(), { max: 1, idle: [{ pid: a.pid }], kept: 1, notKept: 1 }, 'the refusal is counted');
  const c = await where(fabric, 'c', 'process');
  t.equal(c.pid, a.pid);
  t.equal(created(events, 'c')?.reused, true);
  await fabric.destroyPoint('c');
  t.ok(alive(c.pid), 'idle again');
  await fabric.close();
  t.notOk(alive(c.pid), 'fabric.close stops the idle hosts');

  const short = await fabricWith(t, { idleMs: 0 });
  const s = await where(short.fabric, 's', 'process');
  await short.fabric.destroyPoint('s');
  // The idle timer of 0 ms kills it at the next turn of the loop; its exit is what the next point waits for.
  const deadline = Date.now() + 10_000;
  while (alive(s.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.notOk(alive(s.pid), 'an idle host is stopped after idleMs');
  t.match(short.fabric.hostPool(), { idle: [], kept: 1, expired: 1 }, 'and counted as expired');
  await where(short.fabric, 's2', 'process');
  t.equal(created(short.events, 's2')?.reused, undefined, 'and not handed out');
});

t.test('an idle host that dies is dropped from the pool and counted', async (t) => {
  const { fabric, events } = await fabricWith(t, { idleMs: 60_000 });
  const a = await where(fabric, 'a', 'process');
  await fabric.destroyPoint('a');
  t.match(fabric.hostPool(), { idle: [{ pid: a.pid }], kept: 1, died: 0 });
  process.kill(a.pid, 'SIGKILL');
  await until('the death counted', 10_000, async () => fabric.hostPool().died === 1);
  t.match(fabric.hostPool(), { idle: [], kept: 1, expired: 0, died: 1 }, 'gone from idle, not counted as expired');
  const b = await where(fabric, 'b', 'process');
  t.not(b.pid, a.pid, 'the next point gets a new host');
  t.equal(created(events, 'b')?.reused, undefined);
  await fabric.destroyPoint('b');
  await fabric.close();
  t.equal(fabric.hostPool().died, 1, "the pool's own stops at close are not deaths");
});

t.test('bad reuseHosts options are AMIX_ERR_INVALID_ARG', async (t) => {
  for (const bad of [{ max: -1 }, { max: 1.5 }, { idleMs: -5 }, { idleMs: Infinity }, 'yes', 3] as unknown[])
    t.throws(() => new Fabric({ reuseHosts: bad as FabricOptions['reuseHosts'] }), { code: 'AMIX_ERR_INVALID_ARG' });
});
