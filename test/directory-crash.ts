import t from 'tap';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIRECTORY_FILE, Directory, parsePointId } from '../dist/lib/directory/index.js';

const fixture = fileURLToPath(new URL('./fixtures/directory-burst.mjs', import.meta.url));
const ACKS_BEFORE_KILL = 300;

t.test(
  'every acknowledged registration survives a SIGKILL in the middle of a burst, and none is half-written',
  async (t) => {
    const stateDir = await mkdtemp(join(tmpdir(), 'amix-directory-crash-'));
    t.teardown(() => rm(stateDir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [fixture, stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    let buffered = '';
    const lines: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
      if (lines.length >= ACKS_BEFORE_KILL && child.signalCode === null) child.kill('SIGKILL');
    });
    const { signal } = await exited;
    t.equal(signal, 'SIGKILL', 'the child was killed, not finished');

    const directoryId = lines[0]!.split(' ')[1]!;
    const acked = new Map<string, string>();
    const batches = new Map<number, string[]>();
    for (const line of lines.slice(1)) {
      const [kind, a, b] = line.split(' ');
      if (kind === 'ack') acked.set(a!, b!);
      else if (kind === 'batch') batches.set(Number(a), b!.split(','));
    }
    t.ok(
      acked.size + batches.size >= ACKS_BEFORE_KILL - 1,
      `saw ${acked.size} single and ${batches.size} batch acknowledgements`,
    );

    const dir = new Directory({ stateDir });
    t.teardown(() => dir.close());
    t.equal(dir.id, directoryId, 'same directory id after the crash');
    const admin = { owner: 'root', admin: true };
    let missing = 0;
    for (const [id, name] of acked) {
      const p = dir.getPoint(id, { as: admin });
      if (!p || p.name !== name) missing++;
    }
    t.equal(missing, 0, 'every acknowledged single registration is present under its id and name');
    let batchMissing = 0;
    for (const ids of batches.values()) for (const id of ids) if (!dir.getPoint(id)) batchMissing++;
    t.equal(batchMissing, 0, 'every point of every acknowledged batch is present');

    const raw = new Database(join(stateDir, DIRECTORY_FILE), { readonly: true });
    t.teardown(() => raw.close());
    t.equal(raw.pragma('integrity_check', { simple: true }), 'ok', 'the database passes integrity_check');
    const half = raw
      .prepare('SELECT count(*) AS n FROM points p WHERE (SELECT count(*) FROM attributes a WHERE a.seq = p.seq) != 3')
      .get() as { n: number };
    t.equal(half.n, 0, 'every stored point has all three of its attributes');
    const mismatched = raw
      .prepare(
        'SELECT count(*) AS n FROM points p WHERE (SELECT count(*) FROM json_each(p.attributes)) != (SELECT count(*) FROM attributes a WHERE a.seq = p.seq)',
      )
      .get() as { n: number };
    t.equal(mismatched.n, 0, "each point's attribute record agrees with its index rows");
    const orphans = raw
      .prepare('SELECT count(*) AS n FROM attributes a WHERE NOT EXISTS (SELECT 1 FROM points p WHERE p.seq = a.seq)')
      .get() as { n: number };
    t.equal(orphans.n, 0, 'no attribute without its point');
    const perBatch = raw
      .prepare(
        "SELECT substr(name, 2, instr(name, '-') - 2) AS k, count(*) AS n FROM points WHERE name LIKE 'b%' GROUP BY k",
      )
      .all() as Array<{ k: string; n: number }>;
    t.ok(
      perBatch.every((r) => r.n === 10),
      'every batch is stored whole or not at all',
    );
    raw.close();

    const stored = dir.queryLocal('exists name', { limit: 100_000, as: admin }).points;
    const maxSeq = Math.max(...stored.map((p) => parsePointId(p.id)!.seq));
    const fresh = dir.registerPoint({ name: 'after-crash', owner: 'o', record: { role: 'both' } });
    t.ok(parsePointId(fresh.id)!.seq > maxSeq, 'a registration after the crash gets a new, higher identifier');
  },
);
