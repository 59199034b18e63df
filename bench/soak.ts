/**
 * `npm run soak`: the reliability scenarios of issue 16, each in a child
 * process of its own (so its RSS figures are its own and a hung scenario is
 * killed at its time bound), on loopback and temp dirs, one after another.
 * Prints a table, or with `--json` one object `{ conditions, scenarios: [...] }`
 * on stdout (progress on stderr). Not part of `npm test`.
 *
 * `node dist/bench/soak.js [--quick] [--json] [--only ID[,ID]] [-h]`
 *
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseFlags } from './common.js';
import { RssSampler, percentile, type DeliveryCounts, type ScenarioRow } from './soak/common.js';

/** One scenario the runner knows: its id, what it does, its time bound, and how to run it (in the child). */
interface Scenario {
  id: string;
  what: string;
  /** Hard bound on the child's wall time, quick and full (ms): past it the child's process group is killed. */
  boundMs: { quick: number; full: number };
  run(quick: boolean, log: (m: string) => void): Promise<ScenarioRow>;
}

/**
 * R1 full count. The issue's figure is 10,000,000 per end; on 2 shared cores
 * the slow receiver takes 150,000-220,000 msg/s, so 10 M per end takes
 * 45-70 s: the full run sends the issue's 10,000,000 per end, bounded at
 * 120 s of sending each (a loaded machine sends fewer; the row says how
 * many). `AMIX_SOAK_R1_COUNT` changes the count.
 */
const R1_FULL = 10_000_000;
const R1_QUICK = 500_000;

/** R7 (bench/soak/stall.js) where its four pairs run: one fabric here, or two amixd over a conduit or direct links. */
function r7(where: 'fabric' | 'daemon' | 'direct', id: string, what: string): Scenario {
  return {
    id,
    what,
    boundMs: where === 'fabric' ? { quick: 40_000, full: 120_000 } : { quick: 60_000, full: 150_000 },
    run: async (quick, log) => {
      const { runStall } = await import('./soak/stall.js');
      return runStall({ where, durationMs: quick ? 6_000 : 60_000, log });
    },
  };
}

function r1(end: 'thread' | 'process' | 'caller'): Scenario {
  return {
    id: `R1-${end}`,
    what: `backpressure, ${end} receiving end: fast sender, slow receiver, maxmsg 1000`,
    boundMs: { quick: 30_000, full: 180_000 },
    run: async (quick, log) => {
      const { runBackpressure } = await import('./soak/backpressure.js');
      const count = Number(process.env.AMIX_SOAK_R1_COUNT) || (quick ? R1_QUICK : R1_FULL);
      return runBackpressure({ end, count, durationMs: quick ? 4_000 : 120_000, log });
    },
  };
}

/** What the delivery modules (R2 `restart.js`, R6 `peerCrash.js`) return. */
interface DeliveryResult extends DeliveryCounts {
  recoveryMs: number[];
  [k: string]: unknown;
}

/**
 * A row from a delivery module written elsewhere, imported by name so the
 * runner works before it exists: a missing module is a skipped row. `ok`
 * needs 0 lost, 0 reordered, every recovery under `recoveryBoundMs` when one
 * is given, the module's own `ok` when it reports one, and no duplicate the
 * receiving side did not flag: at-least-once allows a duplicate only when
 * it is counted (`redelivered` for R2, `flagged` for R6); with no such
 * count, duplicates must be 0.
 */
async function delivery(
  id: string,
  module: string,
  exportName: string,
  args: Record<string, unknown>,
  recoveryBoundMs: number | undefined,
): Promise<ScenarioRow> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(module)) as Record<string, unknown>;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(module.replace(/^\.\//, '')))
      return { id, ok: false, skipped: `bench/${module.replace(/^\.\//, '')} not built yet` };
    throw err;
  }
  const fn = mod[exportName];
  if (typeof fn !== 'function') return { id, ok: false, error: `bench/${module} does not export ${exportName}` };
  const r = (await (fn as (a: unknown) => Promise<DeliveryResult>)(args)) as DeliveryResult;
  const rec = Array.isArray(r.recoveryMs) ? r.recoveryMs : [];
  const maxRec = rec.length ? Math.max(...rec) : undefined;
  const flaggedCount =
    typeof r.redelivered === 'number' ? r.redelivered : typeof r.flagged === 'number' ? r.flagged : 0;
  const ok =
    r.lost === 0 &&
    r.reordered === 0 &&
    r.duplicated <= flaggedCount &&
    (recoveryBoundMs === undefined || maxRec === undefined || maxRec < recoveryBoundMs) &&
    (r.ok === undefined || r.ok === true);
  const { recoveryMs: _drop, ...rest } = r;
  const { log: _log, ...shown } = args;
  return {
    ...shown,
    ...rest,
    id,
    ok,
    recoveries: rec.length,
    recoveryP50Ms: percentile(rec, 50),
    recoveryP99Ms: percentile(rec, 99),
    recoveryMaxMs: maxRec,
    ...(recoveryBoundMs !== undefined ? { recoveryBoundMs } : {}),
  };
}

const SCENARIOS: Scenario[] = [
  r1('thread'),
  r1('process'),
  r1('caller'),
  {
    id: 'R2',
    what: 'kill -9 of a restartable process point N times under traffic (bench/soak/restart.js)',
    boundMs: { quick: 60_000, full: 240_000 },
    // Saturated (ratePerSec 0: as fast as the link takes them), as "under load" in the issue; kills 2 s apart.
    run: (quick) =>
      delivery(
        'R2',
        './soak/restart.js',
        'runRestartScenario',
        quick
          ? { kills: 5, ratePerSec: 0, durationMs: 11_000, scope: 'process' }
          : { kills: 60, ratePerSec: 0, durationMs: 121_000, scope: 'process' },
        1000,
      ),
  },
  {
    id: 'R4',
    what: 'kill -9 of amixd during registrations: acknowledged ⊆ present after restart',
    boundMs: { quick: 60_000, full: 180_000 },
    run: async (quick, log) => {
      const { runRegistrationCrash } = await import('./soak/registrations.js');
      return runRegistrationCrash({ registrations: quick ? 1000 : 10_000, log });
    },
  },
  {
    id: 'R6',
    what: 'kill -9 of a peered amixd under a stream (bench/soak/peerCrash.js)',
    boundMs: { quick: 90_000, full: 240_000 },
    // Saturated (no ratePerSec), as in the issue's 2,048-per-crash figure.
    run: (quick, log) =>
      delivery(
        'R6',
        './soak/peerCrash.js',
        'runPeerCrashScenario',
        quick ? { kills: 3, durationMs: 12_000, log } : { kills: 10, durationMs: 80_000, log },
        undefined,
      ),
  },
  r7('fabric', 'R7', 'a stalled receiver and a stalled sender: the other flows keep their rate'),
  r7('daemon', 'R7-daemon', 'the same four pairs from amixd A to amixd B over one peering conduit'),
  r7(
    'direct',
    'R7-direct',
    'the same four pairs from amixd A to amixd B over direct links (no daemon on the data path)',
  ),
];

const USAGE = `usage: npm run soak -- [--quick] [--json] [--only ID[,ID...]] [-h]

Runs the reliability scenarios one after another, each in a child process
with a hard time bound, on loopback and temp dirs, and prints a table.

  --quick      each scenario for a few seconds (R1 ${R1_QUICK} messages per end, R4 1000
               registrations, R2 5 kills, R6 3 kills, R7 6 s); full: R1 ${R1_FULL} per end, R2 60 kills,
               R4 10,000 registrations, R6 10 kills, R7 60 s, under 15 min in all
  --json       one JSON object on stdout: { "conditions": {...}, "scenarios": [ { "id", "ok",
               "sent", "received", "lost", "duplicated", "reordered", ..., "memory" } ] }
  --only IDs   run only these (comma-separated)
  -h, --help   this text

Scenarios:
${SCENARIOS.map((s) => `  ${s.id.padEnd(11)}${s.what}`).join('\n')}

R1 sends ${R1_FULL.toLocaleString('en-US')} messages per end in a full run (env AMIX_SOAK_R1_COUNT to change).
AMIX_SOAK_DEBUG=1 makes R7, R7-daemon and R7-direct log every end's sent/taken counters each second.
Every row carries "memory": the RSS (MiB) of each process the scenario ran, start/max/end.
With npm, use "npm run -s soak -- --json" so npm's own banner stays off stdout.
Exit status: 0 when every scenario is ok, 3 when none failed but some were skipped
(a module not built yet), 1 otherwise, 2 on bad usage.
`;

// ---------------------------------------------------------------------------
// The child: runs one scenario, reports its row over IPC.

async function child(id: string, quick: boolean): Promise<void> {
  const s = SCENARIOS.find((x) => x.id === id)!;
  const log = (m: string) => process.stderr.write(`  ${m}\n`);
  let row: ScenarioRow;
  const t0 = Date.now();
  try {
    row = await s.run(quick, log);
  } catch (err) {
    row = { id, ok: false, error: (err as Error).stack ?? String(err) };
  }
  row.ms = Date.now() - t0;
  process.send!(row, () => process.exit(0));
}

// ---------------------------------------------------------------------------
// The parent.

function runChild(s: Scenario, quick: boolean): Promise<ScenarioRow> {
  const bound = quick ? s.boundMs.quick : s.boundMs.full;
  return new Promise((resolve) => {
    // Its own process group, so whatever the scenario started can be ended with it by the group's id.
    const c: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child', s.id, ...(quick ? ['--quick'] : [])], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      detached: true,
    });
    current = c;
    // A scenario's stdout (point hosts inherit it) must not mix into --json output.
    c.stdout!.pipe(process.stderr);
    const rss = new RssSampler(c.pid!);
    let row: ScenarioRow | undefined;
    c.on('message', (m: ScenarioRow) => {
      row = m;
    });
    const timer = setTimeout(() => {
      row ??= { id: s.id, ok: false, error: `timed out after ${bound} ms` };
      killGroup(c);
    }, bound);
    c.on('exit', (code, signal) => {
      clearTimeout(timer);
      rss.sample();
      killGroup(c); // leftovers the scenario did not end (its own teardown failing) go with it
      current = undefined;
      const r = row ?? {
        id: s.id,
        ok: false,
        error: `the scenario's process exited (${signal ?? code}) without a result`,
      };
      r.memory = rss.stop();
      resolve(r);
    });
  });
}

let current: ChildProcess | undefined;

function killGroup(c: ChildProcess): void {
  try {
    process.kill(-c.pid!, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

function table(rows: ScenarioRow[]): string {
  const header = ['scenario', 'ok', 'sent', 'received', 'lost', 'dup', 'reord', 'details', 'secs', 'max RSS MiB'];
  const lines: string[][] = [header];
  for (const r of rows) {
    const n = (x: unknown) => (typeof x === 'number' ? x.toLocaleString('en-US') : '');
    let details = '';
    if (r.skipped) details = `skipped: ${r.skipped}`;
    else if (r.error) details = `error: ${String(r.error).split('\n')[0]}`;
    else if (r.id.startsWith('R1')) details = `maxPending ${r.maxPending}/${r.maxmsg}, ${n(r.msgsPerSec)} msg/s`;
    else if (r.id === 'R4') details = `acked ${n(r.acknowledged)}, present ${n(r.present)}, missing ${n(r.missing)}`;
    else if (r.id === 'R2' || r.id === 'R6')
      details = `${r.recoveries} kills, recovery p50/p99/max ${r.recoveryP50Ms}/${r.recoveryP99Ms}/${r.recoveryMaxMs} ms`;
    else if (r.id.startsWith('R7'))
      details = `others' rate after/before min ${r.minRateRatio}, longest gap ${r.maxGapMs} ms`;
    const maxRss = r.memory?.length ? Math.max(...r.memory.map((m) => m.maxMb)) : undefined;
    lines.push([
      r.id,
      r.ok ? 'ok' : r.skipped ? 'skip' : 'FAIL',
      n(r.sent),
      n(r.received),
      n(r.lost),
      n(r.duplicated),
      n(r.reordered),
      details,
      r.ms !== undefined ? (r.ms / 1000).toFixed(1) : '',
      maxRss !== undefined ? String(maxRss) : '',
    ]);
  }
  const w = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines
    .map((l) => l.map((c, i) => (i === 0 || i === 7 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '))
    .join('\n');
}

async function main(): Promise<void> {
  const values = parseFlags(
    {
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      child: { type: 'string' },
    },
    (message): never => {
      process.stderr.write(`soak: ${message}\n${USAGE}`);
      process.exit(2);
    },
  );
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const quick = Boolean(values.quick);
  if (typeof values.child === 'string') return child(values.child, quick);
  const only = typeof values.only === 'string' ? values.only.split(',').filter(Boolean) : undefined;
  const unknown = (only ?? []).filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length) {
    process.stderr.write(
      `soak: unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}\n`,
    );
    process.exit(2);
  }
  const chosen = SCENARIOS.filter((s) => !only || only.includes(s.id));
  process.on('SIGINT', () => {
    if (current) killGroup(current);
    process.exit(130);
  });
  const c = cpus();
  const conditions = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    loadavg1: Math.round(loadavg()[0]! * 100) / 100,
    quick,
  };
  const rows: ScenarioRow[] = [];
  const t0 = Date.now();
  for (const s of chosen) {
    process.stderr.write(`soak: ${s.id}: ${s.what}\n`);
    const row = await runChild(s, quick);
    process.stderr.write(`soak: ${s.id}: ${row.ok ? 'ok' : row.skipped ? `skipped (${row.skipped})` : 'FAILED'}\n`);
    rows.push(row);
  }
  const totalMs = Date.now() - t0;
  if (values.json) {
    process.stdout.write(JSON.stringify({ conditions: { ...conditions, totalMs }, scenarios: rows }, null, 2) + '\n');
  } else {
    process.stdout.write(
      `soak: ${Object.entries(conditions)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')} total=${(totalMs / 1000).toFixed(1)}s\n${table(rows)}\n`,
    );
    for (const r of rows) if (r.error) process.stdout.write(`\n${r.id}: ${r.error}\n`);
  }
  const failed = rows.filter((r) => !r.ok && !r.skipped).length;
  const skipped = rows.filter((r) => r.skipped).length;
  process.exitCode = failed ? 1 : skipped ? 3 : 0;
}

await main();
