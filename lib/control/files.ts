/**
 * What lies in an amixd directory, and whether a daemon answers there: the
 * names both the daemon and its clients use, kept apart from the daemon so
 * that a client does not load the daemon (and its directory and peering).
 *
 * @module
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { socketAnswers } from '../core/paths.js';

/** The names of the files in the daemon's directory (the directory database is `directory.db`). */
export const DAEMON_FILES = {
  socket: 'amixd.sock',
  pid: 'amixd.pid',
  token: 'token',
  adminToken: 'admin.token',
  run: 'run',
} as const;

/** True when something answers on the Unix socket at `path`. */
export const isAlive = socketAnswers;

/** The token in `file` (at least 32 characters), or a new random one written there 0600. */
export async function tokenFile(file: string): Promise<string> {
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t.length >= 32) return t;
  } catch {
    /* made below */
  }
  const t = randomBytes(24).toString('hex');
  await writeFile(file, `${t}\n`, { mode: 0o600 });
  return t;
}

/** Compare a presented token with the real one in constant time; an empty token never matches. */
export function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
