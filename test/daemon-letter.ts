// The seed's scenarios through the real amixd and amix binaries: named
// points of either scope linked by name from the command line.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pointFixture } from './helpers/fabric.js';
import { AMIX, amix, daemonDir, startDaemon } from './helpers/daemon.js';

t.test('002 ¶286-306 through amixd: thread-thread and thread-process links by name carry messages', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  // in (process) → t1 (thread) → t2 (thread) → out (process): the middle two links name no container.
  for (const [name, scope] of [
    ['in', 'process'],
    ['t1', 'thread'],
    ['t2', 'thread'],
    ['out', 'process'],
  ] as const) {
    const r = await amix(dir, ['point', 'register', name, pointFixture('upper'), '--scope', scope]);
    t.equal(r.code, 0, `register ${name} (${scope}) ${r.stderr}`);
  }
  for (const [a, b] of [
    ['in', 't1'],
    ['t1', 't2'],
    ['t2', 'out'],
  ]) {
    const c = await amix(dir, ['connect', a!, b!, '--direction', 'aToB', '--json']);
    t.equal(c.code, 0, `connect ${a} ${b}: ${c.stderr}`);
    t.match(JSON.parse(c.stdout || '{}'), { a, b: [b] }, `${a} → ${b} linked`);
  }
  const recv = spawn(process.execPath, [AMIX, 'recv', 'out', '--count', '2', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => recv.kill());
  const exited = once(recv, 'exit');
  let got = '';
  recv.stdout.on('data', (d) => (got += d));
  await once(recv.stderr, 'data'); // "recv: linked ..."
  const sent = await amix(dir, ['send', 'in'], 'one\ntwo\n');
  t.equal(sent.code, 0, sent.stderr);
  const [code] = await exited;
  t.equal(code, 0, 'recv exits after --count');
  t.equal(got, 'ONE\nTWO\n', 'the lines crossed process → thread → thread → process');
});
