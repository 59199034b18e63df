// amixd --metrics: a real daemon's /metrics in the Prometheus text format, its counters after a known
// amount of traffic, its refusals (non-loopback without the flag, other paths and methods, too many
// connections), and its port closed when the daemon stops.
import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DaemonClient } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { AMIXD, amix, daemonDir, startDaemon } from './helpers/daemon.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** One sample of the text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text exposition format (0.0.4): `# TYPE` lines and samples; anything else fails the parse. */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

/** The one sample named `name` whose labels include `match`. */
function one(samples: Sample[], name: string, match: Record<string, string>): Sample | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  return found.length === 1 ? found[0] : undefined;
}

/** Run amixd with `args`; resolves with its exit code and stderr (never rejects). */
function amixdRun(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AMIXD, ...args], { timeout: 20_000 }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

t.test('a scrape shows the traffic of a known run, labelled by point, link and primitive', async (t) => {
  const dir = await daemonDir(t);
  const daemon = await startDaemon(t, dir, ['--metrics', '127.0.0.1:0']);
  const client = await DaemonClient.connect({ dir });
  t.teardown(() => client.close().catch(() => {}));
  const status = await client.request('status');
  t.match(
    status.metrics,
    /^http:\/\/127\.0\.0\.1:\d+\/metrics$/,
    `status names the bound endpoint (${status.metrics})`,
  );
  const url = status.metrics!;
  t.not(new URL(url).port, '0', 'port 0 was replaced by the one the kernel picked');
  const shown = await amix(dir, ['daemon', 'status']);
  t.match(shown.stdout, `metrics: ${url}`, 'amix daemon status prints it');

  await client.request('point.register', {
    registration: { name: 'echo', location: pointFixture('echo'), characteristics: { scope: 'process' } },
  });
  const link = await client.connect(null, 'echo');
  const N = 500;
  const SIZE = 100;
  for (let i = 0; i < N; i++) {
    await link.send(Buffer.alloc(SIZE, i & 0xff));
    await link.receive({ signal: AbortSignal.timeout(15_000) }); // every echo back: the point's counts are final
  }

  const res = await fetch(url);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/, 'the Prometheus text format');
  const { types, samples } = parse(await res.text());
  const at = { point: 'echo', instance: 'echo', link: link.id, primitive: 'queueConditionProcess' };
  const want: Array<[string, Record<string, string>, number]> = [
    ['amix_link_messages_total', { ...at, direction: 'in' }, N],
    ['amix_link_messages_total', { ...at, direction: 'out' }, N],
    ['amix_link_bytes_total', { ...at, direction: 'in' }, N * SIZE],
    ['amix_link_bytes_total', { ...at, direction: 'out' }, N * SIZE],
    ['amix_link_drops_total', { ...at, direction: 'out', reason: 'dropped' }, 0],
    ['amix_link_drops_total', { ...at, direction: 'out', reason: 'rejected' }, 0],
    ['amix_link_suspended', { ...at, direction: 'out' }, 0],
    ['amix_point_messages_total', { point: 'echo', direction: 'in' }, N],
    ['amix_point_messages_total', { point: 'echo', direction: 'out' }, N],
    ['amix_point_restarts_total', { point: 'echo', instance: 'echo' }, 0],
    ['amix_points_registered', {}, 1],
    ['amix_links', {}, 1],
    ['amix_instances', { state: 'running' }, 1],
    ['amix_clients_connected', { kind: 'user' }, 1],
    ['amix_control_refused_total', { socket: 'private', reason: 'refusedOverCap' }, 0],
    ['amix_stats_errors', {}, 0],
  ];
  for (const [name, labels, value] of want)
    t.equal(one(samples, name, labels)?.value, value, `${name}${JSON.stringify(labels)} = ${value}`);
  t.ok(one(samples, 'amix_link_pending', { ...at, direction: 'out' }), 'pending per link end');
  t.ok(one(samples, 'amix_link_suspended_seconds_total', { link: link.id }), 'suspended seconds per link');
  t.equal(types.get('amix_link_messages_total'), 'counter');
  t.equal(types.get('amix_link_pending'), 'gauge');
  t.ok(
    samples.some((s) => s.name === 'amix_process_resident_memory_bytes' && s.value > 0),
    'RSS (prom-client default metrics, amix_ prefix)',
  );
  t.ok(
    [...types.keys()].every((n) => n.startsWith('amix_')),
    'every metric is amix_-prefixed',
  );

  // Only GET /metrics.
  t.equal((await fetch(new URL('/other', url))).status, 404, 'another path: 404');
  const post = await fetch(url, { method: 'POST', body: 'x' });
  t.equal(post.status, 405, 'POST: 405');
  t.equal(post.headers.get('allow'), 'GET');

  // A scraper that opens connections and says nothing cannot hold more than 8: of 12 (plus any of
  // fetch's still closing), at least 4 are closed by the server, and one more asking then is closed unanswered.
  const idle: Socket[] = [];
  t.teardown(() => idle.forEach((s) => s.destroy()));
  const { port } = new URL(url);
  let closed = 0;
  let fourClosed: () => void = () => {};
  const four = new Promise<void>((r) => (fourClosed = r));
  const open = (): Socket => {
    const s = connect(Number(port), '127.0.0.1');
    idle.push(s);
    s.on('error', () => {}); // a reset is one way the server says no
    s.on('close', () => ++closed >= 4 && fourClosed());
    return s;
  };
  for (let i = 0; i < 12; i++) await once(open(), 'connect');
  await four;
  t.ok(closed >= 4, `the server closed ${closed} of 12 idle connections`);
  // The kernel queues connections in order: the server accepts this one after the 8 it holds.
  const late = open();
  late.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
  let answered = '';
  late.on('data', (d) => (answered += d));
  await new Promise((r) => late.once('close', r)); // not once(): a reset emits 'error' first
  t.equal(answered, '', 'one more connection is closed unanswered');
  for (const s of idle) s.destroy();
  // Once they are gone the endpoint answers again (retry: the server sees the closes a moment later).
  let again = 0;
  for (let i = 0; i < 50 && again !== 200; i++)
    again = await fetch(url)
      .then((r) => r.status)
      .catch(() => 0);
  t.equal(again, 200, 'scrapes work again after the idle connections left');

  // Stopping the daemon closes the port.
  await client.close();
  const exited = once(daemon, 'exit');
  t.equal((await amix(dir, ['daemon', 'stop'])).code, 0);
  await exited;
  await t.rejects(fetch(url), {}, 'nothing listens on the metrics port after stop');
  const refused = await new Promise<string>((resolve) => {
    const s = connect(Number(port), '127.0.0.1');
    s.once('connect', () => resolve('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'the port is closed');
});

t.test('a non-loopback or malformed --metrics is refused with AMIX_ERR_INVALID_ARG', async (t) => {
  const dir = await daemonDir(t);
  for (const spec of ['0.0.0.0:0', '192.0.2.1:9464', '[::]:0', 'example.com:9464']) {
    const r = await amixdRun(['--dir', dir, '--quiet', '--metrics', spec]);
    t.equal(r.code, 2, `${spec}: exit 2`);
    t.match(r.stderr, /AMIX_ERR_INVALID_ARG/, `${spec}: the code is printed`);
    t.match(r.stderr, /--metrics-allow-remote/, `${spec}: the way out is named`);
  }
  for (const spec of ['127.0.0.1', '127.0.0.1:99999', ':9464', 'nope']) {
    const r = await amixdRun(['--dir', dir, '--quiet', '--metrics', spec]);
    t.equal(r.code, 2, `${spec}: exit 2`);
    t.match(r.stderr, /AMIX_ERR_INVALID_ARG/, `${spec}: malformed`);
  }
  const lone = await amixdRun(['--dir', dir, '--quiet', '--metrics-allow-remote']);
  t.equal(lone.code, 2, '--metrics-allow-remote alone is a misuse');
  const { parseMetricsAddress } = await import('../dist/lib/internal.js');
  t.same(parseMetricsAddress('0.0.0.0:9464', true), { host: '0.0.0.0', port: 9464, allowRemote: true }, 'allowed');
  t.same(parseMetricsAddress('[::1]:0'), { host: '::1', port: 0 }, 'IPv6 loopback');
});

t.test('prom-client is loaded only when a metrics endpoint starts', async (t) => {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createRequire } from 'node:module';
       const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('prom-client'));
       await import('amix');
       const m = await import('amix/internal');
       const before = loaded();
       const e = new m.MetricsEndpoint({ host: '127.0.0.1', port: 0 }, {
         stats: async () => ({ at: 0, instances: {}, links: [] }), instances: () => [],
         status: () => ({ points: 0, links: 0, instances: 0, containers: [], uptimeMs: 0 }) });
       await e.start();
       const text = await (await fetch(e.url)).text();
       await e.close();
       console.log(JSON.stringify({ before, after: loaded(), ok: text.includes('amix_points_registered 0') }));`,
    ],
    { cwd: root, encoding: 'utf8' },
  );
  t.same(
    JSON.parse(out),
    { before: false, after: true, ok: true },
    'not by import, yes once started (the probe sees it)',
  );
});

t.test('metrics in amixd --config', async (t) => {
  const dir = await daemonDir(t);
  const { writeFile, mkdir } = await import('node:fs/promises');
  const { dirname, join } = await import('node:path');
  await mkdir(dirname(dir), { recursive: true });
  const file = join(dirname(dir), 'amixd.json');
  await writeFile(file, JSON.stringify({ metrics: '0.0.0.0:0' }));
  const r = await amixdRun(['--dir', dir, '--quiet', '--config', file]);
  t.equal(r.code, 2, 'a non-loopback metrics address in the config file is refused too');
  t.match(r.stderr, /AMIX_ERR_INVALID_ARG/);
  await writeFile(file, JSON.stringify({ metrics: '127.0.0.1:0' }));
  await startDaemon(t, dir, ['--config', file]);
  const client = await DaemonClient.connect({ dir });
  t.teardown(() => client.close().catch(() => {}));
  const { metrics } = await client.request('status');
  t.match(metrics, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  t.equal((await fetch(metrics!)).status, 200, 'served');
});

t.test('peers, both guards and a silent instance, from a status as the daemon builds it', async (t) => {
  const { MetricsEndpoint } = await import('../dist/lib/internal.js');
  const guard = {
    unauthenticated: 2,
    refusedOverCap: 3,
    helloTimeouts: 4,
    oversizedBeforeHello: 0,
    protocolErrors: 5,
    slowConsumers: 1,
    logSuppressed: 7,
  };
  const conduit = {
    sent: 10,
    received: 9,
    rejected: 1,
    gaps: 2,
    resent: 3,
    duplicates: 4,
    redelivered: 5,
    spoofed: 6,
  };
  const status = {
    points: 2,
    links: 0,
    instances: 1,
    uptimeMs: 1500,
    containers: [{ admin: true }, { admin: false }, { admin: false }],
    guard,
    sharedGuard: { ...guard, refusedOverCap: 30 },
    peering: {
      badEnvelopes: 1,
      badFrames: 2,
      unknownSender: 3,
      spoofedSenders: 4,
      unhelloed: 5,
      refusedHellos: 6,
      refusedHandshakes: 7,
      peers: [
        { id: 'dB', endpoint: 'tcp://127.0.0.1:1', state: 'up', stats: conduit, links: [] },
        {
          id: undefined,
          endpoint: 'tcp://127.0.0.1:2',
          state: 'connecting',
          stats: { ...conduit, sent: 0 },
          links: [],
        },
      ],
    },
  };
  const logged: string[] = [];
  const e = new MetricsEndpoint(
    { host: '127.0.0.1', port: 0 },
    {
      stats: async () => ({ at: 0, instances: { quiet: { error: 'timed out' } }, links: [] }),
      instances: () => [{ point: 'q', instance: 'quiet', state: 'running', restarts: 2 }] as never,
      status: () => status as never,
    },
    (l) => logged.push(l),
  );
  await e.start();
  t.teardown(() => e.close());
  const { samples } = parse(await (await fetch(e.url!)).text());
  const want: Array<[string, Record<string, string>, number]> = [
    ['amix_peer_sent_total', { peer: 'dB' }, 10],
    ['amix_peer_sent_total', { peer: 'tcp://127.0.0.1:2' }, 0],
    ['amix_peer_received_total', { peer: 'dB' }, 9],
    ['amix_peer_rejected_total', { peer: 'dB' }, 1],
    ['amix_peer_duplicates_total', { peer: 'dB' }, 4],
    ['amix_peer_gaps_total', { peer: 'dB' }, 2],
    ['amix_peer_redelivered_total', { peer: 'dB' }, 5],
    ['amix_peer_spoofed_total', { peer: 'dB' }, 6],
    ['amix_peer_resent_total', { peer: 'dB' }, 3],
    ['amix_peer_up', { peer: 'dB', state: 'up' }, 1],
    ['amix_peer_up', { peer: 'tcp://127.0.0.1:2', state: 'connecting' }, 1],
    ['amix_peering_drops_total', { reason: 'spoofedSenders' }, 4],
    ['amix_peering_drops_total', { reason: 'refusedHandshakes' }, 7],
    ['amix_control_refused_total', { socket: 'private', reason: 'refusedOverCap' }, 3],
    ['amix_control_refused_total', { socket: 'shared', reason: 'refusedOverCap' }, 30],
    ['amix_control_refused_total', { socket: 'private', reason: 'slowConsumers' }, 1],
    ['amix_control_unauthenticated', { socket: 'shared' }, 2],
    ['amix_control_log_suppressed_total', { socket: 'private' }, 7],
    ['amix_clients_connected', { kind: 'admin' }, 1],
    ['amix_clients_connected', { kind: 'user' }, 2],
    ['amix_stats_errors', {}, 1],
    ['amix_point_restarts_total', { point: 'q', instance: 'quiet' }, 2],
    ['amix_uptime_seconds', {}, 1.5],
  ];
  for (const [name, labels, value] of want)
    t.equal(one(samples, name, labels)?.value, value, `${name}${JSON.stringify(labels)} = ${value}`);
  t.notOk(
    samples.some((s) => s.name === 'amix_point_messages_total'),
    'a silent instance has no message counts (not zeros)',
  );

  // A scraper that sends half a request and stops is cut off by the request timeout, not left holding its place.
  const { port } = new URL(e.url!);
  const slow = connect(Number(port), '127.0.0.1');
  slow.on('error', () => {});
  await once(slow, 'connect');
  slow.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'); // no blank line: the headers never end
  const started = Date.now();
  await new Promise((r) => slow.once('close', r));
  const waited = Date.now() - started;
  t.ok(waited < 9_000, `the trickling connection was closed after ${waited} ms (request timeout 5 s)`);
  t.equal(await fetch(e.url!).then((r) => r.status), 200, 'and the endpoint still answers');
});
