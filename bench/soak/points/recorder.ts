/**
 * Soak point `recorder` (bench/soak/peerCrash.ts): records the sequence
 * number (the first 4 bytes, u32 little-endian) of every message it takes,
 * synchronously, before it takes the next, in a file of its own instance
 * (`<dir>/rec-<ms>-<pid>.bin`, 4 bytes a record), so what it took survives
 * its process.
 *
 * `point.data`: `{ dir: string }`.
 *
 * @module
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { PointContext } from '../../../lib/index.js';

export default async function recorder(point: PointContext): Promise<void> {
  const { dir } = point.data as { dir: string };
  const fd = openSync(join(dir, `rec-${String(Date.now()).padStart(15, '0')}-${process.pid}.bin`), 'ax', 0o600);
  try {
    for await (const m of point.messages({ signal: point.signal })) writeSync(fd, m.data, 0, 4);
  } catch {
    // Terminated or the link closed: what was taken is on disk.
  } finally {
    closeSync(fd);
  }
}
