/**
 * Bench `thread`: queueConditionThread against `postMessage` between the
 * main thread and a worker, in one run, at each size: throughput (a worker
 * sends `count` messages, the main thread receives them) and round trip
 * (the main thread sends one message, the worker echoes it; p50/p99 over
 * `rtts` round trips). Systems: `postMessage` (clone, one message per call),
 * `postMessage-batch64` (64 messages per call) and
 * `amix:queueConditionThread` through the public API (registry.open +
 * Channel: trySend/tryReceive, falling back to send/receive when the ring
 * is full or empty; round trips with idle `spin` on both ends), and
 * `amix:queueConditionThread-batch64`: `Channel.sendMany`/`receiveMany` in
 * runs of 64 (backed by the primitive's optional `trySendMany`/`tryReceiveMany`).
 * `amix:queueConditionThread-view` and `amix:queueConditionThread-batch64-view`
 * are the same with the zero-copy receive (`tryReceiveView`/`receiveView`,
 * `receiveManyView`: each message a view into the ring, released by the next
 * receive) instead of a copy per message.
 * The bare mechanism, no fabric (`bench/raw/sabRing.ts`): `raw:sab-ring`, a
 * SharedArrayBuffer SPSC ring of length-prefixed records with the write and
 * read positions published per message, each message copied out into a fresh
 * Uint8Array, spin then `Atomics.wait` when empty or full (round trip: a ring
 * each way, both ends spinning only, as the amix round trip's idle `spin`);
 * `raw:sab-ring-batch`, the same ring with the write position
 * published every 16 messages and no copy on receive (throughput only).
 * Under the table: each amix row over its raw row.
 *
 * `node dist/bench/thread.js [--quick] [--json] [--reps N] [--sizes 64,4096] [--count N] [--rtts N]`
 *
 * @module
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { once } from 'node:events';
// The registry module rather than the package index: workers start faster
// without the rest of the package (the API is the same PrimitiveRegistry).
import { PrimitiveRegistry } from '../lib/core/registry.js';
import type { Channel } from '../lib/core/channel.js';
import {
  latencyHistogram,
  parseBenchArgs,
  progress,
  report,
  reportPairs,
  scaleForSize,
  summarise,
  type Figures,
  type Row,
} from './common.js';
import { RawConsumer, RawProducer, produceBatched, rawRing, ringBytesFor } from './raw/sabRing.js';

/** The systems of this bench, baseline first. */
const SYSTEMS = [
  'postMessage',
  'postMessage-batch64',
  'amix:queueConditionThread',
  'amix:queueConditionThread-batch64',
  'amix:queueConditionThread-view',
  'amix:queueConditionThread-batch64-view',
  'raw:sab-ring',
  'raw:sab-ring-batch',
] as const;
type System = (typeof SYSTEMS)[number];
const BASELINE: System = 'postMessage';
/** postMessage is much slower: it gets this fraction of the messages, so each row runs for a similar time. */
const POSTMESSAGE_SHARE = 10;

interface Job {
  system: System;
  kind: 'throughput' | 'rtt';
  size: number;
  count: number;
  /** amix: the rings the worker attaches to (throughput: worker→main; rtt: pong, worker→main); raw: the SharedArrayBuffer(s). */
  rx?: unknown;
}

/**
 * Ring options of the amix receiving ends: the primitive's default 1 MiB data
 * area below 256 KiB messages; from there, the raw ring's rule (4 messages' room),
 * because a message must fit the data area less its 8-byte header.
 */
function ringOptions(size: number): { capacityBytes?: number } {
  const bytes = ringBytesFor(size);
  return bytes > 1024 * 1024 ? { capacityBytes: bytes } : {};
}

function payload(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = i & 0xff;
  return b;
}

// ---------------------------------------------------------------------------
// The worker side

/** The primitive's optional batch operations (not yet on the Channel wrapper). */

async function workerMain(job: Job): Promise<void> {
  const port = parentPort!;
  const msg = payload(job.size);
  if (job.system === 'raw:sab-ring' || job.system === 'raw:sab-ring-batch') {
    if (job.kind === 'rtt') {
      const { ping, pong } = job.rx as { ping: SharedArrayBuffer; pong: SharedArrayBuffer };
      const rx = new RawConsumer(ping, Infinity);
      const tx = new RawProducer(pong, Infinity);
      port.postMessage('ready');
      for (let i = 0; i < job.count; i++) tx.write(rx.read());
      return;
    }
    const tx = new RawProducer(job.rx as SharedArrayBuffer);
    port.postMessage('ready');
    await once(port, 'message');
    if (job.system === 'raw:sab-ring') for (let i = 0; i < job.count; i++) tx.write(msg);
    else produceBatched(tx, msg, job.count, 16);
    return;
  }
  if (job.system === 'amix:queueConditionThread-batch64' || job.system === 'amix:queueConditionThread-batch64-view') {
    const reg = new PrimitiveRegistry();
    const tx = await reg.open('queueConditionThread', { address: job.rx as Record<string, unknown> });
    const batch = Array.from({ length: 64 }, () => payload(job.size));
    port.postMessage('ready');
    await once(port, 'message');
    for (let i = 0; i < job.count; i += 64)
      await tx.sendMany(job.count - i >= 64 ? batch : batch.slice(0, job.count - i));
    await tx.close();
    await reg.close();
    return;
  }
  if (job.system === 'amix:queueConditionThread' || job.system === 'amix:queueConditionThread-view') {
    const reg = new PrimitiveRegistry();
    if (job.kind === 'throughput') {
      const tx = await reg.open('queueConditionThread', { address: job.rx as Record<string, unknown> });
      port.postMessage('ready');
      await once(port, 'message');
      for (let i = 0; i < job.count; i++) {
        if (!tx.trySend(msg)) await tx.send(msg);
      }
      await tx.close();
    } else {
      // Each ring's receiving end is made where it receives: ping here, pong on the main thread.
      const ping = await reg.open('queueConditionThread', { idle: 'spin', ...ringOptions(job.size) });
      const pong = await reg.open('queueConditionThread', { idle: 'spin', address: job.rx as Record<string, unknown> });
      port.postMessage(ping.address);
      await echo(job, ping, pong);
      await pong.close();
      await ping.close();
    }
    await reg.close();
    return;
  }
  if (job.kind === 'throughput') {
    port.postMessage('ready');
    await once(port, 'message');
    if (job.system === 'postMessage') {
      for (let i = 0; i < job.count; i++) port.postMessage(msg);
    } else {
      // 64 distinct arrays: one array listed 64 times would be cloned once.
      const batch = Array.from({ length: 64 }, () => payload(job.size));
      for (let i = 0; i < job.count; i += 64)
        port.postMessage(i + 64 <= job.count ? batch : batch.slice(0, job.count - i));
    }
    return;
  }
  port.on('message', (m) => port.postMessage(m));
  port.postMessage('ready');
}

/** Echo every ping back on pong until the main thread closes ping (`-view`: each ping read as a view). */
async function echo(job: Job, rx: Channel, tx: Channel): Promise<void> {
  const view = job.system === 'amix:queueConditionThread-view';
  for (let i = 0; i < job.count; i++) {
    let m = view ? rx.tryReceiveView() : rx.tryReceive();
    if (m === undefined) m = view ? await rx.receiveView() : await rx.receive();
    if (!tx.trySend(m)) await tx.send(m);
  }
}

// ---------------------------------------------------------------------------
// The main side

function startWorker(job: Job): { worker: Worker; ready: Promise<unknown>; exited: Promise<unknown> } {
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const ready = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  // Listen for the exit now: a worker that finishes before the main side has
  // taken its last message would otherwise exit unheard, and the bench would
  // wait on an event that already fired (Node then exits with code 13).
  const exited = once(worker, 'exit');
  return { worker, ready, exited };
}

async function throughput(system: System, size: number, count: number): Promise<Figures> {
  if (system === 'raw:sab-ring' || system === 'raw:sab-ring-batch') {
    const sab = rawRing(ringBytesFor(size));
    const rx = new RawConsumer(sab);
    const { worker, ready, exited } = startWorker({ system, kind: 'throughput', size, count, rx: sab });
    await ready;
    const t0 = performance.now();
    worker.postMessage('go');
    // Synchronous from here on: the bare ring spins and sleeps in Atomics.wait (allowed on Node's main thread).
    let bytes = 0;
    if (system === 'raw:sab-ring') {
      for (let got = 0; got < count; got++) bytes += rx.read().length;
    } else {
      const sum = [0];
      for (let got = 0; got < count;) got += rx.drain(sum);
      bytes = sum[0]!;
    }
    const t1 = performance.now();
    if (bytes !== count * size) throw new Error(`${system} throughput: got ${bytes} bytes, want ${count * size}`);
    await exited;
    return { msgsPerSec: (count * 1000) / (t1 - t0) };
  }
  if (system.startsWith('amix:')) {
    const reg = new PrimitiveRegistry();
    const rx = await reg.open('queueConditionThread', ringOptions(size));
    const { worker, ready, exited } = startWorker({ system, kind: 'throughput', size, count, rx: rx.address });
    await ready;
    const t0 = performance.now();
    worker.postMessage('go');
    let bytes = 0;
    if (system === 'amix:queueConditionThread') {
      for (let got = 0; got < count; got++) {
        let m = rx.tryReceive();
        if (m === undefined) m = await rx.receive();
        bytes += m.length;
      }
    } else if (system === 'amix:queueConditionThread-view') {
      for (let got = 0; got < count; got++) {
        let m = rx.tryReceiveView();
        if (m === undefined) m = await rx.receiveView();
        bytes += m.length;
      }
    } else if (system === 'amix:queueConditionThread-batch64-view') {
      while (bytes < count * size) for (const m of await rx.receiveManyView({ maxCount: 64 })) bytes += m.length;
    } else {
      while (bytes < count * size) for (const m of await rx.receiveMany({ maxCount: 64 })) bytes += m.length;
    }
    const t1 = performance.now();
    if (bytes !== count * size) throw new Error(`${system} throughput: got ${bytes} bytes, want ${count * size}`);
    await exited;
    await rx.close();
    await reg.close();
    return { msgsPerSec: (count * 1000) / (t1 - t0) };
  }
  const { worker, ready } = startWorker({ system, kind: 'throughput', size, count });
  await ready;
  let got = 0;
  let t1 = 0;
  const done = new Promise<void>((resolve) => {
    worker.on('message', (m: Uint8Array | Uint8Array[]) => {
      got += Array.isArray(m) ? m.length : 1;
      if (got >= count) {
        t1 = performance.now();
        resolve();
      }
    });
  });
  const t0 = performance.now();
  worker.postMessage('go');
  await done;
  await worker.terminate();
  return { msgsPerSec: (count * 1000) / (t1 - t0) };
}

async function roundTrip(system: System, size: number, rtts: number): Promise<Figures> {
  const h = latencyHistogram();
  const msg = payload(size);
  const warm = Math.min(1000, Math.floor(rtts / 10));
  if (system === 'raw:sab-ring') {
    const ping = rawRing(ringBytesFor(size));
    const pong = rawRing(ringBytesFor(size));
    const { ready, exited } = startWorker({ system, kind: 'rtt', size, count: rtts + warm, rx: { ping, pong } });
    await ready;
    const tx = new RawProducer(ping, Infinity);
    const rx = new RawConsumer(pong, Infinity);
    for (let i = 0; i < rtts + warm; i++) {
      const t0 = performance.now();
      tx.write(msg);
      const m = rx.read();
      const us = (performance.now() - t0) * 1000;
      if (m.length !== size) throw new Error('raw:sab-ring rtt: wrong size');
      if (i >= warm) h.record(us);
    }
    await exited;
    return { rttP50Us: h.p50(), rttP99Us: h.p99() };
  }
  if (system === 'amix:queueConditionThread' || system === 'amix:queueConditionThread-view') {
    const view = system === 'amix:queueConditionThread-view';
    const reg = new PrimitiveRegistry();
    const pong = await reg.open('queueConditionThread', { idle: 'spin', ...ringOptions(size) });
    const { worker, ready, exited } = startWorker({ system, kind: 'rtt', size, count: rtts + warm, rx: pong.address });
    const ping = await reg.open('queueConditionThread', {
      idle: 'spin',
      address: (await ready) as Record<string, unknown>,
    });
    for (let i = 0; i < rtts + warm; i++) {
      const t0 = performance.now();
      if (!ping.trySend(msg)) await ping.send(msg);
      const m = view ? await pong.receiveView() : await pong.receive();
      const us = (performance.now() - t0) * 1000;
      if (m.length !== size) throw new Error('amix rtt: wrong size');
      if (i >= warm) h.record(us);
    }
    await exited;
    await ping.close();
    await pong.close();
    await reg.close();
    return { rttP50Us: h.p50(), rttP99Us: h.p99() };
  }
  const { worker, ready } = startWorker({ system, kind: 'rtt', size, count: rtts + warm });
  await ready;
  for (let i = 0; i < rtts + warm; i++) {
    const t0 = performance.now();
    const back = once(worker, 'message');
    worker.postMessage(msg);
    await back;
    if (i >= warm) h.record((performance.now() - t0) * 1000);
  }
  await worker.terminate();
  return { rttP50Us: h.p50(), rttP99Us: h.p99() };
}

/**
 * Messages per throughput repetition: `count` for amix at small sizes, a
 * quarter above 1 KiB; half that for the raw rows (so the default run stays
 * under 90 s), a tenth for postMessage.
 */
function countFor(count: number, system: System, size: number): number {
  const base = size > 1024 ? Math.ceil(count / 4) : count;
  if (system.startsWith('raw:')) return Math.ceil(base / 2);
  return system.startsWith('amix:') ? base : Math.ceil(base / POSTMESSAGE_SHARE);
}

async function main(): Promise<void> {
  const args = parseBenchArgs('thread', {
    reps: 5,
    quickReps: 1,
    sizes: [64, 4096],
    count: 1_200_000,
    quickCount: 300_000,
    rtts: 12_000,
    quickRtts: 3_000,
  });
  const rows: Row[] = [];
  // Progress as a fraction of the measurements (a throughput and a round trip per system, size and repetition).
  const steps = args.sizes.length * args.reps * SYSTEMS.length * 2;
  let step = 0;
  for (const size of args.sizes) {
    const reps = new Map<System, Figures[]>(SYSTEMS.map((s) => [s, []]));
    for (let r = 0; r < args.reps; r++) {
      // Systems interleaved within each repetition, so load from other
      // processes on the machine spreads over all of them alike.
      for (const system of SYSTEMS) {
        // A sweep to 1 MiB scales both counts down above 4 KiB, so every row moves a bounded number of bytes.
        const count = args.sweep
          ? scaleForSize(countFor(args.count, system, size), size, 4096, 100)
          : countFor(args.count, system, size);
        const rtts = args.sweep ? scaleForSize(args.rtts, size, 4096, 200) : args.rtts;
        progress(`thread size=${size} rep ${r + 1}/${args.reps} ${system} throughput n=${count}`, step++ / steps);
        const tp = await throughput(system, size, count);
        progress(`thread size=${size} rep ${r + 1}/${args.reps} ${system} round trip n=${rtts}`, step++ / steps);
        // Batching is a throughput technique; its "round trip" would be a batch, so it is not measured.
        const rt = /-batch(64)?(-view)?$/.test(system) ? {} : await roundTrip(system, size, rtts);
        reps.get(system)!.push({ ...tp, ...rt });
      }
    }
    for (const system of SYSTEMS) rows.push(summarise({ system, size }, reps.get(system)!));
  }
  report(args, 'thread', rows, BASELINE, {
    count: args.count,
    countRule: 'amix: count (size <= 1 KiB) or count/4; raw rows: half of that; postMessage rows: a tenth',
    rtts: args.rtts,
    ...(args.sweep
      ? {
          sweep:
            'counts and rtts as above up to 4 KiB, then scaled by 4096/size (at least 100 messages, 200 round trips)',
        }
      : {}),
    amixRing: '1 MiB data area; from 256 KiB messages 4 x (size + 8) rounded up to a power of two',
    direction: 'worker to main thread (throughput); main to worker and back (round trip)',
    amixIdle: 'spinThenBlock (throughput), spin (round trip)',
    rawRing:
      '1 MiB data area; throughput: spin 4000 polls then Atomics.wait, round trip: spin; batch: write index every 16 messages',
  });
  reportPairs(args, rows, [
    ['amix:queueConditionThread', 'raw:sab-ring'],
    ['amix:queueConditionThread-batch64', 'raw:sab-ring-batch'],
    ['amix:queueConditionThread-view', 'raw:sab-ring'],
    ['amix:queueConditionThread-batch64-view', 'raw:sab-ring-batch'],
  ]);
}

if (isMainThread) {
  await main();
} else {
  await workerMain(workerData as Job);
}
