/**
 * Remote flows: the two halves of each flow through a conduit. Outgoing, a
 * fabric link from the local point to the conduit and a pump that wraps
 * what it receives and sends it to the peer; incoming, a link from the
 * conduit to the local receiver, opened on first use. Opening and closing
 * ask the peer for its half.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import type { PointView } from '../directory/index.js';
import { parsePointId } from '../directory/index.js';
import {
  DEFAULT_MAXMSG,
  normalizePoint,
  registrationInput,
  type PointRegistration,
  type PointRegistrationInput,
} from '../fabric/point.js';
import type { Conduit, InFlow, OutFlow, RemoteLink } from './conduit.js';
import { WaitList } from '../core/waitList.js';
import { EnvelopeReader, envelopeWriter, withBase } from './envelope.js';
import { FlowSlabs, SlabPool } from './slabPool.js';
import { startAt } from './flowCredit.js';
import type { PeeringCore } from './state.js';
import { BATCH, FLOW_WINDOW, FLOW_WINDOW_BYTES, STAND_IN_MAXMSG, key } from './types.js';

/** @internal Where our flow `sender` -> `receiver` to `c` goes on (the `open` arguments): its first message not reported taken, and its next. */
export function resumeAt(c: Conduit, sender: string, receiver: string): { from: number; sent: number } {
  const k = key(sender, receiver);
  const f = c.out.get(k);
  const next = c.nextSeq.get(k) ?? 0;
  return f ? { from: f.acked, sent: f.seq } : { from: next, sent: next };
}

/** @internal The stand-in's characteristics with its queue cut to {@link STAND_IN_MAXMSG} (minmsg kept below it). */
export function capQueue(input: PointRegistrationInput): PointRegistrationInput {
  const c = input.characteristics ?? {};
  if ((c.maxmsg ?? DEFAULT_MAXMSG) <= STAND_IN_MAXMSG) return input;
  const minmsg = Math.min(c.minmsg ?? STAND_IN_MAXMSG / 2, STAND_IN_MAXMSG / 2);
  return { ...input, characteristics: { ...c, maxmsg: STAND_IN_MAXMSG, minmsg } };
}

/**
 * @internal Point `to` of peer `c` as this daemon's fabric plans it (its registration, never started),
 * `shape`d first; `AMIX_ERR_INVALID_ARG` when the peer described it in a way this daemon cannot use.
 */
export function standInFor(
  c: Conduit,
  to: PointView,
  shape: (input: PointRegistrationInput) => PointRegistrationInput = (input) => input,
): PointRegistration {
  try {
    return normalizePoint(shape(registrationInput(to)));
  } catch (err) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `peer ${c.id} described point ${to.id} in a way this daemon cannot use: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** @internal Opens, pumps and closes the flows through every conduit. */
export class Flows {
  readonly #core: PeeringCore;
  /** The slabs every outgoing flow's envelopes are written into (one pool per daemon). */
  readonly pool = new SlabPool();

  constructor(core: PeeringCore) {
    this.#core = core;
  }

  /** Open one flow of a remote link: `out` when `from` is the local point. */
  async openFlow(c: Conduit, from: PointView, to: PointView, out: boolean): Promise<void> {
    if (out) {
      // The peer first (it checks the receiver), then our half, which starts sending.
      await this.#core.request(c, 'open', { sender: from.id, receiver: to.id, ...resumeAt(c, from.id, to.id) });
      await this.openOut(c, from, to);
    } else {
      const f = await this.openIn(c, from.id, to.id);
      const r = await this.#core.request(c, 'openOut', { sender: from.id, receiver: to.id });
      startAt(f, r.from);
    }
  }

  /** Link local point `from` to the conduit, planned as remote point `to`, and start the pump. */
  async openOut(c: Conduit, from: PointView, to: PointView): Promise<OutFlow> {
    const k = key(from.id, to.id);
    const existing = c.out.get(k);
    if (existing && this.#core.host.fabric.hasLink(existing.link)) return existing;
    const standIn = standInFor(c, to, capQueue);
    const link = await this.#core.host.fabric.connect(from.name, null, {
      direction: 'aToB',
      as: c.end(to.id),
      standIn,
    });
    const seq = c.nextSeq.get(k) ?? 0;
    const flow: OutFlow = {
      key: k,
      sender: from.id,
      receiver: to.id,
      link: link.id,
      // A flow opened again numbers on from where it stopped: per epoch, a flow's numbers never repeat, so the
      // receiver's duplicate filter (kept across its restarts) cannot mistake new messages for old ones.
      seq,
      wrap: envelopeWriter(from.id, to.id),
      acked: seq,
      kept: [],
      keptBytes: 0,
      slabs: new FlowSlabs(this.pool, seq),
      credit: new WaitList(),
      tail: Promise.resolve(),
      resendQueued: undefined,
      closed: false,
    };
    c.out.set(k, flow);
    const rx = c.endpoint.channels(link.id).rx[0];
    if (rx) void this.#pump(c, flow, rx);
    return flow;
  }

  /**
   * The conduit's outbound half of one flow: take what the local point sent
   * (a batch at a time, within the flow's credit), wrap each message, keep
   * it until the peer reports it taken, send it. The flow's credit is the
   * backpressure: a point the peer's side does not read stops this flow
   * only, and the local point's link fills up behind it.
   */
  async #pump(c: Conduit, f: OutFlow, rx: Channel): Promise<void> {
    for (;;) {
      while (f.seq - f.acked >= FLOW_WINDOW || f.keptBytes >= FLOW_WINDOW_BYTES) {
        if (this.#core.closed || f.closed) return;
        await f.credit.wait();
      }
      if (this.#core.closed || f.closed) return;
      let batch: Uint8Array[];
      try {
        batch = await rx.receiveMany({ maxCount: Math.min(BATCH, FLOW_WINDOW - (f.seq - f.acked)) });
      } catch {
        break;
      }
      // Written straight into a pooled slab: `slabPool.ts` says when the region may be written again.
      const region = f.slabs.carve(f.wrap.bytes(f.seq, batch), f.seq + batch.length);
      const frames = f.wrap.many(f.seq, batch, region.bytes);
      f.seq += batch.length;
      c.nextSeq.set(f.key, f.seq);
      for (const e of frames) {
        f.kept.push(e);
        f.keptBytes += e.length;
      }
      const sent = this.#send(c, f, frames);
      // Settled either way (sent, or the conduit closing): sendMany no longer reads the frames.
      void sent.finally(() => f.slabs.settled(region.slab)).catch(() => {});
      if (!(await sent)) return;
    }
    if (c.out.get(f.key) === f) c.out.delete(f.key);
  }

  /** Send `frames` of `f` after the flow's earlier sends; false once the conduit is closing. */
  #send(c: Conduit, f: OutFlow, frames: Uint8Array[]): Promise<boolean> {
    const p = f.tail.then(() => this.#sendNow(c, frames));
    f.tail = p.catch(() => {});
    return p;
  }

  async #sendNow(c: Conduit, frames: Uint8Array[]): Promise<boolean> {
    for (;;) {
      if (this.#core.closed) return false;
      await c.dataReady();
      const tx = c.dataTx;
      if (!tx) return false;
      try {
        await tx.sendMany(frames);
        c.stats.sent += frames.length;
        return true;
      } catch (err) {
        // Replaced by a new data channel (the peer moved): send again there. Otherwise the conduit is closing.
        if (c.dataTx !== tx) continue;
        this.#core.host.log(`peering: a flow to ${c.id} stopped: ${(err as Error).message}`);
        return false;
      }
    }
  }

  /** The peer's point took every message of the flow below `taken`: forget them, and give the pump credit. */
  acked(f: OutFlow, taken: number): void {
    // Only forward, and never past what was sent: anything else is stale or not the peer's to say.
    if (!Number.isSafeInteger(taken) || taken <= f.acked || taken > f.seq) return;
    const n = taken - f.acked;
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += f.kept[i]!.length;
    f.kept.splice(0, n);
    f.keptBytes -= bytes;
    f.acked = taken;
    // After the views are out of `kept`: slabs wholly below `taken` (and sent) can be reused.
    f.slabs.acked(taken);
    f.credit.resolveAll();
  }

  /**
   * Send the flow's kept messages again from `from` (-1, or anything below
   * what was acknowledged: from the first not acknowledged), each marked with
   * that start as its `base`: the peer restarted, or found a gap.
   */
  resend(c: Conduit, f: OutFlow, from: number): void {
    const start = from < f.acked ? f.acked : from;
    if (start >= f.seq || (f.resendQueued !== undefined && f.resendQueued <= start)) return;
    f.resendQueued = start;
    const frames = f.kept.slice(start - f.acked).map((e) => withBase(e, start));
    c.stats.resent += frames.length;
    void this.#send(c, f, frames).finally(() => {
      if (f.resendQueued === start) f.resendQueued = undefined;
    });
  }

  /** The conduit's inbound half: a link from the conduit to local point `receiver`, opened once. */
  openIn(c: Conduit, sender: string, receiver: string): Promise<InFlow> {
    const k = key(sender, receiver);
    const have = c.in.get(k);
    if (have && have.ch.isOpen && this.#core.host.fabric.hasLink(have.link)) return Promise.resolve(have);
    let p = c.opening.get(k);
    if (!p) {
      p = (async () => {
        const view = this.#core.host.directory.getPoint(receiver);
        if (!view || parsePointId(view.id)?.directoryId !== this.#core.id) {
          throw new AmixError(
            ErrorCode.AMIX_ERR_UNKNOWN_POINT,
            `no point identified ${describe(receiver)} on ${this.#core.id}`,
            { details: { name: receiver } },
          );
        }
        const link = await this.#core.host.fabric.connect(null, view.name, { direction: 'aToB', as: c.end(sender) });
        const ch = c.endpoint.channels(link.id).tx[0];
        if (!ch)
          throw new AmixError(
            ErrorCode.AMIX_ERR_INTERNAL,
            `the link to ${view.name} has no sending end at the conduit`,
          );
        const f: InFlow = {
          key: k,
          sender,
          receiver,
          link: link.id,
          ch,
          expected: undefined,
          parked: [],
          draining: 0,
          reported: 0,
          suspectBelow: 0,
          restored: false,
          askedFrom: -1,
          askedAt: 0,
          reader: new EnvelopeReader(sender, receiver),
        };
        // After this daemon restarted: what the point had taken (and this daemon reported) is filtered.
        const kept = this.#core.delivery.get(c.id, c.epoch, k);
        if (kept) {
          f.expected = kept.taken;
          f.reported = kept.taken;
          f.suspectBelow = Infinity;
          f.restored = true;
        } else this.#core.delivery.opened(c.id, c.epoch, k);
        c.in.set(k, f);
        return f;
      })().finally(() => c.opening.delete(k));
      c.opening.set(k, p);
    }
    return p;
  }

  async closeFlows(c: Conduit, rl: RemoteLink): Promise<void> {
    const fabric = this.#core.host.fabric;
    for (const f of rl.flows) {
      // A direct flow is its local fabric link alone; its end tells the peer (`directClose`, from direct.ts).
      if (f.direct !== undefined) {
        if (fabric.hasLink(f.direct)) await fabric.disconnect(f.direct).catch(() => {});
        continue;
      }
      const k = key(f.sender, f.receiver);
      if (f.local === 'out') {
        await this.closeOut(c, k);
        if (c.state === 'up')
          await this.#core.request(c, 'close', { sender: f.sender, receiver: f.receiver }).catch(() => {});
      } else {
        if (c.state === 'up')
          await this.#core.request(c, 'close', { sender: f.sender, receiver: f.receiver }).catch(() => {});
        await this.closeIn(c, k);
      }
    }
  }

  /** Take down the local half of an outgoing flow (flushed by the disconnect), and wait until the peer has acknowledged what was sent. */
  async closeOut(c: Conduit, k: string): Promise<void> {
    const f = c.out.get(k);
    if (!f) return;
    c.out.delete(k);
    await this.#core.host.fabric.disconnect(f.link).catch(() => {});
    f.closed = true;
    f.slabs.close();
    f.credit.resolveAll();
    // Everything sent so far is acknowledged by the peer before it closes its half.
    await c.dataTx?.cycle().catch(() => {});
  }

  async closeIn(c: Conduit, k: string): Promise<void> {
    const f = c.in.get(k);
    if (!f) return;
    c.in.delete(k);
    f.parked.length = 0;
    // Taken down on purpose: nothing of it will be re-sent, so its filter need not be kept.
    this.#core.delivery.forget(c.id, c.epoch, k);
    if (this.#core.host.fabric.hasLink(f.link)) await this.#core.host.fabric.disconnect(f.link).catch(() => {});
  }
}
