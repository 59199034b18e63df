/**
 * A state thread (seed 002 ¶641): the point module every state of a
 * {@link StateMachine} runs as, one thread point per unit of the state's
 * concurrency. It loads the state's function (`point.data.module`), then
 * for each datum the manager sends runs the function and answers with the
 * exit value. One datum at a time per thread: the manager sends the next
 * one only after the answer.
 *
 * Wire (JSON, one message each way per datum): the manager sends
 * `{ "i": id, "d": datum }`; the thread answers `{ "i": id, "x": exit, "d": datum }`
 * (the exit value as a string), or `{ "i": id, "e": message }` when the
 * function threw or returned nothing.
 *
 * @module
 */
import type { PointContext } from '../../fabric/host.js';
import { RECONNECT_FROM } from '../../fabric/endpoint.js';
import type { StateFunction } from './definition.js';

/** What the manager puts in the point's `data`. */
export interface StateThreadData {
  state: string;
  module: string;
  export?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Run one state's function for each datum that comes in. */
export default async function stateThread(point: PointContext): Promise<void> {
  const { state, module, export: name } = point.data as StateThreadData;
  let fn: StateFunction | undefined;
  let loadError: string | undefined;
  try {
    const mod = (await import(module)) as Record<string, unknown>;
    const f = mod[name ?? 'default'];
    if (typeof f === 'function') fn = f as StateFunction;
    else loadError = `${module} has no function export ${name ?? 'default'}`;
  } catch (err) {
    loadError = `cannot load ${module}: ${(err as Error).message}`;
  }
  for await (const m of point) {
    if (m.from === RECONNECT_FROM) continue;
    const job = JSON.parse(dec.decode(m.data)) as { i: number; d: unknown };
    let reply: { i: number; x?: string; d?: unknown; e?: string };
    if (!fn) reply = { i: job.i, e: loadError! };
    else {
      try {
        const r = await fn(job.d, { state, id: job.i, signal: point.signal });
        // `{ exit, datum }` hands on a changed datum; anything else is the exit value itself.
        const changed = typeof r === 'object' && r !== null && 'exit' in r;
        const exit = changed ? (r as { exit: unknown }).exit : r;
        const datum = changed && 'datum' in r ? (r as { datum: unknown }).datum : job.d;
        reply =
          exit === undefined || exit === null
            ? { i: job.i, e: `state ${state} returned no exit value` }
            : { i: job.i, x: String(exit), d: datum };
      } catch (err) {
        reply = { i: job.i, e: `state ${state} threw: ${(err as Error)?.message ?? String(err)}` };
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = enc.encode(JSON.stringify(reply));
    } catch (err) {
      bytes = enc.encode(
        JSON.stringify({ i: job.i, e: `state ${state}: datum is not JSON (${(err as Error).message})` }),
      );
    }
    await point.send(bytes, { link: m.link });
  }
}
