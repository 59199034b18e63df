/**
 * Soak R1, backpressure: a fast sender and a slow receiving point through
 * `maxmsg` 1000, with the receiving end in a worker thread (`R1-thread`), in
 * a process of its own (`R1-process`) or the calling application itself
 * (`R1-caller`). The receiving side records every sequence number it takes,
 * synchronously, and samples its own channel's `pending`; the row reports
 * lost, duplicated and reordered messages and the largest pending seen,
 * which must not exceed `maxmsg`.
 *
 * Thread and process: the caller sends (a `Link` to point `rx`, a
 * {@link seqSink}). Caller: point `tx` (a {@link seqSource}, thread scope)
 * sends to an endpoint of this application, built as the fabric builds the
 * caller's own end (an `Endpoint` and its `Agent`) but held here so its
 * channel stats can be read synchronously between two messages.
 *
 * @module
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Endpoint, Fabric } from '../../lib/index.js';
import { Agent } from '../../lib/internal.js';
import { END_TAG, SeqTracker, endMessage, seqMessage, sleep, tempDir, u32, type ScenarioRow } from './common.js';

/** The receiving point's high-water mark in every R1 variant. */
export const R1_MAXMSG = 1000;
/** The receiver pauses `SLOW_MS` after every `SLOW_EVERY` messages: long enough for its queue to fill to maxmsg. */
const SLOW_EVERY = 2000;
const SLOW_MS = 1;

/** Options of {@link runBackpressure}. */
export interface BackpressureOptions {
  /** Where the receiving end is. */
  end: 'thread' | 'process' | 'caller';
  /** Messages to send at most (the sender also stops at `durationMs`). */
  count: number;
  /** Time bound of the sending phase. */
  durationMs: number;
  log?: (msg: string) => void;
}

const point = (name: string) => fileURLToPath(new URL(`./points/${name}.js`, import.meta.url));

/** Run one R1 variant; the row's `ok` is: nothing lost, duplicated or reordered, pending never above maxmsg. */
export async function runBackpressure(o: BackpressureOptions): Promise<ScenarioRow> {
  const dir = await tempDir(`r1-${o.end}`);
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: [] });
  const t0 = Date.now();
  try {
    const r = o.end === 'caller' ? await callerReceives(fabric, o) : await pointReceives(fabric, o);
    const secs = (Date.now() - t0) / 1000;
    const ok =
      r.lost === 0 && r.duplicated === 0 && r.reordered === 0 && r.outOfRange === 0 && r.maxPending <= R1_MAXMSG;
    return {
      id: `R1-${o.end}`,
      ok,
      ...r,
      maxmsg: R1_MAXMSG,
      msgsPerSec: Math.round(r.received / secs),
      count: o.count,
    };
  } finally {
    await fabric.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

type R1Result = ReturnType<SeqTracker['counts']> & { maxPending: number; pendingSamples: number };

async function pointReceives(fabric: Fabric, o: BackpressureOptions): Promise<R1Result> {
  fabric.register({
    name: 'rx',
    location: point('seqSink'),
    characteristics: { scope: o.end as 'thread' | 'process', maxmsg: R1_MAXMSG, minmsg: R1_MAXMSG / 2 },
    data: { capacity: o.count, slowEvery: SLOW_EVERY, slowMs: SLOW_MS },
  });
  const link = await fabric.connect(null, 'rx', { direction: 'both' });
  const deadline = Date.now() + o.durationMs;
  let sent = 0;
  while (sent < o.count) {
    await link.send(seqMessage(sent));
    sent++;
    if ((sent & 0xffff) === 0) {
      o.log?.(`R1-${o.end}: ${sent} sent`);
      if (Date.now() >= deadline) break;
    }
    if ((sent & 1023) === 0 && Date.now() >= deadline) break;
  }
  await link.send(endMessage(sent));
  // The point answers with its counters once it has taken the end message.
  const reply = await link.receive();
  return JSON.parse(Buffer.from(reply.data).toString()) as R1Result;
}

async function callerReceives(fabric: Fabric, o: BackpressureOptions): Promise<R1Result> {
  fabric.register({
    name: 'tx',
    location: point('seqSource'),
    role: 'sender',
    characteristics: { scope: 'thread', maxmsg: R1_MAXMSG, minmsg: R1_MAXMSG / 2 },
    data: { count: o.count, durationMs: o.durationMs },
  });
  const ep = new Endpoint('caller');
  const agent = new Agent(ep, fabric.registry);
  const link = await fabric.connect('tx', null, {
    direction: 'aToB',
    as: { name: 'caller', target: agent, inProcess: true },
  });
  const tracker = new SeqTracker(o.count);
  let maxPending = 0;
  let samples = 0;
  const sample = () => {
    for (const ch of ep.channels(link.id).rx) {
      maxPending = Math.max(maxPending, ch.stats().pending);
      samples++;
    }
  };
  try {
    for (;;) {
      const m = await ep.receive();
      if (m.size === 8 && u32(m.data) === END_TAG) {
        sample();
        return { ...tracker.counts(u32(m.data, 4)), maxPending, pendingSamples: samples };
      }
      tracker.take(u32(m.data));
      const n = tracker.received;
      if (n % 997 === 0) sample();
      if ((n & 0xffff) === 0) o.log?.(`R1-caller: ${n} received`);
      if (n % SLOW_EVERY === 0) {
        await sleep(SLOW_MS);
        sample();
      }
    }
  } finally {
    await link.close().catch(() => {});
    await ep.close();
  }
}
