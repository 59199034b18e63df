// At-least-once across a crash of the peered receiving daemon: real amixd
// processes with keyed peering, a saturated stream from a point on A to a
// recording point on B (it writes the number of every message it takes
// before taking the next), B killed with SIGKILL three times and restarted
// on the same directory. Nothing sent is lost; what the point sees twice is
// at most what B flagged as possibly seen before the crash, and nothing
// arrives out of order. The scenario is bench/soak/peerCrash.ts (soak R6).
import t from 'tap';
import { constants } from 'node:fs';
import { lstat, mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPeerCrashScenario, startPeerPair } from '../dist/bench/soak/peerCrash.js';
import { DeliveryLog } from '../dist/lib/remote/delivered.js';
import { PrimitiveRegistry } from '../dist/lib/internal.js';
import { ZeromqConfirmation } from '../dist/primitives/zeromq.js';

t.test(
  '3 kill -9 of the peered receiving daemon under a saturated stream: none lost, duplicates flagged',
  async (t) => {
    const r = await runPeerCrashScenario({ kills: 3, durationMs: 8000, log: (l) => t.comment(l) });
    t.comment(JSON.stringify(r));
    t.ok(r.sent > 10_000, `a stream ran (${r.sent} messages sent)`);
    t.equal(r.recoveryMs.length, 3, 'three crashes, each recovered');
    t.equal(r.lost, 0, 'no message sent was lost');
    t.equal(r.reordered, 0, 'none arrived out of order');
    t.ok(r.duplicated <= r.flagged, `every duplicate at the point was flagged (${r.duplicated} <= ${r.flagged})`);
    t.ok(r.received >= r.sent, 'the point took at least every message');
    t.comment(`recovery per crash (ms): ${r.recoveryMs.join(', ')}`);
  },
);

t.test('at 2,000 msg/s, 2 kills: none lost, and the few duplicates are flagged', async (t) => {
  const r = await runPeerCrashScenario({ kills: 2, durationMs: 5000, ratePerSec: 2000, log: (l) => t.comment(l) });
  t.comment(JSON.stringify(r));
  t.equal(r.lost, 0, 'no message sent was lost');
  t.equal(r.reordered, 0, 'none arrived out of order');
  t.ok(r.duplicated <= r.flagged, `every duplicate at the point was flagged (${r.duplicated} <= ${r.flagged})`);
  // Before end-to-end acknowledgement about 1,300 a crash reached the point at this rate.
  t.ok(r.duplicated < 1000, `few duplicates reach the point (${r.duplicated} over 2 crashes)`);
});

t.test(
  'a receiving daemon gone for long: the sender blocks after a bounded number, none lost when it returns',
  async (t) => {
    const p = await startPeerPair();
    t.teardown(() => p.close());
    const u32 = (i: number): Uint8Array => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setUint32(0, i, true);
      return b;
    };
    let sent = 0;
    for (; sent < 1000; sent++) await p.into.send(u32(sent));
    await p.killB();
    // Accepted until the windows on the way are full, then a send waits (the block policy): no unbounded buffering.
    let waiting: Promise<void> | undefined;
    while (!waiting) {
      const s = p.into.send(u32(sent));
      const r = await Promise.race([s.then(() => 'sent'), new Promise((r) => setTimeout(r, 1500, 'blocked'))]);
      if (r === 'sent') sent++;
      else waiting = s;
    }
    const held = sent - 1000;
    t.comment(`accepted while B was down: ${held}`);
    t.ok(held < 40_000, `the sender took a bounded number while B was down (${held}), then blocked`);
    await p.startB();
    await waiting;
    sent++;
    for (let i = 0; i < 100; i++) await p.into.send(u32(sent++));
    const deadline = Date.now() + 30_000;
    let lost = sent;
    while (Date.now() < deadline) {
      const { nums } = await p.taken();
      const seen = new Uint8Array(sent);
      for (const n of nums) if (n < sent) seen[n] = 1;
      lost = sent - seen.reduce((a, x) => a + x, 0);
      if (lost === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(lost, 0, `all ${sent} messages reached the point after B came back`);
  },
);

t.test('the zeromq receiving end acknowledges only what was confirmed', async (t) => {
  const reg = new PrimitiveRegistry();
  const confirmation = new ZeromqConfirmation();
  const rx = await reg.open('zeromq', { maxmsg: 64, zeromq: { confirmation } });
  const tx = await reg.open('zeromq', { address: rx.address });
  t.teardown(async () => {
    await tx.destroy();
    await rx.destroy();
    await reg.close();
  });
  await tx.connect();
  for (let i = 0; i < 10; i++) await tx.send(new Uint8Array([i]));
  const got = await rx.receiveMany({ maxCount: 10 });
  while (got.length < 10) got.push(await rx.receive());
  // A PING is answered with the CREDIT: everything arrived, nothing confirmed.
  await tx.cycle();
  t.equal(tx.stats().pending, 10, 'the sender still holds all 10 (taken, not confirmed)');
  t.equal(confirmation.unconfirmed, 10);
  confirmation.confirm(4);
  await tx.cycle();
  t.equal(tx.stats().pending, 6, 'confirming 4 releases 4 at the sender');
  t.throws(() => confirmation.confirm(7), { code: 'AMIX_ERR_INVALID_ARG' }, 'more than was taken is refused');
  confirmation.confirm(6);
  await tx.cycle();
  t.equal(tx.stats().pending, 0, 'and the rest');
  t.throws(
    () => confirmation.bind(() => {}),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'a confirmation serves one receiving end',
  );
});

t.test('the duplicate filter file: owner-only, atomic, per peer epoch, not through a symlink', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-dl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = new DeliveryLog(dir, (l: string) => lines.push(l));
  await log.load();
  log.peer('B', 'aaaaaaaa');
  log.opened('B', 'aaaaaaaa', 's>r');
  log.taken('B', 'aaaaaaaa', 's>r', 7);
  log.opened('B', 'aaaaaaaa', 'gone>r');
  log.forget('B', 'aaaaaaaa', 'gone>r');
  await log.close();
  const st = await lstat(join(dir, 'delivered.json'));
  t.equal(st.mode & 0o777, 0o600, 'the file is 0600');
  const again = new DeliveryLog(dir, () => {});
  await again.load();
  t.match(again.get('B', 'aaaaaaaa', 's>r'), { taken: 7 }, 'taken survives a restart');
  t.equal(again.get('B', 'aaaaaaaa', 'gone>r'), undefined, 'a closed flow is forgotten');
  t.equal(again.get('B', 'bbbbbbbb', 's>r'), undefined, 'another epoch (a new peer process) has no filter');
  again.peer('B', 'bbbbbbbb');
  t.equal(again.get('B', 'bbbbbbbb', 's>r'), undefined, 'and its hello forgets the old one');
  // A link planted at the name is replaced, not written through.
  const target = join(dir, 'target');
  await writeFile(target, 'keep\n', { mode: 0o600 });
  await rm(join(dir, 'delivered.json'));
  await symlink(target, join(dir, 'delivered.json'));
  const third = new DeliveryLog(dir, () => {});
  await third.load();
  t.equal(third.get('B', 'aaaaaaaa', 's>r'), undefined, 'a symlink is not read');
  await third.save();
  const fh = await open(target, constants.O_RDONLY);
  t.equal((await fh.readFile('utf8')).trim(), 'keep', 'nor written through');
  await fh.close();
  t.notOk((await lstat(join(dir, 'delivered.json'))).isSymbolicLink(), 'the link was replaced by a file');
});
