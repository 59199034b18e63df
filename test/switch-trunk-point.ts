// A trunk point straight to a point (seed 002 ¶363: "a destination Thread Trunk Point which may in turn
// have a Thread Communications Link to a Thread Communication Switch or to a Thread Communication Point"):
// TCP-1, TCP-2 -> TCS-1 -> TTP-1 =TTL=> TTP-2 -> TCP-5, TTP-2 in point mode (data.trunk.attach 'point'),
// TCP-5 linked to TTP-2 both ways, on loopback. TCP-5 talks to TTP-2 as to a switch: messages go both
// ways, each receiver sees the true sender, each flow arrives in order and once; what crossed the trunk
// is acknowledged on both sides.
import t from 'tap';
import { SWITCH_LOCATION } from '../dist/lib/index.js';
import { makeFabric, nextEvent } from './helpers/fabric.js';
import { attach, trunkPair, within, type Driver } from './helpers/switchDriver.js';

t.test('TCP-1, TCP-2 -> TCS-1 -> TTP-1 = TTP-2 -> TCP-5: both ways, true sender, in order', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
  await within(trunkPair(fabric, 'TCS-1', null, ['TTP-1', 'TTP-2'], true), 'the trunk pair');
  const drv: Record<string, Driver> = {};
  for (const n of ['TCP-1', 'TCP-2'])
    drv[n] = (await within(attach(fabric, n, 'TCS-1', { report: true }), `attaching ${n}`)).drv;
  drv['TCP-5'] = (await within(attach(fabric, 'TCP-5', 'TTP-2', { report: true }), 'attaching TCP-5')).drv;
  const up = await within(
    nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TCS-1' && e.dest === 'TCP-5'),
    'TCS-1 learning TCP-5 (the trunk coming up)',
  );
  t.equal(up.hops, 2, 'TCS-1 reaches TCP-5 through one more switch: the trunk point');
  await within(
    nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TTP-2' && e.dest === 'TCP-1'),
    'TTP-2 learning TCP-1',
  );
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

  // Kill -9 TTP-1 under load both ways. With one trunk TCS-1's routes through it go while it is down, so a
  // send in the outage may be refused (AMIX_ERR_UNKNOWN_POINT: the load stops there); what was accepted before
  // is kept by TCS-1 and by TTP-2's engine and sent again once the restarted TTP-1's trunk is up: it arrives
  // once, in order.
  const k = 2000;
  const base5 = drv['TCP-5']!.reports.length;
  const base1 = drv['TCP-1']!.reports.length;
  const to5 = drv['TCP-1']!.cmd({ op: 'send', to: 'TCP-5', n: k, tag: 'k1', pace: 20 });
  const to1 = drv['TCP-5']!.cmd({ op: 'send', to: 'TCP-1', n: k, tag: 'k5', pace: 20 });
  await drv['TCP-5']!.reported(base5 + 40);
  process.kill(fabric.instance('TTP-1').pid!, 'SIGKILL');
  for (const r of [await to5, await to1])
    t.ok(r.ok || r.error === 'AMIX_ERR_UNKNOWN_POINT', `a load: ${JSON.stringify(r)}`);
  await nextEvent(fabric, events, 'instanceRestarted', (e) => e.instance === 'TTP-1');
  // Once the trunk is back each side reaches the other again; a last message per flow closes it (in order:
  // everything accepted before it arrived before it).
  t.match(await drv['TCP-1']!.cmd({ op: 'route', to: 'TCP-5', present: true }), { ok: true });
  t.match(await drv['TCP-5']!.cmd({ op: 'route', to: 'TCP-1', present: true }), { ok: true });
  t.match(await drv['TCP-1']!.cmd({ op: 'send', to: 'TCP-5', n: 1, tag: 'last1' }), { ok: true });
  t.match(await drv['TCP-5']!.cmd({ op: 'send', to: 'TCP-1', n: 1, tag: 'last5' }), { ok: true });
  const closed = async (d: Driver, base: number, last: string) => {
    for (let n = base + 1; ; n++) {
      const r = await d.reported(n);
      if (r.at(-1)!.got === `${last}:0`) return r.slice(base, -1);
    }
  };
  for (const [d, base, tag, from] of [
    [drv['TCP-5']!, base5, 'k1', 'TCP-1'],
    [drv['TCP-1']!, base1, 'k5', 'TCP-5'],
  ] as const) {
    const got = await closed(d, base, tag === 'k1' ? 'last1' : 'last5');
    t.ok(got.length >= (tag === 'k1' ? 40 : 1), `${got.length} of ${from}'s messages arrived`);
    t.ok(
      got.every((r) => r.from === from && r.got!.startsWith(`${tag}:`)),
      `each from ${from} itself`,
    );
    const idx = got.map((r) => Number(r.got!.slice(tag.length + 1)));
    t.ok(
      idx.every((x, i) => i === 0 || x > idx[i - 1]!),
      `across the TTP-1 restart: ${from}'s messages in order, none twice`,
    );
    // None missing either, but for what its switch counted as unroutable: a message sent in the moment
    // between its switch withdrawing the destination and the sender hearing of it (documented, counted).
    const sw = tag === 'k1' ? await fabric.switches.show('TCS-1') : (await fabric.switches.trunk('TTP-2')).engine!;
    const missing = idx.length === 0 ? 0 : idx.at(-1)! + 1 - idx.length;
    t.ok(
      missing <= sw.dropped.unknown,
      `${missing} missing, ${sw.dropped.unknown} counted as unroutable at ${sw.switch}`,
    );
  }
  t.equal((await fabric.switches.trunk('TTP-1')).state, 'up', 'the restarted TTP-1 is up');
});
