// Shared set-up for the CAPS tests: a fabric with a CAPS over it, and a
// pipeline caller → up (relay) → AMS → down (relay) → caller.
import type { Test } from 'tap';
import { Caps, type CapsEvent, type CapsOptions, type Fabric, type Link } from '../../dist/lib/index.js';
import { makeFabric, pointFixture } from './fabric.js';

/** The CAPS stage fixture. */
export const STAGE = pointFixture('caps-stage');

/** A fabric and a CAPS over it, both closed at teardown; `events` collects CAPS events. */
export async function makeCaps(
  t: Test,
  options: CapsOptions = {},
): Promise<{ fabric: Fabric; caps: Caps; events: CapsEvent[] }> {
  const { fabric } = await makeFabric(t);
  const caps = new Caps(fabric, options);
  const events: CapsEvent[] = [];
  caps.on('event', (e: CapsEvent) => events.push(e));
  t.teardown(() => caps.close());
  return { fabric, caps, events };
}

/**
 * Register relays `up` and `down`, link caller → up and down → caller, load
 * and execute `ams` between them. Returns the caller's two links.
 */
export async function pipeline(
  fabric: Fabric,
  caps: Caps,
  ams: string,
  opts: {
    scope?: 'thread' | 'process';
    data?: unknown;
    relayScope?: 'thread' | 'process';
    characteristics?: { maxmsg?: number };
  } = {},
): Promise<{ input: Link; output: Link }> {
  const prim = { sendPrimitive: 'queueConditionProcess', receivePrimitive: 'queueConditionProcess' };
  fabric.register({
    name: 'up',
    location: pointFixture('relay'),
    ...prim,
    characteristics: { scope: opts.relayScope ?? 'thread' },
  });
  fabric.register({
    name: 'down',
    location: pointFixture('relay'),
    ...prim,
    characteristics: { scope: opts.relayScope ?? 'thread' },
  });
  const input = await fabric.connect(null, 'up', { direction: 'aToB' });
  const output = await fabric.connect('down', null, { direction: 'aToB' });
  caps.comprims(prim);
  await caps.load({
    name: ams,
    location: STAGE,
    scope: opts.scope ?? 'thread',
    data: opts.data,
    ...(opts.characteristics ? { characteristics: opts.characteristics } : {}),
  });
  await caps.execute(ams, { upstream: ['up'], downstream: ['down'] });
  return { input, output };
}

/** Resolve with the first CAPS event matching (already seen ones count). */
export function capsEvent<T extends CapsEvent['type']>(
  caps: Caps,
  events: CapsEvent[],
  type: T,
  pred: (e: Extract<CapsEvent, { type: T }>) => boolean = () => true,
): Promise<Extract<CapsEvent, { type: T }>> {
  const seen = events.find((e) => e.type === type && pred(e as Extract<CapsEvent, { type: T }>));
  if (seen) return Promise.resolve(seen as Extract<CapsEvent, { type: T }>);
  return new Promise((resolve) => {
    const keep = setInterval(() => {}, 1 << 30);
    const on = (e: CapsEvent) => {
      if (e.type === type && pred(e as Extract<CapsEvent, { type: T }>)) {
        caps.off('event', on);
        clearInterval(keep);
        resolve(e as Extract<CapsEvent, { type: T }>);
      }
    };
    caps.on('event', on);
  });
}
