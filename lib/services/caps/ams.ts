/**
 * The point side of CAPS: {@link runAms}, the loop an application minor
 * service (AMS) runs in its point so that the Configuration Administrator
 * can stop it between two messages, take what it had not taken, hand it
 * messages ahead of its links, and dump or load its state (seed 002
 * ¶551-558). It answers CAPS through the point's `caps` service
 * (`point.services`, asked by `fabric.ends.service`).
 *
 * | request `op` | what the loop does | answer |
 * |---|---|---|
 * | `gate` | finish the message in hand, then take nothing more | `AmsStats` |
 * | `release` | take messages again | `AmsStats` |
 * | `handoff` | gate, then keep taking every message that arrives, unprocessed, in order | `AmsStats` |
 * | `take` | stop the hand-off collector; give back what was injected and not handled, then what it kept | `{ messages: Uint8Array[] }` |
 * | `inject` `{ messages }` | put `messages` ahead of anything on the links | `AmsStats` |
 * | `dump` | the state from `handlers.dump()`, between two messages | `{ state }` |
 * | `load` `{ state }` | `handlers.load(state)`, between two messages | `AmsStats` |
 * | `stats` | | `AmsStats` |
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg, isAmixError } from '../../core/errors.js';
import type { PointMessage } from '../../fabric/endpoint.js';
import type { PointContext } from '../../fabric/host.js';

/** The service name an AMS offers on its endpoint. */
export const AMS_SERVICE = 'caps';

/** What an AMS does with each message and its state. */
export interface AmsHandlers {
  /**
   * Handle one message. What it returns is sent on (to every receiver on the
   * sender list): a byte array, an array of them, or nothing. Default: the
   * message's bytes, unchanged.
   */
  process?(message: PointMessage, point: PointContext): unknown;
  /** The state to carry to a replacement (DUMP_MAP): JSON-serialisable. */
  dump?(): unknown;
  /** Take a state a DUMP_MAP produced (LOAD_MAP). */
  load?(state: unknown): void;
}

/** The loop's counters, as `stats` answers them. */
export interface AmsStats {
  /** Messages handled by `process`. */
  processed: number;
  /** Messages the hand-off collector holds. */
  kept: number;
  /** Injected messages not yet handled. */
  injected: number;
  /** True while gated (by `gate`, `handoff`, or a SUSPEND). */
  gated: boolean;
  /** True while the hand-off collector runs. */
  handingOff: boolean;
}

/** The loop yields to the event loop after this many messages in a row... */
const YIELD_EVERY = 256;
/** ...or this many ms, whichever comes first: the bound on how long a CAPS request waits for a busy AMS. */
const YIELD_MS = 1;

const stopped = (what: string) => new AmixError(ErrorCode.AMIX_ERR_ABORTED, `${what} stopped by CAPS`);

/**
 * Run an AMS in its point until the point is terminated or its endpoint
 * closes. Use it as the point module's body:
 *
 * @example
 * export default (point) => runAms(point, { process: (m) => upper(m.data) })
 */
export async function runAms(point: PointContext, handlers: AmsHandlers = {}): Promise<void> {
  const process = handlers.process ?? ((m: PointMessage) => m.data);
  const injected: Uint8Array[] = [];
  const kept: Uint8Array[] = [];
  let processed = 0;
  let gated = false;
  let busy = false;
  // One controller per gate epoch (not per message): aborting it wakes the receive the loop waits in.
  let ac = new AbortController();
  let idle: (() => void) | undefined;
  let open: (() => void) | undefined;
  let collector: { ac: AbortController; done: Promise<void> } | undefined;
  const stats = (): AmsStats => ({
    processed,
    kept: kept.length,
    injected: injected.length,
    gated,
    handingOff: collector !== undefined,
  });
  // Gate: resolves once the loop holds no message (between two, or waiting).
  const gate = async (): Promise<void> => {
    gated = true;
    ac.abort(stopped('receive'));
    if (busy) await new Promise<void>((resolve) => (idle = resolve));
  };
  const release = (): void => {
    gated = false;
    ac = new AbortController();
    open?.();
    open = undefined;
  };
  const between = async <T>(fn: () => T): Promise<T> => {
    const was = gated;
    await gate();
    try {
      return fn();
    } finally {
      if (!was) release();
    }
  };
  point.services.set(AMS_SERVICE, async (req) => {
    switch (req.op) {
      case 'gate':
        await gate();
        return stats();
      case 'release':
        release();
        return stats();
      case 'handoff': {
        await gate();
        if (!collector) {
          const c = new AbortController();
          // Everything that arrives from now on is kept in arrival order, untouched, for the replacement.
          const done = (async () => {
            for (;;) {
              try {
                kept.push((await point.receive({ signal: c.signal })).data);
              } catch {
                return;
              }
            }
          })();
          collector = { ac: c, done };
        }
        return stats();
      }
      case 'take': {
        if (collector) {
          collector.ac.abort(stopped('hand-off'));
          await collector.done;
          collector = undefined;
        }
        // Injected messages not yet handled are older than anything the collector kept: they go first.
        return { messages: [...injected.splice(0), ...kept.splice(0)] };
      }
      case 'inject': {
        const ms = req.messages;
        if (!Array.isArray(ms) || !ms.every((m) => m instanceof Uint8Array))
          throw invalidArg('messages', 'must be an array of byte arrays');
        injected.push(...(ms as Uint8Array[]));
        // A running loop (REPLACE with overlap) may wait in receive with nothing coming: wake it, so it
        // takes the injected messages next. The shift and the receive it replaces run in one turn.
        if (!gated && !busy) {
          ac.abort(stopped('receive'));
          ac = new AbortController();
        }
        return stats();
      }
      case 'dump':
        return { state: await between(() => (handlers.dump ? handlers.dump() : null)) };
      case 'load':
        await between(() => handlers.load?.(req.state));
        return stats();
      case 'stats':
        return stats();
      default:
        throw invalidArg('op', 'must be gate, release, handoff, take, inject, dump, load or stats', req.op);
    }
  });
  const send = async (out: unknown): Promise<void> => {
    if (out === undefined || out === null) return;
    if (out instanceof Uint8Array) return point.send(out);
    if (Array.isArray(out)) for (const o of out) await send(o);
  };
  let lastYield = performance.now();
  let sinceYield = 0;
  while (!point.signal.aborted) {
    // A receive that finds a message settles at once, so a busy loop never leaves the microtask
    // queue: yield now and then, or CAPS's own requests (gate, handoff) would wait for the queue to empty.
    if (++sinceYield >= YIELD_EVERY || performance.now() - lastYield > YIELD_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = performance.now();
      sinceYield = 0;
    }
    if (gated) {
      await new Promise<void>((resolve) => (open = resolve));
      continue;
    }
    let m: PointMessage;
    const inj = injected.shift();
    if (inj !== undefined) m = { data: inj, size: inj.length, from: 'amix:caps', link: '' };
    else {
      try {
        m = await point.receive({ signal: ac.signal });
      } catch (err) {
        // A gate aborts the wait (nothing was taken); a closed endpoint ends the AMS.
        if (isAmixError(err, ErrorCode.AMIX_ERR_ABORTED) && !point.signal.aborted) continue;
        return;
      }
    }
    busy = true;
    try {
      await send(await process(m, point));
      processed++;
    } finally {
      busy = false;
      if (idle) {
        idle();
        idle = undefined;
      }
    }
  }
}
