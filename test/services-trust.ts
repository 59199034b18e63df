// What the binding and DCM services trust: owner-only state and configuration files (never a symlink, never
// another user's), the OS user's reach for the Process method, and no deep stack for a long rule chain.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BindingService, Dcm } from '../dist/lib/internal.js';

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-svc-trust-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const isRoot = process.getuid?.() === 0;

t.test('a state file that is a symlink or not a DCM state is refused and left alone', async (t) => {
  const dir = await tmp(t);
  const real = join(dir, 'real.state');
  await writeFile(real, JSON.stringify({ version: 1, clock: 0, stamps: {} }), { mode: 0o600 });
  const link = join(dir, 'link.state');
  await symlink(real, link);
  const run = async (stateFile: string) => {
    const dcm = await Dcm.create({ stateFile, application: { functions: new Map([['A', () => {}]]) } });
    dcm.loadText('MAIN: A\n');
    return dcm.run();
  };
  await t.rejects(run(link), { code: 'AMIX_ERR_UNSAFE_DIR', message: /symbolic link/ });
  await writeFile(join(dir, 'junk.state'), 'not json', { mode: 0o600 });
  await t.rejects(run(join(dir, 'junk.state')), { code: 'AMIX_ERR_INVALID_ARG', details: { option: 'state' } });
  t.same((await run(real)).evaluated, ['A', 'MAIN'], 'the real file works');
});

t.test(
  "another user's state or configuration file is refused",
  { skip: isRoot ? false : 'needs root to chown a file to uid 65534' },
  async (t) => {
    const dir = await tmp(t);
    const state = join(dir, 'theirs.state');
    await writeFile(state, JSON.stringify({ version: 1, clock: 0, stamps: {} }), { mode: 0o600 });
    await chown(state, 65534, 65534);
    const dcm = await Dcm.create({ stateFile: state });
    dcm.loadText('MAIN:\n');
    await t.rejects(dcm.run(), { code: 'AMIX_ERR_UNSAFE_DIR', message: /belongs to uid 65534/ });
    const conf = join(dir, 'theirs.conf');
    await writeFile(conf, '5 Evil /tmp/evil.mjs\n', { mode: 0o600 });
    await chown(conf, 65534, 65534);
    await t.rejects(BindingService.start({ configFiles: [conf] }), { code: 'AMIX_ERR_UNSAFE_DIR' });
  },
);

t.test(
  'the Process method binds only processes the OS user may signal',
  {
    skip: !isRoot
      ? 'needs root to run a child as uid 65534'
      : (await import('node:fs')).existsSync('/usr/bin/setpriv') || (await import('node:fs')).existsSync('/bin/setpriv')
        ? false
        : 'setpriv is missing',
  },
  async (t) => {
    const dir = await tmp(t);
    // The child runs as uid 65534 and imports amix from this worktree: give it a directory it may enter.
    const open = join(dir, 'open');
    await mkdir(open);
    await chmod(dir, 0o711);
    await chmod(open, 0o777);
    const script = join(open, 'probe.mjs');
    const lib = new URL('../dist/lib/internal.js', import.meta.url).href;
    await writeFile(
      script,
      `import { BindingService } from ${JSON.stringify(lib)};
       const b = await BindingService.start();
       console.log(JSON.stringify([await b.bind('process:${process.pid}'), await b.bind('process:' + process.pid)]));`,
    );
    const out = await new Promise<string>((res, rej) =>
      execFile(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, script],
        { timeout: 30_000 },
        (err, stdout, stderr) => (err ? rej(new Error(`${err.message}\n${stderr}`)) : res(stdout)),
      ),
    ).catch((err: Error) => err.message);
    if (/EACCES|permission denied|Cannot find/i.test(out)) {
      t.plan(0, `uid 65534 cannot read the worktree (${out.split('\n')[0]})`);
      return;
    }
    const [root, own] = JSON.parse(out) as Array<{ state: string }>;
    t.equal(root!.state, 'BOUND_NOT_FOUND', "uid 65534 cannot bind root's process: claimed by Process, not found");
    t.equal(own!.state, 'BOUND', 'but binds its own');
    const b = await BindingService.start();
    t.equal((await b.bind(`process:${process.pid}`)).state, 'BOUND', 'root binds it');
  },
);

t.test('a chain of 20,000 rules evaluates without a deep stack, at one job and at four', async (t) => {
  const lines = ['MAIN: r0'];
  const n = 20_000;
  for (let i = 0; i < n; i++) lines.push(`r${i}: ${i + 1 < n ? `r${i + 1}` : ''}`, `r${i}.method = NULL`);
  for (const jobs of [1, 4]) {
    const dcm = await Dcm.create();
    dcm.loadText(lines.join('\n'));
    const r = await dcm.run({ jobs });
    t.equal(r.evaluated.length, n + 1, `jobs ${jobs}: all evaluated`);
    t.equal(r.evaluated[0], `r${n - 1}`, 'the deepest first');
  }
});
