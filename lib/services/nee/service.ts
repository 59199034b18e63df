/**
 * The NEEM inside amixd (`amixd` plugs it in; `lib/control/services.ts` is
 * the extension point): its ops on the control protocol, for `amix nee` and
 * any `DaemonClient`, and for peer daemons. The owner of an environment or
 * a run is the connection's principal (from its token), or `peer:<id>` for
 * a peer daemon (from its key), never a field of the request.
 *
 * | op | args | answer |
 * |---|---|---|
 * | `nee.attr.set` | `{ system?, set, attributes }` (administrator only) | `{}` |
 * | `nee.attr.rm` | `{ system?, set }` (administrator only) | `{ removed }` |
 * | `nee.attr.ls` | `{}` | the systems, their sets, ACCESSIBLE or not (to a peer: this machine's only) |
 * | `nee.create` | `CreateOptions` without `as` | `NeeInfo` |
 * | `nee.ls` / `nee.show` | `{}` / `{ name }` | `{ active, inactive }` / `NeeInfo` |
 * | `nee.terminate` | `{ name }` (its owner, or the administrator) | `{}` |
 * | `nee.run` | `{ name, argv?, command?, background? }` | `{ run }` |
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
 * Remote systems (¶613): a NEECF entry with `remote: { daemon }` names a
 * peer daemon. The status task asks its NEEM for its machine's attributes
 * (ACCESSIBLE when it answers within the poll interval, else UNACCESSIBLE).
 * A `create` that no local set satisfies goes to the first accessible
 * remote system whose attributes do; its runs, reads, signals and
 * terminate are forwarded there. A peer's own requests are served only if
 * this daemon's NEECF names it in `servePeers`, and never forwarded further.
 *
 * @module
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AmixError, ErrorCode, invalidArg, isAmixError } from '../../core/errors.js';
import type { DaemonService, ServiceCaller, ServiceHost } from '../../control/services.js';
import { str, unauthorized } from '../serviceArgs.js';
import type { AttributeSet, NeeConfig } from './attributes.js';
import type { CreateOptions, Neem, NeeInfo } from './manager.js';
import type { RemoteEnv } from './peers.js';
import type { NeeRun, RunExit } from './run.js';

/** Output bytes a run may hold in the daemon before the daemon stops reading it. */
export const RUN_PENDING_BYTES = 512 * 1024;
/** The NEECF in the daemon's directory. */
export const NEECF_FILE = 'neecf.json';
/** The ops a peer daemon may ask (when `servePeers` lets it). */
const PEER_OPS = new Set([
  'nee.attr.ls',
  'nee.create',
  'nee.show',
  'nee.terminate',
  'nee.run',
  'nee.read',
  'nee.signal',
]);

interface LocalRun {
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

/** A run on a peer, forwarded. */
interface RemoteRun {
  peer: string;
  run: number;
  container: string;
}

/**
 * The NEEM as an amixd service.
 *
 * @example
 * new Daemon({ dir, services: [neeService()] })
 */
export function neeService(options: { pollMs?: number } = {}): DaemonService {
  const pollMs = options.pollMs ?? 5000;
  let neem: Neem | undefined;
  let config: NeeConfig = { systems: [] };
  let starting: Promise<Neem> | undefined;
  let host: ServiceHost | undefined;
  let remoteMatch: typeof import('./peers.js').remoteMatch | undefined;
  let seq = 0;
  const runs = new Map<number, LocalRun | RemoteRun>();
  const createdBy = new Map<string, { container: string; endWithOwner: boolean }>();
  const remote = new Map<string, RemoteEnv>();
  // Started at the first nee op, not with the daemon: a daemon nobody asks for environments pays nothing.
  const live = (): Promise<Neem> => {
    if (!host) return Promise.reject(new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'the NEEM is not started'));
    const h = host;
    starting ??= (async () => {
      const file = join(h.dir, NEECF_FILE);
      // Loaded with the first nee op: amixd's start and idle size do not pay for the NEEM.
      const [{ readNeeConfig }, { Neem }, peers] = await Promise.all([
        import('./attributes.js'),
        import('./manager.js'),
        import('./peers.js'),
      ]);
      remoteMatch = peers.remoteMatch;
      config = await readNeeConfig(file);
      const n = new Neem(h.fabric, {
        config: file,
        system: hostname(),
        probe: { software: ['sh', 'bash', 'node', 'make', 'git', 'python3'] },
        pollMs,
        reach: (s) => peers.reachPeer(h, () => neem, s, pollMs),
      });
      neem = n;
      await n.start();
      return n;
    })();
    return starting;
  };
  const requireAdmin = (c: ServiceCaller, op: string) => {
    if (!c.admin) throw unauthorized(`only the administrator may ${op} (you are ${c.owner})`, c, op);
  };
  const runOf = (args: Record<string, unknown>, c: ServiceCaller): LocalRun | RemoteRun => {
    const r = runs.get(Number(args.run));
    // Another container's run is as good as absent.
    if (!r || r.container !== c.container)
      throw new AmixError(ErrorCode.AMIX_ERR_NO_ENVIRONMENT, `no run ${String(args.run)} of yours`, { details: {} });
    return r;
  };
  const pump = async (r: LocalRun, stream: AsyncIterable<Uint8Array>, into: Buffer[]) => {
    for await (const chunk of stream) {
      // A view, not a copy: what a link delivers is the receiver's to keep.
      into.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      r.bytes += chunk.length;
      r.wake?.();
      while (r.bytes >= RUN_PENDING_BYTES) await new Promise<void>((res) => (r.room = res));
    }
  };
  const peerReq = (peer: string, op: string, args: Record<string, unknown>) => host!.peerRequest(peer, op, args);
  const remoteOwned = (name: string, c: ServiceCaller, op: string): RemoteEnv | undefined => {
    const e = remote.get(name);
    if (e && !c.admin && c.owner !== e.owner)
      throw new AmixError(ErrorCode.AMIX_ERR_NOT_OWNER, `only ${e.owner} may ${op} environment ${name}`, {
        details: { owner: e.owner, op: `nee.${op}` },
      });
    return e;
  };

  const ops: DaemonService['ops'] = {
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
    // A peer learns this machine's sets, not what this daemon knows of others.
    'nee.attr.ls': async (_a, c) => (await live()).systems().filter((s) => !c.peer || !s.remote),
    'nee.create': async (a, c) => {
      const n = await live();
      const { as: _ignored, ...rest } = a as unknown as CreateOptions;
      if (remote.has(rest.name))
        throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `an environment is already named ${rest.name}`, {
          details: { name: rest.name },
        });
      try {
        const info = await n.create({ ...rest, as: c.owner });
        createdBy.set(info.name, { container: c.container, endWithOwner: rest.endWithOwner !== false });
        return info;
      } catch (err) {
        // No local set fits: a remote system may (a peer's own request is never forwarded further).
        if (c.peer || !isAmixError(err) || err.code !== ErrorCode.AMIX_ERR_NO_ENVIRONMENT) throw err;
        const m = remoteMatch!(n, rest.require);
        if (!m) throw err;
        const peer = m.system.remote!.daemon;
        const info = (await peerReq(peer, 'nee.create', { ...rest, endWithOwner: false })) as NeeInfo;
        const mine: NeeInfo = { ...info, owner: c.owner, system: m.system.name };
        remote.set(rest.name, {
          peer,
          system: m.system.name,
          owner: c.owner,
          container: c.container,
          endWithOwner: rest.endWithOwner !== false,
          info: mine,
        });
        return mine;
      }
    },
    'nee.ls': async () => {
      const l = (await live()).list();
      return { active: [...l.active, ...[...remote.values()].map((e) => e.info)], inactive: l.inactive };
    },
    'nee.show': async (a, c) => {
      const name = str(a, 'name');
      const e = remote.get(name);
      if (!e || c.peer) return (await live()).show(name);
      const info = (await peerReq(e.peer, 'nee.show', { name })) as NeeInfo;
      return { ...info, owner: e.owner, system: e.system };
    },
    'nee.terminate': async (a, c) => {
      const name = str(a, 'name');
      const e = c.peer ? undefined : remoteOwned(name, c, 'terminate');
      if (e) {
        await peerReq(e.peer, 'nee.terminate', { name });
        remote.delete(name);
        return {};
      }
      const n = await live();
      // The administrator acts as the owner; anyone else as themselves.
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
      const id = ++seq;
      const e = c.peer ? undefined : remote.get(name);
      if (e) {
        const { run } = (await peerReq(e.peer, 'nee.run', {
          name,
          argv: command,
          background: a.background === true,
        })) as {
          run: number;
        };
        runs.set(id, { peer: e.peer, run, container: c.container });
        return { run: id };
      }
      const run = (await live()).run(name, command, { as: c.owner, background: a.background === true });
      const r: LocalRun = {
        run,
        container: c.container,
        out: [],
        err: [],
        bytes: 0,
        exit: undefined,
        wake: undefined,
        room: undefined,
      };
      runs.set(id, r);
      void Promise.all([pump(r, run.stdout, r.out), pump(r, run.stderr, r.err), run.exit]).then(([, , exit]) => {
        r.exit = exit;
        r.wake?.();
      });
      return { run: id };
    },
    'nee.read': async (a, c) => {
      const id = Number(a.run);
      const r = runOf(a, c);
      const waitMs = Math.min(Math.max(Number(a.waitMs ?? 10_000) || 0, 0), 60_000);
      if ('peer' in r) {
        const got = (await peerReq(r.peer, 'nee.read', { run: r.run, waitMs })) as { exit?: RunExit };
        if (got.exit) runs.delete(id);
        return got;
      }
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
      if (done) runs.delete(id);
      return { stdout, stderr, ...(done ? { exit: r.exit } : {}) };
    },
    'nee.signal': async (a, c) => {
      const r = runOf(a, c);
      const s = a.signal;
      if (s !== 'suspend' && s !== 'resume' && s !== 'interrupt')
        throw invalidArg('signal', 'must be suspend, resume or interrupt', s);
      if ('peer' in r) await peerReq(r.peer, 'nee.signal', { run: r.run, signal: s });
      else await r.run[s]();
      return {};
    },
  };

  // A peer daemon is served only what PEER_OPS lists, and only if the NEECF lets it in.
  const guarded: Record<string, DaemonService['ops'][string]> = {};
  for (const [op, fn] of Object.entries(ops))
    guarded[op] = async (a, c) => {
      if (c.peer) {
        await live();
        const serve = config.servePeers;
        if (!PEER_OPS.has(op) || !(serve === true || (Array.isArray(serve) && serve.includes(c.peer))))
          throw unauthorized(`this daemon's NEEM does not serve peer ${c.peer} (servePeers in ${NEECF_FILE})`, c, op);
      }
      return fn(a, c);
    };

  return {
    name: 'nee',
    start(h) {
      host = h;
    },
    ops: guarded,
    async unplugged(c) {
      for (const [id, r] of runs)
        if (r.container === c.container) {
          runs.delete(id);
          if ('peer' in r) await peerReq(r.peer, 'nee.signal', { run: r.run, signal: 'interrupt' }).catch(() => {});
          else {
            r.room?.();
            await r.run.interrupt().catch(() => {});
          }
        }
      for (const [name, by] of createdBy)
        if (by.container === c.container && by.endWithOwner) {
          createdBy.delete(name);
          await neem?.terminate(name, { as: c.owner }).catch(() => {});
        }
      for (const [name, e] of remote)
        if (e.container === c.container && e.endWithOwner) {
          remote.delete(name);
          await peerReq(e.peer, 'nee.terminate', { name }).catch(() => {});
        }
    },
    async close() {
      await neem?.close();
    },
  };
}
