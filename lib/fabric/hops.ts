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
import { brokerRegistration, hopOptions, type BrokerTable, type FlowPlan } from './brokers.js';
import { kEnded } from './link.js';
import type { PointRegistration } from './point.js';
import type { ChannelOptions } from '../core/primitive.js';
import type { ProcessChannelOptions } from '../../primitives/queueConditionProcess.js';
import { endOf, hopKey, type End, type FabricCore, type Inst, type LinkRec } from './records.js';
import type { LinkState } from './types.js';
import { isSwitchPoint } from './switchFrame.js';

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
    const plan: FlowPlan = rec.hop ? { primitive: rec.hop.primitive } : this.#brokers.planFlow(fromReg, toReg);
    const rxChar = (toReg ?? fromReg)!.characteristics;
    const options = rec.hop ? { ...hopOptions(rxChar), ...rec.hop.options } : hopOptions(rxChar);
    // Only an end that faces a switch (and is not one) frames with the switch header: a direct link pays nothing.
    const sw = switchedEnds(from, to);
    if (!plan.broker) {
      await this.#openHop(
        rec,
        from,
        to,
        plan.primitive,
        this.#restartable(options, plan.primitive, toReg),
        steps,
        [to.id, from.id],
        sw,
      );
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
    await this.#openHop(rec, from, b, plan.broker.from, options, [steps[0], undefined], [to.id, from.id], {
      tx: sw.tx,
      rx: false,
    });
    await this.#openHop(
      rec,
      b,
      to,
      plan.broker.to,
      this.#restartable(options, plan.broker.to, toReg),
      [undefined, steps[1]],
      [to.id, from.id],
      { tx: false, rx: sw.rx },
    );
  }

  /**
   * The options of a hop into `toReg`: for a restartable point on a
   * primitive whose sender survives its receiver's restart, a reconnect
   * policy that keeps trying, quickly, for as long as a restart may take.
   * The sender's own default (8 attempts, backoff to 1 s, 4.55 s in all)
   * would both add up to a second to each recovery and give up (losing its
   * unacknowledged messages) on a slow restart.
   */
  #restartable(options: ChannelOptions, primitive: string, toReg: PointRegistration | undefined): ChannelOptions {
    if (!toReg?.characteristics.restart || !RESUMABLE.has(primitive)) return options;
    // A restart is at most an init, a start and an openReceiver, each bounded by timeoutMs.
    const budgetMs = 3 * this.#core.timeoutMs + 2000;
    const o: ProcessChannelOptions = {
      ...options,
      reconnect: { attempts: Math.ceil(budgetMs / RETRY_MS), initialDelayMs: 20, maxDelayMs: RETRY_MS },
    };
    return o;
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
    sw: { tx: boolean; rx: boolean } = { tx: false, rx: false },
  ): Promise<void> {
    const timeout = this.#core.timeoutMs;
    const link = rec.id;
    const { address } = await to.target.request<{ address: ChannelOptions['address'] }>(
      'openReceiver',
      { link, peer: toSees, primitive, options },
      timeout,
    );
    try {
      await from.target.request(
        'openSender',
        {
          link,
          peer: fromSees,
          primitive,
          address,
          options,
          ...(sw.tx ? { switched: true } : {}),
          ...(rec.heldAt === from.id ? { held: true } : {}),
        },
        timeout,
      );
      from.senderList.push({ link, peer: fromSees });
      if (steps[0] !== undefined)
        this.#core.emit({ type: 'linkStep', link, step: steps[0], end: from.id, list: 'sender', peer: fromSees });
      await to.target.request('listReceiver', { link, peer: toSees, ...(sw.rx ? { switched: true } : {}) }, timeout);
    } catch (err) {
      await to.target.request('closeLink', { link }, timeout).catch(() => {});
      await from.target.request('closeLink', { link }, timeout).catch(() => {});
      throw err;
    }
    to.receiverList.push({ link, peer: toSees });
    if (steps[1] !== undefined)
      this.#core.emit({ type: 'linkStep', link, step: steps[1], end: to.id, list: 'receiver', peer: toSees });
    rec.flows.push({ from: from.id, to: to.id, primitive });
    (rec.hops ??= new Map()).set(hopKey(from.id, to.id), { primitive, address, options });
  }

  /**
   * Remove a link: off the table and every end's lists, its channel ends
   * closed by the ends' agents, its brokers ended, the caller's handle ended
   * (with `reason` as the cause its receives see). Once per link.
   * `disconnect` (a DISCONNECT, after its flush) runs each sending end's
   * primitive disconnect step before the close, a broker's included.
   */
  async teardownLink(rec: LinkRec, reason?: Error, disconnect = false): Promise<void> {
    const core = this.#core;
    if (!core.links.has(rec.id)) return;
    core.links.delete(rec.id);
    rec.state = 'closed';
    const caller = core.callerEnds.get(rec.id);
    core.callerEnds.delete(rec.id);
    // Senders first, so a receiver's drain is not cut short by its own close. A broker's ends are
    // the link's too: closed like A's and B's (a DISCONNECT runs its sending ends' primitive
    // disconnect, which terminating the broker alone would skip), before the broker is ended.
    const senders = new Set(rec.flows.map((f) => f.from));
    const ends = [...new Set([rec.a, ...rec.brokers, ...rec.b])].sort(
      (x, y) => Number(senders.has(y)) - Number(senders.has(x)),
    );
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
   * A restarted instance's links, under the same ids. Where every hop the
   * instance is an end of can resume ({@link RESUMABLE}), only the
   * instance's own ends are made again, at the addresses they had: each
   * receiving end listens where the dead one did, so the peer's sending end
   * (kept, with its session and every message the dead instance had not
   * acknowledged as taken) reconnects to it and re-sends those first, in
   * order; each sending end dials the peer's kept receiving end, whose queue
   * (what the dead instance sent and the peer had not taken) is still there.
   * Otherwise each peer drops its old ends of the link and each flow is
   * opened anew. A link that was suspended is suspended again.
   */
  async reopen(inst: Inst, linkIds: readonly string[]): Promise<void> {
    const core = this.#core;
    const recs = linkIds.map((l) => core.links.get(l)).filter((r): r is LinkRec => r !== undefined);
    const resumable = recs.filter((r) => this.#canResume(r, inst));
    // Every link's receiving ends before any sending end: the peers' senders are waiting to re-send.
    for (const rec of resumable) await this.#resume(rec, inst, 'receivers');
    for (const rec of resumable) await this.#resume(rec, inst, 'senders');
    for (const rec of recs) {
      if (resumable.includes(rec)) continue;
      const l = rec.id;
      const flows = rec.flows;
      rec.flows = [];
      rec.hops?.clear();
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

  /** True when every hop of `rec` that `inst` is an end of was recorded and is on a resumable primitive. */
  #canResume(rec: LinkRec, inst: Inst): boolean {
    const mine = rec.flows.filter((f) => f.from === inst.id || f.to === inst.id);
    return (
      mine.length > 0 &&
      mine.every((f) => {
        const h = rec.hops?.get(hopKey(f.from, f.to));
        const path = (h?.address as { path?: unknown } | undefined)?.path;
        return h !== undefined && RESUMABLE.has(h.primitive) && typeof path === 'string' && path !== '';
      })
    );
  }

  /** Re-make `inst`'s receiving (or sending) ends of `rec`'s hops where they were (see {@link reopen}); the peers' ends are untouched. */
  async #resume(rec: LinkRec, inst: Inst, which: 'receivers' | 'senders'): Promise<void> {
    const core = this.#core;
    const link = rec.id;
    const timeout = core.timeoutMs;
    const hops = rec.flows.filter((f) => f.from === inst.id || f.to === inst.id);
    for (const f of hops) {
      if (which !== 'receivers' || f.to !== inst.id) continue;
      const h = rec.hops!.get(hopKey(f.from, f.to))!;
      const socketPath = (h.address as { path: string }).path;
      const options: ProcessChannelOptions = { ...h.options, socketPath };
      await inst.target.request('openReceiver', { link, peer: f.from, primitive: h.primitive, options }, timeout);
      const rxSw = switchedEnds(endOf(core, rec, originOf(rec, f)), inst).rx;
      await inst.target.request('listReceiver', { link, peer: f.from, ...(rxSw ? { switched: true } : {}) }, timeout);
      inst.receiverList.push({ link, peer: f.from });
      const step = originOf(rec, f) === rec.a ? 2 : 4;
      core.emit({ type: 'linkStep', link, step, end: inst.id, list: 'receiver', peer: f.from });
    }
    for (const f of hops) {
      if (which !== 'senders' || f.from !== inst.id) continue;
      const h = rec.hops!.get(hopKey(f.from, f.to))!;
      await inst.target.request(
        'openSender',
        {
          link,
          peer: f.to,
          primitive: h.primitive,
          address: h.address,
          options: h.options,
          ...(switchedEnds(inst, endOf(core, rec, f.to)).tx ? { switched: true } : {}),
          ...(rec.heldAt === inst.id ? { held: true } : {}),
        },
        timeout,
      );
      inst.senderList.push({ link, peer: f.to });
      core.emit({ type: 'linkStep', link, step: inst.id === rec.a ? 1 : 3, end: inst.id, list: 'sender', peer: f.to });
      // The peers' ends kept their suspension; the new sending end starts unsuspended.
      if (rec.state !== 'active') await inst.target.request('suspend', { link }, timeout);
    }
  }
}

/**
 * Primitives whose sending end survives the death of its receiving end and
 * re-sends, to a successor listening at the same address, everything the
 * receiving application had not acknowledged as taken
 * (`queueConditionProcess`: "at-least-once across a receiver restart").
 */
// By name: importing the primitive here would load it with the fabric (the registry loads it on first use).
const RESUMABLE: ReadonlySet<string> = new Set(['queueConditionProcess']);

/** The longest a kept sender waits between attempts to reach a restarting receiver. */
const RETRY_MS = 100;

/** The end a hop's flow starts at: walk back from `f` through the link's brokers. */
function originOf(rec: LinkRec, f: { from: string; to: string }): string {
  let from = f.from;
  for (let guard = 0; rec.brokers.includes(from) && guard < rec.brokers.length; guard++) {
    const prev = rec.flows.find((x) => x.to === from);
    if (!prev) break;
    from = prev.from;
  }
  return from;
}

/** Take `link` off an end's sender and receiver lists. */
function dropLink(end: End, link: string): void {
  end.senderList = end.senderList.filter((e) => e.link !== link);
  end.receiverList = end.receiverList.filter((e) => e.link !== link);
}

/** Which side of a flow from `from` to `to` frames with the switch header: the one facing a switch that is not one itself. */
function switchedEnds(from: End | undefined, to: End | undefined): { tx: boolean; rx: boolean } {
  const isSw = (e: End | undefined) => isSwitchPoint((e as Inst | undefined)?.point);
  const a = isSw(from);
  const b = isSw(to);
  return { tx: b && !a, rx: a && !b };
}
