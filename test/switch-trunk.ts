// Trunk points and the trunk link on loopback (seed 002 ¶363): TCP-1..4 on
// TCS-1, TTP-1 =TTL-1=> TTP-2 (each in a process of its own, ZeroMQ with
// CURVE between them), TCS-2 with TCP-5..7. Every point on one side reaches
// every point on the other and back, each receiver sees the true sender;
// trunk frames carry many switch frames under load; a key that is not the
// peer's is refused; malformed trunk frames from the peer's key are counted,
// never a crash.
import t from 'tap';
import { SWITCH_LOCATION } from '../dist/lib/index.js';
import { PrimitiveRegistry, generateKeyPair } from '../dist/lib/internal.js';
import { makeFabric, nextEvent } from './helpers/fabric.js';
import { attach, trunkPair, type Driver } from './helpers/switchDriver.js';

t.test('¶363 on loopback: TCP-1..4 reach TCP-5..7 through TCS-1, TTP-1, TTL-1, TTP-2, TCS-2 and back', async (t) => {
  const { fabric, events } = await makeFabric(t);
  fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
  fabric.register({ name: 'TCS-2', location: SWITCH_LOCATION });
  const { k1, k2 } = await trunkPair(fabric, 'TCS-1', 'TCS-2');
  const left = ['TCP-1', 'TCP-2', 'TCP-3', 'TCP-4'];
  const right = ['TCP-5', 'TCP-6', 'TCP-7'];
  const drv: Record<string, Driver> = {};
  for (const n of left) drv[n] = (await attach(fabric, n, 'TCS-1', { report: true })).drv;
  for (const n of right) drv[n] = (await attach(fabric, n, 'TCS-2', { report: true })).drv;
  await nextEvent(fabric, events, 'trunkUp', (e) => e.trunk === 'TTP-1');
  for (const n of right) await nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TCS-1' && e.dest === n);
  for (const n of left) await nextEvent(fabric, events, 'routeUp', (e) => e.switch === 'TCS-2' && e.dest === n);
  for (const a of left)
    for (const b of right) {
      t.match(await drv[a]!.cmd({ op: 'route', to: b, present: true }), { ok: true });
      t.match(await drv[b]!.cmd({ op: 'route', to: a, present: true }), { ok: true });
    }
  const n = 3;
  for (const a of left)
    for (const b of right) {
      t.match(await drv[a]!.cmd({ op: 'send', to: b, n, tag: `${a}>${b}` }), { ok: true });
      t.match(await drv[b]!.cmd({ op: 'send', to: a, n, tag: `${b}>${a}` }), { ok: true });
    }
  const expect = (b: string, from: string[]) =>
    from.flatMap((a) => Array.from({ length: n }, (_, i) => `${a} ${a}>${b}:${i}`));
  for (const b of right) {
    const got = (await drv[b]!.reported(left.length * n)).map((r) => `${r.from} ${r.got}`);
    t.same([...got].sort(), expect(b, left).sort(), `${b} heard TCP-1..4, each as itself`);
    for (const a of left)
      t.same(
        got.filter((x) => x.startsWith(`${a} `)),
        expect(b, [a]),
        `${a} -> ${b} in order`,
      );
  }
  for (const b of left) {
    const got = await drv[b]!.reported(right.length * n);
    t.same(got.map((r) => `${r.from} ${r.got}`).sort(), expect(b, right).sort(), `${b} heard TCP-5..7, each as itself`);
  }
  const s1 = await fabric.switches.show('TCS-1');
  t.match(
    s1.routes.find((r) => r.dest === 'TCP-6'),
    { hops: 2, nextHop: 'TCS-2', path: ['TCS-1', 'TCS-2'] },
  );
  t.match(
    s1.ports.find((p) => p.peer === 'TTP-1'),
    { trunk: 'TTP-1', neighbour: 'TCS-2' },
    'TCS-1 sees TTP-1 as a trunk to TCS-2',
  );
  t.notOk(
    s1.routes.find((r) => r.dest === 'TTP-1'),
    'a trunk point is no destination',
  );
  t.ok(s1.trunk.sent >= left.length * right.length * n, `TCS-1 sequenced ${s1.trunk.sent} frames`);
  // The acknowledgements may still be on their way back when the last message has arrived: ask until they are in.
  while ((await fabric.switches.show('TCS-1')).trunk.kept > 0) await new Promise((r) => setTimeout(r, 20));
  t.pass('everything TCS-1 sent over the trunk was acknowledged');
  const s2 = await fabric.switches.show('TCS-2');
  // No gaps (nothing lost on the way); duplicates are possible on a loaded machine (a re-send after 400 ms without
  // an acknowledgement), and dropped.
  t.match(s2.trunk, { gaps: 0 });
  t.same(s2.dropped, { unknown: 0, hops: 0, bad: 0, gone: 0 });

  // Under load trunk frames carry many switch frames: 2000 messages from one point at once.
  const before = (await fabric.switches.trunk('TTP-1')).framesOut;
  const burst = 2000;
  t.match(await drv['TCP-1']!.cmd({ op: 'send', to: 'TCP-5', n: burst, tag: 'b' }), { ok: true });
  for (;;) if ((await drv['TCP-5']!.cmd({ op: 'count' })).count === left.length * n + burst) break;
  const tr = await fabric.switches.trunk('TTP-1');
  t.equal(tr.state, 'up');
  t.ok(tr.framesOut > before, 'trunk frames went out');
  t.ok(tr.msgsPerFrame > 1, `${tr.msgsPerFrame} switch frames per trunk frame on average (more than 1 under load)`);
  t.comment(`TTP-1: ${tr.framesOut} trunk frames for ${tr.msgsOut} switch frames`);
  t.same((await fabric.switches.trunks()).map((x) => x.trunk).sort(), ['TTP-1', 'TTP-2']);
  const ls = await fabric.switches.ls();
  t.same(
    ls.map((x) => `${x.kind} ${x.kind === 'switch' ? x.switch : x.trunk}`).sort(),
    ['switch TCS-1', 'switch TCS-2', 'trunk TTP-1', 'trunk TTP-2'],
    'switch ls lists the switches, then the trunk points',
  );
  t.match(
    ls.find((x) => x.kind === 'trunk' && x.trunk === 'TTP-1'),
    { state: 'up', localSwitch: 'TCS-1', remoteSwitch: 'TCS-2', scope: 'process', pending: 0, dropped: 0 },
    'a trunk row: state, local and remote switch',
  );
  t.ok((ls.find((x) => x.kind === 'trunk' && x.trunk === 'TTP-1') as { msgsPerFrame: number }).msgsPerFrame > 1);
  t.type(
    ls.find((x) => x.kind === 'trunk' && x.trunk === 'TTP-2')?.peer,
    'string',
    'the listening side knows its peer',
  );

  // Identity is the key: a client with another key is refused by TTP-2's receiving end.
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const tt2 = await fabric.switches.trunk('TTP-2');
  const address = {
    endpoint: tt2.endpoint,
    serverPublicKey: k2.publicKey,
    maxmsg: 1024,
    minmsg: 512,
    maxMessageBytes: 262144,
    maxFrameBytes: 262173,
    discard: 'block',
  };
  const stranger = await reg.open('zeromq', { address, zeromq: { curve: generateKeyPair(), connectTimeoutMs: 3000 } });
  await t.rejects(stranger.connect(), { code: 'AMIX_ERR_UNAUTHORIZED' }, 'a key that is not the peer key is refused');
  await stranger.destroy();
  // The peer's own key sending garbage: dropped whole, counted, the trunk goes on.
  const liar = await reg.open('zeromq', { address, zeromq: { curve: k1, connectTimeoutMs: 3000 } });
  await liar.connect();
  await liar.send(Uint8Array.of(0xb1, 0, 5, 0, 0, 0, 9));
  await liar.send(Uint8Array.of(0x42));
  for (;;) if ((await fabric.switches.trunk('TTP-2')).dropped.bad >= 2) break;
  const bad = await fabric.switches.trunk('TTP-2');
  t.match(bad.lastError, { code: 'AMIX_ERR_BAD_FRAME' }, 'a malformed trunk frame is AMIX_ERR_BAD_FRAME');
  await liar.destroy();
  t.match(await drv['TCP-5']!.cmd({ op: 'send', to: 'TCP-2', n: 1, tag: 'after' }), { ok: true });
  const last = await drv['TCP-2']!.reported(right.length * n + 1);
  t.match(last.at(-1), { from: 'TCP-5', got: 'after:0' }, 'the trunk still carries traffic');
});
