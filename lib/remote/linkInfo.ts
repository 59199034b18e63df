/**
 * The snapshot of one remote link (`amix links`): its local halves (fabric
 * links, brokers, hops) and, per flow, what is unacknowledged or parked.
 *
 * @module
 */
import { DIRECTION_STEPS } from '../fabric/point.js';
import type { RemoteLink } from './conduit.js';
import type { PeeringCore } from './state.js';
import { key, type RemoteLinkInfo } from './types.js';

/** @internal {@link RemoteLinkInfo} of `rl`. */
export function remoteLinkInfo(core: PeeringCore, rl: RemoteLink): RemoteLinkInfo {
  const c = core.peers.get(rl.peer);
  // The local half of each outgoing flow is a fabric link: brokers, hops and state come from it.
  const fabric = core.host.fabric;
  const local = rl.flows.map((f) => {
    // A direct flow's half here is its fabric link, whichever way it flows.
    if (f.direct !== undefined) return fabric.hasLink(f.direct) ? fabric.link(f.direct) : undefined;
    const out = c?.out.get(key(f.sender, f.receiver));
    return out && fabric.hasLink(out.link) ? fabric.link(out.link) : undefined;
  });
  const direct = rl.flows.every((f) => f.direct !== undefined);
  // A direct link does not pass through the conduit: the peer's reachability is not its state.
  const suspended = (!direct && c?.state !== 'up') || local.some((l) => l?.state === 'suspended');
  return {
    id: rl.id,
    a: rl.a,
    b: [rl.b],
    direction: rl.direction,
    steps: DIRECTION_STEPS[rl.direction],
    mode: 'add',
    state: suspended ? 'suspended' : 'active',
    suspendedMs: 0,
    brokers: local.flatMap((l) => l?.brokers ?? []),
    flows: [
      ...local.flatMap((l) => l?.flows ?? []),
      ...(direct ? [] : [{ from: `conduit:${core.id}`, to: `conduit:${rl.peer}`, primitive: 'zeromq' }]),
    ],
    remote: {
      peer: rl.peer,
      flows: rl.flows.map((f, i) => {
        const k = key(f.sender, f.receiver);
        const out = c?.out.get(k);
        const inFlow = c?.in.get(k);
        return {
          ...f,
          ...(local[i] ? { link: local[i]!.id } : {}),
          ...(out ? { unacked: out.seq - out.acked } : {}),
          ...(inFlow ? { parked: inFlow.parked.length } : {}),
        };
      }),
    },
  };
}
