/**
 * Bench `switch` (seed 002 ¶165: a switch "minimizes the number of Thread
 * Communication Links required"): N sending points, each with one
 * destination, 64 B messages, through switches against N direct links.
 *
 * - `amix:switch`: the N senders are endpoints of the bench's process, each
 *   with one in-process (queueConditionThread) link to switch TCS-1, a
 *   thread point of that process; TCS-1 is linked to switch TCS-2 in a
 *   second process (`bench/points/switchSinks.ts`) by one process link
 *   (and a brokered one back, for routes); the N receivers are endpoints
 *   of that process, each with an in-process link from TCS-2. Every link
 *   is made by `fabric.connect` (or, inside the receivers' process, by
 *   agents there, as the fabric's agents make them). Each message crosses
 *   two switches.
 * - `amix:direct`: the same senders and receivers, each pair with its own
 *   queueConditionProcess link (one Unix socket each) between the two
 *   processes (`bench/points/directSinks.ts`).
 *
 * - `amix:trunk`: as `amix:switch`, but TCS-1 reaches TCS-2 through trunk
 *   points TTP-1 and TTP-2 (`amix:trunk`, a process each, ZeroMQ with CURVE
 *   over tcp://127.0.0.1 between them): each message is a sequenced switch
 *   frame, batched into trunk frames and acknowledged by TCS-2. The row also
 *   carries `msgsPerFrame` (switch frames per trunk frame, TTP-1's out).
 *   Processes: the bench's, TTP-1, TTP-2 and TCS-2's.
 *
 * Rows: `{ system, flows, msgsPerSec, sockets, rssMb }`: msgsPerSec over
 * all flows (every sender sends `count / flows` messages at once, timed
 * to the receivers' `done`), sockets = open descriptors of type socket in
 * the two processes (`/proc/<pid>/fd`), rssMb = their resident memory.
 *
 * `node dist/bench/switch.js [--quick] [--json] [--reps N] [--count N] [--flows 1,100,1000] [--systems amix:direct,amix:switch,amix:trunk]`
 *
 * @module
 */
import { mkdtemp, readdir, readlink, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, SWITCH_LOCATION, TRUNK_LOCATION, type Link } from '../lib/index.js';
import { generateKeyPair } from '../primitives/zeromq/keys.js';
import { Agent } from '../lib/fabric/agent.js';
import { Endpoint } from '../lib/fabric/endpoint.js';
import { badArgs, conditions, median, parseBenchArgs, pickSystems, progress } from './common.js';

const args = parseBenchArgs(
  'switch',
  { reps: 3, quickReps: 1, sizes: [64], count: 60_000, quickCount: 20_000, rtts: 1, quickRtts: 1 },
  { flows: { type: 'string' }, systems: { type: 'string' } },
);
const FLOWS = ((args.extra.flows as string | undefined) ?? '1,100,1000').split(',').map(Number);
if (FLOWS.some((n) => !Number.isInteger(n) || n < 1)) {
  badArgs('switch', '--flows must be positive integers');
}
const SIZE = 64;
const point = (name: string) => fileURLToPath(new URL(`./points/${name}.js`, import.meta.url));

interface Row {
  system: 'amix:switch' | 'amix:direct' | 'amix:trunk';
  msgsPerFrame?: number;
  flows: number;
  msgsPerSec: number;
  sockets: number;
  rssMb: number;
  min?: { msgsPerSec: number };
  max?: { msgsPerSec: number };
}

/** Open descriptors of type socket in each of `pids`, summed. */
async function sockets(pids: number[]): Promise<number> {
  let n = 0;
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')).startsWith('socket:')) n++;
  }
  return n;
}

/** Resident memory of `pids` in MiB, summed. */
async function rssMb(pids: number[]): Promise<number> {
  let kb = 0;
  for (const pid of pids) {
    const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    kb += Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0);
  }
  return Math.round(kb / 102.4) / 10;
}

/** Wait for the next message on `ep` whose text is `text`. */
async function expectText(ep: Endpoint | Link, text: string): Promise<void> {
  for (;;) {
    const m = await ep.receive();
    if (Buffer.from(m.data).toString() === text) return;
  }
}

/** Every sender sends `perFlow` messages to its destination at once; resolves with msgs/s at the receivers' `done`. */
async function run(
  senders: Array<{ ep: Endpoint; to?: string }>,
  perFlow: number,
  done: () => Promise<void>,
): Promise<number> {
  const msg = new Uint8Array(SIZE).fill(7);
  const finished = done();
  const t0 = performance.now();
  await Promise.all(
    senders.map(async ({ ep, to }) => {
      const o = to ? { to } : {};
      for (let i = 0; i < perFlow; i++) await ep.send(msg, o);
    }),
  );
  await finished;
  return (senders.length * perFlow) / ((performance.now() - t0) / 1000);
}

async function measure(system: Row['system'], flows: number, frac: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-bench-switch-'));
  const runtimeDir = join(dir, 'run');
  const fabric = new Fabric({
    runtimeDir,
    hostExecArgv: process.env.AMIX_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : [],
  });
  const perFlow = Math.max(1, Math.floor(args.count / flows));
  const rates: number[] = [];
  try {
    const senders: Array<{ ep: Endpoint; to?: string }> = [];
    let done: () => Promise<void>;
    let peerPid: number;
    const morePids: number[] = [];
    if (system === 'amix:switch' || system === 'amix:trunk') {
      // TCS-1 receives on the thread ring (from the senders here), sends on the process primitive (to TCS-2).
      fabric.register({
        name: 'TCS-1',
        location: SWITCH_LOCATION,
        sendPrimitive: 'queueConditionProcess',
        receivePrimitive: 'queueConditionThread',
        characteristics: { waitStrategy: 'block' },
      });
      fabric.register({
        name: 'TCS-2',
        location: point('switchSinks'),
        characteristics: { scope: 'process', waitStrategy: 'block' },
        data: { switch: true, flows, perFlow, report: 'bench' },
      });
      if (system === 'amix:trunk') {
        const [k1, k2] = [generateKeyPair(), generateKeyPair()];
        const listen = `tcp://127.0.0.1:${20000 + Math.floor(Math.random() * 30000)}`;
        const c = { scope: 'process' as const };
        fabric.register({
          name: 'TTP-2',
          location: TRUNK_LOCATION,
          characteristics: c,
          data: { trunk: { ...k2, peerKey: k1.publicKey, listen } },
        });
        fabric.register({
          name: 'TTP-1',
          location: TRUNK_LOCATION,
          characteristics: c,
          data: { trunk: { ...k1, peerKey: k2.publicKey, connect: listen } },
        });
        await fabric.connect('TCS-2', 'TTP-2');
        await fabric.connect('TCS-1', 'TTP-1');
        morePids.push(fabric.instance('TTP-1').pid!, fabric.instance('TTP-2').pid!);
      } else await fabric.connect('TCS-1', 'TCS-2');
      const bench = new Endpoint('bench');
      const as = (name: string, ep: Endpoint) => ({ name, target: new Agent(ep, fabric.registry), inProcess: true });
      await fabric.connect(null, 'TCS-1', { as: as('bench', bench) });
      for (let i = 1; i <= flows; i++) {
        const ep = new Endpoint(`S-${i}`);
        await fabric.connect(null, 'TCS-1', { direction: 'aToB', as: as(`S-${i}`, ep) });
        senders.push({ ep, to: `R-${i}` });
        if (i % 50 === 0) progress(`${system} flows=${flows}: attached ${i}`, frac);
      }
      await expectText(bench, 'ready');
      // The senders' links are send-only (they learn no routes): start once TCS-1 knows every receiver.
      while ((await fabric.switches.show('TCS-1')).routes.length < flows + 1);
      done = () => expectText(bench, 'done');
      peerPid = fabric.instance('TCS-2').pid!;
    } else {
      fabric.register({
        name: 'sinks',
        location: point('directSinks'),
        characteristics: { scope: 'process' },
        data: { flows, perFlow, runtimeDir },
      });
      const link = await fabric.connect(null, 'sinks');
      const addresses = JSON.parse(Buffer.from((await link.receive()).data).toString()) as unknown[];
      for (let i = 1; i <= flows; i++) {
        const ch = await fabric.registry.open('queueConditionProcess', {
          address: addresses[i - 1] as never,
          maxmsg: 4096,
          minmsg: 2048,
        });
        await ch.connect();
        const ep = new Endpoint(`S-${i}`);
        ep.addSender(`direct-${i}`, `R-${i}`, ch);
        senders.push({ ep });
        if (i % 50 === 0) progress(`${system} flows=${flows}: linked ${i}`, frac);
      }
      done = () => expectText(link, 'done');
      peerPid = fabric.instance('sinks').pid!;
    }
    const pids = [process.pid, peerPid, ...morePids];
    const socks = await sockets(pids);
    const cpu = async (pid: number) => {
      const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    for (let r = 0; r < args.reps; r++) {
      const c0 = await Promise.all(pids.map(cpu));
      const w0 = performance.now();
      rates.push(await run(senders, perFlow, done));
      if (process.env.AMIX_BENCH_CPU) {
        const c1 = await Promise.all(pids.map(cpu));
        progress(
          `cpu ms: ${c1.map((c, i) => c - c0[i]!).join(' / ')} over ${Math.round(performance.now() - w0)} ms wall`,
        );
      }
      progress(`${system} flows=${flows}: rep ${r + 1}/${args.reps} ${Math.round(rates.at(-1)!)} msgs/s`, frac);
    }
    const mem = await rssMb(pids);
    const trunk = system === 'amix:trunk' ? await fabric.switches.trunk('TTP-1') : undefined;
    for (const s of senders) await s.ep.close().catch(() => {});
    return {
      system,
      flows,
      msgsPerSec: Math.round(median(rates)),
      sockets: socks,
      rssMb: mem,
      ...(trunk ? { msgsPerFrame: trunk.msgsPerFrame } : {}),
      ...(rates.length > 1
        ? { min: { msgsPerSec: Math.round(Math.min(...rates)) }, max: { msgsPerSec: Math.round(Math.max(...rates)) } }
        : {}),
    };
  } finally {
    await fabric.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
const SYSTEMS = pickSystems('switch', args.extra.systems, ['amix:direct', 'amix:switch', 'amix:trunk'] as const);
const jobs = FLOWS.flatMap((f) => SYSTEMS.map((sys) => [sys, f] as const));
for (const [i, [system, flows]] of jobs.entries()) rows.push(await measure(system, flows, i / jobs.length));
if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
const cond = conditions(args.reps, { size: SIZE, messages: args.count });
if (args.json) process.stdout.write(JSON.stringify({ bench: 'switch', conditions: cond, rows }, null, 2) + '\n');
else {
  const lines = [
    `bench switch: ${Object.entries(cond)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    `medians of ${args.reps} repetitions; x = msgs/s over amix:direct at the same flows`,
    ['system', 'flows', 'msgs/s', 'x', 'sockets', 'rss MB', 'msgs/frame'].map((h) => h.padStart(12)).join(''),
  ];
  for (const r of rows) {
    const base = rows.find((b) => b.system === 'amix:direct' && b.flows === r.flows);
    const x = base ? (r.msgsPerSec / base.msgsPerSec).toFixed(2) : '';
    lines.push(
      [r.system, r.flows, r.msgsPerSec.toLocaleString('en-US'), x, r.sockets, r.rssMb, r.msgsPerFrame ?? '']
        .map((c) => String(c).padStart(12))
        .join(''),
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
}
process.exit(0);
