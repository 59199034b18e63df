// amixd and the CLI with a switch point: `amix switch ls|show|suspend|resume`,
// --json and --help, and the stable code for a switch that does not exist.
import t from 'tap';
import { pointFixture } from './helpers/fabric.js';
import { amix, daemonDir, freePort, startDaemon } from './helpers/daemon.js';
import { generateKeyPair } from '../dist/lib/internal.js';

t.test('amix switch ls and show report routes and links; suspend and resume a route', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const ok = async (args: string[]) => {
    const r = await amix(dir, args);
    t.equal(r.code, 0, `amix ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await ok(['point', 'register', 'TCS-1', 'amix:switch']);
  for (const p of ['TCP-1', 'TCP-2']) {
    await ok(['point', 'register', p, pointFixture('sink')]);
    await ok(['connect', p, 'TCS-1']);
  }
  // Routes are learned from the attaches (a moment after each connect): ask until both are there.
  let show: {
    routes: Array<{ dest: string; hops: number; suspended: boolean; msgsPerSec: number }>;
    ports: unknown[];
    at: number;
  };
  for (;;) {
    show = JSON.parse(await ok(['switch', 'show', 'TCS-1', '--json']));
    if (show.routes.length === 2) break;
  }
  t.same(show.routes.map((r) => [r.dest, r.hops]).sort(), [
    ['TCP-1', 1],
    ['TCP-2', 1],
  ]);
  t.equal(show.ports.length, 2, 'one link per attached point');
  t.type(show.routes[0]!.msgsPerSec, 'number', 'a rate per route');
  t.type(show.at, 'number', 'a timestamp for rates');
  // A trunk point with no far point yet (one process): `switch ls` lists it after the switches, with its state.
  const [k1, k2] = [generateKeyPair(), generateKeyPair()];
  const trunk = { ...k1, peerKey: k2.publicKey, listen: `tcp://127.0.0.1:${await freePort()}` };
  await ok(['point', 'register', 'TTP-1', 'amix:trunk', '--scope', 'process', '--data', JSON.stringify({ trunk })]);
  await ok(['connect', 'TCS-1', 'TTP-1']);
  let ls: Array<Record<string, unknown>>;
  do ls = JSON.parse(await ok(['switch', 'ls', '--json']));
  while (!ls.some((x) => x.kind === 'trunk' && x.localSwitch === 'TCS-1'));
  t.match(ls, [
    { kind: 'switch', switch: 'TCS-1', routes: 2, links: 3, msgsPerSec: 0, pending: 0, dropped: 0 },
    { kind: 'trunk', trunk: 'TTP-1', scope: 'process', state: 'connecting', localSwitch: 'TCS-1', pending: 0 },
  ]);
  const table = await ok(['switch', 'ls']);
  t.match(table, /TCS-1\s+thread/, 'a table');
  t.match(table, /trunks:\nTRUNK\s+SCOPE[^\n]*STATE[\s\S]*TTP-1\s+process\s+\d+\s+connecting/, 'then the trunk points');
  t.match(await ok(['switch', 'show', 'TCS-1']), /routes:\n[\s\S]*TCP-1[\s\S]*links:/);
  const sus = JSON.parse(await ok(['switch', 'suspend', 'TCS-1', 'TCP-1', '--json']));
  t.match(
    sus.routes.find((r: { dest: string }) => r.dest === 'TCP-1'),
    { suspended: true },
  );
  const res = JSON.parse(await ok(['switch', 'resume', 'TCS-1', 'TCP-1', '--json']));
  t.match(
    res.routes.find((r: { dest: string }) => r.dest === 'TCP-1'),
    { suspended: false },
  );
  const bad = await amix(dir, ['switch', 'show', 'TCP-1']);
  t.not(bad.code, 0, 'a point that is no switch');
  t.match(bad.stderr, /AMIX_ERR_UNKNOWN_POINT/);
  const none = await amix(dir, ['switch', 'show', 'nobody']);
  t.match(none.stderr, /AMIX_ERR_UNKNOWN_POINT/);
  for (const v of ['ls', 'show', 'suspend', 'resume']) {
    const help = await amix(dir, ['switch', v, '--help']);
    t.equal(help.code, 0, `switch ${v} --help`);
    t.match(help.stdout, new RegExp(`^usage: amix switch ${v}`), `switch ${v} prints usage`);
  }
  t.equal((await amix(dir, ['switch', 'suspend', 'TCS-1'])).code, 2, 'a missing argument is misuse');
});
