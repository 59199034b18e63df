/**
 * What lies in an amixd directory, and whether a daemon answers there: the
 * names both the daemon and its clients use, kept apart from the daemon so
 * that a client does not load the daemon (and its directory and peering).
 *
 * @module
 */
import { connect as netConnect } from 'node:net';

/** The names of the files in the daemon's directory (the directory database is `directory.db`). */
export const DAEMON_FILES = {
  socket: 'amixd.sock',
  pid: 'amixd.pid',
  token: 'token',
  adminToken: 'admin.token',
  run: 'run',
} as const;

/** True when something answers on the Unix socket at `path`. */
export function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
