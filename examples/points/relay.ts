// Passes every message on unchanged: a point between the caller and a stage
// CAPS moves (a caller's own Link is the link itself, and stays put).
import type { PointContext } from '../../lib/index.js';

export default async function relay(point: PointContext): Promise<void> {
  for await (const m of point) await point.send(m.data);
}
