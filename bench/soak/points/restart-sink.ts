/**
 * Soak point `restart-sink` (bench/soak/restart.ts), restartable: appends
 * every message it takes to `point.data.file`, one line each, with a
 * synchronous write before it takes the next (so a kill -9 loses no record
 * of a message it took). Each instance also writes `I <ms>` at its first
 * message and tells its sender list (the caller) `up <ms>` (the wall clock
 * of that first take); on the marker `end` it writes `E` and tells the
 * caller `end`.
 *
 * `point.data`: `{ file: string }`.
 *
 * @module
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { PointContext } from '../../../lib/index.js';

/** `RECONNECT_FROM`, written out: importing it would load the whole library into each new instance, slowing its start. */
const RECONNECT_FROM = 'amix:reconnect';

export default async function restartSink(point: PointContext): Promise<void> {
  const { file } = point.data as { file: string };
  const fd = openSync(file, 'a');
  let first = true;
  try {
    for await (const m of point.messages({ signal: point.signal })) {
      if (m.from === RECONNECT_FROM) continue;
      const s = Buffer.from(m.data).toString();
      if (s === 'end') {
        writeSync(fd, 'E\n');
        await point.send(Buffer.from('end'));
        continue;
      }
      writeSync(fd, `${s}\n`);
      if (first) {
        first = false;
        const t = Date.now();
        writeSync(fd, `I ${t}\n`);
        await point.send(Buffer.from(`up ${t}`));
      }
    }
  } catch (err) {
    if (!point.signal.aborted) throw err;
  } finally {
    closeSync(fd);
  }
}
