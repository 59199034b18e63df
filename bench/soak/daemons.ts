/**
 * Two real amixd (`dist/bin/amixd.js`) peered over loopback with CURVE keys,
 * as deployed, each on a temp DIR, with a client on each: the set-up of the
 * soak scenarios that run flows across daemons (R7-daemon).
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonClient, generateKeyPair, saveKeyPair, type PeerInfo } from '../../lib/internal.js';
import { freePort } from '../common.js';
import { sleep, tempDir } from './common.js';

const AMIXD = fileURLToPath(new URL('../../bin/amixd.js', import.meta.url));

/** Start amixd in the foreground; resolves once it writes to its ready fd. */
export async function startAmixd(dir: string, extra: string[] = []): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [AMIXD, '--dir', dir, '--quiet', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, AMIXD_READY_FD: '1' },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('amixd not ready after 15 s')), 15_000);
      proc.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`amixd exited early (${sig ?? code})`));
      });
    });
  } catch (err) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    throw err;
  }
  return proc;
}

/** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopAmixd(proc: ChildProcess, graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Daemon A (listening) and daemon B (peered to A), a client on each. */
export interface DaemonPair {
  a: DaemonClient;
  b: DaemonClient;
  close(): Promise<void>;
}

/** Start the pair; resolves once B's peering with A is up. */
export async function startDaemonPair(): Promise<DaemonPair> {
  const base = await tempDir('daemons');
  const procs: ChildProcess[] = [];
  const clients: DaemonClient[] = [];
  const close = async () => {
    for (const c of clients) await c.close().catch(() => {});
    for (const p of procs) await stopAmixd(p);
    await rm(base, { recursive: true, force: true });
  };
  try {
    const pairA = generateKeyPair();
    const pairB = generateKeyPair();
    await saveKeyPair(join(base, 'a.keys'), pairA);
    await saveKeyPair(join(base, 'b.keys'), pairB);
    await writeFile(join(base, 'allow'), `${pairA.publicKey}\n${pairB.publicKey}\n`, { mode: 0o600 });
    const keyed = (n: string) => ['--keys', join(base, `${n}.keys`), '--allow', join(base, 'allow')];
    // A port found free may be taken before amixd binds it: try again with another.
    let listen = '';
    for (let attempt = 1; ; attempt++) {
      listen = `tcp://127.0.0.1:${await freePort()}`;
      try {
        procs.push(await startAmixd(join(base, `a${attempt}`), ['--listen', listen, ...keyed('a')]));
        clients.push(await DaemonClient.connect({ dir: join(base, `a${attempt}`), name: 'soak A' }));
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    for (let attempt = 1; ; attempt++) {
      const own = `tcp://127.0.0.1:${await freePort()}`;
      try {
        procs.push(
          await startAmixd(join(base, `b${attempt}`), [
            '--listen',
            own,
            ...keyed('b'),
            '--peer',
            listen,
            `--peer-key=${pairA.publicKey}`,
          ]),
        );
        clients.push(await DaemonClient.connect({ dir: join(base, `b${attempt}`), name: 'soak B' }));
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    const [a, b] = clients as [DaemonClient, DaemonClient];
    // Peering has no event a client can wait on: poll its state, bounded.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { peers } = await a.request<{ peers: PeerInfo[] }>('peers');
      if (peers.some((p) => p.state === 'up')) break;
      if (Date.now() > deadline) throw new Error(`amixd B did not peer with A within 15 s: ${JSON.stringify(peers)}`);
      await sleep(50);
    }
    return { a, b, close };
  } catch (err) {
    await close();
    throw err;
  }
}
