/**
 * Soak point `seqSource` (R1-caller, R7): once its sender list has an entry,
 * sends sequence-numbered messages (u32 LE at 0, `size` bytes) as fast as
 * `point.send` takes them, up to `count` or for `durationMs`, then the
 * end-of-stream message with how many it sent. With `ratePerSec` it paces
 * itself to that rate (catching up after a delay); with `stallAtMs` it stops
 * sending for good that long after it started, without the end message
 * (R7's stalled sender). Then it stays until it is terminated.
 *
 * `point.data`: `{ count, durationMs, size?, ratePerSec?, stallAtMs? }`.
 *
 * @module
 */
import type { PointContext } from '../../../lib/index.js';
import { endMessage, seqMessage } from '../common.js';

interface SourceData {
  count: number;
  durationMs: number;
  size?: number;
  ratePerSec?: number;
  stallAtMs?: number;
}

export default async function seqSource(point: PointContext): Promise<void> {
  const d = point.data as SourceData;
  const ended = new Promise<void>((resolve) => point.signal.addEventListener('abort', () => resolve(), { once: true }));
  // Waiting for the link keeps the first messages out of the unlinked queue.
  while (point.senderList.length === 0 && !point.signal.aborted) await new Promise((r) => setTimeout(r, 1));
  const start = Date.now();
  const deadline = start + d.durationMs;
  const stallAt = d.stallAtMs === undefined ? Infinity : start + d.stallAtMs;
  let sent = 0;
  try {
    while (sent < d.count && !point.signal.aborted) {
      await point.send(seqMessage(sent, d.size ?? 16));
      sent++;
      if (d.ratePerSec !== undefined && sent >= ((Date.now() - start) * d.ratePerSec) / 1000) {
        // Ahead of the pace: wait for the next 5 ms tick (pacing a workload, not synchronisation).
        await new Promise((r) => setTimeout(r, 5));
        if (Date.now() >= deadline || Date.now() >= stallAt) break;
      }
      if ((sent & 1023) === 0 && (Date.now() >= deadline || Date.now() >= stallAt)) break;
    }
    if (d.stallAtMs === undefined && !point.signal.aborted) await point.send(endMessage(sent));
  } catch (err) {
    if (!point.signal.aborted) throw err;
  }
  await ended;
}
