// The Named Execution Environment Manager (seed 002 ¶249-254, ¶584-638), on
// one machine: attributes by probe, by hand and from the NEECF; create by a
// query over them; PUBLIC aliasing and its reference count; runs that stream
// stdout and stderr over fabric links; owner-only terminate; the status task.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Neem, type NeeRun } from '../dist/lib/internal.js';
import { makeFabric } from './helpers/fabric.js';

async function neem(t: Test, options: ConstructorParameters<typeof Neem>[1] = {}) {
  const { fabric } = await makeFabric(t);
  const n = new Neem(fabric, { system: 'here', probe: { software: ['sh', 'no-such-binary-amix'] }, ...options });
  t.teardown(() => n.close());
  await n.start();
  return { fabric, neem: n };
}

/** The first chunk of a stream. */
async function first(s: AsyncIterable<Uint8Array>): Promise<string> {
  for await (const c of s) return Buffer.from(c).toString();
  return '';
}

t.test('attributes: the probe fills what Node sees; sets are registered by hand; a bad set is refused', async (t) => {
  const { neem: n } = await neem(t);
  const here = n.systems().find((s) => s.name === 'here')!;
  t.match(here.sets.probe, {
    os: process.platform,
    arch: process.arch,
    cpus: Number,
    'memory.mb': Number,
    system: 'here',
  });
  t.equal(here.sets.probe!['software.sh'], true, 'sh found on PATH');
  t.equal(here.sets.probe!['software.no-such-binary-amix'], false, 'a missing binary is false');
  t.equal(here.accessible, true);
  n.register('here', 'lab', { special: true, 'app.team': 'fabric' });
  t.same(n.systems().find((s) => s.name === 'here')!.sets.lab, { special: true, 'app.team': 'fabric' });
  t.throws(() => n.register('here', 'bad', { 'no spaces': 1 }), { code: 'AMIX_ERR_INVALID_ARG' });
  t.throws(() => n.register('here', 'bad', { x: Number.NaN }), { code: 'AMIX_ERR_INVALID_ARG' });
  t.same(n.list().inactive.sort(), ['here/lab', 'here/probe'], 'sets no environment uses are INACTIVE');
});

t.test('create matches a set by expression; no match is AMIX_ERR_NO_ENVIRONMENT', async (t) => {
  const { neem: n } = await neem(t);
  n.register('here', 'lab', { special: true });
  const info = await n.create({ name: 'build', require: `os = "${process.platform}" and cpus >= 1` });
  t.match(info, { name: 'build', system: 'here', set: 'probe', references: 1, owner: 'owner' });
  t.equal((await n.create({ name: 'special', require: 'special = true' })).set, 'lab', 'the set whose attributes fit');
  await t.rejects(n.create({ name: 'p9', require: 'os = "plan9"' }), {
    code: 'AMIX_ERR_NO_ENVIRONMENT',
    details: { name: 'p9', require: 'os = "plan9"' },
  });
  await t.rejects(n.create({ name: 'build', require: 'true = true' }), { code: 'AMIX_ERR_DUPLICATE' });
  await t.rejects(n.create({ name: 'x', require: 'os = ' }), { code: 'AMIX_ERR_QUERY_SYNTAX' });
  t.same(
    n.list().active.map((a) => a.name),
    ['build', 'special'],
  );
  t.same(n.list().inactive, [], 'both sets now have an ACTIVE environment');
});

t.test('a run streams stdout and stderr separately and returns the exit status', async (t) => {
  const { neem: n } = await neem(t);
  await n.create({ name: 'sh', require: 'software.sh = true' });
  const r = await n.run('sh', 'echo out; echo err >&2; exit 3').text();
  t.same([r.stdout, r.stderr, r.code, r.signal], ['out\n', 'err\n', 3, null]);
  t.same((await n.run('sh', ['echo', 'hello']).text()).stdout, 'hello\n', 'argv without a shell');
  const missing = await n.run('sh', ['/nonexistent/amix-cmd']).exit;
  t.match(missing, { code: null, error: /ENOENT/ }, 'a command that cannot start says why');
  t.equal(n.show('sh').attached, 0, 'DETACHED once the runs ended');
});

t.test('output is streamed as it comes, and interrupt, suspend and resume reach the command', async (t) => {
  const { neem: n } = await neem(t);
  await n.create({ name: 'live', require: 'software.sh = true' });
  // Prints its pid, then waits: the first line arrives long before the command could end.
  const run: NeeRun = n.run('live', 'echo $$; exec sleep 60');
  const pid = Number((await first(run.stdout)).trim());
  t.ok(pid > 0, `the first chunk (pid ${pid}) came while the command runs`);
  t.equal(n.show('live').attached, 1, 'ATTACHED while it runs');
  const state = async () => (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]![0];
  await run.suspend();
  for (let i = 0; i < 200 && (await state()) !== 'T'; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(await state(), 'T', 'suspended (stopped)');
  await run.resume();
  for (let i = 0; i < 200 && (await state()) === 'T'; i++) await new Promise((r) => setTimeout(r, 5));
  t.not(await state(), 'T', 'resumed');
  await run.interrupt();
  t.same(await run.exit, { code: null, signal: 'SIGINT' }, 'interrupted');
});

t.test('PUBLIC environments are aliased with a reference count; terminate is the owner’s', async (t) => {
  const { fabric, neem: n } = await neem(t);
  const a = await n.create({ name: 'shared', require: 'software.sh = true', public: true, as: 'alice' });
  const b = await n.create({ name: 'mine', require: `os = "${process.platform}"`, as: 'bob' });
  t.equal(b.aliasOf, 'shared', 'a request an ACTIVE PUBLIC environment satisfies is an alias of it');
  t.equal(n.show('shared').references, 2, 'reference count incremented');
  const points = () => fabric.points().filter((p) => p.location.endsWith('envPoint.js')).length;
  t.equal(points(), 1, 'one shell for both names');
  await t.rejects(n.terminate('shared', { as: 'bob' }), { code: 'AMIX_ERR_NOT_OWNER', details: { owner: 'alice' } });
  await n.terminate('mine', { as: 'bob' });
  t.equal(n.show('shared').references, 1, 'decremented');
  t.same((await n.run('shared', ['echo', 'still']).text()).stdout, 'still\n', 'the environment lives on');
  await n.terminate('shared', { as: 'alice' });
  t.equal(points(), 0, 'the last name gone: its shell is gone');
  await t.rejects(async () => n.run('shared', ['true']).exit, { code: 'AMIX_ERR_NO_ENVIRONMENT' });
  t.ok(a);
});

t.test('foreground/background attributes and idle time are applied', async (t) => {
  const { neem: n } = await neem(t);
  const dir = await mkdtemp(join(tmpdir(), 'amix-nee-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await n.create({
    name: 'bg',
    require: 'software.sh = true',
    backgroundOnly: true,
    output: join(dir, 'out.log'),
    idleSeconds: 0.05,
  });
  t.throws(() => n.run('bg', ['echo', 'x']), { code: 'AMIX_ERR_UNAUTHORIZED' }, 'background only');
  const ended = once(n, 'terminated');
  const run = n.run('bg', 'echo logged', { background: true });
  t.same(await run.exit, { code: 0, signal: null });
  t.equal(
    await readFile(join(dir, 'out.log'), 'utf8'),
    'logged\n',
    "a background run's output goes to the output file",
  );
  t.same((await ended)[0], { name: 'bg', references: 0 }, 'idle past idleSeconds: terminated');
  await n.create({ name: 'fg', require: 'software.sh = true', othersForeground: false, as: 'carol' });
  t.throws(
    () => n.run('fg', ['true'], { as: 'dave' }),
    { code: 'AMIX_ERR_UNAUTHORIZED' },
    'others may not run in the foreground',
  );
  t.same((await n.run('fg', ['true'], { as: 'carol' }).exit).code, 0, 'the owner may');
});

t.test('the NEECF: refused unless owner-only; its sets start INACTIVE; remote systems are polled', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-neecf-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'neecf.json');
  await writeFile(
    file,
    JSON.stringify({
      systems: [
        { name: 'here', sets: { tools: { 'software.make': true } } },
        { name: 'far', sets: { big: { cpus: 64 } }, remote: { daemon: 'peer1', neem: true } },
      ],
    }),
    { mode: 0o644 },
  );
  const { fabric } = await makeFabric(t);
  await t.rejects(
    new Neem(fabric, { config: file, probe: false }).start(),
    { code: 'AMIX_ERR_UNSAFE_DIR' },
    '0644 refused',
  );
  await chmod(file, 0o600);
  let up = true;
  const n = new Neem(fabric, { config: file, system: 'here', probe: false, pollMs: 20, reach: async () => up });
  t.teardown(() => n.close());
  await n.start();
  t.same(n.list().inactive, ['here/tools', 'far/big']);
  t.equal(n.systems().find((s) => s.name === 'far')!.accessible, true, 'ACCESSIBLE after the first poll');
  // The status task's timer does not hold the process open; these waits must.
  const keep = setInterval(() => {}, 1 << 30);
  t.teardown(() => clearInterval(keep));
  const down = once(n, 'system');
  up = false;
  t.same((await down)[0], { name: 'far', accessible: false }, 'UNACCESSIBLE once it stops answering');
  const back = once(n, 'system');
  up = true;
  t.same((await back)[0], { name: 'far', accessible: true }, 'ACCESSIBLE again');
});

t.test('suspendWhenUnused stops the shell between runs; cpuThreshold refuses runs under load', async (t) => {
  const { fabric, neem: n } = await neem(t);
  await n.create({ name: 'sleepy', require: 'software.sh = true', suspendWhenUnused: true });
  const point = fabric.points().find((p) => p.location.endsWith('envPoint.js'))!.name;
  const pid = fabric.instances(point)[0]!.pid!;
  const state = async () => (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]![0];
  // A signal to another process lands when the kernel next schedules it: look again for a moment.
  const settled = async (want: boolean) => {
    for (let i = 0; i < 200 && ((await state()) === 'T') !== want; i++) await new Promise((r) => setTimeout(r, 5));
    return state();
  };
  t.equal(await settled(true), 'T', 'unused: its shell is stopped');
  t.equal(n.show('sleepy').suspended, true);
  const run = n.run('sleepy', 'echo awake; exec sleep 60');
  t.equal(await first(run.stdout), 'awake\n', 'a run continues it');
  t.not(await settled(false), 'T', 'running while attached');
  await run.interrupt();
  await run.exit;
  t.equal(await settled(true), 'T', 'stopped again once the run ended');
  await n.terminate('sleepy');
  t.equal(fabric.instances(point).length, 0, 'a stopped shell still terminates');
  const load = loadavg()[0]!;
  await n.create({ name: 'busy', require: 'software.sh = true', cpuThreshold: 0 });
  if (load > 0)
    t.throws(() => n.run('busy', ['true']), { code: 'AMIX_ERR_NOT_ACCEPTING' }, `load ${load} > 0 %: refused`);
  else t.skip('the load average is exactly 0 here: nothing is above a 0 % threshold');
  await n.create({ name: 'idle', require: 'software.sh = true', cpuThreshold: 1e9 });
  t.equal((await n.run('idle', ['true']).exit).code, 0, 'under the threshold: runs');
});
