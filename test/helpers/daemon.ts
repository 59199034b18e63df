// Drive the real amixd and amix binaries in a temp directory.
import type { Test } from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../dist/bench/common.js';
import { DaemonClient, generateKeyPair, saveKeyPair } from '../../dist/lib/internal.js';

/** A loopback TCP port for a server a test starts next (see the bench's `freePort`). */
export { freePort };

export const AMIX = fileURLToPath(new URL('../../dist/bin/amix.js', import.meta.url));
export const AMIXD = fileURLToPath(new URL('../../dist/bin/amixd.js', import.meta.url));

/** A temp daemon directory, removed at teardown. */
export async function daemonDir(t: Test): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'amix-d-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  return join(base, 'd');
}

/** Start amixd in the foreground as a child; resolves once it listens. Killed at teardown. */
export async function startDaemon(t: Test, dir: string, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [AMIXD, '--dir', dir, '--quiet', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, AMIXD_READY_FD: '1' },
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`amixd exited early with ${code}`)));
  });
  return child;
}

/** Run `amix ARGS` against `dir`; resolves with exit code, stdout and stderr (never rejects). */
export function amix(
  dir: string,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [AMIX, ...args, '--dir', dir],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
          stdout,
          stderr,
        });
      },
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * Add principal `name` to the daemon in `dir` (as its administrator) and
 * write its token to a 0600 file beside `dir`; resolves with that file.
 */
export async function addPrincipal(dir: string, name: string): Promise<string> {
  const { DaemonClient } = await import('../../dist/lib/internal.js');
  const { writeFile } = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  const admin = await DaemonClient.connect({ dir, admin: true });
  try {
    const { token } = await admin.request('principal.add', { name });
    const file = join(dirname(dir), `${name}.token`);
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    return file;
  } finally {
    await admin.close();
  }
}

/** A daemon event as a subscribed client receives it. */
export interface DaemonEv {
  type: string;
  body: Record<string, unknown>;
}

/**
 * A client of the daemon in `dir`, subscribed to its events (closed at
 * teardown): `events` holds every event so far, and `event(match)` resolves
 * with the first matching one, seen already or to come.
 */
export async function subscribed(
  t: Test,
  dir: string,
): Promise<{
  client: DaemonClient;
  events: DaemonEv[];
  event: (match: (e: DaemonEv) => boolean) => Promise<DaemonEv>;
}> {
  const client = await DaemonClient.connect({ dir });
  t.teardown(() => client.close().catch(() => {}));
  const events: DaemonEv[] = [];
  const waiters: Array<{ match: (e: DaemonEv) => boolean; resolve: (e: DaemonEv) => void }> = [];
  client.connection.on('event', (e: DaemonEv) => {
    events.push(e);
    for (const w of waiters.splice(0))
      if (w.match(e)) w.resolve(e);
      else waiters.push(w);
  });
  await client.subscribe();
  const event = (match: (e: DaemonEv) => boolean): Promise<DaemonEv> => {
    const seen = events.find(match);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ match, resolve }));
  };
  return { client, events, event };
}

/** Two keyed amixd in temp directories (removed at teardown), B peering with A; B's start arguments for a restart. */
export async function peeredPair(t: Test, prefix: string, extra: string[] = []) {
  const base = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const a = generateKeyPair();
  const b = generateKeyPair();
  await saveKeyPair(join(base, 'a.keys'), a);
  await saveKeyPair(join(base, 'b.keys'), b);
  await writeFile(join(base, 'allow'), `${a.publicKey}\n${b.publicKey}\n`, { mode: 0o600 });
  const [pa, pb] = [await freePort(), await freePort()];
  const dirA = join(base, 'a');
  const dirB = join(base, 'b');
  const keyed = (name: string, port: number) => [
    '--listen',
    `tcp://127.0.0.1:${port}`,
    '--keys',
    join(base, `${name}.keys`),
    '--allow',
    join(base, 'allow'),
    ...extra,
  ];
  await startDaemon(t, dirA, keyed('a', pa));
  const argsB = [...keyed('b', pb), '--peer', `tcp://127.0.0.1:${pa}`, `--peer-key=${a.publicKey}`];
  const childB = await startDaemon(t, dirB, argsB);
  return { dirA, dirB, argsB, childB };
}

/** The peering id of the daemon in `dir`. */
export async function idOf(dir: string): Promise<string> {
  const c = await DaemonClient.connect({ dir, admin: true });
  try {
    return (await c.request<{ peering?: { id: string } }>('status')).peering!.id;
  } finally {
    await c.close();
  }
}

/**
 * Poll `check` (every `everyMs`, 20 by default) until it is truthy and resolve with its value; reject
 * after `ms` with `what`. For state no event announces: a convergence wait, bounded.
 */
export async function until<T>(
  what: string,
  ms: number,
  check: () => Promise<T | undefined | false>,
  everyMs = 20,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
