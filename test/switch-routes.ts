// The switch's routing on its own, in one process (no fabric, links opened by
// agents as the fabric's are): three switches in a triangle learn loop-free
// shortest routes and withdraw them everywhere on detach; frames a switch
// cannot route are counted; a peer that takes no routes frames gets a bounded
// backlog of them.
import t, { type Test } from 'tap';
import {
  Agent,
  Endpoint,
  PrimitiveRegistry,
  Switch,
  SWITCH_MAX_HOPS,
  encodeSwitchData,
  type SwitchSnapshot,
} from '../dist/lib/internal.js';

const P = 'queueConditionThread';

function world(t: Test) {
  const reg = new PrimitiveRegistry();
  const eps: Endpoint[] = [];
  t.teardown(async () => {
    for (const e of eps) await e.close().catch(() => {});
    await reg.close();
  });
  const ep = (name: string) => {
    const e = new Endpoint(name);
    eps.push(e);
    return e;
  };
  let n = 0;
  /** Link a and b both ways as the fabric would: an entry facing a switch (and not one itself) is switched. */
  const link = async (a: Endpoint, aSw: boolean, b: Endpoint, bSw: boolean, options: { maxmsg?: number } = {}) => {
    const id = `L${++n}`;
    const one = async (from: Endpoint, fromSw: boolean, to: Endpoint, toSw: boolean) => {
      const rx = new Agent(to, reg);
      const tx = new Agent(from, reg);
      const { address } = await rx.request<{ address: never }>('openReceiver', {
        link: id,
        peer: from.name,
        primitive: P,
        options,
      });
      const sw = toSw && !fromSw;
      await tx.request('openSender', { link: id, peer: to.name, primitive: P, address, options, switched: sw });
      await rx.request('listReceiver', { link: id, peer: from.name, switched: fromSw && !toSw });
    };
    await one(a, aSw, b, bSw);
    await one(b, bSw, a, aSw);
    return id;
  };
  return { ep, link };
}

/** Resolve once `pred` holds of the switch's snapshot, checked again at each event of its endpoint. */
async function until(e: Endpoint, sw: Switch, pred: (s: SwitchSnapshot) => boolean): Promise<void> {
  while (!pred(sw.snapshot())) await new Promise((r) => e.once('event', r));
}

/** Resolve once point `p` reaches (or no longer reaches) `to` through its switch entries. */
async function learned(p: Endpoint, to: string, present = true): Promise<void> {
  while (p.switchRoutes().some((r) => r.destinations.includes(to)) !== present)
    await new Promise((r) => p.once('event', r));
}

t.test('a triangle of switches: shortest loop-free routes, withdrawn everywhere on detach', async (t) => {
  const { ep, link } = world(t);
  const [e1, e2, e3] = [ep('S1'), ep('S2'), ep('S3')];
  const [s1, s2, s3] = [new Switch(e1, 'S1'), new Switch(e2, 'S2'), new Switch(e3, 'S3')];
  await link(e1, true, e2, true);
  await link(e2, true, e3, true);
  await link(e3, true, e1, true);
  const a = ep('A');
  const b = ep('B');
  const la = await link(a, false, e1, true);
  await link(b, false, e3, true);
  await until(e1, s1, (s) => s.routes.some((r) => r.dest === 'B' && r.hops === 2));
  await until(e2, s2, (s) => s.routes.filter((r) => r.hops === 2).length === 2);
  t.match(
    s1.snapshot().routes.find((r) => r.dest === 'B'),
    { hops: 2, path: ['S1', 'S3'], nextHop: 'S3' },
    'S1 reaches B through its direct neighbour, not around the triangle',
  );
  for (const s of [s1, s2, s3])
    for (const r of s.snapshot().routes) t.equal(new Set(r.path).size, r.path.length, `${r.dest}: no switch twice`);
  await learned(a, 'B');
  await a.send(Buffer.from('hi'), { to: 'B' });
  const m = await b.receive();
  t.same([m.from, Buffer.from(m.data).toString()], ['A', 'hi'], 'B hears A, through two switches');
  // Detach A: every switch forgets it; with path vectors nothing counts to infinity around the loop.
  await Promise.all([a.removeLink(la), e1.removeLink(la)]);
  for (const [e, s] of [
    [e1, s1],
    [e2, s2],
    [e3, s3],
  ] as const)
    await until(e, s, (x) => !x.routes.some((r) => r.dest === 'A'));
  t.pass('A is withdrawn at all three switches');
  await learned(b, 'A', false);
  await t.rejects(b.send(Buffer.from('x'), { to: 'A' }), { code: 'AMIX_ERR_UNKNOWN_POINT', details: { name: 'A' } });
});

t.test('frames a switch cannot route are counted; routes frames to a deaf peer stay bounded', async (t) => {
  const { ep, link } = world(t);
  const e1 = ep('S1');
  const s1 = new Switch(e1, 'S1');
  const [a, b] = [ep('A'), ep('B')];
  const la = await link(a, false, e1, true);
  await link(b, false, e1, true);
  await learned(a, 'B');
  // Past the Endpoint: a frame that is no switch frame, one for nobody, then a good one. One FIFO from A:
  // once the good one arrives, the switch has dealt with the other two.
  const raw = a.channels(la).tx[0]!;
  await raw.send(Uint8Array.of(1, 2, 3));
  await raw.send(encodeSwitchData('nobody', 'A', Buffer.from('x')));
  await a.send(Buffer.from('ok'), { to: 'B' });
  t.equal(Buffer.from((await b.receive()).data).toString(), 'ok');
  t.match(s1.snapshot().dropped, { bad: 1, unknown: 1, hops: 0 }, 'both counted');

  // A frame a neighbour says is at the hop limit is dropped at the next switch, and counted there.
  const [e2, e3] = [ep('S2'), ep('S3')];
  const s2 = new Switch(e2, 'S2');
  new Switch(e3, 'S3');
  await link(e1, true, e2, true);
  await link(e2, true, e3, true);
  const c = ep('C');
  await link(c, false, e3, true);
  await until(e1, s1, (s) => s.routes.some((r) => r.dest === 'C'));
  await learned(a, 'C');
  const toS2 = e1.channels(e1.senderList.find((x) => x.peer === 'S2')!.link).tx[0]!;
  await toS2.send(encodeSwitchData('C', 'A', Buffer.from('looping'), SWITCH_MAX_HOPS - 1));
  await toS2.send(encodeSwitchData('C', 'A', Buffer.from('fine'), 0));
  const got = await c.receive();
  t.same([got.from, Buffer.from(got.data).toString()], ['A', 'fine'], 'only the frame under the limit arrives');
  t.equal(s2.snapshot().dropped.hops, 1, 'the one at the limit is counted at S2');

  // A peer that takes nothing (its channel from S1 held): 100 route changes queue at most 32 frames for it.
  const deaf = ep('deaf');
  const ld = await link(deaf, true, e1, true); // as a switch would, so its entries are raw and unread
  await e1.channels(ld).tx[0]!.suspend();
  for (let i = 0; i < 100; i++) {
    await link(ep(`X${i}`), false, e1, true);
    await new Promise((r) => setImmediate(r)); // each change its own routes frame
  }
  await until(e1, s1, (s) => s.routes.length >= 103);
  await new Promise((r) => setImmediate(r));
  const port = s1.snapshot().ports.find((p) => p.peer === 'deaf')!;
  t.ok(
    port.routesQueued > 0 && port.routesQueued <= 32,
    `routes frames waiting for the deaf peer: ${port.routesQueued} (bounded: a full table replaces a backlog)`,
  );
});
