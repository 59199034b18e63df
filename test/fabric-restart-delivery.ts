// At-least-once across a restartable receiving point's restart: a
// sequence-numbered stream into a process point killed with SIGKILL five
// times under load (the sender blocked on credit at each kill). The point
// writes every number it takes to a file before it takes the next; the
// file is read back against what the sender's link accepted.
import t from 'tap';
import { runRestartScenario, countTakes } from '../dist/bench/soak/restart.js';

t.test('countTakes: lost, duplicated and reordered numbers', async (t) => {
  t.same(countTakes('0\n1\nI 5\n2\n', 3), { received: 3, lost: 0, duplicated: 0, reordered: 0 });
  t.same(countTakes('0\n2\n', 3), { received: 2, lost: 1, duplicated: 0, reordered: 0 }, 'a gap');
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
