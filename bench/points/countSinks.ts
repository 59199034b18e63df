/**
 * What the switch bench's receiver points (`directSinks`, `switchSinks`)
 * share: read every endpoint until the point is ended, and say `done`
 * each time `expect` messages have arrived in all.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import type { Endpoint } from '../../lib/fabric/endpoint.js';

export async function countSinks(
  eps: readonly Endpoint[],
  signal: AbortSignal,
  expect: number,
  done: () => Promise<void>,
): Promise<void> {
  // One abort listener per receiver's iteration.
  setMaxListeners(0, signal);
  let total = 0;
  const all = eps.map(async (ep) => {
    for await (const _m of ep.messages({ signal })) if (++total % expect === 0) await done();
  });
  await Promise.allSettled(all);
}
