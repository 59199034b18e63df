/**
 * Small parts of the switch point (`switchPoint.ts`) in a file of their
 * own: its limits, its waits, an option check and the error of a route
 * that cannot be suspended.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';

/** Routes frames waiting for one port at which they are replaced by one full table. */
export const CTL_LIMIT = 32;
/** How long the poller keeps yielding (not sleeping) once nothing moves. */
export const IDLE_YIELD_MS = 5;
/** One turn of the event loop. */
export const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));
/** A timer's wait. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A switch option: an integer >= 2, or `dflt` when absent; `AMIX_ERR_INVALID_ARG` otherwise. */
export function positive(field: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || (v as number) < 2) throw invalidArg(`switch.${field}`, 'must be an integer >= 2', v);
  return v as number;
}

/**
 * Why switch `me` cannot suspend `dest`: it has no route to it
 * (`AMIX_ERR_UNKNOWN_POINT`), or it is behind switch `behind` (`AMIX_ERR_INVALID_ARG`).
 */
export function noSuspend(me: string, dest: unknown, behind: string | undefined): AmixError {
  if (behind === undefined)
    return new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `switch "${me}" has no route to ${String(dest)}`, {
      details: { name: String(dest) },
    });
  return invalidArg('dest', `is behind switch "${behind}": suspend it at the switch it is attached to`, dest);
}
