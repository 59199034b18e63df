/**
 * Bench point `capsSink` (bench/caps.ts): takes the numbered messages and
 * counts what a REPLACE must never do: a number skipped (lost), seen again
 * (duplicated) or out of order (reordered). It keeps, per 10 ms of arrival
 * time (absolute: `performance.timeOrigin + performance.now()`, comparable
 * across threads and processes), the messages that arrived and the longest
 * gap between two consecutive messages ending there, with its end time.
 *
 * Service `sink`: `{ op: 'stats' }` → `{ received, lost, duplicated,
 * reordered, start, buckets: [count, maxGapMs, gapEndMs][] }`.
 *
 * @module
 */
import type { PointContext } from '../../lib/index.js';

const BUCKET_MS = 10;
const MAX_BUCKETS = 60_000; // ten minutes

export default async function capsSink(point: PointContext): Promise<void> {
  let received = 0;
  let lost = 0;
  let duplicated = 0;
  let reordered = 0;
  let next = 0;
  const seen = new Set<number>(); // numbers below `next` that were skipped (lost until they come)
  let start = 0;
  let prev = 0;
  const counts: number[] = [];
  const gaps: number[] = [];
  const gapEnds: number[] = [];
  point.services.set('sink', () => ({
    received,
    lost, // skipped numbers that have not come (yet)
    duplicated,
    reordered,
    start,
    buckets: Array.from({ length: counts.length }, (_, i) => [counts[i] ?? 0, gaps[i] ?? 0, gapEnds[i] ?? 0]),
  }));
  for await (const m of point) {
    const now = performance.timeOrigin + performance.now();
    if (received === 0) {
      start = now;
      prev = now;
    }
    received++;
    const b = Math.min(MAX_BUCKETS - 1, Math.floor((now - start) / BUCKET_MS));
    counts[b] = (counts[b] ?? 0) + 1;
    const g = now - prev;
    if (g > (gaps[b] ?? 0)) {
      gaps[b] = g;
      gapEnds[b] = now;
    }
    prev = now;
    const seq = new DataView(m.data.buffer, m.data.byteOffset, 4).getUint32(0, true);
    if (seq === next) next++;
    else if (seq > next) {
      for (let s = next; s < seq && seen.size < 1_000_000; s++) seen.add(s);
      lost += seq - next;
      next = seq + 1;
    } else if (seen.delete(seq)) {
      // A skipped number came late: not lost, reordered.
      lost--;
      reordered++;
    } else duplicated++;
  }
}
