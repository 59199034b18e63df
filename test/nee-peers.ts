// The NEEM across two peered amixd (seed 002 ¶613-614, ¶631): daemon A's
// NEECF names daemon B's machine as a remote system; A's status task polls
// B's NEEM (ACCESSIBLE while it answers, UNACCESSIBLE once it is killed,
// ACCESSIBLE again when it is back), an expression only B's attributes
// satisfy creates the environment on B, and runs there stream back through A.
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DaemonClient } from '../dist/lib/internal.js';
import { idOf, peeredPair, startDaemon, until } from './helpers/daemon.js';

const POLL_MS = 200;

t.test('a peer machine: polled, chosen by its attributes, and run on', async (t) => {
  const pair = await peeredPair(t, 'amix-nee-peers-', ['--nee-poll-ms', String(POLL_MS)]);
  const { dirA, dirB, argsB } = pair;
  let childB: ChildProcess = pair.childB;
  const ca = await DaemonClient.connect({ dir: dirA, admin: true });
  t.teardown(() => ca.close());
  const [idA, idB] = [await idOf(dirA), await idOf(dirB)];
  await until('A to see B up', 15_000, async () =>
    (await ca.request<{ peering?: { peers: Array<{ id?: string; state: string }> } }>('status')).peering!.peers.some(
      (p) => p.id === idB && p.state === 'up',
    ),
  );
  // B lets A in and has what A lacks; A's NEECF names B's machine.
  await writeFile(join(dirB, 'neecf.json'), JSON.stringify({ systems: [], servePeers: [idA] }), { mode: 0o600 });
  const cb = await DaemonClient.connect({ dir: dirB, admin: true });
  await cb.request(
    'nee.attr.set' as never,
    { set: 'gpu', attributes: { gpu: true, 'gpu.model': 'none-really' } } as never,
  );
  await cb.close();
  await writeFile(
    join(dirA, 'neecf.json'),
    JSON.stringify({ systems: [{ name: 'bee', sets: {}, remote: { daemon: idB, neem: true } }] }),
    {
      mode: 0o600,
    },
  );

  type Sys = { name: string; accessible: boolean; sets: Record<string, Record<string, unknown>> };
  const bee = async () => (await ca.request<Sys[]>('nee.attr.ls' as never, {} as never)).find((s) => s.name === 'bee')!;
  const first = await bee();
  t.equal(first.accessible, true, 'B answers: ACCESSIBLE');
  t.match(first.sets.gpu, { gpu: true }, "B's attributes, learned from its NEEM");

  const local = await ca.request<{ system: string }>(
    'nee.create' as never,
    { name: 'here', require: `os = "${process.platform}"` } as never,
  );
  t.not(local.system, 'bee', 'what this machine satisfies is created here');
  const far = await ca.request<{ system: string; owner: string }>(
    'nee.create' as never,
    { name: 'far', require: 'gpu = true' } as never,
  );
  t.same([far.system, far.owner], ['bee', 'admin'], 'only B has gpu = true: the environment is on B');

  // The command reports its environment point's parent: amixd B's pid, not A's.
  const { run } = await ca.request<{ run: number }>(
    'nee.run' as never,
    { name: 'far', argv: ['sh', '-c', 'awk "{print \\$4}" /proc/$PPID/stat; echo oops >&2; exit 5'] } as never,
  );
  let out = '';
  let err = '';
  let exit: { code: number | null } | undefined;
  while (!exit) {
    const r = await ca.request<{ stdout: string[]; stderr: string[]; exit?: { code: number | null } }>(
      'nee.read' as never,
      { run } as never,
    );
    out += r.stdout.map((s) => Buffer.from(s, 'base64').toString()).join('');
    err += r.stderr.map((s) => Buffer.from(s, 'base64').toString()).join('');
    exit = r.exit;
  }
  t.equal(Number(out.trim()), childB.pid, 'the command ran under amixd B');
  t.same([err, exit.code], ['oops\n', 5], 'stderr apart and the exit status, through A');
  const bls = await (async () => {
    const c = await DaemonClient.connect({ dir: dirB, admin: true });
    try {
      return await c.request<{ active: Array<{ name: string; owner: string }> }>('nee.ls' as never, {} as never);
    } finally {
      await c.close();
    }
  })();
  t.match(
    bls.active,
    [{ name: 'far', owner: `peer:${idA}` }],
    "on B the owner is A's daemon (its key), not a name A sent",
  );

  // B dies: within the poll interval (and the peer timeout) A marks it UNACCESSIBLE.
  childB.kill('SIGKILL');
  await once(childB, 'exit');
  await until('bee UNACCESSIBLE', 10 * POLL_MS + 5_000, async () => !(await bee()).accessible);
  t.pass('UNACCESSIBLE once B stops answering');
  await t.rejects(
    ca.request('nee.create' as never, { name: 'far2', require: 'gpu = true' } as never),
    { code: 'AMIX_ERR_NO_ENVIRONMENT' },
    'an UNACCESSIBLE system is not chosen',
  );
  childB = await startDaemon(t, dirB, argsB);
  await until('bee ACCESSIBLE again', 20_000, async () => (await bee()).accessible);
  t.pass('ACCESSIBLE again when B is back');
  t.ok(await readFile(join(dirA, 'neecf.json'), 'utf8'));
});

t.test('a peer the NEECF does not name is refused', async (t) => {
  const { dirA, dirB } = await peeredPair(t, 'amix-nee-refuse-');
  const cb = await DaemonClient.connect({ dir: dirB, admin: true });
  t.teardown(() => cb.close());
  const idA = await idOf(dirA);
  // B has no NEECF: it serves no peer. A asks anyway, through the peering service op.
  await until('B to see A up', 15_000, async () =>
    (await cb.request<{ peering?: { peers: Array<{ id?: string; state: string }> } }>('status')).peering!.peers.some(
      (p) => p.id === idA && p.state === 'up',
    ),
  );
  const ca = await DaemonClient.connect({ dir: dirA, admin: true });
  t.teardown(() => ca.close());
  await writeFile(
    join(dirA, 'neecf.json'),
    JSON.stringify({
      systems: [
        {
          name: 'bee',
          sets: {},
          remote: { daemon: (await cb.request<{ peering?: { id: string } }>('status')).peering!.id },
        },
      ],
    }),
    {
      mode: 0o600,
    },
  );
  const bee = (
    await ca.request<Array<{ name: string; accessible: boolean }>>('nee.attr.ls' as never, {} as never)
  ).find((s) => s.name === 'bee')!;
  t.equal(bee.accessible, false, "B refuses A's NEEM: A sees it UNACCESSIBLE");
});
