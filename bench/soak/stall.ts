/**
 * Soak R7, stalled peers: four sender/receiver pairs on one fabric (`R7`),
 * or each from a point on amixd A to a point on amixd B over the one
 * peering conduit between them (`R7-daemon`), each
 * sender paced at the same rate. Midway, the receiver of pair `rxStall`
 * stops reading (its sender is left blocked on a full window) and the
 * sender of pair `txStall` stops writing (its receiver is left waiting).
 * The other two pairs (`free-process`, `free-thread`) must not notice: each
 * receiver reports how many it has taken four times a second (on a link of
 * its own to the runner), and each free pair's rate after the stall must
 * stay within 20 % of its rate before it, with no second-long gap between
 * reports; the stalled receiver's
 * pending stays within `maxmsg`, and everything the stalled sender sent
 * before it stopped is delivered.
 *
 * @module
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, type PointRegistrationInput } from '../../lib/index.js';
import { sleep, tempDir, type DeliveryCounts, type ScenarioRow } from './common.js';
import { startDaemonPair } from './daemons.js';

const MAXMSG = 1000;
/** Each sender's pace: well below what one core moves, so the free pairs' rate is set by the pace, not by load. */
const RATE = 20_000;
/** A free pair's rate after the stall over its rate before must be at least this. */
const MIN_RATIO = 0.8;
/** No free pair may go this long without taking a message. */
const MAX_GAP_MS = 1000;
/** How long after the senders' end the free receivers' results may take. */
const RESULT_GRACE_MS = 10_000;

const point = (name: string) => fileURLToPath(new URL(`./points/${name}.js`, import.meta.url));

/** Options of {@link runStall}. */
export interface StallOptions {
  /** Where the pairs run: one fabric in this process, or across two peered amixd (over the conduit, or direct links). */
  where: 'fabric' | 'daemon' | 'direct';
  /** How long every sender runs; the stalls come at half of it. */
  durationMs: number;
  log?: (msg: string) => void;
}

interface Pair {
  name: string;
  scope: 'thread' | 'process';
  stall?: 'receiver' | 'sender';
}

const PAIRS: Pair[] = [
  { name: 'rxStall', scope: 'process', stall: 'receiver' },
  { name: 'txStall', scope: 'process', stall: 'sender' },
  { name: 'free-process', scope: 'process' },
  { name: 'free-thread', scope: 'thread' },
];

/** What R7 needs of where it runs. */
interface StallEnv {
  /** Register a sender (`tx`) or receiver (`rx`) point. */
  register(side: 'tx' | 'rx', reg: PointRegistrationInput): Promise<void>;
  /** A link from point `rx` to this application, for its progress reports and result. */
  resultLink(rx: string): Promise<{ receive(): Promise<{ data: Uint8Array }> }>;
  /** Link tx to rx; resolves with the link's id. */
  connect(tx: string, rx: string): Promise<string>;
  stats(side: 'tx' | 'rx', name: string): Promise<HostStats>;
  /** End the sender left blocked on the stalled receiver (fabric: terminate the instance; daemon: disconnect its link). */
  endBlocked(name: string, link: string): Promise<void>;
  close(): Promise<void>;
}

async function fabricEnv(): Promise<StallEnv> {
  const dir = await tempDir('r7');
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: [] });
  return {
    register: async (_side, reg) => void fabric.register(reg),
    resultLink: (rx) => fabric.connect(rx, null, { direction: 'aToB' }),
    connect: async (tx, rx) => (await fabric.connect(tx, rx, { direction: 'aToB' })).id,
    stats: async (_side, name) => (await fabric.stats(name)) as HostStats,
    endBlocked: (name) => fabric.terminate(name),
    close: async () => {
      await fabric.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function daemonEnv(direct: boolean): Promise<StallEnv> {
  const pair = await startDaemonPair();
  const client = (side: 'tx' | 'rx') => (side === 'tx' ? pair.a : pair.b);
  return {
    register: async (side, registration) => {
      // A thread receiver in amixd B reports to this process: its sending end must cross processes. A direct
      // link's receiving point needs a process of its own (lib/remote/direct.ts): the thread pair's rx is one.
      if (side === 'rx' && registration.characteristics?.scope === 'thread')
        registration = direct
          ? { ...registration, characteristics: { ...registration.characteristics, scope: 'process' } }
          : { ...registration, sendPrimitive: 'queueConditionProcess' };
      await client(side).request('point.register', { registration });
    },
    resultLink: (rx) => pair.b.connect(rx, null, { direction: 'aToB' }),
    // By name from A: B's point is found through the federated directory; the link goes over the conduit,
    // or (`direct`) straight from tx's process to rx's.
    connect: async (tx, rx) =>
      (
        await pair.a.request<{ id: string }>('connect', {
          a: tx,
          b: rx,
          direction: 'aToB',
          ...(direct ? { direct: true } : {}),
        })
      ).id,
    stats: async (side, name) => {
      const s = await client(side).request<{ instances: Record<string, HostStats | { error: string }> }>('stats');
      const st = s.instances[name];
      if (!st || 'error' in st) throw new Error(`no stats for ${name}: ${JSON.stringify(st)}`);
      return st;
    },
    endBlocked: async (_name, link) => void (await pair.a.request('disconnect', { link })),
    close: () => pair.close(),
  };
}

interface HostStats {
  point: { sent: number; received: number };
  links: Record<string, { tx: Array<{ pending: number }>; rx: Array<{ pending: number }> }>;
}

/** Run R7. */
export async function runStall(o: StallOptions): Promise<ScenarioRow> {
  const env = o.where === 'fabric' ? await fabricEnv() : await daemonEnv(o.where === 'direct');
  const id = o.where === 'fabric' ? 'R7' : `R7-${o.where}`;
  const stallAtMs = Math.floor(o.durationMs / 2);
  const capacity = Math.ceil((RATE * o.durationMs) / 1000) + 10_000;
  try {
    const results = new Map<string, { receive(): Promise<{ data: Uint8Array }> }>();
    for (const p of PAIRS) {
      const c = { scope: p.scope, maxmsg: MAXMSG, minmsg: MAXMSG / 2, graceMs: 500 };
      await env.register('tx', {
        name: `tx-${p.name}`,
        location: point('seqSource'),
        characteristics: c,
        data: {
          count: capacity,
          durationMs: o.durationMs,
          ratePerSec: RATE,
          ...(p.stall === 'sender' ? { stallAtMs } : {}),
        },
      });
      await env.register('rx', {
        name: `rx-${p.name}`,
        location: point('seqSink'),
        characteristics: c,
        data: {
          capacity,
          slowEvery: Number.MAX_SAFE_INTEGER,
          slowMs: 0,
          progressMs: 250,
          ...(p.stall === 'receiver' ? { stallAtMs } : {}),
        },
      });
      // The receiver's result comes to the caller on a link of its own.
      results.set(p.name, await env.resultLink(`rx-${p.name}`));
    }
    const links = new Map<string, string>();
    for (const p of PAIRS) links.set(p.name, await env.connect(`tx-${p.name}`, `rx-${p.name}`));
    const t0 = Date.now();
    const samples = new Map<string, Array<{ t: number; n: number }>>(PAIRS.map((p) => [p.name, []]));
    let stalledPending = 0;
    // Each receiver reports its own progress on its result link; its final counters end the report.
    const readers = PAIRS.map(async (p) => {
      for (;;) {
        const m = await results.get(p.name)!.receive();
        const r = JSON.parse(Buffer.from(m.data).toString()) as Partial<DeliveryCounts> & {
          progress?: number;
          pending?: number;
        };
        if (r.progress === undefined) return r as DeliveryCounts;
        const ss = samples.get(p.name)!;
        ss.push({ t: Date.now() - t0, n: r.progress });
        if (ss.length % 8 === 0) o.log?.(`${id}: ${p.name} has taken ${r.progress} at ${ss.at(-1)!.t} ms`);
        if (p.stall === 'receiver') stalledPending = Math.max(stalledPending, r.pending ?? 0);
      }
    });
    for (const r of readers) r.catch(() => {});
    if (process.env.AMIX_SOAK_DEBUG) {
      const dbg = setInterval(async () => {
        const line: string[] = [];
        for (const p of PAIRS)
          for (const side of ['tx', 'rx'] as const) {
            const st = await env.stats(side, `${side}-${p.name}`).catch((e: Error) => e);
            line.push(
              `${side}-${p.name} ${st instanceof Error ? st.message : `${st.point.sent}/${st.point.received}`}`,
            );
          }
        o.log?.(`${id} debug ${Date.now() - t0} ms: ${line.join(', ')}`);
      }, 1000);
      dbg.unref();
    }
    // The stalled pairs never report an end: wait for the free pairs' results only.
    const free = PAIRS.filter((p) => !p.stall);
    // Bounded: a free flow held up behind a stalled one never sends its result, and that is the failure to report.
    const settle = Promise.all(PAIRS.map((p, i) => (p.stall ? undefined : readers[i]!)));
    const finals = await Promise.race([settle, sleep(o.durationMs + RESULT_GRACE_MS).then(() => undefined)]);
    const endT = Date.now() - t0;
    o.log?.(`${id}: ${finals ? 'free senders done' : 'free flows did not finish'} after ${endT} ms`);
    const counts: DeliveryCounts = { sent: 0, received: 0, lost: 0, duplicated: 0, reordered: 0 };
    const perFlow: Record<string, unknown> = {};
    const unfinished: string[] = [];
    for (const [i, p] of PAIRS.entries()) {
      if (p.stall) continue;
      let r = finals?.[i];
      if (!r) {
        // No result: count from the two ends' own counters what was sent and what was taken.
        unfinished.push(p.name);
        const tx = await env.stats('tx', `tx-${p.name}`);
        const rx = await env.stats('rx', `rx-${p.name}`);
        const taken = rx.point.received;
        r = { sent: tx.point.sent, received: taken, lost: tx.point.sent - taken, duplicated: 0, reordered: 0 };
      }
      for (const k of Object.keys(counts) as Array<keyof DeliveryCounts>) counts[k] += r[k];
      const ss = samples.get(p.name)!;
      const rate = (from: number, to: number) => {
        const inside = ss.filter((x) => x.t >= from && x.t <= to);
        if (inside.length < 2) return undefined;
        const a = inside[0]!;
        const b = inside.at(-1)!;
        return ((b.n - a.n) * 1000) / (b.t - a.t);
      };
      // Skip the first and last half-second: start-up and the end of the stream are not steady state.
      const before = rate(500, stallAtMs);
      const after = rate(stallAtMs + 500, o.durationMs - 500);
      let gap = 0;
      for (let k = 1; k < ss.length; k++) gap = Math.max(gap, ss[k]!.t - ss[k - 1]!.t);
      // A flow that stopped reporting has been silent since its last report.
      if (!finals?.[i]) gap = Math.max(gap, endT - (ss.at(-1)?.t ?? 0));
      perFlow[p.name] = {
        ...r,
        rateBefore: before && Math.round(before),
        rateAfter: after && Math.round(after),
        ratio: before && after ? Math.round((after / before) * 100) / 100 : undefined,
        maxGapMs: gap,
      };
    }
    // The stalled sender's pair: what it sent before stopping is what its receiver took.
    const txS = await env.stats('tx', 'tx-txStall');
    const rxS = await env.stats('rx', 'rx-txStall');
    // The stalled receiver's pair: its sender sits blocked, at most a window ahead.
    const txR = await env.stats('tx', 'tx-rxStall');
    const rxR = await env.stats('rx', 'rx-rxStall');
    for (const l of Object.values(rxR.links))
      for (const ch of l.rx) stalledPending = Math.max(stalledPending, ch.pending);
    const ratios = free.map((p) => (perFlow[p.name] as { ratio?: number }).ratio ?? 0);
    const gaps = free.map((p) => (perFlow[p.name] as { maxGapMs: number }).maxGapMs);
    const minRateRatio = Math.min(...ratios);
    const maxGapMs = Math.max(...gaps);
    const stalledSender = { sent: txS.point.sent, received: rxS.point.received };
    const stalledReceiver = {
      sent: txR.point.sent,
      received: rxR.point.received,
      maxPending: stalledPending,
      unacknowledged: txR.point.sent - rxR.point.received,
    };
    // Ending the sender left blocked on the stalled receiver: reported, not judged (a terminate of a point
    // whose send is blocked waits for that send; issue 16's restart work is about the same wait).
    const te = Date.now();
    const endError = await env.endBlocked('tx-rxStall', links.get('rxStall')!).then(
      () => undefined,
      (err: Error) => err.message,
    );
    const blockedSenderEndMs = Date.now() - te;
    const ok =
      unfinished.length === 0 &&
      counts.lost === 0 &&
      counts.duplicated === 0 &&
      counts.reordered === 0 &&
      minRateRatio >= MIN_RATIO &&
      maxGapMs < MAX_GAP_MS &&
      stalledSender.sent === stalledSender.received &&
      stalledReceiver.maxPending <= MAXMSG &&
      stalledReceiver.received > 0;
    return {
      id,
      ok,
      ...(unfinished.length
        ? {
            error: `free flow(s) ${unfinished.join(', ')} stopped behind the stalled one (no result ${RESULT_GRACE_MS} ms after their senders' end; 'lost' counts accepted but not taken)`,
          }
        : {}),
      ...counts,
      ratePerSec: RATE,
      durationMs: o.durationMs,
      stallAtMs,
      minRateRatio,
      maxGapMs,
      flows: perFlow,
      stalledSender,
      stalledReceiver,
      maxmsg: MAXMSG,
      blockedSenderEndMs,
      ...(endError ? { blockedSenderEndError: endError } : {}),
    };
  } finally {
    await env.close();
  }
}
