// bench process: messages between two real processes on one machine, in one
// run: node-ipc (emit of a Buffer over a Unix socket), zeromq.js PUSH/PULL
// over ipc:// (awaiting each send), raw `net` (one write per message),
// amix:queueConditionProcess through the public Channel API, and
// amix:queueConditionProcess-batch64 (the same with Channel.trySendMany/sendMany of
// 64 messages a call and receiveMany; its round trip is the single-message one),
// raw:uds-batched, the bare mechanism under it (bench/raw/uds.ts): a raw
// `net` Unix socket, the sender packing the frames (4-byte length +
// payload) of one event-loop turn into one write (setImmediate), the
// receiver parsing frames in place from the chunks; the echo side of its
// round trip writes the same way. Under the table: amix over raw. The parent
// sends; a forked child (this same script) receives or echoes. Control
// messages go over the fork IPC channel, never over the system measured.
//
//   node dist/bench/process.js [--quick] [--json] [--reps N] [--sizes 64,4096 | --sweep] [--count N] [--rtts N] [--systems a,b]
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrimitiveRegistry, type Channel } from '../lib/index.js';
import {
  latencyHistogram,
  parseBenchArgs,
  pickSystems,
  progress,
  report,
  reportPairs,
  scaleForSize,
  summarise,
  type Figures,
  type Row,
} from './common.js';
import { FrameParser, TickWriter } from './raw/uds.js';

const AMIX = 'amix:queueConditionProcess';
const AMIX_BATCH = 'amix:queueConditionProcess-batch64';
/** Messages per trySendMany/sendMany call of the batch row. */
const BATCH = 64;
const RAW = 'raw:uds-batched';
const SYSTEMS = ['node-ipc', 'zeromq-ipc', 'net-naive', AMIX, AMIX_BATCH, RAW] as const;
type System = (typeof SYSTEMS)[number];

/** Throughput messages per repetition: `count` times this weight (4 KiB: amix a quarter, node-ipc a twentieth), so each row runs long enough to measure and no longer. */
const WEIGHT: Record<System, number> = {
  'node-ipc': 1,
  'zeromq-ipc': 2,
  'net-naive': 4,
  [AMIX]: 20,
  [AMIX_BATCH]: 20,
  [RAW]: 40,
};
function tpCount(system: System, size: number, count: number): number {
  // node-ipc sends a Buffer as JSON (about 4 bytes per byte): at 4 KiB it runs at a few thousand a second.
  const w =
    WEIGHT[system] *
    (size > 1024
      ? system === AMIX || system === AMIX_BATCH || system === RAW
        ? 0.25
        : system === 'node-ipc'
          ? 0.05
          : 1
      : 1);
  return Math.max(1, Math.round(count * w));
}

/**
 * Largest message each system carries in this bench (bytes); a size above
 * it is skipped for that system with a note on stderr, not failed. Unlisted:
 * no limit up to --sweep's 1 MiB.
 */
const MAX_SIZE: Partial<Record<System, number>> = {};

/** The little of node-ipc this bench uses (the package ships no types). */
interface NodeIpc {
  config: Record<string, unknown>;
  serve(path: string, cb: () => void): void;
  server: {
    on(ev: string, cb: (data: unknown, socket: Socket) => void): void;
    emit(socket: Socket, ev: string, data: unknown): void;
    start(): void;
    stop(): void;
  };
  connectTo(id: string, path: string, cb: () => void): void;
  of: Record<string, { on(ev: string, cb: (data?: unknown) => void): void; emit(ev: string, data: unknown): void }>;
  disconnect(id: string): void;
}
async function nodeIpc(): Promise<NodeIpc> {
  const spec: string = '@achrinza/node-ipc';
  const mod = (await import(spec)) as { IPCModule: new () => NodeIpc };
  return new mod.IPCModule();
}

/** node-ipc throughput: messages per acknowledged batch (see its driver). */
const NODE_IPC_BATCH = 64;

type Cmd =
  | { op: 'setup'; system: System; mode: 'tp' | 'rtt'; size: number; dir: string; address?: unknown }
  | { op: 'expect'; n: number }
  | { op: 'teardown' };
type Reply = { ok: true; address?: unknown } | { done: number; bytes: number } | { error: string };

// ---------------------------------------------------------------------------
// The child: one per system, serving every size and repetition of it.

async function child(): Promise<void> {
  let expect = Infinity;
  let got = 0;
  /** Payload bytes received, for the systems that count them (raw:uds-batched). */
  let gotBytes = 0;
  let teardown: (() => Promise<void> | void) | null = null;
  const reply = (r: Reply) => process.send!(r);
  const count = (n = 1, bytes = 0) => {
    got += n;
    gotBytes += bytes;
    if (got >= expect) {
      expect = Infinity;
      reply({ done: got, bytes: gotBytes });
    }
  };
  process.on('message', async (cmd: Cmd) => {
    try {
      if (cmd.op === 'expect') {
        got = 0;
        gotBytes = 0;
        expect = cmd.n;
        reply({ ok: true });
        return;
      }
      if (cmd.op === 'teardown') {
        await teardown?.();
        teardown = null;
        reply({ ok: true });
        return;
      }
      const { system, mode, size, dir } = cmd;
      if (system === 'node-ipc') {
        const ipc = await nodeIpc();
        Object.assign(ipc.config, { silent: true, id: `amixbench${process.pid}`, maxConnections: 1 });
        const path = join(dir, `node-ipc-${process.pid}.sock`);
        await new Promise<void>((resolve) => {
          ipc.serve(path, () => {
            let batch = 0;
            ipc.server.on('msg', (data: unknown, socket: Socket) => {
              if (mode === 'rtt') {
                ipc.server.emit(socket, 'msg', data);
                return;
              }
              count();
              if (++batch === NODE_IPC_BATCH) {
                batch = 0;
                ipc.server.emit(socket, 'ack', null);
              }
            });
            resolve();
          });
          ipc.server.start();
        });
        teardown = () => {
          ipc.server.stop();
        };
        reply({ ok: true, address: path });
      } else if (system === 'zeromq-ipc') {
        const zmq = await import('zeromq');
        const pull = new zmq.Pull();
        const ep = `ipc://${join(dir, `zmq-${process.pid}-${size}-${mode}.sock`)}`;
        await pull.bind(ep);
        let push: InstanceType<typeof zmq.Push> | null = null;
        if (mode === 'rtt') {
          push = new zmq.Push();
          push.connect(cmd.address as string);
        }
        void (async () => {
          try {
            for await (const [msg] of pull) {
              if (push) await push.send(msg!);
              else count();
            }
          } catch {
            /* closed */
          }
        })();
        teardown = () => {
          pull.close();
          push?.close();
        };
        reply({ ok: true, address: ep });
      } else if (system === 'net-naive') {
        const path = join(dir, `net-${process.pid}-${size}-${mode}.sock`);
        const frame = size + 4;
        const server = createServer((s) => {
          let bytes = 0;
          s.on('data', (c: Buffer) => {
            if (mode === 'tp') {
              const before = Math.floor(bytes / frame);
              bytes += c.length;
              const n = Math.floor(bytes / frame) - before;
              if (n > 0) count(n);
            } else {
              // Echo whole frames only, one write per frame, as the sender does.
              bytes += c.length;
              while (bytes >= frame) {
                bytes -= frame;
                s.write(pingFrame(size));
              }
            }
          });
          s.on('error', () => {});
        });
        await new Promise<void>((r) => server.listen(path, r));
        teardown = () => {
          server.close();
        };
        reply({ ok: true, address: path });
      } else if (system === RAW) {
        const path = join(dir, `raw-${process.pid}-${size}-${mode}.sock`);
        const server = createServer((s) => {
          s.on('error', () => {});
          if (mode === 'tp') {
            const p = new FrameParser();
            s.on('data', (c: Buffer) => {
              const [f, b] = [p.frames, p.bytes];
              p.push(c);
              if (p.frames > f) count(p.frames - f, p.bytes - b);
            });
            return;
          }
          // Echo each frame as it completes, through the same one-write-per-turn writer.
          const w = new TickWriter(s);
          const p = new FrameParser((len) => w.push(len === size ? pingFrame(size).subarray(4) : Buffer.alloc(len)));
          s.on('data', (c: Buffer) => p.push(c));
        });
        await new Promise<void>((r) => server.listen(path, r));
        teardown = () => {
          server.close();
        };
        reply({ ok: true, address: path });
      } else {
        const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir: dir } });
        const rx = await reg.open('queueConditionProcess');
        let tx: Channel | null = null;
        if (mode === 'rtt')
          tx = await reg.open('queueConditionProcess', { address: cmd.address as Record<string, unknown> });
        let stop = false;
        void (async () => {
          try {
            while (!stop) {
              if (tx) {
                await tx.send(await rx.receive());
                continue;
              }
              if (system === AMIX_BATCH) {
                count((await rx.receiveMany({ maxCount: 4 * BATCH })).length);
                continue;
              }
              let n = 0;
              while (rx.tryReceive() !== undefined) n++;
              if (n > 0) count(n);
              await rx.receive();
              count();
            }
          } catch {
            /* closed */
          }
        })();
        teardown = async () => {
          stop = true;
          await tx?.close();
          await rx.close();
          await reg.close();
        };
        reply({ ok: true, address: rx.address });
      }
    } catch (err) {
      reply({ error: (err as Error).stack ?? String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

const pings = new Map<number, Buffer>();
function pingFrame(size: number): Buffer {
  let b = pings.get(size);
  if (!b) {
    b = Buffer.alloc(size + 4, 7);
    b.writeUInt32LE(size, 0);
    pings.set(size, b);
  }
  return b;
}

// ---------------------------------------------------------------------------
// The parent.

class Peer {
  readonly proc: ChildProcess;
  #waiting: Array<(r: Reply) => void> = [];
  #done: ((r: { done: number; bytes: number }) => void) | null = null;
  constructor(script: string) {
    this.proc = fork(script, [], {
      env: { ...process.env, AMIX_BENCH_PROCESS_CHILD: '1' },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    this.proc.stdout!.pipe(process.stderr);
    this.proc.on('message', (r: Reply) => {
      if ('done' in r) {
        const d = this.#done;
        this.#done = null;
        d?.(r);
        return;
      }
      this.#waiting.shift()?.(r);
    });
  }
  async ask(cmd: Cmd): Promise<{ address?: unknown }> {
    const r = await new Promise<Reply>((resolve) => {
      this.#waiting.push(resolve);
      this.proc.send(cmd);
    });
    if ('error' in r) throw new Error(`child failed on ${cmd.op}: ${r.error}`);
    return r as { address?: unknown };
  }
  /** Arm the child to report when `n` messages arrived; resolves (once armed) with the wait for that report (messages and, where counted, bytes). */
  async expect(n: number): Promise<{ done: Promise<{ done: number; bytes: number }> }> {
    const done = new Promise<{ done: number; bytes: number }>((r) => {
      this.#done = r;
    });
    await this.ask({ op: 'expect', n });
    return { done };
  }
  close(): Promise<void> {
    return new Promise((r) => {
      this.proc.once('exit', () => r());
      this.proc.disconnect();
    });
  }
}

/** One system's sending side for a given size: `send` n messages as fast as it allows; `rtt` one round trip. */
interface Driver {
  throughput(n: number): Promise<void>;
  roundTrip(): Promise<void>;
  close(): Promise<void>;
}

async function driver(system: System, mode: 'tp' | 'rtt', size: number, peer: Peer, dir: string): Promise<Driver> {
  const payload = Buffer.alloc(size, 7);
  if (system === 'node-ipc') {
    const ipc = await nodeIpc();
    Object.assign(ipc.config, { silent: true, id: `amixbenchparent${process.pid}`, maxRetries: 0 });
    const { address } = await peer.ask({ op: 'setup', system, mode, size, dir });
    const id = 'server';
    await new Promise<void>((resolve) => {
      ipc.connectTo(id, address as string, () => {
        ipc.of[id]!.on('connect', () => resolve());
      });
    });
    const conn = ipc.of[id]!;
    let pong: (() => void) | null = null;
    let acked: (() => void) | null = null;
    conn.on('msg', () => {
      const p = pong;
      pong = null;
      p?.();
    });
    conn.on('ack', () => {
      const a = acked;
      acked = null;
      a?.();
    });
    return {
      async throughput(n) {
        // node-ipc only parses when its receive buffer ends on a delimiter, so an
        // unbroken stream piles up unparsed (quadratic at 4 KiB): send batches
        // of NODE_IPC_BATCH and wait for the receiver's ack of each.
        for (let i = 0; i < n;) {
          const k = Math.min(NODE_IPC_BATCH, n - i);
          const ack =
            k === NODE_IPC_BATCH
              ? new Promise<void>((r) => {
                  acked = r;
                })
              : null;
          for (let j = 0; j < k; j++) conn.emit('msg', payload);
          i += k;
          await ack;
        }
      },
      roundTrip: () =>
        new Promise<void>((r) => {
          pong = r;
          conn.emit('msg', payload);
        }),
      async close() {
        ipc.disconnect(id);
        await peer.ask({ op: 'teardown' });
      },
    };
  }
  if (system === 'zeromq-ipc') {
    const zmq = await import('zeromq');
    const push = new zmq.Push();
    let pull: InstanceType<typeof zmq.Pull> | null = null;
    let back: string | undefined;
    if (mode === 'rtt') {
      pull = new zmq.Pull();
      back = `ipc://${join(dir, `zmq-parent-${process.pid}-${size}.sock`)}`;
      await pull.bind(back);
    }
    const { address } = await peer.ask({ op: 'setup', system, mode, size, dir, address: back });
    push.connect(address as string);
    return {
      async throughput(n) {
        for (let i = 0; i < n; i++) await push.send(payload);
      },
      async roundTrip() {
        await push.send(payload);
        await pull!.receive();
      },
      async close() {
        push.close();
        pull?.close();
        await peer.ask({ op: 'teardown' });
      },
    };
  }
  if (system === 'net-naive') {
    const { address } = await peer.ask({ op: 'setup', system, mode, size, dir });
    const s = netConnect(address as string);
    await new Promise<void>((r, j) => {
      s.once('connect', r);
      s.once('error', j);
    });
    const frame = pingFrame(size);
    let acc = 0;
    let pong: (() => void) | null = null;
    s.on('data', (c: Buffer) => {
      acc += c.length;
      if (acc >= frame.length) {
        acc -= frame.length;
        const p = pong;
        pong = null;
        p?.();
      }
    });
    return {
      async throughput(n) {
        for (let i = 0; i < n; i++) {
          // One write per message: a fresh frame each time, as an application building messages would.
          const b = Buffer.allocUnsafe(frame.length);
          b.writeUInt32LE(size, 0);
          payload.copy(b, 4);
          if (!s.write(b)) await new Promise((r) => s.once('drain', r));
        }
      },
      roundTrip: () =>
        new Promise<void>((r) => {
          pong = r;
          s.write(frame);
        }),
      async close() {
        s.destroy();
        await peer.ask({ op: 'teardown' });
      },
    };
  }
  if (system === RAW) {
    const { address } = await peer.ask({ op: 'setup', system, mode, size, dir });
    const s = netConnect(address as string);
    await new Promise<void>((r, j) => {
      s.once('connect', r);
      s.once('error', j);
    });
    const w = new TickWriter(s);
    let pong: ((len: number) => void) | null = null;
    const p = new FrameParser((len) => {
      const f = pong;
      pong = null;
      f?.(len);
    });
    s.on('data', (c: Buffer) => p.push(c));
    return {
      async throughput(n) {
        // One write per event-loop turn: push frames until the slab is full, then let the turn end.
        for (let i = 0; i < n; i++) if (!w.push(payload)) await w.written();
        await w.written();
      },
      async roundTrip() {
        const len = await new Promise<number>((r) => {
          pong = r;
          w.push(payload);
        });
        if (len !== size) throw new Error(`${RAW} round trip: a ${len}-byte echo, want ${size}`);
      },
      async close() {
        s.destroy();
        await peer.ask({ op: 'teardown' });
      },
    };
  }
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir: dir } });
  let rx: Channel | null = null;
  if (mode === 'rtt') rx = await reg.open('queueConditionProcess');
  const { address } = await peer.ask({ op: 'setup', system, mode, size, dir, ...(rx ? { address: rx.address } : {}) });
  const tx = await reg.open('queueConditionProcess', { address: address as Record<string, unknown> });
  const batch = Array.from({ length: BATCH }, () => payload);
  return {
    async throughput(n) {
      if (system === AMIX_BATCH) {
        // The batch fast path: trySendMany, and an awaited sendMany of the rest only when it would have to wait.
        for (let i = 0; i < n; i += BATCH) {
          const b = n - i >= BATCH ? batch : batch.slice(0, n - i);
          const k = tx.trySendMany(b);
          if (k < b.length) await tx.sendMany(b.slice(k));
        }
        return;
      }
      // The public API's fast path: trySend, and an awaited send only when it would have to wait.
      for (let i = 0; i < n; i++) if (!tx.trySend(payload)) await tx.send(payload);
    },
    async roundTrip() {
      await tx.send(payload);
      await rx!.receive();
    },
    async close() {
      await tx.close();
      await rx?.close();
      await reg.close();
      await peer.ask({ op: 'teardown' });
    },
  };
}

async function main(): Promise<void> {
  const args = parseBenchArgs(
    'process',
    { reps: 3, quickReps: 2, sizes: [64, 4096], count: 50_000, quickCount: 10_000, rtts: 4000, quickRtts: 1000 },
    { systems: { type: 'string' } },
  );
  const allSystems = pickSystems('process', args.extra.systems, SYSTEMS);
  // A sweep moves a bounded number of bytes per row: counts scaled by 4096/size above 4 KiB.
  const nFor = (system: System, size: number) =>
    args.sweep ? scaleForSize(tpCount(system, size, args.count), size, 4096, 20) : tpCount(system, size, args.count);
  const rttsFor = (size: number) => (args.sweep ? scaleForSize(args.rtts, size, 4096, 100) : args.rtts);
  const skipped: string[] = [];
  const steps = args.sizes.length * args.reps * allSystems.length * 2;
  let step = 0;
  const script = fileURLToPath(import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), 'amix-bench-process-'));
  const rows: Row[] = [];
  const counts: Record<string, number[]> = {};
  // One child per system, all alive together, so every repetition runs the
  // systems back to back: a burst of load from elsewhere on the machine hits
  // one repetition of each rather than every repetition of one.
  const peers = new Map(allSystems.map((s) => [s, new Peer(script)] as const));
  try {
    for (const size of args.sizes) {
      const systems = allSystems.filter((s) => size <= (MAX_SIZE[s] ?? Infinity));
      for (const s of allSystems.filter((x) => !systems.includes(x))) {
        process.stderr.write(`process: skipping ${s} at size=${size} (carries at most ${MAX_SIZE[s]} bytes here)\n`);
        skipped.push(`${s}@${size}`);
        step += 2 * args.reps;
      }
      const rtts = rttsFor(size);
      const reps = new Map<System, Figures[]>(systems.map((s) => [s, []]));
      const tps = new Map<System, Driver>();
      for (const system of systems) {
        const n = nFor(system, size);
        (counts[system] ??= []).push(n);
        const tp = await driver(system, 'tp', size, peers.get(system)!, dir);
        tps.set(system, tp);
        // Warm-up: a tenth of a repetition, not recorded.
        const warm = await peers.get(system)!.expect(Math.max(1, Math.round(n / 10)));
        await tp.throughput(Math.max(1, Math.round(n / 10)));
        await warm.done;
      }
      for (let r = 0; r < args.reps; r++) {
        for (const system of systems) {
          const n = nFor(system, size);
          progress(`process: size=${size} throughput rep ${r + 1}/${args.reps} ${system} n=${n}`, step++ / steps);
          const { done } = await peers.get(system)!.expect(n);
          const t0 = performance.now();
          await tps.get(system)!.throughput(n);
          const got = await done;
          const ms = performance.now() - t0;
          if (got.done !== n || (system === RAW && got.bytes !== n * size))
            throw new Error(`${system} throughput: the child got ${got.done} messages (${got.bytes} bytes), want ${n}`);
          reps.get(system)!.push({ msgsPerSec: n / (ms / 1000) });
        }
      }
      for (const tp of tps.values()) await tp.close();
      const rts = new Map<System, Driver>();
      for (const system of systems) {
        const rt = await driver(system, 'rtt', size, peers.get(system)!, dir);
        rts.set(system, rt);
        for (let i = 0; i < Math.min(500, rtts); i++) await rt.roundTrip();
      }
      const h = latencyHistogram();
      for (let r = 0; r < args.reps; r++) {
        for (const system of systems) {
          progress(`process: size=${size} round trips rep ${r + 1}/${args.reps} ${system} n=${rtts}`, step++ / steps);
          const rt = rts.get(system)!;
          h.reset();
          for (let i = 0; i < rtts; i++) {
            const t0 = performance.now();
            await rt.roundTrip();
            h.record((performance.now() - t0) * 1000);
          }
          const fig = reps.get(system)![r]!;
          fig.rttP50Us = h.p50();
          fig.rttP99Us = h.p99();
        }
      }
      for (const rt of rts.values()) await rt.close();
      for (const system of systems) rows.push(summarise({ system, size }, reps.get(system)!));
    }
  } finally {
    for (const p of peers.values()) await p.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const systems = allSystems;
  rows.sort(
    (a, b) =>
      systems.indexOf(a.system as System) - systems.indexOf(b.system as System) || (a.size ?? 0) - (b.size ?? 0),
  );
  report(args, 'process', rows, 'node-ipc', {
    label: `process systems=${systems.join(',')} sizes=${args.sizes.join(',')} rtts=${args.rtts}`,
    // Messages per throughput repetition, by system and size (same order as sizes).
    throughputCounts: Object.entries(counts)
      .map(([k, v]) => `${k}:${v.join('/')}`)
      .join(','),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    ...(args.sweep
      ? { sweep: 'counts and rtts scaled by 4096/size above 4 KiB (at least 20 messages, 100 round trips)' }
      : {}),
    ...(skipped.length ? { skipped: skipped.join(',') } : {}),
  });
  reportPairs(args, rows, [
    [AMIX, RAW],
    [AMIX_BATCH, RAW],
  ]);
}

if (process.env.AMIX_BENCH_PROCESS_CHILD === '1') void child();
else
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench process failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
