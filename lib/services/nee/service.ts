/**
 * The NEEM inside amixd (`amixd` plugs it in; `lib/control/services.ts` is
 * the extension point): its ops on the control protocol, for `amix nee` and
 * any `DaemonClient`. The owner of an environment or a run is the
 * connection's principal (from its token), never a field of the request.
 *
 * | op | args | answer |
 * |---|---|---|
 * | `nee.attr.set` | `{ system?, set, attributes }` (administrator only) | `{}` |
 * | `nee.attr.rm` | `{ system?, set }` (administrator only) | `{ removed }` |
 * | `nee.attr.ls` | `{}` | the systems, their sets, ACCESSIBLE or not |
 * | `nee.create` | `CreateOptions` without `as` | `NeeInfo` |
 * | `nee.ls` / `nee.show` | `{}` / `{ name }` | `{ active, inactive }` / `NeeInfo` |
 * | `nee.terminate` | `{ name }` (its owner, or the administrator) | `{}` |
 * | `nee.run` | `{ name, argv? , command?, background? }` | `{ run }` |
 * | `nee.read` | `{ run, waitMs? }` | `{ stdout, stderr, exit? }` (base64 chunks since the last read; `exit` once ended) |
 * | `nee.signal` | `{ run, signal: 'suspend' \| 'resume' \| 'interrupt' }` | `{}` |
 *
 * A run's output waits in the daemon for its reader, at most
 * {@link RUN_PENDING_BYTES} of it; beyond that the daemon stops reading the
 * run, and the command's pipes fill (backpressure to the command, not
 * memory). Only the container that started a run may read or signal it;
 * when it goes, its runs are interrupted, and the environments it created
 * with `endWithOwner` (the default) end (¶630).
 *
 * @module
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';
import type { DaemonService, ServiceCaller, ServiceHost } from '../../control/services.js';
import type { AttributeSet } from './attributes.js';
import { Neem, type CreateOptions } from './manager.js';
import type { NeeRun, RunExit } from './run.js';

/** Output bytes a run may hold in the daemon before the daemon stops reading it. */
export const RUN_PENDING_BYTES = 512 * 1024;
/** The NEECF in the daemon's directory. */
export const NEECF_FILE = 'neecf.json';

interface DaemonRun {
  run: NeeRun;
  container: string;
  out: Buffer[];
  err: Buffer[];
  bytes: number;
  exit: RunExit | undefined;
  /** Wakes a `nee.read` waiting for output or the end. */
  wake: (() => void) | undefined;
  /** Wakes the pumps once a read has made room. */
  room: (() => void) | undefined;
}

function str(args: Record<string, unknown>, k: string): string {
  const v = args[k];
  if (typeof v !== 'string' || v === '') throw invalidArg(k, 'must be a non-empty string', v);
  return v;
}

/**
 * The NEEM as an amixd service.
 *
 * @example
 * new Daemon({ dir, services: [neeService()] })
 */
export function neeService(options: { pollMs?: number } = {}): DaemonService {
  let neem: Neem | undefined;
  let starting: Promise<Neem> | undefined;
  let host: ServiceHost | undefined;
  const runs = new Map<number, DaemonRun>();
  const createdBy = new Map<string, { container: string; endWithOwner: boolean }>();
  // Started at the first nee op, not with the daemon: a daemon nobody asks for environments pays nothing.
  const live = (): Promise<Neem> => {
    if (!host) return Promise.reject(new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'the NEEM is not started'));
    const h = host;
    starting ??= (async () => {
      const n = new Neem(h.fabric, {
        config: join(h.dir, NEECF_FILE),
        system: hostname(),
        probe: { software: ['sh', 'bash', 'node', 'make', 'git', 'python3'] },
        ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      });
      await n.start();
      neem = n;
      return n;
    })();
    return starting;
  };
  const requireAdmin = (c: ServiceCaller, op: string) => {
    if (!c.admin)
      throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `only the administrator may ${op} (you are ${c.owner})`, {
        details: { op, principal: c.owner },
      });
  };
  const runOf = (args: Record<string, unknown>, c: ServiceCaller): DaemonRun => {
    const r = runs.get(Number(args.run));
    // Another container's run is as good as absent.
    if (!r || r.container !== c.container)
      throw new AmixError(ErrorCode.AMIX_ERR_NO_ENVIRONMENT, `no run ${String(args.run)} of yours`, { details: {} });
    return r;
  };
  const pump = async (r: DaemonRun, stream: AsyncIterable<Uint8Array>, into: Buffer[]) => {
    for await (const chunk of stream) {
      into.push(Buffer.from(chunk));
      r.bytes += chunk.length;
      r.wake?.();
      while (r.bytes >= RUN_PENDING_BYTES) await new Promise<void>((res) => (r.room = res));
    }
  };
  return {
    name: 'nee',
    start(h) {
      host = h;
    },
    ops: {
      'nee.attr.set': async (a, c) => {
        requireAdmin(c, 'set environment attributes');
        const n = await live();
        n.register(typeof a.system === 'string' ? a.system : n.system, str(a, 'set'), a.attributes as AttributeSet);
        return {};
      },
      'nee.attr.rm': async (a, c) => {
        requireAdmin(c, 'remove environment attributes');
        const n = await live();
        return { removed: n.unregister(typeof a.system === 'string' ? a.system : n.system, str(a, 'set')) };
      },
      'nee.attr.ls': async () => (await live()).systems(),
      'nee.create': async (a, c) => {
        const { as: _ignored, ...rest } = a as unknown as CreateOptions;
        const info = await (await live()).create({ ...rest, as: c.owner });
        createdBy.set(info.name, { container: c.container, endWithOwner: rest.endWithOwner !== false });
        return info;
      },
      'nee.ls': async () => (await live()).list(),
      'nee.show': async (a) => (await live()).show(str(a, 'name')),
      'nee.terminate': async (a, c) => {
        const name = str(a, 'name');
        // The administrator acts as the owner; anyone else as themselves.
        const n = await live();
        await n.terminate(name, { as: c.admin ? n.show(name).owner : c.owner });
        createdBy.delete(name);
        return {};
      },
      'nee.run': async (a, c) => {
        const name = str(a, 'name');
        const argv = a.argv;
        let command: string | string[];
        if (Array.isArray(argv) && argv.length > 0 && argv.every((x) => typeof x === 'string'))
          command = argv as string[];
        else if (typeof a.command === 'string') command = a.command;
        else throw invalidArg('argv', 'must be a non-empty array of strings (or give command)', argv);
        const run = (await live()).run(name, command, { as: c.owner, background: a.background === true });
        const r: DaemonRun = {
          run,
          container: c.container,
          out: [],
          err: [],
          bytes: 0,
          exit: undefined,
          wake: undefined,
          room: undefined,
        };
        runs.set(run.id, r);
        void Promise.all([pump(r, run.stdout, r.out), pump(r, run.stderr, r.err), run.exit]).then(([, , exit]) => {
          r.exit = exit;
          r.wake?.();
        });
        return { run: run.id };
      },
      'nee.read': async (a, c) => {
        const r = runOf(a, c);
        const waitMs = Math.min(Math.max(Number(a.waitMs ?? 10_000) || 0, 0), 60_000);
        if (r.out.length === 0 && r.err.length === 0 && !r.exit && waitMs > 0) {
          await new Promise<void>((res) => {
            const timer = setTimeout(res, waitMs);
            r.wake = () => {
              clearTimeout(timer);
              res();
            };
          });
          r.wake = undefined;
        }
        const stdout = r.out.splice(0).map((b) => b.toString('base64'));
        const stderr = r.err.splice(0).map((b) => b.toString('base64'));
        r.bytes = 0;
        r.room?.();
        r.room = undefined;
        const done = r.exit !== undefined && r.out.length === 0 && r.err.length === 0;
        if (done) runs.delete(r.run.id);
        return { stdout, stderr, ...(done ? { exit: r.exit } : {}) };
      },
      'nee.signal': async (a, c) => {
        const r = runOf(a, c);
        const s = a.signal;
        if (s === 'suspend') await r.run.suspend();
        else if (s === 'resume') await r.run.resume();
        else if (s === 'interrupt') await r.run.interrupt();
        else throw invalidArg('signal', 'must be suspend, resume or interrupt', s);
        return {};
      },
    },
    async unplugged(c) {
      for (const [id, r] of runs)
        if (r.container === c.container) {
          runs.delete(id);
          r.room?.();
          await r.run.interrupt().catch(() => {});
        }
      for (const [name, by] of createdBy)
        if (by.container === c.container && by.endWithOwner) {
          createdBy.delete(name);
          await neem?.terminate(name, { as: c.owner }).catch(() => {});
        }
    },
    async close() {
      await neem?.close();
    },
  };
}
