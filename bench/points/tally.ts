/**
 * Bench point `tally` (bench/remote.ts, system `amix:daemon`): receives
 * `warm + count` messages, clocks the last `count` of them on its own clock
 * (from the arrival of message `warm` to the arrival of the last), then sends
 * one JSON result `{ count, ns, bytes }` to its sender list (the bench's own
 * link) and stays until it is terminated.
 *
 * `point.data`: `{ count: number, warm: number }` (warm >= 1).
 *
 * @module
 */
import type { PointContext } from '../../lib/index.js';

export default async function tally(point: PointContext): Promise<void> {
  const { count, warm } = point.data as { count: number; warm: number };
  const total = warm + count;
  let n = 0;
  let bytes = 0;
  let t0 = process.hrtime.bigint();
  try {
    for await (const m of point.messages({ signal: point.signal })) {
      n++;
      if (n > warm) bytes += m.size;
      if (n === warm) t0 = process.hrtime.bigint();
      if (n === total) {
        const ns = Number(process.hrtime.bigint() - t0);
        await point.send(new TextEncoder().encode(JSON.stringify({ count, ns, bytes })));
      }
    }
  } catch (err) {
    if (!point.signal.aborted) throw err;
  }
}
