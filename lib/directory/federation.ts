/**
 * Federation: the peer directories a directory forwards lookups and queries
 * to, with a hop budget and the list of directories already asked (so a
 * request never loops), and the merge of their pages in identifier order.
 * A failing peer is reported and skipped.
 *
 * @module
 */
import { comparePointIds } from './ids.js';
import type { QueryNode } from './query.js';
import type { DirectoryPeer, PointView, QueryOptions, QueryResult, ResolveOptions } from './types.js';

/**
 * The method by which an in-process peer (a {@link Directory} with no peers
 * of its own: a cluster's member replica) answers a forwarded query from the
 * already parsed expression, synchronously: no second parse and no promise
 * hop per peer. It returns undefined when it would forward further (it has
 * peers of its own); the caller then asks it through `query` as any peer.
 */
export const QUERY_PARSED = Symbol('amix.directory.queryParsed');

/** A peer that can answer a forwarded query from its parsed expression (see {@link QUERY_PARSED}). */
interface ParsedQueryPeer {
  [QUERY_PARSED](ast: QueryNode, options: QueryOptions): QueryResult | undefined;
}

const parsedQueryPeer = (peer: DirectoryPeer): peer is DirectoryPeer & ParsedQueryPeer =>
  typeof (peer as Partial<ParsedQueryPeer>)[QUERY_PARSED] === 'function';

/** The peers of one directory and how requests are forwarded to them. */
export class Federation {
  readonly #selfId: string;
  readonly #peers = new Set<DirectoryPeer>();
  readonly #maxHops: number;
  readonly #onPeerError: ((err: unknown, peer: DirectoryPeer) => void) | undefined;

  /** The federation of directory `selfId`: `maxHops` is the default hop budget. */
  constructor(selfId: string, maxHops: number, onPeerError: ((err: unknown, peer: DirectoryPeer) => void) | undefined) {
    this.#selfId = selfId;
    this.#maxHops = maxHops;
    this.#onPeerError = onPeerError;
  }

  /** Add a peer (the caller checked its shape and that it is not the directory itself). */
  add(peer: DirectoryPeer): void {
    this.#peers.add(peer);
  }

  /** Stop forwarding to a peer. True when it was a peer. */
  remove(peer: DirectoryPeer): boolean {
    return this.#peers.delete(peer);
  }

  /** Forget every peer. */
  clear(): void {
    this.#peers.clear();
  }

  /**
   * Ask the peers (in the order added, first answer wins) for a point this
   * directory does not hold; undefined when the hop budget is spent or
   * nobody has it. `visited` excludes this directory already.
   */
  async resolve(nameOrId: string, options: ResolveOptions, visited: readonly string[]): Promise<PointView | undefined> {
    const hops = options.hops ?? this.#maxHops;
    if (hops <= 0) return undefined;
    const forward: ResolveOptions = { ...options, hops: hops - 1, visited: [...visited, this.#selfId] };
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

  /** The peers a query with this hop budget and `visited` list goes to (none when the budget is spent). */
  targets(hops: number | undefined, visited: readonly string[]): DirectoryPeer[] {
    return (hops ?? this.#maxHops) > 0
      ? [...this.#peers].filter((p) => p.id === undefined || (p.id !== this.#selfId && !visited.includes(p.id)))
      : [];
  }

  /**
   * Ask `peers` for their first `want` matches of `expr` (parsed: `ast`) and
   * merge them with this directory's (`local`, its first `want`) into the
   * page `offset`..`offset + limit`.
   */
  async query(
    peers: readonly DirectoryPeer[],
    expr: string,
    ast: QueryNode,
    options: QueryOptions,
    local: QueryResult,
    want: number,
    offset: number,
    limit: number,
  ): Promise<QueryResult> {
    // Each source returns its first offset+limit matches; merging those in
    // identifier order and cutting the page gives the same page a single
    // directory holding everything would.
    const hops = options.hops ?? this.#maxHops;
    const visited = options.visited ?? [];
    const { plan: _plan, ...rest } = options;
    const forward: QueryOptions = {
      ...rest,
      limit: want,
      offset: 0,
      hops: hops - 1,
      visited: [...visited, this.#selfId],
    };
    const failed = (err: unknown, peer: DirectoryPeer): QueryResult => {
      this.#onPeerError?.(err, peer);
      return { points: [], more: false };
    };
    const ask = async (peer: DirectoryPeer): Promise<QueryResult> => {
      try {
        return await peer.query(expr, forward);
      } catch (err) {
        return failed(err, peer);
      }
    };
    // In-process peers answer at once from the parsed query; only the others
    // (remote directories, or a peer with peers of its own) cost a promise.
    const answers: Array<QueryResult | Promise<QueryResult>> = peers.map((peer) => {
      if (parsedQueryPeer(peer)) {
        try {
          const r = peer[QUERY_PARSED](ast, forward);
          if (r) return r;
        } catch (err) {
          return failed(err, peer);
        }
      }
      return ask(peer);
    });
    if (answers.some((a) => a instanceof Promise)) {
      for (let i = 0; i < answers.length; i++) answers[i] = await answers[i]!;
    }
    const seen = new Set<string>();
    const merged: PointView[] = [];
    for (const page of [local, ...(answers as QueryResult[])]) {
      for (const p of page.points) {
        if (seen.has(p.id)) continue;
        seen.add(p.id);
        merged.push(p);
      }
    }
    merged.sort((a, b) => comparePointIds(a.id, b.id));
    const more = merged.length > offset + limit || local.more || (answers as QueryResult[]).some((a) => a.more);
    return { points: merged.slice(offset, offset + limit), more };
  }
}
