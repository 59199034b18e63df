/**
 * Soak R7, stalled peers: four sender/receiver pairs on one fabric, each
 * sender paced at the same rate. Midway, the receiver of pair `rxStall`
 * stops reading (its sender is left blocked on a full window) and the
 * sender of pair `txStall` stops writing (its receiver is left waiting).
 * The other two pairs (`free-process`, `free-thread`) must not notice: each
 * receiver reports how many it has taken four times a second (on a link of
 * its own to the runner), and each free pair's rate after the stall must
 * stay within 20 % of its rate before it, with no second-long gap between
 * reports; the stalled receiver's
 * pending stays within `maxmsg`, and everything the stalled sender sent
 * before it stopped is delivered.
 *
 * @module
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, type Link } from '../../lib/index.js';
import { sleep, tempDir, type DeliveryCounts, type ScenarioRow } from './common.js';

const MAXMSG = 1000;
/** Each sender's pace: well below what one core moves, so the free pairs' rate is set by the pace, not by load. */
const RATE = 20_000;
/** A free pair's rate after the stall over its rate before must be at least this. */
const MIN_RATIO = 0.8;
/** No free pair may go this long without taking a message. */
const MAX_GAP_MS = 1000;

const point = (name: string) => fileURLToPath(new URL(`./points/${name}.js`, import.meta.url));

/** Options of {@link runStall}. */
export interface StallOptions {
  /** How long every sender runs; the stalls come at half of it. */
  durationMs: number;
  log?: (msg: string) => void;
}

interface Pair {
  name: string;
  scope: 'thread' | 'process';
  stall?: 'receiver' | 'sender';
}

const PAIRS: Pair[] = [
  { name: 'rxStall', scope: 'process', stall: 'receiver' },
  { name: 'txStall', scope: 'process', stall: 'sender' },
  { name: 'free-process', scope: 'process' },
  { name: 'free-thread', scope: 'thread' },
];

interface HostStats {
  point: { sent: number; received: number };
  links: Record<string, { tx: Array<{ pending: number }>; rx: Array<{ pending: number }> }>;
}

/** Run R7. */
export async function runStall(o: StallOptions): Promise<ScenarioRow> {
  const dir = await tempDir('r7');
  const fabric = new Fabric({ runtimeDir: join(dir, 'run') });
  const stallAtMs = Math.floor(o.durationMs / 2);
  const capacity = Math.ceil((RATE * o.durationMs) / 1000) + 10_000;
  try {
    const results = new Map<string, Link>();
    for (const p of PAIRS) {
      const c = { scope: p.scope, maxmsg: MAXMSG, minmsg: MAXMSG / 2, graceMs: 500 };
      fabric.register({
        name: `tx-${p.name}`,
        location: point('seqSource'),
        characteristics: c,
        data: {
          count: capacity,
          durationMs: o.durationMs,
          ratePerSec: RATE,
          ...(p.stall === 'sender' ? { stallAtMs } : {}),
        },
      });
      fabric.register({
        name: `rx-${p.name}`,
        location: point('seqSink'),
        characteristics: c,
        data: {
          capacity,
          slowEvery: Number.MAX_SAFE_INTEGER,
          slowMs: 0,
          progressMs: 250,
          ...(p.stall === 'receiver' ? { stallAtMs } : {}),
        },
      });
      // The receiver's result comes to the caller on a link of its own.
      results.set(p.name, await fabric.connect(`rx-${p.name}`, null, { direction: 'aToB' }));
    }
    for (const p of PAIRS) await fabric.connect(`tx-${p.name}`, `rx-${p.name}`, { direction: 'aToB' });
    const t0 = Date.now();
    const samples = new Map<string, Array<{ t: number; n: number }>>(PAIRS.map((p) => [p.name, []]));
    let stalledPending = 0;
    // Each receiver reports its own progress on its result link; its final counters end the report.
    const readers = PAIRS.map(async (p) => {
      for (;;) {
        const m = await results.get(p.name)!.receive();
        const r = JSON.parse(Buffer.from(m.data).toString()) as Partial<DeliveryCounts> & {
          progress?: number;
          pending?: number;
        };
        if (r.progress === undefined) return r as DeliveryCounts;
        samples.get(p.name)!.push({ t: Date.now() - t0, n: r.progress });
        if (p.stall === 'receiver') stalledPending = Math.max(stalledPending, r.pending ?? 0);
      }
    });
    for (const r of readers) r.catch(() => {});
    // The stalled pairs never report an end: wait for the free pairs' results only.
    const free = PAIRS.filter((p) => !p.stall);
    const finals = await Promise.all(PAIRS.map((p, i) => (p.stall ? undefined : readers[i]!)));
    o.log?.(`R7: free senders done after ${Date.now() - t0} ms`);
    const counts: DeliveryCounts = { sent: 0, received: 0, lost: 0, duplicated: 0, reordered: 0 };
    const perFlow: Record<string, unknown> = {};
    for (const [i, p] of PAIRS.entries()) {
      if (p.stall) continue;
      const r = finals[i]!;
      for (const k of Object.keys(counts) as Array<keyof DeliveryCounts>) counts[k] += r[k];
      const ss = samples.get(p.name)!;
      const rate = (from: number, to: number) => {
        const inside = ss.filter((x) => x.t >= from && x.t <= to);
        if (inside.length < 2) return undefined;
        const a = inside[0]!;
        const b = inside.at(-1)!;
        return ((b.n - a.n) * 1000) / (b.t - a.t);
      };
      // Skip the first and last half-second: start-up and the end of the stream are not steady state.
      const before = rate(500, stallAtMs);
      const after = rate(stallAtMs + 500, o.durationMs - 500);
      let gap = 0;
      for (let k = 1; k < ss.length; k++) gap = Math.max(gap, ss[k]!.t - ss[k - 1]!.t);
      perFlow[p.name] = {
        ...r,
        rateBefore: before && Math.round(before),
        rateAfter: after && Math.round(after),
        ratio: before && after ? Math.round((after / before) * 100) / 100 : undefined,
        maxGapMs: gap,
      };
    }
    // The stalled sender's pair: what it sent before stopping is what its receiver took.
    const txS = (await fabric.stats('tx-txStall')) as HostStats;
    const rxS = (await fabric.stats('rx-txStall')) as HostStats;
    // The stalled receiver's pair: its sender sits blocked, at most a window ahead.
    const txR = (await fabric.stats('tx-rxStall')) as HostStats;
    const rxR = (await fabric.stats('rx-rxStall')) as HostStats;
    for (const l of Object.values(rxR.links))
      for (const ch of l.rx) stalledPending = Math.max(stalledPending, ch.pending);
    const ratios = free.map((p) => (perFlow[p.name] as { ratio?: number }).ratio ?? 0);
    const gaps = free.map((p) => (perFlow[p.name] as { maxGapMs: number }).maxGapMs);
    const minRateRatio = Math.min(...ratios);
    const maxGapMs = Math.max(...gaps);
    const stalledSender = { sent: txS.point.sent, received: rxS.point.received };
    const stalledReceiver = {
      sent: txR.point.sent,
      received: rxR.point.received,
      maxPending: stalledPending,
      unacknowledged: txR.point.sent - rxR.point.received,
    };
    // Ending the sender left blocked on the stalled receiver: reported, not judged (the fabric's terminate
    // of a point whose send is blocked waits for that send; issue 16's restart work is about the same wait).
    const te = Date.now();
    await fabric.terminate('tx-rxStall').catch(() => {});
    const blockedSenderTerminateMs = Date.now() - te;
    const ok =
      counts.lost === 0 &&
      counts.duplicated === 0 &&
      counts.reordered === 0 &&
      minRateRatio >= MIN_RATIO &&
      maxGapMs < MAX_GAP_MS &&
      stalledSender.sent === stalledSender.received &&
      stalledReceiver.maxPending <= MAXMSG &&
      stalledReceiver.received > 0;
    return {
      id: 'R7',
      ok,
      ...counts,
      ratePerSec: RATE,
      durationMs: o.durationMs,
      stallAtMs,
      minRateRatio,
      maxGapMs,
      flows: perFlow,
      stalledSender,
      stalledReceiver,
      maxmsg: MAXMSG,
      blockedSenderTerminateMs,
    };
  } finally {
    await fabric.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
