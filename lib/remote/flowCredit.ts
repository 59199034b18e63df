/**
 * Per-flow credit, the receiving daemon's half: every flow from a peer has
 * its own window ({@link FLOW_WINDOW}) and its own acknowledgement, so a
 * point that stops reading holds up its own flow and nothing else.
 *
 * - The data loop hands each run of a flow's messages to the flow's local
 *   link without waiting ({@link FlowCredit.hand}); what the link cannot take
 *   now is parked on the flow and drained by a task of the flow's own. The
 *   sender keeps to the window, so a park holds at most about a window.
 * - Every {@link FLOW_ACK_MS} while some flow moved, each peer is told, in one
 *   `flowAcks` event, how far the points took each of its flows: what the
 *   flow delivered less what is parked, being handed, or pending in the
 *   local link. The sender forgets those messages and sends that much more.
 *   The same number goes to `delivered.json` (the duplicate filter kept
 *   across this daemon's restarts).
 * - A gap (a message after one that did not come, as after this daemon
 *   restarted, or a flow whose start is not known yet) is dropped and the
 *   sender asked to re-send from the first missing one (`resend`), again
 *   every {@link FLOW_RESEND_ASK_MS} until it comes. Re-sent envelopes carry
 *   a `base`: everything below it was reported taken.
 *
 * The sender's half (credit, kept messages, re-sends) is in `flows.ts`.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';
import type { Conduit, InFlow } from './conduit.js';
import type { PeeringCore } from './state.js';
import { BATCH, FLOW_ACK_MS, FLOW_RESEND_ASK_MS, FLOW_WINDOW } from './types.js';

/**
 * @internal The flow's start is `from` (its sender said so in `open`, in its
 * `openOut` reply, or as a re-sent envelope's `base`). Anything else than a
 * sequence number is ignored.
 */
export function startAt(f: InFlow, from: unknown): void {
  if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) return;
  // Below `from` the sender keeps nothing: an earlier process of this daemon reported it taken.
  if (f.expected === undefined || from > f.expected) f.expected = from;
}

/**
 * @internal The sender's `open` of `f`: it goes on from `from` ({@link startAt}),
 * having sent up to `sent`. For a flow kept across this daemon's restart,
 * what lies below `sent` may have been taken already (the furthest any
 * `open` of it says: a re-open can cross an older one).
 */
export function opened(f: InFlow, from: unknown, sent: unknown): void {
  startAt(f, from);
  if (f.restored && typeof sent === 'number' && Number.isSafeInteger(sent))
    f.suspectBelow = f.suspectBelow === Infinity ? sent : Math.max(f.suspectBelow, sent);
}

/** How a refused hand-off is reported (the data loop's reject: counted, logged, told to the sender). */
export type RejectFn = (c: Conduit, f: InFlow, err: AmixError, count: number) => void;

/** @internal The receiving side of per-flow credit (see the module comment). */
export class FlowCredit {
  readonly #core: PeeringCore;
  readonly #reject: RejectFn;
  /** Flows whose taken number may have moved, or that wait for a re-send, with their conduits. */
  readonly #watch = new Map<InFlow, Conduit>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(core: PeeringCore, reject: RejectFn) {
    this.#core = core;
    this.#reject = reject;
  }

  /** Give `msgs` (the flow's next, in order) to its local link now, parking what it cannot take; never waits. */
  hand(c: Conduit, f: InFlow, msgs: Uint8Array[]): void {
    if (f.parked.length === 0 && f.draining === 0) {
      let n: number;
      try {
        n = f.ch.trySendMany(msgs);
      } catch (err) {
        this.#reject(c, f, err as AmixError, msgs.length);
        return;
      }
      if (n < msgs.length) this.#park(c, f, n === 0 ? msgs : msgs.slice(n));
    } else this.#park(c, f, msgs);
    this.#moved(c, f);
  }

  /**
   * Ask the sender of `f` to re-send from `from` (-1: from the first message
   * it has not had reported taken). Once per {@link FLOW_RESEND_ASK_MS} for
   * the same place; the flow stays watched, so the ask is repeated until the
   * flow moves past it.
   */
  ask(c: Conduit, f: InFlow, from: number): void {
    const now = Date.now();
    if (f.askedAt !== 0 && f.askedFrom === from && now - f.askedAt < FLOW_RESEND_ASK_MS) return;
    f.askedFrom = from;
    f.askedAt = now;
    if (c.ctlTx)
      this.#core.rpc.event('resend', { sender: f.sender, receiver: f.receiver, from }, { tx: c.ctlTx, to: c.id });
    this.#moved(c, f);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#watch.clear();
  }

  #park(c: Conduit, f: InFlow, msgs: Uint8Array[]): void {
    // The sender keeps to the window; one that does not is refused the excess (counted, and told).
    const room = FLOW_WINDOW + BATCH - f.parked.length;
    if (msgs.length > room) {
      this.#reject(
        c,
        f,
        new AmixError(
          ErrorCode.AMIX_ERR_QUEUE_FULL,
          `flow ${f.key} sent beyond its credit of ${FLOW_WINDOW} messages`,
          { details: { limit: FLOW_WINDOW } },
        ),
        msgs.length - Math.max(0, room),
      );
      if (room <= 0) return;
      msgs = msgs.slice(0, room);
    }
    for (const m of msgs) f.parked.push(m);
    if (f.draining === 0) void this.#drain(c, f);
  }

  /** Hand the parked messages to the local link, waiting on it: this flow's wait only. */
  async #drain(c: Conduit, f: InFlow): Promise<void> {
    while (f.parked.length > 0 && c.in.get(f.key) === f && !this.#stopped) {
      const take = f.parked.splice(0, BATCH);
      // Counted as not taken until the link has them all (the link's own pending counts them too once
      // accepted: reporting less than was taken only delays credit; reporting more could lose messages).
      f.draining = take.length;
      try {
        await f.ch.sendMany(take);
      } catch (err) {
        this.#reject(c, f, err as AmixError, take.length + f.parked.length);
        f.parked.length = 0;
        return;
      } finally {
        f.draining = 0;
      }
      this.#moved(c, f);
    }
  }

  #moved(c: Conduit, f: InFlow): void {
    this.#watch.set(f, c);
    if (!this.#timer && !this.#stopped) {
      this.#timer = setTimeout(() => this.#tick(), FLOW_ACK_MS);
      this.#timer.unref();
    }
  }

  /** The flow's first message its point has not taken. */
  #taken(f: InFlow): number {
    const expected = f.expected!;
    // A link that closed took what it will ever take (a restart of its point re-delivers from its own end).
    if (!f.ch.isOpen) return expected;
    return expected - f.parked.length - f.draining - f.ch.stats().pending;
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const now = Date.now();
    const reports = new Map<Conduit, Array<[string, string, number]>>();
    for (const [f, c] of this.#watch) {
      if (c.in.get(f.key) !== f) {
        this.#watch.delete(f);
        continue;
      }
      if (f.askedAt !== 0) {
        if (f.expected !== undefined && f.expected > f.askedFrom) f.askedAt = 0;
        else if (now - f.askedAt >= FLOW_RESEND_ASK_MS) this.ask(c, f, f.askedFrom);
      }
      if (f.expected === undefined) continue;
      const taken = this.#taken(f);
      if (taken > f.reported) {
        f.reported = taken;
        let list = reports.get(c);
        if (!list) reports.set(c, (list = []));
        list.push([f.sender, f.receiver, taken]);
        this.#core.delivery.taken(c.id, c.epoch, f.key, taken);
      }
      if (taken === f.expected && f.askedAt === 0) this.#watch.delete(f);
    }
    for (const [c, flows] of reports) {
      if (c.ctlTx) this.#core.rpc.event('flowAcks', { flows }, { tx: c.ctlTx, to: c.id });
    }
    if (this.#watch.size > 0 && !this.#timer) {
      this.#timer = setTimeout(() => this.#tick(), FLOW_ACK_MS);
      this.#timer.unref();
    }
  }
}
