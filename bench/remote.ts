/**
 * Bench `remote`: the `zeromq` primitive against raw zeromq.js, between two
 * processes over `tcp://127.0.0.1`, in one run, at each size: throughput
 * (the parent sends `count` messages, a child process receives them and
 * reports when it has the last) and round trip (the parent sends one
 * message, the child echoes it on a second flow; p50/p99 over `rtts`, after
 * as many untimed ones, at most 2000).
 *
 * Systems (`--sweep`: counts and round trips scaled by 4096/size above 4 KiB):
 * - `zeromq-tcp`: zeromq.js PUSH/PULL, awaiting each send (the baseline).
 * - `zeromq-tcp-multipart`: the same sockets, 64 messages per multipart
 *   send (`await push.send(64 buffers)`), the child counting parts and
 *   their bytes; {@link MULTIPART_SHARE} times `count` messages at up to
 *   1 KiB, `count` above. Throughput only (a round trip would be a batch).
 *   Under the table: `amix:daemon` and `amix:zeromq` over it.
 * - `amix:zeromq`: `registry.open('zeromq')` + `Channel` with its
 *   synchronous fast path, as every amix bench row: the parent calls
 *   `trySend` and awaits `send` only when it returns false (zero credit),
 *   the child calls `tryReceive` and awaits `receive` only when nothing is
 *   queued. The primitive packs the messages of one tick into shared
 *   frames. Round trips await `send` and `receive` one message at a time.
 * - `amix:daemon`: two `amixd` (started by this bench on loopback ports,
 *   the second given `--peer` the first's `--listen`, with CURVE keys) linking a point to a
 *   point over the zeromq primitive: point `gen` (process scope, on daemon
 *   A, `bench/points/gen.ts`) sends `warm + count` messages with
 *   `point.send`, one await each, once its link is up; point `tally`
 *   (process scope, on daemon B, `bench/points/tally.ts`) receives them and
 *   clocks the last `count` on its own clock (arrival of message `warm` to
 *   arrival of the last), then sends that figure to the bench's link on B.
 *   Each message crosses four processes: gen → amixd A (process primitive)
 *   → amixd B (zeromq primitive, in envelopes) → tally (process primitive).
 *   Points keep their default characteristics; a fresh pair per repetition,
 *   the daemons are shared by all. Throughput only (no round-trip fields).
 *   The end-to-end rate, from the `connect` request to the result (link set-up
 *   and warm-up included), goes to stderr with the daemons' resident sizes; at
 *   the end the bench says on stderr if a daemon still holds links, instances
 *   or points, exited badly, or wrote anything on its stderr. The forked child
 *   takes no part in it. `--daemon-count N` sets its `count` (default `count`).
 * - `amix:daemon-direct`: the same points and daemons, linked with `direct`
 *   (`amix connect --direct`): gen's process sends straight to tally's over
 *   the zeromq primitive with CURVE keys made for the link, and neither amixd
 *   is on the data path (two processes, as `amix:zeromq`, plus the points' API).
 * - `zeromq-tcp-curve`: `zeromq-tcp`'s PUSH/PULL with CURVE (a key pair each,
 *   throughput only): the bare mechanism under `amix:daemon-direct`.
 *
 * - `nats`: raw `@nats-io/transport-node` publish/subscribe through a
 *   nats-server this bench starts on a free loopback port (core NATS, no
 *   JetStream), the publisher flushing every 1000 messages
 *   (`bench/raw/nats.ts`); the peer row of `amix:nats`.
 * - `amix:nats`: `registry.open('nats')` through the same server, driven as
 *   `amix:zeromq` (trySend / tryReceive, send and receive only when they
 *   would wait). Both nats rows are left out, with the reason on stderr,
 *   when nats-server is not installed.
 *
 * `node dist/bench/remote.js [--quick] [--json] [--reps N] [--sizes 64,4096 | --sweep] [--count N] [--rtts N] [--daemon-count N] [--insecure] [--cpu-prof DIR] [--amixd-node-flags="--flag ..."] [--systems zeromq-tcp,amix:daemon,...]`
 *
 * @module
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import {
  DaemonClient,
  PrimitiveRegistry,
  generateKeyPair,
  saveKeyPair,
  type Channel,
  type ClientLink,
  type PeerInfo,
} from '../lib/internal.js';
import {
  badArgs,
  freePort,
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
import { MULTIPART, PARTS, receiveParts, sendParts } from './raw/zmqMultipart.js';
import { FLUSH_EVERY, rawEcho, rawRtt, rawSink, rawThroughput, startBenchNats, type BenchNats } from './raw/nats.js';

/** The systems of this bench, baseline first. */
const SYSTEMS = [
  'zeromq-tcp',
  'zeromq-tcp-multipart',
  'zeromq-tcp-curve',
  'amix:zeromq',
  'amix:daemon',
  'amix:daemon-direct',
  'nats',
  'amix:nats',
] as const;
type System = (typeof SYSTEMS)[number];
/** The systems whose receiving (or echoing) end is the forked child. */
type ChildSystem = Exclude<System, 'amix:daemon' | 'amix:daemon-direct'>;
const BASELINE: System = 'zeromq-tcp';
/** The multipart row runs this many times `count` at up to 1 KiB, so it lasts about as long as the others. */
const MULTIPART_SHARE = 4;

/** Messages of one throughput repetition for `system` at `size`. */
function tpCount(system: System, size: number, count: number): number {
  return system === MULTIPART && size <= 1024 ? count * MULTIPART_SHARE : count;
}

/** Parent → child control messages (over the fork IPC channel; data never goes there). */
/** Raw zeromq.js PUSH/PULL with CURVE (throughput only): the bare mechanism under a direct link, which encrypts. */
const CURVE_RAW = 'zeromq-tcp-curve';
/** The CURVE server key pair of the `zeromq-tcp-curve` row (made by the parent, given to the child's PULL). */
type CurveServer = { publicKey: string; secretKey: string };

type Command =
  | {
      cmd: 'sink';
      system: ChildSystem;
      size: number;
      count: number;
      warm: number;
      natsUrl?: string;
      curve?: CurveServer;
    }
  | { cmd: 'echo'; system: ChildSystem; size: number; count: number; back: unknown; natsUrl?: string };

/** The primitive and options of an amix row other than amix:daemon. */
function amixRow(system: ChildSystem, natsUrl: string | undefined): [string, Record<string, unknown>] {
  return system === 'amix:nats' ? ['nats', { nats: { servers: natsUrl } }] : ['zeromq', {}];
}
/** Child → parent control messages. */
type Reply = { ready: unknown } | { mark: true } | { done: true } | { error: string };

function payload(size: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => i & 0xff);
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
      if (c.system === MULTIPART) {
        if (c.cmd !== 'sink') throw new Error(`${MULTIPART} measures no round trip`);
        const pull = new zmq.Pull({ linger: 0 });
        await pull.bind('tcp://127.0.0.1:*');
        say({ ready: pull.lastEndpoint });
        await receiveParts(pull, c.warm, c.size);
        say({ mark: true });
        await receiveParts(pull, c.count, c.size);
        pull.close();
      } else if (c.system === 'zeromq-tcp' || c.system === CURVE_RAW) {
        const curve = c.cmd === 'sink' ? c.curve : undefined;
        const pull = new zmq.Pull({
          linger: 0,
          ...(curve ? { curveServer: true, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey } : {}),
        });
        await pull.bind('tcp://127.0.0.1:*');
        if (c.cmd === 'sink') {
          say({ ready: pull.lastEndpoint });
          for (let i = 0; i < c.warm; i++) await pull.receive();
          say({ mark: true });
          for (let i = 0; i < c.count; i++) await pull.receive();
        } else {
          // Linger: with 0, close() discards the last echo if it is still queued (likelier at 16 KiB+), and the parent waits forever.
          const push = new zmq.Push({ linger: 5000 });
          push.connect(c.back as string);
          say({ ready: pull.lastEndpoint });
          for (let i = 0; i < c.count; i++) {
            const [m] = await pull.receive();
            await push.send(m!);
          }
          push.close();
        }
        pull.close();
      } else if (c.system === 'nats') {
        if (c.cmd === 'sink')
          await rawSink(
            c.natsUrl!,
            c.warm,
            c.count,
            (ready) => say({ ready }),
            () => say({ mark: true }),
          );
        else await rawEcho(c.natsUrl!, c.back as string, c.count, (ready) => say({ ready }));
      } else {
        const [prim, opts] = amixRow(c.system, c.natsUrl);
        const rx = await reg.open(prim, opts);
        if (c.cmd === 'sink') {
          say({ ready: rx.address });
          for (let i = 0; i < c.warm; i++) await receiveOne(rx);
          say({ mark: true });
          for (let i = 0; i < c.count; i++) await receiveOne(rx);
        } else {
          const tx = await reg.open(prim, { ...opts, address: c.back as Record<string, unknown> });
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
  process.on('disconnect', () => {
    void reg.close().finally(() => process.exit(0));
  });
}

// ---------------------------------------------------------------------------
// The parent side.

async function ask(
  child: ChildProcess,
  c: Command,
): Promise<{ ready: unknown; mark: Promise<void>; done: Promise<void> }> {
  let resolveMark!: () => void;
  const mark = new Promise<void>((res) => {
    resolveMark = res;
  });
  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const ready = await new Promise<unknown>((resolve, reject) => {
    const on = (r: Reply) => {
      if ('error' in r) {
        child.off('message', on);
        const e = new Error(`child: ${r.error}`);
        reject(e);
        rejectDone(e);
        return;
      }
      if ('ready' in r) {
        resolve(r.ready);
        return;
      }
      if ('mark' in r) {
        resolveMark();
        return;
      }
      child.off('message', on);
      resolveDone();
    };
    child.on('message', on);
    child.send(c);
  });
  return { ready, mark, done };
}

async function parentThroughput(
  child: ChildProcess,
  reg: PrimitiveRegistry,
  system: ChildSystem,
  size: number,
  count: number,
  natsUrl?: string,
): Promise<Figures> {
  const msg = payload(size);
  // Untimed warm-up messages first, so connection set-up and JIT do not count.
  const warm = Math.min(20_000, Math.ceil(count / 5));
  const server = system === CURVE_RAW ? zmq.curveKeyPair() : undefined;
  const sink = { cmd: 'sink', system, size, count, warm, natsUrl, ...(server ? { curve: server } : {}) } as const;
  const { ready, mark, done } = await ask(child, sink);
  if (system === 'nats')
    return { msgsPerSec: await rawThroughput(natsUrl!, ready as string, msg, warm, count, mark, done) };
  if (system === MULTIPART) {
    const push = new zmq.Push({ linger: 0 });
    push.connect(ready as string);
    const batch = Array.from({ length: PARTS }, () => msg);
    await sendParts(push, batch, warm);
    await mark;
    const t0 = performance.now();
    await sendParts(push, batch, count);
    await done;
    const ms = performance.now() - t0;
    push.close();
    return { msgsPerSec: (count / ms) * 1000 };
  }
  if (system === 'zeromq-tcp' || system === CURVE_RAW) {
    const client = server ? zmq.curveKeyPair() : undefined;
    const push = new zmq.Push({
      linger: 0,
      ...(server && client
        ? { curveServerKey: server.publicKey, curvePublicKey: client.publicKey, curveSecretKey: client.secretKey }
        : {}),
    });
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
  const [prim, opts] = amixRow(system, natsUrl);
  const tx = await reg.open(prim, { ...opts, address: ready as Record<string, unknown> });
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

async function parentRtt(
  child: ChildProcess,
  reg: PrimitiveRegistry,
  system: ChildSystem,
  size: number,
  rtts: number,
  natsUrl?: string,
): Promise<Figures> {
  const msg = payload(size);
  const h = latencyHistogram();
  // Untimed round trips first, as many as are timed (at most 2000): with 200, the p50 of 2000 included
  // code V8 had not optimised yet, more so for amix's longer path (211 against 97 µs for amix:zeromq).
  const warm = Math.min(2000, rtts);
  if (system === 'nats') {
    const count = rtts + warm;
    await rawRtt(
      natsUrl!,
      (back) => ask(child, { cmd: 'echo', system, size, count, back, natsUrl }),
      msg,
      warm,
      rtts,
      h,
    );
  } else if (system === 'zeromq-tcp') {
    const pull = new zmq.Pull({ linger: 0 });
    await pull.bind('tcp://127.0.0.1:*');
    const { ready, done } = await ask(child, {
      cmd: 'echo',
      system,
      size,
      count: rtts + warm,
      back: pull.lastEndpoint,
    });
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
    const [prim, opts] = amixRow(system, natsUrl);
    const rx = await reg.open(prim, opts);
    const back = rx.address;
    const { ready, done } = await ask(child, { cmd: 'echo', system, size, count: rtts + warm, back, natsUrl });
    const tx = await reg.open(prim, { ...opts, address: ready as Record<string, unknown> });
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

// ---------------------------------------------------------------------------
// amix:daemon: two amixd peered over loopback, a point on each.

const AMIXD = fileURLToPath(new URL('../bin/amixd.js', import.meta.url));
const GEN = fileURLToPath(new URL('./points/gen.js', import.meta.url));
const TALLY = fileURLToPath(new URL('./points/tally.js', import.meta.url));

/** One amixd this bench started, with what it wrote on stderr. */
interface Amixd {
  name: string;
  proc: ChildProcess;
  dir: string;
  stderr: string[];
}

/** Where the amixd processes write CPU profiles (`--cpu-prof DIR`), if anywhere. */
let CPU_PROF_DIR: string | undefined;
/** Node and V8 flags every amixd starts with (`--amixd-node-flags`): how a tuning such as docs/tuning.md's measures. */
let AMIXD_NODE_FLAGS: string[] = [];

/** Start amixd in the foreground; resolves once it says `ready` on stdout. */
async function startAmixd(name: string, dir: string, extra: string[]): Promise<Amixd> {
  // `--cpu-prof DIR`: each amixd writes a V8 CPU profile there when it stops (where a missed target's time goes).
  const prof = CPU_PROF_DIR
    ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`, `--cpu-prof-name=amixd-${name}.cpuprofile`]
    : [];
  const proc = spawn(process.execPath, [...prof, ...AMIXD_NODE_FLAGS, AMIXD, '--dir', dir, '--quiet', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AMIXD_READY_FD: '1' },
  });
  const d: Amixd = { name, proc, dir, stderr: [] };
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => d.stderr.push(s));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`amixd ${name} not ready after 15 s`)), 15_000);
      let out = '';
      proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`amixd ${name} exited early (${code ?? sig}): ${d.stderr.join('').trim()}`));
      });
    });
  } catch (err) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    throw err;
  }
  return d;
}

/** SIGTERM, then SIGKILL after 10 s; resolves with how it ended. */
async function stopAmixd(d: Amixd): Promise<string> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null)
    return `had already exited (${d.proc.exitCode ?? d.proc.signalCode})`;
  const exited = once(d.proc, 'exit');
  d.proc.kill('SIGTERM');
  const timer = setTimeout(() => d.proc.kill('SIGKILL'), 10_000);
  const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return sig ? `killed by ${sig}` : `exit ${code}`;
}

/** Resident set size of a process in KiB, from /proc (Linux), or undefined. */
function rssKiB(pid: number | undefined): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The resident size of an amixd that does nothing: started without peering
 * on a fresh directory, read after a second of quiet (issue 17's idle figure).
 */
async function idleAmixdRssKiB(): Promise<number | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-bench-idle-'));
  try {
    const d = await startAmixd('idle', join(dir, 'd'), []);
    // A measurement, not a synchronisation: start-up garbage settles.
    await new Promise((r) => setTimeout(r, 1000));
    const kib = rssKiB(d.proc.pid);
    await stopAmixd(d);
    return kib;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The largest resident size of each process seen, sampled every 200 ms until stopped. */
class RssPeaks {
  readonly peak = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  constructor(readonly procs: ReadonlyArray<[string, ChildProcess]>) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), 200);
    this.#timer.unref();
  }
  sample(): void {
    for (const [name, p] of this.procs) {
      const kib = rssKiB(p.pid);
      if (kib !== undefined && kib > (this.peak.get(name) ?? 0)) this.peak.set(name, kib);
    }
  }
  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

/** The two peered daemons and a client on each, shared by every amix:daemon repetition. */
class DaemonPair {
  rep = 0;
  private constructor(
    readonly base: string,
    readonly a: Amixd,
    readonly b: Amixd,
    readonly ca: DaemonClient,
    readonly cb: DaemonClient,
  ) {}

  static async start(insecure: boolean): Promise<DaemonPair> {
    const base = await mkdtemp(join(tmpdir(), 'amix-bench-remote-'));
    const started: Amixd[] = [];
    const clients: DaemonClient[] = [];
    try {
      // A port found free may be taken before amixd binds it: try again with another.
      const startListening = async (name: string, extra: string[]): Promise<{ d: Amixd; listen: string }> => {
        for (let attempt = 1; ; attempt++) {
          const listen = `tcp://127.0.0.1:${await freePort()}`;
          try {
            return {
              d: await startAmixd(name, join(base, `${name.toLowerCase()}${attempt}`), ['--listen', listen, ...extra]),
              listen,
            };
          } catch (err) {
            if (attempt >= 3) throw err;
          }
        }
      };
      // Peered as deployed: CURVE keys, each daemon's key in the other's allow-list
      // (`--insecure`: no keys, to compare with trees from before CURVE).
      const pairA = generateKeyPair();
      const pairB = generateKeyPair();
      await saveKeyPair(join(base, 'a.keys'), pairA);
      await saveKeyPair(join(base, 'b.keys'), pairB);
      await writeFile(join(base, 'allow'), `${pairA.publicKey}\n${pairB.publicKey}\n`, { mode: 0o600 });
      const keyed = (name: string): string[] =>
        insecure ? ['--insecure'] : ['--keys', join(base, `${name}.keys`), '--allow', join(base, 'allow')];
      const { d: a, listen } = await startListening('A', keyed('a'));
      started.push(a);
      const peerKey = insecure ? [] : [`--peer-key=${pairA.publicKey}`];
      const { d: b } = await startListening('B', [...keyed('b'), '--peer', listen, ...peerKey]);
      started.push(b);
      const ca = await DaemonClient.connect({ dir: a.dir, name: 'bench remote A' });
      clients.push(ca);
      const cb = await DaemonClient.connect({ dir: b.dir, name: 'bench remote B' });
      clients.push(cb);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { peers } = await ca.request<{ peers: PeerInfo[] }>('peers');
        if (peers.some((p) => p.state === 'up')) break;
        if (Date.now() > deadline)
          throw new Error(
            `amixd B did not peer with A within 10 s: ${JSON.stringify(peers)}; B stderr: ${b.stderr.join('').trim()}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
      return new DaemonPair(base, a, b, ca, cb);
    } catch (err) {
      for (const c of clients) await c.close().catch(() => {});
      for (const d of started) await stopAmixd(d);
      await rm(base, { recursive: true, force: true });
      throw err;
    }
  }

  /** One throughput repetition with a fresh pair of points. */
  async throughput(size: number, count: number, direct = false): Promise<Figures> {
    const warm = Math.min(20_000, Math.ceil(count / 5));
    const tag = `${size}-${++this.rep}`;
    const gen = `bench-gen-${tag}`;
    const tally = `bench-tally-${tag}`;
    await this.ca.request('point.register', {
      registration: {
        name: gen,
        location: GEN,
        role: 'sender',
        data: { size, count, warm },
        characteristics: { scope: 'process' },
      },
    });
    await this.cb.request('point.register', {
      registration: {
        name: tally,
        location: TALLY,
        role: 'both',
        data: { count, warm },
        characteristics: { scope: 'process' },
      },
    });
    let result: ClientLink | undefined;
    let remote: string | undefined;
    try {
      result = await this.cb.connect(tally, null, { direction: 'aToB' });
      const t0 = performance.now();
      remote = (
        await this.ca.request<{ id: string }>('connect', {
          a: gen,
          b: tally,
          direction: 'aToB',
          ...(direct ? { direct: true } : {}),
        })
      ).id;
      const m = await result.receive({ signal: AbortSignal.timeout(120_000) });
      const wallMs = performance.now() - t0;
      const r = JSON.parse(new TextDecoder().decode(m.data)) as { count: number; ns: number; bytes: number };
      if (r.count !== count || r.bytes !== count * size)
        throw new Error(`tally got ${r.bytes} bytes in ${r.count} messages, expected ${count * size} in ${count}`);
      progress(
        `  amix:daemon${direct ? '-direct' : ''} size=${size}: ${Math.round((count / r.ns) * 1e9)} msgs/s on tally's clock; ${Math.round(((warm + count) / wallMs) * 1000)} msgs/s from connect to result (${(wallMs / 1000).toFixed(2)} s, ${warm} warm-up messages and link set-up included); ${this.rss()}`,
      );
      return { msgsPerSec: (count / r.ns) * 1e9 };
    } finally {
      if (remote !== undefined) await this.ca.request('disconnect', { link: remote });
      await result?.close();
      await this.ca.request('point.rm', { name: gen });
      await this.cb.request('point.rm', { name: tally });
    }
  }

  /** Resident set sizes of the daemons (KiB), for the leak check in the log. */
  rss(): string {
    return `amixd A ${rssKiB(this.a.proc.pid) ?? '?'} KiB, amixd B ${rssKiB(this.b.proc.pid) ?? '?'} KiB`;
  }

  /** Close the clients, stop the daemons, report anything they wrote on stderr, remove the directories. */
  async stop(): Promise<void> {
    // Every repetition removed its points and links: say so if either daemon still holds some.
    for (const [name, c] of [
      ['A', this.ca],
      ['B', this.cb],
    ] as const) {
      const left = await Promise.all(
        (['links', 'instances', 'point.ls'] as const).map((op) =>
          c.request<unknown[]>(op).then(
            (r) => r.length,
            () => -1,
          ),
        ),
      );
      if (left.some((n) => n !== 0))
        process.stderr.write(
          `bench remote: amixd ${name} still holds links=${left[0]} instances=${left[1]} points=${left[2]} after the last repetition\n`,
        );
    }
    await this.ca.close().catch(() => {});
    await this.cb.close().catch(() => {});
    for (const d of [this.a, this.b]) {
      const how = await stopAmixd(d);
      const err = d.stderr.join('').trim();
      if (how !== 'exit 0' || err)
        process.stderr.write(`bench remote: amixd ${d.name} ${how}${err ? `; its stderr:\n${err}` : ''}\n`);
    }
    await rm(this.base, { recursive: true, force: true });
  }
}

async function parentMain(): Promise<void> {
  const args = parseBenchArgs(
    'remote',
    { reps: 5, quickReps: 2, sizes: [64, 4096], count: 60_000, quickCount: 30_000, rtts: 2_000, quickRtts: 800 },
    {
      'daemon-count': { type: 'string' },
      insecure: { type: 'boolean' },
      'cpu-prof': { type: 'string' },
      'amixd-node-flags': { type: 'string' },
      systems: { type: 'string' },
    },
  );
  CPU_PROF_DIR = args.extra['cpu-prof'] as string | undefined;
  AMIXD_NODE_FLAGS = ((args.extra['amixd-node-flags'] as string | undefined) ?? '').split(/\s+/).filter(Boolean);
  if (AMIXD_NODE_FLAGS.some((f) => !/^--[a-z][a-z0-9-]*(=\S+)?$/.test(f))) {
    badArgs('remote', '--amixd-node-flags takes flags such as --amixd-node-flags="--initial-old-space-size=64"');
  }
  const insecure = args.extra.insecure === true;
  const daemonCount = args.extra['daemon-count'] === undefined ? args.count : Number(args.extra['daemon-count']);
  const scaled = (n: number, size: number, floor: number) => (args.sweep ? scaleForSize(n, size, 4096, floor) : n);
  if (!Number.isSafeInteger(daemonCount) || daemonCount < 1) {
    badArgs('remote', '--daemon-count must be a positive integer');
  }
  // `--systems a,b`: only those rows (a profile or an A/B comparison of one row).
  const picked = pickSystems('remote', args.extra.systems, SYSTEMS);
  const child = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  const reg = new PrimitiveRegistry();
  const rows: Row[] = [];
  let daemons: DaemonPair | undefined;
  let peaks: RssPeaks | undefined;
  const nats: BenchNats | string = await startBenchNats();
  const natsUrl = typeof nats === 'string' ? undefined : nats.url;
  if (typeof nats === 'string') progress(`remote: the nats and amix:nats rows are skipped: ${nats}`);
  const systems = picked.filter((s) => natsUrl !== undefined || !s.includes('nats'));
  const memory: Record<string, number | undefined> = {};
  try {
    memory.idleKiB = await idleAmixdRssKiB();
    daemons = await DaemonPair.start(insecure);
    memory.peeredAKiB = rssKiB(daemons.a.proc.pid);
    memory.peeredBKiB = rssKiB(daemons.b.proc.pid);
    peaks = new RssPeaks([
      ['A', daemons.a.proc],
      ['B', daemons.b.proc],
    ]);
    progress(`remote: amixd idle (no peering) ${memory.idleKiB ?? '?'} KiB; A and B peered; ${daemons.rss()}`);
    // The bar's fraction: one step per system, size and repetition.
    let step = 0;
    const steps = args.sizes.length * args.reps * systems.length;
    for (const size of args.sizes) {
      const figures = new Map<System, Figures[]>(systems.map((s) => [s, []]));
      const rtts = scaled(args.rtts, size, 100);
      for (let rep = 0; rep < args.reps; rep++) {
        // Systems alternate inside each repetition so a load spike from other work hits them alike.
        for (const system of systems) {
          if (system === 'amix:daemon' || system === 'amix:daemon-direct') {
            const dn = scaled(daemonCount, size, 20);
            progress(`remote size=${size} rep ${rep + 1}/${args.reps} ${system} count=${dn}`, step++ / steps);
            figures.get(system)!.push(await daemons.throughput(size, dn, system === 'amix:daemon-direct'));
            continue;
          }
          const n = scaled(tpCount(system, size, args.count), size, 20);
          progress(`remote size=${size} rep ${rep + 1}/${args.reps} ${system} count=${n} rtts=${rtts}`, step++ / steps);
          const tp = await parentThroughput(child, reg, system, size, n, natsUrl);
          const rtt =
            system === MULTIPART || system === CURVE_RAW
              ? {}
              : await parentRtt(child, reg, system, size, rtts, natsUrl);
          figures.get(system)!.push({ ...tp, ...rtt });
        }
      }
      for (const system of systems) rows.push(summarise({ system, size }, figures.get(system)!));
    }
    progress(`remote: done; ${daemons.rss()}`);
  } finally {
    peaks?.stop();
    memory.maxAKiB = peaks?.peak.get('A');
    memory.maxBKiB = peaks?.peak.get('B');
    await daemons?.stop();
    await reg.close();
    child.disconnect();
    await exited;
    if (typeof nats !== 'string') await nats.stop();
  }
  report(args, 'remote', rows, BASELINE, {
    transport: 'tcp://127.0.0.1',
    processes: 2,
    count: args.count,
    rtts: args.rtts,
    // amix:daemon: gen, amixd A, amixd B and tally are four processes; its round trip is not measured.
    daemonProcesses: 4,
    daemonCount,
    daemonPeering: insecure ? 'insecure (no CURVE)' : 'CURVE',
    amixdNodeFlags: AMIXD_NODE_FLAGS.join(' ') || 'none',
    multipart: `${PARTS} messages per send; ${MULTIPART_SHARE}x count up to 1 KiB`,
    nats:
      natsUrl === undefined
        ? `rows skipped: ${nats as string}`
        : `nats-server on ${natsUrl} (core NATS); raw nats flushes every ${FLUSH_EVERY} messages`,
    // amixd's resident size (KiB): idle without peering; each daemon once peered and at its peak during the rows.
    amixdRss: memory,
    ...(args.sweep ? { sweep: 'counts and rtts scaled by 4096/size above 4 KiB (at least 20, 100)' } : {}),
  });
  const growth = (peak?: number, start?: number) =>
    peak === undefined || start === undefined ? '?' : `+${((peak - start) / 1000).toFixed(1)} MB`;
  (args.json ? process.stderr : process.stdout).write(
    `amixd RSS: idle ${((memory.idleKiB ?? NaN) / 1000).toFixed(1)} MB (target <= 55); during the rows A ${growth(memory.maxAKiB, memory.peeredAKiB)}, B ${growth(memory.maxBKiB, memory.peeredBKiB)} over peered (target <= +40 MB)\n`,
  );
  reportPairs(args, rows, [
    ['amix:daemon', MULTIPART],
    ['amix:daemon-direct', MULTIPART],
    ['amix:daemon-direct', CURVE_RAW],
    ['amix:zeromq', MULTIPART],
    ...(natsUrl === undefined ? [] : ([['amix:nats', 'nats']] as Array<[string, string]>)),
  ]);
}

if (process.argv.includes('--child')) await childMain();
else await parentMain();
