/**
 * The generic broker point (seed 002, "The Broker Service"): inserted by the
 * fabric between two points whose primitives differ. It receives on one
 * primitive and sends on the other, unchanged. Honest about its cost: every
 * message is copied twice more than on a direct link (out of the incoming
 * channel, into the outgoing one) and takes one extra hop through a worker
 * thread of the fabric's process.
 *
 * @module
 */
import type { PointContext } from './host.js';

/** Forward every message to every receiver on the broker's sender list. */
export default async function broker(point: PointContext): Promise<void> {
  for await (const m of point) await point.send(m.data);
}
