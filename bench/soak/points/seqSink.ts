/**
 * Soak point `seqSink` (R1, R7): a slow receiving point that records every
 * sequence number it takes, synchronously, before it takes the next
 * ({@link SeqTracker}), and samples its own receiving channel's `pending`
 * from the channel's stats (right after each pause, when it is highest, and
 * every `sampleEvery` messages). On the end-of-stream message it sends one
 * JSON result to its sender list: the counters, `maxPending` and
 * `pendingSamples`. It stays until it is terminated.
 *
 * With `progressMs` it also sends `{ progress: taken, pending }` to its sender
 * list about that often while messages arrive (R7 watches rates by them: a
 * thread point busy on a stream answers the fabric's `stats` late).
 *
 * `point.data`: `{ capacity, slowEvery, slowMs, sampleEvery?, stallAtMs?, progressMs? }`:
 * a pause of `slowMs` after every `slowEvery` messages; with `stallAtMs` it
 * stops reading for good that long after its first message (R7's stalled
 * receiver).
 *
 * @module
 */
import type { PointContext } from '../../../lib/index.js';
import { END_TAG, SeqTracker, u32 } from '../common.js';

interface SinkData {
  capacity: number;
  slowEvery: number;
  slowMs: number;
  sampleEvery?: number;
  stallAtMs?: number;
  progressMs?: number;
}

export default async function seqSink(point: PointContext): Promise<void> {
  const d = point.data as SinkData;
  const tracker = new SeqTracker(d.capacity);
  const sampleEvery = d.sampleEvery ?? 997;
  let maxPending = 0;
  let samples = 0;
  let stallAt = Infinity;
  let nextProgress = d.progressMs === undefined ? Infinity : 0;
  const encoder = new TextEncoder();
  const sample = (link: string) => {
    for (const ch of point.channels(link).rx) {
      const p = ch.stats().pending;
      if (p > maxPending) maxPending = p;
      samples++;
    }
  };
  const ended = new Promise<void>((resolve) => point.signal.addEventListener('abort', () => resolve(), { once: true }));
  try {
    for await (const m of point.messages({ signal: point.signal })) {
      if (m.size === 8 && u32(m.data) === END_TAG) {
        sample(m.link);
        const result = { ...tracker.counts(u32(m.data, 4)), maxPending, pendingSamples: samples };
        // To the sender list: the caller's end of the same link (R1) or of a link of its own (R7).
        await point.send(encoder.encode(JSON.stringify(result)));
        continue;
      }
      if (m.size < 4) continue; // a RECONNECT null message carries no number
      tracker.take(u32(m.data));
      const n = tracker.received;
      if (n === 1 && d.stallAtMs !== undefined) stallAt = Date.now() + d.stallAtMs;
      if ((n & 255) === 0) {
        const now = Date.now();
        if (now >= stallAt) break;
        if (now >= nextProgress) {
          nextProgress = now + d.progressMs!;
          const pending = point.channels(m.link).rx.reduce((a, ch) => a + ch.stats().pending, 0);
          await point.send(encoder.encode(JSON.stringify({ progress: n, pending })));
        }
      }
      if (n % sampleEvery === 0) sample(m.link);
      if (n % d.slowEvery === 0) {
        await new Promise((r) => setTimeout(r, d.slowMs));
        // The sender kept sending during the pause: pending is at its highest now.
        sample(m.link);
      }
    }
  } catch (err) {
    if (!point.signal.aborted) throw err;
  }
  await ended;
}
