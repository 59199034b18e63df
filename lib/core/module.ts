/**
 * The universal module model (seed 001): every loadable module has four
 * handlers, load, start, quiesce and unload; a {@link Container} keeps a
 * module database and is the only caller of those handlers. Before each call
 * it checks the requested transition against `TRANSITIONS`; a
 * transition the table does not allow is refused with
 * `AMIX_ERR_BAD_TRANSITION` and the handler is not invoked.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { AmixError, ErrorCode, invalidArg } from './errors.js';
import { Lifecycle, type Destroyable } from './lifecycle.js';
import { WaitList } from './waitList.js';

/** Settled states a module rests in, and the transient states while a handler runs. */
export const ModuleState = {
  unloaded: 'unloaded',
  loading: 'loading',
  loaded: 'loaded',
  starting: 'starting',
  started: 'started',
  quiescing: 'quiescing',
  quiesced: 'quiesced',
  unloading: 'unloading',
  failed: 'failed',
} as const;
/** One of {@link ModuleState}. */
export type ModuleState = (typeof ModuleState)[keyof typeof ModuleState];

/** The four handler requests of seed 001. */
export const ModuleRequest = { load: 'load', start: 'start', quiesce: 'quiesce', unload: 'unload' } as const;
/** One of {@link ModuleRequest}. */
export type ModuleRequest = (typeof ModuleRequest)[keyof typeof ModuleRequest];

/** One row of the state table. */
export interface Transition {
  /** Settled states from which the request is allowed. */
  readonly from: readonly ModuleState[];
  /** State while the handler runs (no other request is accepted then: requests queue). */
  readonly via: ModuleState;
  /** State after the handler returns. */
  readonly to: ModuleState;
  /** State after the handler throws (or, for quiesce, times out). */
  readonly onError: ModuleState;
}

/**
 * The state table, the single source of truth the container checks before
 * every handler call. Read it against seed 001:
 *
 * | request | allowed from               | while      | to        | if the handler throws |
 * |---------|----------------------------|------------|-----------|-----------------------|
 * | load    | unloaded                   | loading    | loaded    | unloaded (nothing was brought in) |
 * | start   | loaded, quiesced           | starting   | started   | loaded (no work begun; start may be retried) |
 * | quiesce | started                    | quiescing  | quiesced  | failed (in-flight work state unknown) |
 * | unload  | loaded, quiesced, failed   | unloading  | unloaded  | failed (unload may be retried) |
 *
 * Start after quiesce is allowed (the unload was called off: work resumes).
 * A started module must be quiesced before it is unloaded.
 */
export const TRANSITIONS: Readonly<Record<ModuleRequest, Transition>> = Object.freeze({
  load: { from: ['unloaded'], via: 'loading', to: 'loaded', onError: 'unloaded' },
  start: { from: ['loaded', 'quiesced'], via: 'starting', to: 'started', onError: 'loaded' },
  quiesce: { from: ['started'], via: 'quiescing', to: 'quiesced', onError: 'failed' },
  unload: { from: ['loaded', 'quiesced', 'failed'], via: 'unloading', to: 'unloaded', onError: 'failed' },
});

/** True when the table allows `request` from `state`. */
export function isAllowed(state: ModuleState, request: ModuleRequest): boolean {
  return TRANSITIONS[request].from.includes(state);
}

/** What a handler receives. */
export interface ModuleContext<M = Record<string, unknown>> {
  /** The module's name in its container. */
  readonly name: string;
  /** The module's metadata (mutable by handlers, e.g. to record what was loaded). */
  readonly metadata: M;
  /**
   * Aborted when quiesce begins: long-running work should watch it and stop
   * taking new work. A fresh signal is made on each start.
   */
  readonly signal: AbortSignal;
}

/** The four handlers of a module. Each may be absent (then it does nothing) and may be async. */
export interface ModuleHandlers<M = Record<string, unknown>> {
  /** The module is being brought in. */
  load?(ctx: ModuleContext<M>): unknown;
  /** Begin the module's work. */
  start?(ctx: ModuleContext<M>): unknown;
  /** Prepare to unload: stop taking new work. The container then waits for in-flight work. */
  quiesce?(ctx: ModuleContext<M>): unknown;
  /** The module is being removed. */
  unload?(ctx: ModuleContext<M>): unknown;
}

/** A read-only snapshot of one module-database record. */
export interface ModuleRecord<M = Record<string, unknown>> {
  readonly name: string;
  readonly state: ModuleState;
  readonly metadata: M;
  /** Milliseconds since the epoch. */
  readonly addedAt: number;
  readonly changedAt: number;
  /** Work items running now (see {@link Container.run}). */
  readonly inFlight: number;
  /** The last handler error, if the last transition failed. */
  readonly lastError?: Error;
}

/** Emitted by a {@link Container} on every state change. */
export type ContainerEvent =
  | { type: 'transition'; module: string; request: ModuleRequest; from: ModuleState; to: ModuleState }
  | { type: 'handlerError'; module: string; request: ModuleRequest; error: Error };

/** Options for {@link Container}. */
export interface ContainerOptions {
  /** A name for messages. Default `container`. */
  name?: string;
  /** How long quiesce waits for in-flight work by default. Default 5000 ms. */
  quiesceTimeoutMs?: number;
}

interface Entry {
  name: string;
  state: ModuleState;
  handlers: ModuleHandlers<any>;
  metadata: Record<string, unknown>;
  addedAt: number;
  changedAt: number;
  inFlight: number;
  lastError?: Error;
  /** Serialises requests on this module: each request chains on the previous one. */
  queue: Promise<unknown>;
  abort: AbortController;
  /** A quiesce waiting for inFlight to reach zero (requests are serialised, so at most one). */
  drained: WaitList;
}

/**
 * A container with a module database. It is the only caller of module
 * handlers and enforces `TRANSITIONS` before each call. Requests on one
 * module are serialised in arrival order; requests on different modules run
 * independently.
 *
 * @example
 * const c = new Container({ name: 'demo' })
 * c.add('clock', { start: () => tick.start(), quiesce: () => tick.stop() })
 * await c.load('clock'); await c.start('clock')
 *
 * Follows the lifecycle contract of `lib/core/lifecycle.ts`: after
 * `close()` or `destroy()` no module can be added.
 */
export class Container extends EventEmitter implements Destroyable {
  /** The container's name. */
  readonly name: string;
  /** Resolves once the container is closed, with the reason (undefined for a graceful close). Never rejects. */
  readonly closed: Promise<Error | undefined>;
  readonly #db = new Map<string, Entry>();
  readonly #quiesceTimeoutMs: number;
  readonly #life: Lifecycle;

  constructor(options: ContainerOptions = {}) {
    super();
    this.name = options.name ?? 'container';
    this.#life = new Lifecycle(`container "${this.name}"`);
    this.closed = this.#life.closed;
    const t = options.quiesceTimeoutMs ?? 5000;
    if (!Number.isFinite(t) || t < 0) throw invalidArg('options.quiesceTimeoutMs', 'must be a non-negative number', t);
    this.#quiesceTimeoutMs = t;
  }

  /**
   * Add a module to the database in state `unloaded`. Throws
   * `AMIX_ERR_DUPLICATE` if the name is taken and `AMIX_ERR_INVALID_ARG` if a
   * handler is not a function.
   */
  add<M extends Record<string, unknown>>(name: string, handlers: ModuleHandlers<M>, metadata?: M): void {
    this.#life.assertOpen();
    if (typeof name !== 'string' || name.length === 0) throw invalidArg('name', 'must be a non-empty string', name);
    if (this.#db.has(name)) {
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `module "${name}" is already in container "${this.name}"`, {
        details: { name },
      });
    }
    for (const h of Object.values(ModuleRequest)) {
      const fn = (handlers as Record<string, unknown>)[h];
      if (fn !== undefined && typeof fn !== 'function') throw invalidArg(`handlers.${h}`, 'must be a function', fn);
    }
    const now = Date.now();
    this.#db.set(name, {
      name,
      state: 'unloaded',
      handlers,
      metadata: metadata ?? {},
      addedAt: now,
      changedAt: now,
      inFlight: 0,
      queue: Promise.resolve(),
      abort: new AbortController(),
      drained: new WaitList(),
    });
  }

  /** Remove an unloaded module from the database. Refused (`AMIX_ERR_BAD_TRANSITION`) in any other state. */
  remove(name: string): void {
    const e = this.#entry(name);
    if (e.state !== 'unloaded') {
      throw new AmixError(
        ErrorCode.AMIX_ERR_BAD_TRANSITION,
        `cannot remove module "${name}" in state ${e.state}: unload it first`,
        { details: { module: name, state: e.state, request: 'remove' } },
      );
    }
    this.#db.delete(name);
  }

  /** True when the database holds `name`. */
  has(name: string): boolean {
    return this.#db.has(name);
  }

  /** A snapshot of one record; throws `AMIX_ERR_INVALID_ARG` for an unknown name. */
  get(name: string): ModuleRecord {
    return snapshot(this.#entry(name));
  }

  /** Snapshots of every record, in the order they were added. */
  list(): ModuleRecord[] {
    return [...this.#db.values()].map(snapshot);
  }

  /** Run the load handler (unloaded → loaded). */
  load(name: string): Promise<void> {
    return this.#request(name, 'load');
  }
  /** Run the start handler (loaded or quiesced → started). */
  start(name: string): Promise<void> {
    return this.#request(name, 'start');
  }
  /**
   * Run the quiesce handler (started → quiesced), then wait until the
   * module's in-flight work (see {@link run}) is done. New work is refused
   * from the moment quiesce is requested. If the wait passes `timeoutMs` the
   * module goes to `failed` and the call rejects with `AMIX_ERR_QUIESCE_TIMEOUT`.
   */
  quiesce(name: string, options: { timeoutMs?: number } = {}): Promise<void> {
    return this.#request(name, 'quiesce', options.timeoutMs ?? this.#quiesceTimeoutMs);
  }
  /** Run the unload handler (loaded, quiesced or failed → unloaded). */
  unload(name: string): Promise<void> {
    return this.#request(name, 'unload');
  }

  /**
   * Run one item of the module's work, counted as in flight so that quiesce
   * waits for it. Refused with `AMIX_ERR_NOT_ACCEPTING` unless the module is
   * `started` (and not yet asked to quiesce).
   */
  async run<T>(name: string, work: (signal: AbortSignal) => T | Promise<T>): Promise<T> {
    const e = this.#entry(name);
    if (e.state !== 'started' || e.abort.signal.aborted) {
      throw new AmixError(ErrorCode.AMIX_ERR_NOT_ACCEPTING, `module "${name}" is ${e.state} and takes no new work`, {
        details: { module: name, state: e.state },
      });
    }
    e.inFlight++;
    try {
      return await work(e.abort.signal);
    } finally {
      e.inFlight--;
      if (e.inFlight === 0) e.drained.resolveAll();
    }
  }

  /**
   * Bring every module down, the last added first (inside out): quiesce what
   * is started, then unload, then remove. Errors are collected; the first is
   * thrown after every module has been tried. Idempotent: a second call
   * returns the same promise.
   */
  close(): Promise<void> {
    return this.#life.close(() => this.#bringDown(undefined));
  }

  /**
   * Abrupt close: abort every module's signal with `reason`, reject a
   * quiesce waiting for in-flight work with `reason`, then bring every
   * module down as {@link close} does without waiting for in-flight work.
   * The state table still holds: a started module is quiesced before unload.
   */
  destroy(reason?: Error): Promise<void> {
    const err = reason ?? new AmixError(ErrorCode.AMIX_ERR_CLOSED, `container "${this.name}" was destroyed`);
    return this.#life.destroy(err, () => {
      for (const e of this.#db.values()) {
        e.abort.abort(err);
        e.drained.rejectAll(err);
      }
      return this.#bringDown(0).catch(() => {});
    });
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #bringDown(quiesceTimeoutMs: number | undefined): Promise<void> {
    let first: unknown;
    for (const e of [...this.#db.values()].reverse()) {
      try {
        await e.queue.catch(() => {});
        if (e.state === 'started')
          await this.quiesce(e.name, quiesceTimeoutMs === undefined ? {} : { timeoutMs: quiesceTimeoutMs });
        if (e.state !== 'unloaded') await this.unload(e.name);
        this.#db.delete(e.name);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  #entry(name: string): Entry {
    const e = this.#db.get(name);
    if (!e) throw invalidArg('name', `must name a module in container "${this.name}"`, name);
    return e;
  }

  #request(name: string, request: ModuleRequest, timeoutMs?: number): Promise<void> {
    let e: Entry;
    try {
      e = this.#entry(name);
    } catch (err) {
      return Promise.reject(err);
    }
    // Quiesce stops new work at once, not when its turn in the queue comes,
    // so that work arriving while an earlier request runs is refused too.
    if (request === 'quiesce' && e.state === 'started') e.abort.abort(new Error('quiescing'));
    const next = e.queue.then(() => this.#transition(e, request, timeoutMs));
    e.queue = next.catch(() => {});
    return next;
  }

  async #transition(e: Entry, request: ModuleRequest, timeoutMs?: number): Promise<void> {
    const row = TRANSITIONS[request];
    const from = e.state;
    if (!row.from.includes(from)) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_BAD_TRANSITION,
        `module "${e.name}" in container "${this.name}" is ${from}; ${request} is allowed only from ${row.from.join(' or ')}`,
        { details: { module: e.name, state: from, request } },
      );
    }
    if (request === 'start') e.abort = new AbortController();
    if (request === 'quiesce') e.abort.abort(new Error('quiescing'));
    this.#set(e, row.via, request);
    const ctx: ModuleContext = { name: e.name, metadata: e.metadata, signal: e.abort.signal };
    try {
      await e.handlers[request]?.call(e.handlers, ctx);
      if (request === 'quiesce') await this.#drain(e, timeoutMs ?? this.#quiesceTimeoutMs);
    } catch (err) {
      // The reason of a destroy reaches the waiting caller as it was given.
      const error: Error =
        err instanceof AmixError || (err instanceof Error && err === this.#life.reason)
          ? err
          : new AmixError(
              ErrorCode.AMIX_ERR_HANDLER_FAILED,
              `${request} handler of module "${e.name}" failed: ${(err as Error)?.message ?? String(err)}`,
              { cause: err, details: { module: e.name, request } },
            );
      e.lastError = error;
      this.emit('event', { type: 'handlerError', module: e.name, request, error } satisfies ContainerEvent);
      this.#set(e, row.onError, request);
      throw error;
    }
    e.lastError = undefined;
    this.#set(e, row.to, request);
  }

  #drain(e: Entry, timeoutMs: number): Promise<void> {
    if (e.inFlight === 0) return Promise.resolve();
    // Our own timer, not the list's: the timeout has its own code and message.
    const timer = setTimeout(
      () =>
        e.drained.rejectAll(
          new AmixError(
            ErrorCode.AMIX_ERR_QUIESCE_TIMEOUT,
            `module "${e.name}" still had ${e.inFlight} work item(s) in flight after ${timeoutMs} ms of quiesce`,
            { details: { module: e.name, inFlight: e.inFlight, timeoutMs } },
          ),
        ),
      timeoutMs,
    );
    return e.drained.wait().finally(() => clearTimeout(timer));
  }

  #set(e: Entry, to: ModuleState, request: ModuleRequest): void {
    const from = e.state;
    e.state = to;
    e.changedAt = Date.now();
    this.emit('event', { type: 'transition', module: e.name, request, from, to } satisfies ContainerEvent);
  }
}

function snapshot(e: Entry): ModuleRecord {
  return {
    name: e.name,
    state: e.state,
    metadata: e.metadata,
    addedAt: e.addedAt,
    changedAt: e.changedAt,
    inFlight: e.inFlight,
    ...(e.lastError ? { lastError: e.lastError } : {}),
  };
}
