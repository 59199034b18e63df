/**
 * One place for the waiting lists of the primitives: a blocked send or
 * receive waits on a list until it is served, and an abort takes it off the
 * list and rejects it with `AMIX_ERR_ABORTED`.
 *
 * @module
 */
import { abortError } from './errors.js';

/** A waiter a list holds: its rejection, and what to undo once it is served (set here). */
export interface Abortable {
  reject: (e: Error) => void;
  /** Removes the abort listener; call it when the waiter is served or rejected from elsewhere. */
  cleanup: (() => void) | null;
}

/**
 * Put `w` at the end of `list`. If `signal` aborts first, `w` leaves the list
 * and is rejected with `AMIX_ERR_ABORTED` naming `what`. Sets `w.cleanup`.
 *
 * @example
 * return new Promise((resolve, reject) => queueAbortable(readers, { resolve, reject, cleanup: null }, signal, 'receive'))
 */
export function queueAbortable<W extends Abortable>(list: W[], w: W, signal: AbortSignal | undefined, what: string): void {
  list.push(w);
  if (!signal) return;
  const onAbort = (): void => {
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
    w.reject(abortError(signal, what));
  };
  signal.addEventListener('abort', onAbort, { once: true });
  w.cleanup = () => signal.removeEventListener('abort', onAbort);
}
