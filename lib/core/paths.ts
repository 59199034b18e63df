/**
 * Where amix keeps its files, and how it makes them owner-only: runtime
 * directories are 0700 and must be owned by us; files are 0600.
 *
 * @module
 */
import { chmod, lstat, mkdir } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { AmixError, ErrorCode } from './errors.js';

/**
 * The daemon's directory: `$AMIX_DIR`, else `$XDG_RUNTIME_DIR/amix`, else
 * `<tmpdir>/amix-<uid>`.
 */
export function defaultDaemonDir(): string {
  if (process.env.AMIX_DIR) return process.env.AMIX_DIR;
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'amix');
  return join(tmpdir(), `amix-${process.getuid?.() ?? userInfo().username}`);
}

/**
 * Create `dir` (and parents) 0700 if missing, then check it: a directory,
 * owned by this user, with no group or other permissions. A directory
 * another user controls is refused with `AMIX_ERR_UNAUTHORIZED`.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `${dir} belongs to uid ${st.uid}, not to this user (${uid})`, {
      details: { path: dir },
    });
  }
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/** True when a live process accepts connections on the Unix socket at `path`. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
