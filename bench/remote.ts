/**
 * Bench `remote`: the `zeromq` primitive against raw zeromq.js, between two
 * processes over `tcp://127.0.0.1`, in one run, at each size: throughput
 * (the parent sends `count` messages, a child process receives them and
 * reports when it has the last) and round trip (the parent sends one
 * message, the child echoes it on a second flow; p50/p99 over `rtts`).
 *
 * Systems:
 * - `zeromq-tcp`: zeromq.js PUSH/PULL, awaiting each send (the baseline).
 * - `amix:zeromq`: `registry.open('zeromq')` + `Channel` with its
 *   synchronous fast path, as every amix bench row: the parent calls
 *   `trySend` and awaits `send` only when it returns false (zero credit),
 *   the child calls `tryReceive` and awaits `receive` only when nothing is
 *   queued. The primitive packs the messages of one tick into shared
 *   frames. Round trips await `send` and `receive` one message at a time.
 * - (to come, by the lead) `amix:daemon`: two `amixd` linking a point to a
 *   point over the zeromq primitive. Add it to {@link SYSTEMS} and give it a
 *   branch in {@link parentThroughput}, {@link parentRtt} and {@link childMain}.
 *
 * `node dist/bench/remote.js [--quick] [--json] [--reps N] [--sizes 64,4096] [--count N] [--rtts N]`
 *
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { PrimitiveRegistry, type Channel } from '../lib/index.js';
import { latencyHistogram, parseBenchArgs, progress, report, summarise, type Figures, type Row } from './common.js';

/** The systems of this bench, baseline first. */
const SYSTEMS = ['zeromq-tcp', 'amix:zeromq'] as const;
type System = (typeof SYSTEMS)[number];
const BASELINE: System = 'zeromq-tcp';

/** Parent → child control messages (over the fork IPC channel; data never goes there). */
type Command =
  | { cmd: 'sink'; system: System; size: number; count: number; warm: number }
  | { cmd: 'echo'; system: System; size: number; count: number; back: unknown };
/** Child → parent control messages. */
type Reply = { ready: unknown } | { mark: true } | { done: true } | { error: string };

function payload(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = i & 0xff;
  return b;
}

async function receiveOne(rx: Channel): Promise<Uint8Array> {
  return rx.tryReceive() ?? rx.receive();
}

// ---------------------------------------------------------------------------
// The child side: receives (sink) or echoes (echo), whatever the parent asks.

async function childMain(): Promise<void> {
  const say = (r: Reply) => process.send!(r);
  const reg = new PrimitiveRegistry();
  process.on('message', (c: Command) => {
    void (async () => {
      if (c.system === 'zeromq-tcp') {
        const pull = new zmq.Pull({ linger: 0 });
        await pull.bind('tcp://127.0.0.1:*');
        if (c.cmd === 'sink') {
          say({ ready: pull.lastEndpoint });
          for (let i = 0; i < c.warm; i++) await pull.receive();
          say({ mark: true });
          for (let i = 0; i < c.count; i++) await pull.receive();
        } else {
          const push = new zmq.Push({ linger: 0 });
          push.connect(c.back as string);
          say({ ready: pull.lastEndpoint });
          for (let i = 0; i < c.count; i++) { const [m] = await pull.receive(); await push.send(m!); }
          push.close();
        }
        pull.close();
      } else {
        const rx = await reg.open('zeromq');
        if (c.cmd === 'sink') {
          say({ ready: rx.address });
          for (let i = 0; i < c.warm; i++) await receiveOne(rx);
          say({ mark: true });
          for (let i = 0; i < c.count; i++) await receiveOne(rx);
        } else {
          const tx = await reg.open('zeromq', { address: c.back as Record<string, unknown> });
          await tx.connect();
          say({ ready: rx.address });
          for (let i = 0; i < c.count; i++) await tx.send(await receiveOne(rx));
          await tx.close();
        }
        await rx.close();
      }
      say({ done: true });
    })().catch((err: Error) => say({ error: err.stack ?? err.message }));
  });
  process.on('disconnect', () => { void reg.close().finally(() => process.exit(0)); });
}

// ---------------------------------------------------------------------------
// The parent side.

async function ask(child: ChildProcess, c: Command): Promise<{ ready: unknown; mark: Promise<void>; done: Promise<void> }> {
  let resolveMark!: () => void;
  const mark = new Promise<void>((res) => { resolveMark = res; });
  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => { resolveDone = res; rejectDone = rej; });
  const ready = await new Promise<unknown>((resolve, reject) => {
    const on = (r: Reply) => {
      if ('error' in r) { child.off('message', on); const e = new Error(`child: ${r.error}`); reject(e); rejectDone(e); return; }
      if ('ready' in r) { resolve(r.ready); return; }
      if ('mark' in r) { resolveMark(); return; }
      child.off('message', on);
      resolveDone();
    };
    child.on('message', on);
    child.send(c);
  });
  return { ready, mark, done };
}

async function parentThroughput(child: ChildProcess, reg: PrimitiveRegistry, system: System, size: number, count: number): Promise<Figures> {
  const msg = payload(size);
  // Untimed warm-up messages first, so connection set-up and JIT do not count.
  const warm = Math.min(20_000, Math.ceil(count / 5));
  const { ready, mark, done } = await ask(child, { cmd: 'sink', system, size, count, warm });
  if (system === 'zeromq-tcp') {
    const push = new zmq.Push({ linger: 0 });
    push.connect(ready as string);
    for (let i = 0; i < warm; i++) await push.send(msg);
    await mark;
    const t0 = performance.now();
    for (let i = 0; i < count; i++) await push.send(msg);
    await done;
    const ms = performance.now() - t0;
    push.close();
    return { msgsPerSec: (count / ms) * 1000 };
  }
  const tx = await reg.open('zeromq', { address: ready as Record<string, unknown> });
  await tx.connect();
  for (let i = 0; i < warm; i++) if (!tx.trySend(msg)) await tx.send(msg);
  await mark;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) if (!tx.trySend(msg)) await tx.send(msg);
  // Graceful: waits until the child has acknowledged every message, before it closes its end.
  await tx.close();
  await done;
  const ms = performance.now() - t0;
  return { msgsPerSec: (count / ms) * 1000 };
}

async function parentRtt(child: ChildProcess, reg: PrimitiveRegistry, system: System, size: number, rtts: number): Promise<Figures> {
  const msg = payload(size);
  const h = latencyHistogram();
  const warm = Math.min(200, Math.floor(rtts / 10));
  if (system === 'zeromq-tcp') {
    const pull = new zmq.Pull({ linger: 0 });
    await pull.bind('tcp://127.0.0.1:*');
    const { ready, done } = await ask(child, { cmd: 'echo', system, size, count: rtts + warm, back: pull.lastEndpoint });
    const push = new zmq.Push({ linger: 0 });
    push.connect(ready as string);
    for (let i = 0; i < rtts + warm; i++) {
      const t0 = performance.now();
      await push.send(msg);
      await pull.receive();
      if (i >= warm) h.record((performance.now() - t0) * 1000);
    }
    await done;
    push.close();
    pull.close();
  } else {
    const rx = await reg.open('zeromq');
    const { ready, done } = await ask(child, { cmd: 'echo', system, size, count: rtts + warm, back: rx.address });
    const tx = await reg.open('zeromq', { address: ready as Record<string, unknown> });
    await tx.connect();
    for (let i = 0; i < rtts + warm; i++) {
      const t0 = performance.now();
      await tx.send(msg);
      await receiveOne(rx);
      if (i >= warm) h.record((performance.now() - t0) * 1000);
    }
    await done;
    // Every message came back, so nothing is outstanding: release at once rather than wait for acks from a child that has moved on.
    await tx.destroy();
    await rx.close();
  }
  return { rttP50Us: h.p50(), rttP99Us: h.p99() };
}

async function parentMain(): Promise<void> {
  const args = parseBenchArgs('remote', { reps: 5, quickReps: 2, sizes: [64, 4096], count: 60_000, quickCount: 30_000, rtts: 2_000, quickRtts: 800 });
  const child = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  const reg = new PrimitiveRegistry();
  const rows: Row[] = [];
  try {
    for (const size of args.sizes) {
      const figures = new Map<System, Figures[]>(SYSTEMS.map((s) => [s, []]));
      for (let rep = 0; rep < args.reps; rep++) {
        // Systems alternate inside each repetition so a load spike from other work hits them alike.
        for (const system of SYSTEMS) {
          progress(`remote size=${size} rep ${rep + 1}/${args.reps} ${system} count=${args.count} rtts=${args.rtts}`);
          const tp = await parentThroughput(child, reg, system, size, args.count);
          const rtt = await parentRtt(child, reg, system, size, args.rtts);
          figures.get(system)!.push({ ...tp, ...rtt });
        }
      }
      for (const system of SYSTEMS) rows.push(summarise({ system, size }, figures.get(system)!));
    }
  } finally {
    await reg.close();
    child.disconnect();
    await exited;
  }
  report(args, 'remote', rows, BASELINE, { transport: 'tcp://127.0.0.1', processes: 2, count: args.count, rtts: args.rtts });
}

if (process.argv.includes('--child')) await childMain();
else await parentMain();
