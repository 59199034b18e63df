// Foreign publishers on the nats primitive's subjects (anyone allowed on the
// NATS server may publish there) and malformed frames (seeded, reproducible):
// parseFrame fails with AMIX_ERR_BAD_FRAME only; a receiving end fed
// garbage, forged frames (right shape, wrong key) and replays of its own
// traffic counts every bad frame and every duplicate, never crashes, and
// keeps serving its real sender; forged CREDIT cannot raise a sender's
// window.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { PrimitiveRegistry, type AmixError } from '../dist/lib/index.js';
import { FrameKind, parseFrame, signFrame, type NatsStats } from '../dist/primitives/nats.js';
import { natsSkip, startNats } from './helpers/nats.js';
import { rng } from './helpers/rng.js';

t.setTimeout(60_000);

const SEED = Number(process.env.AMIX_FUZZ_SEED ?? 0x4a75);

/** A frame body signed as an end holding `key` would (the session key of its kind, a Poly1305 tag). */
function signed(key: Buffer, body: Buffer): Buffer {
  return body.length < 21 ? body : signFrame(key, body);
}

/** A DATA frame body (no MAC) of `count` small messages from session 7…7, numbered from `first`. */
function dataBody(count: number, first = 0): Buffer {
  // kind, session 7…7, nonce (zero), firstSeq, firstUnacked
  const head = Buffer.alloc(37);
  head[0] = FrameKind.data;
  head.fill(7, 1, 9);
  head.writeUInt32BE(first, 25);
  const parts = [head];
  for (let i = 0; i < count; i++) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(3);
    parts.push(len, Buffer.from('abc'));
  }
  return Buffer.concat(parts);
}

/** Garbage, random kinds, and mutated DATA frames; signed under `key` when `sign` (so the parser's body checks run). */
function fuzzFrames(rand: () => number, n: number, key: Buffer, sign: boolean): Buffer[] {
  const kinds = [FrameKind.data, FrameKind.hello, FrameKind.ping, FrameKind.credit, 0x00, 0x7f, 0xff];
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    let b: Buffer;
    if (i % 3 === 0) {
      b = Buffer.alloc(Math.floor(rand() * 80));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
    } else if (i % 3 === 1) {
      b = Buffer.alloc(1 + Math.floor(rand() * 40));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
      b[0] = kinds[Math.floor(rand() * kinds.length)]!;
    } else {
      b = dataBody(1 + Math.floor(rand() * 4));
      const flips = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < flips; k++) b[1 + Math.floor(rand() * (b.length - 1))] = Math.floor(rand() * 256);
      if (rand() < 0.5) b = b.subarray(0, Math.floor(rand() * b.length));
    }
    out.push(sign ? signed(key, b) : b);
  }
  return out;
}

t.test('parseFrame accepts or rejects with AMIX_ERR_BAD_FRAME, nothing else', async (t) => {
  const rand = rng(SEED);
  const key = randomBytes(32);
  for (const sign of [false, true]) {
    let other = 0;
    let rejected = 0;
    let accepted = 0;
    for (const f of fuzzFrames(rand, 20_000, key, sign)) {
      try {
        parseFrame(f, key, 1024);
        accepted++;
      } catch (err) {
        if ((err as AmixError).code === 'AMIX_ERR_BAD_FRAME') rejected++;
        else other++;
      }
    }
    t.equal(other, 0, `${sign ? 'signed' : 'unsigned'}: no error but AMIX_ERR_BAD_FRAME (seed ${SEED})`);
    if (!sign) t.equal(accepted, 0, 'no unsigned frame passes the MAC check');
    else t.ok(rejected > 0 && accepted > 0, `signed: some rejected (${rejected}), some well-formed (${accepted})`);
  }
  t.throws(
    () => parseFrame(signed(randomBytes(32), dataBody(2)), key, 1024),
    { code: 'AMIX_ERR_BAD_FRAME' },
    'a well-formed frame under another key is refused',
  );
  t.equal(parseFrame(signed(key, dataBody(2, 5)), key, 1024).kind, 'data', 'the same frame under the link key parses');
});

const skip = await natsSkip();
if (skip) {
  t.comment(`skip: ${skip}`);
  t.skip(`nats primitive foreign publishers: ${skip}`);
} else {
  t.test(
    'a foreign publisher cannot inject, forge credit or disturb the link; every bad frame is counted',
    async (t) => {
      const server = await startNats(t);
      const reg = new PrimitiveRegistry({ channelDefaults: { nats: { servers: server.url } } });
      t.teardown(() => reg.close());
      const badRx: AmixError[] = [];
      const rx = await reg.open('nats', {
        maxmsg: 8,
        minmsg: 4,
        nats: { servers: server.url, onBadFrame: (e: AmixError) => badRx.push(e) },
      });
      t.teardown(() => rx.destroy());
      const tx = await reg.open('nats', { address: rx.address, discard: 'reject' });
      t.teardown(() => tx.destroy());
      const subject = String(rx.address.subject);
      // The foreign client: on the same server, no link key. It watches the link's traffic too.
      const foreign = await connect({ servers: server.url });
      t.teardown(() => foreign.close());
      const seen: Uint8Array[] = [];
      let creditSubject = '';
      // The foreign client reads from its own connection: what the link's ends published reaches it
      // later, in no order across the two ends. Wait for the DATA frame holding the last of the 8
      // messages (one publisher's frames arrive in order, so the others came first) and for one CREDIT.
      let lastSeen = false;
      let watched!: () => void;
      const allWatched = new Promise<void>((resolve) => (watched = resolve));
      const check = () => {
        if (lastSeen && creditSubject) watched();
      };
      foreign.subscribe(subject, {
        callback: (_e, m) => {
          seen.push(m.data.slice());
          if (m.data[0] === FrameKind.data && Buffer.from(m.data).includes('real7')) lastSeen = true;
          check();
        },
      });
      foreign.subscribe(`${subject}.c.*`, {
        callback: (_e, m) => {
          creditSubject = m.subject;
          check();
        },
      });
      await foreign.flush();
      await tx.connect();
      for (let i = 0; i < 8; i++) t.ok(tx.trySend(Buffer.from(`real${i}`)), `real${i} within credit`);
      await tx.cycle();
      await allWatched;
      // The replays below are the link's frames only, not the foreign client's own junk echoed back.
      const linkFrames = seen.slice();

      // 1. garbage and forged frames on the data subject, signed with a key of the attacker's own
      const rand = rng(SEED + 1);
      const junk = [
        ...fuzzFrames(rand, 600, randomBytes(32), false),
        ...fuzzFrames(rand, 300, randomBytes(32), true),
        signed(randomBytes(32), dataBody(3, 8)),
      ];
      for (const f of junk) foreign.publish(subject, f);
      // 2. replays of the link's own frames (captured on the subject)
      t.ok(
        linkFrames.length > 0,
        `the foreign client saw ${linkFrames.length} frames of the link (the subject is not a secret)`,
      );
      const replays = linkFrames.length;
      for (const f of linkFrames) foreign.publish(subject, f);
      // 3. forged CREDIT (no key) granting a huge limit, and garbage, on the sender's credit subject
      t.ok(creditSubject.startsWith(`${subject}.c.`), "the foreign client found the sender's credit subject");
      // kind, the sender's session (from the subject), nonce, expected, limit 1e6, token, flags; a tag under another key
      const forgedBody = Buffer.alloc(42);
      forgedBody[0] = FrameKind.credit;
      Buffer.from(creditSubject.split('.').pop()!, 'hex').copy(forgedBody, 1);
      forgedBody.writeUInt32BE(1_000_000, 33);
      const forged = signFrame(randomBytes(32), forgedBody);
      for (let i = 0; i < 50; i++) foreign.publish(creditSubject, i === 0 ? forged : randomBytes(58));
      await foreign.flush();
      // Published after the junk through the same server: once the cycle is answered both ends have read it all.
      await tx.cycle();
      t.equal(
        (rx.stats() as NatsStats).badFrames,
        junk.length,
        `all ${junk.length} junk frames counted at the receiving end`,
      );
      t.equal(badRx.length, junk.length, 'and reported to onBadFrame');
      t.ok(
        badRx.every((e) => e.code === 'AMIX_ERR_BAD_FRAME'),
        'each as AMIX_ERR_BAD_FRAME',
      );
      t.equal(
        (tx.stats() as NatsStats).badFrames,
        50,
        'all 50 forged or garbage CREDIT frames counted at the sending end',
      );
      t.ok((rx.stats() as NatsStats).duplicates >= 8, 'the replayed DATA counted as duplicates');
      t.throws(
        () => tx.trySend(Buffer.from('over')),
        { code: 'AMIX_ERR_QUEUE_FULL' },
        'the forged credit granted nothing: still 8 pending at most',
      );
      const got: string[] = [];
      for (let i = 0; i < 8; i++) got.push(Buffer.from(await rx.receive()).toString());
      t.same(
        got,
        Array.from({ length: 8 }, (_, i) => `real${i}`),
        'only the real messages arrived, once each, in order',
      );
      t.equal(rx.tryReceive(), undefined, `nothing injected or replayed (${replays} replays) came through`);
      // The link still works after all that (a second sender, blocking at zero credit rather than refusing).
      const tx2 = await reg.open('nats', { address: rx.address });
      t.teardown(() => tx2.destroy());
      let ok = 0;
      for (let i = 8; i < 108; i++) {
        await tx2.send(Buffer.from(`real${i}`));
        if (Buffer.from(await rx.receive()).toString() === `real${i}`) ok++;
      }
      t.equal(ok, 100, 'the link carries on: 100 more, in order');
    },
  );
}
