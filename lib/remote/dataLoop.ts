/**
 * The data loop: keyed, one per allowed key (its slot's data receiving end,
 * which only that key can reach, so one peer never delays another); with
 * `--insecure`, one per daemon for every peer (which waits for the hello
 * of an id only if it said hello here before, so a stranger costs nothing). It takes every envelope off
 * the data receiving end, checks that its sender is a point of the peer
 * whose key carried it (else drops it as spoofed), finds its flow (the flow of the envelope before,
 * by a byte match, else by identifier, its link opened on first use), drops
 * duplicates, counts gaps, and sends runs of one flow's payloads to its
 * local link at once. Unknown senders or receivers and malformed envelopes
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
import type { Slot } from './slots.js';
import type { PeeringCore } from './state.js';
import { BATCH, key, type RejectedBody } from './types.js';
import type { ZeromqConfirmation } from '../../primitives/zeromq.js';

/** How often unconfirmed hand-offs are looked at again while some wait (the local links acknowledge every 10 ms or so). */
export const CONFIRM_POLL_MS = 5;

/**
 * End-to-end acknowledgement of one data receiving end: an envelope is
 * confirmed to the sending daemon (and its zeromq sender forgets it) only
 * once the local link it was handed to says its receiving point took it
 * (the link's sending end no longer counts it pending), in the order they
 * were taken. Until then the sender keeps it and re-sends it if this daemon
 * dies. Each batch taken from the receiving end is a mark, confirmed when
 * every hand-off before it is taken; each hand-off is a mark that, once
 * taken, records the flow's `taken` number in the duplicate filter's file.
 */
class Acks {
  readonly #core: PeeringCore;
  readonly #confirmation: ZeromqConfirmation;
  /** Hand-offs (`f` set: `need` messages of `f` handed, sequence `seqEnd` next) and batch ends (`n` messages taken), in order. */
  readonly #marks: Array<{ c?: Conduit; f?: InFlow; need: number; seqEnd: number; n: number }> = [];
  /** Messages taken since the last confirmation. */
  #open = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(core: PeeringCore, confirmation: ZeromqConfirmation) {
    this.#core = core;
    this.#confirmation = confirmation;
  }

  handed(c: Conduit, f: InFlow): void {
    this.#marks.push({ c, f, need: f.handed, seqEnd: f.handedSeq, n: 0 });
  }

  /** Re-sent messages (to this process, of an earlier one's) taken since the last call. */
  resent(): number {
    return this.#confirmation.takeResent();
  }

  batch(n: number): void {
    this.#marks.push({ need: 0, seqEnd: 0, n });
    this.advance();
  }

  /** Confirm every batch whose hand-offs are all taken; look again soon while some are not. */
  advance(): void {
    if (this.#stopped) return;
    let confirm = 0;
    const marks = this.#marks;
    while (marks.length > 0) {
      const m = marks[0]!;
      if (m.f) {
        const f = m.f;
        // A link that closed took what it will ever take: nothing is waited for there (the fabric's restart re-delivers).
        if (f.ch.isOpen && f.handed - f.ch.stats().pending < m.need) break;
        this.#core.delivery.taken(m.c!.id, m.c!.epoch, f.key, m.seqEnd);
      } else confirm += m.n;
      marks.shift();
    }
    if (confirm > 0) {
      try {
        this.#confirmation.confirm(Math.min(confirm, this.#confirmation.unconfirmed));
      } catch {
        // The receiving end closed meanwhile: nothing to acknowledge any more.
      }
    }
    if (marks.length > 0 && !this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.advance();
      }, CONFIRM_POLL_MS);
      this.#timer.unref();
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}

/** @internal The data loop of one daemon's peering. */
export class DataLoop {
  readonly #core: PeeringCore;
  readonly #sessions: Sessions;
  readonly #flows: Flows;

  constructor(core: PeeringCore, sessions: Sessions, flows: Flows) {
    this.#core = core;
    this.#sessions = sessions;
    this.#flows = flows;
  }

  /**
   * Unwrap every envelope from every peer and deliver its payload to the
   * receiving point. Malformed envelopes and unknown senders or receivers are
   * counted and skipped; nothing here throws out of the loop.
   */
  async run(rx: Channel, slot?: Slot, confirmation?: ZeromqConfirmation): Promise<void> {
    const acks = confirmation ? new Acks(this.#core, confirmation) : undefined;
    try {
      await this.#run(rx, slot, acks);
    } finally {
      acks?.stop();
    }
  }

  async #run(rx: Channel, slot: Slot | undefined, acks: Acks | undefined): Promise<void> {
    // The flow of the previous envelope: runs of one flow are the common case,
    // recognised by comparing identifier bytes, with no string or map lookup.
    let last: { c: Conduit; f: InFlow } | undefined;
    // Consecutive payloads of one flow go to its link in one sendMany.
    let run: Uint8Array[] = [];
    let runOf: { c: Conduit; f: InFlow } | undefined;
    let runEnd = 0;
    const flush = async (): Promise<void> => {
      if (!runOf || run.length === 0) return;
      const { c, f } = runOf;
      const n = run.length;
      try {
        await f.ch.sendMany(run);
        c.stats.received += n;
        f.handed += n;
        f.handedSeq = runEnd;
        acks?.handed(c, f);
      } catch (err) {
        this.#reject(c, f.sender, f.receiver, err as AmixError, n);
      }
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
      // The first `resent` of the batch were re-sent to this process after an earlier one of this
      // daemon had them: those the filter lets through may have been taken before the crash.
      let resent = acks?.resent() ?? 0;
      for (const bytes of batch) {
        const isResent = resent > 0;
        if (isResent) resent--;
        let cur = last;
        let sequence: number;
        let payloadStart: number;
        let payloadEnd: number;
        if (cur !== undefined && cur.f.ch.isOpen && cur.f.reader.match(bytes)) {
          // The common case: the same flow as the envelope before, in the usual layout.
          ({ sequence, payloadStart } = cur.f.reader);
          payloadEnd = bytes.length;
        } else {
          // Another flow, or a layout the reader does not take: the general scan, then the flow by identifier.
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
            await flush();
            cur = next;
            last = next;
          }
          ({ sequence, payloadStart, payloadEnd } = span);
        }
        const { c, f } = cur;
        if (f.expected !== undefined) {
          if (sequence < f.expected) {
            c.stats.duplicates++;
            continue;
          }
          if (sequence > f.expected) c.stats.gaps++;
        }
        if (isResent && f.restored) c.stats.redelivered++;
        f.expected = sequence + 1;
        if (runOf !== cur) {
          await flush();
          runOf = cur;
        }
        run.push(bytes.subarray(payloadStart, payloadEnd));
        runEnd = sequence + 1;
      }
      await flush();
      acks?.batch(batch.length);
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
