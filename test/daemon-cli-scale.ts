// Issue 15, the CLI under real use: global flags before or after the verb;
// listings of 10,000 points through replies that each fit a control frame;
// output through a pipe complete however slowly it is read; amix peers; a
// registration retried after its reply was lost.
import t, { type Test } from 'tap';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DaemonClient } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { AMIX, addPrincipal, amix, daemonDir, startDaemon } from './helpers/daemon.js';

const N = 10_000;

/** `amix ARGS` exactly as given (no --dir appended), stdout and stderr gathered in full. */
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AMIX, ...args], { timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** `amix ARGS --dir DIR` run by sh with stdout to `| wc -c`; resolves with the byte count wc saw and amix's status. */
function throughWc(dir: string, args: string[]): Promise<{ bytes: number; code: number }> {
  const quoted = [process.execPath, AMIX, ...args, '--dir', dir].map((a) => `'${a.replaceAll("'", "'\\''")}'`);
  return new Promise((resolve, reject) => {
    // set -o pipefail is not POSIX: the status of amix comes back through a file descriptor instead.
    execFile(
      'sh',
      ['-c', `{ ${quoted.join(' ')}; echo "status $?" >&3; } 3>&2 | wc -c`],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) return reject(err);
        const status = /status (\d+)/.exec(stderr);
        resolve({ bytes: Number(stdout.trim()), code: status ? Number(status[1]) : -1 });
      },
    );
  });
}

/** `amix ARGS --dir DIR` with stdout read slowly: one chunk, then a pause, until it ends. Resolves with every byte. */
async function slowRead(dir: string, args: string[]): Promise<{ out: Buffer; code: number | null }> {
  const child = spawn(process.execPath, [AMIX, ...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    // A reader slower than the writer: the pipe fills and amix must wait for it.
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), 3);
  });
  const [code] = (await Promise.all([once(child, 'exit'), once(child.stdout, 'end')]))[0] as [number | null];
  return { out: Buffer.concat(chunks), code };
}

/**
 * `f` over `xs`, at most `n` at a time, results in order. Each amix run is
 * an administrator connection, and amixd gives the administrator 4 slots.
 */
async function pool<X, R>(n: number, xs: readonly X[], f: (x: X, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < xs.length) {
        const i = next++;
        out[i] = await f(xs[i]!, i);
      }
    }),
  );
  return out;
}

async function admin(t: Test, dir: string): Promise<DaemonClient> {
  const c = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => c.close());
  return c;
}

/** Register `n` points p0..p(n-1) in batches of 1000 (one durable commit each). */
async function registerMany(c: DaemonClient, n: number): Promise<void> {
  for (let s = 0; s < n; s += 1000) {
    const points = Array.from({ length: Math.min(1000, n - s) }, (_, k) => ({
      registration: {
        name: `p${s + k}`,
        location: pointFixture('sink'),
        characteristics: { scope: 'process' as const },
      },
      attributes: { n: s + k, region: 'eu-west', note: 'x'.repeat(40) },
    }));
    const r = await c.request('point.registerBatch', { points });
    if (r.length !== points.length) throw new Error(`batch at ${s} registered ${r.length}`);
  }
}

t.test('issue 15: global flags work before the verb as well as after it', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const bob = await addPrincipal(dir, 'bob');
  const reg = ['point', 'register', 'b1', pointFixture('sink'), '--scope', 'process'];
  const before = await run(['--dir', dir, '--token-file', bob, '--json', ...reg]);
  t.equal(before.code, 0, before.stderr);
  t.match(JSON.parse(before.stdout), { name: 'b1', owner: 'bob' }, '--dir, --token-file and --json before the verb');
  const after = await run([...reg.slice(0, 2), 'b2', ...reg.slice(3), '--json', '--token-file', bob, '--dir', dir]);
  t.match(JSON.parse(after.stdout), { name: 'b2', owner: 'bob' }, 'the same flags after the verb');
  const socket = join(dir, 'amixd.sock');
  // Independent read-only runs, side by side (each is a process start on a loaded machine).
  const [mixed, split, help, helpAll, unknown, noValue, noVerb, status] = await pool(
    3,
    [
      [`--dir=${dir}`, '--socket', socket, 'point', 'ls', '--json'],
      ['--json', 'point', 'ls', '--dir', dir],
      ['-h', 'point', 'ls'],
      ['--dir', dir, '-h'],
      ['--frobnicate', 'point', 'ls', '--dir', dir],
      ['--dir'],
      ['--dir', dir],
      ['--dir', dir, '--json', 'daemon', 'status'],
    ],
    run,
  );
  t.equal(mixed.code, 0, mixed.stderr);
  t.same(
    JSON.parse(mixed.stdout)
      .map((p: { name: string }) => p.name)
      .sort(),
    ['b1', 'b2'],
    '--dir=X and --socket before, --json after',
  );
  t.equal(JSON.parse(split.stdout).length, 2, '--json before and --dir after');
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: amix point ls/, '-h before the verb is the verb help');
  t.equal(helpAll.code, 0);
  t.match(helpAll.stdout, /^usage: amix \[--dir DIR\]/, '-h with no verb is the general usage');
  t.equal(unknown.code, 2, 'an unknown flag before the verb is misuse');
  t.match(unknown.stderr, /unknown option --frobnicate before the verb/);
  t.equal(noValue.code, 2, 'a global flag without its value is misuse');
  t.equal(noVerb.code, 2, 'global flags and no verb: usage, exit 2');
  t.equal(status.code, 0, status.stderr);
  const names = (JSON.parse(status.stdout).containers as Array<{ name: string }>).map((x) => x.name);
  t.ok(names.includes('amix daemon status'), 'group verbs take them too');
  t.notOk(
    names.some((x) => x.startsWith('amix -')),
    'and a client is named by its verb, not by the first flag',
  );
});

t.test('issue 15: 10,000 points listed, queried and piped complete, each reply within a frame', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const c = await admin(t, dir);
  const t0 = Date.now();
  await registerMany(c, N);
  t.comment(`registered ${N} points in ${Date.now() - t0} ms (batches of 1000)`);

  // The old whole-list reply would be ~2 MB: a clear refusal, and the connection stays up.
  await t.rejects(c.request('point.ls'), { code: 'AMIX_ERR_FRAME_TOO_LARGE' }, 'unpaged point.ls says page it');
  const page = await c.request('point.ls', { offset: 0 });
  t.ok(!Array.isArray(page), 'with offset: a page');
  const p = page as { items: unknown[]; total: number; next?: number };
  t.equal(p.total, N, 'the page tells the total');
  t.ok(p.items.length > 100 && p.items.length < N, `a page holds part of them (${p.items.length})`);
  t.ok(Buffer.byteLength(JSON.stringify(p)) < 1 << 20, 'and fits one control frame');
  t.equal(p.next, p.items.length, 'next is where the following page starts');
  const small = (await c.request('point.ls', { offset: N - 3, limit: 10 })) as typeof p;
  t.same(
    small.items.map((x) => (x as { name: string }).name),
    [`p${N - 3}`, `p${N - 2}`, `p${N - 1}`],
    'the last page',
  );
  t.equal(small.next, undefined, 'and it says it is the last');
  await t.rejects(c.request('point.ls', { offset: -1 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'a bad offset is refused');
  const listed = await c.listAll('point.ls');
  t.equal(listed.length, N, 'DaemonClient.listAll walks every page');
  t.equal(new Set(listed.map((x) => x.name)).size, N, 'each point once');
  let walked = 0;
  for await (const _ of c.list('point.ls', { pageSize: 777 })) walked++;
  t.equal(walked, N, 'a chosen page size walks them all too');

  const ls = await run(['point', 'ls', '--json', '--dir', dir]);
  t.equal(ls.code, 0, ls.stderr);
  const names = new Set((JSON.parse(ls.stdout) as Array<{ name: string }>).map((x) => x.name));
  t.equal(names.size, N, 'amix point ls --json returns all 10,000');
  t.equal(ls.stdout, `${JSON.stringify(listed)}\n`, 'exactly the points the daemon holds');

  const q = await run(['query', 'exists n', '--limit', '2000', '--json', '--dir', dir]);
  t.equal(q.code, 0, q.stderr);
  const qr = JSON.parse(q.stdout) as { points: Array<{ name: string }>; more: boolean };
  t.equal(qr.points.length, 2000, 'amix query --limit 2000 gives 2000');
  t.equal(qr.more, true, 'and says more remain');
  const qAll = await run(['query', 'exists n', '--limit', '20000', '--json', '--dir', dir]);
  const qa = JSON.parse(qAll.stdout) as { points: Array<{ name: string }>; more: boolean };
  t.equal(new Set(qa.points.map((x) => x.name)).size, N, '--limit beyond the count gives every match once');
  t.equal(qa.more, false);
  let viaClient = 0;
  for await (const _ of c.query('region = "eu*"', { offset: 5000 })) viaClient++;
  t.equal(viaClient, N - 5000, 'DaemonClient.query pages from an offset to the end');

  // Through a pipe: what wc counts is what amix meant to print (65,536 bytes of ~2 MB before).
  const lsPipe = await throughWc(dir, ['point', 'ls', '--json']);
  t.same(lsPipe, { bytes: Buffer.byteLength(ls.stdout), code: 0 }, `point ls --json | wc -c: ${lsPipe.bytes} bytes`);
  const qPipe = await throughWc(dir, ['query', 'exists n', '--limit', '20000', '--json']);
  t.same(qPipe, { bytes: Buffer.byteLength(qAll.stdout), code: 0 }, `query --json | wc -c: ${qPipe.bytes} bytes`);
  const slow = await slowRead(dir, ['point', 'ls', '--json']);
  t.equal(slow.code, 0);
  t.equal(slow.out.length, Buffer.byteLength(ls.stdout), 'a slow reader gets every byte too');
  t.equal(slow.out.toString(), ls.stdout);
  const human = await throughWc(dir, ['point', 'ls']);
  t.ok(human.bytes > N * 40, `the table through a pipe is complete too (${human.bytes} bytes)`);
  t.equal(human.code, 0);

  // Every other --json verb: as many bytes through a pipe as into a file (which takes every write at once).
  for (let i = 0; i < 3; i++) await c.connect(null, `p${i}`, { direction: 'aToB' });
  await addPrincipal(dir, 'carol');
  const verbs = [
    ['point', 'show', 'p1'],
    ['links'],
    ['instances'],
    ['peers'],
    ['daemon', 'status'],
    ['primitive', 'ls'],
    ['principal', 'ls'],
    ['top', '--once'],
  ];
  const sh = (script: string, args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile('sh', ['-c', script, 'sh', ...args], { timeout: 60_000 }, (e) => (e ? reject(e) : resolve())),
    );
  // One verb at a time, its two runs side by side: with the test's own client, within the administrator's 4 slots.
  const results = await pool(1, verbs, async (v, i) => {
    const [file, piped] = [join(dir, '..', `out${i}.json`), join(dir, '..', `piped${i}.json`)];
    const cmd = `'${process.execPath}' '${AMIX}' "$@" --json --dir '${dir}'`;
    await Promise.all([sh(`${cmd} > '${file}'`, v), sh(`${cmd} | cat > '${piped}'`, v)]);
    return { v, ref: await readFile(file, 'utf8'), piped: await readFile(piped, 'utf8') };
  });
  for (const { v, ref, piped } of results) {
    const what = `${v.join(' ')} --json`;
    t.doesNotThrow(() => JSON.parse(ref), `${what} into a file is one JSON document`);
    t.doesNotThrow(() => JSON.parse(piped), `${what} through a pipe is one whole JSON document`);
    // top and daemon status show rates, uptime and the clients plugged in at the time: only their shape repeats.
    if (v[0] !== 'top' && v[0] !== 'daemon') t.equal(piped, ref, `${what}: the same ${Buffer.byteLength(ref)} bytes`);
  }
});

t.test('issue 15: pages are cut by bytes, so heavy points still fit a frame each', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const c = await admin(t, dir);
  // 240 points of ~10 KB each: 2.4 MB of query results, 100 a page would be 1 MB, over a frame.
  const big = 'y'.repeat(10_000);
  // Thirty a batch: a request must fit a frame too (30 x 20 KB).
  for (let s = 0; s < 240; s += 30)
    await c.request('point.registerBatch', {
      points: Array.from({ length: 30 }, (_, k) => ({
        registration: { name: `h${s + k}`, location: pointFixture('sink'), data: { big } },
        attributes: { big },
      })),
    });
  const first = await c.request('query', { expr: 'exists big', limit: 100 });
  t.ok(first.points.length < 100 && first.points.length > 0, `a page of ${first.points.length}, not the 100 asked`);
  t.equal(first.more, true, 'more follow');
  t.equal(first.next, first.points.length, 'from next');
  t.ok(Buffer.byteLength(JSON.stringify(first)) < 1 << 20, 'the page fits one frame');
  const q = await run(['query', 'exists big', '--limit', '1000', '--json', '--dir', dir]);
  t.equal(q.code, 0, q.stderr);
  t.equal(
    new Set(JSON.parse(q.stdout).points.map((p: { name: string }) => p.name)).size,
    240,
    'amix query gets them all',
  );
  const page = (await c.request('point.ls', { limit: 1000 })) as { items: unknown[]; total: number };
  t.equal(page.total, 240);
  t.equal((await c.listAll('point.ls')).length, 240, 'point.ls walks them too');
});

t.test('issue 15: amix peers on a daemon without peering', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const human = await amix(dir, ['peers']);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /peering is off/, 'says so');
  const js = await amix(dir, ['peers', '--json']);
  t.same(JSON.parse(js.stdout), { peers: [] }, '--json: the raw peers reply');
  const help = await amix(dir, ['peers', '-h']);
  t.match(help.stdout, /^usage: amix peers/);
});

t.test('issue 15: a registration retried after its reply was lost is answered, not refused', async (t) => {
  const dir = await daemonDir(t);
  const first = await startDaemon(t, dir);
  const reg = ['point', 'register', 'svc', pointFixture('sink'), '--scope', 'process', '--attr', 'region=eu', '--json'];
  const r1 = await amix(dir, reg);
  t.equal(r1.code, 0, r1.stderr);
  const { id } = JSON.parse(r1.stdout);
  // The daemon dies right after the commit: the client never heard. It comes back with the directory.
  first.kill('SIGKILL');
  await once(first, 'exit');
  await startDaemon(t, dir);
  const r2 = await amix(dir, reg);
  t.equal(r2.code, 0, `the same principal, the same record: ${r2.stderr}`);
  t.equal(JSON.parse(r2.stdout).id, id, 'the existing point is the answer');
  const r3 = await amix(dir, reg);
  t.equal(JSON.parse(r3.stdout).id, id, 'and again');
  const other = await amix(dir, [...reg.slice(0, 6), '--attr', 'region=us', '--json']);
  t.equal(other.code, 1, 'a different attribute is another registration');
  t.equal(JSON.parse(other.stdout).error.code, 'AMIX_ERR_DUPLICATE');
  const thread = await amix(dir, [...reg.slice(0, 4), '--scope', 'thread', '--attr', 'region=eu', '--json']);
  t.equal(JSON.parse(thread.stdout).error.code, 'AMIX_ERR_DUPLICATE', 'a different record too');
  const bob = await addPrincipal(dir, 'bob');
  const byBob = await run([...reg, '--dir', dir, '--token-file', bob]);
  t.equal(JSON.parse(byBob.stdout).error.code, 'AMIX_ERR_DUPLICATE', 'another principal with the same record too');
  const ls = JSON.parse((await amix(dir, ['point', 'ls', '--json'])).stdout);
  t.equal(ls.length, 1, 'one point all along');

  // An ephemeral point carries its container: a retry on the same connection matches, another container does not.
  const c1 = await admin(t, dir);
  const eph = {
    registration: { name: 'eph', location: pointFixture('sink'), characteristics: { scope: 'process' as const } },
    ephemeral: true,
  };
  const e1 = await c1.request('point.register', eph);
  t.equal((await c1.request('point.register', eph)).id, e1.id, 'an ephemeral retry from its container');
  const c2 = await admin(t, dir);
  await t.rejects(c2.request('point.register', eph), { code: 'AMIX_ERR_DUPLICATE' }, 'from another container: taken');
  // Batches are idempotent the same way, and all or none.
  const batch = [
    { registration: { name: 'k1', location: pointFixture('sink') } },
    { registration: { name: 'k2', location: pointFixture('sink') } },
  ];
  const b1 = await c1.request('point.registerBatch', { points: batch });
  const b2 = await c1.request('point.registerBatch', { points: batch });
  t.same(
    b2.map((x) => x.id),
    b1.map((x) => x.id),
    'a repeated batch answers the same points',
  );
  await t.rejects(
    c1.request('point.registerBatch', {
      points: [
        { registration: { name: 'k3', location: pointFixture('sink') } },
        { registration: { name: 'svc', location: 'elsewhere.js' } },
      ],
    }),
    { code: 'AMIX_ERR_DUPLICATE' },
  );
  await t.rejects(
    c1.request('point.show', { name: 'k3' }),
    { code: 'AMIX_ERR_UNKNOWN_POINT' },
    'none of a refused batch is kept',
  );
  t.equal((await amix(dir, ['point', 'register', 'k3', pointFixture('sink')])).code, 0, 'k3 is free afterwards');
});
