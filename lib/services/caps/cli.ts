/**
 * `amix caps ...`: the CAPS verbs for bin/amix, over amixd's `caps.*` ops
 * (`service.ts`). bin/amix hands in its helpers and spreads these verbs into
 * its table (group `caps`).
 *
 * @module
 */
import type { CliHelpers, ServiceVerb, VerbOption, VerbValues } from '../cliVerb.js';
import { many, verbRequest } from '../cliVerb.js';
import type { AmsInfo, CapsQuery, DeferredInfo, MapArea } from './types.js';

type Values = VerbValues;

const DEFER: Record<string, VerbOption> = {
  at: { type: 'string' },
  every: { type: 'string' },
  on: { type: 'string' },
  repeat: { type: 'boolean' },
};
/** QUERY's line for the fabric's kept hosts. */
function hostsLine(p: CapsQuery['hosts']): string {
  if (p.max === 0) return 'kept hosts: off (reuseHosts)';
  const idle = p.idle.map((e) => `${e.scope}${e.pid === undefined ? '' : ` pid ${e.pid}`}`).join(', ') || 'none idle';
  return `kept hosts: ${idle}; kept ${p.kept}, reused ${p.reused}, expired ${p.expired}, not kept ${p.notKept}, died ${p.died}`;
}

const PEER: Record<string, VerbOption> = { peer: { type: 'string' } };
const WHEN = '[--at TIME | --every MS | --on EVENT [--repeat]] [--peer ID] [--json]';

/** The `caps` verbs, keyed as bin/amix keys its group verbs (`caps load`...). */
export function capsVerbs(h: CliHelpers): Record<string, ServiceVerb> {
  const req = verbRequest(h);
  const when = (v: Values): Record<string, unknown> => {
    const w: Record<string, unknown> = {};
    if (typeof v.at === 'string') w.at = /^\d+$/.test(v.at) ? Number(v.at) : v.at;
    if (typeof v.every === 'string') {
      const n = Number(v.every);
      if (!Number.isFinite(n)) throw h.misuse(`--every needs a number of ms (got ${JSON.stringify(v.every)})`);
      w.every = n;
    }
    if (typeof v.on === 'string') w.on = v.on;
    if (v.repeat) w.repeat = true;
    if (typeof v.peer === 'string') w.peer = v.peer;
    return w;
  };
  const json = (flag: string, s: string | undefined): unknown => {
    if (s === undefined) return undefined;
    try {
      return JSON.parse(s);
    } catch {
      throw h.misuse(`${flag} needs JSON (got ${JSON.stringify(s)})`);
    }
  };
  const deferredOr = (r: unknown, human: () => string): string =>
    r && typeof r === 'object' && 'created' in r
      ? `deferred as ${(r as DeferredInfo).id} (${(r as DeferredInfo).on ? `on ${(r as DeferredInfo).on}` : `next at ${new Date((r as DeferredInfo).next ?? 0).toISOString()}`})`
      : human();
  /** A verb that sends one op and prints its answer. */
  const verb = (
    usage: string,
    op: string,
    min: number,
    max: number,
    options: Record<string, VerbOption>,
    args: (p: string[], v: Values) => Record<string, unknown>,
    human: (r: unknown, p: string[]) => string,
  ): ServiceVerb => ({
    usage,
    options,
    min,
    max,
    async run(p, v) {
      const r = await req(v, op, { ...args(p, v), ...when(v) });
      h.out(v, r, () => deferredOr(r, () => human(r, p)));
    },
  });
  const disposition = { disposition: { type: 'string' } } as const;
  return {
    'caps load': verb(
      `amix caps load NAME [LOCATION] [--scope thread|process] [--data JSON] [--deallocation drain|discard] [--force] [--start]\n  [--send-primitive P] [--receive-primitive P] ${WHEN}   LOAD an AMS (LOCATE finds it without LOCATION)`,
      'caps.load',
      1,
      2,
      {
        scope: { type: 'string' },
        data: { type: 'string' },
        deallocation: { type: 'string' },
        force: { type: 'boolean' },
        start: { type: 'boolean' },
        'send-primitive': { type: 'string' },
        'receive-primitive': { type: 'string' },
        ...DEFER,
        ...PEER,
      },
      ([name, location], v) => ({
        name,
        ...(location ? { location } : {}),
        ...(v.scope ? { scope: v.scope } : {}),
        ...(v.data !== undefined ? { data: json('--data', v.data as string) } : {}),
        ...(v.deallocation ? { deallocation: v.deallocation } : {}),
        ...(v.force ? { force: true } : {}),
        ...(v.start ? { start: true } : {}),
        ...(v['send-primitive'] ? { sendPrimitive: v['send-primitive'] } : {}),
        ...(v['receive-primitive'] ? { receivePrimitive: v['receive-primitive'] } : {}),
      }),
      (r) => `loaded ${(r as AmsInfo).name} from ${(r as AmsInfo).location} (loads ${(r as AmsInfo).loads})`,
    ),
    'caps execute': verb(
      `amix caps execute NAME [--scope public|private] [--upstream POINT]... [--downstream POINT]... ${WHEN}   EXECUTE a LOADED AMS`,
      'caps.execute',
      1,
      1,
      {
        scope: { type: 'string' },
        upstream: { type: 'string', multiple: true },
        downstream: { type: 'string', multiple: true },
        ...DEFER,
        ...PEER,
      },
      ([name], v) => ({
        name,
        ...(v.scope ? { scope: v.scope } : {}),
        upstream: many(v.upstream),
        downstream: many(v.downstream),
      }),
      (r) => `executing ${(r as { instance: string }).instance}, references ${(r as { refs: number }).refs}`,
    ),
    'caps replace': verb(
      `amix caps replace OLD NEW [--disposition terminate|suspend|standby] [--state] [--drain-ms N] [--overlap] ${WHEN}   REPLACE an ACTIVE AMS by a LOADED one, live`,
      'caps.replace',
      2,
      2,
      {
        ...disposition,
        state: { type: 'boolean' },
        'drain-ms': { type: 'string' },
        overlap: { type: 'boolean' },
        ...DEFER,
        ...PEER,
      },
      ([old, nw], v) => ({
        old,
        new: nw,
        ...(v.disposition ? { disposition: v.disposition } : {}),
        ...(v.state ? { state: true } : {}),
        ...(v['drain-ms'] !== undefined ? { drainMs: Number(v['drain-ms']) } : {}),
        ...(v.overlap ? { overlap: true } : {}),
      }),
      (r, [old, nw]) =>
        `replaced ${old} by ${nw}: ${(r as { handedOver: number }).handedOver} queued messages handed over, paused ${(r as { pauseMs: number }).pauseMs.toFixed(1)} ms`,
    ),
    'caps insert': verb(
      `amix caps insert AMS FROM TO ${WHEN}   INSERT an ACTIVE AMS on the link FROM → TO`,
      'caps.insert',
      3,
      3,
      { ...DEFER, ...PEER },
      ([ams, from, to]) => ({ ams, from, to }),
      (_r, [ams, from, to]) => `${from} → ${ams} → ${to}`,
    ),
    'caps extract': verb(
      `amix caps extract AMS FROM TO [--disposition terminate|suspend|standby] ${WHEN}   EXTRACT an AMS from FROM → AMS → TO`,
      'caps.extract',
      3,
      3,
      { ...disposition, ...DEFER, ...PEER },
      ([ams, from, to], v) => ({ ams, from, to, ...(v.disposition ? { disposition: v.disposition } : {}) }),
      (_r, [ams, from, to]) => `${from} → ${to} (${ams} extracted)`,
    ),
    'caps suspend': verb(
      `amix caps suspend NAME ${WHEN}   SUSPEND an ACTIVE AMS`,
      'caps.suspend',
      1,
      1,
      { ...DEFER, ...PEER },
      ([name]) => ({ name }),
      (_r, [name]) => `suspended ${name}`,
    ),
    'caps resume': verb(
      `amix caps resume NAME ${WHEN}   RESUME a SUSPENDED AMS`,
      'caps.resume',
      1,
      1,
      { ...DEFER, ...PEER },
      ([name]) => ({ name }),
      (_r, [name]) => `resumed ${name}`,
    ),
    'caps terminate': verb(
      `amix caps terminate NAME [--instance ID] ${WHEN}   TERMINATE an execution (the last reference ends it)`,
      'caps.terminate',
      1,
      1,
      { instance: { type: 'string' }, ...DEFER, ...PEER },
      ([name], v) => ({ name, ...(v.instance ? { instance: v.instance } : {}) }),
      (r, [name]) => {
        const x = r as { refs: number; ended: string[] };
        return x.ended.length ? `ended ${x.ended.join(', ')}` : `${name}: references ${x.refs}`;
      },
    ),
    'caps unload': verb(
      'amix caps unload NAME [--peer ID] [--json]   UNLOAD an AMS that does not execute',
      'caps.unload',
      1,
      1,
      PEER,
      ([name]) => ({ name }),
      (_r, [name]) => `unloaded ${name}`,
    ),
    'caps dump': verb(
      'amix caps dump NAME [--persistence terminate|load] [--peer ID] [--json]   DUMP_MAP: the AMS state into a new map area',
      'caps.dump',
      1,
      1,
      { persistence: { type: 'string' }, ...PEER },
      ([name], v) => ({ name, ...(v.persistence ? { persistence: v.persistence } : {}) }),
      (r) => {
        const a = r as MapArea;
        return `${a.id}: ${a.bytes} bytes of ${a.ams}'s state, ${a.architecture.arch}/${a.architecture.platform}, owner ${a.security.owner}, kept until ${a.persistence === 'load' ? 'its LOAD_MAP' : 'the AMS terminates'}`;
      },
    ),
    'caps restore': verb(
      'amix caps restore NAME (--map ID | --state JSON) [--peer ID] [--json]   LOAD_MAP: a map area (or a state) into an AMS',
      'caps.restore',
      1,
      1,
      { map: { type: 'string' }, state: { type: 'string' }, ...PEER },
      ([name], v) => {
        if ((v.map === undefined) === (v.state === undefined)) throw h.misuse('caps restore needs --map or --state');
        return { name, ...(v.map ? { map: v.map } : { state: json('--state', v.state as string) }) };
      },
      (_r, [name]) => `restored ${name}`,
    ),
    'caps notify': verb(
      'amix caps notify EVENT [--peer ID] [--json]   NOTIFICATION: run the requests waiting on EVENT',
      'caps.notify',
      1,
      1,
      PEER,
      ([event]) => ({ event }),
      (r, [event]) => {
        const ran = r as Array<{ id: string; ok: boolean; error?: string }>;
        return ran.length
          ? ran.map((x) => `${x.id}: ${x.ok ? 'ok' : x.error}`).join('\n')
          : `nothing was waiting on ${event}`;
      },
    ),
    'caps query': verb(
      'amix caps query [--peer ID] [--json]   QUERY: the lists, references, map areas and waiting requests',
      'caps.query',
      0,
      0,
      PEER,
      () => ({}),
      (r) => {
        const q = r as CapsQuery;
        const rows = q.loaded.map((a) => ({ ...a, instances: a.instances.join(',') }));
        return [
          h.table(rows, ['name', 'state', 'refs', 'scope', 'instances', 'standby', 'deallocation']),
          `map areas: ${q.mapAreas.map((m) => `${m.id} (${m.ams}, ${m.bytes} B)`).join(', ') || '(none)'}`,
          `waiting: ${q.event.map((e) => `${e.id} ${e.op} ${e.on ? `on ${e.on}` : `at ${new Date(e.next ?? 0).toISOString()}`}`).join(', ') || '(none)'}`,
          `discarded ${q.counters.discarded}, handed over ${q.counters.handedOver}, store errors ${q.counters.storeErrors}, failed requests ${q.counters.requestsFailed}`,
          hostsLine(q.hosts),
        ].join('\n');
      },
    ),
  };
}
