/**
 * Bench point `gen` (bench/remote.ts, system `amix:daemon`): once its sender
 * list has an entry (the remote link is up), sends `warm + count` messages
 * of `size` bytes as fast as `point.send` takes them, one await each, then
 * stays until it is terminated. Waiting for the link keeps the unlinked
 * queue out of the measurement.
 *
 * `point.data`: `{ size: number, count: number, warm: number }`.
 *
 * @module
 */
import type { PointContext } from '../../lib/index.js';

export default async function gen(point: PointContext): Promise<void> {
  const { size, count, warm } = point.data as { size: number; count: number; warm: number };
  const ended = new Promise<void>((resolve) => {
    if (point.signal.aborted) resolve();
    else point.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  while (point.senderList.length === 0 && !point.signal.aborted) await new Promise((r) => setTimeout(r, 1));
  const msg = new Uint8Array(size);
  for (let i = 0; i < size; i++) msg[i] = i & 0xff;
  const total = warm + count;
  for (let i = 0; i < total && !point.signal.aborted; i++) await point.send(msg);
  await ended;
}
