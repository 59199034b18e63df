/**
 * The Thread Directory Service (seed 002, paragraphs 70-74, 148-152, 212+):
 * a persistent, queryable registry of primitives and points over SQLite
 * (better-sqlite3, WAL). Every directory has its own random identifier and
 * every point registered in it gets the identifier `<directoryId>.<seq>`,
 * never reused, even after a delete or a reopen.
 *
 * Local operations are synchronous (SQLite is); {@link Directory.resolve}
 * and {@link Directory.query} are async because they may ask peer
 * directories (federation).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import { AmixError, ErrorCode, describe, invalidArg } from '../core/errors.js';
import { assertRegistration, type PrimitiveRegistration } from '../core/registry.js';
import {
  attributeCondition,
  compareCodePoints,
  compileQuery,
  isAttributeLeaf,
  isAttributeName,
  optimizeQuery,
  parseQuery,
  type QueryLeaf,
  type QueryNode,
} from './query.js';
import { MIGRATIONS, migrate } from './schema.js';
import { PointRole } from '../core/pointRole.js';

/** Who performs an operation. The administrator may see and change everything. */
export interface Principal {
  /** An identity name (a uid, a container name), never a secret: it is stored and shown as the point's owner. */
  readonly owner: string;
  /** True for the directory administrator. */
  readonly admin?: boolean;
}

/** The roles a point can have: the fabric's own set. */
export { PointRole };

/**
 * A point's registration record: its role plus whatever the fabric needs
 * (location, default primitives, characteristics). Stored as JSON; the
 * directory checks only `role`.
 */
export interface PointRecord {
  readonly role: PointRole;
  /** The module implementing the point. */
  readonly location?: string;
  /** Default send and receive primitives, by name. */
  readonly primitives?: { readonly send?: string; readonly receive?: string };
  /** SPEC.md's point characteristics (scope, maxmsg, restart, ...). */
  readonly characteristics?: Readonly<Record<string, unknown>>;
  readonly [more: string]: unknown;
}

/** Whether an attribute is visible to anyone or only to the point's owner and the administrator. */
export const Visibility = {
  public: 'public',
  private: 'private',
} as const;
/** One of {@link Visibility}. */
export type Visibility = (typeof Visibility)[keyof typeof Visibility];

/** An attribute value. */
export type AttributeValue = string | number | boolean;

/** A stored attribute as shown. */
export interface Attribute {
  readonly value: AttributeValue;
  readonly visibility: Visibility;
}

/** An attribute as given: a bare value is public. */
export type AttributeInput = AttributeValue | { readonly value: AttributeValue; readonly visibility?: Visibility };

/** A point registration. */
export interface PointRegistration {
  /** Unique in this directory; not shaped like an identifier. */
  readonly name: string;
  /** The registering principal's identity; only it (or the administrator) may change or delete the point. */
  readonly owner: string;
  readonly record: PointRecord;
  /** Keys follow the query attribute rule and may not be a built-in field (id, name, owner, role) or a keyword. */
  readonly attributes?: Readonly<Record<string, AttributeInput>>;
}

/** A point as shown to one asker: private attributes appear only for the owner and the administrator. */
export interface PointView {
  /** `<directoryId>.<seq>`. */
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  /** The directory that holds the registration. */
  readonly directoryId: string;
  readonly record: PointRecord;
  readonly attributes: Readonly<Record<string, Attribute>>;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** A change to a point: a new record, and attributes to set (`null` removes one). */
export interface PointUpdate {
  readonly record?: PointRecord;
  readonly attributes?: Readonly<Record<string, AttributeInput | null>>;
}

/** Forwarding state carried from directory to directory. */
export interface ForwardOptions {
  /** How many more directories a request may be forwarded through. Default: the directory's `maxHops`. */
  readonly hops?: number;
  /** Directory ids already asked; they are not asked again. */
  readonly visited?: readonly string[];
}

/** Options of {@link Directory.resolve}. */
export interface ResolveOptions extends ForwardOptions {
  /** The asker; without it only public attributes are shown. */
  readonly as?: Principal;
}

/** Options of {@link Directory.query} and {@link Directory.queryLocal}. */
export interface QueryOptions extends ForwardOptions {
  /** The asker; without it only public attributes are seen (and matched). */
  readonly as?: Principal;
  /** Page size, 1 to 100000. Default 100. */
  readonly limit?: number;
  /** Points to skip, in identifier order. Default 0. */
  readonly offset?: number;
  /**
   * How attribute conditions run: `auto` (default) drives by the most
   * selective one through the attribute index and filters the rest per point;
   * `index` drives by all of them; `scan` walks points in identifier order and
   * filters. Results are the same; only the speed differs. Not forwarded to peers.
   */
  readonly plan?: 'auto' | 'index' | 'scan';
}

/** One page of a query. */
export interface QueryResult {
  /** Matches in identifier order (directory id, then sequence number). */
  readonly points: readonly PointView[];
  /** True when more matches follow this page. */
  readonly more: boolean;
}

/**
 * A directory another directory can forward to: another {@link Directory}
 * in process, or a client of a remote one (the remote issue supplies the
 * transport). `id` lets loops be cut before the call.
 */
export interface DirectoryPeer {
  readonly id?: string;
  resolve(nameOrId: string, options?: ResolveOptions): Promise<PointView | undefined>;
  query(expr: string, options?: QueryOptions): Promise<QueryResult>;
}

/** Options of {@link Directory}. */
export interface DirectoryOptions {
  /** The database file, or `:memory:`. Default `<stateDir>/directory.db`. */
  readonly path?: string;
  /** Created 0700 if missing; the database is created 0600 in it. Used when `path` is not given. */
  readonly stateDir?: string;
  /** Resolved points kept in memory. Default 10000. */
  readonly cacheSize?: number;
  /** `full` (default): a commit is on disk before it is acknowledged, even across power loss. `normal`: survives a process crash, not power loss. */
  readonly synchronous?: 'full' | 'normal';
  /** Default hop budget for forwarded requests. Default 4. */
  readonly maxHops?: number;
  /** Called when a peer fails; the failing peer is skipped. */
  readonly onPeerError?: (err: unknown, peer: DirectoryPeer) => void;
}

/** The default file name of the directory database inside a state dir. */
export const DIRECTORY_FILE = 'directory.db';

const ID_RE = /^([0-9a-f]{16})\.([1-9][0-9]{0,15})$/;
const NAME_MAX = 256;
const MAX_LIMIT = 100_000;

/** Split a point identifier into its directory id and sequence number; undefined when `s` is not shaped like one. */
export function parsePointId(s: string): { directoryId: string; seq: number } | undefined {
  const m = ID_RE.exec(s);
  if (!m) return undefined;
  const seq = Number(m[2]);
  return Number.isSafeInteger(seq) ? { directoryId: m[1]!, seq } : undefined;
}

/** Order two point identifiers: by directory id, then numerically by sequence. */
export function comparePointIds(a: string, b: string): number {
  const x = parsePointId(a);
  const y = parsePointId(b);
  if (!x || !y) return compareCodePoints(a, b);
  return x.directoryId < y.directoryId ? -1 : x.directoryId > y.directoryId ? 1 : x.seq - y.seq;
}

interface StoredAttribute {
  value: AttributeValue;
  private: boolean;
}

/** A point as cached: every attribute, with its visibility. */
interface StoredPoint {
  seq: number;
  name: string;
  owner: string;
  recordJson: string;
  attributes: Map<string, StoredAttribute>;
  createdAt: number;
  updatedAt: number;
}

interface PreparedRegistration {
  name: string;
  owner: string;
  role: PointRole;
  recordJson: string;
  attributes: Array<[string, StoredAttribute]>;
}

interface PointRow {
  seq: number;
  name: string;
  owner: string;
  record: string;
  attributes: string;
  created_at: number;
  updated_at: number;
}

function checkPrincipal(as: unknown, name = 'options.as'): asserts as is Principal {
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
  if (ID_RE.test(name)) throw invalidArg(label, 'must not be shaped like a point identifier (<16 hex>.<n>)', name);
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

/** Attribute rows per multi-row insert statement (5 parameters each). */
const MULTI_ROWS = 64;

/** seq, key, type, value (booleans as 0/1), private. */
type AttributeInsert = [number, string, string, string | number, 0 | 1];

function attributeRow(seq: number, key: string, a: StoredAttribute): AttributeInsert {
  const v = a.value;
  return [seq, key, typeof v, typeof v === 'boolean' ? (v ? 1 : 0) : v, a.private ? 1 : 0];
}

/** A leaf matching at most this many points drives a query whatever the others match. */
const SURE_DRIVER = 256;

const POINT_COLUMNS = 'seq, name, owner, record, attributes, created_at, updated_at';

function attributesJson(attributes: ReadonlyArray<[string, StoredAttribute]>): string {
  const out: Record<string, [AttributeValue, 0 | 1]> = {};
  for (const [k, a] of attributes) out[k] = [a.value, a.private ? 1 : 0];
  return JSON.stringify(out);
}

function leaves(node: QueryNode): QueryNode[] {
  if (isAttributeLeaf(node)) return [node];
  if (node.kind === 'and' || node.kind === 'or') return node.operands.flatMap(leaves);
  if (node.kind === 'not') return leaves(node.operand);
  return [];
}

function checkPlan(plan: unknown): 'auto' | 'index' | 'scan' {
  if (plan === undefined) return 'auto';
  if (plan !== 'auto' && plan !== 'index' && plan !== 'scan')
    throw invalidArg('options.plan', 'must be "auto", "index" or "scan"', plan);
  return plan;
}

function checkPaging(options: QueryOptions): { limit: number; offset: number } {
  const limit = options.limit ?? 100;
  const offset = options.offset ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw invalidArg('options.limit', `must be an integer from 1 to ${MAX_LIMIT}`, limit);
  if (!Number.isInteger(offset) || offset < 0)
    throw invalidArg('options.offset', 'must be a non-negative integer', offset);
  return { limit, offset };
}

/**
 * A directory of primitives and points in one SQLite database.
 *
 * Errors: `AMIX_ERR_DUPLICATE` (name taken), `AMIX_ERR_NOT_OWNER` (change or
 * delete by someone else than the owner or the administrator),
 * `AMIX_ERR_UNKNOWN_POINT`, `AMIX_ERR_QUERY_SYNTAX`, `AMIX_ERR_INVALID_ARG`,
 * `AMIX_ERR_CLOSED` after {@link Directory.close}.
 *
 * @example
 * const dir = new Directory({ stateDir: '/var/lib/amix' });
 * const { id } = dir.registerPoint({ name: 'printer', owner: 'uid:1000', record: { role: 'receiver' }, attributes: { region: 'eu-west' } });
 */
export class Directory implements DirectoryPeer {
  readonly #db: Database.Database;
  readonly #id: string;
  readonly #path: string;
  readonly #cache: LRUCache<string, StoredPoint>;
  readonly #statements = new LRUCache<string, Database.Statement>({ max: 256 });
  /**
   * Leaf match counts the planner measured, for a few seconds: a stale count
   * can only pick a slower plan, never a wrong result, and counting a dense
   * leaf costs about as much as the scan it chooses.
   */
  readonly #estimates = new LRUCache<string, number>({ max: 2048, ttl: 5000 });
  readonly #peers = new Set<DirectoryPeer>();
  readonly #maxHops: number;
  readonly #onPeerError: ((err: unknown, peer: DirectoryPeer) => void) | undefined;
  #dataVersion: number;
  #multiInsert: Database.Statement | undefined;
  #closed = false;
  readonly #stmt: {
    pointBySeq: Database.Statement<[number], PointRow>;
    pointByName: Database.Statement<[string], PointRow>;
    insertPoint: Database.Statement<[string, string, string, string, string, number, number]>;
    insertAttribute: Database.Statement<AttributeInsert>;
    upsertAttribute: Database.Statement<AttributeInsert>;
    deleteAttribute: Database.Statement<[number, string]>;
    deleteAttributes: Database.Statement<[number]>;
    deletePoint: Database.Statement<[number]>;
    updatePoint: Database.Statement<[string, string, string, number, number]>;
    dataVersion: Database.Statement<[], { data_version: number }>;
    maxSeq: Database.Statement<[], { seq: number }>;
  };

  /**
   * Open (creating if needed) a directory database, run pending migrations,
   * and create the directory id on first open.
   */
  constructor(options: DirectoryOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'must be an object', options);
    const cacheSize = options.cacheSize ?? 10_000;
    if (!Number.isInteger(cacheSize) || cacheSize < 1)
      throw invalidArg('options.cacheSize', 'must be a positive integer', cacheSize);
    const maxHops = options.maxHops ?? 4;
    if (!Number.isInteger(maxHops) || maxHops < 0)
      throw invalidArg('options.maxHops', 'must be a non-negative integer', maxHops);
    const sync = options.synchronous ?? 'full';
    if (sync !== 'full' && sync !== 'normal')
      throw invalidArg('options.synchronous', 'must be "full" or "normal"', sync);
    this.#maxHops = maxHops;
    this.#onPeerError = options.onPeerError;

    let path = options.path;
    if (path === undefined) {
      if (typeof options.stateDir !== 'string' || options.stateDir === '')
        throw invalidArg(
          'options.stateDir',
          'must be a directory path when options.path is not given',
          options.stateDir,
        );
      mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
      path = join(options.stateDir, DIRECTORY_FILE);
    }
    if (typeof path !== 'string' || path === '')
      throw invalidArg('options.path', 'must be a file path or ":memory:"', path);
    this.#path = path;
    if (path !== ':memory:') {
      // Create the file 0600 before SQLite does; its -wal and -shm files copy its mode.
      closeSync(openSync(path, 'a', 0o600));
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    }

    this.#db = new Database(path);
    try {
      // 16 KiB pages: the attribute index takes random inserts, and bigger
      // pages cut its splits and depth (+35 % register rate measured over 4 KiB).
      // Only a new database takes it; an existing one keeps its page size.
      this.#db.pragma('page_size = 16384');
      if (path !== ':memory:') this.#db.pragma('journal_mode = WAL');
      this.#db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
      this.#db.pragma('busy_timeout = 5000');
      // The attribute index takes random inserts: with SQLite's default 2 MB
      // page cache, registering beyond ~50k points thrashes it.
      this.#db.pragma('cache_size = -65536');
      migrate(this.#db, MIGRATIONS);
      this.#id = this.#db
        .transaction(() => {
          const row = this.#db.prepare("SELECT value FROM meta WHERE key = 'directory_id'").get() as
            { value: string } | undefined;
          if (row) return row.value;
          const id = randomBytes(8).toString('hex');
          this.#db.prepare("INSERT INTO meta (key, value) VALUES ('directory_id', ?)").run(id);
          return id;
        })
        .immediate();
    } catch (err) {
      this.#db.close();
      throw err;
    }
    const db = this.#db;
    this.#stmt = {
      pointBySeq: db.prepare(`SELECT ${POINT_COLUMNS} FROM points WHERE seq = ?`),
      pointByName: db.prepare(`SELECT ${POINT_COLUMNS} FROM points WHERE name = ?`),
      insertPoint: db.prepare(
        'INSERT INTO points (name, owner, role, record, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      insertAttribute: db.prepare('INSERT INTO attributes (seq, key, type, value, private) VALUES (?, ?, ?, ?, ?)'),
      upsertAttribute: db.prepare(
        'INSERT OR REPLACE INTO attributes (seq, key, type, value, private) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteAttribute: db.prepare('DELETE FROM attributes WHERE seq = ? AND key = ?'),
      deleteAttributes: db.prepare('DELETE FROM attributes WHERE seq = ?'),
      deletePoint: db.prepare('DELETE FROM points WHERE seq = ?'),
      updatePoint: db.prepare('UPDATE points SET record = ?, role = ?, attributes = ?, updated_at = ? WHERE seq = ?'),
      dataVersion: db.prepare('PRAGMA data_version') as unknown as Database.Statement<[], { data_version: number }>,
      maxSeq: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'points'"),
    };
    this.#dataVersion = this.#stmt.dataVersion.get()!.data_version;
    this.#cache = new LRUCache({ max: cacheSize });
  }

  /** This directory's own identifier: 16 hex digits, created on first open and kept. */
  get id(): string {
    return this.#id;
  }

  /** The database file (or `:memory:`). */
  get path(): string {
    return this.#path;
  }

  /** The schema version recorded in the database. */
  get schemaVersion(): number {
    this.#open();
    return this.#db.pragma('user_version', { simple: true }) as number;
  }

  /** True after {@link Directory.close}. */
  get closed(): boolean {
    return this.#closed;
  }

  #open(): void {
    if (this.#closed) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'the directory is closed');
  }

  // -------------------------------------------------------------------------
  // Primitives

  /** Register a primitive persistently. `AMIX_ERR_BAD_PRIMITIVE` when malformed, `AMIX_ERR_DUPLICATE` when the name is taken. */
  registerPrimitive(registration: PrimitiveRegistration): void {
    this.#open();
    assertRegistration(registration);
    const info = this.#db
      .prepare('INSERT OR IGNORE INTO primitives (name, location, characteristics, created_at) VALUES (?, ?, ?, ?)')
      .run(registration.name, registration.location, JSON.stringify(registration.characteristics), Date.now());
    if (info.changes === 0) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_DUPLICATE,
        `primitive ${JSON.stringify(registration.name)} is already registered`,
        { details: { name: registration.name } },
      );
    }
  }

  /** Delete a primitive registration. `AMIX_ERR_UNKNOWN_PRIMITIVE` when there is none. */
  deletePrimitive(name: string): void {
    this.#open();
    const info = this.#db.prepare('DELETE FROM primitives WHERE name = ?').run(String(name));
    if (info.changes === 0)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_PRIMITIVE, `no primitive is registered as ${describe(name)}`, {
        details: { name: String(name) },
      });
  }

  /** One primitive registration, or undefined. */
  getPrimitive(name: string): PrimitiveRegistration | undefined {
    this.#open();
    const row = this.#db
      .prepare('SELECT name, location, characteristics FROM primitives WHERE name = ?')
      .get(String(name)) as { name: string; location: string; characteristics: string } | undefined;
    return row && { name: row.name, location: row.location, characteristics: JSON.parse(row.characteristics) };
  }

  /** Every primitive registration, by name. */
  listPrimitives(): PrimitiveRegistration[] {
    this.#open();
    const rows = this.#db
      .prepare('SELECT name, location, characteristics FROM primitives ORDER BY name')
      .all() as Array<{ name: string; location: string; characteristics: string }>;
    return rows.map((r) => ({ name: r.name, location: r.location, characteristics: JSON.parse(r.characteristics) }));
  }

  // -------------------------------------------------------------------------
  // Points: writes

  /**
   * Register a point; returns its new identifier once the commit is durable.
   * `AMIX_ERR_DUPLICATE` when the name is taken, `AMIX_ERR_INVALID_ARG` for a
   * malformed registration.
   */
  registerPoint(registration: PointRegistration): { id: string } {
    this.#open();
    const prepared = this.#prepareRegistration(registration, 'registration');
    return this.#db
      .transaction(() => {
        const rows: AttributeInsert[] = [];
        const id = this.#insert(prepared, 0, rows);
        this.#insertAttributes(rows);
        return { id };
      })
      .immediate();
  }

  /**
   * Register many points in one transaction: all or none. Returns their
   * identifiers in order. A taken or repeated name fails the whole batch
   * with `AMIX_ERR_DUPLICATE` (`details.index` says which).
   */
  registerPoints(registrations: readonly PointRegistration[]): Array<{ id: string }> {
    this.#open();
    if (!Array.isArray(registrations)) throw invalidArg('registrations', 'must be an array', registrations);
    const prepared = registrations.map((r, i) => this.#prepareRegistration(r, `registrations[${i}]`));
    return this.#db
      .transaction(() => {
        const rows: AttributeInsert[] = [];
        const ids = prepared.map((p, i) => ({ id: this.#insert(p, i, rows) }));
        this.#insertAttributes(rows);
        return ids;
      })
      .immediate();
  }

  /**
   * Insert attribute rows sorted by the index order (key, type, value), in
   * multi-row statements: neighbouring index inserts touch the same pages,
   * and there are fewer statement calls.
   */
  #insertAttributes(rows: AttributeInsert[]): void {
    rows.sort((x, y) =>
      x[1] < y[1]
        ? -1
        : x[1] > y[1]
          ? 1
          : x[2] < y[2]
            ? -1
            : x[2] > y[2]
              ? 1
              : x[3] < y[3]
                ? -1
                : x[3] > y[3]
                  ? 1
                  : x[0] - y[0],
    );
    let i = 0;
    if (rows.length >= MULTI_ROWS) {
      this.#multiInsert ??= this.#db.prepare(
        `INSERT INTO attributes (seq, key, type, value, private) VALUES ${Array(MULTI_ROWS).fill('(?, ?, ?, ?, ?)').join(', ')}`,
      );
      const params: unknown[] = new Array(MULTI_ROWS * 5);
      for (; i + MULTI_ROWS <= rows.length; i += MULTI_ROWS) {
        for (let j = 0; j < MULTI_ROWS; j++) {
          const r = rows[i + j]!;
          params[j * 5] = r[0];
          params[j * 5 + 1] = r[1];
          params[j * 5 + 2] = r[2];
          params[j * 5 + 3] = r[3];
          params[j * 5 + 4] = r[4];
        }
        this.#multiInsert.run(params);
      }
    }
    for (; i < rows.length; i++) this.#stmt.insertAttribute.run(...rows[i]!);
  }

  #prepareRegistration(reg: PointRegistration, label: string): PreparedRegistration {
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

  #insert(p: PreparedRegistration, index: number, rows: AttributeInsert[]): string {
    const now = Date.now();
    let seq: number;
    try {
      seq = Number(
        this.#stmt.insertPoint.run(p.name, p.owner, p.role, p.recordJson, attributesJson(p.attributes), now, now)
          .lastInsertRowid,
      );
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `point ${JSON.stringify(p.name)} is already registered`, {
          cause: err,
          details: { name: p.name, index },
        });
      }
      throw err;
    }
    for (const [k, a] of p.attributes) rows.push(attributeRow(seq, k, a));
    return `${this.#id}.${seq}`;
  }

  #writeAttribute(seq: number, key: string, a: StoredAttribute): void {
    this.#stmt.upsertAttribute.run(...attributeRow(seq, key, a));
  }

  /**
   * Change a point's record and/or attributes (merged; `null` removes a key).
   * Only the owner or the administrator may: `AMIX_ERR_NOT_OWNER`. Returns
   * the point as the asker now sees it.
   */
  updatePoint(nameOrId: string, update: PointUpdate, options: { as: Principal }): PointView {
    this.#open();
    checkPrincipal(options?.as);
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
    const as = options.as;
    const stored = this.#db
      .transaction(() => {
        const point = this.#loadForWrite(nameOrId, as, 'change');
        const now = Date.now();
        const attributes = new Map(point.attributes);
        for (const [k, a] of changes) {
          if (a === null) {
            attributes.delete(k);
            this.#stmt.deleteAttribute.run(point.seq, k);
          } else {
            attributes.set(k, a);
            this.#writeAttribute(point.seq, k, a);
          }
        }
        const role =
          recordJson === undefined ? (JSON.parse(point.recordJson) as PointRecord).role : update.record!.role;
        this.#stmt.updatePoint.run(
          recordJson ?? point.recordJson,
          role,
          attributesJson([...attributes]),
          now,
          point.seq,
        );
        this.#invalidate(point);
        return this.#readStored(point.seq)!;
      })
      .immediate();
    return this.#view(stored, as);
  }

  /** Set (or, with `null`, remove) attributes of a point: {@link Directory.updatePoint} with attributes only. */
  setAttributes(
    nameOrId: string,
    attributes: Readonly<Record<string, AttributeInput | null>>,
    options: { as: Principal },
  ): PointView {
    return this.updatePoint(nameOrId, { attributes }, options);
  }

  /** Delete a point. Only the owner or the administrator may (`AMIX_ERR_NOT_OWNER`); `AMIX_ERR_UNKNOWN_POINT` when there is none. Its identifier is never reused. */
  deletePoint(nameOrId: string, options: { as: Principal }): void {
    this.#open();
    checkPrincipal(options?.as);
    const as = options.as;
    this.#db
      .transaction(() => {
        const point = this.#loadForWrite(nameOrId, as, 'delete');
        this.#stmt.deleteAttributes.run(point.seq);
        this.#stmt.deletePoint.run(point.seq);
        this.#invalidate(point);
      })
      .immediate();
  }

  #loadForWrite(nameOrId: string, as: Principal, verb: string): StoredPoint {
    const point = this.#lookup(nameOrId, false);
    if (!point)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point ${describe(nameOrId)} in directory ${this.#id}`, {
        details: { point: String(nameOrId) },
      });
    if (!as.admin && as.owner !== point.owner) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_NOT_OWNER,
        `only the owner of point ${JSON.stringify(point.name)} or the administrator may ${verb} it`,
        {
          details: { point: point.name, owner: as.owner },
        },
      );
    }
    return point;
  }

  #invalidate(point: StoredPoint): void {
    this.#cache.delete(`n:${point.name}`);
    this.#cache.delete(`s:${point.seq}`);
  }

  // -------------------------------------------------------------------------
  // Points: reads

  #readStored(seq: number): StoredPoint | undefined {
    const row = this.#stmt.pointBySeq.get(seq);
    return row && this.#fromRow(row);
  }

  #fromRow(row: PointRow): StoredPoint {
    const attributes = new Map<string, StoredAttribute>();
    const json = JSON.parse(row.attributes) as Record<string, [AttributeValue, 0 | 1]>;
    for (const k of Object.keys(json)) {
      const [value, priv] = json[k]!;
      attributes.set(k, { value, private: priv === 1 });
    }
    return {
      seq: row.seq,
      name: row.name,
      owner: row.owner,
      recordJson: row.record,
      attributes,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** Find a local point through the cache; `useCache` false reads the database (inside write transactions). */
  #lookup(nameOrId: string, useCache = true): StoredPoint | undefined {
    if (typeof nameOrId !== 'string' || nameOrId === '')
      throw invalidArg('nameOrId', 'must be a non-empty string', nameOrId);
    const parsed = parsePointId(nameOrId);
    if (parsed && parsed.directoryId !== this.#id) return undefined;
    const key = parsed ? `s:${parsed.seq}` : `n:${nameOrId}`;
    if (useCache) {
      // Another connection (a second process, a tool) may have written: drop the cache if so.
      const version = this.#stmt.dataVersion.get()!.data_version;
      if (version !== this.#dataVersion) {
        this.#dataVersion = version;
        this.#cache.clear();
      }
      const hit = this.#cache.get(key);
      if (hit) return hit;
    }
    const row = parsed ? this.#stmt.pointBySeq.get(parsed.seq) : this.#stmt.pointByName.get(nameOrId);
    if (!row) return undefined;
    const stored = this.#fromRow(row);
    if (useCache) {
      this.#cache.set(`n:${stored.name}`, stored);
      this.#cache.set(`s:${stored.seq}`, stored);
    }
    return stored;
  }

  #view(p: StoredPoint, as: Principal | undefined): PointView {
    const seesPrivate = as !== undefined && (as.admin === true || as.owner === p.owner);
    const attributes: Record<string, Attribute> = {};
    for (const [k, a] of p.attributes) {
      if (a.private && !seesPrivate) continue;
      attributes[k] = { value: a.value, visibility: a.private ? 'private' : 'public' };
    }
    return {
      id: `${this.#id}.${p.seq}`,
      name: p.name,
      owner: p.owner,
      directoryId: this.#id,
      record: JSON.parse(p.recordJson) as PointRecord,
      attributes,
      createdAt: p.createdAt,
      updatedAt: p.updatedAt,
    };
  }

  /** A view straight from a query row, without the cache's intermediate form. */
  #viewFromRow(row: PointRow, as: Principal | undefined): PointView {
    const seesPrivate = as !== undefined && (as.admin === true || as.owner === row.owner);
    const json = JSON.parse(row.attributes) as Record<string, [AttributeValue, 0 | 1]>;
    const attributes: Record<string, Attribute> = {};
    for (const k of Object.keys(json)) {
      const [value, priv] = json[k]!;
      if (priv === 1 && !seesPrivate) continue;
      attributes[k] = { value, visibility: priv === 1 ? 'private' : 'public' };
    }
    return {
      id: `${this.#id}.${row.seq}`,
      name: row.name,
      owner: row.owner,
      directoryId: this.#id,
      record: JSON.parse(row.record) as PointRecord,
      attributes,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /**
   * A point of this directory by name or identifier, as `options.as` sees it
   * (private attributes only for its owner and the administrator), or
   * undefined. Served from an LRU cache that every change invalidates. Does
   * not ask peers: see {@link Directory.resolve}.
   */
  getPoint(nameOrId: string, options: { as?: Principal } = {}): PointView | undefined {
    this.#open();
    if (options.as !== undefined) checkPrincipal(options.as);
    const p = this.#lookup(nameOrId);
    return p && this.#view(p, options.as);
  }

  /**
   * Resolve a name or identifier: locally first, then through the peers
   * (in the order added, first answer wins) when this directory does not
   * hold it. Resolves undefined when nobody does.
   */
  async resolve(nameOrId: string, options: ResolveOptions = {}): Promise<PointView | undefined> {
    this.#open();
    const visited = options.visited ?? [];
    if (visited.includes(this.#id)) return undefined;
    const local = this.getPoint(nameOrId, options.as === undefined ? {} : { as: options.as });
    if (local) return local;
    // One of our own identifiers that we do not hold was deleted: nobody else has it.
    if (parsePointId(nameOrId)?.directoryId === this.#id) return undefined;
    const hops = options.hops ?? this.#maxHops;
    if (hops <= 0) return undefined;
    const forward: ResolveOptions = { ...options, hops: hops - 1, visited: [...visited, this.#id] };
    for (const peer of this.#peers) {
      if (peer.id !== undefined && forward.visited!.includes(peer.id)) continue;
      try {
        const found = await peer.resolve(nameOrId, forward);
        if (found) return found;
      } catch (err) {
        this.#onPeerError?.(err, peer);
      }
    }
    return undefined;
  }

  /**
   * Run a query on this directory only: matches in identifier order, one
   * page. `AMIX_ERR_QUERY_SYNTAX` (with `details.column`) when it does not
   * parse. Private attributes the asker may not see are neither matched nor
   * shown.
   */
  queryLocal(expr: string | QueryNode, options: QueryOptions = {}): QueryResult {
    this.#open();
    if (options.as !== undefined) checkPrincipal(options.as);
    const { limit, offset } = checkPaging(options);
    const ast = typeof expr === 'string' ? parseQuery(expr) : expr;
    return this.#run(ast, options.as, limit, offset, checkPlan(options.plan));
  }

  #statement(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Choose which attribute leaves drive the query through the attribute
   * index; the rest become per-point filters. A page of `want` points among
   * `n` costs about `m` index steps when driven by a leaf matching `m`
   * points (each about 4x the cost of a probe: an ephemeral b-tree insert),
   * and about `want * n / m` primary-key probes when scanning points in
   * order with filters; the two meet near `m = sqrt(want * n / 4)`. So count
   * each candidate leaf's matches up to that cap (an index range scan that
   * stops at the cap) and drive by the most selective one when it is under it.
   */
  #plan(ast: QueryNode, want: number): Set<QueryNode> {
    const n = this.#stmt.maxSeq.get()?.seq ?? 0;
    const cap = Math.max(SURE_DRIVER, Math.min(20_000, Math.round(Math.sqrt((want * n) / 4))));
    const drivers = new Set<QueryNode>();
    if (n <= cap) return new Set(leaves(ast));
    const memo = new Map<QueryNode, number>();
    const estimate = (node: QueryNode): number => {
      let e = memo.get(node);
      if (e !== undefined) return e;
      if (isAttributeLeaf(node)) {
        if (node.kind === 'compare' && node.op === '!=') e = Infinity;
        else {
          const cond = attributeCondition(node as QueryLeaf);
          const key = `${cap}\u0000${cond.where}\u0000${JSON.stringify(cond.params)}`;
          let count = this.#estimates.get(key);
          if (count === undefined) {
            const stmt = this.#statement(
              `SELECT count(*) AS n FROM (SELECT 1 FROM attributes a WHERE ${cond.where} LIMIT ?)`,
            );
            count = (stmt.get(...cond.params, cap) as { n: number }).n;
            this.#estimates.set(key, count);
          }
          e = count >= cap ? Infinity : count;
        }
      } else if (node.kind === 'compare') {
        e =
          (node.attribute === 'name' || node.attribute === 'id') &&
          node.op === '=' &&
          !(node.value.type === 'string' && node.value.wildcards)
            ? 1
            : Infinity;
      } else if (node.kind === 'and') {
        // Counting costs up to `cap` index steps: stop at a child that surely drives.
        e = Infinity;
        for (const o of node.operands) {
          e = Math.min(e, estimate(o));
          if (e <= SURE_DRIVER) break;
        }
      } else if (node.kind === 'or') e = node.operands.reduce((sum, o) => sum + estimate(o), 0);
      else e = Infinity;
      memo.set(node, e);
      return e;
    };
    const collect = (node: QueryNode): void => {
      if (isAttributeLeaf(node)) drivers.add(node);
      else if (node.kind === 'or') node.operands.forEach(collect);
      else if (node.kind === 'and') {
        let best = node.operands[0]!;
        for (const o of node.operands) if ((memo.get(o) ?? Infinity) < (memo.get(best) ?? Infinity)) best = o;
        collect(best);
      }
    };
    if (estimate(ast) < cap) collect(ast);
    return drivers;
  }

  #run(
    parsed: QueryNode,
    as: Principal | undefined,
    limit: number,
    offset: number,
    plan: 'auto' | 'index' | 'scan' = 'auto',
  ): QueryResult {
    const ast = optimizeQuery(parsed);
    const drivers =
      plan === 'auto'
        ? this.#plan(ast, offset + limit + 1)
        : plan === 'index'
          ? new Set(leaves(ast))
          : new Set<QueryNode>();
    const { where, params } = compileQuery(ast, this.#id, as, { drivers });
    const sql = `SELECT ${POINT_COLUMNS} FROM points p WHERE ${where} ORDER BY p.seq LIMIT ? OFFSET ?`;
    const rows = this.#statement(sql).all(...params, limit + 1, offset) as PointRow[];
    const more = rows.length > limit;
    if (more) rows.pop();
    return { points: rows.map((r) => this.#viewFromRow(r, as)), more };
  }

  /**
   * Query this directory and its peers; the pages are merged in identifier
   * order (directory id, then sequence), so paging is stable across
   * directories. Without peers it is {@link Directory.queryLocal}.
   */
  async query(expr: string, options: QueryOptions = {}): Promise<QueryResult> {
    this.#open();
    if (options.as !== undefined) checkPrincipal(options.as);
    const { limit, offset } = checkPaging(options);
    const ast = parseQuery(expr);
    const visited = options.visited ?? [];
    if (visited.includes(this.#id)) return { points: [], more: false };
    const hops = options.hops ?? this.#maxHops;
    const peers =
      hops > 0
        ? [...this.#peers].filter((p) => p.id === undefined || (p.id !== this.#id && !visited.includes(p.id)))
        : [];
    const plan = checkPlan(options.plan);
    if (peers.length === 0) return this.#run(ast, options.as, limit, offset, plan);

    // Each source returns its first offset+limit matches; merging those in
    // identifier order and cutting the page gives the same page a single
    // directory holding everything would.
    const want = Math.min(offset + limit, MAX_LIMIT);
    const local = this.#run(ast, options.as, want, 0, plan);
    const { plan: _plan, ...rest } = options;
    const forward: QueryOptions = { ...rest, limit: want, offset: 0, hops: hops - 1, visited: [...visited, this.#id] };
    const answers = await Promise.all(
      peers.map(async (peer) => {
        try {
          return await peer.query(expr, forward);
        } catch (err) {
          this.#onPeerError?.(err, peer);
          return { points: [], more: false };
        }
      }),
    );
    const seen = new Set<string>();
    const merged: PointView[] = [];
    for (const page of [local, ...answers]) {
      for (const p of page.points) {
        if (seen.has(p.id)) continue;
        seen.add(p.id);
        merged.push(p);
      }
    }
    merged.sort((a, b) => comparePointIds(a.id, b.id));
    const more = merged.length > offset + limit || local.more || answers.some((a) => a.more);
    return { points: merged.slice(offset, offset + limit), more };
  }

  // -------------------------------------------------------------------------
  // Federation and lifecycle

  /** Add a peer directory that lookups and queries are forwarded to. Adding itself is refused. */
  addPeer(peer: DirectoryPeer): void {
    this.#open();
    if (
      peer === null ||
      typeof peer !== 'object' ||
      typeof peer.resolve !== 'function' ||
      typeof peer.query !== 'function'
    ) {
      throw invalidArg('peer', 'must have async resolve(nameOrId, options) and query(expr, options) methods', peer);
    }
    if (peer === this || peer.id === this.#id) throw invalidArg('peer', 'must not be this directory itself');
    this.#peers.add(peer);
  }

  /** Stop forwarding to a peer. True when it was a peer. */
  removePeer(peer: DirectoryPeer): boolean {
    return this.#peers.delete(peer);
  }

  /** Close the database. Idempotent; later calls fail with `AMIX_ERR_CLOSED`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#peers.clear();
    this.#cache.clear();
    this.#statements.clear();
    this.#estimates.clear();
    this.#db.close();
  }

  /** Same as {@link Directory.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
