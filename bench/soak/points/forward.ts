/**
 * Soak point `forward` (bench/soak/peerCrash.ts): sends every message it
 * takes, unchanged, to its sender list.
 *
 * @module
 */
import type { PointContext } from '../../../lib/index.js';

export default async function forward(point: PointContext): Promise<void> {
  try {
    for await (const m of point.messages({ signal: point.signal })) await point.send(m.data);
  } catch {
    // Terminated or the link closed.
  }
}
