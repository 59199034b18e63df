/**
 * Bench point `capsSource` (bench/caps.ts): once started through its `src`
 * service, sends 64 B messages numbered from 0 (u32 little-endian at
 * offset 0) as fast as `point.send` takes them, until stopped; it yields
 * to its event loop every millisecond so the fabric's requests (a REPLACE
 * holding its sending entry) get in.
 *
 * Service `src`: `{ op: 'start' }`, `{ op: 'stop' }` (answers `{ sent }` once
 * the loop has stopped), `{ op: 'stats' }`. `{ op: 'start', rate: n }` paces
 * the sends at n messages per second instead (each millisecond, what the
 * rate allows by then), leaving the CPU the rest.
 *
 * @module
 */
import type { PointContext } from '../../lib/index.js';

export default async function capsSource(point: PointContext): Promise<void> {
  let sent = 0;
  let running = false;
  let stopped: Promise<void> = Promise.resolve();
  const loop = async (rate: number) => {
    const msg = new Uint8Array(64);
    const view = new DataView(msg.buffer);
    let last = performance.now();
    const t0 = last;
    while (running && !point.signal.aborted) {
      if (rate > 0 && sent >= ((performance.now() - t0) * rate) / 1000) {
        // Ahead of the rate: sleep to the next timer tick (about 1 ms), not spin.
        await new Promise<void>((r) => setTimeout(r, 1));
        continue;
      }
      view.setUint32(0, sent, true);
      await point.send(msg.slice());
      sent++;
      if ((sent & 255) === 0 || performance.now() - last > 1) {
        await new Promise<void>((r) => setImmediate(r));
        last = performance.now();
      }
    }
  };
  point.services.set('src', async (req) => {
    if (req.op === 'start' && !running) {
      running = true;
      stopped = loop(typeof req.rate === 'number' && req.rate > 0 ? req.rate : 0);
    } else if (req.op === 'stop') {
      running = false;
      await stopped;
    }
    return { sent };
  });
  await new Promise<void>((resolve) => point.signal.addEventListener('abort', () => resolve(), { once: true }));
}
