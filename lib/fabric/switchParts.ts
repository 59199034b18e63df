/**
 * Small parts of the switch point (`switchPoint.ts`) in a file of their
 * own: its limits, its waits, an option check and the error of a route
 * that cannot be suspended.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import type { InFlow } from './switchTrunk.js';

/** Routes frames waiting for one port at which they are replaced by one full table. */
export const CTL_LIMIT = 32;
/** How long the poller keeps yielding (not sleeping) once nothing moves. */
export const IDLE_YIELD_MS = 5;
/** How often a switch samples its counters into rates (ms). */
export const RATE_SAMPLE_MS = 1000;
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

/** One link of a switch: its channels, what its neighbour offers, its queue and counters. */
export interface Port {
  link: string;
  peer: string;
  tx?: Channel;
  rx?: Channel;
  /** The peer's switch name when it is a switch; the trunk point's name when it is one (data to it is sequenced). */
  neighbour?: string;
  trunk?: string;
  /** What a neighbour said it reaches: destination → its path (it first). */
  learned: Map<string, string[]>;
  queue: Uint8Array[];
  /** Routes frames waiting to go: ahead of data, outside the data queue's limit (they are few and small). */
  ctl: Uint8Array[];
  suspended: boolean;
  /** Sources parked on this port's full queue. */
  parked: Set<Port>;
  /** As a source: the message it is parked with, and the destination it waits for. */
  held?: Uint8Array;
  heldFor?: string;
  /** The trunk flow the held message came on, if it did (it counts as done once written on). */
  heldFrom?: InFlow<Port>;
  /** Its full table went out (routes frames go to it from then on). */
  synced: boolean;
  s: { in: number; out: number; dropped: number };
  /** The counters at the last rate sample, and the rates (messages a second) over the second before it. */
  seen: { in: number; out: number };
  rate: { in: number; out: number };
}

/** A switch's route to one destination. */
export interface Route {
  port: Port;
  path: string[];
  messages: number;
  dropped: number;
  /** `messages` at the last rate sample, and messages a second over the second before it. */
  seen: number;
  rate: number;
}

/** A frame about to cross to another switch counts one hop more (in place: the switch owns it now). */
export function hop(out: Port, f: Uint8Array): Uint8Array {
  if (out.neighbour) f[1] = f[1]! + 1;
  return f;
}
