// DCM evaluation (seed 002 ¶460-469): flow order, depth first, stamps, re-evaluation downstream only, cycles, --jobs.
import t, { type Test } from 'tap';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dcm, type DcmOperator } from '../dist/lib/internal.js';

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-dcm-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A DCM whose rules are functions recording the order they ran in. */
async function recording(names: string[], extra = {}): Promise<{ dcm: Dcm; ran: string[] }> {
  const ran: string[] = [];
  const functions = new Map(names.map((n) => [n, () => void ran.push(n)] as const));
  return { dcm: await Dcm.create({ application: { functions }, ...extra }), ran };
}

const SEED_469 = `# seed 002 ¶469
DCMINIT:
APINIT:
MAIN: A
A: B
B:
DONE: C
C:
APDONE:
DCMDONE:
`;
const ALL_469 = ['DCMINIT', 'APINIT', 'B', 'A', 'MAIN', 'C', 'DONE', 'APDONE', 'DCMDONE'];

t.test('the seed test case (¶469) evaluates in exactly the seed order, methods run in that order', async (t) => {
  const { dcm, ran } = await recording(ALL_469);
  dcm.loadText(SEED_469, 'seed.rules');
  const r = await dcm.run();
  t.same(r.evaluated, ALL_469);
  t.same(ran, ALL_469, 'each rule bound to its function through the Binding Service (DEFAULT), run in order');
  t.same(r.skipped, []);
  t.same(r.failed, []);
  const again = await dcm.run();
  t.same(again.evaluated, [], 'nothing changed: nothing evaluated');
  t.same(again.skipped, ALL_469);
});

t.test('rules through the API merge by name, and the flow order holds whatever the order given', async (t) => {
  const { dcm, ran } = await recording(['A', 'B', 'C']);
  dcm.addRule({ name: 'DONE', prerequisites: ['C'] });
  dcm.addRule({ name: 'MAIN' });
  dcm.addRule({ name: 'MAIN', prerequisites: ['A'] });
  dcm.addRule({ name: 'A', prerequisites: ['B'] });
  t.same(dcm.rules.get('MAIN')!.prerequisites, ['A'], 'the two parts of MAIN merged');
  const r = await dcm.run();
  t.same(r.evaluated, ['B', 'A', 'MAIN', 'C', 'DONE']);
  t.same(ran, ['B', 'A', 'C']);
});

t.test(
  'touching one prerequisite re-evaluates exactly the rules downstream of it; stamps persist in a 0600 file',
  async (t) => {
    const dir = await tmp(t);
    const stateFile = join(dir, 'state.json');
    const names = ['A', 'B', 'D', 'E', 'F'];
    const rules = 'MAIN: A D\nA: B\nD: E\nDONE: F\n';
    {
      const { dcm } = await recording(names, { stateFile });
      dcm.loadText(rules);
      t.same((await dcm.run()).evaluated, ['B', 'A', 'E', 'D', 'MAIN', 'F', 'DONE']);
    }
    t.equal((await stat(stateFile)).mode & 0o777, 0o600, 'the state file is owner-only');
    {
      // A new process would read the same file: a fresh Dcm does.
      const { dcm, ran } = await recording(names, { stateFile });
      dcm.loadText(rules);
      await dcm.touch(['B']);
      const r = await dcm.run();
      t.same(r.evaluated, ['A', 'MAIN'], 'downstream of B only');
      t.same(ran, ['A'], 'only A had a method to run again');
      t.same(r.skipped, ['B', 'E', 'D', 'F', 'DONE']);
    }
    await chmod(stateFile, 0o644);
    const { dcm } = await recording(names, { stateFile });
    dcm.loadText(rules);
    await t.rejects(dcm.run(), { code: 'AMIX_ERR_UNSAFE_DIR' }, 'a state file open to others is refused');
  },
);

t.test('a file prerequisite: its stamp is its modification time', async (t) => {
  const dir = await tmp(t);
  await writeFile(join(dir, 'input.txt'), 'x');
  const { dcm, ran } = await recording(['build'], { baseDir: dir });
  dcm.loadText('MAIN: build\nbuild: input.txt\n');
  t.same((await dcm.run()).evaluated, ['input.txt', 'build', 'MAIN']);
  t.same((await dcm.run()).evaluated, []);
  const { utimes } = await import('node:fs/promises');
  const later = new Date(Date.now() + 60_000);
  await utimes(join(dir, 'input.txt'), later, later);
  t.same((await dcm.run()).evaluated, ['input.txt', 'build', 'MAIN'], 'a newer file re-evaluates what needs it');
  t.same(ran, ['build', 'build']);
});

t.test('a cycle is an error naming the cycle', async (t) => {
  const { dcm } = await recording([]);
  dcm.loadText('MAIN: A\nA: B\nB: C\nC: A\n');
  await t.rejects(dcm.run(), { code: 'AMIX_ERR_INVALID_ARG', message: /cycle: A -> B -> C -> A/ });
  const solo = await Dcm.create();
  solo.loadText('APINIT: X\n');
  await t.rejects(solo.run(), { code: 'AMIX_ERR_INVALID_ARG', message: /MAIN rule is required/ });
});

t.test('a failed method fails its dependents and stops the flow; the rest keep their stamps', async (t) => {
  const ran: string[] = [];
  const dcm = await Dcm.create({
    application: {
      functions: new Map<string, () => void>([
        ['ok', () => void ran.push('ok')],
        [
          'boom',
          () => {
            throw new Error('no luck');
          },
        ],
        ['after', () => void ran.push('after')],
      ]),
    },
  });
  dcm.loadText('MAIN: ok boom\nDONE: after\n');
  const r = await dcm.run();
  t.same(r.evaluated, ['ok']);
  t.same(r.failed, ['boom', 'MAIN']);
  t.match(r.errors.boom, { code: 'AMIX_ERR_HANDLER_FAILED', message: /no luck/ });
  t.match(r.errors.MAIN, { message: /prerequisite boom failed/ });
  t.same(ran, ['ok'], 'DONE was not evaluated after MAIN failed');
  const nofn = await Dcm.create();
  nofn.loadText('MAIN: ghost\n');
  const r2 = await nofn.run();
  t.same(r2.failed, ['ghost', 'MAIN'], 'DEFAULT found nothing: the rule failed (¶478)');
});

t.test('--jobs 4 runs independent prerequisites at once, with the same result as --jobs 1', async (t) => {
  // X and Y each wait until the other has started: they finish only if they overlap.
  const started = { X: false, Y: false };
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  const both = (me: 'X' | 'Y', other: 'X' | 'Y') => async () => {
    started[me] = true;
    wake();
    while (!started[other]) await new Promise<void>((r) => waiters.push(r));
  };
  const plain = () => {};
  const functions = new Map<string, () => unknown>([
    ['X', both('X', 'Y')],
    ['Y', both('Y', 'X')],
    ['Z', plain],
  ]);
  const rules = 'MAIN: P Z\nP: X Y\nDONE: Z\n';
  const four = await Dcm.create({ application: { functions } });
  four.loadText(rules);
  const r4 = await four.run({ jobs: 4 });
  t.ok(started.X && started.Y, 'both started');
  t.same(r4.evaluated, ['X', 'Y', 'P', 'Z', 'MAIN', 'DONE']);
  const one = await Dcm.create({
    application: {
      functions: new Map([
        ['X', plain],
        ['Y', plain],
        ['Z', plain],
      ]),
    },
  });
  one.loadText(rules);
  t.same(await one.run({ jobs: 1 }), r4, 'the same result, list for list');
  await t.rejects(one.run({ jobs: 0 }), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('operators are pluggable; a dry run runs nothing and saves nothing', async (t) => {
  const never: DcmOperator = { name: 'NEVER', token: '?', mustEvaluate: () => false };
  const { dcm, ran } = await recording(['A', 'B'], { operators: [never] });
  dcm.loadText('MAIN ! A B\nA ? \nB:\n');
  const dry = await dcm.run({ dryRun: true });
  t.same(dry, { evaluated: ['B', 'MAIN'], skipped: ['A'], failed: [], errors: {}, dryRun: true });
  t.same(ran, [], 'nothing ran');
  t.same((await dcm.run()).evaluated, ['B', 'MAIN']);
  t.same((await dcm.run()).evaluated, ['MAIN'], 'ALWAYS (!) runs every time; TIME_VALUE skips B');
  t.throws(() => dcm.loadText('X => A\n', 'f'), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('an aborted run kills the running shell, starts nothing more and keeps what completed', async (t) => {
  const dir = await tmp(t);
  const { execFileSync } = await import('node:child_process');
  const { readFile } = await import('node:fs/promises');
  execFileSync('mkfifo', [join(dir, 'started')]);
  const { dcm, ran } = await recording(['first', 'other'], { baseDir: dir, stateFile: join(dir, 'state') });
  // The shell says it started through the FIFO (our read returns once it wrote), then would sleep for a minute.
  dcm.loadText('MAIN: first slow other\nslow:\n\techo up > started; exec sleep 60\n');
  const stop = new AbortController();
  const running = dcm.run({ signal: stop.signal });
  await readFile(join(dir, 'started'));
  const t0 = Date.now();
  stop.abort(new Error('enough'));
  const r = await running;
  t.ok(Date.now() - t0 < 10_000, 'the sleeping shell was killed, not waited for');
  t.same(r.evaluated, ['first']);
  t.same(r.failed, ['slow', 'other', 'MAIN']);
  t.equal(r.errors.slow!.code, 'AMIX_ERR_ABORTED');
  t.equal(r.errors.other!.code, 'AMIX_ERR_ABORTED', 'a method not started yet does not start');
  t.same(ran, ['first']);
  const next = await dcm.run({ dryRun: true });
  t.same(next.skipped, ['first'], 'the completed rule kept its stamp');
  t.same(next.evaluated, ['slow', 'other', 'MAIN']);
});
