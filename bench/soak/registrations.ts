/**
 * Soak R4: kill -9 of amixd during a burst of registrations. A real amixd
 * (`dist/bin/amixd.js`) runs on a temp DIR; a client registers points, a
 * few requests in flight at a time, and the daemon is killed with SIGKILL
 * once a random number of them (between 10 % and 90 % of the burst) has
 * been acknowledged. amixd is restarted on the same DIR and every
 * registration is read back: each acknowledged one must be present and
 * whole (acknowledged ⊆ present); a present one that was in flight at the
 * kill is allowed (it was committed, its reply was lost).
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonClient } from '../../lib/index.js';
import { tempDir, type ScenarioRow } from './common.js';
import { startAmixd } from './daemons.js';

const SINK = fileURLToPath(new URL('./points/seqSink.js', import.meta.url));
/** Registration requests in flight at once: the kill can land between a commit and its reply. */
const IN_FLIGHT = 4;

/** Options of {@link runRegistrationCrash}. */
export interface RegistrationCrashOptions {
  /** Size of the burst; the kill comes after a random 10-90 % of it is acknowledged. */
  registrations: number;
  log?: (msg: string) => void;
}

/** Run R4; `ok` when every acknowledged registration is present and whole after the restart. */
export async function runRegistrationCrash(o: RegistrationCrashOptions): Promise<ScenarioRow> {
  const base = await tempDir('r4');
  const dir = join(base, 'd');
  const daemons: ChildProcess[] = [];
  try {
    const first = await startAmixd(dir);
    daemons.push(first);
    const died = once(first, 'exit');
    const killAt = Math.floor(o.registrations * (0.1 + 0.8 * Math.random()));
    const c = await DaemonClient.connect({ dir });
    const acked = new Set<string>();
    const issued = new Set<string>();
    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next < o.registrations) {
        const name = `p${next++}`;
        issued.add(name);
        try {
          await c.request('point.register', {
            registration: { name, location: SINK, characteristics: { scope: 'process' } },
            attributes: { n: Number(name.slice(1)) },
          });
        } catch {
          failures++;
          return; // the daemon is gone: this worker is done
        }
        acked.add(name);
        if (acked.size % 1000 === 0) o.log?.(`R4: ${acked.size} registrations acknowledged`);
        if (acked.size === killAt) first.kill('SIGKILL');
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
    await died;
    await c.close().catch(() => {});
    o.log?.(`R4: killed after ${acked.size} acknowledged (target ${killAt}), ${issued.size} issued; restarting`);

    const t0 = Date.now();
    const second = await startAmixd(dir);
    daemons.push(second);
    const restartMs = Date.now() - t0;
    const after = await DaemonClient.connect({ dir });
    const present = new Map<string, number>();
    let halfWritten = 0;
    let duplicated = 0;
    try {
      for (let offset = 0; ;) {
        const page = await after.request('query', { expr: 'exists n', limit: 500, offset });
        for (const p of page.points) {
          const n = p.attributes.n?.value as number | undefined;
          if (present.has(p.name)) duplicated++;
          present.set(p.name, n ?? -1);
          if (`p${n}` !== p.name) halfWritten++;
        }
        if (!page.more) break;
        offset += page.points.length;
      }
      const ls = await after.listAll('point.ls'); // paged: 10,000 points do not fit one reply
      const missing = [...acked].filter((n) => !present.has(n));
      const inFlightPresent = [...present.keys()].filter((n) => !acked.has(n) && issued.has(n)).length;
      const strangers = [...present.keys()].filter((n) => !issued.has(n)).length;
      return {
        id: 'R4',
        ok:
          missing.length === 0 &&
          halfWritten === 0 &&
          duplicated === 0 &&
          strangers === 0 &&
          ls.length === present.size,
        sent: issued.size,
        received: present.size,
        lost: missing.length,
        duplicated,
        reordered: 0,
        registrations: o.registrations,
        killAt,
        acknowledged: acked.size,
        present: present.size,
        missing: missing.length,
        inFlightPresent,
        halfWritten,
        strangers,
        fabricPoints: ls.length,
        failedRequests: failures,
        restartMs,
      };
    } finally {
      await after.close().catch(() => {});
    }
  } finally {
    for (const d of daemons)
      if (d.exitCode === null && d.signalCode === null) {
        const gone = once(d, 'exit');
        d.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000).unref())]);
        if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
      }
    await rm(base, { recursive: true, force: true });
  }
}
