// Redundancy (seed 002 ¶165: "keep communications flowing when a point on the
// path terminates unexpectedly"): two trunks between TCS-1 and TCS-2, each
// trunk point in a process of its own (restart: true). Under a
// sequence-numbered load on three flows (two one way, one back), kill -9 the
// trunk point that carries them: traffic resumes within 2 s (about 0.35 s on
// an idle machine), and at the
// receivers each flow has every message once and in order. The killed point
// is restarted by its supervisor and its trunk comes back up: killing the
// other one then moves traffic back onto it, again without loss.
import t from 'tap';
import { SWITCH_LOCATION, TRUNK_LOCATION, type Fabric, type FabricEvent } from '../dist/lib/index.js';
import { generateKeyPair } from '../dist/lib/internal.js';
import { makeFabric, nextEvent } from './helpers/fabric.js';
import { attach, freePort, type Answer, type Driver } from './helpers/switchDriver.js';

/** Resolve with the `k`-th event (1-based) matching `pred`. */
async function nth(fabric: Fabric, events: FabricEvent[], k: number, pred: (e: FabricEvent) => boolean): Promise<void> {
  while (events.filter(pred).length < k) await new Promise((r) => fabric.once('event', r));
}

/** Every report of flow `from`/`tag` carries the indices 0..n-1, once each, in order: [lost, duplicated, reordered]. */
function audit(reports: Answer[], from: string, tag: string, n: number): [number, number, number] {
  const seen = reports
    .filter((r) => r.from === from && r.got?.startsWith(`${tag}:`))
    .map((r) => Number(r.got!.slice(tag.length + 1)));
  const uniq = new Set(seen);
  let reordered = 0;
  for (let i = 1; i < seen.length; i++) if (seen[i]! < seen[i - 1]!) reordered++;
  return [n - uniq.size, seen.length - uniq.size, reordered];
}

t.test(
  'two trunks: kill -9 the trunk point under load; resumes within 2 s, 0 lost, 0 duplicated, 0 reordered',
  { timeout: 240_000 },
  async (t) => {
    const T0 = performance.now();
    // The fabric's own close ends every instance, the restarted trunk point too (that close hung before
    // 6b9ba05: the restarted point ran before its links were back and its loop ended on UNKNOWN_LINK).
    const { fabric, events } = await makeFabric(t);
    fabric.register({ name: 'TCS-1', location: SWITCH_LOCATION });
    fabric.register({ name: 'TCS-2', location: SWITCH_LOCATION });
    for (const x of ['a', 'b']) {
      const [k1, k2] = [generateKeyPair(), generateKeyPair()];
      const listen = `tcp://127.0.0.1:${await freePort()}`;
      const c = { scope: 'process', restart: true } as const;
      fabric.register({
        name: `TTP-2${x}`,
        location: TRUNK_LOCATION,
        characteristics: c,
        data: { trunk: { ...k2, peerKey: k1.publicKey, listen } },
      });
      fabric.register({
        name: `TTP-1${x}`,
        location: TRUNK_LOCATION,
        characteristics: c,
        data: { trunk: { ...k1, peerKey: k2.publicKey, connect: listen } },
      });
      await fabric.connect('TCS-2', `TTP-2${x}`);
      await fabric.connect('TCS-1', `TTP-1${x}`);
    }
    const drv: Record<string, Driver> = {};
    for (const n of ['S1', 'S2']) drv[n] = (await attach(fabric, n, 'TCS-1', { report: true })).drv;
    for (const n of ['R1', 'R2']) drv[n] = (await attach(fabric, n, 'TCS-2', { report: true })).drv;
    for (const x of ['TTP-1a', 'TTP-1b']) await nextEvent(fabric, events, 'trunkUp', (e) => e.trunk === x);
    for (const [a, b] of [
      ['S1', 'R1'],
      ['S2', 'R2'],
      ['R1', 'S1'],
    ] as const)
      t.match(await drv[a]!.cmd({ op: 'route', to: b, present: true }), { ok: true });
    const route = (await fabric.switches.show('TCS-1')).routes.find((r) => r.dest === 'R1')!;
    const carrier = (await fabric.switches.show('TCS-1')).ports.find((p) => p.link === route.link)!.peer;
    const other = carrier === 'TTP-1a' ? 'TTP-1b' : 'TTP-1a';
    t.match(carrier, /^TTP-1[ab]$/, `the flows go through ${carrier}`);

    t.comment(`set up at ${Math.round(performance.now() - T0)} ms`);
    // Sized for the suite's time: the paced flows move a few hundred messages a second through the trunk.
    const n = 1000;
    const flows = [
      { from: 'S1', to: 'R1', tag: 'f1' },
      { from: 'S2', to: 'R2', tag: 'f2' },
      { from: 'R1', to: 'S1', tag: 'f3' },
    ];
    const sent = flows.map((f) => drv[f.from]!.cmd({ op: 'send', to: f.to, n, tag: f.tag, pace: 4 }));
    // Watch the receivers: the longest spell without a new message after the kill is the outage.
    const arrivals: number[] = [];
    let last = 0;
    const watch = setInterval(() => {
      const c = flows.reduce((s, f) => s + drv[f.to]!.reports.length, 0);
      if (c !== last) arrivals.push(performance.now());
      last = c;
    }, 5);
    t.teardown(() => clearInterval(watch));
    while (drv.R1!.reports.length < 200) await new Promise((r) => setTimeout(r, 5));
    const pid = fabric.instance(carrier).pid!;
    const killedAt = performance.now();
    process.kill(pid, 'SIGKILL');
    for (const s of sent) t.match(await s, { ok: true });
    for (const f of flows) await drv[f.to]!.reported(n);
    clearInterval(watch);
    const after = [killedAt, ...arrivals.filter((x) => x > killedAt)];
    let outage = 0;
    for (let i = 1; i < after.length; i++) outage = Math.max(outage, after[i]! - after[i - 1]!);
    // About 350 ms in a full-suite run; the bound leaves room for a loaded CI machine (set-up alone has taken
    // 31 s there, and one run paused 1043 ms), which the failover itself does not depend on.
    t.ok(outage < 2000, `longest pause in arrivals after the kill: ${Math.round(outage)} ms (< 2000)`);
    for (const f of flows)
      t.same(
        audit(drv[f.to]!.reports, f.from, f.tag, n),
        [0, 0, 0],
        `${f.from} -> ${f.to}: 0 lost, 0 duplicated, 0 reordered`,
      );
    const s1 = await fabric.switches.show('TCS-1');
    t.equal(s1.routes.find((r) => r.dest === 'R1')!.nextHop, 'TCS-2');
    t.comment(
      `TCS-1 trunk: sent ${s1.trunk.sent}, re-sent ${s1.trunk.retransmits}; TCS-2 dropped ${(await fabric.switches.show('TCS-2')).trunk.duplicates} duplicates`,
    );

    // The supervisor restarts the killed trunk point; its trunk comes up again.
    await nextEvent(fabric, events, 'instanceRestarted', (e) => e.instance === carrier);
    await nth(fabric, events, 2, (e) => e.type === 'trunkUp' && e.trunk === carrier);
    for (;;) {
      const p = (await fabric.switches.show('TCS-1')).ports.find((x) => x.peer === carrier);
      if (p?.neighbour === 'TCS-2') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.pass(`${carrier} is back: TCS-1 hears TCS-2 through it again`);
    // The lost path is usable again: kill the other trunk point, and a second load moves back onto it.
    const m = 300;
    const again = drv.S2!.cmd({ op: 'send', to: 'R2', n: m, tag: 'g', pace: 4 });
    while (drv.R2!.reports.length < n + 80) await new Promise((r) => setTimeout(r, 5));
    process.kill(fabric.instance(other).pid!, 'SIGKILL');
    t.match(await again, { ok: true });
    await drv.R2!.reported(n + m);
    t.same(
      audit(drv.R2!.reports, 'S2', 'g', m),
      [0, 0, 0],
      `after ${other} died too, S2 -> R2 went on over ${carrier}`,
    );

    t.comment(`body done at ${Math.round(performance.now() - T0)} ms`);
  },
);
