/**
 * What lies in an amixd directory, and whether a daemon answers there: the
 * names both the daemon and its clients use, kept apart from the daemon so
 * that a client does not load the daemon (and its directory and peering).
 *
 * @module
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkPrivateFile,
  checkPrivateStat,
  createPrivateFile,
  readPrivateFile,
  socketAnswers,
} from '../core/paths.js';

/** The names of the files in the daemon's directory (the directory database is `directory.db`). */
export const DAEMON_FILES = {
  socket: 'amixd.sock',
  pid: 'amixd.pid',
  /** The default principal's (`user`) token. */
  token: 'token',
  /** The administrator's token. */
  adminToken: 'admin.token',
  run: 'run',
  /** The principal store: names and token hashes, never tokens (`lib/control/principals.ts`). */
  principalStore: 'principals.json',
  /** Where `amix principal add NAME` writes NAME.token by default. */
  principals: 'principals',
  log: 'amixd.log',
} as const;

/**
 * Every state file of a daemon directory that must be ours, 0600 and no
 * symlink wherever it exists: the daemon checks each at start.
 */
export const STATE_FILES: readonly string[] = [
  DAEMON_FILES.token,
  DAEMON_FILES.adminToken,
  DAEMON_FILES.pid,
  DAEMON_FILES.principalStore,
  DAEMON_FILES.log,
  'directory.db',
  'directory.db-wal',
  'directory.db-shm',
  'directory.db-journal',
  'peering.json',
  'delivered.json',
];

/** True when something answers on the Unix socket at `path`. */
export const isAlive = socketAnswers;

/**
 * Check every state file in `dir` ({@link STATE_FILES}, and each entry of
 * the `principals` directory when `dir` holds one): `AMIX_ERR_UNSAFE_DIR`
 * for the first that is a symlink, not a regular file, not ours, or open to
 * group or other. The directories themselves are checked by `ensurePrivateDir`.
 */
export async function checkStateFiles(dir: string): Promise<void> {
  for (const f of STATE_FILES) await checkPrivateFile(join(dir, f));
  const sub = join(dir, DAEMON_FILES.principals);
  let names: string[];
  try {
    checkPrivateStat(sub, await lstat(sub), 'directory');
    names = await readdir(sub);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const n of names) await checkPrivateFile(join(sub, n));
}

/** A new random token (48 hex digits, 192 bits). */
export function newToken(): string {
  return randomBytes(24).toString('hex');
}

/**
 * The token in `file` (at least 32 characters), or a new random one written
 * there 0600. The file is read with `O_NOFOLLOW` and must be ours and 0600
 * (`AMIX_ERR_UNSAFE_DIR` otherwise); a new one is created with `O_EXCL`, so
 * a symlink or a file planted meanwhile is never written through.
 */
export async function tokenFile(file: string): Promise<string> {
  const old = await readPrivateFile(file);
  if (old !== undefined) {
    const t = old.trim();
    if (t.length >= 32) return t;
    // Ours, 0600, but no token in it (a crash between create and write): make a new one.
    await unlink(file);
  }
  const t = newToken();
  await createPrivateFile(file, `${t}\n`);
  return t;
}

/** Compare a presented token with the real one in constant time; an empty token never matches. */
export function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
