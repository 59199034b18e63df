// State DIR trust: a daemon directory, or a state file in it, that someone
// else could have planted or can change (open to group/other, another
// uid's, a symlink) is refused at start with AMIX_ERR_UNSAFE_DIR, never
// repaired, and what a symlink points at is never touched.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, Directory } from '../dist/lib/internal.js';
import { AMIXD, amix, daemonDir, startDaemon } from './helpers/daemon.js';

/** Run amixd on `dir` expecting it to refuse: resolves with its exit code and stderr (killed if it ever listens). */
function refusedStart(t: Test, dir: string, extra: string[] = []): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [AMIXD, '--dir', dir, '--quiet', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AMIXD_READY_FD: '1' },
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.once('data', () => child.kill('SIGKILL'));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

/** A file outside the daemon directory a planted symlink points at, with what it held and when. */
async function bait(t: Test): Promise<{ path: string; check: () => Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), 'amix-bait-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const path = join(base, 'attacker-file');
  const content = 'planted by someone else, 0123456789abcdef0123456789abcdef\n';
  await writeFile(path, content, { mode: 0o666 });
  await chmod(path, 0o666);
  const before = await stat(path);
  return {
    path,
    check: async () => {
      t.equal(await readFile(path, 'utf8'), content, 'the file the symlink points at is unchanged');
      const after = await stat(path);
      t.equal(after.mtimeMs, before.mtimeMs, 'and not written');
      t.equal(after.mode & 0o777, 0o666, 'nor chmod-ed');
    },
  };
}

t.test('a pre-created DIR with mode 0777 is refused, not repaired', async (t) => {
  const dir = await daemonDir(t);
  await mkdir(dir);
  await chmod(dir, 0o777);
  const r = await refusedStart(t, dir);
  t.equal(r.code, 1, 'amixd exits 1');
  t.match(r.stderr, /AMIX_ERR_UNSAFE_DIR/, 'and prints the code');
  t.match(r.stderr, /open to group or other/, 'and the reason');
  t.equal((await stat(dir)).mode & 0o777, 0o777, 'the mode is left as it was');
  await t.rejects(lstat(join(dir, 'token')), { code: 'ENOENT' }, 'nothing was written into it');
  const cli = await amix(dir, ['daemon', 'start']);
  t.equal(cli.code, 1, 'amix daemon start refuses it too');
  t.match(cli.stderr, /AMIX_ERR_UNSAFE_DIR/);
  await t.rejects(
    new Daemon({ dir }).start(),
    { code: 'AMIX_ERR_UNSAFE_DIR', details: { path: dir, mode: 0o777, uid: process.getuid?.() } },
    'the Daemon class says the same, with path, mode and uid',
  );
});

t.test('a DIR owned by another uid is refused', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to chown the directory to uid 65534');
  const dir = await daemonDir(t);
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, 65534, 65534);
  const r = await refusedStart(t, dir);
  t.equal(r.code, 1, 'amixd exits 1');
  t.match(r.stderr, /AMIX_ERR_UNSAFE_DIR/, 'with the code');
  t.match(r.stderr, /belongs to uid 65534/, 'naming the owner');
  await t.rejects(new Daemon({ dir }).start(), { code: 'AMIX_ERR_UNSAFE_DIR', details: { path: dir, uid: 65534 } });
});

t.test('a DIR that is a symlink, or a run dir open to others, is refused', async (t) => {
  const dir = await daemonDir(t);
  const real = `${dir}-real`;
  await mkdir(real, { mode: 0o700 });
  await symlink(real, dir);
  t.match(await refusedStart(t, dir), { code: 1, stderr: /AMIX_ERR_UNSAFE_DIR/ }, 'DIR symlink');
  t.same(await readdirSafe(real), [], 'nothing was made through it');
  const dir2 = await daemonDir(t);
  await mkdir(join(dir2, 'run'), { recursive: true, mode: 0o700 });
  await chmod(dir2, 0o700);
  await chmod(join(dir2, 'run'), 0o755);
  t.match(await refusedStart(t, dir2), { code: 1, stderr: /AMIX_ERR_UNSAFE_DIR/ }, 'DIR/run 0755');
});

async function readdirSafe(d: string): Promise<string[]> {
  return (await import('node:fs/promises')).readdir(d);
}

for (const file of [
  'token',
  'admin.token',
  'directory.db',
  'directory.db-wal',
  'principals.json',
  'amixd.pid',
  'delivered.json',
])
  t.test(`a symlinked ${file} is refused at start, and its target untouched`, async (t) => {
    const dir = await daemonDir(t);
    await mkdir(dir, { mode: 0o700 });
    const b = await bait(t);
    await symlink(b.path, join(dir, file));
    const r = await refusedStart(t, dir);
    t.equal(r.code, 1, 'amixd exits 1');
    t.match(r.stderr, /AMIX_ERR_UNSAFE_DIR/, 'with the code');
    t.match(r.stderr, /symbolic link/, 'and the reason');
    await b.check();
    await t.rejects(
      new Daemon({ dir }).start(),
      { code: 'AMIX_ERR_UNSAFE_DIR', details: { path: join(dir, file), reason: 'is a symbolic link' } },
      'the Daemon class refuses it too',
    );
    await b.check();
  });

t.test('a state file open to others, or another kind of file, is refused; nothing is chmod-ed', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir).then((c) => c.kill('SIGTERM') && new Promise((r) => c.once('exit', r)));
  await chmod(join(dir, 'token'), 0o644);
  const r = await refusedStart(t, dir);
  t.match(r, { code: 1, stderr: /AMIX_ERR_UNSAFE_DIR/ }, 'token 0644');
  t.equal((await stat(join(dir, 'token'))).mode & 0o777, 0o644, 'left as it was');
  await chmod(join(dir, 'token'), 0o600);
  await mkdir(join(dir, 'directory.db-shm'));
  t.match(await refusedStart(t, dir), { code: 1, stderr: /is not a file/ }, 'a directory where a file belongs');
  await rm(join(dir, 'directory.db-shm'), { recursive: true });
  await mkdir(join(dir, 'principals'), { mode: 0o700 });
  await writeFile(join(dir, 'principals', 'x.token'), 'x', { mode: 0o640 });
  await chmod(join(dir, 'principals', 'x.token'), 0o640);
  t.match(await refusedStart(t, dir), { code: 1, stderr: /x\.token.*open to group/ }, 'a principal token 0640');
  await rm(join(dir, 'principals', 'x.token'));
  await startDaemon(t, dir);
  t.pass('once fixed by hand, the daemon starts on the same directory');
});

t.test('the directory layer refuses a symlinked database on its own', async (t) => {
  const state = await mkdtemp(join(tmpdir(), 'amix-dirdb-'));
  t.teardown(() => rm(state, { recursive: true, force: true }));
  const b = await bait(t);
  await symlink(b.path, join(state, 'directory.db'));
  t.throws(() => new Directory({ stateDir: state }), { code: 'AMIX_ERR_UNSAFE_DIR' }, 'refused before SQLite opens it');
  await b.check();
  const open = await mkdtemp(join(tmpdir(), 'amix-dirdb-'));
  t.teardown(() => rm(open, { recursive: true, force: true }));
  await chmod(open, 0o755);
  t.throws(() => new Directory({ stateDir: open }), { code: 'AMIX_ERR_UNSAFE_DIR' }, 'a state dir open to others too');
});

t.test('a shared socket path holding something else is refused, and left alone', async (t) => {
  const dir = await daemonDir(t);
  const share = await mkdtemp(join(tmpdir(), 'amix-share-'));
  t.teardown(() => rm(share, { recursive: true, force: true }));
  const path = join(share, 'sock');
  await writeFile(path, 'not a socket');
  const r = await refusedStart(t, dir, ['--shared-socket', path]);
  t.match(r, { code: 1, stderr: /AMIX_ERR_UNSAFE_DIR/ }, 'refused');
  t.equal(await readFile(path, 'utf8'), 'not a socket', 'the file is still there');
});
