// An 'exit' event can fire while a test awaits something else; listening
// only afterwards would hang. Watch from creation, await later.
import type { EventEmitter } from 'node:events';

const exits = new WeakMap<EventEmitter, Promise<unknown[]>>();

/** Start listening for `exit` now; returns `e` for chaining at creation. */
export function watchExit<T extends EventEmitter>(e: T): T {
  // A plain listener, not events.once: that would reject on an 'error' event
  // (a worker that throws), and nobody is awaiting it yet.
  exits.set(e, new Promise((resolve) => e.once('exit', (...args: unknown[]) => resolve(args))));
  return e;
}

/** The `exit` event's arguments, even if it fired before this call (when watched with {@link watchExit}). */
export function exited(e: EventEmitter): Promise<unknown[]> {
  return exits.get(e) ?? new Promise((resolve) => e.once('exit', (...args: unknown[]) => resolve(args)));
}
