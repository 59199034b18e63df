// A fresh amixd does not load SQLite (a native addon, ~6 MB resident) until
// a request needs the directory; one restarted on a directory with
// registrations opens it at start and restores them.
import t from 'tap';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { DaemonClient } from '../dist/lib/internal.js';
import { daemonDir, startDaemon } from './helpers/daemon.js';

const sqliteMapped = (pid: number): boolean =>
  readFileSync(`/proc/${pid}/maps`, 'utf8').includes('better_sqlite3.node');

t.test(
  'SQLite is loaded at the first registration, and at start when there is a directory to restore',
  { skip: process.platform !== 'linux' ? 'reads /proc/PID/maps (Linux only)' : false },
  async (t) => {
    const dir = await daemonDir(t);
    const first = await startDaemon(t, dir);
    const c = await DaemonClient.connect({ dir });
    const status = await c.request<{ directory?: string }>('status');
    t.equal(status.directory, undefined, 'status: no directory opened yet');
    t.equal(sqliteMapped(first.pid!), false, 'a fresh daemon, a client plugged in: better_sqlite3.node not mapped');
    await c.request('point.register', {
      registration: { name: 'kept', location: '/nonexistent/kept.mjs', characteristics: { scope: 'process' } },
    });
    t.equal(sqliteMapped(first.pid!), true, 'mapped once a point is registered');
    const id = (await c.request<{ directory?: string }>('status')).directory;
    t.match(id, /\S/, 'status names the directory once open');
    await c.close();
    first.kill('SIGTERM');
    await once(first, 'exit');

    const second = await startDaemon(t, dir);
    t.equal(sqliteMapped(second.pid!), true, 'restarted on a directory.db: opened at start');
    const c2 = await DaemonClient.connect({ dir });
    t.teardown(() => c2.close());
    const names = (await c2.request<Array<{ name: string }>>('point.ls')).map((p) => p.name);
    t.ok(names.includes('kept'), 'the registration was restored');
    t.equal((await c2.request<{ directory?: string }>('status')).directory, id, 'the same directory id');
  },
);
