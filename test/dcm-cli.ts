// The real CLI: `amix dcm run` and `amix bind` (node dist/bin/amix.js), in process, no daemon.
import t, { type Test } from 'tap';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const AMIX = fileURLToPath(new URL('../dist/bin/amix.js', import.meta.url));

function amix(cwd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [AMIX, ...args], { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-dcm-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('amix dcm run --json: the seed test case (¶469) in exactly the seed order', async (t) => {
  const dir = await tmp(t);
  await writeFile(
    join(dir, 'seed.rules'),
    'DCMINIT:\nAPINIT:\nMAIN: A\nA: B\nB:\n\techo B ran\nDONE: C\nC:\n\techo C ran\nAPDONE:\nDCMDONE:\n',
  );
  const r = await amix(dir, ['dcm', 'run', 'seed.rules', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), {
    evaluated: ['DCMINIT', 'APINIT', 'B', 'A', 'MAIN', 'C', 'DONE', 'APDONE', 'DCMDONE'],
    skipped: [],
    failed: [],
    errors: {},
  });
  t.match(r.stderr, /B ran\nC ran/, 'shell output went to stderr, stdout is only the JSON');
  t.equal((await stat(join(dir, 'seed.rules.amix-state'))).mode & 0o777, 0o600, 'the stamps, owner-only');
  const again = await amix(dir, ['dcm', 'run', 'seed.rules']);
  t.match(again.stdout, /^evaluated: \(none\)\nskipped: DCMINIT APINIT B A MAIN C DONE APDONE DCMDONE$/m);
});

t.test('touching a file prerequisite re-evaluates exactly what is downstream of it', async (t) => {
  const dir = await tmp(t);
  for (const f of ['a.txt', 'b.txt']) await writeFile(join(dir, f), f);
  await writeFile(
    join(dir, 'build.rules'),
    'MAIN: left right\nleft: a.txt\n\techo left\nright: b.txt\n\techo right\nDONE: tail\ntail:\n\techo tail\n',
  );
  const first = JSON.parse((await amix(dir, ['dcm', 'run', 'build.rules', '--json'])).stdout);
  t.same(first.evaluated, ['a.txt', 'left', 'b.txt', 'right', 'MAIN', 'tail', 'DONE']);
  const later = new Date(Date.now() + 60_000);
  await utimes(join(dir, 'b.txt'), later, later);
  const dry = JSON.parse((await amix(dir, ['dcm', 'run', 'build.rules', '--json', '--dry-run'])).stdout);
  t.same(dry.evaluated, ['b.txt', 'right', 'MAIN'], '--dry-run says what would run');
  const second = JSON.parse((await amix(dir, ['dcm', 'run', 'build.rules', '--json'])).stdout);
  t.same(second.evaluated, ['b.txt', 'right', 'MAIN'], 'the dry run saved nothing; b.txt, right and MAIN only');
  t.same(second.skipped, ['a.txt', 'left', 'tail', 'DONE']);
});

t.test('--jobs 4 overlaps independent prerequisites; the same result as --jobs 1', async (t) => {
  const dir = await tmp(t);
  // X writes into a FIFO, Y reads it: opening either end blocks until the other end opens,
  // so each finishes only if both run at once (one job would hang until the timeout).
  const { execFileSync } = await import('node:child_process');
  execFileSync('mkfifo', [join(dir, 'xy')]);
  await writeFile(join(dir, 'overlap.rules'), 'MAIN: X Y\nX:\n\techo x > xy\nY:\n\tcat xy >&2\n');
  const r4 = await amix(dir, ['dcm', 'run', 'overlap.rules', '--jobs', '4', '--json']);
  t.equal(r4.code, 0, r4.stderr);
  t.same(JSON.parse(r4.stdout).evaluated, ['X', 'Y', 'MAIN'], 'both finished: they overlapped');

  const graph = 'MAIN: P Q\nP: R S\nQ: S T\nR:\n\ttrue\nS:\n\ttrue\nT:\n\ttrue\nDONE: T U\nU:\n\ttrue\n';
  await writeFile(join(dir, 'g.rules'), graph);
  const one = await amix(dir, ['dcm', 'run', 'g.rules', '--jobs', '1', '--json', '--state', 'one.state']);
  const four = await amix(dir, ['dcm', 'run', 'g.rules', '--jobs', '4', '--json', '--state', 'four.state']);
  t.equal(one.stdout, four.stdout, 'byte for byte');
  t.same(JSON.parse(one.stdout).evaluated, ['R', 'S', 'P', 'T', 'Q', 'MAIN', 'U', 'DONE']);
  const bad = await amix(dir, ['dcm', 'run', 'g.rules', '--jobs', '0']);
  t.equal(bad.code, 2, 'misuse');
});

t.test('errors: a cycle, a syntax error with file, line and column, a failed rule', async (t) => {
  const dir = await tmp(t);
  await writeFile(join(dir, 'cycle.rules'), 'MAIN: A\nA: B\nB: A\n\ttrue\n');
  const c = await amix(dir, ['dcm', 'run', 'cycle.rules', '--json']);
  t.equal(c.code, 1);
  t.match(JSON.parse(c.stdout), { error: { code: 'AMIX_ERR_INVALID_ARG', message: /cycle: A -> B -> A/ } });
  await writeFile(join(dir, 'bad.rules'), 'MAIN: A\nA B\n');
  const s = await amix(dir, ['dcm', 'run', 'bad.rules']);
  t.equal(s.code, 1);
  t.match(s.stderr, /bad\.rules:2:3: expected an operator/);
  await writeFile(join(dir, 'reserved.rules'), 'MAIN: A\nTHREAD: A\n');
  t.match(
    (await amix(dir, ['dcm', 'run', 'reserved.rules'])).stderr,
    /reserved\.rules:2: THREAD is a reserved binding rule/,
  );
  await writeFile(join(dir, 'fail.rules'), 'MAIN: A\nA:\n\texit 3\n');
  const f = await amix(dir, ['dcm', 'run', 'fail.rules']);
  t.equal(f.code, 1);
  t.match(f.stdout, /failed: A MAIN\n {2}A: .*exited with code 3 \(AMIX_ERR_HANDLER_FAILED\)/);
});

t.test('amix bind: bind, query, report, purge', async (t) => {
  const dir = await tmp(t);
  await writeFile(join(dir, 'here.txt'), 'x');
  const b = await amix(dir, ['bind', 'here.txt', 'nowhere', 'shell:true', `process:${process.pid}`, '--json']);
  t.equal(b.code, 0, b.stderr);
  t.same(JSON.parse(b.stdout), [
    { name: 'here.txt', state: 'BOUND', method: 'File' },
    { name: 'nowhere', state: 'UNBOUND' },
    { name: 'shell:true', state: 'BOUND', method: 'Shell' },
    { name: `process:${process.pid}`, state: 'BOUND', method: 'Process' },
  ]);
  const q = JSON.parse((await amix(dir, ['bind', 'query', 'here.txt', '--json'])).stdout);
  t.match(q, [{ name: 'here.txt', state: 'BOUND', method: 'File', size: 1 }]);
  const r = JSON.parse((await amix(dir, ['bind', 'report', 'here.txt', '--json'])).stdout);
  t.same(
    r.methods.map((m: { name: string }) => m.name),
    ['File', 'Shell', 'Data', 'Function', 'Thread', 'Process'],
  );
  const p = await amix(dir, ['bind', 'purge', 'nowhere', 'here.txt']);
  t.match(p.stdout, /^purged 1 UNBOUND\n/);
  t.match(p.stdout, /names:\n {2}here\.txt {2}BOUND {2}File$/m);
  t.equal((await amix(dir, ['bind'])).code, 2, 'no name: misuse');
  t.match((await amix(dir, ['bind', '--help'])).stdout, /^usage: amix bind NAME/);
});

t.test('Ctrl-C stops the run, prints the result and keeps the stamps of what completed', async (t) => {
  const dir = await tmp(t);
  execFileSync('mkfifo', [join(dir, 'started')]);
  await writeFile(
    join(dir, 'int.rules'),
    'MAIN: done slow\ndone:\n\ttrue\nslow:\n\techo up > started; exec sleep 60\n',
  );
  const child = spawn(process.execPath, [AMIX, 'dcm', 'run', 'int.rules', '--json'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const exited = once(child, 'exit');
  await readFile(join(dir, 'started'));
  child.kill('SIGINT');
  const [code] = await exited;
  t.equal(code, 1, 'a rule failed: exit 1');
  const r = JSON.parse(stdout);
  t.same(r.evaluated, ['done']);
  t.same(r.failed, ['slow', 'MAIN']);
  t.equal(r.errors.slow.code, 'AMIX_ERR_ABORTED');
  const dry = JSON.parse((await amix(dir, ['dcm', 'run', 'int.rules', '--json', '--dry-run'])).stdout);
  t.same(dry.skipped, ['done'], 'the stamp of done was saved');
});
