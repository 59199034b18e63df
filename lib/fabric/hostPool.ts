/**
 * Ended point hosts kept for the next point of the same kind
 * ({@link FabricOptions.reuseHosts}). A worker thread or a child process
 * whose point ended by its termination message (its main returned) is asked
 * to forget the point (the host's `recycle`) and waits here, unreferenced,
 * for the next instance of the same scope and stack size; after `idleMs`
 * unused it is killed. Why: a fresh host starts with cold code. V8 compiles
 * the hot paths (the channel, the primitive, the point's loop) again in
 * every new isolate, and on a busy machine that takes hundreds of
 * milliseconds of traffic (bench caps: a fresh stage passes a tenth of what
 * a warm one does on its first use). A reused host keeps the modules it
 * imported and their compiled code.
 *
 * What a reused host does not give a point: fresh module state. A point
 * module is imported once per host, so its top-level code ran for the first
 * point only, and whatever it left (module variables, timers, listeners)
 * the next point sees. Only for points that keep their state inside `main`
 * and clean up when their signal aborts.
 *
 * @module
 */
import { invalidArg } from '../core/errors.js';
import type { HostHandle } from './hostHandle.js';
import type { PointScope } from './point.js';
import type { FabricOptions, HostPoolInfo } from './types.js';

interface Idle {
  readonly host: HostHandle;
  readonly timer: NodeJS.Timeout;
  readonly onExit: () => void;
  readonly stackMb: number;
  /** When it went idle (`performance.now()`). */
  readonly since: number;
}

/** @internal The fabric's idle hosts, by scope and stack size. */
export class HostPool {
  readonly #max: number;
  readonly #idleMs: number;
  readonly #idle = new Map<string, Idle[]>();
  #closed = false;
  #kept = 0;
  #reused = 0;
  #expired = 0;
  #notKept = 0;
  #died = 0;

  /** `options`: {@link FabricOptions.reuseHosts}, checked here (`AMIX_ERR_INVALID_ARG`). */
  constructor(options: FabricOptions['reuseHosts']) {
    const o = options === undefined || options === false ? { max: 0 } : options === true ? {} : options;
    if (typeof o !== 'object' || o === null)
      throw invalidArg('options.reuseHosts', 'must be a boolean or { max, idleMs }', o);
    const { max = 2, idleMs = 30_000 } = o;
    if (!Number.isInteger(max) || max < 0)
      throw invalidArg('options.reuseHosts.max', 'must be an integer >= 0 (idle hosts kept per scope)', max);
    if (typeof idleMs !== 'number' || !Number.isFinite(idleMs) || idleMs < 0)
      throw invalidArg('options.reuseHosts.idleMs', 'must be a number of milliseconds >= 0', idleMs);
    this.#max = max;
    this.#idleMs = idleMs;
  }

  /** An idle host of `scope` and `stackMb`, taken out of the pool, or undefined. */
  take(scope: PointScope, stackMb: number): HostHandle | undefined {
    const list = this.#idle.get(key(scope, stackMb));
    for (let e = list?.pop(); e; e = list!.pop()) {
      clearTimeout(e.timer);
      e.host.off('exit', e.onExit);
      // Exited before its exit event reached the pool: a death like any other, counted once (its listener is off).
      if (e.host.hasExited) {
        this.#died++;
        continue;
      }
      this.#reused++;
      return e.host;
    }
    return undefined;
  }

  /**
   * Keep `host` (its point terminated by message) for the next point: true when it is kept, false when
   * the caller must stop it (no room, the pool is off or closed, or the host refused: its main still runs).
   */
  async give(host: HostHandle, stackMb: number, timeoutMs: number): Promise<boolean> {
    if (this.#max === 0) return false; // the pool is off: nothing to keep, nothing to count
    const k = key(host.scope, stackMb);
    const room = () => !this.#closed && !host.hasExited && (this.#idle.get(k)?.length ?? 0) < this.#max;
    // Room before and after the recycle: the pool may fill or close while the host answers.
    const recycled =
      room() &&
      (await host.request('recycle', {}, timeoutMs).then(
        () => true,
        () => false,
      )) &&
      room();
    if (!recycled) {
      this.#notKept++;
      return false;
    }
    // The instance's listeners go with the instance: an idle host's events and exit concern nobody.
    host.removeAllListeners('event');
    host.removeAllListeners('exit');
    const list = this.#idle.get(k) ?? [];
    this.#idle.set(k, list);
    // Out of the list, once: whichever of expiry, exit or take comes first owns the entry.
    const drop = () => {
      const i = list.indexOf(entry);
      if (i < 0) return false;
      list.splice(i, 1);
      return true;
    };
    const timer = setTimeout(() => {
      if (!drop()) return;
      this.#expired++;
      void host.forceKill();
    }, this.#idleMs);
    timer.unref();
    // An idle host that exits on its own (killed from outside, crashed) is gone from the pool, and counted.
    const onExit = () => {
      if (!drop()) return;
      clearTimeout(timer);
      this.#died++;
    };
    const entry: Idle = { host, timer, onExit, stackMb, since: performance.now() };
    host.once('exit', onExit);
    list.push(entry);
    this.#kept++;
    return true;
  }

  /** What {@link Fabric.hostPool} reports. */
  info(): HostPoolInfo {
    const now = performance.now();
    const idle = [...this.#idle.values()].flat().map((e) => ({
      scope: e.host.scope,
      stackMb: e.stackMb,
      pid: e.host.pid,
      idleForMs: Math.round(now - e.since),
    }));
    return {
      max: this.#max,
      idleMs: this.#idleMs,
      idle,
      kept: this.#kept,
      reused: this.#reused,
      expired: this.#expired,
      notKept: this.#notKept,
      died: this.#died,
    };
  }

  /** Stop every idle host; none is kept after this. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#idle.values()].flat();
    this.#idle.clear();
    // Stopped by the pool: not counted as deaths.
    for (const e of all) {
      clearTimeout(e.timer);
      e.host.off('exit', e.onExit);
    }
    await Promise.allSettled(all.map((e) => e.host.forceKill()));
  }
}

function key(scope: PointScope, stackMb: number): string {
  return `${scope}:${stackMb}`;
}
