/**
 * DCM bench (issue 20): a generated graph of N rules with no-op methods,
 * evaluated from scratch by `amix dcm run` and by GNU make on the same
 * graph written as a Makefile (each target an empty recipe, `make -r -s`),
 * in the same run. Every rule i needs up to 3 rules among the next 40 (a
 * DAG), and MAIN needs every rule, so both tools visit all N.
 *
 * Rows (`op`):
 * - `first-run`: `make` (the baseline), `amix:dcm-cli` (the whole command:
 *   node start, parse, plan, evaluate, write the 0600 state file) and
 *   `amix:dcm-api` (`Dcm.run` on rules already loaded: the evaluation alone).
 * - `first-run-bind`: the same with the rules that have prerequisites bound
 *   through the Binding Service (DEFAULT: File, Data, Function, ... tried in
 *   order) instead of a NULL method.
 * - `up-to-date`: `amix dcm run` again over its state file (nothing runs).
 *
 * Figures: `opsPerSec` = rules evaluated per second, `p50Ms` = the run's
 * wall time (medians over the repetitions). Flags: `--count N` rules
 * (default 10000; `--quick` the same count, 1 repetition), `--reps N`
 * (default 3), `--json`. Without make on PATH the make row is skipped, and
 * the reason printed.
 *
 * @module
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Dcm } from '../lib/services/dcm/dcm.js';
import { parseBenchArgs, progress, report, summarise, type Figures, type Row } from './common.js';

const args = parseBenchArgs('dcm', {
  reps: 3,
  quickReps: 1,
  sizes: [1],
  count: 10_000,
  quickCount: 10_000,
  rtts: 1,
  quickRtts: 1,
});
const N = args.count;
const AMIX = fileURLToPath(new URL('../bin/amix.js', import.meta.url));

/** A small deterministic PRNG (mulberry32): the same graph every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = rng(20);
const prereqs: number[][] = [];
for (let i = 0; i < N; i++) {
  const k = Math.floor(rand() * 4);
  const set = new Set<number>();
  for (let j = 0; j < k && i + 1 < N; j++) set.add(i + 1 + Math.floor(rand() * Math.min(40, N - i - 1)));
  prereqs.push([...set].sort((a, b) => a - b));
}
const all = Array.from({ length: N }, (_, i) => `r${i}`).join(' ');
const dir = mkdtempSync(join(tmpdir(), 'amix-bench-dcm-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const rulesNull: string[] = [`MAIN: ${all}`, 'MAIN.method = NULL'];
const rulesBind: string[] = [`MAIN: ${all}`];
const makefile: string[] = [`MAIN: ${all} ;`];
for (let i = 0; i < N; i++) {
  const line = `r${i}: ${prereqs[i]!.map((p) => `r${p}`).join(' ')}`;
  rulesNull.push(line, `r${i}.method = NULL`);
  rulesBind.push(line);
  if (prereqs[i]!.length === 0) rulesBind.push(`r${i}.method = NULL`);
  makefile.push(`${line} ;`);
}
writeFileSync(join(dir, 'null.rules'), `${rulesNull.join('\n')}\n`);
writeFileSync(join(dir, 'bind.rules'), `${rulesBind.join('\n')}\n`);
writeFileSync(join(dir, 'Makefile'), `${makefile.join('\n')}\n`);
const evaluatedPerRun = N + 1;

let makePath: string | undefined;
try {
  makePath = execFileSync('sh', ['-c', 'command -v make'], { encoding: 'utf8' }).trim() || undefined;
} catch {
  makePath = undefined;
}
const makeVersion = makePath ? execFileSync(makePath, ['--version'], { encoding: 'utf8' }).split('\n')[0] : undefined;

function timed(fn: () => void): Figures {
  const t0 = performance.now();
  fn();
  const ms = performance.now() - t0;
  return { opsPerSec: evaluatedPerRun / (ms / 1000), p50Ms: ms };
}

function amixRun(rules: string, state: string): void {
  const r = spawnSync(process.execPath, [AMIX, 'dcm', 'run', join(dir, rules), '--json', '--state', state], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`amix dcm run failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { evaluated: string[] };
  if (out.evaluated.length !== 0 && out.evaluated.length !== evaluatedPerRun)
    throw new Error(`amix evaluated ${out.evaluated.length} rules, expected ${evaluatedPerRun}`);
}

const reps = {
  make: [] as Figures[],
  cli: [] as Figures[],
  api: [] as Figures[],
  cliBind: [] as Figures[],
  apiBind: [] as Figures[],
  upToDate: [] as Figures[],
};
for (let r = 0; r < args.reps; r++) {
  const frac = (k: number) => (r + k / 6) / args.reps;
  if (makePath) {
    reps.make.push(
      timed(() => {
        const m = spawnSync(makePath!, ['-r', '-s', '-f', join(dir, 'Makefile'), 'MAIN'], {
          cwd: dir,
          encoding: 'utf8',
        });
        if (m.status !== 0) throw new Error(`make failed: ${m.stderr}`);
      }),
    );
    progress(`rep ${r + 1}/${args.reps} make ${Math.round(reps.make.at(-1)!.p50Ms!)} ms`, frac(1));
  }
  const state = join(dir, `cli-${r}.state`);
  reps.cli.push(timed(() => amixRun('null.rules', state)));
  progress(`rep ${r + 1}/${args.reps} amix dcm run ${Math.round(reps.cli.at(-1)!.p50Ms!)} ms`, frac(2));
  reps.upToDate.push(timed(() => amixRun('null.rules', state)));
  reps.cliBind.push(timed(() => amixRun('bind.rules', join(dir, `bind-${r}.state`))));
  progress(`rep ${r + 1}/${args.reps} amix dcm run (binding) ${Math.round(reps.cliBind.at(-1)!.p50Ms!)} ms`, frac(4));
  for (const [file, into] of [
    ['null.rules', reps.api],
    ['bind.rules', reps.apiBind],
  ] as const) {
    const dcm = await Dcm.create({ stateFile: null });
    await dcm.loadFile(join(dir, file));
    const t0 = performance.now();
    const out = await dcm.run();
    const ms = performance.now() - t0;
    if (out.evaluated.length !== evaluatedPerRun) throw new Error(`API evaluated ${out.evaluated.length}`);
    into.push({ opsPerSec: evaluatedPerRun / (ms / 1000), p50Ms: ms });
  }
  progress(`rep ${r + 1}/${args.reps} API done`, frac(6));
}

const rows: Row[] = [];
if (makePath) rows.push(summarise({ system: 'make', op: 'first-run', points: N }, reps.make));
else process.stderr.write('bench dcm: make is not on PATH: the make baseline row is skipped\n');
rows.push(summarise({ system: 'amix:dcm-cli', op: 'first-run', points: N }, reps.cli));
rows.push(summarise({ system: 'amix:dcm-api', op: 'first-run', points: N }, reps.api));
if (makePath) rows.push(summarise({ system: 'make', op: 'first-run-bind', points: N }, reps.make));
rows.push(summarise({ system: 'amix:dcm-cli', op: 'first-run-bind', points: N }, reps.cliBind));
rows.push(summarise({ system: 'amix:dcm-api', op: 'first-run-bind', points: N }, reps.apiBind));
rows.push(summarise({ system: 'amix:dcm-cli', op: 'up-to-date', points: N }, reps.upToDate));
report(args, 'dcm', rows, 'make', {
  rules: N,
  edges: prereqs.reduce((s, p) => s + p.length, 0) + N,
  make: makeVersion ?? 'absent (row skipped)',
  label: `dcm rules=${N} reps=${args.reps}; make -r -s, empty recipes; amix NULL methods (first-run) or DEFAULT binding (first-run-bind)`,
});
// The ratio the issue asks for: amix's wall time over make's on the same graph (lower is better).
const base = rows.find((r) => r.system === 'make' && r.op === 'first-run');
if (base?.p50Ms) {
  const lines = rows
    .filter((r) => r.system !== 'make')
    .map((r) => `ratio ${r.system} ${r.op}: ${(r.p50Ms! / base.p50Ms!).toFixed(2)}x make's time`);
  (args.json ? process.stderr : process.stdout).write(`${lines.join('\n')}\n`);
}
