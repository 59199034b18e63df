/**
 * The local replica of the cluster's registrations: one in-memory SQLite
 * directory per member daemon (`DirectoryOptions.replicaOf`), so a member's
 * points keep their identifiers `<memberId>.<seq>` and are queried by the
 * same planner and indexes as the daemon's own directory. Each replica is a
 * federation peer of the daemon's directory, so `query` and `resolve` are
 * answered locally, merged in identifier order. Only the replicas of
 * members known to be up are in the federation: a gone member's (or one
 * never seen alive: registrations outlive their daemon in the bucket) are
 * not offered until its heartbeat comes (back).
 *
 * Entries come off a KV watch and are untrusted: each is checked as a
 * registration is, and a bad one is counted and dropped.
 *
 * @module
 */
import { Directory, parsePointId, type PointView, type ReplicaPoint } from '../directory/index.js';

/** What the registrations bucket holds for one point (public record and attributes only). */
export interface RegistrationEntry {
  name: string;
  owner: string;
  record: ReplicaPoint['record'];
  attributes?: ReplicaPoint['attributes'];
  createdAt: number;
  updatedAt: number;
}

/** Counters of the replica, for `amix daemon status`. */
export interface ReplicaStats {
  /** Points held, all members. */
  points: number;
  /** Entries dropped as malformed. */
  badEntries: number;
  /** Entries applied. */
  applied: number;
}

/** The replicas of every other member, fed by {@link Replica.put} and {@link Replica.delete}. */
export class Replica {
  readonly #local: Directory;
  readonly #dirs = new Map<string, Directory>();
  /** Members known to be up: only their replicas are in the federation (a member never seen alive is not offered). */
  readonly #up = new Set<string>();
  /** Per member: puts and deletes not yet applied (applied together on the next turn: one transaction per burst). */
  readonly #queue = new Map<string, { puts: Map<number, ReplicaPoint>; deletes: Set<number> }>();
  #flushing = false;
  #closed = false;
  readonly stats: ReplicaStats = { points: 0, badEntries: 0, applied: 0 };
  readonly #log: (line: string) => void;

  /** The replica beside `local`, the daemon's own directory (its federation gets each member's replica). */
  constructor(local: Directory, log: (line: string) => void) {
    this.#local = local;
    this.#log = log;
  }

  #dir(member: string): Directory {
    let d = this.#dirs.get(member);
    if (!d) {
      d = new Directory({ path: ':memory:', replicaOf: member, cacheSize: 4096 });
      this.#dirs.set(member, d);
      if (this.#up.has(member)) this.#local.addPeer(d);
    }
    return d;
  }

  #slot(member: string): { puts: Map<number, ReplicaPoint>; deletes: Set<number> } {
    let q = this.#queue.get(member);
    if (!q) this.#queue.set(member, (q = { puts: new Map(), deletes: new Set() }));
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(() => this.#flush());
    }
    return q;
  }

  /** A member's point was put (registered or changed). `value` is the bucket's raw entry. */
  put(member: string, seq: number, value: unknown): void {
    if (this.#closed) return;
    const e = value as Partial<RegistrationEntry> | null;
    if (e === null || typeof e !== 'object' || typeof e.name !== 'string') {
      this.stats.badEntries++;
      return;
    }
    const q = this.#slot(member);
    q.deletes.delete(seq);
    q.puts.set(seq, {
      seq,
      name: e.name,
      owner: String(e.owner),
      record: e.record as ReplicaPoint['record'],
      ...(e.attributes !== undefined ? { attributes: e.attributes } : {}),
      createdAt: Number(e.createdAt),
      updatedAt: Number(e.updatedAt),
    });
  }

  /** A member's point was deleted. */
  delete(member: string, seq: number): void {
    if (this.#closed) return;
    const q = this.#slot(member);
    q.puts.delete(seq);
    q.deletes.add(seq);
  }

  /** Apply what came since the last turn, one transaction per member; a batch that fails is applied entry by entry. */
  #flush(): void {
    this.#flushing = false;
    if (this.#closed) return;
    for (const [member, q] of this.#queue) {
      const d = this.#dir(member);
      const puts = [...q.puts.values()];
      const deletes = [...q.deletes];
      try {
        d.applyReplica(puts, deletes);
        this.stats.applied += puts.length + deletes.length;
      } catch {
        for (const p of puts) {
          try {
            d.applyReplica([p]);
            this.stats.applied++;
          } catch (err) {
            this.stats.badEntries++;
            this.#log(`cluster: dropped the entry ${member}.${p.seq}: ${(err as Error).message}`);
          }
        }
        d.applyReplica([], deletes);
      }
    }
    this.#queue.clear();
    this.stats.points = [...this.#dirs.values()].reduce((n, d) => n + d.count(), 0);
  }

  /** Mark a member gone (out of the federation: its points are not offered) or up. Every member starts gone. */
  setGone(member: string, gone: boolean): void {
    if (gone !== this.#up.has(member)) return;
    const d = this.#dirs.get(member);
    if (gone) {
      this.#up.delete(member);
      if (d) this.#local.removePeer(d);
    } else {
      this.#up.add(member);
      if (d && !this.#closed) this.#local.addPeer(d);
    }
  }

  /** True when member `id` is not known to be up (gone, or never seen alive). */
  isGone(member: string): boolean {
    return !this.#up.has(member);
  }

  /** Forget everything a member had (it left the cluster, or its entries are being reloaded). */
  drop(member: string): void {
    const d = this.#dirs.get(member);
    if (!d) return;
    this.#local.removePeer(d);
    d.close();
    this.#dirs.delete(member);
  }

  /** A point of another member by name or identifier, with that member's id; gone members' too. */
  find(nameOrId: string): { view: PointView; member: string } | undefined {
    const id = parsePointId(nameOrId);
    if (id) {
      const view = this.#dirs.get(id.directoryId)?.getPoint(nameOrId);
      return view && { view, member: id.directoryId };
    }
    for (const [member, d] of this.#dirs) {
      const view = d.getPoint(nameOrId);
      if (view) return { view, member };
    }
    return undefined;
  }

  /** Points held per member. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.#dirs].map(([m, d]) => [m, d.count()]));
  }

  /** Close every replica and leave the federation. */
  close(): void {
    this.#closed = true;
    for (const member of [...this.#dirs.keys()]) if (!this.#local.closed) this.drop(member);
    for (const d of this.#dirs.values()) d.close();
    this.#dirs.clear();
  }
}
