// At-least-once across a restartable receiving point's restart: a
// sequence-numbered stream into a process point killed with SIGKILL five
// times under load (the sender blocked on credit at each kill). The point
// writes every number it takes to a file before it takes the next; the
// file is read back against what the sender's link accepted.
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRestartScenario, countTakes } from '../dist/bench/soak/restart.js';
import { makeFabric, pointFixture, text } from './helpers/fabric.js';

t.test('countTakes: lost, duplicated and reordered numbers', async (t) => {
  t.same(countTakes('0\n1\nI 5\n2\n', 3), { received: 3, lost: 0, duplicated: 0, reordered: 0 });
  t.same(countTakes('0\n2\n', 3), { received: 2, lost: 1, duplicated: 0, reordered: 0, lostSample: [1] }, 'a gap');
  t.same(countTakes('0\n1\n2\n1\n2\n3\nE\n', 4), { received: 6, lost: 0, duplicated: 2, reordered: 0 }, 'a rewind');
  t.same(countTakes('1\n0\n', 2), { received: 2, lost: 0, duplicated: 0, reordered: 1 }, 'swapped');
});

t.test('5 kill -9 of a restartable process point under load: nothing lost, in order, recovery under 1 s', async (t) => {
  const maxmsg = 500;
  const r = await runRestartScenario({ kills: 5, durationMs: 12_000, scope: 'process', maxmsg });
  t.comment(JSON.stringify(r));
  t.ok(r.sent > 5 * maxmsg, `a stream under load (${r.sent} accepted)`);
  t.equal(r.lost, 0, 'no accepted message lost');
  t.equal(r.reordered, 0, 'first takes in order');
  t.ok(
    r.duplicated <= r.redelivered,
    `duplicates (${r.duplicated}) are within the flagged redelivered (${r.redelivered})`,
  );
  t.equal(r.recoveryMs.length, 5, 'five recoveries');
  for (const [i, ms] of r.recoveryMs.entries()) t.ok(ms < 1000, `recovery ${i + 1}: ${ms} ms (kill to first take)`);
  t.ok(r.maxPending > 0 && r.maxPending <= maxmsg, `sender's pending at most maxmsg (max sampled ${r.maxPending})`);
});

// The loss the scenario above found about once in five kills, made certain:
// the point dies in the very turn it took message maxmsg/2 - 1, the take
// after which its receiving end grants credit (and, with it, acknowledges).
t.test('a message taken in the turn a restartable point is killed in reaches the next instance', async (t) => {
  const { fabric } = await makeFabric(t);
  const dir = await mkdtemp(join(tmpdir(), 'amix-dieontake-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'taken.log');
  const last = 599;
  const maxmsg = 500;
  fabric.register({
    name: 'sink',
    location: pointFixture('dieontake'),
    data: { file, died: join(dir, 'died'), dieAt: maxmsg / 2 - 1, last },
    characteristics: { scope: 'process', restart: true, maxmsg },
  });
  const out = await fabric.connect('sink', null, { direction: 'aToB' });
  const link = await fabric.connect(null, 'sink', { direction: 'aToB' });
  for (let n = 0; n <= last; n++) await link.send(Buffer.from(String(n)));
  t.equal(text(await out.receive({ signal: AbortSignal.timeout(20_000) })), 'done', 'the last message arrived');
  const taken = new Set((await readFile(file, 'utf8')).split('\n').filter(Boolean).map(Number));
  const lost: number[] = [];
  for (let n = 0; n <= last; n++) if (!taken.has(n)) lost.push(n);
  t.same(lost, [], 'none lost, the one taken in the dying turn included');
  t.ok(await readFile(join(dir, 'died')).then(() => true), 'the first instance did die at the take');
});
