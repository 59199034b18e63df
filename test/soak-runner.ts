// The soak runner itself (bench/soak.ts, `npm run soak`): one quick scenario
// end to end, so the runner, its JSON shape and its exit status cannot rot
// while the full soak stays out of `npm test`.
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SOAK = fileURLToPath(new URL('../dist/bench/soak.js', import.meta.url));

function soak(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SOAK, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : 1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('--quick --only R1-thread --json: one ok row with exact counters and RSS figures, exit 0', async (t) => {
  const r = await soak(['--quick', '--only', 'R1-thread', '--json']);
  t.equal(r.code, 0, `exit status 0 (stderr: ${r.stderr.slice(-500)})`);
  const out = JSON.parse(r.stdout) as {
    conditions: Record<string, unknown>;
    scenarios: Array<Record<string, unknown> & { memory: Array<Record<string, unknown>> }>;
  };
  t.match(out.conditions, { node: process.version, cores: Number, cpu: String, quick: true }, 'conditions');
  t.equal(out.scenarios.length, 1, 'only the scenario asked for');
  const row = out.scenarios[0]!;
  t.match(
    row,
    { id: 'R1-thread', ok: true, sent: Number, received: Number, lost: 0, duplicated: 0, reordered: 0, maxmsg: 1000 },
    'the row has the issue shape',
  );
  t.ok((row.sent as number) > 10_000, `it sent a real stream (${row.sent})`);
  t.equal(row.received, row.sent, 'every message was taken once');
  t.ok(
    (row.maxPending as number) > 0 && (row.maxPending as number) <= 1000,
    `pending sampled inside the receiver, within maxmsg (${row.maxPending})`,
  );
  t.ok(row.memory.length >= 1, 'RSS figures present');
  for (const m of row.memory)
    t.match(m, { process: String, pids: Number, startMb: Number, maxMb: Number, endMb: Number }, `RSS of ${m.process}`);
});

t.test('-h lists every scenario; an unknown id is a usage error (2)', async (t) => {
  const h = await soak(['-h']);
  t.equal(h.code, 0, '-h exits 0');
  for (const id of ['R1-thread', 'R1-process', 'R1-caller', 'R2', 'R4', 'R6', 'R7'])
    t.match(h.stdout, id, `-h names ${id}`);
  const bad = await soak(['--only', 'R99']);
  t.equal(bad.code, 2, 'unknown scenario: exit 2');
  t.match(bad.stderr, /unknown scenario R99/, 'and says which');
});
