/**
 * The daemon's start-up chores, kept out of `daemon.ts`: clearing a dead
 * daemon's socket, listening on a Unix socket with the mode it must have
 * from birth, and bringing the registrations back from the directory.
 *
 * @module
 */
import { lstat, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { Directory, Principal } from '../directory/index.js';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import type { Fabric } from '../fabric/fabric.js';
import type { AgentStats } from '../fabric/agent.js';
import { registrationInput } from '../fabric/point.js';
import type { DaemonStats } from './ops.js';
import { isAlive } from './files.js';

/** The directory's administrator as the daemon itself acts. */
export const DAEMON_PRINCIPAL: Principal = { owner: 'amixd', admin: true };

/** The attribute that marks a point registered by a container as ending with it. */
export const EPHEMERAL = 'amixEphemeral';

/**
 * Remove a dead daemon's socket at `path`. `AMIX_ERR_DUPLICATE` if a live
 * one answers there; `AMIX_ERR_UNSAFE_DIR` if what is there is not a
 * socket (never deleted: the shared socket's directory may be open to others).
 */
export async function clearSocket(path: string): Promise<void> {
  if (await isAlive(path))
    throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `an amixd is already listening on ${path}`, {
      details: { path },
    });
  const st = await lstat(path).catch(() => undefined);
  if (st && !st.isSocket())
    throw new AmixError(ErrorCode.AMIX_ERR_UNSAFE_DIR, `${path} exists and is not a socket: not replaced`, {
      details: { path, reason: 'not a socket', mode: st.mode & 0o7777, uid: st.uid },
    });
  await rm(path, { force: true });
}

/**
 * Listen on the Unix socket at `path`, created under `umask` so it has its
 * mode from birth (a chmod after would act on a path someone could swap).
 */
export async function listenUnix(path: string, umask: number, accept: (s: Socket) => void): Promise<Server> {
  const server = createServer(accept);
  const old = process.umask(umask);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  return server;
}

/**
 * Bring back every registration from the directory into the fabric. Points
 * that belonged to containers (ephemeral) died with the previous daemon and
 * are dropped; one that cannot be restored is logged and skipped.
 */
export function restoreRegistrations(dir: Directory, fabric: Fabric, log: (line: string) => void): void {
  for (const p of dir.listPrimitives()) {
    try {
      fabric.registry.register(p);
    } catch (err) {
      log(`directory: primitive ${p.name} not restored: ${(err as Error).message}`);
    }
  }
  for (let offset = 0; ;) {
    const page = dir.queryLocal('exists name', { as: DAEMON_PRINCIPAL, limit: 1000, offset });
    for (const v of page.points) {
      if (v.attributes[EPHEMERAL]) {
        dir.deletePoint(v.id, { as: DAEMON_PRINCIPAL });
        continue;
      }
      try {
        fabric.register(registrationInput(v));
      } catch (err) {
        log(`directory: point ${v.name} not restored: ${(err as Error).message}`);
      }
    }
    if (!page.more) break;
    offset += page.points.length;
  }
}

/** `v` if it is a positive integer, else `AMIX_ERR_INVALID_ARG` naming `name`. */
export function positiveInt(name: string, v: unknown): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) return v;
  throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${name} must be a positive integer (got ${describe(v)})`);
}

/**
 * The rules of a link with an end on another daemon (`AMIX_ERR_INVALID_ARG`
 * otherwise): a local point at the other end (not the container), not both
 * ends remote, and mode `add` only; `direct` only for such a link. A link
 * with no remote end passes (only `direct` is checked).
 */
export function checkRemoteConnect(
  ea: { view: { name: string }; remote?: unknown } | null,
  eb: { view: { name: string }; remote?: unknown } | null,
  mode: unknown,
  direct: unknown,
): void {
  if (direct !== undefined && typeof direct !== 'boolean')
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'direct must be true or false', {
      details: { option: 'direct' },
    });
  if (!ea?.remote && !eb?.remote) {
    if (direct)
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        'direct is for a link to a point on another daemon (a local link goes between the processes already)',
        { details: { option: 'direct' } },
      );
    return;
  }
  if (!ea || !eb)
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      'a link to a point on another daemon needs a local point at the other end (not this container)',
    );
  if (ea.remote && eb.remote)
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `${ea.view.name} and ${eb.view.name} are both on other daemons: connect them from one of those`,
    );
  if (mode !== undefined && mode !== 'add')
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `mode ${describe(mode)} does not work across daemons (only add)`,
    );
}

/** What `stats` answers: each instance's agent counters (or why it has none), and the links. */
export async function fabricStats(f: Fabric): Promise<DaemonStats> {
  const out: DaemonStats['instances'] = {};
  for (const i of f.instances())
    out[i.instance] = await (f.stats(i.instance) as Promise<AgentStats>).catch((e: Error) => ({ error: e.message }));
  return { at: Date.now(), instances: out, links: f.links() };
}
