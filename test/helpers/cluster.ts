// The cluster scenario (issue 22's acceptance), on loopback or across network
// namespaces: three amixd with --cluster over a 3-server NATS cluster.
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient, ErrorCode, generateKeyPair, saveKeyPair, type ClientLink } from '../../dist/lib/internal.js';
import { AMIXD, daemonDir, freePort, subscribed, until, type DaemonEv } from './daemon.js';
import { pointFixture } from './fabric.js';
import type { NatsServer } from './nats.js';
import type { Hosts } from './netns.js';

/** One clustered daemon as a test drives it. */
export interface CD {
  dir: string;
  child: ChildProcess;
  client: DaemonClient;
  events: DaemonEv[];
  event(match: (e: DaemonEv) => boolean): Promise<DaemonEv>;
  id: string;
}

interface ClusterStatus {
  id: string;
  connected: boolean;
  members: Array<{ id: string; state: string }>;
  replica: { points: number };
  published: number;
  pending: number;
}

/** The cluster part of `d`'s status. */
export async function clusterStatus(d: { client: DaemonClient }): Promise<ClusterStatus> {
  return ((await d.client.request('status')) as { cluster: ClusterStatus }).cluster;
}

/** The one convergence wait of the tests (`helpers/daemon.ts`), here too for the cluster tests. */
export { until };

/** Start one clustered amixd (in namespace `i` of `hosts` when given), keyed, listening on `address`. */
export async function startClustered(
  t: Test,
  servers: NatsServer[],
  address: string,
  hosts?: { hosts: Hosts; i: number },
  extra: string[] = [],
): Promise<CD> {
  const dir = await daemonDir(t);
  const keysDir = await mkdtemp(join(tmpdir(), 'amix-ck-'));
  t.teardown(() => rm(keysDir, { recursive: true, force: true }));
  const keys = join(keysDir, 'keys');
  await saveKeyPair(keys, generateKeyPair());
  const port = hosts ? 7000 : await freePort();
  const args = [
    AMIXD,
    '--dir',
    dir,
    ...(process.env.AMIX_TEST_LOG ? [] : ['--quiet']),
    '--cluster',
    servers.map((s) => s.url).join(','),
    '--listen',
    `tcp://${address}:${port}`,
    ...(extra.includes('--insecure') ? [] : ['--keys', keys]),
    ...extra,
  ];
  const opts = { stdio: ['ignore', 'pipe', 'inherit'] as const, env: { ...process.env, AMIXD_READY_FD: '1' } };
  const child = hosts ? hosts.hosts.spawn(hosts.i, process.execPath, args, opts) : spawn(process.execPath, args, opts);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`amixd exited early with ${code}`)));
  });
  const s = await subscribed(t, dir);
  const id = (await clusterStatus(s)).id;
  return { dir, child, ...s, id };
}

/** Resolves once every daemon sees the others as members up and peered. */
export async function converged(ds: CD[], ms = 20_000): Promise<void> {
  for (const d of ds)
    await until(`${d.id} sees ${ds.length - 1} members up and peered`, ms, async () => {
      const st = (await d.client.request('status')) as {
        cluster: ClusterStatus;
        peering: { peers: Array<{ id?: string; state: string }> };
      };
      const others = ds.filter((o) => o !== d).map((o) => o.id);
      return others.every(
        (id) =>
          st.cluster.members.some((m) => m.id === id && m.state === 'up') &&
          st.peering.peers.some((p) => p.id === id && p.state === 'up'),
      );
    });
}

/** Register a relay point `name` on `d` (public attribute `region`, private `secret`); resolves its id. */
export async function register(d: CD, name: string): Promise<string> {
  const r = await d.client.request<{ id: string }>('point.register', {
    registration: { name, location: pointFixture('relay'), characteristics: { scope: 'process' } },
    attributes: { region: { value: 'eu', visibility: 'public' }, secret: { value: 's3', visibility: 'private' } },
  });
  return r.id;
}

/** The code of the error `p` rejects with ('' when it resolves). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** A sample's percentile (nearest rank). */
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * Register `n` points on `a` one after another; after each acknowledgement, time until both `b`
 * and `c` find it by name (point.show) and by query. Resolves the delays in ms.
 */
export async function propagation(a: CD, b: CD, c: CD, n: number, prefix: string): Promise<number[]> {
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}${i}`;
    await register(a, name);
    const t0 = performance.now();
    await Promise.all(
      [b, c].map((d) =>
        until(
          `${name} on ${d.id}`,
          10_000,
          async () => {
            const q = await d.client.request<{ points: Array<{ name: string }> }>('query', {
              expr: `name = "${name}"`,
            });
            if (q.points.length !== 1) return false;
            const v = await d.client.request<{ name: string }>('point.show', { name }).catch(() => undefined);
            return v?.name === name;
          },
          1,
        ),
      ),
    );
    delays.push(performance.now() - t0);
  }
  return delays;
}

/** Messages flow A -> B over the direct peering: `src` on A, `dst` on B, the link made at B. */
export async function flows(t: Test, a: CD, b: CD): Promise<void> {
  await register(a, 'src');
  await register(b, 'dst');
  const out: ClientLink = await b.client.connect('dst', null, { direction: 'aToB' });
  const into: ClientLink = await a.client.connect(null, 'src', { direction: 'aToB' });
  const remote = await b.client.request<{ remote: { peer: string } }>('connect', {
    a: 'src',
    b: 'dst',
    direction: 'aToB',
  });
  t.equal(remote.remote.peer, a.id, "the remote link goes straight to A's daemon");
  for (let i = 0; i < 50; i++) await into.send(new Uint8Array([i]));
  for (let i = 0; i < 50; i++) {
    const m = await out.receive();
    if (m.data[0] !== i) {
      t.fail(`message ${i} arrived as ${m.data[0]}`);
      return;
    }
  }
  t.pass('50 messages from A reached B in order');
}

export { ErrorCode };
