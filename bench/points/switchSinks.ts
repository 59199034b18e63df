/**
 * Bench point `switchSinks` (bench/switch.ts, system `amix:switch`): the
 * receivers' process. Its own endpoint is switch TCS-2 (it runs
 * `runSwitch`, and its registration says `data.switch`), and it holds the
 * `flows` receiving points `R-1..R-N` as endpoints of this process, each
 * with one in-process (queueConditionThread) link from TCS-2, opened by
 * agents here exactly as the fabric's agents open links. `R-1` also sends:
 * once every receiver is attached it tells `report` (the bench's endpoint,
 * behind TCS-1) `ready`, and once `flows * perFlow` messages have arrived
 * at the receivers, `done`.
 *
 * `point.data`: `{ switch: true, flows, perFlow, report }`.
 *
 * @module
 */
import type { PointContext } from '../../lib/index.js';
import { countSinks } from './countSinks.js';
import { Agent } from '../../lib/fabric/agent.js';
import { Endpoint } from '../../lib/fabric/endpoint.js';
import { runSwitch } from '../../lib/fabric/switchPoint.js';
import { PrimitiveRegistry } from '../../lib/core/registry.js';

const PRIMITIVE = 'queueConditionThread';

export default async function switchSinks(point: PointContext): Promise<void> {
  const { flows, perFlow, report } = point.data as { flows: number; perFlow: number; report: string };
  await runSwitch(point);
  const reg = new PrimitiveRegistry();
  const sw = new Agent(point, reg);
  const options = { maxmsg: 4096, minmsg: 2048, idle: 'block' as const };
  const eps: Endpoint[] = [];
  // One link from the switch to each receiver; R-1's goes both ways (it sends ready and done).
  for (let i = 1; i <= flows; i++) {
    const name = `R-${i}`;
    const ep = new Endpoint(name);
    const agent = new Agent(ep, reg);
    const link = `local-${i}`;
    const { address } = await agent.request<{ address: never }>('openReceiver', {
      link,
      peer: point.instance,
      primitive: PRIMITIVE,
      options,
    });
    await sw.request('openSender', { link, peer: name, primitive: PRIMITIVE, address, options });
    await agent.request('listReceiver', { link, peer: point.instance, switched: true });
    if (i === 1) {
      const back = await sw.request<{ address: never }>('openReceiver', {
        link,
        peer: name,
        primitive: PRIMITIVE,
        options,
      });
      await agent.request('openSender', {
        link,
        peer: point.instance,
        primitive: PRIMITIVE,
        address: back.address,
        options,
        switched: true,
      });
      await sw.request('listReceiver', { link, peer: name });
    }
    eps.push(ep);
  }
  const r1 = eps[0]!;
  const reaches = () => r1.switchRoutes().some((r) => r.destinations.includes(report));
  while (!reaches()) await new Promise((r) => r1.once('event', r));
  await r1.send(Buffer.from('ready'), { to: report });
  await countSinks(eps, point.signal, flows * perFlow, () => r1.send(Buffer.from('done'), { to: report }));
}
