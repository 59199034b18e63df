/**
 * Bench point `directSinks` (bench/switch.ts, system `amix:direct`): the
 * receivers' process without a switch. It opens `flows` receiving ends of
 * queueConditionProcess (one Unix socket each), each on the receiver list of
 * an endpoint `R-i` of this process, sends their addresses (JSON) to its
 * caller link, and sends `done` there once `flows * perFlow` messages have
 * arrived.
 *
 * `point.data`: `{ flows, perFlow, runtimeDir }`.
 *
 * @module
 */
import type { PointContext } from '../../lib/index.js';
import { countSinks } from './countSinks.js';
import { Endpoint } from '../../lib/fabric/endpoint.js';
import { PrimitiveRegistry } from '../../lib/core/registry.js';

export default async function directSinks(point: PointContext): Promise<void> {
  const { flows, perFlow, runtimeDir } = point.data as { flows: number; perFlow: number; runtimeDir: string };
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  const eps: Endpoint[] = [];
  const addresses: unknown[] = [];
  for (let i = 1; i <= flows; i++) {
    const ch = await reg.open('queueConditionProcess', { maxmsg: 4096, minmsg: 2048 });
    const ep = new Endpoint(`R-${i}`);
    ep.addReceiver(`direct-${i}`, `S-${i}`, ch);
    eps.push(ep);
    addresses.push(ch.address);
  }
  await point.send(Buffer.from(JSON.stringify(addresses)));
  await countSinks(eps, point.signal, flows * perFlow, () => point.send(Buffer.from('done')));
  await reg.close().catch(() => {});
}
