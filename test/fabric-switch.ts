// The switch point (seed 002 ¶77, ¶359-365): the ¶362 topology (TCP-1..3 on
// TCS-1), a switch linked to a switch (across a process, through brokers),
// route withdrawal on detach, unknown destinations, route suspend, and
// backpressure: a destination that does not read holds up only its own flows,
// and what the switch holds stays bounded.
import t from 'tap';
import type { Link } from '../dist/lib/index.js';
import { SWITCH_LOCATION, decodeSwitchFrame, encodeSwitchData } from '../dist/lib/internal.js';
import { makeFabric, nextEvent } from './helpers/fabric.js';
import { attach, type Driver } from './helpers/switchDriver.js';

t.test('the switch header: data and routes frames', async (t) => {
  const f = encodeSwitchData('TCP-2', 'TCP-1', Buffer.from('hi'));
  t.equal(f.length, 4 + 5 + 5 + 2, 'header is 4 bytes plus the two names');
  const d = decodeSwitchFrame(f);
  t.match(d, { kind: 'data', dst: 'TCP-2', src: 'TCP-1', hops: 0 });
  t.equal(Buffer.from((d as { payload: Uint8Array }).payload).toString(), 'hi');
  t.equal(decodeSwitchFrame(Uint8Array.of(0xa1, 0, 9, 9, 1)), undefined, 'a truncated header is refused');
  t.equal(decodeSwitchFrame(Uint8Array.of(7, 7)), undefined, 'an unknown kind is refused');
  t.throws(() => encodeSwitchData('x'.repeat(256), 'a', new Uint8Array()), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('¶362: TCP-1..3 on TCS-1 reach each other, each receiver sees the true sender', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
  const names = ['TCP-1', 'TCP-2', 'TCP-3'];
  const drv: Record<string, Driver> = {};
  for (const n of names) drv[n] = (await attach(fabric, n, 'TCS-1', { report: true })).drv;
  for (const n of names) await nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TCS-1' && e.dest === n);
  for (const a of names)
    for (const b of names)
      if (a !== b) t.match(await drv[a]!.cmd({ op: 'route', to: b, present: true }), { ok: true }, `${a} learned ${b}`);
  for (const a of names)
    for (const b of names)
      if (a !== b) t.match(await drv[a]!.cmd({ op: 'send', to: b, n: 2, tag: `${a}>${b}` }), { ok: true });
  for (const b of names) {
    const got = await drv[b]!.reported(4);
    const others = names.filter((x) => x !== b);
    t.same(
      got.map((r) => `${r.from} ${r.got}`).sort(),
      others.flatMap((a) => [`${a} ${a}>${b}:0`, `${a} ${a}>${b}:1`]).sort(),
      `${b} got both messages of each other point, from the point itself (never TCS-1)`,
    );
  }
  // A frame written past the Endpoint that claims another sender is stamped with its link's far end.
  t.match(await drv['TCP-1']!.cmd({ op: 'forge', to: 'TCP-2', as: 'TCP-3', text: 'forged' }), { ok: true });
  t.match((await drv['TCP-2']!.reported(5))[4], { got: 'forged', from: 'TCP-1' }, 'the switch names the true sender');
  const s = await fabric.switches.show('TCS-1');
  t.same(
    s.routes.map((r) => [r.dest, r.hops]).sort(),
    names.map((n) => [n, 1]),
    'three attached routes',
  );
  t.equal(
    s.routes.reduce((n, r) => n + r.messages, 0),
    13,
    'thirteen messages switched (the forged one too)',
  );
  t.same(s.dropped, { unknown: 0, hops: 0, bad: 0, gone: 0 });
  const ls = await fabric.switches.ls();
  t.match(ls, [{ switch: 'TCS-1', routes: 3, links: 3 }]);
  // A direct link pays nothing: a point not facing a switch has no switch entry.
  t.notOk(fabric.instance('TCP-1').senderList.find((e) => e.peer === 'caller')?.switched);
});

t.test('a switch linked to a switch: points on each reach points on the other; detach withdraws', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
  // A process switch: the thread points' links to it go through brokers, which carry the header unchanged.
  fabric.register({ name: 'TCS-2', location: SWITCH_LOCATION, characteristics: { scope: 'process' } });
  await fabric.connect('TCS-1', 'TCS-2');
  const left = ['TCP-1', 'TCP-2'];
  const right = ['TCP-3', 'TCP-4'];
  const drv: Record<string, Driver> = {};
  const links: Record<string, Link> = {};
  for (const n of left) ({ drv: drv[n], link: links[n] } = await attach(fabric, n, 'TCS-1', { report: true }));
  for (const n of right) ({ drv: drv[n], link: links[n] } = await attach(fabric, n, 'TCS-2', { report: true }));
  t.ok(links['TCP-3']!.info.brokers.length > 0, 'a thread point reaches the process switch through a broker');
  const all = [...left, ...right];
  const up = await nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TCS-1' && e.dest === 'TCP-4');
  t.equal(up.hops, 2, 'TCS-1 reaches TCP-4 through one more switch');
  for (const a of all)
    for (const b of all) if (a !== b) t.match(await drv[a]!.cmd({ op: 'route', to: b, present: true }), { ok: true });
  for (const a of all)
    for (const b of all)
      if (a !== b) t.match(await drv[a]!.cmd({ op: 'send', to: b, n: 1, tag: `${a}>${b}` }), { ok: true });
  for (const b of all) {
    const got = await drv[b]!.reported(3);
    t.same(
      got.map((r) => `${r.from} ${r.got}`).sort(),
      all
        .filter((a) => a !== b)
        .map((a) => `${a} ${a}>${b}:0`)
        .sort(),
      `${b} heard every other point, each under its own name`,
    );
  }
  const s1 = await fabric.switches.show('TCS-1');
  t.match(
    s1.routes.find((r) => r.dest === 'TCP-3'),
    { hops: 2, nextHop: 'TCS-2', path: ['TCS-1', 'TCS-2'] },
  );
  t.notOk(
    s1.routes.find((r) => r.dest === 'TCS-2'),
    'a neighbour switch is no destination',
  );

  // Detach TCP-4: the route goes at both switches, and sending to it is an error with a stable code.
  await fabric.disconnect(links['TCP-4']!.id);
  await nextEvent(fabric, events, 'routeDown', (e) => e.switch === 'TCS-1' && e.dest === 'TCP-4');
  t.match(await drv['TCP-1']!.cmd({ op: 'route', to: 'TCP-4', present: false }), { ok: true });
  t.match(await drv['TCP-1']!.cmd({ op: 'send', to: 'TCP-4', n: 1, tag: 'late' }), { error: 'AMIX_ERR_UNKNOWN_POINT' });
  t.match(await drv['TCP-1']!.cmd({ op: 'send', to: 'nobody', n: 1, tag: 'x' }), { error: 'AMIX_ERR_UNKNOWN_POINT' });
  t.notOk((await fabric.switches.show('TCS-2')).routes.find((r) => r.dest === 'TCP-4'));

  // A sender that cannot learn routes (send-only link) is tried blind: the switch counts what it cannot route.
  const blind = await fabric.connect(null, 'TCS-1', { direction: 'aToB' });
  await blind.send(Buffer.from('lost'), { to: 'TCP-4' });
  await blind.send(Buffer.from('found'), { to: 'TCP-2' });
  const after = await drv['TCP-2']!.reported(4);
  t.match(after[3], { from: 'caller', got: 'found' }, 'the next message from the same source arrives');
  t.equal((await fabric.switches.show('TCS-1')).dropped.unknown, 1, 'the one before it was counted as dropped');
});

t.test(
  'backpressure: a destination that does not read holds up only its own flows; pending stays bounded',
  async (t) => {
    const { fabric, events } = await makeFabric(t);
    const queueLimit = 16;
    const readBatch = 8;
    fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION, data: { queueLimit, readBatch } });
    const { drv: slow } = await attach(fabric, 'slow', 'TCS-1');
    const { drv: fast } = await attach(fabric, 'fast', 'TCS-1');
    const { drv: s1 } = await attach(fabric, 'S1', 'TCS-1');
    const { drv: s2 } = await attach(fabric, 'S2', 'TCS-1');
    for (const d of ['slow', 'fast']) await nextEvent(fabric, events, 'routeUp', (e) => e.dest === d);
    // A point learns a destination attached after it from the switch's next routes frame: wait for it.
    t.match(await s1.cmd({ op: 'route', to: 'slow', present: true }), { ok: true });
    t.match(await s2.cmd({ op: 'route', to: 'fast', present: true }), { ok: true });
    // The same flow alone first, for the rate it has when nothing else is going on (printed, not asserted: a
    // loaded machine makes rates noisy; what is asserted below is that it completes while the other is blocked).
    const n = 5000;
    const b0 = Date.now();
    t.match(await s2.cmd({ op: 'send', to: 'fast', n, tag: 'b' }), { ok: true });
    for (;;) if ((await fast.cmd({ op: 'count' })).count === n) break;
    const aloneMs = Date.now() - b0;
    t.match(await slow.cmd({ op: 'pause' }), { ok: true });
    // S1 floods the destination that does not read; its sends will block once every buffer is full.
    const flood = 20_000;
    const s1Done = s1.cmd({ op: 'send', to: 'slow', n: flood, tag: 'f' });
    let s1Finished = false;
    void s1Done.then(() => (s1Finished = true));
    // Once S1 is parked on the full queue of the destination that does not read (asked of the switch until so) ...
    while ((await fabric.switches.show('TCS-1')).ports.find((p) => p.peer === 'slow')?.parked !== 1);
    // ... S2's messages to the other destination all arrive.
    const t0 = Date.now();
    t.match(await s2.cmd({ op: 'send', to: 'fast', n, tag: 'g' }), { ok: true });
    for (;;) {
      const c = await fast.cmd({ op: 'count' });
      if (c.count === 2 * n) break;
    }
    const fastMs = Date.now() - t0;
    t.notOk(s1Finished, 'the flood to the blocked destination has not completed');
    const s = await fabric.switches.show('TCS-1');
    const port = s.ports.find((p) => p.peer === 'slow')!;
    t.ok(port.queued <= queueLimit, `the slow destination's queue is bounded (${port.queued} <= ${queueLimit})`);
    t.equal(port.parked, 1, 'its one source is parked');
    t.ok(s.pending <= queueLimit + readBatch + 2, `the switch holds ${s.pending} messages at most (bounded)`);
    t.comment(
      `fast destination: ${n} messages in ${aloneMs} ms alone, ${fastMs} ms while the slow one was blocked and flooded`,
    );
    // Still bounded a moment later, while S1 keeps trying.
    const again = await fabric.switches.show('TCS-1');
    t.ok(again.pending <= queueLimit + readBatch + 2, 'pending does not grow');
    // The slow destination reads again: everything arrives, nothing dropped.
    t.match(await slow.cmd({ op: 'resume' }), { ok: true });
    t.match(await s1Done, { ok: true });
    for (;;) {
      const c = await slow.cmd({ op: 'count' });
      if (c.count === flood) {
        t.same(c.froms, { S1: flood }, 'every flooded message arrived, from S1');
        break;
      }
    }
    t.equal((await fabric.switches.show('TCS-1')).dropped.gone, 0);
  },
);

t.test('suspend and resume a route', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
  const { drv: a } = await attach(fabric, 'A', 'TCS-1');
  const { drv: b } = await attach(fabric, 'B', 'TCS-1', { report: true });
  await nextEvent(fabric, events, 'routeUp', (e) => e.dest === 'B');
  t.match(await a.cmd({ op: 'route', to: 'B', present: true }), { ok: true });
  const held = await fabric.switches.suspendRoute('TCS-1', 'B');
  t.match(
    held.routes.find((r) => r.dest === 'B'),
    { suspended: true },
  );
  t.match(await a.cmd({ op: 'send', to: 'B', n: 3, tag: 'h' }), { ok: true });
  for (;;) if ((await fabric.switches.show('TCS-1')).ports.find((p) => p.peer === 'B')!.queued === 3) break;
  t.equal(b.reports.length, 0, 'nothing delivered while suspended');
  await fabric.switches.resumeRoute('TCS-1', 'B');
  t.same(
    (await b.reported(3)).map((r) => r.got),
    ['h:0', 'h:1', 'h:2'],
    'delivered in order on resume',
  );
  await t.rejects(fabric.switches.suspendRoute('TCS-1', 'nobody'), { code: 'AMIX_ERR_UNKNOWN_POINT' });
  await t.rejects(fabric.switches.show('A'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'A is no switch');

  // Rates: the switch samples its counters once a second. A paced flow A -> C reports about the rate two
  // snapshots measure; the idle route to B reports 0; C's route falls back to 0 once the flow ends.
  const { drv: c } = await attach(fabric, 'C', 'TCS-1');
  t.match(await a.cmd({ op: 'route', to: 'C', present: true }), { ok: true });
  let flowing = true;
  const sent = a.cmd({ op: 'send', to: 'C', n: 2000, tag: 'r', pace: 20 }).finally(() => (flowing = false));
  const route = (s: Awaited<ReturnType<typeof fabric.switches.show>>, d: string) => s.routes.find((r) => r.dest === d)!;
  while (route(await fabric.switches.show('TCS-1'), 'C').msgsPerSec === 0) await new Promise((r) => setTimeout(r, 50));
  const r1 = await fabric.switches.show('TCS-1');
  await new Promise((r) => setTimeout(r, 1500)); // the measuring window, not a synchronisation
  const r2 = await fabric.switches.show('TCS-1');
  t.ok(flowing, 'the flow was still going at the second snapshot');
  const measured = ((route(r2, 'C').messages - route(r1, 'C').messages) * 1000) / (r2.at - r1.at);
  const reported = route(r2, 'C').msgsPerSec;
  t.ok(
    reported >= measured * 0.4 && reported <= measured * 2.5,
    `route to C: ${reported} msgs/s reported, ${Math.round(measured)} measured over 1.5 s`,
  );
  t.equal(route(r2, 'B').msgsPerSec, 0, 'the idle route reports 0');
  t.ok(r2.msgsPerSec >= reported, 'the switch total counts it');
  t.ok(r2.ports.find((p) => p.peer === 'C')!.outPerSec > 0, 'the port to C has an out rate');
  t.ok(r2.ports.find((p) => p.peer === 'A')!.inPerSec > 0, 'the port from A has an in rate');
  t.match(await sent, { ok: true });
  for (;;) if ((await c.cmd({ op: 'count' })).count === 2000) break;
  while (route(await fabric.switches.show('TCS-1'), 'C').msgsPerSec !== 0) await new Promise((r) => setTimeout(r, 100));
  t.pass('the route to C is back at 0 once idle');
  t.match(await fabric.switches.ls(), [{ switch: 'TCS-1', msgsPerSec: 0 }]);
});
