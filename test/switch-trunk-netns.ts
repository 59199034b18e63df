// ¶363 across machines: two amixd, each in its own network namespace (a
// veth on a shared bridge, so the trunk crosses a real network stack, not
// loopback). Host A runs TCS-1 and TTP-1 with TCP-1..4, host B TTP-2 and
// TCS-2 with TCP-5..7; TTP-1 dials TTP-2 at B's address, CURVE keyed. Every
// point on A reaches every point on B and back, and each receiver sees the
// true sender. The control sockets are Unix sockets in temp directories, so
// the test process drives both daemons from the root namespace.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient, generateKeyPair, saveKeyPair } from '../dist/lib/internal.js';
import type { TrunkSnapshot } from '../dist/lib/index.js';
import { AMIXD } from './helpers/daemon.js';
import { pointFixture } from './helpers/fabric.js';
import { makeHosts, netnsSkip } from './helpers/netns.js';
import { Driver } from './helpers/switchDriver.js';

t.test(
  '¶363 across two network namespaces: TCP-1..4 on A reach TCP-5..7 on B through the trunk, and back',
  async (t) => {
    const skip = await netnsSkip();
    if (skip) {
      t.skip(`skipped: ${skip}`);
      return;
    }
    const hosts = await makeHosts(t, 2);
    const base = await mkdtemp(join(tmpdir(), 'amix-trunk-ns-'));
    t.teardown(() => rm(base, { recursive: true, force: true }));
    const [ka, kb] = [generateKeyPair(), generateKeyPair()];
    await saveKeyPair(join(base, 'a.key'), ka);
    await saveKeyPair(join(base, 'b.key'), kb);
    const clients: DaemonClient[] = [];
    for (const i of [0, 1]) {
      const dir = join(base, `d${i}`);
      const child = hosts.spawn(i, process.execPath, [AMIXD, '--dir', dir, '--quiet'], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, AMIXD_READY_FD: '1' },
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`amixd in ${hosts.hosts[i]!.ns} exited early with ${code}`)));
      });
      const c = await DaemonClient.connect({ dir });
      t.teardown(() => c.close().catch(() => {}));
      clients.push(c);
    }
    const [A, B] = clients as [DaemonClient, DaemonClient];
    const listen = `tcp://${hosts.hosts[1]!.address}:7100`;
    const reg = (c: DaemonClient, registration: Record<string, unknown>) =>
      c.request('point.register', { registration });
    await reg(A, { name: 'TCS-1', location: 'amix:switch' });
    await reg(B, { name: 'TCS-2', location: 'amix:switch' });
    await reg(B, {
      name: 'TTP-2',
      location: 'amix:trunk',
      characteristics: { scope: 'process' },
      data: { trunk: { keyFile: join(base, 'b.key'), peerKey: ka.publicKey, listen } },
    });
    await reg(A, {
      name: 'TTP-1',
      location: 'amix:trunk',
      characteristics: { scope: 'process' },
      data: {
        trunk: {
          keyFile: join(base, 'a.key'),
          peerKey: kb.publicKey,
          listen: `tcp://${hosts.hosts[0]!.address}:*`,
          connect: listen,
        },
      },
    });
    await B.connect('TCS-2', 'TTP-2');
    await A.connect('TCS-1', 'TTP-1');
    const left = ['TCP-1', 'TCP-2', 'TCP-3', 'TCP-4'];
    const right = ['TCP-5', 'TCP-6', 'TCP-7'];
    const drv: Record<string, Driver> = {};
    for (const [c, names, sw] of [
      [A, left, 'TCS-1'],
      [B, right, 'TCS-2'],
    ] as const)
      for (const n of names) {
        await reg(c, {
          name: n,
          location: pointFixture('switched'),
          sendPrimitive: 'queueConditionProcess',
          receivePrimitive: 'queueConditionProcess',
          data: { sw, report: true },
        });
        drv[n] = new Driver((await c.connect(null, n)) as never);
        await c.connect(n, sw);
      }
    for (;;) {
      const s = await A.request<TrunkSnapshot>('switch.show', { name: 'TTP-1' });
      if (s.state === 'up') {
        t.match(s, { remoteSwitch: 'TCS-2', localSwitch: 'TCS-1', peer: listen }, 'TTP-1 is up, to TTP-2 on host B');
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const a of left)
      for (const b of right) {
        t.match(await drv[a]!.cmd({ op: 'route', to: b, present: true }), { ok: true }, `${a} learned ${b}`);
        t.match(await drv[b]!.cmd({ op: 'route', to: a, present: true }), { ok: true }, `${b} learned ${a}`);
      }
    const n = 5;
    for (const a of left)
      for (const b of right) {
        t.match(await drv[a]!.cmd({ op: 'send', to: b, n, tag: `${a}>${b}` }), { ok: true });
        t.match(await drv[b]!.cmd({ op: 'send', to: a, n, tag: `${b}>${a}` }), { ok: true });
      }
    const expect = (b: string, from: readonly string[]) =>
      from.flatMap((a) => Array.from({ length: n }, (_, i) => `${a} ${a}>${b}:${i}`));
    for (const [group, others] of [
      [right, left],
      [left, right],
    ] as const)
      for (const b of group) {
        const got = (await drv[b]!.reported(others.length * n)).map((r) => `${r.from} ${r.got}`);
        t.same([...got].sort(), expect(b, others).sort(), `${b} heard each of ${others.join(',')} as itself`);
        for (const a of others)
          t.same(
            got.filter((x) => x.startsWith(`${a} `)),
            expect(b, [a]),
            `${a} -> ${b} in order`,
          );
      }
    const s1 = await A.request<{ routes: Array<{ dest: string; path: string[] }> }>('switch.show', { name: 'TCS-1' });
    t.same(s1.routes.find((r) => r.dest === 'TCP-7')?.path, ['TCS-1', 'TCS-2'], 'TCS-1 reaches TCP-7 through TCS-2');
    for (;;) {
      const s = await A.request<{ trunk: { kept: number } }>('switch.show', { name: 'TCS-1' });
      if (s.trunk.kept === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.pass('every frame sent over the trunk was acknowledged');
  },
);
