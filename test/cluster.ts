// Cluster mode on loopback (no namespaces, no root needed): three amixd with
// --cluster over a real 3-server NATS JetStream cluster. Discovery and keyed
// peering from the members bucket, names unique cluster-wide, the local
// replica (private attributes stay home), liveness (a killed daemon is gone
// within 5 s, its links told peerLost), a killed NATS server under
// registration traffic losing no acknowledged registration; and a daemon
// without --cluster never loading the NATS client.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient, generateKeyPair, saveKeyPair } from '../dist/lib/internal.js';
import { natsSkip, startNats, startNatsCluster } from './helpers/nats.js';
import { AMIXD, daemonDir, freePort } from './helpers/daemon.js';
import { pointFixture } from './helpers/fabric.js';
import {
  ErrorCode,
  clusterStatus,
  codeOf,
  converged,
  flows,
  pct,
  propagation,
  register,
  startClustered,
  until,
} from './helpers/cluster.js';

const skip = await natsSkip();
t.test('a daemon without --cluster never loads the NATS client; one with it does', async (t) => {
  // A module resolve hook in each daemon writes down every @nats-io module it loads.
  const trace = await mkdtemp(join(tmpdir(), 'amix-trace-'));
  t.teardown(() => rm(trace, { recursive: true, force: true }));
  await writeFile(
    join(trace, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function resolve(spec, ctx, next) {
  const r = await next(spec, ctx);
  if (r.url.includes('/@nats-io/')) appendFileSync(out, r.url + '\\n');
  return r;
}
`,
  );
  await writeFile(
    join(trace, 'register.mjs'),
    `import { register } from 'node:module';
register(new URL('./hooks.mjs', import.meta.url), { data: { out: process.env.AMIX_TRACE_FILE } });
`,
  );
  const traced = async (name: string, args: string[]): Promise<string> => {
    const out = join(trace, `${name}.log`);
    await writeFile(out, '');
    const dir = await daemonDir(t);
    const child = spawn(
      process.execPath,
      ['--import', join(trace, 'register.mjs'), AMIXD, '--dir', dir, '--quiet', ...args],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, AMIXD_READY_FD: '1', AMIX_TRACE_FILE: out },
      },
    );
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`amixd exited early with ${code}`)));
    });
    const c = await DaemonClient.connect({ dir });
    t.teardown(() => c.close().catch(() => {}));
    await c.request('point.register', {
      registration: { name: 'x', location: pointFixture('relay'), characteristics: { scope: 'process' } },
    });
    await c.request('query', { expr: 'name = "x"' });
    const st = (await c.request('status')) as Record<string, unknown>;
    t.equal(st.cluster === undefined, args.length === 0, `${name}: a cluster status only with --cluster`);
    return readFile(out, 'utf8');
  };
  t.equal(await traced('plain', []), '', 'a daemon without --cluster loaded no @nats-io module');
  if (skip) {
    t.comment(`skip: the positive control needs nats-server: ${skip}`);
    return;
  }
  const nats = await startNats(t);
  const keysDir = await mkdtemp(join(tmpdir(), 'amix-tk-'));
  t.teardown(() => rm(keysDir, { recursive: true, force: true }));
  await saveKeyPair(join(keysDir, 'k'), generateKeyPair());
  const port = await freePort();
  const loaded = await traced('clustered', [
    '--cluster',
    nats.url,
    '--listen',
    `tcp://127.0.0.1:${port}`,
    '--keys',
    join(keysDir, 'k'),
  ]);
  t.match(loaded, /@nats-io\/transport-node/, 'the trace works: a daemon with --cluster loads the client');
});

t.test('amixd refuses a bad --cluster with a reason', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn(process.execPath, [AMIXD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      c.once('exit', (code) => resolve({ code, err }));
    });
  const dir = await daemonDir(t);
  const bad = await run(['--dir', dir, '--cluster', 'http://x:1', '--listen', 'tcp://127.0.0.1:1', '--insecure']);
  t.equal(bad.code, 2, 'a malformed server URL: usage error');
  t.match(bad.err, /nats:\/\/HOST:PORT/);
  const nolisten = await run(['--dir', dir, '--cluster', 'nats://127.0.0.1:1']);
  t.equal(nolisten.code, 2, 'no --listen: usage error');
  t.match(nolisten.err, /--cluster needs --listen/);
  const port = await freePort();
  const unreachable = await run([
    '--dir',
    dir,
    '--quiet',
    '--cluster',
    `nats://127.0.0.1:${port}`,
    '--listen',
    `tcp://127.0.0.1:${await freePort()}`,
    '--insecure',
  ]);
  t.equal(unreachable.code, 1, 'no NATS server answers: the start fails');
  t.match(unreachable.err, /cannot reach the cluster.*AMIX_ERR_PEER_LOST/);
});

if (skip) {
  t.comment(`skip: ${skip}`);
  t.skip(`cluster tests: ${skip}`);
} else {
  t.test('three daemons, three NATS servers, loopback', async (t) => {
    const nats = await startNatsCluster(t, 3);
    const [a, b, c] = [
      await startClustered(t, nats, '127.0.0.1'),
      await startClustered(t, nats, '127.0.0.1'),
      await startClustered(t, nats, '127.0.0.1'),
    ];
    await converged([a!, b!, c!]);
    t.pass('each daemon found the other two in the members bucket and peered with them (keys from the bucket)');

    const id = await register(a!, 'svc');
    const shown = await until('svc on B', 5000, () =>
      b!.client.request<Record<string, unknown>>('point.show', { name: 'svc' }).catch(() => undefined),
    );
    t.equal(shown.id, id, 'B finds the point by name, with its identifier on A');
    t.equal(shown.daemon, a!.id, 'and says which daemon holds it');
    t.same((shown.attributes as Record<string, unknown>).secret, undefined, 'the private attribute never left A');
    t.match(shown.attributes, { region: { value: 'eu' } }, 'the public one did');
    const q = await c!.client.request<{ points: Array<{ id: string }> }>('query', {
      expr: 'region = "eu" and name = "svc"',
    });
    t.same(
      q.points.map((p) => p.id),
      [id],
      'C finds it by query, from its replica',
    );
    t.equal(await codeOf(c!.client.request('point.show', { name: id })), '', 'and by identifier');

    t.equal(
      await codeOf(register(c!, 'svc')),
      ErrorCode.AMIX_ERR_DUPLICATE,
      'the same name on C is refused: names are unique cluster-wide',
    );
    t.equal(await codeOf(register(a!, 'svc')), '', 'on A itself it is the idempotent retry');

    const delays = await propagation(a!, b!, c!, 100, 'p');
    t.ok(
      pct(delays, 99) < 1000,
      `100 registrations on A found on B and C: p50 ${pct(delays, 50).toFixed(1)} ms, p99 ${pct(delays, 99).toFixed(1)} ms`,
    );

    await flows(t, a!, b!);

    // Deleting frees the name cluster-wide.
    await a!.client.request('point.rm', { name: 'p0' });
    await until(
      'p0 gone from C',
      5000,
      async () => (await codeOf(c!.client.request('point.show', { name: 'p0' }))) === ErrorCode.AMIX_ERR_UNKNOWN_POINT,
    );
    t.equal(await codeOf(register(c!, 'p0')), '', 'a deleted name can be taken by another daemon');

    // A NATS server dies under registration traffic: every acknowledged registration is found.
    const acked: string[] = [];
    const traffic = (async () => {
      for (let i = 0; i < 150; i++) {
        const name = `k${i}`;
        if ((await codeOf(register(b!, name))) === '') acked.push(name);
      }
    })();
    await until('some registrations', 10_000, async () => acked.length >= 30);
    await nats[0]!.kill();
    await traffic;
    t.ok(acked.length >= 100, `${acked.length} of 150 registrations acknowledged across the failover`);
    await until('every acknowledged registration on C', 20_000, async () => {
      const r = await c!.client.request<{ points: unknown[]; more: boolean }>('query', {
        expr: 'name = "k*"',
        limit: 1000,
      });
      return r.points.length >= acked.length;
    });
    t.pass('none of them lost: C holds every one');

    // A dies: within 5 s B and C say its points are unreachable, and B's link gets peerLost.
    const lost = b!.event((e) => e.type === 'remote.peerLost' && e.body.peer === a!.id);
    if (process.env.AMIX_TEST_LOG) t.comment(JSON.stringify(await clusterStatus(b!)));
    const killedAt = Date.now();
    a!.child.kill('SIGKILL');
    for (const d of [b!, c!])
      await until(`A gone on ${d.id} and its point unreachable`, process.env.AMIX_TEST_LOG ? 30000 : 5000, async () => {
        const st = await clusterStatus(d);
        return (
          st.members.find((m) => m.id === a!.id)?.state === 'gone' &&
          (await codeOf(d.client.request('point.show', { name: 'svc' }))) === ErrorCode.AMIX_ERR_PEER_LOST
        );
      });
    if (process.env.AMIX_TEST_LOG) t.comment(JSON.stringify(await clusterStatus(b!)));
    const gone = Date.now() - killedAt;
    t.ok(gone <= 5000, `B and C list A as gone, its points unreachable, ${gone} ms after the kill`);
    const e = await lost;
    t.ok((e.body.links as string[]).length >= 1, "B's link to A's point is in the peerLost event");
    const q2 = await b!.client.request<{ points: Array<{ id: string }> }>('query', { expr: 'name = "svc"' });
    t.notOk(
      q2.points.some((p) => p.id === id),
      "a gone daemon's points are not offered by query",
    );
  });

  t.test('insecure peering in a cluster: endpoints from the bucket, no keys', async (t) => {
    const nats = await startNatsCluster(t, 1);
    const a = await startClustered(t, nats, '127.0.0.1', undefined, ['--insecure']);
    const b = await startClustered(t, nats, '127.0.0.1', undefined, ['--insecure']);
    await converged([a, b]);
    t.pass('two insecure daemons found and peered with each other');
    const id = await register(a, 'open');
    const v = await until('open on B', 5000, () =>
      b.client.request<{ id: string }>('point.show', { name: 'open' }).catch(() => undefined),
    );
    t.equal(v.id, id, 'and B resolves the point on A');
    await flows(t, a, b);
  });
}
