/**
 * Cluster bench (issue 22): amixd --cluster over NATS JetStream.
 *
 * - `amix:cluster` op `propagate`: a point registered on daemon A (the
 *   request acknowledged), until daemon B finds it by name (`point.show`,
 *   polled every millisecond over B's control socket). p50/p99 in ms.
 * - op `query-eq` on a daemon whose replica holds `--count` points of
 *   another member (default 100000; put into the registrations bucket by
 *   this bench, pipelined, as a member would), against the same points in a
 *   single daemon's own directory (`amix:daemon`, no cluster) and in a bare
 *   in-process `Directory` (`amix:directory`, the baseline): an equality on
 *   an attribute with 10000 values (10 matches), through the control socket
 *   for both daemons. Target: the replica as fast as the single daemon.
 *
 * Flags: `--count N` replica points (default 100000, `--quick` 10000),
 * `--rtts N` registrations / queries per repetition (default 200, quick 50),
 * `--reps N` (default 3), `--servers N` NATS servers (default 3, clustered),
 * `--json`. Needs `nats-server` on the PATH (skipped with a reason otherwise).
 *
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DaemonClient } from '../lib/control/client.js';
import { Directory } from '../lib/directory/index.js';
import { generateKeyPair, saveKeyPair } from '../primitives/zeromq/keys.js';
import { freePort, parseBenchArgs, progress, report, summarise, type Figures, type Row } from './common.js';

const args = parseBenchArgs(
  'cluster',
  { reps: 3, quickReps: 2, sizes: [1], count: 100_000, quickCount: 10_000, rtts: 200, quickRtts: 50 },
  { servers: { type: 'string' } },
);
const nServers = Number(args.extra.servers ?? 3);
const AMIXD = fileURLToPath(new URL('../bin/amixd.js', import.meta.url));
const POINT = fileURLToPath(new URL('./points/tally.js', import.meta.url));
const ZONES = 10_000;
const base = mkdtempSync(join(tmpdir(), 'amix-bench-cluster-'));
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
};
process.on('exit', cleanup);

try {
  execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
} catch {
  const why = 'nats-server is not installed (apt-get install nats-server)';
  process.stderr.write(`bench cluster: skipped: ${why}\n`);
  if (args.json)
    process.stdout.write(JSON.stringify({ bench: 'cluster', conditions: { skipped: why }, rows: [] }) + '\n');
  process.exit(0);
}

/** Start `n` nats-servers (JetStream; routed into one cluster when n > 1); resolves their URLs once ready. */
async function startNats(n: number): Promise<string[]> {
  const nodes: Array<{ port: number; cport: number }> = [];
  for (let i = 0; i < n; i++) nodes.push({ port: await freePort(), cport: await freePort() });
  const ready: Promise<void>[] = [];
  nodes.forEach(({ port, cport }, i) => {
    const lines = [
      `server_name: b${i}`,
      `listen: "127.0.0.1:${port}"`,
      `jetstream { store_dir: "${join(base, `js${i}`)}" }`,
    ];
    if (n > 1)
      lines.push(
        `cluster { name: amixbench, listen: "127.0.0.1:${cport}", routes: [${nodes
          .filter((_, j) => j !== i)
          .map((o) => `"nats://127.0.0.1:${o.cport}"`)
          .join(', ')}] }`,
      );
    const conf = join(base, `n${i}.conf`);
    writeFileSync(conf, lines.join('\n') + '\n');
    const c = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(c);
    ready.push(
      new Promise((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('nats-server not ready in 20 s')), 20_000);
        c.stderr!.on('data', (d: Buffer) => {
          buf += d.toString();
          const leader = n === 1 || /metadata leader/.test(buf);
          if (buf.includes('Server is ready') && leader) {
            clearTimeout(timer);
            resolve();
          }
        });
      }),
    );
  });
  // One server reports the meta leader; the others only that they are ready.
  await Promise.race([Promise.all(ready), new Promise((r) => setTimeout(r, 20_000))]).catch(() => {});
  await Promise.any(ready);
  return nodes.map((o) => `nats://127.0.0.1:${o.port}`);
}

/** Start an amixd (clustered when `servers` is given); resolves a client. */
async function daemon(name: string, servers?: string[]): Promise<DaemonClient> {
  const dir = join(base, name);
  const extra: string[] = [];
  if (servers) {
    const keys = join(base, `${name}.keys`);
    await saveKeyPair(keys, generateKeyPair());
    extra.push('--cluster', servers.join(','), '--listen', `tcp://127.0.0.1:${await freePort()}`, '--keys', keys);
  }
  const c = spawn(process.execPath, [AMIXD, '--dir', dir, '--quiet', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, AMIXD_READY_FD: '1' },
  });
  children.push(c);
  await new Promise<void>((resolve, reject) => {
    c.stdout!.once('data', () => resolve());
    c.once('exit', (code) => reject(new Error(`amixd ${name} exited with ${code}`)));
  });
  return DaemonClient.connect({ dir });
}

const status = async (c: DaemonClient) =>
  (await c.request('status')) as {
    cluster: { id: string; replica: { points: number }; members: Array<{ id: string; state: string }> };
    peering: { peers: Array<{ id?: string; state: string }> };
  };

const wait = async (what: string, ms: number, check: () => Promise<boolean>) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`bench cluster: not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const loadAtStart = loadavg()[0]!.toFixed(2);
const servers = await startNats(nServers);
progress(`${nServers} nats-server(s) up`);
const a = await daemon('a', servers);
const b = await daemon('b', servers);
const idA = (await status(a)).cluster.id;
const idB = (await status(b)).cluster.id;
await wait('A and B peered', 20_000, async () =>
  (await status(b)).peering.peers.some((p) => p.id === idA && p.state === 'up'),
);
progress('daemons A and B peered through the members bucket');

const registration = (name: string) => ({
  registration: { name, location: POINT, characteristics: { scope: 'process' as const } },
});

// Propagation: register on A, poll B until it finds the name.
const propReps: Figures[] = [];
for (let r = 0; r < args.reps; r++) {
  const ds: number[] = [];
  const t0rep = performance.now();
  for (let i = 0; i < args.rtts; i++) {
    const name = `prop-${r}-${i}`;
    await a.request('point.register', registration(name));
    const t0 = performance.now();
    for (;;) {
      const v = await b.request<{ name: string }>('point.show', { name }).catch(() => undefined);
      if (v) break;
      await new Promise((res) => setTimeout(res, 1));
    }
    ds.push(performance.now() - t0);
  }
  ds.sort((x, y) => x - y);
  propReps.push({
    p50Ms: ds[ds.length >> 1]!,
    p99Ms: ds[Math.min(ds.length - 1, Math.ceil(ds.length * 0.99) - 1)]!,
    opsPerSec: args.rtts / ((performance.now() - t0rep) / 1000),
  });
  progress(`propagate rep ${r + 1}/${args.reps}: p50 ${propReps.at(-1)!.p50Ms!.toFixed(2)} ms`);
}

// The replica: `count` points of a member "f...", written into the bucket the way a member writes them.
const { connect } = await import('@nats-io/transport-node');
const { Kvm } = await import('@nats-io/kv');
const nc = await connect({ servers });
const regs = await new Kvm(nc).open('amix_registrations');
const member = 'f'.repeat(16);
const enc = new TextEncoder();
// It must look alive to be offered: a member entry, and a heartbeat every half second.
const members = await new Kvm(nc).open('amix_members');
await members.put(
  member,
  enc.encode(
    JSON.stringify({
      id: member,
      epoch: 'bench',
      publicKey: generateKeyPair().publicKey,
      control: 'tcp://127.0.0.1:9',
      beat: 1,
    }),
  ),
);
const beat = setInterval(() => nc.publish(`amix.hb.${member}`, enc.encode(JSON.stringify({ epoch: 'bench' }))), 500);
const point = (i: number) => ({
  name: `r${i}`,
  owner: 'bench',
  record: { role: 'receiver' },
  attributes: {
    zone: { value: `z${i % ZONES}`, visibility: 'public' },
    region: { value: `region-${i % 8}`, visibility: 'public' },
  },
  createdAt: 1,
  updatedAt: 1,
});
const tLoad = performance.now();
// 250 puts in flight at a time, each retried on a timeout (a loaded machine).
const put = async (j: number): Promise<void> => {
  for (let attempt = 0; ; attempt++) {
    try {
      await regs.put(`${member}.${j}`, enc.encode(JSON.stringify(point(j))));
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
};
for (let i = 1; i <= args.count; i += 250) {
  const puts: Promise<void>[] = [];
  for (let j = i; j < Math.min(i + 250, args.count + 1); j++) puts.push(put(j));
  await Promise.all(puts);
  if ((i - 1) % 10_000 === 0) progress(`bucket: ${i + 249} of ${args.count} points`, (i / args.count) * 0.3);
}
const bucketWriteS = (performance.now() - tLoad) / 1000;
await wait(
  `B's replica holds ${args.count} points`,
  300_000,
  async () => (await status(b)).cluster.replica.points >= args.count,
);
const replicaLoadS = (performance.now() - tLoad) / 1000;
progress(
  `B's replica holds ${args.count} points (${replicaLoadS.toFixed(1)} s from the first put, ` +
    `${(replicaLoadS - bucketWriteS).toFixed(1)} s after the last put was acknowledged)`,
);

// The same points in a single daemon's own directory (no cluster), in batches of 1000.
const single = await daemon('single');
for (let i = 1; i <= args.count; i += 1000) {
  const pts = [];
  for (let j = i; j < Math.min(i + 1000, args.count + 1); j++) {
    const p = point(j);
    pts.push({ ...registration(p.name), attributes: p.attributes });
  }
  await single.request('point.registerBatch', { points: pts } as never);
  progress(`single daemon: ${Math.min(i + 999, args.count)} of ${args.count} points`, 0.3 + (i / args.count) * 0.4);
}
// And in a bare directory, in process.
const bare = new Directory({ path: ':memory:' });
for (let i = 1; i <= args.count; i += 1000) {
  const batch = [];
  for (let j = i; j < Math.min(i + 1000, args.count + 1); j++) {
    const p = point(j);
    batch.push({ name: p.name, owner: p.owner, record: p.record, attributes: p.attributes });
  }
  bare.registerPoints(batch as never);
}

async function measure(n: number, op: (k: number) => Promise<unknown> | unknown): Promise<Figures> {
  const ds: number[] = [];
  const t0 = performance.now();
  for (let k = 0; k < n; k++) {
    const s = performance.now();
    await op(k);
    ds.push(performance.now() - s);
  }
  ds.sort((x, y) => x - y);
  return {
    opsPerSec: n / ((performance.now() - t0) / 1000),
    p50Ms: ds[ds.length >> 1]!,
    p99Ms: ds[Math.min(ds.length - 1, Math.ceil(n * 0.99) - 1)]!,
  };
}
const expr = (k: number) => `zone = "z${(k * 7919) % ZONES}"`;
// Same answers first: 10 matches each.
for (const [who, c] of [
  ['replica', b],
  ['single', single],
] as const) {
  const got = await (c as DaemonClient).request('query', { expr: expr(3) });
  if (got.points.length !== args.count / ZONES && args.count >= ZONES) {
    process.stderr.write(
      `bench cluster: the ${who} daemon found ${got.points.length} matches, not ${args.count / ZONES}\n`,
    );
    process.exit(1);
  }
}
const q = { cluster: [] as Figures[], single: [] as Figures[], bare: [] as Figures[] };
for (let r = 0; r < args.reps; r++) {
  q.bare.push(await measure(args.rtts, (k) => bare.queryLocal(expr(k + r * args.rtts), { limit: 100 })));
  q.single.push(await measure(args.rtts, (k) => single.request('query', { expr: expr(k + r * args.rtts) })));
  q.cluster.push(await measure(args.rtts, (k) => b.request('query', { expr: expr(k + r * args.rtts) })));
  progress(`query rep ${r + 1}/${args.reps}`, 0.7 + ((r + 1) / args.reps) * 0.3);
}
bare.close();
clearInterval(beat);
await nc.close();
const rows: Row[] = [
  summarise({ system: 'amix:cluster', op: 'propagate' }, propReps),
  summarise({ system: 'amix:directory', op: 'query-eq', points: args.count }, q.bare),
  summarise({ system: 'amix:daemon', op: 'query-eq', points: args.count }, q.single),
  summarise({ system: 'amix:cluster', op: 'query-eq', points: args.count }, q.cluster),
];
await Promise.all([a, b, single].map((c) => c.close().catch(() => {})));
report(args, 'cluster', rows, 'amix:daemon', {
  natsServers: nServers,
  replicas: nServers >= 3 ? 3 : 1,
  daemons: `A ${idA}, B ${idB} (loopback, CURVE peering)`,
  replicaPoints: args.count,
  replicaLoadSeconds: Math.round(replicaLoadS * 10) / 10,
  // The part of the load after the bench's last put was acknowledged: what B's watch and SQLite still had to apply.
  replicaLagSeconds: Math.round((replicaLoadS - bucketWriteS) * 10) / 10,
  loadAvg1m: `${loadAtStart} at start, ${loadavg()[0]!.toFixed(2)} at end`,
  label: `cluster points=${args.count}${args.quick ? ' (quick)' : ''} rtts=${args.rtts} servers=${nServers}`,
});
cleanup();
process.exit(0);
