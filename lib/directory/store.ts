/**
 * The directory's SQLite store (better-sqlite3, WAL): opening the database
 * with its pragmas and migrations, the directory id, every statement, the
 * attribute index inserts, and the LRU cache of resolved points that a write
 * by another connection invalidates.
 *
 * better-sqlite3 is a native addon: it is loaded when the first store opens,
 * not when the directory modules are imported, so `import 'amix'` does not
 * pay for it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { checkPrivateStat } from '../core/paths.js';
import type { PrimitiveRegistration } from '../core/registry.js';
import { parsePointId } from './ids.js';
import { MIGRATIONS, migrate } from './schema.js';
import {
  DIRECTORY_FILE,
  type Attribute,
  type AttributeValue,
  type DirectoryOptions,
  type PointRecord,
  type PointView,
  type Principal,
} from './types.js';
import type { PreparedRegistration, StoredAttribute } from './validate.js';

let sqlite: typeof Database | undefined;

/** The better-sqlite3 constructor, required on first use (a CommonJS package: `createRequire` keeps opening synchronous). */
function loadSqlite(): typeof Database {
  sqlite ??= createRequire(import.meta.url)('better-sqlite3') as typeof Database;
  return sqlite;
}

/** A point as cached: every attribute, with its visibility. */
export interface StoredPoint {
  seq: number;
  name: string;
  owner: string;
  recordJson: string;
  attributes: Map<string, StoredAttribute>;
  createdAt: number;
  updatedAt: number;
}

/** A row of `points` as the statements select it ({@link POINT_COLUMNS}). */
export interface PointRow {
  seq: number;
  name: string;
  owner: string;
  record: string;
  attributes: string;
  created_at: number;
  updated_at: number;
}

/** Attribute rows per multi-row insert statement (5 parameters each). */
const MULTI_ROWS = 64;

/** seq, key, type, value (booleans as 0/1), private. */
type AttributeInsert = [number, string, string, string | number, 0 | 1];

function attributeRow(seq: number, key: string, a: StoredAttribute): AttributeInsert {
  const v = a.value;
  return [seq, key, typeof v, typeof v === 'boolean' ? (v ? 1 : 0) : v, a.private ? 1 : 0];
}

/** The columns of `points` every point read selects, in {@link PointRow} order. */
export const POINT_COLUMNS = 'seq, name, owner, record, attributes, created_at, updated_at';

function attributesJson(attributes: ReadonlyArray<[string, StoredAttribute]>): string {
  const out: Record<string, [AttributeValue, 0 | 1]> = {};
  for (const [k, a] of attributes) out[k] = [a.value, a.private ? 1 : 0];
  return JSON.stringify(out);
}

function fromRow(row: PointRow): StoredPoint {
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

/** lstat `path`, or undefined when nothing is there. */
function lstatOrNone(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The database file of `options` (`path`, or `directory.db` in `stateDir`,
 * created 0700), created 0600 before SQLite opens it. `:memory:` as is.
 *
 * Nothing is trusted that someone else could have planted: the state
 * directory (when given) must be ours and 0700, and the database and its
 * `-wal`, `-shm` and `-journal` files, where they exist, regular files,
 * ours, 0600 and no symlinks; anything else is `AMIX_ERR_UNSAFE_DIR`, never
 * repaired. A new database file is made with `O_CREAT | O_EXCL | O_NOFOLLOW`.
 * (SQLite opens by path after these checks; in a directory only we may
 * write, nobody can swap the file in between.)
 */
export function databasePath(options: DirectoryOptions): string {
  let path = options.path;
  if (path === undefined) {
    if (typeof options.stateDir !== 'string' || options.stateDir === '')
      throw invalidArg('options.stateDir', 'must be a directory path when options.path is not given', options.stateDir);
    mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    checkPrivateStat(options.stateDir, lstatSync(options.stateDir), 'directory');
    path = join(options.stateDir, DIRECTORY_FILE);
  }
  if (typeof path !== 'string' || path === '')
    throw invalidArg('options.path', 'must be a file path or ":memory:"', path);
  if (path !== ':memory:') {
    for (const f of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
      const st = lstatOrNone(f);
      if (st) checkPrivateStat(f, st, 'file');
    }
    if (!lstatOrNone(path)) {
      // Create the file 0600 before SQLite does; its -wal and -shm files copy its mode.
      const fd = openSync(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        checkPrivateStat(path, fstatSync(fd), 'file');
      } finally {
        closeSync(fd);
      }
    }
  }
  return path;
}

/**
 * One open directory database. Write methods expect to run inside
 * {@link DirectoryStore.transaction}; the caller checked its input.
 */
export class DirectoryStore {
  /** The directory id, created on first open and kept in `meta`. */
  readonly id: string;
  readonly #db: Database.Database;
  readonly #cache: LRUCache<string, StoredPoint>;
  readonly #statements = new LRUCache<string, Database.Statement>({ max: 256 });
  #dataVersion: number;
  #multiInsert: Database.Statement | undefined;
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
    anyPoint: Database.Statement<[], unknown>;
  };

  /** Open (creating if needed) the database at `path`, run pending migrations, and create the directory id on first open. */
  constructor(path: string, synchronous: 'full' | 'normal', cacheSize: number, replicaOf?: string) {
    const Sqlite = loadSqlite();
    this.#db = new Sqlite(path);
    try {
      // 16 KiB pages: the attribute index takes random inserts, and bigger
      // pages cut its splits and depth (+35 % register rate measured over 4 KiB).
      // Only a new database takes it; an existing one keeps its page size.
      this.#db.pragma('page_size = 16384');
      if (path !== ':memory:') this.#db.pragma('journal_mode = WAL');
      this.#db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      this.#db.pragma('busy_timeout = 5000');
      // The attribute index takes random inserts: with SQLite's default 2 MB
      // page cache, registering beyond ~50k points thrashes it.
      this.#db.pragma('cache_size = -65536');
      migrate(this.#db, MIGRATIONS);
      this.id = this.transaction(() => {
        const row = this.#db.prepare("SELECT value FROM meta WHERE key = 'directory_id'").get() as
          { value: string } | undefined;
        if (row) return row.value;
        const id = replicaOf ?? randomBytes(8).toString('hex');
        this.#db.prepare("INSERT INTO meta (key, value) VALUES ('directory_id', ?)").run(id);
        return id;
      });
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
      anyPoint: db.prepare('SELECT 1 FROM points LIMIT 1').pluck(),
    };
    this.#dataVersion = this.#stmt.dataVersion.get()!.data_version;
    this.#cache = new LRUCache({ max: cacheSize });
  }

  /** The schema version recorded in the database. */
  get schemaVersion(): number {
    return this.#db.pragma('user_version', { simple: true }) as number;
  }

  /** Run `fn` in an immediate (write-locking) transaction: all or nothing. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  /** A prepared statement for `sql`, kept in a small LRU (query shapes repeat; values are parameters). */
  statement(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /** How many points the directory holds. */
  countPoints(): number {
    return (this.statement('SELECT count(*) AS n FROM points').get() as { n: number }).n;
  }

  /** Every point's sequence number, in order. */
  allSeqs(): number[] {
    return (this.statement('SELECT seq FROM points ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq);
  }

  /** True when the directory holds no point. */
  isEmpty(): boolean {
    return this.#stmt.anyPoint.get() === undefined;
  }

  /** The highest sequence number ever handed out (0 for a new directory). */
  maxSeq(): number {
    return this.#stmt.maxSeq.get()?.seq ?? 0;
  }

  // -------------------------------------------------------------------------
  // Primitives

  /** Insert a primitive registration; false when the name is taken. */
  insertPrimitive(registration: PrimitiveRegistration): boolean {
    const info = this.#db
      .prepare('INSERT OR IGNORE INTO primitives (name, location, characteristics, created_at) VALUES (?, ?, ?, ?)')
      .run(registration.name, registration.location, JSON.stringify(registration.characteristics), Date.now());
    return info.changes !== 0;
  }

  /** Delete a primitive registration; false when there was none. */
  deletePrimitive(name: string): boolean {
    return this.#db.prepare('DELETE FROM primitives WHERE name = ?').run(name).changes !== 0;
  }

  /** One primitive registration, or undefined. */
  getPrimitive(name: string): PrimitiveRegistration | undefined {
    const row = this.#db.prepare('SELECT name, location, characteristics FROM primitives WHERE name = ?').get(name) as
      { name: string; location: string; characteristics: string } | undefined;
    return row && { name: row.name, location: row.location, characteristics: JSON.parse(row.characteristics) };
  }

  /** Every primitive registration, by name. */
  listPrimitives(): PrimitiveRegistration[] {
    const rows = this.#db
      .prepare('SELECT name, location, characteristics FROM primitives ORDER BY name')
      .all() as Array<{ name: string; location: string; characteristics: string }>;
    return rows.map((r) => ({ name: r.name, location: r.location, characteristics: JSON.parse(r.characteristics) }));
  }

  // -------------------------------------------------------------------------
  // Points: writes (inside a transaction)

  /**
   * Insert checked registrations in order and their attributes; returns the
   * new identifiers. `AMIX_ERR_DUPLICATE` (`details.index`) when a name is taken.
   */
  insertPoints(prepared: readonly PreparedRegistration[]): string[] {
    const rows: AttributeInsert[] = [];
    const ids = prepared.map((p, i) => this.#insert(p, i, rows));
    this.#insertAttributes(rows);
    return ids;
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
    return `${this.id}.${seq}`;
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

  /**
   * Apply attribute changes (`null` removes) and a record to a stored point,
   * drop it from the cache, and return it as now stored.
   */
  updatePoint(
    point: StoredPoint,
    recordJson: string,
    role: string,
    changes: ReadonlyArray<[string, StoredAttribute | null]>,
  ): StoredPoint {
    const now = Date.now();
    const attributes = new Map(point.attributes);
    for (const [k, a] of changes) {
      if (a === null) {
        attributes.delete(k);
        this.#stmt.deleteAttribute.run(point.seq, k);
      } else {
        attributes.set(k, a);
        this.#stmt.upsertAttribute.run(...attributeRow(point.seq, k, a));
      }
    }
    this.#stmt.updatePoint.run(recordJson, role, attributesJson([...attributes]), now, point.seq);
    this.#invalidate(point);
    return this.#readStored(point.seq)!;
  }

  /**
   * A replica's write: the point at sequence `seq` becomes `p` (inserted, or
   * replacing what was there), and a point of the same name at another
   * sequence (deleted at the source, its name taken again) goes first.
   */
  replacePoint(seq: number, p: PreparedRegistration, createdAt: number, updatedAt: number): void {
    for (const old of [this.lookup(`${this.id}.${seq}`, false), this.lookup(p.name, false)])
      if (old) this.deletePoint(old);
    this.#replace ??= this.#db.prepare(
      'INSERT INTO points (seq, name, owner, role, record, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#replace.run(seq, p.name, p.owner, p.role, p.recordJson, attributesJson(p.attributes), createdAt, updatedAt);
    const rows: AttributeInsert[] = [];
    for (const [k, a] of p.attributes) rows.push(attributeRow(seq, k, a));
    this.#insertAttributes(rows);
  }

  #replace: Database.Statement | undefined;

  /** Delete a stored point and its attribute rows, and drop it from the cache. */
  deletePoint(point: StoredPoint): void {
    this.#stmt.deleteAttributes.run(point.seq);
    this.#stmt.deletePoint.run(point.seq);
    this.#invalidate(point);
  }

  #invalidate(point: StoredPoint): void {
    this.#cache.delete(`n:${point.name}`);
    this.#cache.delete(`s:${point.seq}`);
  }

  // -------------------------------------------------------------------------
  // Points: reads

  #readStored(seq: number): StoredPoint | undefined {
    const row = this.#stmt.pointBySeq.get(seq);
    return row && fromRow(row);
  }

  /** Find a local point through the cache; `useCache` false reads the database (inside write transactions). */
  lookup(nameOrId: string, useCache = true): StoredPoint | undefined {
    if (typeof nameOrId !== 'string' || nameOrId === '')
      throw invalidArg('nameOrId', 'must be a non-empty string', nameOrId);
    const parsed = parsePointId(nameOrId);
    if (parsed && parsed.directoryId !== this.id) return undefined;
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
    const stored = fromRow(row);
    if (useCache) {
      this.#cache.set(`n:${stored.name}`, stored);
      this.#cache.set(`s:${stored.seq}`, stored);
    }
    return stored;
  }

  /** A stored point as `as` sees it: private attributes only for its owner and the administrator. */
  view(p: StoredPoint, as: Principal | undefined): PointView {
    const seesPrivate = as !== undefined && (as.admin === true || as.owner === p.owner);
    const attributes: Record<string, Attribute> = {};
    for (const [k, a] of p.attributes) {
      if (a.private && !seesPrivate) continue;
      attributes[k] = { value: a.value, visibility: a.private ? 'private' : 'public' };
    }
    return {
      id: `${this.id}.${p.seq}`,
      name: p.name,
      owner: p.owner,
      directoryId: this.id,
      record: JSON.parse(p.recordJson) as PointRecord,
      attributes,
      createdAt: p.createdAt,
      updatedAt: p.updatedAt,
    };
  }

  /** A view straight from a query row, without the cache's intermediate form. */
  viewFromRow(row: PointRow, as: Principal | undefined): PointView {
    const seesPrivate = as !== undefined && (as.admin === true || as.owner === row.owner);
    const json = JSON.parse(row.attributes) as Record<string, [AttributeValue, 0 | 1]>;
    const attributes: Record<string, Attribute> = {};
    for (const k of Object.keys(json)) {
      const [value, priv] = json[k]!;
      if (priv === 1 && !seesPrivate) continue;
      attributes[k] = { value, visibility: priv === 1 ? 'private' : 'public' };
    }
    return {
      id: `${this.id}.${row.seq}`,
      name: row.name,
      owner: row.owner,
      directoryId: this.id,
      record: JSON.parse(row.record) as PointRecord,
      attributes,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** Drop the caches and close the database. */
  close(): void {
    this.#cache.clear();
    this.#statements.clear();
    this.#db.close();
  }
}
