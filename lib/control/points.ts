/**
 * The daemon's point handlers that outgrew `daemon.ts`: registration (with
 * its idempotent retry), and the listings of points and query matches cut
 * into pages that fit a control frame.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { stringArg } from '../core/rpc.js';
import type { AttributeInput, Directory, PointView, Principal } from '../directory/index.js';
import { MAX_LIMIT, prepareRegistration } from '../directory/validate.js';
import type { Fabric } from '../fabric/fabric.js';
import { normalizePoint, registrationRecord, type PointRegistration } from '../fabric/point.js';
import type { DaemonOps, PointInfo } from './ops.js';
import { cut, listing, type Page } from './paging.js';
import { DAEMON_PRINCIPAL, EPHEMERAL } from './state.js';
import { hooksOf } from '../cluster/hooks.js';

/** Who registers: the principal, and the container (for an ephemeral point's mark). */
export interface Registrant {
  owner: string;
  container: string;
}

/**
 * Register a point for `who`: in the fabric, then durably in the directory
 * (the fabric's entry is undone if the directory refuses). A name already
 * taken by a point of the same principal with the identical record and
 * attributes is not an error: that is the retry of a registration whose
 * reply was lost (the daemon died after the commit, or the client timed
 * out), and the existing point is the answer. Any other taken name is
 * `AMIX_ERR_DUPLICATE`. An ephemeral point carries its container's mark, so
 * only a retry from the same container matches it.
 */
export async function registerPoint(
  dir: Directory,
  f: Fabric,
  a: DaemonOps['point.register']['args'],
  who: Registrant,
): Promise<PointInfo & { id: string }> {
  const attributes: Record<string, AttributeInput> = { ...(a.attributes ?? {}) };
  if (a.ephemeral === true) attributes[EPHEMERAL] = { value: who.container, visibility: 'private' };
  const same = sameRegistration(dir, a, attributes, who.owner);
  if (same) return { ...pointInfos(dir, f, [inFabric(f, a)])[0]!, id: same.id };
  const reg = f.register(a.registration);
  // In a cluster, the name is claimed cluster-wide first (AMIX_ERR_DUPLICATE when another daemon holds it).
  const cluster = hooksOf(dir);
  let id: string;
  try {
    await cluster?.claim([reg.name]);
    try {
      ({ id } = dir.registerPoint({ name: reg.name, owner: who.owner, record: registrationRecord(reg), attributes }));
    } catch (err) {
      await cluster?.release([reg.name]);
      throw err;
    }
  } catch (err) {
    // Undo the fabric's entry; the directory's refusal is the answer.
    await f.destroy(reg.name).catch(() => {});
    throw err;
  }
  // Acknowledged once the cluster's bucket has it too (so no NATS server's death can lose it).
  await cluster?.published([id]);
  return { ...pointInfos(dir, f, [reg])[0]!, id };
}

/** The most registrations one `point.registerBatch` takes (its request must fit a control frame anyway). */
export const MAX_BATCH = 1000;

/**
 * `point.registerBatch`: register every one of `list` for `who`, all or
 * none, in one directory transaction (one durable commit instead of one per
 * point). Each entry is idempotent as {@link registerPoint} is: an exact
 * repeat of an existing point of `who` answers that point. On any refusal
 * the points this call put in the fabric are taken out again and the error
 * is thrown, `details.index` naming the entry when the directory knows it.
 */
export async function registerPoints(
  dir: Directory,
  f: Fabric,
  list: unknown,
  who: Registrant,
): Promise<Array<PointInfo & { id: string }>> {
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BATCH)
    throw invalidArg(
      'point.registerBatch: argument points',
      `must be an array of 1 to ${MAX_BATCH} registrations`,
      list,
    );
  // Each entry's registration, with its id once known: at once for an existing point, after the commit for a new one.
  const plan: Array<{ reg: PointRegistration; id?: string; attributes: Record<string, AttributeInput> }> = [];
  const added: PointRegistration[] = [];
  const cluster = hooksOf(dir);
  try {
    for (const a of list as RegisterArgs[]) {
      if (a === null || typeof a !== 'object')
        throw invalidArg('point.registerBatch: each entry', 'must be an object', a);
      const attributes: Record<string, AttributeInput> = { ...(a.attributes ?? {}) };
      if (a.ephemeral === true) attributes[EPHEMERAL] = { value: who.container, visibility: 'private' };
      const existing = sameRegistration(dir, a, attributes, who.owner);
      if (existing) {
        const had = fabricHas(f, existing.name);
        const reg = inFabric(f, a);
        if (!had) added.push(reg);
        plan.push({ reg, id: existing.id, attributes });
        continue;
      }
      const reg = f.register(a.registration); // a repeated name in the batch is AMIX_ERR_DUPLICATE here
      added.push(reg);
      plan.push({ reg, attributes });
    }
    const fresh = plan.filter((p) => p.id === undefined);
    const names = fresh.map((p) => p.reg.name);
    if (fresh.length > 0) await cluster?.claim(names);
    let ids: Array<{ id: string }>;
    try {
      ids =
        fresh.length === 0
          ? []
          : dir.registerPoints(
              fresh.map((p) => ({
                name: p.reg.name,
                owner: who.owner,
                record: registrationRecord(p.reg),
                attributes: p.attributes,
              })),
            );
    } catch (err) {
      await cluster?.release(names);
      throw err;
    }
    fresh.forEach((p, i) => {
      p.id = ids[i]!.id;
    });
    await cluster?.published(ids.map((x) => x.id));
  } catch (err) {
    for (const reg of added) await f.destroy(reg.name).catch(() => {});
    throw err;
  }
  const info = pointInfoOf(dir, f);
  return plan.map((p) => ({ ...info(p.reg), id: p.id! }));
}

type RegisterArgs = DaemonOps['point.register']['args'];

/**
 * The fabric's registration of a point the directory holds. A restart
 * restores every registration, but one may have failed to come back (its
 * primitive was gone then): the retry puts it back, or says why not.
 */
function inFabric(f: Fabric, a: RegisterArgs): PointRegistration {
  const name = (a.registration as { name: string }).name;
  return fabricHas(f, name) ? f.point(name) : f.register(a.registration);
}

function fabricHas(f: Fabric, name: string): boolean {
  try {
    f.point(name);
    return true;
  } catch (err) {
    if ((err as AmixError).code === ErrorCode.AMIX_ERR_UNKNOWN_POINT) return false;
    throw err;
  }
}

/**
 * The existing point when `a` repeats its registration exactly (same owner,
 * same normalised record, same attributes), else undefined. Both sides go
 * through the directory's own normalisation, so `{ region: 'eu' }` and
 * `{ region: { value: 'eu', visibility: 'public' } }` are the same.
 */
function sameRegistration(
  dir: Directory,
  a: DaemonOps['point.register']['args'],
  attributes: Record<string, AttributeInput>,
  owner: string,
): PointView | undefined {
  const name = (a.registration as { name?: unknown } | null)?.name;
  if (typeof name !== 'string') return undefined;
  const old = dir.getPoint(name, { as: DAEMON_PRINCIPAL });
  if (!old || old.name !== name || old.owner !== owner) return undefined;
  let want: string;
  let have: string;
  try {
    want = canonical(
      prepareRegistration(
        { name, owner, record: registrationRecord(normalizePoint(a.registration)), attributes },
        'registration',
      ),
    );
    have = canonical(
      prepareRegistration(
        { name, owner, record: old.record, attributes: old.attributes as Record<string, AttributeInput> },
        'registration',
      ),
    );
  } catch {
    return undefined; // a malformed retry is refused by the ordinary path, with its own error
  }
  return want === have ? old : undefined;
}

function canonical(p: ReturnType<typeof prepareRegistration>): string {
  const attrs = [...p.attributes].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  return JSON.stringify([p.recordJson, attrs]);
}

/** `regs` as `point.ls` and `point.register` show them. */
export function pointInfos(dir: Directory, f: Fabric, regs: readonly PointRegistration[]): PointInfo[] {
  const info = pointInfoOf(dir, f);
  return regs.map(info);
}

/** `point.ls`: the whole list, or one page of it (only that page's points are looked up). */
export function listPoints(dir: Directory, f: Fabric, a: DaemonOps['point.ls']['args']): PointInfo[] | Page<PointInfo> {
  return listing('point.ls', f.points(), a, pointInfoOf(dir, f));
}

/**
 * A registration as a {@link PointInfo}. The instances are grouped by point
 * once, on first use, rather than searched for each point (a page may hold
 * thousands).
 */
function pointInfoOf(dir: Directory, f: Fabric): (p: PointRegistration) => PointInfo {
  let byPoint: Map<string, string[]> | undefined;
  return (p) => {
    if (!byPoint) {
      byPoint = new Map();
      for (const i of f.instances()) {
        const list = byPoint.get(i.point) ?? [];
        list.push(i.instance);
        byPoint.set(i.point, list);
      }
    }
    const v = dir.getPoint(p.name);
    return {
      id: v?.id,
      name: p.name,
      owner: v?.owner,
      role: p.role,
      scope: p.characteristics.scope,
      sendPrimitive: p.sendPrimitive,
      receivePrimitive: p.receivePrimitive,
      instances: byPoint.get(p.name) ?? [],
    };
  };
}

/** The most matches one `query` request reads from the directory. */
export const QUERY_PAGE_ROWS = 5000;

/**
 * `query`: the directory's matches from `offset` (at most `limit`), cut
 * short when more would not fit one reply; then `more` is set and `next`
 * says where to go on.
 */
export async function queryPage(
  dir: Directory,
  a: DaemonOps['query']['args'],
  as: Principal,
): Promise<DaemonOps['query']['result']> {
  // At most QUERY_PAGE_ROWS rows are read per request, whatever limit asks: a page is cut to a frame anyway,
  // and reading a hundred thousand views to send a few thousand would make each page cost the whole set.
  const capped = Number.isSafeInteger(a.limit) && a.limit! > QUERY_PAGE_ROWS && a.limit! <= MAX_LIMIT; // others: refused below
  const limit = capped ? QUERY_PAGE_ROWS : a.limit;
  const r = await dir.query(stringArg('query', a, 'expr'), {
    as,
    ...(limit !== undefined ? { limit } : {}),
    ...(a.offset !== undefined ? { offset: a.offset } : {}),
  });
  const { items, more: cutShort } = cut('query', r.points, 0, r.points.length);
  const more = cutShort || r.more;
  const offset = typeof a.offset === 'number' ? a.offset : 0;
  return { points: items, more, ...(more ? { next: offset + items.length } : {}) };
}
