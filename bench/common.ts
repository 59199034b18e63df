/**
 * Shared harness for every bench/ script, in the shape of shared/BENCH.md:
 * flags (`--quick`, `--json`, `--reps N`, sizes), conditions, median/min/max
 * over repetitions, a human table with ratios to a named baseline, and one
 * JSON object on stdout with `--json` (progress goes to stderr).
 *
 * @module
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import hdr from 'hdr-histogram-js';

/** One measured figure set; fields a row does not measure are left out. */
export interface Figures {
  msgsPerSec?: number;
  rttP50Us?: number;
  rttP99Us?: number;
  opsPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
}

/** One row of the JSON output. */
export interface Row extends Figures {
  system: string;
  size?: number;
  op?: string;
  points?: number;
  min?: Figures;
  max?: Figures;
}

/** Parsed common flags. */
export interface BenchArgs {
  quick: boolean;
  json: boolean;
  reps: number;
  sizes: number[];
  /** `--sweep`: sizes are {@link SWEEP_SIZES}; scripts scale their counts down with {@link scaleForSize}. */
  sweep: boolean;
  /** Messages per throughput repetition. */
  count: number;
  /** Round trips per latency repetition. */
  rtts: number;
  /** Flags the script declared itself. */
  extra: Record<string, string | boolean | undefined>;
}

/**
 * Parse the common flags. Env fallbacks: AMIX_BENCH_REPS, AMIX_BENCH_SIZES,
 * AMIX_BENCH_COUNT, AMIX_BENCH_RTTS. `--help` prints usage and exits.
 */
export function parseBenchArgs(
  bench: string,
  defaults: {
    reps: number;
    quickReps: number;
    sizes: number[];
    count: number;
    quickCount: number;
    rtts: number;
    quickRtts: number;
  },
  extraOptions: Record<string, { type: 'string' | 'boolean' }> = {},
): BenchArgs {
  const values = parseFlags(
    {
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      reps: { type: 'string' },
      sizes: { type: 'string' },
      sweep: { type: 'boolean' },
      count: { type: 'string' },
      rtts: { type: 'string' },
      ...extraOptions,
    },
    (message) => badArgs(bench, message),
  );
  if (values.help) {
    process.stdout.write(
      `usage: node dist/bench/${bench}.js [--quick] [--json] [--reps N] [--sizes 64,4096 | --sweep] [--count N] [--rtts N]` +
        Object.entries(extraOptions)
          .map(([name, o]) => (o.type === 'boolean' ? ` [--${name}]` : ` [--${name} V]`))
          .join('') +
        '\n',
    );
    process.exit(0);
  }
  const quick = Boolean(values.quick);
  const num = (v: unknown, env: string, dflt: number) => {
    const raw = (v as string | undefined) ?? process.env[env];
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) {
      badArgs(bench, `${env.toLowerCase()} must be a positive number (got ${raw})`);
    }
    return Math.floor(n);
  };
  const sweep = Boolean(values.sweep);
  if (sweep && values.sizes !== undefined) {
    badArgs(bench, '--sweep and --sizes exclude each other');
  }
  const sizesRaw = (values.sizes as string | undefined) ?? process.env.AMIX_BENCH_SIZES;
  const sizes = sweep ? [...SWEEP_SIZES] : sizesRaw ? sizesRaw.split(',').map(Number) : defaults.sizes;
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) {
    badArgs(bench, '--sizes must be positive integers');
  }
  const extra: Record<string, string | boolean | undefined> = {};
  for (const k of Object.keys(extraOptions)) extra[k] = (values as Record<string, string | boolean | undefined>)[k];
  return {
    quick,
    json: Boolean(values.json),
    reps: num(values.reps, 'AMIX_BENCH_REPS', quick ? defaults.quickReps : defaults.reps),
    sizes,
    sweep,
    count: num(values.count, 'AMIX_BENCH_COUNT', quick ? defaults.quickCount : defaults.count),
    rtts: num(values.rtts, 'AMIX_BENCH_RTTS', quick ? defaults.quickRtts : defaults.rtts),
    extra,
  };
}

/** End bench `bench` on bad arguments: `msg` on stderr, exit code 2. Call it before the bench starts a process or server. */
export function badArgs(bench: string, msg: string): never {
  process.stderr.write(`bench ${bench}: ${msg}\n`);
  process.exit(2);
}

/**
 * The process's flags (no positionals). An unknown flag, a missing value, or a value that looks like a flag
 * (`--replaces -1`) goes to `bad` with parseArgs's own message, which says how to pass a value starting
 * with '-': `bad` exits (2, as for every other bad argument), so none of them ends in a stack trace.
 */
export function parseFlags(
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
  bad: (message: string) => never,
): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ options, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    return bad((err as Error).message);
  }
}

/** The sizes of `--sweep`: 64 B to 1 MiB, by fours. */
export const SWEEP_SIZES: readonly number[] = Object.freeze([64, 256, 1024, 4096, 16384, 65536, 262144, 1048576]);

/**
 * The rows a `--systems a,b` value picks out of `known`, in the order given
 * (all of `known` when the flag is absent). An unknown name ends the bench with
 * exit code 2 and the names it knows, before anything has been started.
 */
export function pickSystems<S extends string>(bench: string, value: unknown, known: readonly S[]): S[] {
  if (typeof value !== 'string') return [...known];
  const asked = value.split(',');
  const unknown = asked.filter((s) => !(known as readonly string[]).includes(s));
  if (unknown.length > 0) {
    badArgs(bench, `unknown --systems ${unknown.join(',')} (known: ${known.join(',')})`);
  }
  return asked as S[];
}

/**
 * A message or round-trip count scaled down for large messages, so a sweep
 * to 1 MiB moves a bounded number of bytes per row rather than `count`
 * messages of every size: `count` up to `fullUpTo` bytes, then in inverse
 * proportion to the size, never under `floor` (and never over `count`).
 */
export function scaleForSize(count: number, size: number, fullUpTo: number, floor: number): number {
  if (size <= fullUpTo) return count;
  return Math.min(count, Math.max(floor, Math.round((count * fullUpTo) / size)));
}

/** The conditions block of the JSON output. */
export function conditions(reps: number, more: Record<string, unknown> = {}): Record<string, unknown> {
  const c = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    repetitions: reps,
    ...more,
  };
}

/** Width of the progress bar in cells. */
const BAR_CELLS = 24;

/**
 * Progress to stderr. On a terminal: one line, rewritten in place, led by a
 * bar and a percentage when `fraction` (0..1, the share of the bench done)
 * is given. Otherwise (a pipe, a log file) one plain line per call, exactly
 * as before, so logs and the tests that read them stay as they are.
 */
export function progress(msg: string, fraction?: number): void {
  if (!process.stderr.isTTY) {
    process.stderr.write(`${msg}\n`);
    return;
  }
  const line = fraction === undefined ? msg : `${progressBar(fraction)} ${msg}`;
  // Cut to the terminal's width: a wrapped line would leave its first half behind at each \r.
  const cols = process.stderr.columns || 80;
  process.stderr.write(`\r\x1b[K${line.length >= cols ? line.slice(0, cols - 1) : line}`);
}

/** `[#########...............]  37%` for a fraction in 0..1 (clamped). */
export function progressBar(fraction: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * BAR_CELLS);
  return `[${'#'.repeat(full)}${'.'.repeat(BAR_CELLS - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

/** A latency recorder in microseconds (hdr-histogram-js). */
export function latencyHistogram(): { record(us: number): void; p50(): number; p99(): number; reset(): void } {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000_000,
    numberOfSignificantValueDigits: 3,
  });
  // Record in nanoseconds so sub-microsecond round trips keep their precision.
  return {
    record: (us: number) => h.recordValue(Math.max(1, Math.round(us * 1000))),
    p50: () => h.getValueAtPercentile(50) / 1000,
    p99: () => h.getValueAtPercentile(99) / 1000,
    reset: () => h.reset(),
  };
}

/** The median of `xs`. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Fold repetitions of one system/size into a row: median, with min and max objects. */
export function summarise(key: Omit<Row, keyof Figures | 'min' | 'max'>, reps: Figures[]): Row {
  const fields = [...new Set(reps.flatMap((r) => Object.keys(r)))] as Array<keyof Figures>;
  const row: Row = { ...key };
  const min: Figures = {};
  const max: Figures = {};
  for (const f of fields) {
    const xs = reps.map((r) => r[f]).filter((x): x is number => typeof x === 'number');
    if (xs.length === 0) continue;
    row[f] = round(median(xs));
    min[f] = round(Math.min(...xs));
    max[f] = round(Math.max(...xs));
  }
  if (reps.length > 1) {
    row.min = min;
    row.max = max;
  }
  return row;
}

function round(x: number): number {
  return x >= 100 ? Math.round(x) : Math.round(x * 100) / 100;
}

/**
 * Print the result: with `--json` one JSON object on stdout; otherwise the
 * conditions, a table, and each row's ratio to `baseline` (same size/op).
 */
export function report(
  args: BenchArgs,
  bench: string,
  rows: Row[],
  baseline: string,
  more: Record<string, unknown> = {},
): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const cond = conditions(args.reps, more);
  if (args.json) {
    process.stdout.write(JSON.stringify({ bench, conditions: cond, rows }, null, 2) + '\n');
    return;
  }
  const lines: string[] = [];
  lines.push(
    `bench ${bench}: ${Object.entries(cond)
      .map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`)
      .join(' ')}`,
  );
  // A run of chosen systems (`--systems`) may leave the baseline out: then there is no ratio column to explain.
  const ratios = rows.some((b) => b.system === baseline)
    ? `ratio = figure / ${baseline} at the same size (latency: lower is better)`
    : `no ratio column: ${baseline} was not among the systems run`;
  lines.push(`medians of ${args.reps} repetitions; ${ratios}`);
  const header = ['system', 'size/op', 'msgs/s', 'x', 'rtt p50 us', 'x', 'rtt p99 us', 'ops/s', 'p50 ms', 'p99 ms'];
  const table: string[][] = [header];
  for (const r of rows) {
    const base = rows.find((b) => b.system === baseline && b.size === r.size && b.op === r.op);
    const ratio = (f: keyof Figures) => (base?.[f] && r[f] !== undefined ? `${(r[f]! / base[f]!).toFixed(2)}` : '');
    table.push([
      r.system,
      String(r.size ?? r.op ?? ''),
      fmt(r.msgsPerSec),
      ratio('msgsPerSec'),
      fmt(r.rttP50Us),
      ratio('rttP50Us'),
      fmt(r.rttP99Us),
      fmt(r.opsPerSec),
      fmt(r.p50Ms),
      fmt(r.p99Ms),
    ]);
  }
  const used = header.map((_, i) => table.slice(1).some((row) => row[i] !== ''));
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table)
    lines.push(
      row
        .filter((_, i) => used[i])
        .map((c, i) => c.padStart(widths.filter((_, j) => used[j])[i]!))
        .join('  '),
    );
  process.stdout.write(lines.join('\n') + '\n');
}

function fmt(x: number | undefined): string {
  if (x === undefined) return '';
  return x >= 1000 ? Math.round(x).toLocaleString('en-US') : String(x);
}

/**
 * Under the table: the ratio of each `[numerator, denominator]` pair of
 * systems at each size, for every figure both rows carry (for example an
 * amix row over the raw mechanism under it). A ratio is no row of
 * shared/BENCH.md's shape, so with `--json` these lines go to stderr and the
 * JSON object stays as it is; otherwise they follow the table on stdout.
 */
export function reportPairs(args: BenchArgs, rows: Row[], pairs: Array<[string, string]>): void {
  const names: Array<[keyof Figures, string]> = [
    ['msgsPerSec', 'msgs/s'],
    ['rttP50Us', 'rtt p50'],
    ['rttP99Us', 'rtt p99'],
  ];
  const lines: string[] = [];
  for (const [num, den] of pairs) {
    for (const a of rows.filter((r) => r.system === num)) {
      const b = rows.find((r) => r.system === den && r.size === a.size && r.op === a.op);
      if (!b) continue;
      const parts = names
        .filter(([f]) => a[f] !== undefined && b[f])
        .map(([f, label]) => `${label} ${(a[f]! / b[f]!).toFixed(2)}`);
      if (parts.length)
        lines.push(`${num} / ${den} at ${a.size !== undefined ? `${a.size} B` : a.op}: ${parts.join(', ')}`);
    }
  }
  if (lines.length === 0) return;
  const text = `ratios (latency: lower is better)\n${lines.join('\n')}\n`;
  (args.json ? process.stderr : process.stdout).write(text);
}

/** Ports handed out by {@link freePort} in this process, never handed out twice. */
const handedOut = new Set<number>();

/** The low end of the kernel's ephemeral port range (Linux's file; 32768 elsewhere). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return low > 11000 ? low : 32768;
  } catch {
    return 32768;
  }
}

/**
 * A loopback TCP port free a moment ago, for a server started next (a daemon, a trunk point,
 * nats-server, a peer restarted on its old port). Taken at random from below the kernel's ephemeral
 * range rather than as the kernel's port-0 pick: the ephemeral range is where every outgoing
 * connection takes its local port, so a port picked there and released can be taken by a connection
 * before the server binds it. That happened under full-suite load (EADDRINUSE on a restart, a trunk
 * point that never came up).
 */
export async function freePort(): Promise<number> {
  const from = 10000;
  const span = ephemeralLow() - from;
  for (let tries = 0; tries < 500; tries++) {
    const port = from + Math.floor(Math.random() * span);
    if (handedOut.has(port)) continue;
    const srv = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) continue;
    srv.close();
    await once(srv, 'close');
    handedOut.add(port);
    return port;
  }
  throw new Error('freePort: no free loopback port below the ephemeral range after 500 tries');
}
