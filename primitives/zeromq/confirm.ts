/**
 * End-to-end acknowledgement for the `zeromq` primitive's receiving end
 * (`zeromq.confirmation`): see {@link ZeromqConfirmation}.
 *
 * @module
 */
import { invalidArg } from '../../lib/core/errors.js';

/** @internal What a confirmation knows of a receiving end's session. */
export interface ConfirmSession {
  /** Messages of the session the application took (the credit engine's count). */
  consumed: number;
  /** Messages below it were confirmed. */
  confirmed: number;
}

/**
 * End-to-end acknowledgement for a receiving end. Without one, a CREDIT
 * acknowledges what *arrived* (the sender then forgets it); with one, only
 * what the application has {@link ZeromqConfirmation.confirm}ed, in the order
 * it took messages. The sender keeps everything else and re-sends it after a
 * reconnect, so a receiving process that dies loses nothing it did not
 * confirm. The sender's memory stays bounded by the credit window plus what
 * the application holds unconfirmed. Give a new instance per receiving end
 * (`zeromq.confirmation`); it is bound when the end is created.
 */
export class ZeromqConfirmation {
  /**
   * The messages taken and not yet confirmed, in take order, as runs
   * `[session, upTo of the first, count]`: confirming a message of a run
   * acknowledges its session up to that message's `upTo` (the session's
   * consumed count just after it was taken).
   */
  readonly #runs: Array<[ConfirmSession, number, number]> = [];
  #onMove: ((s: ConfirmSession) => void) | undefined;
  /** Messages taken and not yet confirmed. */
  unconfirmed = 0;

  /** @internal Bind to a receiving end: `onMove` writes a CREDIT to a session whose confirmed count rose. */
  bind(onMove: (s: ConfirmSession) => void): void {
    if (this.#onMove) throw invalidArg('options.zeromq.confirmation', 'is already bound to another receiving end');
    this.#onMove = onMove;
  }

  /** @internal A message of `s` was taken by the application (after the credit engine counted it consumed). */
  taken(s: ConfirmSession): void {
    this.unconfirmed++;
    const last = this.#runs[this.#runs.length - 1];
    if (last && last[0] === s && last[1] + last[2] === s.consumed) last[2]++;
    else this.#runs.push([s, s.consumed, 1]);
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
    const moved = new Set<ConfirmSession>();
    while (count > 0) {
      const run = this.#runs[0]!;
      const n = Math.min(run[2], count);
      const upTo = run[1] + n - 1;
      if (upTo > run[0].confirmed) {
        run[0].confirmed = upTo;
        moved.add(run[0]);
      }
      count -= n;
      run[1] += n;
      if ((run[2] -= n) === 0) this.#runs.shift();
    }
    if (this.#onMove) for (const s of moved) this.#onMove(s);
  }
}
