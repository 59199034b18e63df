/**
 * The directory adapter for one peer: the directory's federated resolve and
 * query reach the peer daemon through its conduit's control requests.
 *
 * @module
 */
import type { DirectoryPeer, PointView, QueryOptions, ResolveOptions } from '../directory/index.js';
import type { Conduit } from './conduit.js';
import type { PeeringCore } from './state.js';

/** @internal The {@link DirectoryPeer} that asks peer `c`. */
export function directoryPeer(core: PeeringCore, c: Conduit): DirectoryPeer {
  return {
    id: c.id,
    resolve: async (nameOrId: string, o: ResolveOptions = {}): Promise<PointView | undefined> =>
      ((await core.request(c, 'resolve', { nameOrId, hops: o.hops, visited: o.visited })) as PointView | null) ??
      undefined,
    query: async (expr: string, o: QueryOptions = {}) =>
      (await core.request(c, 'query', {
        expr,
        limit: o.limit,
        offset: o.offset,
        hops: o.hops,
        visited: o.visited,
      })) as { points: PointView[]; more: boolean },
  };
}
