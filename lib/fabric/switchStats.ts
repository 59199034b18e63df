/**
 * A switch's snapshot (`fabric.switches.show`) and its rates, in a file of
 * their own so the switch's code stays within its file limit. Rates are
 * sampled from the switch's counters once a second on an unref'd timer: the
 * hot path only counts, it reads no clock per message.
 *
 * @module
 */
import { RATE_SAMPLE_MS, type Port, type Route } from './switchParts.js';
import type { TrunkFlows } from './switchTrunk.js';
import type { SwitchPortInfo, SwitchRouteInfo, SwitchSnapshot } from './switchTypes.js';

/**
 * Sample each route's and port's counters every {@link RATE_SAMPLE_MS}: its rate is what moved in the last
 * interval (a route idle for one reports 0). The timer does not keep the process alive; clear it on close.
 */
export function sampler(routes: Map<string, Route>, ports: Map<string, Port>): NodeJS.Timeout {
  let at = performance.now();
  return setInterval(() => {
    const now = performance.now();
    const k = 1000 / Math.max(1, now - at);
    at = now;
    for (const r of routes.values()) {
      r.rate = Math.round((r.messages - r.seen) * k);
      r.seen = r.messages;
    }
    for (const p of ports.values()) {
      p.rate = { in: Math.round((p.s.in - p.seen.in) * k), out: Math.round((p.s.out - p.seen.out) * k) };
      p.seen = { in: p.s.in, out: p.s.out };
    }
  }, RATE_SAMPLE_MS).unref();
}

/** The snapshot of switch `me`: its routes, ports and counters now. */
export function snapshotOf(
  me: string,
  queueLimit: number,
  portMap: Map<string, Port>,
  routeMap: Map<string, Route>,
  suspended: Set<string>,
  drops: SwitchSnapshot['dropped'],
  tf: TrunkFlows<Port>,
): SwitchSnapshot {
  let pending = 0;
  const ports: SwitchPortInfo[] = [];
  for (const p of portMap.values()) {
    pending += p.queue.length + (p.held ? 1 : 0);
    ports.push({
      link: p.link,
      peer: p.peer,
      ...(p.neighbour ? { neighbour: p.neighbour } : {}),
      ...(p.trunk ? { trunk: p.trunk } : {}),
      in: p.s.in,
      out: p.s.out,
      inPerSec: p.rate.in,
      outPerSec: p.rate.out,
      queued: p.queue.length,
      routesQueued: p.ctl.length,
      parked: p.parked.size,
      dropped: p.s.dropped,
    });
  }
  const routes: SwitchRouteInfo[] = [...routeMap].map(([dest, r]) => ({
    dest,
    link: r.port.link,
    nextHop: r.port.neighbour ?? r.port.peer,
    hops: r.path.length,
    path: [...r.path],
    suspended: suspended.has(dest),
    messages: r.messages,
    msgsPerSec: r.rate,
    dropped: r.dropped,
  }));
  return {
    switch: me,
    at: Date.now(),
    queueLimit,
    msgsPerSec: routes.reduce((n, r) => n + r.msgsPerSec, 0),
    routes,
    ports,
    dropped: { ...drops },
    pending,
    trunk: { ...tf.stats(), window: tf.window },
  };
}
