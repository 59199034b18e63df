/**
 * A trunk point in point mode (`data.trunk.attach: 'point'`; seed 002 ¶363:
 * "a destination Thread Trunk Point which may in turn have a Thread
 * Communications Link to a Thread Communication Switch or to a Thread
 * Communication Point"): no switch beyond it on its machine, the points are
 * linked to the trunk point itself. It runs a switch engine in its own
 * process for them ({@link Switch}, named as the trunk point's instance):
 * the engine takes the points' links as a switch takes its attached points
 * (it stamps their names as sources, routes frames back with the true
 * sender, sends them its routes) and reaches the relay over an in-process
 * pair of rings that looks to it like a link to a trunk point. So the
 * points talk to the trunk point exactly as they would to a switch, and
 * the far switch sees a neighbouring switch of the trunk point's name.
 *
 * Where the sequencing lives: in the engine, that is in the trunk point's
 * process (there is no other switch on this side to keep it). See
 * docs/switching.md, "A trunk point straight to a point", for what that
 * promises across a restart.
 *
 * @module
 */
import type { Channel } from '../../core/channel.js';
import type { PrimitiveRegistry } from '../../core/registry.js';
import type { PointContext } from '../../fabric/host.js';
import { Switch } from '../../fabric/switchPoint.js';
import type { SwitchHost, SwitchSnapshot } from '../../fabric/switchTypes.js';

/** The name of the engine's link to the relay (no fabric link has it: fabric link ids are generated). */
export const RELAY_LINK = 'trunk-relay';

/** The relay's two ends and the engine of a trunk point in point mode. */
export interface PointMode {
  /** The relay writes the engine's input here, and reads the engine's output there. */
  toEngine: Channel;
  fromEngine: Channel;
  engine: Switch;
  /** The engine's snapshot (routes, ports, flows), for the trunk point's own. */
  snapshot(): SwitchSnapshot;
  close(): Promise<void>;
}

/**
 * Start the engine of a trunk point in point mode over `end`'s links; `first` is the routes frame the
 * engine must read before anything else (it names the relay's port a trunk port, so its peer is never
 * taken for a destination). Rings of `maxMessageBytes` (the trunk's largest frame), `window` deep.
 */
export async function startPointMode(
  end: PointContext,
  reg: PrimitiveRegistry,
  sizes: { maxmsg: number; minmsg: number; maxMessageBytes: number },
  first: Uint8Array,
): Promise<PointMode> {
  const ring = { ...sizes, capacityBytes: Math.max(1 << 20, sizes.maxMessageBytes * 4) };
  const engineRx = await reg.open('queueConditionThread', ring);
  const toEngine = await reg.open('queueConditionThread', { ...ring, address: engineRx.address });
  const fromEngine = await reg.open('queueConditionThread', ring);
  const engineTx = await reg.open('queueConditionThread', { ...ring, address: fromEngine.address });
  toEngine.trySend(first);
  const relay = { link: RELAY_LINK, peer: end.instance }; // the engine itself: never a destination
  // The point's own endpoint, plus the relay link on both lists; the engine's service stays private (the
  // trunk point's `trunk` service reports it).
  const host: SwitchHost = {
    get senderList() {
      return [...end.senderList, relay];
    },
    get receiverList() {
      return [...end.receiverList, relay];
    },
    channels: (link) => (link === RELAY_LINK ? { tx: [engineTx], rx: [engineRx] } : end.channels(link)),
    on: (event, listener) => end.on(event, listener),
    emit: (event, e) => end.emit(event, e),
    services: new Map(),
    closed: end.closed,
  };
  const data = (end.data ?? {}) as { queueLimit?: number; readBatch?: number; trunkWindow?: number };
  const engine = new Switch(host, end.instance, {
    queueLimit: data.queueLimit,
    readBatch: data.readBatch,
    trunkWindow: data.trunkWindow,
  });
  return {
    toEngine,
    fromEngine,
    engine,
    snapshot: () => engine.snapshot(),
    close: async () => {
      await Promise.all([engineRx, toEngine, fromEngine, engineTx].map((c) => c.destroy().catch(() => {})));
    },
  };
}
