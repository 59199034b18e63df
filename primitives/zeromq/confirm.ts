/**
 * End-to-end acknowledgement for the `zeromq` primitive's receiving end
 * (`zeromq.confirmation`): see {@link ZeromqConfirmation}.
 *
 * @module
 */
import { invalidArg } from '../../lib/core/errors.js';

/** @internal What a confirmation knows of a receiving end's session. */
export interface ConfirmSession {
  /** Messages of the session the application took (numbered like the session's messages). */
  taken: number;
  /** Messages below it were confirmed. */
  confirmed: number;
  /**
   * Messages below it were sent before this process of the receiving end
   * knew the session (its first HELLO said so): re-sends after the process
   * that had them died, which the application may have seen.
   */
  resendUpTo: number;
}

/**
 * End-to-end acknowledgement for a receiving end. Without one, a CREDIT
 * acknowledges what *arrived* (the sender then forgets it); with one, only
 * what the application has {@link ZeromqConfirmation.confirm}ed, in the order
 * it took messages. The sender keeps everything else and re-sends it after a
 * reconnect, so a receiving process that dies loses nothing it did not
 * confirm. Credit follows confirmation too (a message counts as consumed once
 * confirmed), so a sender never holds more than `maxmsg` unacknowledged
 * messages, and a replacement process can take back all of them. Give a new instance per receiving end
 * (`zeromq.confirmation`); it is bound when the end is created.
 */
export class ZeromqConfirmation {
  /**
   * The messages taken and not yet confirmed, in take order, as runs
   * `[session, upTo of the first, count]`: confirming a message of a run
   * acknowledges its session up to that message's `upTo` (the session's
   * taken count just after it was taken).
   */
  readonly #runs: Array<[ConfirmSession, number, number]> = [];
  #onConfirm: ((s: ConfirmSession, count: number, upTo: number) => void) | undefined;
  /** Messages taken and not yet confirmed. */
  unconfirmed = 0;
  /** Re-sent messages taken and not yet reported by {@link takeResent}. */
  #resent = 0;

  /**
   * @internal Bind to a receiving end: `onConfirm` tells it that `count`
   * messages of a session were confirmed, up to `upTo` (it counts them
   * consumed for credit and acknowledges them).
   */
  bind(onConfirm: (s: ConfirmSession, count: number, upTo: number) => void): void {
    if (this.#onConfirm) throw invalidArg('options.zeromq.confirmation', 'is already bound to another receiving end');
    this.#onConfirm = onConfirm;
  }

  /** @internal A message of `s` was taken by the application. */
  taken(s: ConfirmSession): void {
    this.unconfirmed++;
    if (s.taken < s.resendUpTo) this.#resent++;
    s.taken++;
    const last = this.#runs[this.#runs.length - 1];
    if (last && last[0] === s && last[1] + last[2] === s.taken) last[2]++;
    else this.#runs.push([s, s.taken, 1]);
  }

  /**
   * How many of the messages taken since the last call were re-sent to this
   * process after another process of this receiving end had received them
   * (it died before confirming them): the application, if it is the one
   * that restarted, may have seen them. Resets the count.
   */
  takeResent(): number {
    const n = this.#resent;
    this.#resent = 0;
    return n;
  }

  /**
   * The application is done with the next `count` messages it took (oldest
   * first): acknowledge them to their senders now. More than were taken is
   * an `AMIX_ERR_INVALID_ARG`.
   */
  confirm(count: number): void {
    if (!Number.isSafeInteger(count) || count < 0 || count > this.unconfirmed)
      throw invalidArg('confirm(count)', `must be an integer from 0 to ${this.unconfirmed}`, count);
    this.unconfirmed -= count;
    const moved = new Map<ConfirmSession, { n: number; upTo: number }>();
    while (count > 0) {
      const run = this.#runs[0]!;
      const n = Math.min(run[2], count);
      const m = moved.get(run[0]);
      const upTo = run[1] + n - 1;
      if (m) {
        m.n += n;
        m.upTo = Math.max(m.upTo, upTo);
      } else moved.set(run[0], { n, upTo });
      count -= n;
      run[1] += n;
      if ((run[2] -= n) === 0) this.#runs.shift();
    }
    if (this.#onConfirm) for (const [s, m] of moved) this.#onConfirm(s, m.n, m.upTo);
  }
}
