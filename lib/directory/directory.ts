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
 * This module is the facade: it checks input (`validate.ts`) and delegates
 * to the store (`store.ts`: SQL, cache), the planner (`planner.ts`) and the
 * peers (`federation.ts`).
 *
 * @module
 */
import { AmixError, ErrorCode, describe, invalidArg } from '../core/errors.js';
import { assertRegistration, type PrimitiveRegistration } from '../core/registry.js';
import { Federation, QUERY_PARSED } from './federation.js';
import { parsePointId } from './ids.js';
import { QueryPlanner } from './planner.js';
import { parseQuery, type QueryNode } from './query.js';
import { DirectoryStore, databasePath, type StoredPoint } from './store.js';
import type {
  AttributeInput,
  DirectoryChange,
  DirectoryOptions,
  DirectoryPeer,
  PointRecord,
  PointRegistration,
  PointUpdate,
  PointView,
  Principal,
  QueryOptions,
  QueryResult,
  ReplicaPoint,
  ResolveOptions,
} from './types.js';
import {
  MAX_LIMIT,
  checkDirectoryOptions,
  checkPaging,
  checkPeer,
  checkPlan,
  checkPrincipal,
  prepareRegistration,
  prepareUpdate,
} from './validate.js';

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
  readonly #store: DirectoryStore;
  readonly #path: string;
  readonly #planner: QueryPlanner;
  readonly #federation: Federation;
  readonly #listeners = new Set<(change: DirectoryChange) => void>();
  #closed = false;

  /**
   * Open (creating if needed) a directory database, run pending migrations,
   * and create the directory id on first open. better-sqlite3 is loaded at
   * the first open, not at import.
   */
  constructor(options: DirectoryOptions = {}) {
    const checked = checkDirectoryOptions(options);
    this.#path = databasePath(options);
    this.#store = new DirectoryStore(this.#path, checked.synchronous, checked.cacheSize, options.replicaOf);
    this.#planner = new QueryPlanner(this.#store);
    this.#federation = new Federation(this.#store.id, checked.maxHops, options.onPeerError);
  }

  /** This directory's own identifier: 16 hex digits, created on first open and kept. */
  get id(): string {
    return this.#store.id;
  }

  /** The database file (or `:memory:`). */
  get path(): string {
    return this.#path;
  }

  /** The schema version recorded in the database. */
  get schemaVersion(): number {
    this.#open();
    return this.#store.schemaVersion;
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
    if (!this.#store.insertPrimitive(registration)) {
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
    if (!this.#store.deletePrimitive(String(name)))
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_PRIMITIVE, `no primitive is registered as ${describe(name)}`, {
        details: { name: String(name) },
      });
  }

  /** One primitive registration, or undefined. */
  getPrimitive(name: string): PrimitiveRegistration | undefined {
    this.#open();
    return this.#store.getPrimitive(String(name));
  }

  /** Every primitive registration, by name. */
  listPrimitives(): PrimitiveRegistration[] {
    this.#open();
    return this.#store.listPrimitives();
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
    const prepared = prepareRegistration(registration, 'registration');
    const done = this.#store.transaction(() => ({ id: this.#store.insertPoints([prepared])[0]! }));
    this.#tell({ op: 'put', id: done.id });
    return done;
  }

  /**
   * Register many points in one transaction: all or none. Returns their
   * identifiers in order. A taken or repeated name fails the whole batch
   * with `AMIX_ERR_DUPLICATE` (`details.index` says which).
   */
  registerPoints(registrations: readonly PointRegistration[]): Array<{ id: string }> {
    this.#open();
    if (!Array.isArray(registrations)) throw invalidArg('registrations', 'must be an array', registrations);
    const prepared = registrations.map((r, i) => prepareRegistration(r, `registrations[${i}]`));
    const done = this.#store.transaction(() => this.#store.insertPoints(prepared).map((id) => ({ id })));
    for (const { id } of done) this.#tell({ op: 'put', id });
    return done;
  }

  /**
   * Change a point's record and/or attributes (merged; `null` removes a key).
   * Only the owner or the administrator may: `AMIX_ERR_NOT_OWNER`. Returns
   * the point as the asker now sees it.
   */
  updatePoint(nameOrId: string, update: PointUpdate, options: { as: Principal }): PointView {
    this.#open();
    checkPrincipal(options?.as);
    const { recordJson, changes } = prepareUpdate(update);
    const as = options.as;
    const stored = this.#store.transaction(() => {
      const point = this.#loadForWrite(nameOrId, as, 'change');
      const role = recordJson === undefined ? (JSON.parse(point.recordJson) as PointRecord).role : update.record!.role;
      return this.#store.updatePoint(point, recordJson ?? point.recordJson, role, changes);
    });
    this.#tell({ op: 'put', id: `${this.id}.${stored.seq}` });
    return this.#store.view(stored, as);
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
    const gone = this.#store.transaction(() => {
      const point = this.#loadForWrite(nameOrId, as, 'delete');
      this.#store.deletePoint(point);
      return point;
    });
    this.#tell({ op: 'delete', id: `${this.id}.${gone.seq}`, name: gone.name });
  }

  /**
   * Hear of every change after its commit: a point put (registered or
   * changed) or deleted. Returns the function that stops it. A listener's
   * throw is not the writer's problem: it is swallowed.
   */
  onChange(listener: (change: DirectoryChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #tell(change: DirectoryChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch {
        // A listener (the cluster's publisher) must not fail a committed write.
      }
    }
  }

  /**
   * A replica's writes (see `DirectoryOptions.replicaOf`), all in one
   * transaction: each of `points` put at its sequence number (checked as a
   * registration is: `AMIX_ERR_INVALID_ARG` fails the batch), each of
   * `deleted` (sequence numbers) removed.
   */
  applyReplica(points: readonly ReplicaPoint[], deleted: readonly number[] = []): void {
    this.#open();
    const prepared = points.map((p, i) => {
      if (!Number.isSafeInteger(p.seq) || p.seq < 1)
        throw invalidArg(`points[${i}].seq`, 'must be a positive integer', p.seq);
      const at = (v: unknown) => (Number.isSafeInteger(v) ? (v as number) : 0);
      return {
        seq: p.seq,
        reg: prepareRegistration(p, `points[${i}]`),
        createdAt: at(p.createdAt),
        updatedAt: at(p.updatedAt),
      };
    });
    this.#store.transaction(() => {
      for (const p of prepared) this.#store.replacePoint(p.seq, p.reg, p.createdAt, p.updatedAt);
      for (const seq of deleted) {
        const old = this.#store.lookup(`${this.id}.${seq}`, false);
        if (old) this.#store.deletePoint(old);
      }
    });
  }

  #loadForWrite(nameOrId: string, as: Principal, verb: string): StoredPoint {
    const point = this.#store.lookup(nameOrId, false);
    if (!point)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point ${describe(nameOrId)} in directory ${this.id}`, {
        details: { name: String(nameOrId) },
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

  // -------------------------------------------------------------------------
  // Points: reads

  /**
   * A point of this directory by name or identifier, as `options.as` sees it
   * (private attributes only for its owner and the administrator), or
   * undefined. Served from an LRU cache that every change invalidates. Does
   * not ask peers: see {@link Directory.resolve}.
   */
  getPoint(nameOrId: string, options: { as?: Principal } = {}): PointView | undefined {
    this.#open();
    if (options.as !== undefined) checkPrincipal(options.as);
    const p = this.#store.lookup(nameOrId);
    return p && this.#store.view(p, options.as);
  }

  /** How many points this directory holds (peers not counted). */
  count(): number {
    this.#open();
    return this.#store.countPoints();
  }

  /** The identifiers of every point this directory holds, in order. */
  ids(): string[] {
    this.#open();
    return this.#store.allSeqs().map((seq) => `${this.id}.${seq}`);
  }

  /**
   * Resolve a name or identifier: locally first, then through the peers
   * (in the order added, first answer wins) when this directory does not
   * hold it. Resolves undefined when nobody does.
   */
  async resolve(nameOrId: string, options: ResolveOptions = {}): Promise<PointView | undefined> {
    this.#open();
    const visited = options.visited ?? [];
    if (visited.includes(this.id)) return undefined;
    const local = this.getPoint(nameOrId, options.as === undefined ? {} : { as: options.as });
    if (local) return local;
    // One of our own identifiers that we do not hold was deleted: nobody else has it.
    if (parsePointId(nameOrId)?.directoryId === this.id) return undefined;
    return this.#federation.resolve(nameOrId, options, visited);
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
    return this.#planner.run(ast, options.as, limit, offset, checkPlan(options.plan));
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
    if (visited.includes(this.id)) return { points: [], more: false };
    const peers = this.#federation.targets(options.hops, visited);
    const plan = checkPlan(options.plan);
    if (peers.length === 0) return this.#planner.run(ast, options.as, limit, offset, plan);
    const want = Math.min(offset + limit, MAX_LIMIT);
    const local = this.#planner.run(ast, options.as, want, 0, plan);
    return this.#federation.query(peers, expr, ast, options, local, want, offset, limit);
  }

  /**
   * A query forwarded by an in-process directory, from its parsed `ast`
   * (see `QUERY_PARSED` in federation.ts): the answer {@link Directory.query}
   * would give, or undefined when this directory has peers to forward to.
   * @internal
   */
  [QUERY_PARSED](ast: QueryNode, options: QueryOptions): QueryResult | undefined {
    this.#open();
    const visited = options.visited ?? [];
    if (visited.includes(this.id)) return { points: [], more: false };
    if (this.#federation.targets(options.hops, visited).length > 0) return undefined;
    if (options.as !== undefined) checkPrincipal(options.as);
    const { limit, offset } = checkPaging(options);
    return this.#planner.run(ast, options.as, limit, offset, checkPlan(options.plan));
  }

  // -------------------------------------------------------------------------
  // Federation and lifecycle

  /** Add a peer directory that lookups and queries are forwarded to. Adding itself is refused. */
  addPeer(peer: DirectoryPeer): void {
    this.#open();
    checkPeer(peer);
    if (peer === this || peer.id === this.id) throw invalidArg('peer', 'must not be this directory itself');
    this.#federation.add(peer);
  }

  /** Stop forwarding to a peer. True when it was a peer. */
  removePeer(peer: DirectoryPeer): boolean {
    return this.#federation.remove(peer);
  }

  /** Close the database. Idempotent; later calls fail with `AMIX_ERR_CLOSED`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#federation.clear();
    this.#listeners.clear();
    this.#planner.clear();
    this.#store.close();
  }

  /** Same as {@link Directory.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
