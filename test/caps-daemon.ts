// CAPS as an amixd service: the `amix caps` verbs against a real daemon
// (with data flowing through the AMS a verb replaces), the administrator
// rule, the watched request store, and a REPLACE on a peer daemon asked from
// another (its capscf.json must let that peer in).
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DaemonClient } from '../dist/lib/internal.js';
import { STAGE } from './helpers/caps.js';
import { pointFixture, text } from './helpers/fabric.js';
import { addPrincipal, amix, daemonDir, idOf, peeredPair, startDaemon, until } from './helpers/daemon.js';

const PRIM = ['--send-primitive', 'queueConditionProcess', '--receive-primitive', 'queueConditionProcess'];

async function ok(t: Test, dir: string, args: string[]): Promise<string> {
  const r = await amix(dir, args);
  t.equal(r.code, 0, `amix ${args.join(' ')}${r.stderr ? `: ${r.stderr}` : ''}`);
  return r.stdout;
}

/** up and down relays in the daemon, the client linked to up (sending) and from down (receiving). */
async function daemonPipeline(t: Test, dir: string) {
  for (const p of ['up', 'down']) await ok(t, dir, ['point', 'register', p, pointFixture('relay'), ...PRIM]);
  const c = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => c.close());
  const input = await c.connect(null, 'up', { direction: 'aToB' });
  const output = await c.connect('down', null, { direction: 'aToB' });
  return { c, input, output };
}

t.test('amix caps: every verb against amixd, with data through the replaced AMS', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const { input, output } = await daemonPipeline(t, dir);
  const rt = async (m: string) => (await input.send(Buffer.from(m)), text(await output.receive()));
  t.match(await ok(t, dir, ['caps', 'load', 'S', STAGE, ...PRIM]), /^loaded S from /);
  await ok(t, dir, ['caps', 'load', 'T', STAGE, ...PRIM, '--data', '{"tag":"T2"}']);
  t.match(await ok(t, dir, ['caps', 'execute', 'S', '--upstream', 'up', '--downstream', 'down']), /executing S/);
  t.equal(await rt('a'), 'S:a');
  const rep = JSON.parse(await ok(t, dir, ['caps', 'replace', 'S', 'T', '--state', '--json']));
  t.match(rep, { handedOver: 0, pauseMs: Number });
  t.equal(await rt('count?'), 'T2:count=2', 'replaced with its state');
  const q = JSON.parse(await ok(t, dir, ['caps', 'query', '--json']));
  t.match(q, { active: ['T'], references: { S: 0, T: 1 } });
  t.match(await ok(t, dir, ['caps', 'query']), /T\s+active\s+1/);
  t.match(await ok(t, dir, ['caps', 'query']), /^kept hosts: /m, "the daemon fabric's kept hosts");
  const area = JSON.parse(await ok(t, dir, ['caps', 'dump', 'T', '--json']));
  t.match(area, { ams: 'T', security: { owner: 'admin' }, persistence: 'terminate' }, 'owned by the caller');
  await ok(t, dir, ['caps', 'restore', 'T', '--state', '{"count":10}']);
  t.equal(await rt('count?'), 'T2:count=11', 'restore by value');
  await ok(t, dir, ['caps', 'restore', 'T', '--map', area.id]);
  t.equal(await rt('count?'), 'T2:count=3', 'restore by map id');
  t.match(await ok(t, dir, ['caps', 'suspend', 'T']), /suspended T/);
  t.match(await ok(t, dir, ['caps', 'resume', 'T']), /resumed T/);
  t.equal(await rt('b'), 'T2:b');
  await ok(t, dir, ['caps', 'insert', 'S', 'T', 'down', '--on', 'never']); // deferred, never notified
  t.match(await ok(t, dir, ['caps', 'execute', 'S', '--on', 'go']), /deferred as \S+ \(on go\)/);
  t.match(await ok(t, dir, ['caps', 'notify', 'go']), /: ok/);
  t.match(JSON.parse(await ok(t, dir, ['caps', 'query', '--json'])), {
    active: ['S', 'T'],
    event: [{ op: 'insert', on: 'never', owner: 'admin' }],
  });
  await ok(t, dir, ['caps', 'insert', 'S', 'T', 'down']);
  t.equal(await rt('c'), 'S:T2:c', 'inserted');
  await ok(t, dir, ['caps', 'extract', 'S', 'T', 'down']);
  t.equal(await rt('d'), 'T2:d', 'extracted');
  t.match(await ok(t, dir, ['caps', 'unload', 'S']), /unloaded S/);
  const busy = await amix(dir, ['caps', 'unload', 'T']);
  t.equal(busy.code, 1, 'UNLOAD of an ACTIVE AMS fails');
  t.match(busy.stderr, /AMIX_ERR_BAD_TRANSITION/);
  t.equal((await amix(dir, ['caps', 'restore', 'T'])).code, 2, 'misuse: restore without --map or --state');
  t.equal((await amix(dir, ['caps', 'replace', 'T'])).code, 2, 'misuse: replace needs two AMSs');
  t.match(await ok(t, dir, ['caps', 'terminate', 'T']), /ended T/);
  // Someone else may look, not change.
  const bob = await addPrincipal(dir, 'bob');
  const denied = await amix(dir, ['caps', 'load', 'X', STAGE, '--token-file', bob]);
  t.equal(denied.code, 1);
  t.match(denied.stderr, /AMIX_ERR_UNAUTHORIZED/);
  t.equal((await amix(dir, ['caps', 'query', '--token-file', bob])).code, 0, 'QUERY is open');
});

t.test('the request store in the daemon directory', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  await ok(t, dir, ['caps', 'load', 'W', STAGE]);
  await writeFile(join(dir, 'caps.ndjson'), JSON.stringify({ op: 'execute', args: { name: 'W' } }) + '\n', {
    mode: 0o600,
  });
  await until('the store request to run', 15_000, async () =>
    JSON.parse(await ok(t, dir, ['caps', 'query', '--json'])).active.includes('W'),
  );
  t.pass('a request written to caps.ndjson ran');
});

t.test('REPLACE of an AMS on a peer daemon', async (t) => {
  const { dirA, dirB } = await peeredPair(t, 'amix-caps-peers-');
  const [idA, idB] = [await idOf(dirA), await idOf(dirB)];
  const ca = await DaemonClient.connect({ dir: dirA, admin: true });
  t.teardown(() => ca.close());
  await until('A to see B up', 15_000, async () =>
    (await ca.request<{ peering?: { peers: Array<{ id?: string; state: string }> } }>('status')).peering!.peers.some(
      (p) => p.id === idB && p.state === 'up',
    ),
  );
  // The pipeline runs on B.
  const { input, output } = await daemonPipeline(t, dirB);
  await ok(t, dirB, ['caps', 'load', 'S', STAGE, ...PRIM]);
  await ok(t, dirB, ['caps', 'load', 'T', STAGE, ...PRIM, '--scope', 'process']);
  await ok(t, dirB, ['caps', 'execute', 'S', '--upstream', 'up', '--downstream', 'down']);
  const refused = await amix(dirA, ['caps', 'replace', 'S', 'T', '--peer', idB]);
  t.equal(refused.code, 1, 'refused while B does not serve A');
  t.match(refused.stderr, /AMIX_ERR_UNAUTHORIZED/);
  await writeFile(join(dirB, 'capscf.json'), JSON.stringify({ servePeers: [idA] }), { mode: 0o600 });
  // Traffic flows through B while A replaces B's stage, and goes on for 50 messages after it; then an end mark.
  let replaced = false;
  let sent = 0;
  const sending = (async () => {
    for (let after = 0; after < 50; sent++) {
      await input.send(Buffer.from(String(sent)));
      if (sent % 10 === 9) await new Promise((r) => setTimeout(r, 2));
      if (replaced) after++;
    }
    await input.send(Buffer.from('end'));
  })();
  const got: string[] = [];
  const receiving = (async () => {
    for (let m = text(await output.receive()); !m.endsWith(':end'); m = text(await output.receive())) got.push(m);
  })();
  const r = JSON.parse(await ok(t, dirA, ['caps', 'replace', 'S', 'T', '--peer', idB, '--json']));
  replaced = true;
  t.match(r, { handedOver: Number, pauseMs: Number }, "B's answer, through A");
  await sending;
  await receiving;
  t.same(
    got.map((m) => Number(m.split(':')[1])),
    Array.from({ length: sent }, (_, i) => i),
    `every message once, in order, across the peer REPLACE (${sent})`,
  );
  const firstT = got.findIndex((m) => m.startsWith('T:'));
  t.ok(firstT > 0 && got.slice(firstT).every((m) => m.startsWith('T:')), `S up to ${firstT - 1}, then T to the end`);
  t.match(JSON.parse(await ok(t, dirA, ['caps', 'query', '--peer', idB, '--json'])), { active: ['T'] }, 'B reports');
  t.same(JSON.parse(await ok(t, dirA, ['caps', 'query', '--json'])).active, [], "A's own CAPS has nothing");
});

t.test('CAPS is loaded when its request store appears after start (no caps op before)', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const c = await DaemonClient.connect({ dir, admin: true });
  t.teardown(() => c.close());
  // Nothing has asked CAPS anything: only the store appearing can load it and run the request.
  await writeFile(
    join(dir, 'caps.ndjson'),
    JSON.stringify({ op: 'load', args: { name: 'L', location: STAGE } }) + '\n',
    {
      mode: 0o600,
    },
  );
  await until('the store request to load L', 15_000, async () =>
    (await c.request<Array<{ name: string }>>('point.ls')).some((p) => p.name === 'L'),
  );
  t.pass('the request of a store written after start ran');
});
