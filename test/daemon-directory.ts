// The daemon keeps its registrations in the directory: identifiers, queries,
// private attributes, and durability across restarts and a SIGKILL.
import t from 'tap';
import { once } from 'node:events';
import { DaemonClient } from '../dist/lib/index.js';
import { pointFixture, text } from './helpers/fabric.js';
import { addPrincipal, amix, daemonDir, startDaemon } from './helpers/daemon.js';

t.test('registrations get identifiers; query, show and connect accept a name or an identifier', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const r = await amix(dir, [
    'point',
    'register',
    'printer',
    pointFixture('echo'),
    '--scope',
    'process',
    '--attr',
    'region=eu-west',
    '--attr',
    'floor=2',
    '--private-attr',
    'secret=k',
    '--json',
  ]);
  t.equal(r.code, 0, r.stderr);
  const { id } = JSON.parse(r.stdout);
  t.match(id, /^[0-9a-f]{16}\.\d+$/, 'identifier <directoryId>.<seq>');
  await amix(dir, [
    'point',
    'register',
    'scanner',
    pointFixture('sink'),
    '--scope',
    'process',
    '--attr',
    'region=us-east',
    '--json',
  ]);
  const q = JSON.parse((await amix(dir, ['query', 'region = "eu*" and floor >= 2', '--json'])).stdout);
  t.same(
    q.points.map((p: { name: string }) => p.name),
    ['printer'],
    'wildcard and numeric comparison',
  );
  const all = JSON.parse((await amix(dir, ['query', 'exists region', '--json'])).stdout);
  t.same(
    all.points.map((p: { name: string }) => p.name),
    ['printer', 'scanner'],
    'stable order',
  );
  const bad = await amix(dir, ['query', 'region = ', '--json']);
  t.equal(JSON.parse(bad.stdout).error.code, 'AMIX_ERR_QUERY_SYNTAX', 'syntax errors have their code');
  const byId = JSON.parse((await amix(dir, ['point', 'show', id, '--json'])).stdout);
  t.equal(byId.name, 'printer', 'show by identifier');
  t.equal(byId.attributes.secret.value, 'k', 'the owner sees private attributes');

  const stranger = await DaemonClient.connect({ dir, tokenFile: await addPrincipal(dir, 'someoneElse') });
  t.teardown(() => stranger.close());
  const seen = await stranger.request<{ attributes: Record<string, unknown> }>('point.show', { name: 'printer' });
  t.notOk('secret' in seen.attributes, 'another owner does not see private attributes');
  const hidden = await stranger.request<{ points: unknown[] }>('query', { expr: 'exists secret' });
  t.same(hidden.points, [], 'nor can it find points by them');
  await t.rejects(stranger.request('destroy', { name: id }), { code: 'AMIX_ERR_NOT_OWNER' }, 'nor remove the point');

  const me = await DaemonClient.connect({ dir });
  t.teardown(() => me.close());
  const link = await me.connect(null, id, { direction: 'both' });
  await link.send(Buffer.from('by id'));
  t.equal(text(await link.receive()), 'by id', 'connect by identifier');
  await link.close();
  t.equal((await amix(dir, ['destroy', id])).code, 0, 'destroy by identifier');
  const again = JSON.parse(
    (await amix(dir, ['point', 'register', 'printer', pointFixture('echo'), '--scope', 'process', '--json'])).stdout,
  );
  t.not(again.id, id, 'identifiers are not reused after delete');
});

t.test('every acknowledged registration survives a SIGKILL of the daemon mid-burst, and a restart', async (t) => {
  const dir = await daemonDir(t);
  const first = await startDaemon(t, dir);
  const firstExit = once(first, 'exit'); // it dies during the burst, before we could listen after it
  const c = await DaemonClient.connect({ dir });
  const acked: string[] = [];
  const burst = (async () => {
    for (let i = 0; ; i++) {
      await c.request('point.register', {
        registration: { name: `p${i}`, location: pointFixture('sink'), characteristics: { scope: 'process' } },
        attributes: { n: i },
      });
      acked.push(`p${i}`);
      if (acked.length === 150) first.kill('SIGKILL');
    }
  })();
  await t.rejects(burst, { code: 'AMIX_ERR_DAEMON_UNAVAILABLE' }, 'the burst ends when the daemon dies');
  await firstExit;
  t.ok(acked.length >= 150, `${acked.length} registrations acknowledged before the kill`);
  await startDaemon(t, dir);
  const after = await DaemonClient.connect({ dir });
  t.teardown(() => after.close());
  const names = new Set<string>();
  for (let offset = 0; ;) {
    const page = await after.request<{
      points: Array<{ name: string; attributes: Record<string, { value: number }> }>;
      more: boolean;
    }>('query', { expr: 'exists n', limit: 100, offset });
    for (const p of page.points) {
      names.add(p.name);
      if (`p${p.attributes.n!.value}` !== p.name) t.fail(`point ${p.name} half-written`);
    }
    if (!page.more) break;
    offset += page.points.length;
  }
  t.same(
    acked.filter((n) => !names.has(n)),
    [],
    'every acknowledged registration is there',
  );
  const ls = await after.request<Array<{ name: string }>>('point.ls');
  t.equal(ls.length, names.size, 'and the fabric knows each of them again');
});
