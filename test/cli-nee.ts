// `amix nee` against a real amixd: the NEEM as a daemon service. The issue's
// own commands (create by --require, run -- echo hello, plan9 refused), exit
// statuses, separate streams, and the owner and administrator rules taken
// from the connection's token.
import t from 'tap';
import { DaemonClient } from '../dist/lib/internal.js';
import { execFile } from 'node:child_process';
import { AMIX, addPrincipal, amix, daemonDir, startDaemon } from './helpers/daemon.js';

/** `amix --dir DIR nee run NAME -- ARGV` (the helper's trailing --dir would land after the --). */
function neeRun(dir: string, name: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AMIX, '--dir', dir, 'nee', 'run', name, '--', ...argv],
      { timeout: 60_000, maxBuffer: 8 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

t.test('amix nee create, run, ls, show, terminate', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const os = process.platform;
  const created = await amix(dir, ['nee', 'create', 'build', '--require', `os = "${os}"`]);
  t.equal(created.code, 0, created.stderr);
  t.match(created.stdout, /^build: \S+\/probe, owner admin, private, references 1/);
  const hello = await neeRun(dir, 'build', ['echo', 'hello']);
  t.same([hello.code, hello.stdout, hello.stderr], [0, 'hello\n', ''], 'prints hello, exits 0');
  const both = await neeRun(dir, 'build', ['sh', '-c', 'echo out; echo err >&2; exit 4']);
  t.same([both.code, both.stdout, both.stderr], [4, 'out\n', 'err\n'], "stdout and stderr apart, the command's status");
  const big = await neeRun(dir, 'build', ['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x']);
  t.equal(big.code, 0);
  t.equal(big.stdout.length, 3_000_000, 'output larger than the daemon holds for a run arrives whole');
  const p9 = await amix(dir, ['nee', 'create', 'p9', '--require', 'os = "plan9"']);
  t.equal(p9.code, 1, 'no match exits 1');
  t.match(p9.stderr, /AMIX_ERR_NO_ENVIRONMENT/);
  const ls = await amix(dir, ['nee', 'ls', '--json']);
  t.match(JSON.parse(ls.stdout), { active: [{ name: 'build', owner: 'admin', references: 1 }] });
  const shown = await amix(dir, ['nee', 'show', 'build', '--json']);
  t.match(JSON.parse(shown.stdout), { name: 'build', attached: 0 });
  t.equal((await amix(dir, ['nee', 'terminate', 'build'])).code, 0);
  const gone = await neeRun(dir, 'build', ['true']);
  t.equal(gone.code, 1);
  t.match(gone.stderr, /AMIX_ERR_NO_ENVIRONMENT/);
});

t.test('owners and the administrator: attributes, terminate, and runs are theirs', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const bob = await addPrincipal(dir, 'bob');
  const asBob = (args: string[]) => amix(dir, [...args, '--token-file', bob]);
  const denied = await asBob(['nee', 'attr', 'set', 'lab', 'special=true']);
  t.equal(denied.code, 1);
  t.match(denied.stderr, /AMIX_ERR_UNAUTHORIZED/, 'only the administrator registers attributes');
  t.equal((await amix(dir, ['nee', 'attr', 'set', 'lab', 'special=true', 'cores=8', 'team=fabric'])).code, 0);
  const attrs = JSON.parse((await amix(dir, ['nee', 'attr', 'ls', '--json'])).stdout) as Array<{
    sets: Record<string, unknown>;
  }>;
  t.same(attrs[0]!.sets.lab, { special: true, cores: 8, team: 'fabric' }, 'KEY=VALUE typed');
  const mine = await asBob(['nee', 'create', 'bobs', '--require', 'special = true and cores >= 8']);
  t.equal(mine.code, 0, mine.stderr);
  t.match(mine.stdout, /bobs: \S+\/lab, owner bob/, 'owner from the token, the set that fits');
  const admin = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => admin.close());
  await admin.request('nee.create' as never, { name: 'admins', require: 'special = true', as: 'bob' } as never);
  const theirs = await asBob(['nee', 'terminate', 'admins']);
  t.equal(theirs.code, 1);
  t.match(
    theirs.stderr,
    /AMIX_ERR_NOT_OWNER/,
    "a field saying as: bob does not make bob the owner; bob may not terminate the administrator's",
  );
  // A run belongs to the container that started it: another connection cannot read or signal it.
  const bobClient = await DaemonClient.connect({ dir, tokenFile: bob });
  t.teardown(() => bobClient.close());
  const { run } = await bobClient.request<{ run: number }>(
    'nee.run' as never,
    { name: 'bobs', argv: ['sleep', '30'] } as never,
  );
  await t.rejects(admin.request('nee.read' as never, { run, waitMs: 0 } as never), { code: 'AMIX_ERR_NO_ENVIRONMENT' });
  await bobClient.request('nee.signal' as never, { run, signal: 'interrupt' } as never);
  let exit: unknown;
  while (!exit) exit = (await bobClient.request<{ exit?: unknown }>('nee.read' as never, { run } as never)).exit;
  t.same(exit, { code: null, signal: 'SIGINT' }, 'its own container interrupts it');
  t.equal((await amix(dir, ['nee', 'terminate', 'bobs'])).code, 0, 'the administrator may terminate anything');
});
