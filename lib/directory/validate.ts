/**
 * Input checks at the directory's public edge: principals, names, records,
 * attributes, paging and options. Each failure is `AMIX_ERR_INVALID_ARG`
 * naming the option and the rule; what passes comes back in the stored form.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import type { PointRole } from '../core/pointRole.js';
import { POINT_ID_RE } from './ids.js';
import { isAttributeName } from './query.js';
import type {
  AttributeValue,
  DirectoryOptions,
  DirectoryPeer,
  PointRegistration,
  PointUpdate,
  Principal,
  QueryOptions,
} from './types.js';

/** Longest point name, in UTF-16 code units. */
const NAME_MAX = 256;
/** Largest page a query may ask for. */
export const MAX_LIMIT = 100_000;

/** An attribute as stored: its value and whether only the owner and the administrator see it. */
export interface StoredAttribute {
  value: AttributeValue;
  private: boolean;
}

/** A checked point registration, ready to insert. */
export interface PreparedRegistration {
  name: string;
  owner: string;
  role: PointRole;
  recordJson: string;
  attributes: Array<[string, StoredAttribute]>;
}

/** A checked {@link PointUpdate}: the new record as JSON (if any), and attributes to set or (`null`) remove. */
export interface PreparedUpdate {
  recordJson: string | undefined;
  changes: Array<[string, StoredAttribute | null]>;
}

/** Which plan a query runs with (see `QueryOptions.plan`). */
export type QueryPlan = 'auto' | 'index' | 'scan';

/** The checked options of a directory (the database path is resolved when it opens). */
export interface CheckedOptions {
  cacheSize: number;
  maxHops: number;
  synchronous: 'full' | 'normal';
}

/** Check a directory's options; defaults filled in. */
export function checkDirectoryOptions(options: DirectoryOptions): CheckedOptions {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'must be an object', options);
  const cacheSize = options.cacheSize ?? 10_000;
  if (!Number.isInteger(cacheSize) || cacheSize < 1)
    throw invalidArg('options.cacheSize', 'must be a positive integer', cacheSize);
  const maxHops = options.maxHops ?? 4;
  if (!Number.isInteger(maxHops) || maxHops < 0)
    throw invalidArg('options.maxHops', 'must be a non-negative integer', maxHops);
  const sync = options.synchronous ?? 'full';
  if (sync !== 'full' && sync !== 'normal') throw invalidArg('options.synchronous', 'must be "full" or "normal"', sync);
  if (options.replicaOf !== undefined && !/^[0-9a-f]{16}$/.test(options.replicaOf))
    throw invalidArg('options.replicaOf', 'must be a directory id (16 hex digits)', options.replicaOf);
  return { cacheSize, maxHops, synchronous: sync };
}

/** Check that `as` is a principal `{ owner, admin? }`; `name` labels the errors. */
export function checkPrincipal(as: unknown, name = 'options.as'): asserts as is Principal {
  if (as === null || typeof as !== 'object') throw invalidArg(name, 'must be a principal { owner, admin? }', as);
  const p = as as { owner?: unknown; admin?: unknown };
  if (typeof p.owner !== 'string' || p.owner === '')
    throw invalidArg(`${name}.owner`, 'must be a non-empty string', p.owner);
  if (p.admin !== undefined && typeof p.admin !== 'boolean')
    throw invalidArg(`${name}.admin`, 'must be a boolean', p.admin);
}

function checkName(name: unknown, label: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > NAME_MAX) {
    throw invalidArg(label, `must be a string of 1 to ${NAME_MAX} characters`, name);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw invalidArg(label, 'must not contain control characters', name);
  if (POINT_ID_RE.test(name))
    throw invalidArg(label, 'must not be shaped like a point identifier (<16 hex>.<n>)', name);
}

function checkRecord(record: unknown, label: string): string {
  if (record === null || typeof record !== 'object' || Array.isArray(record))
    throw invalidArg(label, 'must be an object', record);
  const role = (record as { role?: unknown }).role;
  if (role !== 'sender' && role !== 'receiver' && role !== 'both')
    throw invalidArg(`${label}.role`, 'must be "sender", "receiver" or "both"', role);
  let json: string;
  try {
    json = JSON.stringify(record);
  } catch (err) {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${label} must be JSON-serialisable`, {
      cause: err,
      details: { option: label },
    });
  }
  return json;
}

function normaliseAttribute(key: string, input: unknown, label: string): StoredAttribute {
  if (!isAttributeName(key)) {
    throw invalidArg(
      `${label} key ${JSON.stringify(key)}`,
      'must match [A-Za-z_][A-Za-z0-9_.:/-]* and not be a built-in field (id, name, owner, role) or a query keyword',
    );
  }
  let value: unknown = input;
  let visibility: unknown = 'public';
  if (input !== null && typeof input === 'object') {
    value = (input as { value?: unknown }).value;
    visibility = (input as { visibility?: unknown }).visibility ?? 'public';
  }
  if (visibility !== 'public' && visibility !== 'private')
    throw invalidArg(`${label}.${key}.visibility`, 'must be "public" or "private"', visibility);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidArg(`${label}.${key}`, 'must be a finite number', value);
  } else if (typeof value !== 'string' && typeof value !== 'boolean') {
    throw invalidArg(`${label}.${key}`, 'must be a string, a finite number or a boolean', value);
  }
  return { value: value as AttributeValue, private: visibility === 'private' };
}

/** Check a point registration; `label` names it in the errors (`registration`, `registrations[3]`). */
export function prepareRegistration(reg: PointRegistration, label: string): PreparedRegistration {
  if (reg === null || typeof reg !== 'object') throw invalidArg(label, 'must be an object', reg);
  checkName(reg.name, `${label}.name`);
  if (typeof reg.owner !== 'string' || reg.owner === '')
    throw invalidArg(`${label}.owner`, 'must be a non-empty string', reg.owner);
  const recordJson = checkRecord(reg.record, `${label}.record`);
  const attributes: Array<[string, StoredAttribute]> = [];
  if (reg.attributes !== undefined) {
    if (reg.attributes === null || typeof reg.attributes !== 'object')
      throw invalidArg(`${label}.attributes`, 'must be an object', reg.attributes);
    for (const [k, v] of Object.entries(reg.attributes))
      attributes.push([k, normaliseAttribute(k, v, `${label}.attributes`)]);
  }
  return { name: reg.name, owner: reg.owner, role: reg.record.role, recordJson, attributes };
}

/** Check a point update. */
export function prepareUpdate(update: PointUpdate): PreparedUpdate {
  if (update === null || typeof update !== 'object') throw invalidArg('update', 'must be an object', update);
  const recordJson = update.record === undefined ? undefined : checkRecord(update.record, 'update.record');
  const changes: Array<[string, StoredAttribute | null]> = [];
  if (update.attributes !== undefined) {
    if (update.attributes === null || typeof update.attributes !== 'object')
      throw invalidArg('update.attributes', 'must be an object', update.attributes);
    for (const [k, v] of Object.entries(update.attributes)) {
      if (v === null && !isAttributeName(k)) normaliseAttribute(k, v, 'update.attributes');
      changes.push([k, v === null ? null : normaliseAttribute(k, v, 'update.attributes')]);
    }
  }
  return { recordJson, changes };
}

/** Check `options.plan`; default `auto`. */
export function checkPlan(plan: unknown): QueryPlan {
  if (plan === undefined) return 'auto';
  if (plan !== 'auto' && plan !== 'index' && plan !== 'scan')
    throw invalidArg('options.plan', 'must be "auto", "index" or "scan"', plan);
  return plan;
}

/** Check `options.limit` (1 to {@link MAX_LIMIT}, default 100) and `options.offset` (default 0). */
export function checkPaging(options: QueryOptions): { limit: number; offset: number } {
  const limit = options.limit ?? 100;
  const offset = options.offset ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw invalidArg('options.limit', `must be an integer from 1 to ${MAX_LIMIT}`, limit);
  if (!Number.isInteger(offset) || offset < 0)
    throw invalidArg('options.offset', 'must be a non-negative integer', offset);
  return { limit, offset };
}

/** Check that `peer` has the {@link DirectoryPeer} methods. */
export function checkPeer(peer: unknown): asserts peer is DirectoryPeer {
  if (
    peer === null ||
    typeof peer !== 'object' ||
    typeof (peer as DirectoryPeer).resolve !== 'function' ||
    typeof (peer as DirectoryPeer).query !== 'function'
  ) {
    throw invalidArg('peer', 'must have async resolve(nameOrId, options) and query(expr, options) methods', peer);
  }
}
