/**
 * One lifecycle contract for every long-lived public object of amix
 * (`Channel`, `PrimitiveRegistry`, `Container`, `Fabric`, `Endpoint`, and
 * the daemon-side objects as they adopt it):
 *
 * - `close()` is graceful and idempotent: the first call starts it, and
 *   every later call (and a `close()` after a `destroy()`) returns the very
 *   same promise.
 * - `destroy(reason?)` is abrupt: pending operations reject with an error
 *   that is `reason`, or carries it as `cause`. It may escalate a graceful
 *   close that is still running. A second call returns the same promise.
 * - `closed` resolves once the object is fully closed, with the reason
 *   (`undefined` for a graceful close). It never rejects, so nobody has to
 *   handle it.
 * - `[Symbol.asyncDispose]()` calls `close()`, so `await using` works.
 * - After close starts, new work is refused with `AMIX_ERR_CLOSED`.
 *
 * **Naming rule.** `destroy` always means the abrupt close of the object
 * itself. An operation that removes something the object holds is named for
 * what it removes: `Fabric.destroyPoint(name)` (the seed's DESTROY),
 * `PrimitiveRegistry.delete(name)`. `Fabric.destroy(name: string)` still
 * works as a deprecated alias of `destroyPoint`.
 *
 * **Adopting it.** Hold a {@link Lifecycle} and delegate; the class supplies
 * only its raw close and destroy steps (STYLE.md, "write the lifecycle once"):
 *
 * @example
 * class Thing implements Destroyable {
 *   readonly #life = new Lifecycle('thing');
 *   readonly closed = this.#life.closed;
 *   close(): Promise<void> { return this.#life.close(() => this.#drainAndRelease()); }
 *   destroy(reason?: Error): Promise<void> { return this.#life.destroy(reason, (r) => this.#releaseNow(r)); }
 *   [Symbol.asyncDispose](): Promise<void> { return this.close(); }
 *   work(): void { this.#life.assertOpen(); ... }
 * }
 *
 * @module
 */
import { AmixError, ErrorCode } from './errors.js';

/** Where an object is in its life: `open`, `closing` (close or destroy running), `closed` (settled). */
export type LifecycleState = 'open' | 'closing' | 'closed';

/** The graceful half of the contract: every long-lived public object has it. */
export interface Closable extends AsyncDisposable {
  /** Graceful and idempotent; later calls return the same promise. */
  close(): Promise<void>;
  /** Resolves once fully closed, with the reason (undefined for a graceful close); never rejects. */
  readonly closed: Promise<Error | undefined>;
}

/** The whole contract, for objects where an abrupt close makes sense. */
export interface Destroyable extends Closable {
  /** Abrupt: pending operations reject with `reason` (or an error whose `cause` is `reason`). */
  destroy(reason?: Error): Promise<void>;
}

/**
 * The state machine behind {@link Closable} and {@link Destroyable}: runs an
 * object's close step at most once, its destroy step at most once, and
 * settles {@link closed} exactly once.
 *
 * @example
 * const life = new Lifecycle('fabric');
 * life.close(async () => { await stopEverything(); }) === life.close(() => {}); // true
 */
export class Lifecycle {
  /** Resolves once settled, with the reason (undefined for a graceful close). Never rejects. */
  readonly closed: Promise<Error | undefined>;
  readonly #what: string;
  #state: LifecycleState = 'open';
  #reason: Error | undefined;
  #resolve!: (reason: Error | undefined) => void;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;

  /** @param what Names the object in the `AMIX_ERR_CLOSED` message, e.g. `'fabric'`. */
  constructor(what: string) {
    this.#what = what;
    this.closed = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** The current state. */
  get state(): LifecycleState {
    return this.#state;
  }

  /** True until close or destroy starts. */
  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** The reason given to destroy (or to {@link settle}), once there is one. */
  get reason(): Error | undefined {
    return this.#reason;
  }

  /**
   * Start the graceful close with `step`, or return the promise of the close
   * (or destroy) already started. `closed` settles when `step` ends; if
   * `step` throws, the returned promise rejects and `closed` resolves with
   * that error.
   */
  close(step: () => unknown): Promise<void> {
    this.#closing ??= this.#destroying ?? this.#run(step, undefined);
    return this.#closing;
  }

  /**
   * Start the abrupt close with `step(reason)`, even while a graceful close
   * still runs (it escalates it). Once settled, or on a second call, returns
   * the promise already made.
   */
  destroy(reason: Error | undefined, step: (reason: Error | undefined) => unknown): Promise<void> {
    if (this.#state === 'closed') return this.#destroying ?? this.#closing ?? Promise.resolve();
    this.#reason ??= reason;
    this.#destroying ??= this.#run(() => step(reason), reason);
    return this.#destroying;
  }

  /**
   * Mark the object closed now (e.g. its far side ended it). True if this
   * call settled it, false if it was settled already.
   */
  settle(reason: Error | undefined): boolean {
    if (this.#state === 'closed') return false;
    this.#state = 'closed';
    this.#reason ??= reason;
    this.#resolve(reason);
    return true;
  }

  /** Throw {@link closedError} unless the object is open. */
  assertOpen(): void {
    if (this.#state !== 'open') throw this.closedError();
  }

  /** The `AMIX_ERR_CLOSED` error for work refused after close started (naming the reason, if any). */
  closedError(): AmixError {
    const r = this.#reason;
    return new AmixError(ErrorCode.AMIX_ERR_CLOSED, `${this.#what} is closed${r ? `: ${r.message}` : ''}`, {
      ...(r ? { cause: r } : {}),
    });
  }

  async #run(step: () => unknown, reason: Error | undefined): Promise<void> {
    // Already settled (the far side closed it): nothing left to release.
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    try {
      await step();
    } catch (err) {
      this.settle(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    this.settle(reason);
  }
}
