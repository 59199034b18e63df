/**
 * CAPS inside amixd (`amixd` plugs it in; `lib/control/services.ts` is the
 * extension point): its `caps.*` ops on the control protocol, for `amix caps`
 * and any `DaemonClient`, and for peer daemons.
 *
 * | op | args | answer |
 * |---|---|---|
 * | `caps.locate` | `{ name }` | `Located` |
 * | `caps.load` | `LoadOptions` | `AmsInfo` |
 * | `caps.execute` | `{ name, scope?, upstream?, downstream? }` | `{ instance, refs }` |
 * | `caps.replace` | `{ old, new, disposition?, state? }` | `{ handedOver, pauseMs }` |
 * | `caps.insert` / `caps.extract` | `{ ams, from, to, disposition? }` | `{ pauseMs }` |
 * | `caps.suspend` / `caps.resume` / `caps.unload` | `{ name }` | `{}` |
 * | `caps.terminate` | `{ name, instance? }` | `{ refs, ended }` |
 * | `caps.dump` | `{ name, persistence? }` | `MapArea` (its owner: the caller's principal) |
 * | `caps.restore` | `{ name, map? , state? }` | `{}` (LOAD_MAP) |
 * | `caps.comprims` | `{ sendPrimitive?, receivePrimitive? }` | the defaults |
 * | `caps.notify` | `{ event }` | the requests it ran |
 * | `caps.cancel` | `{ id }` | `{ cancelled }` |
 * | `caps.query` | `{}` | `CapsQuery` |
 *
 * The deferrable ops (load, execute, replace, suspend, resume, terminate,
 * insert, extract) also take `at`, `every`, `on` and `repeat`: then they go
 * on the EVENT list (answer: the `DeferredInfo`). Any op with `peer: ID` is
 * forwarded to that peer daemon's CAPS (its answer is the peer's); a peer's
 * own request is served only when `capscf.json` in the daemon's directory
 * (owner-only) lets it in (`{ "servePeers": true | [id, ...] }`), and never
 * forwarded further.
 *
 * Only the administrator may change anything (an AMS is code the daemon
 * imports and runs as itself); `caps.query` and `caps.locate` are open to
 * every principal. The watched request store is `caps.ndjson` in the
 * daemon's directory (owner-only; refused, and reported in the log, when it
 * is not).
 *
 * @module
 */
import { join } from 'node:path';
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';
import { readPrivateFile } from '../../core/paths.js';
import type { DaemonService, ServiceCaller, ServiceHost } from '../../control/services.js';
import { str, unauthorized } from '../serviceArgs.js';
import type { Caps } from './caps.js';
import { DEFERRABLE } from './defer.js';
import type { CapsRequest, DeferrableOp } from './types.js';

/** The request store amixd watches, in its directory. */
export const CAPS_STORE_FILE = 'caps.ndjson';
/** Which peers this daemon's CAPS serves, in its directory. */
export const CAPSCF_FILE = 'capscf.json';
/** Ops a principal that is not the administrator may call. */
const OPEN_OPS = new Set(['caps.query', 'caps.locate']);

/** The op's arguments without the deferral and forwarding fields. */
function split(args: Record<string, unknown>): {
  rest: Record<string, unknown>;
  when: Pick<CapsRequest, 'at' | 'every' | 'on' | 'repeat' | 'id'>;
  peer: string | undefined;
} {
  const { at, every, on, repeat, id, peer, ...rest } = args;
  const when: Record<string, unknown> = {};
  for (const [k, v] of Object.entries({ at, every, on, repeat, id })) if (v !== undefined) when[k] = v;
  if (peer !== undefined && (typeof peer !== 'string' || peer === ''))
    throw invalidArg('peer', 'must be a peer id', peer);
  return {
    rest,
    when: when as Pick<CapsRequest, 'at' | 'every' | 'on' | 'repeat' | 'id'>,
    peer: peer as string | undefined,
  };
}

/**
 * CAPS as an amixd service.
 *
 * @example
 * new Daemon({ dir, services: [capsService()] })
 */
export function capsService(options: { storePollMs?: number } = {}): DaemonService {
  let host: ServiceHost | undefined;
  let caps: Caps | undefined;
  let loading: Promise<Caps> | undefined;
  let closed = false;
  let stopStore: (() => void) | undefined;
  let storeTimer: NodeJS.Timeout | undefined;
  const pollMs = options.storePollMs ?? 1000;
  // CAPS (caps.js and what it imports: about 4 MB of an idle amixd's resident size, issue 17) is
  // loaded at its first op or when its request store appears, not at start: most daemons never use it.
  const live = (): Promise<Caps> => {
    if (closed || !host) return Promise.reject(new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'CAPS is not started'));
    const h = host;
    loading ??= import('./caps.js').then(({ Caps }) => {
      if (closed) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'CAPS is not started');
      caps = new Caps(h.fabric, { owner: 'amixd' });
      caps.on('event', (e: { type: string }) => {
        if (e.type === 'storeError' || e.type === 'requestFailed' || e.type === 'replaced')
          h.log(`caps: ${JSON.stringify(e)}`);
      });
      return caps;
    });
    return loading;
  };
  /** Watch the store (loading CAPS first); throws `AMIX_ERR_UNSAFE_DIR` for a store that is not owner-only. */
  const watch = async (): Promise<void> => {
    const x = await live();
    if (!closed && !stopStore) stopStore = await x.watchStore(join(host!.dir, CAPS_STORE_FILE), { pollMs: pollMs });
  };
  const peerAllowed = async (peer: string): Promise<boolean> => {
    const text = await readPrivateFile(join(host!.dir, CAPSCF_FILE));
    if (text === undefined) return false;
    const serve = (JSON.parse(text) as { servePeers?: unknown }).servePeers;
    return serve === true || (Array.isArray(serve) && serve.includes(peer));
  };
  const run = async (op: string, args: Record<string, unknown>, c: ServiceCaller): Promise<unknown> => {
    const x = await live();
    const name = op.slice('caps.'.length);
    const { rest, when } = split(args);
    if ((DEFERRABLE as readonly string[]).includes(name) && (when.at ?? when.every ?? when.on) !== undefined)
      return x.defer({ ...when, op: name as DeferrableOp, args: rest }, c.owner);
    switch (name) {
      case 'locate':
        return x.locate(str(rest, 'name'));
      case 'load':
        return x.load(rest as never);
      case 'execute':
        return x.execute(str(rest, 'name'), rest);
      case 'replace':
        return x.replace(str(rest, 'old'), str(rest, 'new'), rest);
      case 'insert':
        return x.insert(str(rest, 'ams'), rest as never);
      case 'extract':
        return x.extract(str(rest, 'ams'), rest as never);
      case 'suspend':
        return x.suspend(str(rest, 'name')).then(() => ({}));
      case 'resume':
        return x.resume(str(rest, 'name')).then(() => ({}));
      case 'unload':
        return x.unload(str(rest, 'name')).then(() => ({}));
      case 'terminate':
        return x.terminate(str(rest, 'name'), rest);
      case 'dump':
        return x.dumpMap(str(rest, 'name'), {
          ...(rest.persistence !== undefined ? { persistence: rest.persistence as 'load' } : {}),
          owner: c.owner,
        });
      case 'restore': {
        const map = rest.map !== undefined ? { id: str(rest, 'map') } : 'state' in rest ? { state: rest.state } : {};
        return x.loadMap(str(rest, 'name'), map).then(() => ({}));
      }
      case 'comprims':
        return x.comprims(rest as never);
      case 'notify':
        return x.notify(str(rest, 'event'));
      case 'cancel':
        return { cancelled: x.cancel(str(rest, 'id')) };
      case 'query':
        return x.query();
    }
    throw invalidArg('op', 'is no caps op', op);
  };
  const OPS = [
    'locate',
    'load',
    'execute',
    'replace',
    'insert',
    'extract',
    'suspend',
    'resume',
    'unload',
    'terminate',
    'dump',
    'restore',
    'comprims',
    'notify',
    'cancel',
    'query',
  ].map((n) => `caps.${n}`);
  const ops: Record<string, DaemonService['ops'][string]> = {};
  for (const op of OPS)
    ops[op] = async (args, c) => {
      const { peer } = split(args);
      if (c.peer) {
        // A peer is served only if capscf lets it in, and its request is never forwarded further.
        if (!(await peerAllowed(c.peer)))
          throw unauthorized(`this daemon's CAPS does not serve peer ${c.peer} (servePeers in ${CAPSCF_FILE})`, c, op);
        if (peer !== undefined) throw unauthorized('a peer request is not forwarded further', c, op);
      } else if (!c.admin && !OPEN_OPS.has(op))
        throw unauthorized(`only the administrator may ${op} (you are ${c.owner})`, c, op);
      if (peer !== undefined && !c.peer) {
        const { peer: _p, ...forward } = args;
        return host!.peerRequest(peer, op, forward);
      }
      return run(op, args, c);
    };
  return {
    name: 'caps',
    ops,
    async start(h) {
      host = h;
      const file = join(h.dir, CAPS_STORE_FILE);
      // The store: refused (and the daemon with it) when it is there and not owner-only.
      if ((await readPrivateFile(file)) !== undefined) return watch();
      // Not there: looked for as often as the watch would read it, CAPS loaded when it appears.
      // One that appears unsafe is reported like the watch reports it, and looked at again.
      let busy = false;
      storeTimer = setInterval(() => {
        if (busy) return;
        busy = true;
        void readPrivateFile(file)
          .then((text) => (text === undefined ? undefined : watch().then(() => clearInterval(storeTimer))))
          .catch((err: unknown) => h.log(`caps: store ${file}: ${(err as Error).message}`))
          .finally(() => (busy = false));
      }, pollMs);
      storeTimer.unref();
    },
    close() {
      closed = true;
      clearInterval(storeTimer);
      stopStore?.();
      caps?.close();
    },
  };
}
