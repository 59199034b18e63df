// Principals: a client is whoever its token says, never what its hello
// claims; what a principal made is its own (and the administrator's); the
// administrator alone stops the daemon, adds primitives and principals; a
// shared socket lets other local users in with a token and nothing else;
// the administrator always finds a slot.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlConnection, DaemonClient, PROTOCOL_VERSION } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { addPrincipal, amix, daemonDir, startDaemon } from './helpers/daemon.js';

/** A raw control connection to `socket` (no hello said yet), closed at teardown. */
async function raw(t: Test, socket: string): Promise<ControlConnection> {
  const s = connect(socket);
  await once(s, 'connect');
  const conn = new ControlConnection(s);
  t.teardown(() => conn.destroy());
  return conn;
}

const sinkPoint = (name: string) => ({
  registration: { name, location: pointFixture('sink'), characteristics: { scope: 'process' as const } },
});

t.test('a client is its token: another principal may not touch, run or read what is not its own', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const aliceFile = await addPrincipal(dir, 'alice');
  const bobFile = await addPrincipal(dir, 'bob');
  const alice = await DaemonClient.connect({ dir, tokenFile: aliceFile });
  t.teardown(() => alice.close());
  t.equal(alice.principal, 'alice', 'the daemon names the principal of the token');
  const reg = await alice.request('point.register', {
    ...sinkPoint('apt'),
    attributes: { region: 'eu', secret: { value: 'k', visibility: 'private' } },
  });
  t.equal(reg.owner, 'alice', 'the point is owned by the principal that registered it');
  const link = await alice.connect(null, 'apt', { direction: 'aToB' });

  // Bob's token, but a hello that claims to be alice: the claim is ignored.
  const bob = await raw(t, join(dir, 'amixd.sock'));
  const hello = await bob.request<{ principal: string; admin: boolean }>('hello', {
    version: PROTOCOL_VERSION,
    token: (await readFile(bobFile, 'utf8')).trim(),
    owner: 'alice',
    name: 'impostor',
  });
  t.same([hello.principal, hello.admin], ['bob', false], 'the hello owner field has no effect');
  const status = await bob.request<{ containers: Array<{ name: string; owner: string }> }>('status', {});
  t.equal(status.containers.find((c) => c.name === 'impostor')?.owner, 'bob', 'status shows the real principal');

  const refused = async (op: string, args: Record<string, unknown>, details: Record<string, unknown>) =>
    t.rejects(bob.request(op, args), { code: 'AMIX_ERR_NOT_OWNER', details: { ...details, op } }, `bob may not ${op}`);
  await refused('point.rm', { name: 'apt' }, { point: 'apt', owner: 'alice' });
  await refused('destroy', { name: reg.id }, { point: 'apt', owner: 'alice' });
  await refused('execute', { name: 'apt' }, { point: 'apt', owner: 'alice' });
  await refused('reconnect', { name: 'apt' }, { point: 'apt', owner: 'alice' });
  await refused('suspend', { link: link.id }, { link: link.id, owner: 'alice' });
  await refused('resume', { link: link.id }, { link: link.id, owner: 'alice' });
  await refused('disconnect', { link: link.id }, { link: link.id, owner: 'alice' });
  const shown = await bob.request<{ attributes: Record<string, unknown> }>('point.show', { name: 'apt' });
  t.same(Object.keys(shown.attributes), ['region'], 'bob sees the public attributes only');
  t.same((await bob.request<{ points: unknown[] }>('query', { expr: 'secret = "k"' })).points, [], 'nor finds by them');
  t.match(await alice.request('links'), [{ id: link.id, owner: 'alice' }], 'the link is still up, and alice owns it');

  // The owner sees its own private attributes; the administrator sees and may do everything.
  const own = await alice.request('point.show', { name: 'apt' });
  t.equal(own.attributes.secret?.value, 'k', 'the owner sees its private attributes');
  const admin = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => admin.close());
  t.equal(admin.principal, 'admin');
  t.equal((await admin.request('point.show', { name: 'apt' })).attributes.secret?.value, 'k', 'so does the admin');
  t.match(await admin.request('suspend', { link: link.id }), { state: 'suspended' }, 'the administrator suspends');
  await admin.request('resume', { link: link.id });
  t.match(await admin.request('execute', { name: 'apt' }), { point: 'apt' }, 'and executes');
  await admin.request('disconnect', { link: link.id });
  await admin.request('destroy', { name: 'apt' });
  t.same(await admin.request('point.ls'), [], 'and destroys');
});

t.test('administrator-only ops are refused to every other principal', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const user = await DaemonClient.connect({ dir });
  t.teardown(() => user.close());
  t.equal(user.principal, 'user', 'DIR/token is the default principal, user');
  const unauthorized = (op: string) => ({ code: 'AMIX_ERR_UNAUTHORIZED', details: { op, principal: 'user' } });
  await t.rejects(user.request('stop', {}), unauthorized('stop'), 'stop');
  await t.rejects(
    user.request('primitive.add', { registration: { name: 'x', location: '/nowhere.js' } }),
    unauthorized('primitive.add'),
    'primitive.add',
  );
  await t.rejects(
    user.request('primitive.rm', { name: 'zeromq' }),
    { code: 'AMIX_ERR_NOT_OWNER', details: { primitive: 'zeromq', owner: 'admin', op: 'primitive.rm' } },
    'primitive.rm',
  );
  for (const op of ['principal.add', 'principal.ls', 'principal.rm'] as const)
    await t.rejects(user.request(op, { name: 'mallory' }), unauthorized(op), op);
  const cli = await amix(dir, ['principal', 'add', 'mallory', '--token-file', join(dir, 'token')]);
  t.equal(cli.code, 1, 'amix principal add with a non-admin token fails');
  t.match(cli.stderr, /AMIX_ERR_UNAUTHORIZED/, 'with the code');
  t.equal((await user.request('status', {})).pid > 0, true, 'the daemon still runs');
});

t.test('amix principal add/ls/rm: a token file 0600, only its hash in the store, gone once removed', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const added = await amix(dir, ['principal', 'add', 'carol', '--json']);
  t.equal(added.code, 0, added.stderr);
  const file = join(dir, 'principals', 'carol.token');
  t.same(JSON.parse(added.stdout), { name: 'carol', tokenFile: file });
  t.equal((await stat(file)).mode & 0o777, 0o600, 'the token file is 0600');
  t.equal((await stat(join(dir, 'principals'))).mode & 0o777, 0o700, 'in a 0700 directory');
  const token = (await readFile(file, 'utf8')).trim();
  t.match(token, /^[0-9a-f]{48}$/, '192 random bits');
  const store = await readFile(join(dir, 'principals.json'), 'utf8');
  t.notOk(store.includes(token), 'the plain token is not in the store');
  t.match(JSON.parse(store), { version: 1, principals: [{ name: 'carol', sha256: /^[0-9a-f]{64}$/ }] }, 'its hash is');
  t.equal((await stat(join(dir, 'principals.json'))).mode & 0o777, 0o600, 'the store is 0600');
  const again = await amix(dir, ['principal', 'add', 'carol']);
  t.equal(again.code, 1, 'a name is added once');
  t.equal(
    (await amix(dir, ['principal', 'add', 'admin', '--out', join(dir, '..', 'x')])).code,
    1,
    'built-in names are taken',
  );

  const carol = await DaemonClient.connect({ dir, tokenFile: file });
  t.equal(carol.principal, 'carol', 'the token works');
  process.env.AMIX_TOKEN_FILE = file;
  const viaEnv = await DaemonClient.connect({ dir }).finally(() => delete process.env.AMIX_TOKEN_FILE);
  t.equal(viaEnv.principal, 'carol', 'and so does $AMIX_TOKEN_FILE naming it');
  await viaEnv.close();
  const ls = JSON.parse((await amix(dir, ['principal', 'ls', '--json'])).stdout);
  t.same(
    ls.map((p: { name: string }) => p.name),
    ['admin', 'user', 'carol'],
    'principal ls',
  );
  const gone = once(carol.connection, 'close');
  t.equal((await amix(dir, ['principal', 'rm', 'carol'])).code, 0);
  await gone;
  t.pass('removing a principal closes its connections');
  await carol.close();
  await t.rejects(readFile(file), { code: 'ENOENT' }, 'and removes its default token file');
  await writeFile(join(dir, '..', 'carol.old'), `${token}\n`, { mode: 0o600 });
  await t.rejects(
    DaemonClient.connect({ dir, tokenFile: join(dir, '..', 'carol.old') }),
    { code: 'AMIX_ERR_UNAUTHORIZED' },
    'its token no longer works',
  );
  t.equal((await amix(dir, ['principal', 'rm', 'user'])).code, 1, 'built-in principals cannot be removed');
});

t.test('without a credential nothing gets in, on the private socket', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const c = await raw(t, join(dir, 'amixd.sock'));
  await t.rejects(
    c.request('query', { expr: 'exists name' }),
    { code: 'AMIX_ERR_UNAUTHORIZED' },
    'no query before hello',
  );
  await t.rejects(c.request('hello', { version: PROTOCOL_VERSION }), { code: 'AMIX_ERR_UNAUTHORIZED' }, 'no hello');
  await c.closed;
  t.pass('and the connection is cut');
});

t.test('a second local user (uid 65534) gets in through the shared socket with its token only', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a child as uid 65534 (setpriv)');
  const setpriv = await new Promise<boolean>((res) => execFile('setpriv', ['--version'], (err) => res(!err)));
  if (!setpriv) return t.skip('setpriv is not installed');
  const dir = await daemonDir(t);
  // A directory uid 65534 can reach, holding the shared socket and the child's files.
  const share = await mkdtemp(join(tmpdir(), 'amix-share-'));
  t.teardown(() => rm(share, { recursive: true, force: true }));
  await chmod(share, 0o755);
  const sock = join(share, 'amix.sock');
  await startDaemon(t, dir, ['--shared-socket', sock]);
  t.equal((await stat(sock)).mode & 0o777, 0o666, 'the shared socket is 0666');
  const admin = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => admin.close());
  await admin.request('point.register', {
    ...sinkPoint('svc'),
    attributes: { secret: { value: 'k', visibility: 'private' } },
  });
  const { token } = await admin.request('principal.add', { name: 'guest' });
  // The guest's readable copy of its token, and one file it must not read.
  const guestFile = join(share, 'guest.token');
  await writeFile(guestFile, `${token}\n`, { mode: 0o600 });
  await chown(guestFile, 65534, 65534);
  await copyFile(join(dir, 'token'), join(share, 'root-only.token'));

  const internal = new URL('../dist/lib/internal.js', import.meta.url).href;
  const script = join(share, 'guest.mjs');
  await writeFile(
    script,
    `import { connect } from 'node:net';
import { once } from 'node:events';
import { ControlConnection, DaemonClient, PROTOCOL_VERSION } from ${JSON.stringify(internal)};
const [sock, dir, tokenFile, other] = process.argv.slice(2);
const out = {};
const code = (p) => p.then(() => 'ok', (e) => e.code ?? e.message);
async function raw() {
  const s = connect(sock);
  await once(s, 'connect');
  return new ControlConnection(s);
}
let c = await raw();
out.queryBeforeHello = await code(c.request('query', { expr: 'exists name' }));
out.statusBeforeHello = await code(c.request('status', {}));
out.helloNoToken = await code(c.request('hello', { version: PROTOCOL_VERSION }));
await c.closed;
c = await raw();
out.helloWrongToken = await code(c.request('hello', { version: PROTOCOL_VERSION, token: 'f'.repeat(48), owner: 'admin' }));
await c.closed;
out.privateSocket = await code(DaemonClient.connect({ dir, tokenFile }));
out.readOtherToken = await code(import('node:fs/promises').then((fs) => fs.readFile(other)));
const g = await DaemonClient.connect({ socket: sock, tokenFile });
out.principal = g.principal;
const q = await g.request('query', { expr: 'exists name' });
out.points = q.points.map((p) => [p.name, Object.keys(p.attributes)]);
out.rm = await code(g.request('point.rm', { name: 'svc' }));
out.stop = await code(g.request('stop', {}));
await g.close();
process.stdout.write(JSON.stringify(out));
`,
  );
  await chmod(script, 0o644);
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((res) =>
    execFile(
      // env -i: not tap's environment (its spawn hook adds NODE_OPTIONS that write where uid 65534 may not).
      'env',
      [
        '-i',
        `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        script,
        sock,
        dir,
        guestFile,
        join(share, 'root-only.token'),
      ],
      { timeout: 30_000, cwd: share },
      (err, stdout, stderr) => res({ code: err ? 1 : 0, stdout, stderr }),
    ),
  );
  t.equal(r.code, 0, 'the child ran');
  t.equal(r.stderr, '', 'and said nothing on stderr');
  const out = JSON.parse(r.stdout);
  t.equal(out.queryBeforeHello, 'AMIX_ERR_UNAUTHORIZED', 'no query before hello');
  t.equal(out.statusBeforeHello, 'AMIX_ERR_UNAUTHORIZED', 'no status before hello');
  t.equal(out.helloNoToken, 'AMIX_ERR_UNAUTHORIZED', 'no hello without a token');
  t.equal(out.helloWrongToken, 'AMIX_ERR_UNAUTHORIZED', 'no hello with a wrong token (and an admin claim)');
  t.not(out.privateSocket, 'ok', `the private socket is out of its reach (${String(out.privateSocket)})`);
  t.equal(out.readOtherToken, 'EACCES', 'and so is a token not made readable for it');
  t.equal(out.principal, 'guest', 'with its own token it is the guest');
  t.same(out.points, [['svc', []]], 'it queries, seeing public attributes only');
  t.equal(out.rm, 'AMIX_ERR_NOT_OWNER', "it may not remove the administrator's point");
  t.equal(out.stop, 'AMIX_ERR_UNAUTHORIZED', 'nor stop the daemon');
  t.equal((await admin.request('point.ls')).length, 1, 'the point is still there');
});

t.test('with every slot held the administrator still gets in; others get AMIX_ERR_MAX_CONNECTIONS', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir, ['--slots', '2', '--admin-slots', '2']);
  const aliceFile = await addPrincipal(dir, 'alice');
  for (let i = 0; i < 2; i++) {
    const c = await DaemonClient.connect({ dir });
    t.teardown(() => c.close());
  }
  const full = { code: 'AMIX_ERR_MAX_CONNECTIONS', details: { slots: 2 } };
  await t.rejects(DaemonClient.connect({ dir }), full, 'a third user container finds no slot');
  await t.rejects(DaemonClient.connect({ dir, tokenFile: aliceFile }), full, 'nor does another principal');
  const st = await amix(dir, ['daemon', 'status', '--json']);
  t.equal(st.code, 0, `the administrator gets daemon status (${st.stderr})`);
  t.equal(JSON.parse(st.stdout).containers.filter((c: { admin: boolean }) => !c.admin).length, 2, 'slots are held');
  const admins = [];
  for (let i = 0; i < 2; i++) admins.push(await DaemonClient.connect({ dir, admin: true }));
  t.teardown(() => Promise.all(admins.map((a) => a.close())));
  await t.rejects(
    DaemonClient.connect({ dir, admin: true }),
    { code: 'AMIX_ERR_MAX_CONNECTIONS', details: { slots: 2 } },
    'the administrator has --admin-slots of its own, bounded too',
  );
});
