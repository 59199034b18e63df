/**
 * Soak point `restart-source` (bench/soak/restart.ts): on `go` from the
 * caller, sends the sequence numbers 0, 1, 2, ... (decimal text) to the
 * point `sink`, each when `point.send` has accepted the one before, paced
 * to `ratePerSec` (0: as fast as the link takes them); on `stop` it sends
 * the marker `end` to `sink` and answers the caller with
 * `{ "sent": n }`, the number of messages the link accepted.
 *
 * `point.data`: `{ ratePerSec: number }`.
 *
 * @module
 */
import type { PointContext } from '../../../lib/index.js';

export default async function restartSource(point: PointContext): Promise<void> {
  const { ratePerSec } = point.data as { ratePerSec: number };
  const go = await point.receive({ signal: point.signal });
  let stopped = false;
  const stop = point.receive({ from: go.from, signal: point.signal }).then(
    () => {
      stopped = true;
    },
    () => {
      stopped = true;
    },
  );
  const t0 = Date.now();
  let seq = 0;
  while (!stopped) {
    if (ratePerSec > 0 && seq >= ((Date.now() - t0) * ratePerSec) / 1000) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    await point.send(Buffer.from(String(seq)), { to: 'sink' });
    seq++;
    // Unpaced, a send that is accepted at once never yields to I/O: let the stop through now and then.
    if ((seq & 1023) === 0) await new Promise((r) => setImmediate(r));
  }
  await stop;
  if (point.signal.aborted) return;
  await point.send(Buffer.from('end'), { to: 'sink' });
  await point.send(Buffer.from(JSON.stringify({ sent: seq })), { to: go.from });
}
