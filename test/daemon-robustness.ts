import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DaemonClient, PROTOCOL_PROTO, encodeControl } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { AMIX, addPrincipal, amix, daemonDir, startDaemon } from './helpers/daemon.js';
import { rng } from './helpers/rng.js';

t.test('lib/control/protocol.proto and the embedded schema agree', async (t) => {
  const file = await readFile(new URL('../lib/control/protocol.proto', import.meta.url), 'utf8');
  t.equal(PROTOCOL_PROTO, file);
});

t.test(
  'a daemon that does not peer maps no ZeroMQ addon; one that peers does',
  { skip: process.platform !== 'linux' ? 'reads /proc/PID/maps (Linux only)' : false },
  async (t) => {
    const zeromqMapped = async (pid: number): Promise<boolean> =>
      /zeromq[\\/].*\.node/.test(await readFile(`/proc/${pid}/maps`, 'utf8'));
    const plain = await startDaemon(t, await daemonDir(t));
    t.equal(await zeromqMapped(plain.pid!), false, 'amixd without --listen or --peer: zeromq.node is not mapped');
    // The check must be able to see the addon, or the line above proves nothing.
    const peering = await startDaemon(t, await daemonDir(t), ['--listen', 'tcp://127.0.0.1:0', '--insecure']);
    t.equal(await zeromqMapped(peering.pid!), true, 'amixd --listen: zeromq.node is mapped');
  },
);

t.test('files are owner-only: dir 0700, socket and files 0600', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const mode = async (p: string) => (await stat(join(dir, p))).mode & 0o777;
  t.equal(await mode('.'), 0o700, 'daemon dir');
  t.equal(await mode('run'), 0o700, 'runtime dir for primitive sockets');
  t.equal(await mode('amixd.sock'), 0o600, 'control socket');
  for (const f of ['token', 'admin.token', 'amixd.pid']) t.equal(await mode(f), 0o600, f);
  await amix(dir, ['point', 'register', 'p', pointFixture('sink'), '--scope', 'process']);
  t.equal(await mode('directory.db'), 0o600, 'directory database');
});

t.test('a client without the token is refused and cut off', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const s = connect(join(dir, 'amixd.sock'));
  t.teardown(() => s.destroy());
  await once(s, 'connect');
  let reply = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    reply = Buffer.concat([reply, d]);
  });
  s.write(encodeControl({ kind: 'request', id: 1, op: 'hello', args: { token: 'guess' } }));
  s.write(encodeControl({ kind: 'request', id: 2, op: 'status', args: {} }));
  await once(s, 'close');
  t.match(reply.toString('latin1'), /AMIX_ERR_UNAUTHORIZED/, 'refused with its code');
  t.notMatch(reply.toString('latin1'), /uptimeMs/, 'and told nothing');
});

t.test('10k seeded random control messages leave the daemon answering', async (t) => {
  const dir = await daemonDir(t);
  const daemon = await startDaemon(t, dir);
  const token = (await readFile(join(dir, 'token'), 'utf8')).trim();
  const seed = Number(process.env.AMIX_FUZZ_SEED ?? 20261122);
  t.comment(`fuzz seed ${seed} (replay with AMIX_FUZZ_SEED=${seed})`);
  const rnd = rng(seed);
  const ops = [
    'status',
    'connect',
    'point.register',
    'point.rm',
    'suspend',
    'disconnect',
    'hello',
    'nonsense',
    'primitive.add',
    'execute',
    '',
  ];
  const randBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const randValue = (): unknown => {
    const k = Math.floor(rnd() * 7);
    return [
      null,
      rnd() * 1e6,
      'x'.repeat(Math.floor(rnd() * 50)),
      [1, 'a'],
      { name: 42 },
      true,
      { registration: { name: 'n', location: 5 } },
    ][k];
  };
  let sent = 0;
  let sock = connect(join(dir, 'amixd.sock'));
  const fresh = async () => {
    sock.destroy();
    sock = connect(join(dir, 'amixd.sock'));
    sock.on('error', () => {});
    sock.resume();
    await once(sock, 'connect');
    if (rnd() < 0.7) sock.write(encodeControl({ kind: 'request', id: 1, op: 'hello', args: { token } }));
  };
  await fresh();
  while (sent < 10_000) {
    if (sock.destroyed || !sock.writable) await fresh();
    const kind = rnd();
    let frame: Buffer;
    if (kind < 0.3) {
      frame = encodeControl({
        kind: 'request',
        id: Math.floor(rnd() * 1e9),
        op: ops[Math.floor(rnd() * ops.length)]!,
        args: { a: randValue(), b: randValue(), name: randValue(), link: randValue(), registration: randValue() },
      });
    } else if (kind < 0.6) {
      const body = randBytes(Math.floor(rnd() * 64));
      frame = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
    } else if (kind < 0.8) {
      frame = encodeControl({
        kind: 'reply',
        id: Math.floor(rnd() * 100),
        ok: rnd() < 0.5,
        result: randValue(),
      } as never);
    } else if (kind < 0.95) {
      frame = randBytes(1 + Math.floor(rnd() * 16)); // garbage that may announce any length
    } else {
      frame = Buffer.from([0x7f, 0xff, 0xff, 0xff]); // a length far over the maximum: the connection is closed
    }
    sock.write(frame);
    sent++;
    if (sent % 500 === 0) await new Promise((r) => setImmediate(r));
  }
  sock.destroy();
  t.equal(daemon.exitCode, null, 'the daemon is still running');
  const c = await DaemonClient.connect({ dir });
  t.teardown(() => c.close());
  const s = await c.request<{ pid: number }>('status');
  t.equal(s.pid, daemon.pid, `the daemon answers after ${sent} random messages`);
});

t.test('a container killed with SIGKILL is cleaned up and its peers are told', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  await amix(dir, ['point', 'register', 'talker', pointFixture('upper'), '--scope', 'process']);
  const watcher = await DaemonClient.connect({ dir, name: 'watcher' });
  t.teardown(() => watcher.close());
  await watcher.subscribe();
  const events: Array<{ type: string; body: Record<string, unknown> }> = [];
  watcher.connection.on('event', (e) => events.push(e));
  const recv = spawn(process.execPath, [AMIX, 'recv', 'talker', '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => recv.kill('SIGKILL'));
  await once(recv.stderr, 'data');
  const before = await watcher.request<{ containers: Array<{ pid: number; links: string[] }> }>('status');
  const victim = before.containers.find((c) => c.pid === recv.pid);
  t.ok(victim && victim.links.length === 1, 'the recv container holds a link');
  const gone = new Promise<void>((resolve) =>
    watcher.connection.on('event', (e) => {
      if (e.type === 'daemon.containerUnplugged') resolve();
    }),
  );
  recv.kill('SIGKILL');
  await gone;
  t.ok(
    events.some((e) => e.type === 'peerLost' && e.body.instance === 'talker'),
    'the point at the other end was told',
  );
  t.ok(
    events.some((e) => e.type === 'linkDisconnected'),
    'the link was taken down',
  );
  const after = await watcher.request<{ containers: Array<{ pid: number }>; links: number }>('status');
  t.notOk(
    after.containers.some((c) => c.pid === recv.pid),
    'the container is gone',
  );
  t.equal(after.links, 0, 'no links left');
});

t.test('a daemon killed with SIGKILL restarts cleanly and keeps its registrations', async (t) => {
  const dir = await daemonDir(t);
  const first = await startDaemon(t, dir);
  t.equal((await amix(dir, ['point', 'register', 'keep', pointFixture('sink'), '--scope', 'process'])).code, 0);
  first.kill('SIGKILL');
  await once(first, 'exit');
  t.ok((await stat(join(dir, 'amixd.sock'))).isSocket(), 'a stale socket was left behind');
  await startDaemon(t, dir);
  const ls = JSON.parse((await amix(dir, ['point', 'ls', '--json'])).stdout);
  t.same(
    ls.map((p: { name: string }) => p.name),
    ['keep'],
    'registration survived',
  );
  const second = await amix(dir, ['daemon', 'start']);
  t.match(second.stdout, /already running/, 'a second daemon on a live directory is not started');
});

t.test('points belong to their owner; others may not remove them, the administrator may', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const alice = await DaemonClient.connect({ dir, tokenFile: await addPrincipal(dir, 'alice') });
  t.teardown(() => alice.close());
  // Claiming alice's name in the hello changes nothing: the token says bob.
  const bob = await DaemonClient.connect({ dir, owner: 'alice', tokenFile: await addPrincipal(dir, 'bob') });
  t.teardown(() => bob.close());
  const admin = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => admin.close());
  await alice.request('point.register', {
    registration: { name: 'mine', location: pointFixture('sink'), characteristics: { scope: 'process' } },
  });
  await t.rejects(bob.request('point.rm', { name: 'mine' }), { code: 'AMIX_ERR_NOT_OWNER' }, 'bob may not');
  await admin.request('point.rm', { name: 'mine' });
  t.same(await admin.request('point.ls'), [], 'the administrator may');
});

t.test('SIGTERM ends the daemon inside out, escalating on a stubborn point', async (t) => {
  const dir = await daemonDir(t);
  const daemon = await startDaemon(t, dir);
  t.equal(
    (
      await amix(dir, [
        'point',
        'register',
        'stubborn',
        pointFixture('stubborn'),
        '--scope',
        'process',
        '--grace-ms',
        '300',
      ])
    ).code,
    0,
  );
  const ex = JSON.parse((await amix(dir, ['execute', 'stubborn', '--json'])).stdout);
  const pid = ex.pid as number;
  t.ok(pid > 0 && pid !== daemon.pid, 'the point runs in its own process');
  daemon.kill('SIGTERM');
  const [code] = await once(daemon, 'exit');
  t.equal(code, 0, 'the daemon exits cleanly');
  t.throws(
    () => process.kill(pid, 0),
    { code: 'ESRCH' },
    'the stubborn point was ended (signal after the grace period)',
  );
  await t.rejects(stat(join(dir, 'amixd.sock')), { code: 'ENOENT' }, 'the socket is removed');
});

t.test('the daemon has a fixed number of slots', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir, ['--slots', '1']);
  const first = await DaemonClient.connect({ dir });
  t.teardown(() => first.close());
  await t.rejects(
    DaemonClient.connect({ dir }),
    { code: 'AMIX_ERR_MAX_CONNECTIONS' },
    'the second container finds no slot',
  );
});
