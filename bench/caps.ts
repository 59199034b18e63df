/**
 * Bench `caps` (seed 002 ¶104: "a module replaced without terminating the
 * process"): a three-stage pipeline, source → stage → sink, of thread points
 * (the stage alternately a thread and a process point), every link on
 * queueConditionProcess so that both scopes link alike. The source sends
 * 64 B messages numbered from 0 as fast as its link takes them.
 *
 * - `amix:bare`: the pipeline alone for `--seconds`, no CAPS operation,
 *   run before each CAPS run with a thread stage and after it with a process
 *   stage (the CAPS run's stages alternate the two; the mean of the two runs
 *   is the repetition's figure).
 * - `amix:caps-replace`: the same pipeline while CAPS replaces the stage
 *   `--replaces` times (default 20; thread, process, thread, ...; the next
 *   stage is LOADed ahead, the REPLACE starts it), `--gap-ms` apart, then
 *   INSERTs a thread stage between the stage and the sink and EXTRACTs it.
 *   The sink counts lost, duplicated and reordered numbers. A replace's
 *   pause is the longest gap between two consecutive messages at the sink
 *   that overlaps the REPLACE call; msgsPerSec counts only arrivals outside
 *   every CAPS call (each widened by 20 ms).
 *
 * Row: `{ system: 'amix:caps-replace', msgsPerSec, replaces, lost, duplicated,
 * reordered, pauseP50Ms, pauseP99Ms, insertPauseMs, extractPauseMs,
 * handedOverP50, ratioToBare, ratioAfterMs }` (ratioAfterMs: the same ratio by time since the
 * latest CAPS call ended, in bins from 20 ms on) and `{ system: 'amix:bare', msgsPerSec,
 * pauseP50Ms, pauseP99Ms, windowMs, windows }`, where the bare row's pauses are
 * the longest gap at the sink overlapping windows as long as the median
 * REPLACE call (`windowMs`), one every `--gap-ms` of the bare runs (no
 * REPLACE in them: the gaps a REPLACE that cost nothing would show on this
 * machine; `windows` of them).
 *
 * `node dist/bench/caps.js [--quick] [--json] [--reps N] [--replaces N] [--gap-ms N] [--seconds N] [--drain-ms N]`
 * (`--drain-ms`: REPLACE's `drainMs`; the row is then `amix:caps-replace-drain`. `--standby`: two
 * stages, a thread and a process, replace each other in turn, the old one kept running unlinked as a
 * warm standby (disposition `standby`); the row's name gains `-standby`. `--reuse`: the fabric keeps
 * an ended stage's host for the next stage of its scope (`reuseHosts`), so a new stage starts in a warm
 * host; the row's name gains `-reuse` (without `--start`: stages loaded ahead have hosts of their own). `--rate N`: the source
 * sends N messages per second instead of as fast as it can, which leaves the CPU slack)
 *
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Caps, Fabric } from '../lib/index.js';
import { badArgs, conditions, median, parseBenchArgs, progress } from './common.js';

const args = parseBenchArgs(
  'caps',
  { reps: 3, quickReps: 1, sizes: [64], count: 1, quickCount: 1, rtts: 1, quickRtts: 1 },
  {
    replaces: { type: 'string' },
    'gap-ms': { type: 'string' },
    seconds: { type: 'string' },
    'drain-ms': { type: 'string' },
    overlap: { type: 'boolean' },
    start: { type: 'boolean' },
    standby: { type: 'boolean' },
    reuse: { type: 'boolean' },
    rate: { type: 'string' },
  },
);
const num = (v: unknown, d: number) => (v === undefined ? d : Number(v));
const REPLACES = num(args.extra.replaces, 20);
const GAP_MS = num(args.extra['gap-ms'], args.quick ? 60 : 150);
/** REPLACE's drainMs: 0 hands the old stage's queue over at once; above 0 the old stage works it off first. */
const DRAIN_MS = num(args.extra['drain-ms'], 0);
/** REPLACE's overlap: the new stage starts at once while the old one works off its queue. */
const OVERLAP = args.extra.overlap === true;
/** LOAD's start: each next stage runs (unlinked) from its LOAD on, so REPLACE does not start it. */
const START = args.extra.start === true;
/** Two stages (a thread and a process) replaced by each other in turn, the old one kept as a warm standby. */
const STANDBY = args.extra.standby === true;
/** FabricOptions.reuseHosts: an ended stage's host (thread or process) runs the next stage of its scope. */
const REUSE = args.extra.reuse === true;
/** The source's pace in messages per second; 0 (default): as fast as its link takes them. */
const RATE = num(args.extra.rate, 0);
const BARE_S = num(args.extra.seconds, args.quick ? 1 : 3);
if (![REPLACES, GAP_MS, BARE_S].every((n) => Number.isFinite(n) && n > 0) || !(DRAIN_MS >= 0) || !(RATE >= 0)) {
  badArgs('caps', '--replaces, --gap-ms and --seconds must be positive numbers, --drain-ms and --rate >= 0');
}
const WIDEN_MS = 20;
const point = (name: string) => fileURLToPath(new URL(`./points/${name}.js`, import.meta.url));
const PRIM = { sendPrimitive: 'queueConditionProcess', receivePrimitive: 'queueConditionProcess' };
const abs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SinkStats {
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  start: number;
  buckets: Array<[number, number, number]>;
}

interface Window {
  start: number;
  end: number;
}

/** The longest arrival gap overlapping [w.start, w.end]. */
function pauseIn(s: SinkStats, w: Window): number {
  let worst = 0;
  for (const [, gap, end] of s.buckets) if (end - gap <= w.end && end >= w.start && gap > worst) worst = gap;
  return worst;
}

/** The 10 ms buckets that no window (widened by WIDEN_MS) touches: [start time, messages]. */
function outside(s: SinkStats, windows: Window[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  s.buckets.forEach(([count], i) => {
    const b0 = s.start + i * 10;
    if (!windows.some((w) => b0 + 10 >= w.start - WIDEN_MS && b0 <= w.end + WIDEN_MS)) out.push([b0, count]);
  });
  return out;
}

/** Messages per second over the buckets {@link outside} every window. */
function rateOutside(s: SinkStats, windows: Window[]): number {
  const b = outside(s, windows);
  return b.length > 0 ? (b.reduce((n, [, c]) => n + c, 0) * 1000) / (b.length * 10) : 0;
}

/** Bins of time since the end of the latest CAPS call, ms: where the rate outside the windows is lost. */
const AFTER_BINS = [20, 40, 70, 110] as const;

/**
 * Messages per second in the buckets {@link outside} every window, by how long after the latest
 * window's end the bucket starts (`AFTER_BINS`: [20, 40), [40, 70), [70, 110), [110, ...)). A pipeline
 * that is back to its own pace at once has the same rate in every bin; a stage still warming up
 * (JIT) or a link still filling shows as low first bins.
 */
function rateAfter(s: SinkStats, windows: Window[]): number[] {
  const n = AFTER_BINS.map(() => 0);
  const ms = AFTER_BINS.map(() => 0);
  const ends = windows.map((w) => w.end);
  for (const [b0, count] of outside(s, windows)) {
    const lastEnd = Math.max(...ends.filter((e) => e <= b0));
    if (lastEnd === -Infinity) continue; // before the first CAPS call: the pipeline's start
    let k = AFTER_BINS.length - 1;
    while (k > 0 && b0 - lastEnd < AFTER_BINS[k]!) k--;
    n[k]! += count;
    ms[k]! += 10;
  }
  // NaN: no bucket in the bin (a short --gap-ms); the row leaves it out.
  return n.map((c, k) => (ms[k]! > 0 ? (c * 1000) / ms[k]! : NaN));
}

async function pipeline(fabric: Fabric, scope: 'thread' | 'process' = 'thread') {
  fabric.register({ name: 'src', location: point('capsSource'), ...PRIM });
  fabric.register({ name: 'sink', location: point('capsSink'), ...PRIM });
  const caps = new Caps(fabric);
  caps.comprims(PRIM);
  await caps.load({ name: 'st0', location: point('capsStage'), scope });
  await caps.execute('st0', { upstream: ['src'], downstream: ['sink'] });
  const src = (op: string) => fabric.ends.service<{ sent: number }>('src', 'src', { op, rate: RATE });
  const sink = () => fabric.ends.service<SinkStats>('sink', 'sink', { op: 'stats' }, 30_000);
  return { caps, src, sink };
}

/** Wait until the sink has everything the source sent. */
async function drained(sink: () => Promise<SinkStats>, sent: number): Promise<SinkStats> {
  for (;;) {
    const s = await sink();
    if (s.received >= sent) return s;
    await sleep(20);
  }
}

async function withFabric<T>(fn: (fabric: Fabric) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-bench-caps-'));
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: [], ...(REUSE ? { reuseHosts: true } : {}) });
  try {
    return await fn(fabric);
  } finally {
    await fabric.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The bare pipeline's own pauses, the yardstick for a REPLACE's: what
 * {@link pauseIn} gives for windows as long as a REPLACE call (`windowMs`,
 * the median call of the CAPS runs), one every GAP_MS through the run (the
 * first and last GAP_MS left out: the pipeline starts and stops there). A
 * REPLACE that cost nothing would show these.
 */
function barePauses(s: SinkStats, windowMs: number): number[] {
  const out: number[] = [];
  const end = s.start + s.buckets.length * 10 - GAP_MS;
  for (let t = s.start + GAP_MS; t + windowMs <= end; t += GAP_MS)
    out.push(pauseIn(s, { start: t, end: t + windowMs }));
  return out;
}

async function bare(scope: 'thread' | 'process'): Promise<{ rate: number; sink: SinkStats }> {
  return withFabric(async (fabric) => {
    const { src, sink } = await pipeline(fabric, scope);
    await src('start');
    await sleep(BARE_S * 1000);
    const { sent } = await src('stop');
    const s = await drained(sink, sent);
    return { rate: rateOutside(s, []), sink: s };
  });
}

interface CapsRun {
  msgsPerSec: number;
  lost: number;
  duplicated: number;
  reordered: number;
  pauses: number[];
  /** How long each REPLACE call took, ms. */
  windowMs: number[];
  insertPauseMs: number;
  extractPauseMs: number;
  handed: number[];
  after: number[];
}

async function withCaps(frac: number): Promise<CapsRun> {
  return withFabric(async (fabric) => {
    const { caps, src, sink } = await pipeline(fabric);
    for (let i = 1; i <= (STANDBY ? 1 : REPLACES); i++)
      await caps.load({
        name: `st${i}`,
        location: point('capsStage'),
        scope: i % 2 === 1 ? 'process' : 'thread',
        ...(START ? { start: true } : {}),
      });
    await caps.load({ name: 'ins', location: point('capsStage') });
    await caps.execute('ins');
    const windows: Window[] = [];
    const handed: number[] = [];
    await src('start');
    await sleep(GAP_MS);
    for (let i = 1; i <= REPLACES; i++) {
      const w = { start: abs(), end: 0 };
      const [from, to] = STANDBY ? [`st${(i - 1) % 2}`, `st${i % 2}`] : [`st${i - 1}`, `st${i}`];
      const r = await caps.replace(from, to, {
        ...(OVERLAP ? { overlap: true } : { drainMs: DRAIN_MS }),
        ...(STANDBY ? { disposition: 'standby' as const } : {}),
      });
      w.end = abs();
      windows.push(w);
      handed.push(r.handedOver);
      progress(`caps: replace ${i}/${REPLACES} (${r.handedOver} handed over)`, frac + i / (REPLACES + 3) / args.reps);
      await sleep(GAP_MS);
    }
    const last = STANDBY ? `st${REPLACES % 2}` : `st${REPLACES}`;
    const wi = { start: abs(), end: 0 };
    await caps.insert('ins', { from: last, to: 'sink' });
    wi.end = abs();
    await sleep(GAP_MS);
    const we = { start: abs(), end: 0 };
    await caps.extract('ins', { from: last, to: 'sink', disposition: 'standby' });
    we.end = abs();
    await sleep(GAP_MS);
    const { sent } = await src('stop');
    const s = await drained(sink, sent);
    caps.close();
    return {
      msgsPerSec: rateOutside(s, [...windows, wi, we]),
      after: rateAfter(s, [...windows, wi, we]),
      lost: s.lost,
      duplicated: s.duplicated,
      reordered: s.reordered,
      pauses: windows.map((w) => pauseIn(s, w)),
      windowMs: windows.map((w) => w.end - w.start),
      insertPauseMs: pauseIn(s, wi),
      extractPauseMs: pauseIn(s, we),
      handed,
    };
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
}
const r2 = (x: number) => Math.round(x * 100) / 100;

const bares: number[] = [];
const bareSinks: SinkStats[] = [];
const runs: CapsRun[] = [];
for (let r = 0; r < args.reps; r++) {
  // The bare pipeline before and after each CAPS run: on a shared machine the load moves, and the two bracket it.
  progress(`caps: bare pipeline, rep ${r + 1}/${args.reps}`, r / args.reps);
  // A thread stage before, a process stage after: the CAPS run's stages alternate the two, half the time each.
  const before = await bare('thread');
  runs.push(await withCaps(r / args.reps));
  const after = await bare('process');
  bares.push((before.rate + after.rate) / 2);
  bareSinks.push(before.sink, after.sink);
}
// The yardstick's windows are as long as the median REPLACE call.
const windowMs = median(runs.flatMap((x) => x.windowMs));
const barePause = bareSinks.flatMap((s) => barePauses(s, windowMs));
if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
const bareRate = Math.round(median(bares));
const pauses = runs.flatMap((x) => x.pauses);
const capsRow = {
  system:
    (OVERLAP ? 'amix:caps-replace-overlap' : DRAIN_MS > 0 ? 'amix:caps-replace-drain' : 'amix:caps-replace') +
    (STANDBY ? '-standby' : '') +
    (REUSE ? '-reuse' : ''),
  size: 64,
  msgsPerSec: Math.round(median(runs.map((x) => x.msgsPerSec))),
  replaces: REPLACES,
  lost: runs.reduce((a, x) => a + x.lost, 0),
  duplicated: runs.reduce((a, x) => a + x.duplicated, 0),
  reordered: runs.reduce((a, x) => a + x.reordered, 0),
  pauseP50Ms: r2(pct(pauses, 50)),
  pauseP99Ms: r2(pct(pauses, 99)),
  insertPauseMs: r2(median(runs.map((x) => x.insertPauseMs))),
  extractPauseMs: r2(median(runs.map((x) => x.extractPauseMs))),
  handedOverP50: pct(
    runs.flatMap((x) => x.handed),
    50,
  ),
  ratioToBare: r2(median(runs.map((x) => x.msgsPerSec)) / bareRate),
  // Rate over amix:bare by time since the latest CAPS call ended ([20, 40) ms, [40, 70), [70, 110), 110 on).
  ratioAfterMs: Object.fromEntries(
    AFTER_BINS.flatMap((from, k) => {
      const v = median(runs.map((x) => x.after[k]!).filter((x) => !Number.isNaN(x)));
      const label = k + 1 < AFTER_BINS.length ? `${from}-${AFTER_BINS[k + 1]}` : `${from}+`;
      return Number.isFinite(v) ? [[label, r2(v / bareRate)]] : [];
    }),
  ),
};
const bareRow = {
  system: 'amix:bare',
  size: 64,
  msgsPerSec: bareRate,
  // Not a REPLACE's pause: the longest gap in windows as long as a REPLACE call, one every gap-ms, what the
  // machine gives the pipeline by itself.
  pauseP50Ms: r2(pct(barePause, 50)),
  pauseP99Ms: r2(pct(barePause, 99)),
  windowMs: r2(windowMs),
  windows: barePause.length,
};
const rows = [bareRow, capsRow];
const cond = conditions(args.reps, {
  size: 64,
  replaces: REPLACES,
  gapMs: GAP_MS,
  bareSeconds: BARE_S,
  rate: RATE > 0 ? RATE : 'max',
});
if (args.json) process.stdout.write(JSON.stringify({ bench: 'caps', conditions: cond, rows }, null, 2) + '\n');
else {
  const lines = [
    `bench caps: ${Object.entries(cond)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    `medians of ${args.reps} repetitions (lost/duplicated/reordered: sums; pauses: over all ${pauses.length} replaces; bare pauses: ${bareRow.windows} windows of ${bareRow.windowMs} ms, as long as the median REPLACE); x = msgs/s over amix:bare`,
    ['system', 'msgs/s', 'x', 'lost', 'dup', 'reord', 'pause p50', 'pause p99', 'insert', 'extract']
      .map((h) => h.padStart(11))
      .join(''),
    [
      'amix:bare',
      bareRate.toLocaleString('en-US'),
      '1.00',
      '',
      '',
      '',
      `${bareRow.pauseP50Ms} ms`,
      `${bareRow.pauseP99Ms} ms`,
    ]
      .map((c) => String(c).padStart(11))
      .join(''),
    [
      'caps',
      capsRow.msgsPerSec.toLocaleString('en-US'),
      capsRow.ratioToBare.toFixed(2),
      capsRow.lost,
      capsRow.duplicated,
      capsRow.reordered,
      `${capsRow.pauseP50Ms} ms`,
      `${capsRow.pauseP99Ms} ms`,
      `${capsRow.insertPauseMs} ms`,
      `${capsRow.extractPauseMs} ms`,
    ]
      .map((c) => String(c).padStart(11))
      .join(''),
  ];
  lines.push(
    `caps x bare by ms since the latest CAPS call: ${Object.entries(capsRow.ratioAfterMs)
      .map(([k, v]) => `${k}: ${v.toFixed(2)}`)
      .join(', ')}`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}
process.exit(0);
