/**
 * The directory's public data shapes: principals, point records and
 * registrations, attributes and their visibility, the views a reader gets,
 * and the options of the directory and its lookups and queries.
 *
 * @module
 */
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
  /** Find a point by name or identifier there (or further on, as `options` allows); undefined if none. */
  resolve(nameOrId: string, options?: ResolveOptions): Promise<PointView | undefined>;
  /** Run a query there (and further on). */
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
  /**
   * Make this database a replica of directory `replicaOf` (16 hex digits):
   * it takes that id on first open, and its points are put at the sequence
   * numbers they have there ({@link Directory.applyReplica}). Used by cluster
   * mode (`lib/cluster/`), one replica per member daemon.
   */
  readonly replicaOf?: string;
}

/** A point as a replica receives it from the directory that holds it (public attributes only). */
export interface ReplicaPoint {
  /** Its sequence number in the holding directory. */
  readonly seq: number;
  readonly name: string;
  readonly owner: string;
  readonly record: PointRecord;
  readonly attributes?: Readonly<Record<string, AttributeInput>>;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What changed in a directory, told to {@link Directory.onChange} listeners after the commit. */
export type DirectoryChange =
  { readonly op: 'put'; readonly id: string } | { readonly op: 'delete'; readonly id: string; readonly name: string };

/** The default file name of the directory database inside a state dir. */
export const DIRECTORY_FILE = 'directory.db';
