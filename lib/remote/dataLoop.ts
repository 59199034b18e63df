/**
 * The data loop: keyed, one per allowed key (its slot's data receiving end,
 * which only that key can reach, so one peer never delays another); with
 * `--insecure`, one per daemon for every peer (which waits for the hello
 * of an id only if it said hello here before, so a stranger costs nothing). It takes every envelope off
 * the data receiving end, checks that its sender is a point of the peer
 * whose key carried it (else drops it as spoofed), finds its flow (the flow of the envelope before,
 * by a byte match, else by identifier, its link opened on first use), drops
 * duplicates, drops gaps (asking for a re-send), and hands runs of one
 * flow's payloads to its local link at once, never waiting on it (per-flow
 * credit, `flowCredit.ts`). Unknown senders or receivers and malformed envelopes
 * are rejected with a code, counted, and reported to the sending daemon;
 * they never stop the loop.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import { parsePointId } from '../directory/index.js';
import type { Conduit, InFlow } from './conduit.js';
import { envelopeIdentifier, scanEnvelope, type EnvelopeSpan } from './envelope.js';
import type { Flows } from './flows.js';
import type { Sessions } from './sessions.js';
import { FlowCredit, startAt } from './flowCredit.js';
import type { Slot } from './slots.js';
import type { PeeringCore } from './state.js';
import { BATCH, key, type RejectedBody } from './types.js';

/** @internal The data loop of one daemon's peering. */
export class DataLoop {
  readonly #core: PeeringCore;
  readonly #sessions: Sessions;
  readonly #flows: Flows;
  /** Per-flow credit, the receiving half: hand-offs that never wait, parks, reports of what was taken. */
  readonly credit: FlowCredit;

  constructor(core: PeeringCore, sessions: Sessions, flows: Flows) {
    this.#core = core;
    this.#sessions = sessions;
    this.#flows = flows;
    this.credit = new FlowCredit(core, (c, f, err, count) => this.#reject(c, f.sender, f.receiver, err, count));
  }

  /**
   * Unwrap every envelope from every peer and deliver its payload to the
   * receiving point. Malformed envelopes and unknown senders or receivers are
   * counted and skipped; nothing here throws out of the loop, and nothing
   * waits on a point: each flow's hand-off waits on its own.
   */
  async run(rx: Channel, slot?: Slot): Promise<void> {
    // The flow of the previous envelope: runs of one flow are the common case,
    // recognised by comparing identifier bytes, with no string or map lookup.
    let last: { c: Conduit; f: InFlow } | undefined;
    // Consecutive payloads of one flow go to its link in one hand-off.
    let run: Uint8Array[] = [];
    let runOf: { c: Conduit; f: InFlow } | undefined;
    const flush = (): void => {
      if (!runOf || run.length === 0) return;
      const { c, f } = runOf;
      c.stats.received += run.length;
      this.credit.hand(c, f, run);
      run = [];
      runOf = undefined;
    };
    for (;;) {
      let batch: Uint8Array[];
      try {
        batch = await rx.receiveMany({ maxCount: BATCH });
      } catch {
        return;
      }
      for (const bytes of batch) {
        let cur = last;
        let sequence: number;
        let payloadStart: number;
        let payloadEnd: number;
        let base = -1;
        if (cur !== undefined && cur.f.ch.isOpen && cur.f.reader.match(bytes)) {
          // The common case: the same flow as the envelope before, in the usual layout.
          ({ sequence, payloadStart } = cur.f.reader);
          payloadEnd = bytes.length;
        } else {
          // Another flow, a re-sent envelope (its `base` is not the usual layout), or a layout the
          // reader does not take: the general scan, then the flow by identifier.
          let span;
          try {
            span = scanEnvelope(bytes);
          } catch (err) {
            this.#core.bad(err as AmixError, 'data');
            continue;
          }
          const next = await this.#route(bytes, span, slot);
          if (!next) continue;
          if (next.f !== cur?.f) {
            flush();
            cur = next;
            last = next;
          }
          ({ sequence, payloadStart, payloadEnd, base } = span);
        }
        const { c, f } = cur;
        if (base >= 0) startAt(f, base);
        if (f.expected === undefined) {
          // Where the flow starts is not known yet (this daemon restarted and has no record of it):
          // taking this one could turn the re-send of earlier ones into "duplicates". Ask for them.
          c.stats.gaps++;
          this.credit.ask(c, f, -1);
          continue;
        }
        if (sequence < f.expected) {
          c.stats.duplicates++;
          continue;
        }
        if (sequence > f.expected) {
          // Some did not come (lost with an earlier process of this daemon): they are re-sent, in order.
          c.stats.gaps++;
          this.credit.ask(c, f, f.expected);
          continue;
        }
        // A re-sent message: its point may have taken it before (after the last report of what it took).
        if (base >= 0 || sequence < f.suspectBelow) c.stats.redelivered++;
        f.expected = sequence + 1;
        if (runOf !== cur) {
          flush();
          runOf = cur;
        }
        run.push(bytes.subarray(payloadStart, payloadEnd));
      }
      flush();
    }
  }

  /** The conduit and flow an envelope belongs to (its link opened if need be), or undefined after rejecting it. */
  async #route(bytes: Uint8Array, span: EnvelopeSpan, slot?: Slot): Promise<{ c: Conduit; f: InFlow } | undefined> {
    let sender: string;
    let receiver: string;
    try {
      sender = envelopeIdentifier(bytes, span.senderStart, span.senderEnd, 'sender');
      receiver = envelopeIdentifier(bytes, span.receiverStart, span.receiverEnd, 'receiver');
    } catch (err) {
      this.#core.bad(err as AmixError, 'data');
      return undefined;
    }
    const dir = parsePointId(sender)?.directoryId;
    if (slot && dir !== undefined && slot.id !== undefined && dir !== slot.id) {
      this.#core.spoofed(slot, sender, 'data');
      return undefined;
    }
    // A peer's data can arrive before its hello is bound here: a restarted
    // daemon is reached by the peer's reconnecting data channel (which re-sends
    // what was not acknowledged) while the hellos are still crossing. Dropping
    // those would lose accepted messages, so the loop waits for that hello.
    // Keyed, that is the loop of the peer's own key: the wait holds up no one else.
    const c =
      dir === undefined
        ? undefined
        : slot
          ? slot.conduit?.ctlTx
            ? slot.conduit
            : await slot.whenBound(this.#core.helloGrace)
          : (this.#core.peers.get(dir) ??
            (this.#sessions.isKnown(dir) ? await this.#sessions.whenPeer(dir) : undefined));
    if (c && slot && c.id !== dir) {
      // A key listed without an id, pinned meanwhile to another id than this sender's.
      this.#core.spoofed(slot, sender, 'data');
      return undefined;
    }
    if (!c) {
      this.#core.counts.unknownSender++;
      this.#core.bad(
        new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `envelope from ${describe(sender)}, which is no peer's point`),
        'data',
      );
      return undefined;
    }
    let f = c.in.get(key(sender, receiver));
    if (!f || !f.ch.isOpen) {
      try {
        f = await this.#flows.openIn(c, sender, receiver);
      } catch (err) {
        this.#reject(c, sender, receiver, err as AmixError);
        return undefined;
      }
    }
    return { c, f };
  }

  #reject(c: Conduit, sender: string, receiver: string, err: AmixError, count = 1): void {
    c.stats.rejected += count;
    this.#core.logLimited(
      `peering: rejected an envelope from ${sender} to ${receiver}: ${err.message} (${err.code ?? 'no code'})`,
    );
    const body: RejectedBody = {
      sender,
      receiver,
      count,
      code: err.code ?? ErrorCode.AMIX_ERR_INTERNAL,
      message: err.message,
    };
    if (c.ctlTx) this.#core.rpc.event('rejected', { ...body }, { tx: c.ctlTx, to: c.id });
  }
}
