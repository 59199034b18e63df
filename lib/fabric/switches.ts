/**
 * The fabric's view of its switch points ({@link SwitchControl}, as
 * `fabric.switches`): list them, show a switch's routes, links and
 * counters, and suspend or resume a route. Each request goes to the switch
 * instance's own code through its agent (`service` op), wherever it runs.
 *
 * @module
 */
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import type { FabricCore, Inst } from './records.js';
import { isSwitchPoint } from './switchFrame.js';
import { TRUNK_LOCATION } from './switchTrunk.js';
import type { SwitchSnapshot, TrunkSnapshot } from './switchTypes.js';

export type { SwitchSnapshot, SwitchRouteInfo, SwitchPortInfo, TrunkSnapshot } from './switchTypes.js';

/** One switch's line of `fabric.switches.ls()`. */
export interface SwitchSummary {
  kind: 'switch';
  switch: string;
  point: string;
  scope: string;
  pid: number | undefined;
  routes: number;
  links: number;
  neighbours: string[];
  /** Messages a second it forwarded over the last second. */
  msgsPerSec: number;
  pending: number;
  dropped: number;
}

/** One trunk point's line of `fabric.switches.ls()`. */
export interface TrunkSummary {
  kind: 'trunk';
  trunk: string;
  point: string;
  scope: string;
  pid: number | undefined;
  state: TrunkSnapshot['state'];
  /** The far trunk point's receiving end (once known); the switches on each side (`localSwitch` is its own, or
   * itself in point mode; `remoteSwitch` the one beyond the trunk). */
  peer?: string;
  localSwitch?: string;
  remoteSwitch?: string;
  msgsPerFrame: number;
  /** Switch frames a second it carried, both ways, over the last second. */
  msgsPerSec: number;
  pending: number;
  dropped: number;
}

/** The switches of one fabric. */
export class SwitchControl {
  readonly #core: FabricCore;

  /** @internal */
  constructor(core: FabricCore) {
    this.#core = core;
  }

  /** The running switch instances. */
  names(): string[] {
    return this.#insts().map((i) => i.id);
  }

  /** One summary per running switch, then one per running trunk point (`kind` tells them apart). */
  async ls(): Promise<Array<SwitchSummary | TrunkSummary>> {
    const out: Array<SwitchSummary | TrunkSummary> = [];
    for (const inst of this.#insts()) {
      const s = await this.show(inst.id).catch(() => undefined);
      if (!s) continue;
      const d = s.dropped;
      out.push({
        kind: 'switch',
        switch: inst.id,
        point: inst.point.name,
        scope: inst.point.characteristics.scope,
        pid: inst.host.pid,
        routes: s.routes.length,
        links: s.ports.length,
        neighbours: s.ports.flatMap((p) => (p.neighbour ? [p.neighbour] : [])),
        msgsPerSec: s.msgsPerSec,
        pending: s.pending,
        dropped: d.unknown + d.hops + d.bad + d.gone,
      });
    }
    for (const inst of this.#insts(true)) {
      const s = await this.trunk(inst.id).catch(() => undefined);
      if (!s) continue;
      out.push({
        kind: 'trunk',
        trunk: inst.id,
        point: inst.point.name,
        scope: inst.point.characteristics.scope,
        pid: inst.host.pid,
        state: s.state,
        ...(s.peer ? { peer: s.peer } : {}),
        ...(s.localSwitch ? { localSwitch: s.localSwitch } : {}),
        ...(s.remoteSwitch ? { remoteSwitch: s.remoteSwitch } : {}),
        msgsPerFrame: s.msgsPerFrame,
        msgsPerSec: s.msgsOutPerSec + s.msgsInPerSec,
        pending: s.pending,
        dropped: s.dropped.down + s.dropped.bad,
      });
    }
    return out;
  }

  /** A switch's routes, links and counters; `AMIX_ERR_UNKNOWN_POINT` if no switch runs under that name. */
  show(name: string): Promise<SwitchSnapshot> {
    return this.#ask(name, { op: 'show' });
  }

  /**
   * Hold the messages a switch has for `dest` (a point attached to it): they
   * queue, and its sources are parked once the queue is full; flows to other
   * destinations go on. `AMIX_ERR_UNKNOWN_POINT` for a destination it has no route to.
   */
  suspendRoute(name: string, dest: string): Promise<SwitchSnapshot> {
    return this.#ask(name, { op: 'suspend', dest });
  }

  /** Release a route {@link suspendRoute} held. */
  resumeRoute(name: string, dest: string): Promise<SwitchSnapshot> {
    return this.#ask(name, { op: 'resume', dest });
  }

  /**
   * The running trunk points (location `amix:trunk`): peer, state, frames each way, messages per
   * trunk frame, retransmits, drops. A trunk point that does not answer (starting, dying) is left out.
   */
  async trunks(): Promise<TrunkSnapshot[]> {
    const out: TrunkSnapshot[] = [];
    for (const inst of this.#insts(true)) {
      const s = await this.trunk(inst.id).catch(() => undefined);
      if (s) out.push(s);
    }
    return out;
  }

  /** A switch's snapshot, or a trunk point's when `name` is one (what `amix switch show` prints). */
  showAny(name: string): Promise<SwitchSnapshot | TrunkSnapshot> {
    const inst = this.#core.instances.get(name);
    return inst?.point.location === TRUNK_LOCATION ? this.trunk(name) : this.show(name);
  }

  /** One trunk point's snapshot; `AMIX_ERR_UNKNOWN_POINT` if no trunk point runs under that name. */
  trunk(name: string): Promise<TrunkSnapshot> {
    return this.#ask(name, {}, 'trunk');
  }

  #insts(trunks = false): Inst[] {
    return [...this.#core.instances.values()].filter(
      (i) =>
        isSwitchPoint(i.point) &&
        (i.point.location === TRUNK_LOCATION) === trunks &&
        (i.state === 'running' || i.state === 'idle'),
    );
  }

  #ask<T = SwitchSnapshot>(name: string, request: Record<string, unknown>, service = 'switch'): Promise<T> {
    const inst = this.#core.instances.get(name);
    if (!inst || !isSwitchPoint(inst.point) || (inst.point.location === TRUNK_LOCATION) !== (service === 'trunk'))
      return Promise.reject(
        new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no running switch ${describe(name)}`, {
          details: { name: String(name) },
        }),
      );
    return inst.target.request<T>('service', { name: service, request }, this.#core.timeoutMs);
  }
}
