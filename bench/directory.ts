/**
 * Directory bench (issue 8): register N points in batches into a file-backed
 * directory (WAL, synchronous=FULL), then run queries of each kind and
 * compare each SQLite query with a linear scan of the same data in memory
 * (`memory-scan`: the same parsed query evaluated point by point in
 * identifier order, stopping when the page is full, as SQLite may).
 *
 * Each point has 6.6 attributes on average (zone: 10000 values, rack: 1000,
 * region: 8, port, tier, gpu; backup on half, a private secret on a tenth).
 * `query-eq` matches 10 points, `query-eq-100` 100; pages hold 100 points.
 *
 * Flags: `--count N` points (default 100000, `--quick` 10000), `--rtts N`
 * queries per kind per repetition (default 200; memory-scan runs a tenth,
 * at least 20), `--reps N` (default 3), `--batch N` registrations per
 * transaction (default 1000), `--json`.
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  Directory,
  evaluateQuery,
  parseQuery,
  type PointRegistration,
  type QuerySubject,
} from '../lib/directory/index.js';
import { badArgs, parseBenchArgs, progress, report, summarise, type Figures, type Row } from './common.js';

const args = parseBenchArgs(
  'directory',
  { reps: 3, quickReps: 3, sizes: [1], count: 100_000, quickCount: 10_000, rtts: 200, quickRtts: 100 },
  { batch: { type: 'string' } },
);
const points = args.count;
const batchSize = Number(args.extra.batch ?? 1000);
if (!Number.isInteger(batchSize) || batchSize < 1) {
  badArgs('directory', '--batch must be a positive integer');
}
const queriesPerRep = args.rtts;
const PAGE = 100;

const REGIONS = [
  'eu-west-1',
  'eu-west-2',
  'eu-north-1',
  'us-east-1',
  'us-west-2',
  'ap-south-1',
  'ap-east-1',
  'sa-east-1',
];
const ROLES = ['sender', 'receiver', 'both'] as const;

function registration(i: number): PointRegistration {
  const attributes: Record<
    string,
    PointRegistration['attributes'] extends infer A ? (A extends Record<string, infer V> ? V : never) : never
  > = {
    zone: `z-${i % 10_000}`,
    rack: `k-${i % 1000}`,
    region: REGIONS[i % REGIONS.length]!,
    port: 1024 + ((i * 7919) % 60_000),
    tier: i % 10,
    gpu: i % 3 === 0,
  };
  if (i % 2 === 0) attributes.backup = `svc-${i + 1}`;
  if (i % 10 === 0) attributes.secret = { value: `s-${i}`, visibility: 'private' };
  return {
    name: `svc-${i}`,
    owner: `owner-${i % 50}`,
    record: { role: ROLES[i % 3]!, primitives: { send: 'queueConditionProcess', receive: 'queueConditionProcess' } },
    attributes,
  };
}

/** The query kinds; each returns a fresh expression per call so values vary. */
const QUERIES: Array<{ op: string; make: (k: number) => string }> = [
  { op: 'query-eq', make: (k) => `zone = "z-${(k * 7) % 10_000}"` },
  { op: 'query-eq-100', make: (k) => `rack = "k-${(k * 7) % 1000}"` },
  { op: 'query-wildcard', make: (k) => `region = "${REGIONS[k % REGIONS.length]!.slice(0, 4)}*"` },
  {
    op: 'query-range',
    make: (k) => {
      const lo = 1024 + ((k * 104729) % 59_000);
      return `port >= ${lo} and port < ${lo + 600}`;
    },
  },
  {
    op: 'query-bool',
    make: (k) => `role = "receiver" and (region = "eu*" or not exists backup) and tier < ${1 + (k % 9)}`,
  },
  { op: 'query-exists', make: (k) => (k % 2 ? 'exists backup' : 'not exists backup') },
  { op: 'query-not', make: (k) => `not rack = "k-${k % 1000}"` },
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function measure(n: number, run: (k: number) => unknown): Figures {
  const times: number[] = [];
  const start = performance.now();
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    run(k);
    times.push(performance.now() - t0);
  }
  const total = performance.now() - start;
  times.sort((a, b) => a - b);
  return { opsPerSec: (n / total) * 1000, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

const loadAtStart = loadavg()[0]!.toFixed(2);
const workDir = mkdtempSync(join(tmpdir(), 'amix-bench-directory-'));
process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));

const regs = Array.from({ length: points }, (_, i) => registration(i));
const registerReps: Figures[] = [];
/** Points registered per second of this process's CPU time: what an idle core would give. */
const cpuRates: number[] = [];
let dir: Directory | undefined;
for (let r = 0; r < args.reps; r++) {
  dir?.close();
  const stateDir = join(workDir, `rep-${r}`);
  dir = new Directory({ stateDir });
  const batchTimes: number[] = [];
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < points; i += batchSize) {
    const t0 = performance.now();
    dir.registerPoints(regs.slice(i, i + batchSize));
    batchTimes.push(performance.now() - t0);
  }
  const total = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  cpuRates.push((points / ((cpu.user + cpu.system) / 1000)) * 1000);
  batchTimes.sort((a, b) => a - b);
  registerReps.push({
    opsPerSec: (points / total) * 1000,
    p50Ms: percentile(batchTimes, 50),
    p99Ms: percentile(batchTimes, 99),
  });
  progress(`register rep ${r + 1}/${args.reps}: ${Math.round((points / total) * 1000)} points/s`);
}
const directory = dir!;

// Unbatched registrations, one durable commit each, on the full directory.
const singles = Math.min(100, Math.max(50, Math.floor(points / 1000)));
const singleReps: Figures[] = [];
for (let r = 0; r < args.reps; r++) {
  singleReps.push(
    measure(singles, (k) =>
      directory.registerPoint({ ...registration(points + r * singles + k), name: `single-${r}-${k}` }),
    ),
  );
}
progress(`register-single: ${Math.round(singleReps.at(-1)!.opsPerSec!)} points/s`);

// The memory-scan baseline holds what an anonymous asker sees, in identifier order.
const scan: QuerySubject[] = loadAll(directory);
function loadAll(d: Directory): QuerySubject[] {
  const out: QuerySubject[] = [];
  for (let offset = 0; ; offset += 100_000) {
    const page = d.queryLocal('exists name', { limit: 100_000, offset });
    for (const p of page.points) {
      out.push({
        id: p.id,
        name: p.name,
        owner: p.owner,
        role: p.record.role,
        attributes: Object.fromEntries(Object.entries(p.attributes).map(([k, a]) => [k, a.value])),
      });
    }
    if (!page.more) return out;
  }
}

function memoryQuery(expr: string): QuerySubject[] {
  const ast = parseQuery(expr);
  const page: QuerySubject[] = [];
  for (const s of scan) {
    if (evaluateQuery(ast, s)) {
      page.push(s);
      if (page.length > PAGE) break;
    }
  }
  return page;
}

// Both systems must agree before their speed means anything.
for (const q of QUERIES) {
  const expr = q.make(7);
  const a = directory.queryLocal(expr, { limit: PAGE }).points.map((p) => p.id);
  const b = memoryQuery(expr)
    .slice(0, PAGE)
    .map((s) => s.id);
  if (a.join() !== b.join()) {
    process.stderr.write(`bench directory: ${q.op} results differ between SQLite and memory-scan\n`);
    process.exit(1);
  }
}

const queryReps = new Map<string, { sqlite: Figures[]; memory: Figures[] }>();
for (let r = 0; r < args.reps; r++) {
  for (const q of QUERIES) {
    const entry = queryReps.get(q.op) ?? { sqlite: [], memory: [] };
    queryReps.set(q.op, entry);
    entry.sqlite.push(
      measure(queriesPerRep, (k) => directory.queryLocal(q.make(k + r * queriesPerRep), { limit: PAGE })),
    );
    entry.memory.push(
      measure(Math.max(20, Math.floor(queriesPerRep / 10)), (k) => memoryQuery(q.make(k + r * queriesPerRep))),
    );
    progress(`rep ${r + 1}/${args.reps} ${q.op}`);
  }
}
directory.close();

const rows: Row[] = [
  summarise({ system: 'amix:directory', op: `register-batch${batchSize}`, points }, registerReps),
  summarise({ system: 'amix:directory', op: 'register-single', points }, singleReps),
];
for (const [op, { sqlite, memory }] of queryReps) {
  rows.push(summarise({ system: 'memory-scan', op, points }, memory));
  rows.push(summarise({ system: 'amix:directory', op, points }, sqlite));
}
report(args, 'directory', rows, 'memory-scan', {
  points,
  batch: batchSize,
  queriesPerRep,
  page: PAGE,
  synchronous: 'full',
  journal: 'wal',
  loadAvg1m: `${loadAtStart} at start, ${loadavg()[0]!.toFixed(2)} at end`,
  registerPointsPerCpuSecond: Math.round(cpuRates.sort((a, b) => a - b)[cpuRates.length >> 1]!),
  attributesPerPoint: 6.6,
  label: `directory points=${points}${args.quick ? ' (quick: fewer points)' : ''} batch=${batchSize} queries=${queriesPerRep} page=${PAGE}`,
});
