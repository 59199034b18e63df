// A trunk point straight to a point (seed 002 ¶363: "a destination Thread Trunk Point which may in turn
// have a Thread Communications Link to a Thread Communication Switch or to a Thread Communication Point"):
// TCP-1, TCP-2 -> TCS-1 -> TTP-1 =TTL=> TTP-2 -> TCP-5, TTP-2 in point mode (data.trunk.attach 'point'),
// TCP-5 linked to TTP-2 both ways, on loopback. TCP-5 talks to TTP-2 as to a switch: messages go both
// ways, each receiver sees the true sender, each flow arrives in order and once; what crossed the trunk
// is acknowledged on both sides.
import t from 'tap';
import { SWITCH_LOCATION } from '../dist/lib/index.js';
import { makeFabric, nextEvent } from './helpers/fabric.js';
import { attach, trunkPair, type Driver } from './helpers/switchDriver.js';

t.test('TCP-1, TCP-2 -> TCS-1 -> TTP-1 = TTP-2 -> TCP-5: both ways, true sender, in order', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
  await trunkPair(fabric, 'TCS-1', null);
  const drv: Record<string, Driver> = {};
  for (const n of ['TCP-1', 'TCP-2']) drv[n] = (await attach(fabric, n, 'TCS-1', { report: true })).drv;
  drv['TCP-5'] = (await attach(fabric, 'TCP-5', 'TTP-2', { report: true })).drv;
  const up = await nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TCS-1' && e.dest === 'TCP-5');
  t.equal(up.hops, 2, 'TCS-1 reaches TCP-5 through one more switch: the trunk point');
  await nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TTP-2' && e.dest === 'TCP-1');
  for (const to of ['TCP-1', 'TCP-2']) {
    t.match(await drv['TCP-5']!.cmd({ op: 'route', to, present: true }), { ok: true }, `TCP-5 learned ${to}`);
    t.match(await drv[to]!.cmd({ op: 'route', to: 'TCP-5', present: true }), { ok: true }, `${to} learned TCP-5`);
  }
  const n = 300;
  for (const a of ['TCP-1', 'TCP-2'])
    t.match(await drv[a]!.cmd({ op: 'send', to: 'TCP-5', n, tag: `${a}>5` }), { ok: true });
  t.match(await drv['TCP-5']!.cmd({ op: 'send', to: 'TCP-1', n, tag: '5>1' }), { ok: true });
  t.match(await drv['TCP-5']!.cmd({ op: 'send', to: 'TCP-2', n: 1, tag: '5>2' }), { ok: true });
  const seq = (tag: string, k: number) => Array.from({ length: k }, (_, i) => `${tag}:${i}`);
  const got5 = await drv['TCP-5']!.reported(2 * n);
  for (const a of ['TCP-1', 'TCP-2'])
    t.same(
      got5.filter((r) => r.from === a).map((r) => r.got),
      seq(`${a}>5`, n),
      `TCP-5 got ${a}'s ${n} messages from ${a} itself, in order, once`,
    );
  t.equal(got5.length, 2 * n, 'and nothing else');
  const got1 = await drv['TCP-1']!.reported(n);
  t.same(
    got1.map((r) => `${r.from} ${r.got}`),
    seq('5>1', n).map((x) => `TCP-5 ${x}`),
    'TCP-1 got TCP-5s messages as TCP-5, in order',
  );
  t.match((await drv['TCP-2']!.reported(1))[0], { from: 'TCP-5', got: '5>2:0' });
  // The engine stamps the point's name whatever its frame says, as a switch does.
  t.match(await drv['TCP-5']!.cmd({ op: 'forge', to: 'TCP-2', as: 'TCP-1', text: 'forged' }), { ok: true });
  t.match((await drv['TCP-2']!.reported(2))[1], { from: 'TCP-5', got: 'forged' }, 'a forged source is replaced');

  // Everything that crossed was acknowledged: on TCS-1 and on TTP-2's engine.
  let tr = await fabric.switches.trunk('TTP-2');
  while ((await fabric.switches.show('TCS-1')).trunk.kept > 0 || tr.engine!.trunk.kept > 0) {
    await new Promise((r) => setTimeout(r, 20));
    tr = await fabric.switches.trunk('TTP-2');
  }
  t.match(tr, { attach: 'point', state: 'up', localSwitch: 'TTP-2', remoteSwitch: 'TCS-1' });
  const eng = tr.engine!;
  t.match(
    eng.routes.find((r) => r.dest === 'TCP-5'),
    { hops: 1, path: ['TTP-2'] },
  );
  t.match(
    eng.routes.find((r) => r.dest === 'TCP-1'),
    { hops: 2, path: ['TTP-2', 'TCS-1'] },
  );
  t.ok(eng.trunk.sent >= n + 2, `TTP-2's engine sequenced ${eng.trunk.sent} frames`);
  t.match(eng.trunk, { gaps: 0 });
  t.match((await fabric.switches.show('TCS-1')).trunk, { gaps: 0 });
  t.same(eng.dropped, { unknown: 0, hops: 0, bad: 0, gone: 0 });
  t.match(
    (await fabric.switches.show('TCS-1')).routes.find((r) => r.dest === 'TCP-5'),
    { path: ['TCS-1', 'TTP-2'], nextHop: 'TTP-2' },
  );
  const ls = await fabric.switches.ls();
  t.match(
    ls.find((x) => x.kind === 'trunk' && x.trunk === 'TTP-2'),
    { state: 'up', localSwitch: 'TTP-2', remoteSwitch: 'TCS-1' },
  );
});
