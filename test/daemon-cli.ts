// End to end: the real amixd and amix binaries as child processes.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pointFixture } from './helpers/fabric.js';
import { AMIX, amix, daemonDir, startDaemon } from './helpers/daemon.js';

t.test('two points registered from two processes, linked, lines piped with send and recv', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  // Two separate amix processes register one point each.
  const r1 = await amix(dir, ['point', 'register', 'upper', pointFixture('upper'), '--scope', 'process']);
  t.equal(r1.code, 0, r1.stderr);
  const r2 = await amix(dir, ['point', 'register', 'fwd', pointFixture('upper'), '--scope', 'process', '--json']);
  t.match(JSON.parse(r2.stdout), { name: 'fwd', scope: 'process' }, '--json output');
  const ls = JSON.parse((await amix(dir, ['point', 'ls', '--json'])).stdout);
  t.same(ls.map((p: { name: string }) => p.name).sort(), ['fwd', 'upper']);
  const c = await amix(dir, ['connect', 'upper', 'fwd', '--direction', 'aToB', '--json']);
  t.equal(c.code, 0, c.stderr);
  const link = JSON.parse(c.stdout);
  t.match(link, { a: 'upper', b: ['fwd'], direction: 'aToB', steps: [1, 2, 5, 6] });

  const recv = spawn(process.execPath, [AMIX, 'recv', 'fwd', '--count', '3', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => recv.kill());
  // Listen now: recv may finish before the send below has even returned.
  const exited = once(recv, 'exit');
  let got = '';
  recv.stdout.on('data', (d) => {
    got += d;
  });
  await once(recv.stderr, 'data'); // "recv: linked ..."
  const sent = await amix(dir, ['send', 'upper'], 'one\ntwo\nthree\n');
  t.equal(sent.code, 0, sent.stderr);
  t.match(sent.stdout, /sent 3 message/);
  const [code] = await exited;
  t.equal(code, 0, 'recv exits after --count');
  t.equal(got, 'ONE\nTWO\nTHREE\n', 'lines went caller → upper → fwd → caller, each stage in its own process');

  const sus = JSON.parse((await amix(dir, ['suspend', link.id, '--json'])).stdout);
  t.equal(sus.state, 'suspended', 'suspend');
  const res = JSON.parse((await amix(dir, ['resume', link.id, '--json'])).stdout);
  t.equal(res.state, 'active', 'resume');
  t.equal((await amix(dir, ['reconnect', 'upper', '--json'])).code, 0, 'reconnect');
  const top = JSON.parse((await amix(dir, ['top', '--once', '--json'])).stdout);
  t.ok(
    top.links.some((l: { link: string }) => l.link === link.id),
    'top shows the link',
  );
  t.equal((await amix(dir, ['disconnect', link.id, '--json'])).code, 0, 'disconnect');
  const show = JSON.parse((await amix(dir, ['point', 'show', 'upper', '--json'])).stdout);
  t.equal(show.name, 'upper');
  t.equal((await amix(dir, ['destroy', 'upper', '--json'])).code, 0, 'destroy');
  t.equal((await amix(dir, ['point', 'rm', 'fwd'])).code, 0, 'point rm');
  const status = JSON.parse((await amix(dir, ['daemon', 'status', '--json'])).stdout);
  t.equal(status.points, 0, 'no points left');
  const prims = JSON.parse((await amix(dir, ['primitive', 'ls', '--json'])).stdout);
  t.ok(
    prims.some((p: { name: string }) => p.name === 'queueConditionProcess'),
    'primitive ls',
  );
  const stop = await amix(dir, ['daemon', 'stop', '--json']);
  t.same(JSON.parse(stop.stdout), { stopped: true });
});

t.test('misuse gives a one-line reason and a non-zero exit; -h works on every verb', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const verbs = [
    ['daemon', 'start'],
    ['daemon', 'stop'],
    ['daemon', 'status'],
    ['primitive', 'add'],
    ['primitive', 'rm'],
    ['primitive', 'ls'],
    ['point', 'register'],
    ['point', 'rm'],
    ['point', 'ls'],
    ['point', 'show'],
    ['connect'],
    ['disconnect'],
    ['suspend'],
    ['resume'],
    ['reconnect'],
    ['execute'],
    ['destroy'],
    ['send'],
    ['recv'],
    ['top'],
    ['query'],
    ['keys', 'generate'],
    ['bench'],
  ];
  for (const v of verbs) {
    const r = await amix(dir, [...v, '-h']);
    t.equal(r.code, 0, `${v.join(' ')} -h`);
    t.match(r.stdout, /^usage: amix /, `${v.join(' ')} prints usage`);
  }
  for (const g of ['caps', 'switch', 'nee']) {
    const r = await amix(dir, [g, '--help']);
    t.equal(r.code, 0, `${g} --help`);
    t.match(
      r.stdout,
      new RegExp(`^usage: amix ${g} VERB[^]*\\n  amix ${g} \\w+`),
      `${g} --help lists the group's verbs`,
    );
  }
  const bad = await amix(dir, ['connect', 'onlyOne']);
  t.equal(bad.code, 2, 'wrong argument count exits 2');
  const unknown = await amix(dir, ['frobnicate']);
  t.equal(unknown.code, 2, 'unknown verb exits 2');
  const missing = await amix(dir, ['connect', 'nobody', 'nothing']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /AMIX_ERR_UNKNOWN_POINT/, 'the code is in the reason');
  const js = await amix(dir, ['destroy', 'nobody', '--json']);
  t.equal(JSON.parse(js.stdout).error.code, 'AMIX_ERR_UNKNOWN_POINT', '--json errors are JSON too');
  const flag = await amix(dir, ['point', 'register', 'x', 'y.js', '--maxmsg', 'lots']);
  t.equal(flag.code, 2, 'a bad flag value is misuse');
  const keyFile = `${dir}-key.json`;
  const keys = JSON.parse((await amix(dir, ['keys', 'generate', '--out', keyFile, '--json'])).stdout);
  t.equal(keys.publicKey.length, 40, 'a Z85 CURVE public key');
  t.equal((await import('node:fs')).statSync(keyFile).mode & 0o777, 0o600, 'key file is owner-only');
  const noDaemon = await amix(`${dir}-absent`, ['daemon', 'status']);
  t.equal(noDaemon.code, 1);
  t.match(noDaemon.stderr, /AMIX_ERR_DAEMON_UNAVAILABLE/);
});

t.test(
  'amix daemon start runs amixd in the background; points may write to stdout (it goes to amixd.log)',
  async (t) => {
    const dir = await daemonDir(t);
    const started = await amix(dir, ['daemon', 'start', '--json']);
    t.equal(started.code, 0, started.stderr);
    const { pid } = JSON.parse(started.stdout);
    t.teardown(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    t.equal((await amix(dir, ['point', 'register', 'chatty', pointFixture('chatty'), '--scope', 'process'])).code, 0);
    const recv = spawn(process.execPath, [AMIX, 'recv', 'chatty', '--count', '1', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => recv.kill());
    const exited = once(recv, 'exit');
    let got = '';
    recv.stdout.on('data', (d) => {
      got += d;
    });
    await once(recv.stderr, 'data');
    t.equal((await amix(dir, ['send', 'chatty'], 'ping\n')).code, 0);
    await exited;
    t.equal(got, 'ping\n', 'the point that logs still works after the starting command exited');
    const log = (await import('node:fs')).readFileSync(`${dir}/amixd.log`, 'utf8');
    t.match(log, /chatty chatty started/, 'its output is in amixd.log');
    t.equal((await import('node:fs')).statSync(`${dir}/amixd.log`).mode & 0o777, 0o600, 'the log is owner-only');
    t.equal((await amix(dir, ['daemon', 'stop'])).code, 0);
  },
);
