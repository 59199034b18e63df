/**
 * Opening and tearing down the hops of a link. A flow from one end to
 * another is one hop (both ends on one primitive) or two with a broker
 * instance between them. Each hop is opened through the ends' agents: the
 * receiving end first (it makes the channel and hands back its address),
 * then the sending end attaches, and both ends' lists record it (seed 002,
 * connect steps 1-4).
 *
 * @module
 */
import { brokerRegistration, hopOptions, type BrokerTable } from './brokers.js';
import { kEnded } from './link.js';
import type { PointRegistration } from './point.js';
import type { ChannelOptions } from '../core/primitive.js';
import { endOf, type End, type FabricCore, type Inst, type LinkRec } from './records.js';
import type { LinkState } from './types.js';

/** @internal What the hops need of the supervisor: start a broker instance, end one. */
export interface InstanceOps {
  spawn(reg: PointRegistration, id: string, client: string | undefined): Promise<Inst>;
  terminate(inst: Inst): Promise<void>;
}

/** @internal Opens, suspends and tears down the hops of the fabric's links. */
export class Hops {
  readonly #core: FabricCore;
  readonly #brokers: BrokerTable;
  readonly #instances: InstanceOps;

  constructor(core: FabricCore, brokers: BrokerTable, instances: InstanceOps) {
    this.#core = core;
    this.#brokers = brokers;
    this.#instances = instances;
  }

  /**
   * Open one flow: a receiving end at `to`, a sending end at `from` (each by
   * its agent), and the list entries, in the seed's order: `steps[0]` puts
   * the receiver on `from`'s sender list, then `steps[1]` the sender on
   * `to`'s receiver list (1 and 2 for A → B, 3 and 4 for B → A). Each step
   * is a `linkStep` event once the end's agent has made the entry.
   */
  async openFlow(
    rec: LinkRec,
    from: End,
    fromReg: PointRegistration | undefined,
    to: End,
    toReg: PointRegistration | undefined,
    steps: readonly [number, number] = [1, 2],
  ): Promise<void> {
    const plan = this.#brokers.planFlow(fromReg, toReg);
    const rxChar = (toReg ?? fromReg)!.characteristics;
    const options = hopOptions(rxChar);
    if (!plan.broker) {
      await this.#openHop(rec, from, to, plan.primitive, options, steps);
      return;
    }
    // Insert the broker point: from → broker on one primitive, broker → to on the other.
    let n = 1;
    while (this.#core.instances.has(`broker#${n}`)) n++;
    const b = await this.#instances.spawn(brokerRegistration(plan.broker, rxChar), `broker#${n}`, undefined);
    rec.brokers.push(b.id);
    b.links.add(rec.id);
    // The broker's own list entries are not the seed's steps: only A's and B's are numbered. And the
    // broker is no party (it converts between primitives): each end's entry names the far end, so
    // `from` and `to` of a message, and `send({ to })`, are the same as on a direct link.
    await this.#openHop(rec, from, b, plan.broker.from, options, [steps[0], undefined], [to.id, from.id]);
    await this.#openHop(rec, b, to, plan.broker.to, options, [undefined, steps[1]], [to.id, from.id]);
  }

  /**
   * Open one hop: the receiving end at `to` first (it makes the channel and
   * hands back the address), then the sending end at `from`, which goes on
   * `from`'s sender list; only then is the receiving end put on `to`'s
   * receiver list. On failure both ends are closed. `fromSees` and
   * `toSees` are the peer names the two ends' entries carry (the far ends of
   * the link when the hop is one side of a broker).
   */
  async #openHop(
    rec: LinkRec,
    from: End,
    to: End,
    primitive: string,
    options: ChannelOptions,
    steps: readonly [number | undefined, number | undefined],
    [fromSees, toSees]: readonly [string, string] = [to.id, from.id],
  ): Promise<void> {
    const timeout = this.#core.timeoutMs;
    const link = rec.id;
    const { address } = await to.target.request<{ address: ChannelOptions['address'] }>(
      'openReceiver',
      { link, peer: toSees, primitive, options },
      timeout,
    );
    try {
      await from.target.request('openSender', { link, peer: fromSees, primitive, address, options }, timeout);
      from.senderList.push({ link, peer: fromSees });
      if (steps[0] !== undefined)
        this.#core.emit({ type: 'linkStep', link, step: steps[0], end: from.id, list: 'sender', peer: fromSees });
      await to.target.request('listReceiver', { link, peer: toSees }, timeout);
    } catch (err) {
      await to.target.request('closeLink', { link }, timeout).catch(() => {});
      await from.target.request('closeLink', { link }, timeout).catch(() => {});
      throw err;
    }
    to.receiverList.push({ link, peer: toSees });
    if (steps[1] !== undefined)
      this.#core.emit({ type: 'linkStep', link, step: steps[1], end: to.id, list: 'receiver', peer: toSees });
    rec.flows.push({ from: from.id, to: to.id, primitive });
  }

  /**
   * Remove a link: off the table and every end's lists, its channel ends
   * closed by the ends' agents, its brokers ended, the caller's handle ended
   * (with `reason` as the cause its receives see). Once per link.
   * `disconnect` (a DISCONNECT, after its flush) runs each sending end's
   * primitive disconnect step before the close.
   */
  async teardownLink(rec: LinkRec, reason?: Error, disconnect = false): Promise<void> {
    const core = this.#core;
    if (!core.links.has(rec.id)) return;
    core.links.delete(rec.id);
    rec.state = 'closed';
    const caller = core.callerEnds.get(rec.id);
    core.callerEnds.delete(rec.id);
    // Senders first, so a receiver's drain is not cut short by its own close.
    const senders = new Set(rec.flows.map((f) => f.from));
    const ends = [...new Set([rec.a, ...rec.b])].sort((x, y) => Number(senders.has(y)) - Number(senders.has(x)));
    for (const id of ends) {
      const end = core.instances.get(id) ?? (caller?.id === id ? caller : undefined);
      if (!end) continue;
      end.links.delete(rec.id);
      dropLink(end, rec.id);
      const i = end.placed.indexOf(rec.id);
      if (i >= 0) end.placed.splice(i, 1);
      if (!(end as Inst).host?.hasExited)
        await end.target
          .request('closeLink', { link: rec.id, reason: reason?.message, disconnect }, core.timeoutMs)
          .catch(() => {});
    }
    for (const b of rec.brokers) {
      const inst = core.instances.get(b);
      // A broker already ending is the one whose termination tore this link
      // down: waiting for its exit here would wait on ourselves.
      if (inst && !inst.ending) await this.#instances.terminate(inst).catch(() => {});
    }
    rec.handle?.[kEnded](reason);
  }

  /** Suspend (or resume) every sending end of a link (the primitive's own suspend where it has one). */
  async setSuspended(rec: LinkRec, on: boolean, state: LinkState): Promise<void> {
    for (const f of rec.flows)
      await endOf(this.#core, rec, f.from)?.target.request(
        on ? 'suspend' : 'resume',
        { link: rec.id },
        this.#core.timeoutMs,
      );
    const now = Date.now();
    if (on && rec.suspendedSince === undefined) rec.suspendedSince = now;
    if (!on && rec.suspendedSince !== undefined) {
      rec.suspendedMs += now - rec.suspendedSince;
      rec.suspendedSince = undefined;
    }
    rec.state = state;
  }

  /**
   * Cycle the sending ends of `rec`'s flows (only those to `to`, if given):
   * a null message through each, which lands after every message it
   * accepted. `bestEffort` ignores ends that do not answer.
   */
  async cycle(rec: LinkRec, timeoutMs: number, to?: string, bestEffort = false): Promise<void> {
    for (const f of rec.flows) {
      if (to !== undefined && f.to !== to) continue;
      const sent = endOf(this.#core, rec, f.from)?.target.request('cycle', { link: rec.id }, timeoutMs);
      await (bestEffort ? sent?.catch(() => {}) : sent);
    }
  }

  /**
   * A restarted instance's links, opened again under the same ids: each
   * peer drops its old ends of the link, then each flow is opened anew, and
   * a link that was suspended or held is suspended again.
   */
  async reopen(inst: Inst, linkIds: readonly string[]): Promise<void> {
    const core = this.#core;
    for (const l of linkIds) {
      const rec = core.links.get(l);
      if (!rec) continue;
      const flows = rec.flows;
      rec.flows = [];
      for (const id of new Set([rec.a, ...rec.b])) {
        const peer = endOf(core, rec, id);
        if (peer && peer !== inst) {
          await peer.target.request('closeLink', { link: l }, core.timeoutMs).catch(() => {});
          dropLink(peer, l);
        }
      }
      for (const f of flows) {
        const from = endOf(core, rec, f.from)!;
        const to = endOf(core, rec, f.to)!;
        const steps = f.from === rec.a ? ([1, 2] as const) : ([3, 4] as const);
        await this.openFlow(rec, from, (from as Inst).point, to, (to as Inst).point, steps);
      }
      if (rec.state !== 'active') await this.setSuspended(rec, true, rec.state);
    }
  }
}

/** Take `link` off an end's sender and receiver lists. */
function dropLink(end: End, link: string): void {
  end.senderList = end.senderList.filter((e) => e.link !== link);
  end.receiverList = end.receiverList.filter((e) => e.link !== link);
}
