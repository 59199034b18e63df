// A queueConditionProcess receiver against senders that do not play fair:
// an idle sender cannot starve another (its excess credit is revoked, and a
// sender that never confirms is cut off), pending never exceeds maxmsg, and a
// connection costs the receiver nothing before its hello (small pre-hello
// frames, a hello timeout, a cap on connections waiting for hello), each
// refusal counted in the receiver's stats. Real processes, real sockets;
// memory is the receiver child's VmRSS/VmHWM from /proc.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { PrimitiveRegistry, type Channel } from '../dist/lib/index.js';
import { FrameKind, PROTOCOL_VERSION, type ProcessReceiverStats } from '../dist/primitives/queueConditionProcess.js';
import { CreditReceiver, creditFields, type CreditSession } from '../dist/lib/core/credit.js';
import { spawnPeer, tempDir, type Peer } from './fixtures/process-helpers.js';
import { rng } from './helpers/rng.js';

const script = fileURLToPath(new URL('./fixtures/process-trust-peer.mjs', import.meta.url));
const MiB = 1024 * 1024;

type Tap = Parameters<Parameters<typeof t.test>[1]>[0];

/** `p`, or a failure naming `what` after `ms` (so a starved sender fails the test instead of hanging it). */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

function header(kind: number, len: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32LE(len, 0);
  b[4] = kind;
  return b;
}

function helloFrame(): Buffer {
  const p = Buffer.alloc(33);
  p[0] = PROTOCOL_VERSION;
  randomBytes(16).copy(p, 1);
  return Buffer.concat([header(FrameKind.hello, 33), p]);
}

/** A raw connection: what the receiver wrote back, and a promise of all of it once the socket closed. */
interface Raw {
  socket: Socket;
  back: Buffer[];
  closed: Promise<string>;
  /** Resolves once the receiver wrote something (a helloAck, or an error frame). */
  answered: Promise<void>;
}

function raw(t: Tap, path: string, first?: Buffer, opts: { destroyOnAnswer?: boolean } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const back: Buffer[] = [];
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const closed = new Promise<string>((r) => socket.on('close', () => r(Buffer.concat(back).toString('latin1'))));
    t.teardown(() => socket.destroy());
    socket.on('data', (c: Buffer) => {
      back.push(c);
      answer();
      if (opts.destroyOnAnswer) socket.destroy();
    });
    socket.on('error', () => {});
    socket.once('connect', () => {
      if (first) socket.write(first);
      resolve({ socket, back, closed, answered });
    });
    socket.once('error', reject);
  });
}

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

interface Report {
  counts: Record<string, number>;
  bad: number;
  maxPending: number;
  pending: number;
  stats: ProcessReceiverStats;
}

async function receiverChild(
  t: Tap,
  runtimeDir: string,
  extra: Record<string, unknown> = {},
): Promise<{ peer: Peer; path: string; pid: number; report(): Promise<Report> }> {
  const peer = spawnPeer(t, { role: 'receive', runtimeDir, ...extra }, script);
  const { address, pid } = await peer.next<{ address: { path: string }; pid: number }>(
    (m) => 'address' in m,
    'the receiver address',
  );
  return {
    peer,
    path: address.path,
    pid,
    report: () => {
      peer.proc.send({ cmd: 'report' });
      return peer.next<Report>((m) => 'counts' in m, 'a report');
    },
  };
}

async function senderChild(t: Tap, runtimeDir: string, path: string, tag: number): Promise<Peer> {
  const peer = spawnPeer(t, { role: 'send', runtimeDir, address: { path }, tag }, script);
  await peer.next((m) => 'ready' in m, `sender ${tag} ready (its hello answered)`);
  return peer;
}

function command<T>(peer: Peer, cmd: Record<string, unknown>, key: string, what: string): Promise<T> {
  peer.proc.send(cmd);
  return peer
    .next<T>((m) => key in m || 'error' in m, what)
    .then((m) => {
      if ('error' in (m as object)) throw new Error(`${what}: ${(m as { error: string }).error}`);
      return m;
    });
}

t.test('a sender idle after hello does not starve the next one; it delivers everything when it wakes', async (t) => {
  const runtimeDir = tempDir(t);
  const rx = await receiverChild(t, runtimeDir);
  const idle = await senderChild(t, runtimeDir, rx.path, 1);
  const busy = await senderChild(t, runtimeDir, rx.path, 2);
  // Before the fix the first sender held all of maxmsg: 0 of these got through until it left.
  await within(20_000, command(busy, { cmd: 'send', count: 1000 }, 'sent', 'the second sender'), 'the second sender');
  rx.peer.proc.send({ cmd: 'waitFor', tag: 2, count: 1000 });
  await within(
    10_000,
    rx.peer.next((m) => m.reached === 2, 'delivery'),
    'the second sender delivered',
  );
  await within(20_000, command(idle, { cmd: 'send', count: 1000 }, 'sent', 'the first sender'), 'the first sender');
  rx.peer.proc.send({ cmd: 'waitFor', tag: 1, count: 1000 });
  await within(
    10_000,
    rx.peer.next((m) => m.reached === 1, 'delivery'),
    'the first sender delivered',
  );
  const r = await rx.report();
  t.same(r.counts, { 1: 1000, 2: 1000 }, 'both senders delivered all 1000 of their messages');
  t.equal(r.bad, 0, 'each in its own order');
  t.ok(r.stats.creditRevocations >= 1, `the idle sender's excess credit was revoked (${r.stats.creditRevocations})`);
  t.ok(r.maxPending <= 4096, `pending peaked at ${r.maxPending}, within the default maxmsg 4096`);
});

t.test(
  'two senders and a receiver that does not consume: pending stays within maxmsg, and both get a share',
  async (t) => {
    const runtimeDir = tempDir(t);
    const maxmsg = 64;
    const rx = await receiverChild(t, runtimeDir, { hold: true, options: { maxmsg, minmsg: 32 } });
    const first = await senderChild(t, runtimeDir, rx.path, 1);
    const second = await senderChild(t, runtimeDir, rx.path, 2);
    // The second sender's credit comes once the first confirmed the revocation; a blocking send waits for it
    // (before the fix, for ever: the first held all of maxmsg). Each command ends with a cycle, answered only
    // after every message sent before it was read: the receiver's queue then holds them all.
    await within(10_000, command(second, { cmd: 'send', count: 20 }, 'sent', 'second sends 20'), 'second sends 20');
    const b = await command<{ tried: number }>(second, { cmd: 'try', max: 1000 }, 'tried', 'second fills its credit');
    const a = await command<{ tried: number }>(first, { cmd: 'try', max: 1000 }, 'tried', 'first fills its credit');
    const b2 = 20 + b.tried;
    const held = await rx.report();
    t.ok(a.tried > 0, `the first sender kept a share (${a.tried} messages), the second got ${b2}`);
    t.equal(held.pending, a.tried + b2, 'every message taken by a sender is queued at the receiver');
    t.ok(held.pending <= maxmsg, `pending ${held.pending} within maxmsg ${maxmsg}, consuming nothing`);
    t.equal(held.pending, maxmsg, 'and the whole of maxmsg is in use: the revoked credit went to the other sender');
    rx.peer.proc.send({ cmd: 'consume' });
    await Promise.all([
      within(20_000, command(first, { cmd: 'send', count: 500 }, 'sent', 'first'), 'the first sender'),
      within(20_000, command(second, { cmd: 'send', count: 500 }, 'sent', 'second'), 'the second sender'),
    ]);
    rx.peer.proc.send({ cmd: 'waitFor', tag: 1, count: a.tried + 500 });
    rx.peer.proc.send({ cmd: 'waitFor', tag: 2, count: b2 + 500 });
    await within(
      10_000,
      rx.peer.next((m) => m.reached === 1, 'delivery'),
      'first delivered',
    );
    await within(
      10_000,
      rx.peer.next((m) => m.reached === 2, 'delivery'),
      'second delivered',
    );
    const r = await rx.report();
    t.same(r.counts, { 1: a.tried + 500, 2: b2 + 500 }, 'nothing lost');
    t.equal(r.bad, 0, 'order per sender kept');
    t.ok(r.maxPending <= maxmsg, `pending peaked at ${r.maxPending}, within maxmsg ${maxmsg}`);
  },
);

t.test('a sender that never confirms a revocation is cut off and counted; the other gets its share', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx: Channel = await reg.open('queueConditionProcess', { maxmsg: 16, minmsg: 8, revokeTimeoutMs: 300 });
  t.teardown(() => rx.destroy());
  const path = (rx.address as { path: string }).path;
  // Says hello, takes all 16 of credit, then never reads or answers again.
  const hog = await raw(t, path, helloFrame());
  await hog.answered;
  hog.socket.pause();
  const tx = await reg.open('queueConditionProcess', { address: rx.address });
  t.teardown(() => tx.destroy());
  const got: number[] = [];
  const reading = (async () => {
    for (let i = 0; i < 40; i++) got.push(Buffer.from(await rx.receive()).readUInt32LE(0));
  })();
  for (let i = 0; i < 40; i++) {
    const m = Buffer.alloc(4);
    m.writeUInt32LE(i, 0);
    await within(5000, tx.send(m), `message ${i}`);
  }
  await within(5000, reading, 'the receiver got them');
  t.same(
    got,
    Array.from({ length: 40 }, (_, i) => i),
    'the honest sender delivered every message, in order',
  );
  const st = rx.stats() as ProcessReceiverStats;
  t.equal(st.revokeTimeouts, 1, 'the silent sender was cut off for not confirming, and counted');
  t.ok(st.creditRevocations >= 1, 'after a revocation was asked of it');
  hog.socket.resume();
  t.match(await hog.closed, /AMIX_ERR_TIMEOUT/, 'it was told why');
});

t.test('16 connections with a 60 MiB partial data frame before hello cost the receiver nothing', async (t) => {
  const runtimeDir = tempDir(t);
  const rx = await receiverChild(t, runtimeDir);
  const before = procStatus(rx.pid, 'VmRSS');
  const body = Buffer.alloc(16 * MiB, 7);
  const conns = await Promise.all(
    Array.from({ length: 16 }, () => raw(t, rx.path, Buffer.concat([header(FrameKind.data, 60 * MiB), body]))),
  );
  const backs = await within(20_000, Promise.all(conns.map((c) => c.closed)), 'the receiver closed them');
  const peak = procStatus(rx.pid, 'VmHWM');
  t.ok(
    peak - before < 100 * MiB,
    `receiver RSS ${Math.round(before / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB (under +100 MiB)`,
  );
  t.ok(
    backs.every((b) => /AMIX_ERR_PROTOCOL.*data frame before hello/.test(b)),
    'each was told: data frame before hello',
  );
  const r = await rx.report();
  t.equal(r.stats.preHelloRefused, 16, 'all 16 refused before hello and counted');
});

t.test(
  '1000 connections with 1 MiB partial frames before hello: bounded memory, a legit sender served throughout',
  async (t) => {
    const runtimeDir = tempDir(t);
    const rx = await receiverChild(t, runtimeDir);
    const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
    t.teardown(() => reg.close());
    const tx = await reg.open('queueConditionProcess', { address: { path: rx.path } });
    t.teardown(() => tx.destroy());
    const before = procStatus(rx.pid, 'VmRSS');
    const attack = Buffer.concat([header(FrameKind.data, 2 * MiB), Buffer.alloc(MiB, 1)]);
    let seq = 0;
    let worstCycleMs = 0;
    let maxRss = before;
    for (let batch = 0; batch < 10; batch++) {
      const conns = await Promise.all(
        Array.from({ length: 100 }, () => raw(t, rx.path, attack, { destroyOnAnswer: true })),
      );
      // The legit sender goes on while the batch is being refused.
      const started = performance.now();
      for (let i = 0; i < 10; i++) {
        const m = Buffer.alloc(8);
        m.writeUInt32LE(7, 0);
        m.writeUInt32LE(seq++, 4);
        await tx.send(m);
      }
      await within(10_000, tx.cycle(), `batch ${batch}: the legit sender's cycle`);
      worstCycleMs = Math.max(worstCycleMs, performance.now() - started);
      await within(20_000, Promise.all(conns.map((c) => c.closed)), `batch ${batch} closed`);
      maxRss = Math.max(maxRss, procStatus(rx.pid, 'VmRSS'));
    }
    const peak = procStatus(rx.pid, 'VmHWM');
    t.ok(
      peak - before < 100 * MiB,
      `receiver RSS ${Math.round(before / MiB)} MiB before, ${Math.round(maxRss / MiB)} MiB at most between batches, peak ${Math.round(peak / MiB)} MiB (under +100 MiB)`,
    );
    rx.peer.proc.send({ cmd: 'waitFor', tag: 7, count: seq });
    await within(
      10_000,
      rx.peer.next((m) => m.reached === 7, 'delivery'),
      'the legit messages delivered',
    );
    const r = await rx.report();
    t.equal(r.counts['7'], 100, 'the legit sender delivered all 100 messages during the flood');
    t.equal(r.bad, 0, 'in order');
    t.ok(worstCycleMs < 5000, `its slowest round of 10 messages and a cycle took ${Math.round(worstCycleMs)} ms`);
    t.equal(
      r.stats.preHelloRefused + r.stats.connectionsOverCap,
      1000,
      `every attacking connection refused and counted (${r.stats.preHelloRefused} at their first header, ${r.stats.connectionsOverCap} over the cap)`,
    );
  },
);

t.test('refusals before hello and after it are closed and counted', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess', { helloTimeoutMs: 1000, maxPreHelloConnections: 3 });
  t.teardown(() => rx.destroy());
  const path = (rx.address as { path: string }).path;
  const stats = () => rx.stats() as ProcessReceiverStats;

  t.match(
    await (
      await raw(t, path, header(FrameKind.error, 5000))
    ).closed,
    /AMIX_ERR_FRAME_TOO_LARGE/,
    'an error frame of 5000 bytes before hello: refused at its header',
  );
  t.match(
    await (
      await raw(t, path, header(FrameKind.hello, 1_000_000))
    ).closed,
    /AMIX_ERR_FRAME_TOO_LARGE/,
    'a hello announcing 1 MB: refused at its header',
  );
  t.match(
    await (
      await raw(t, path, header(FrameKind.credit, 16))
    ).closed,
    /AMIX_ERR_BAD_FRAME/,
    'a kind the receiver never takes before hello',
  );
  t.equal(stats().preHelloRefused, 3, 'three pre-hello refusals counted');

  const silent = await raw(t, path);
  const partial = await raw(t, path, helloFrame().subarray(0, 10));
  t.match(await silent.closed, /AMIX_ERR_TIMEOUT/, 'a connection that says nothing is closed at the hello timeout');
  t.match(await partial.closed, /AMIX_ERR_TIMEOUT/, 'so is one that sends half a hello');
  t.equal(stats().helloTimeouts, 2, 'both hello timeouts counted');

  const waiting = [await raw(t, path), await raw(t, path), await raw(t, path)];
  const over = await raw(t, path);
  t.match(await over.closed, /AMIX_ERR_MAX_CONNECTIONS/, 'a fourth connection waiting for hello is refused at once');
  await t.rejects(
    reg.open('queueConditionProcess', { address: rx.address }),
    /AMIX_ERR_MAX_CONNECTIONS/,
    'a sender too, and it is told why',
  );
  t.equal(stats().connectionsOverCap, 2, 'both counted over the cap');
  await Promise.all(waiting.map((c) => c.closed));
  const tx = await reg.open('queueConditionProcess', { address: rx.address });
  t.teardown(() => tx.destroy());
  await tx.send(Buffer.from('in'));
  t.equal(Buffer.from(await rx.receive()).toString(), 'in', 'once the idle ones timed out, a sender gets in');
  t.equal(stats().helloTimeouts, 5, 'the three idle ones timed out and were counted');

  const unknown = await raw(t, path, Buffer.concat([helloFrame(), header(99, 0)]));
  t.match(await unknown.closed, /AMIX_ERR_BAD_FRAME/, 'after hello, an unknown kind closes the connection');
  t.equal(stats().badFrames, 1, 'counted as a bad frame');
  const twice = await raw(t, path, Buffer.concat([helloFrame(), helloFrame()]));
  t.match(await twice.closed, /AMIX_ERR_PROTOCOL.*second hello/, 'a second hello is a protocol error');
  const falseAck = Buffer.alloc(8);
  falseAck.writeDoubleLE(5, 0);
  const lying = await raw(t, path, Buffer.concat([helloFrame(), header(FrameKind.revokeAck, 8), falseAck]));
  t.match(await lying.closed, /AMIX_ERR_PROTOCOL.*answers no revocation/, 'so is a revocation answer nobody asked for');
  t.equal(stats().protocolErrors, 2, 'both counted as protocol errors');
  t.equal(stats().preHelloRefused, 3, 'none of them counted as pre-hello refusals');
});

t.test('the credit engine, modelled with frames in flight: pending within maxmsg, every sender served', async (t) => {
  // Senders that follow the protocol, frames in flight both ways (FIFO per connection, connections
  // interleaved at random), sessions arriving over time, some asleep after hello, a consumer that
  // sometimes stalls. Reproduce with AMIX_FUZZ_SEED=<seed>.
  const seed = Number(process.env.AMIX_FUZZ_SEED ?? 0xc4ed17);
  t.comment(`credit model seed ${seed}`);
  type Frame =
    { k: 'data' } | { k: 'ack'; limit: number } | { k: 'credit'; limit: number } | { k: 'revoke'; limit: number };
  interface Tx {
    seq: number;
    limit: number;
    left: number;
    wakeAt: number;
    toRx: Frame[];
    toTx: Frame[];
    ended: boolean;
  }
  type S = CreditSession & { tx: Tx };
  let violations = 0;
  let stalls = 0;
  let consumed = 0;
  let revocations = 0;
  for (let run = 0; run < 40; run++) {
    const r = rng(seed + run);
    const maxmsg = 1 + Math.floor(r() * 64);
    const minmsg = Math.floor(r() * maxmsg);
    const credit = new CreditReceiver<S>({
      maxmsg,
      minmsg,
      pool: 'shared',
      onGrant: (s) => s.tx.toTx.push({ k: 'credit', limit: s.limit }),
      onRevoke: (s, limit) => s.tx.toTx.push({ k: 'revoke', limit }),
    });
    const queue: S[] = [];
    const all: S[] = [];
    const check = (what: string) => {
      if (credit.queued + credit.outstanding > maxmsg || credit.outstanding < 0 || queue.length !== credit.queued) {
        if (violations++ < 3) t.fail(`run ${run} (${what}): queued ${credit.queued} outstanding ${credit.outstanding}`);
      }
    };
    const sessions = 2 + Math.floor(r() * 6);
    for (let step = 0; step < 200_000; step++) {
      const late = step > 3000;
      if (all.length < sessions && r() < 0.002 + (late ? 1 : 0)) {
        const tx: Tx = {
          seq: 0,
          limit: 0,
          left: 50 + Math.floor(r() * 300),
          wakeAt: r() < 0.4 ? 2000 : 0,
          toRx: [],
          toTx: [],
          ended: false,
        };
        const s = credit.open({ ...creditFields(`s${all.length}`, 0), tx }) as S;
        credit.bind(s);
        tx.limit = s.limit; // the helloAck
        all.push(s);
        check('bind');
      }
      const live = all.filter((s) => !s.tx.ended);
      if (live.length === 0 && all.length === sessions) break;
      const s = live[Math.floor(r() * live.length)];
      const roll = r();
      if (s && roll < 0.35) {
        const tx = s.tx;
        if (tx.left > 0 && tx.seq < tx.limit && step >= tx.wakeAt) {
          tx.seq++;
          tx.left--;
          tx.toRx.push({ k: 'data' });
        } else if (tx.left === 0 && tx.toRx.length === 0 && s.queued === 0 && s.consumed === tx.seq) {
          tx.ended = true;
          credit.end(s);
          check('end');
        }
      } else if (s && roll < 0.6 && s.tx.toRx.length > 0) {
        const f = s.tx.toRx.shift()!;
        if (f.k === 'data') {
          if (!credit.admit(s) && violations++ < 3) t.fail(`run ${run}: a sender within its credit was refused`);
          else queue.push(s);
        } else if (f.k === 'ack' && !credit.revoked(s, f.limit) && violations++ < 3) {
          t.fail(`run ${run}: an honest revocation answer was refused`);
        }
        check('frame at rx');
      } else if (s && roll < 0.85 && s.tx.toTx.length > 0) {
        const f = s.tx.toTx.shift()!;
        const tx = s.tx;
        if (f.k === 'credit') tx.limit = Math.max(tx.limit, f.limit);
        else if (f.k === 'revoke') {
          tx.limit = Math.max(tx.seq, Math.min(f.limit, tx.limit));
          tx.toRx.push({ k: 'ack', limit: tx.limit });
        }
      } else if (queue.length > 0 && (late || r() < 0.7)) {
        credit.consume(queue.shift()!);
        consumed++;
        check('consume');
      }
      if (step === 199_999) stalls++;
    }
    revocations += credit.revocations;
    for (const s of all) {
      if (!s.tx.ended && violations++ < 3)
        t.fail(`run ${run}: session ${s.key} never finished (${s.tx.left} left, limit ${s.tx.limit}, seq ${s.tx.seq})`);
    }
  }
  t.equal(violations, 0, '40 seeded runs: queued + outstanding never above maxmsg, no honest sender refused');
  t.equal(stalls, 0, 'and every session, the sleepers included, sent and had consumed all of its messages');
  t.ok(consumed > 10_000 && revocations > 40, `(${consumed} messages consumed, ${revocations} revocations answered)`);
});
