/**
 * The directory's SQLite schema as an ordered list of migrations. The
 * database's `PRAGMA user_version` is the number of the last migration
 * applied; `schema_migrations` records when each one ran. A migration runs
 * once, inside the same transaction as its version bump, so a crash leaves
 * the schema at one version or the next, never between.
 *
 * Append new migrations to {@link MIGRATIONS}; never edit a released one.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { AmixError, ErrorCode } from '../core/errors.js';

/** One schema step. */
export interface Migration {
  /** 1, 2, 3, ... in order, without gaps. */
  readonly version: number;
  /** One line saying what it changes. */
  readonly description: string;
  /** SQL run by `db.exec`, or a function given the database. */
  readonly up: string | ((db: Database.Database) => void);
}

/** The directory schema, version by version. */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    description: 'meta, primitives, points, attributes with an equality index',
    up: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE primitives (
        name            TEXT PRIMARY KEY,
        location        TEXT NOT NULL,
        characteristics TEXT NOT NULL,
        created_at      INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- AUTOINCREMENT: a deleted point's sequence number is never handed out again.
      CREATE TABLE points (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        owner      TEXT NOT NULL,
        role       TEXT NOT NULL,
        record     TEXT NOT NULL,
        -- every attribute as JSON {key: [value, private 0|1]}: a point reads in
        -- one row; the attributes table below is its index for queries.
        attributes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX points_owner ON points (owner);
      -- seq is points.seq; rows are deleted with their point, in the same
      -- transaction (no foreign key: its per-row parent lookup halves the
      -- register rate). value has no declared type (BLOB affinity) so SQLite keeps each value's
      -- own storage class: a string "123" stays text, a number stays numeric.
      CREATE TABLE attributes (
        seq     INTEGER NOT NULL,
        key     TEXT NOT NULL,
        type    TEXT NOT NULL CHECK (type IN ('string', 'number', 'boolean')),
        value   NOT NULL,
        private INTEGER NOT NULL CHECK (private IN (0, 1)),
        PRIMARY KEY (seq, key)
      ) WITHOUT ROWID;
      CREATE INDEX attributes_lookup ON attributes (key, type, value);
    `,
  },
]);

/** What {@link migrate} did. */
export interface MigrationReport {
  /** The version before. 0 for a new database. */
  readonly from: number;
  /** The version after. */
  readonly to: number;
  /** The versions applied by this call, in order. */
  readonly applied: readonly number[];
}

/**
 * Bring `db` up to the last of `migrations`, each in its own immediate
 * transaction together with its `user_version` bump and its
 * `schema_migrations` row. A database newer than the list is refused with
 * `AMIX_ERR_INVALID_ARG` (an older amix must not write to it).
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): MigrationReport {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new AmixError(
        ErrorCode.AMIX_ERR_INTERNAL,
        `migration ${i} has version ${m.version}; versions must be 1, 2, 3, ... in order`,
      );
  });
  const from = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.length;
  if (from > latest) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `directory database schema version ${from} is newer than this amix supports (${latest}); upgrade amix`,
      {
        details: { option: 'path', schemaVersion: from, supported: latest },
      },
    );
  }
  const applied: number[] = [];
  for (const m of migrations.slice(from)) {
    db.transaction(() => {
      // Re-read inside the write lock: another connection may have migrated meanwhile.
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now >= m.version) return;
      db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version     INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at  TEXT NOT NULL
      )`);
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.description,
        new Date().toISOString(),
      );
      db.pragma(`user_version = ${m.version}`);
      applied.push(m.version);
    }).immediate();
  }
  return { from, to: db.pragma('user_version', { simple: true }) as number, applied };
}
