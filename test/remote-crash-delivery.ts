// At-least-once across a crash of the peered receiving daemon: real amixd
// processes with keyed peering, a saturated stream from a point on A to a
// recording point on B (it writes the number of every message it takes
// before taking the next), B killed with SIGKILL three times and restarted
// on the same directory. Nothing sent is lost; what the point sees twice is
// at most what B flagged as possibly seen before the crash, and nothing
// arrives out of order. The scenario is bench/soak/peerCrash.ts (soak R6).
import t from 'tap';
import { constants } from 'node:fs';
import { lstat, mkdtemp, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPeerCrashScenario, startPeerPair, type PeerPair } from '../dist/bench/soak/peerCrash.js';
import { DeliveryLog } from '../dist/lib/remote/delivered.js';
import { PrimitiveRegistry, encodeEnvelope, type RemoteLinkInfo } from '../dist/lib/internal.js';
import type { PeeringStatus } from '../dist/lib/remote/types.js';
import { ZeromqConfirmation } from '../dist/primitives/zeromq.js';

/** A recorder message: `i` as the u32 it records. */
const u32 = (i: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
};

/** B's conduit counter `stat` summed over its peers, once it reaches `atLeast` (or after 10 s, what it is). */
async function peersStat(p: PeerPair, stat: 'duplicates' | 'gaps', atLeast: number): Promise<number> {
  let n = 0;
  for (let end = Date.now() + 10_000; n < atLeast && Date.now() < end;) {
    const st = await p.cb.request<PeeringStatus>('peers');
    n = st.peers.reduce((sum, x) => sum + x.stats[stat], 0);
    if (n < atLeast) await new Promise((r) => setTimeout(r, 20));
  }
  return n;
}

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

t.test(
  'the duplicate filter survives a restart of the receiving daemon: an old envelope is dropped and counted',
  async (t) => {
    const p = await startPeerPair();
    t.teardown(() => p.close());
    const N = 2000;
    for (let i = 0; i < N; i++) await p.into.send(u32(i));
    const [remote] = (await p.ca.request<RemoteLinkInfo[]>('links')).filter((l) => l.remote);
    const { sender, receiver } = remote!.remote.flows[0]!;
    const flowKey = `${sender}>${receiver}`;
    // What the point took (and B confirmed) reaches delivered.json within its write delay.
    const kept = async (): Promise<number | undefined> => {
      try {
        const v = JSON.parse(await readFile(join(p.dirB, 'delivered.json'), 'utf8')) as {
          peers: Record<string, { flows: Record<string, number> }>;
        };
        return Object.values(v.peers)[0]?.flows[flowKey];
      } catch {
        return undefined;
      }
    };
    for (let end = Date.now() + 20_000; (await kept()) !== N && Date.now() < end;)
      await new Promise((r) => setTimeout(r, 20));
    t.equal(await kept(), N, `delivered.json keeps the flow's taken number (${N})`);
    await p.killB();
    await p.startB();
    await p.peerUp();
    // Speak as A on the data end B keeps for A's key: envelopes 0..99 of the flow again, as a re-send would be.
    const slot = (await p.cb.request<PeeringStatus>('peers')).slots!.find((s) => s.key === p.keyA.publicKey)!;
    const reg = new PrimitiveRegistry();
    const tx = await reg.open('zeromq', { address: slot.dataAddress as never, zeromq: { curve: p.keyA } });
    t.teardown(async () => {
      await tx.destroy();
      await reg.close();
    });
    await tx.connect();
    for (let i = 0; i < 100; i++)
      await tx.send(encodeEnvelope({ sender, receiver, sequence: i, payload: u32(900_000 + i) }));
    await tx.cycle();
    // A's own channel may re-send what B had not acknowledged on the wire: those are dropped and counted too.
    const dup = await peersStat(p, 'duplicates', 100);
    t.ok(dup >= 100, `B, restarted, dropped the 100 as duplicates and counted them (${dup} in all)`);
    // One from beyond the next expected: a gap, dropped and counted (its sender is asked to re-send from the gap).
    await tx.send(encodeEnvelope({ sender, receiver, sequence: N + 50, payload: u32(900_500) }));
    await tx.cycle();
    const gaps = await peersStat(p, 'gaps', 1);
    t.ok(gaps >= 1, 'an envelope past a gap is dropped and counted');
    // A real message after them still arrives: the flow goes on.
    await p.into.send(u32(N));
    for (let end = Date.now() + 20_000; Date.now() < end;) {
      const { nums } = await p.taken();
      if (nums.includes(N)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const { nums } = await p.taken();
    t.ok(nums.includes(N), 'the next real message arrives');
    t.notOk(
      nums.some((n) => n >= 900_000),
      'none of the old envelopes reached the point',
    );
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

t.test('with a confirmation, credit follows confirmation: a sender never holds more than maxmsg', async (t) => {
  const reg = new PrimitiveRegistry();
  const confirmation = new ZeromqConfirmation();
  const rx = await reg.open('zeromq', { maxmsg: 8, minmsg: 4, zeromq: { confirmation } });
  const tx = await reg.open('zeromq', { address: rx.address });
  t.teardown(async () => {
    await tx.destroy();
    await rx.destroy();
    await reg.close();
  });
  await tx.connect();
  for (let i = 0; i < 8; i++) await tx.send(new Uint8Array([i]));
  for (let i = 0; i < 8; i++) await rx.receive();
  await tx.cycle();
  t.notOk(tx.trySend(new Uint8Array([8])), 'all 8 taken but none confirmed: no credit');
  const more = tx.send(new Uint8Array([8]));
  confirmation.confirm(8);
  await more;
  t.equal((await rx.receive())[0], 8, 'confirming grants credit again');
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
  // Closed now: `again.peer` scheduled a save, which would otherwise land between the rm and the symlink
  // below (EEXIST) or in the directory while the teardown removes it (ENOTEMPTY).
  await again.close();
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
  await third.close();
});
