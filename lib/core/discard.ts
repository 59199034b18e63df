/**
 * The discard policy of a sending end, applied in one place when a message
 * cannot be taken now (no credit, or the receiver is at `maxmsg`): `block`
 * waits, `dropNewest` drops the message being sent, `dropOldest` keeps it in
 * an outbox of at most `outboxMax` messages and drops the oldest there
 * beyond that (messages already on the wire are never recalled), `reject`
 * throws `AMIX_ERR_QUEUE_FULL`. Every drop and refusal is counted and emitted.
 *
 * @module
 */
import type { AmixError } from './errors.js';
import type { ChannelEvent, DiscardPolicy } from './primitive.js';

/** What {@link discardWhenFull} works on: the sending end's outbox, counters and event sink. */
export interface DiscardTarget {
  /** Messages accepted by `dropOldest` and waiting for credit (copies, oldest first). */
  readonly outbox: Uint8Array[];
  /** How many messages the outbox holds at most. */
  readonly outboxMax: number;
  /** The end's counters; `dropped` and `rejected` are raised here. */
  readonly stats: { dropped: number; rejected: number };
  /** Emit a channel event (`dropped`). */
  emit(e: ChannelEvent): void;
  /** The `AMIX_ERR_QUEUE_FULL` error the primitive words for `reject`. */
  queueFull(): AmixError;
}

/**
 * Apply `policy` to `data`, a message that cannot be taken now. Returns true
 * when the message is dealt with (dropped, or copied into the outbox), false
 * when the caller must wait (`block`); throws for `reject`.
 *
 * @example
 * if (!hasCredit && !discardWhenFull(end.discard, data, end)) await waitForCredit()
 */
export function discardWhenFull(policy: DiscardPolicy, data: Uint8Array, t: DiscardTarget): boolean {
  switch (policy) {
    case 'dropNewest':
      t.stats.dropped++;
      t.emit({ type: 'dropped', policy, count: 1 });
      return true;
    case 'reject':
      t.stats.rejected++;
      throw t.queueFull();
    case 'dropOldest': {
      // A copy: the caller may reuse its buffer as soon as send returns.
      const copy = Buffer.allocUnsafe(data.length);
      copy.set(data);
      t.outbox.push(copy);
      if (t.outbox.length > t.outboxMax) {
        t.outbox.shift();
        t.stats.dropped++;
        t.emit({ type: 'dropped', policy, count: 1 });
      }
      return true;
    }
    default:
      return false;
  }
}
