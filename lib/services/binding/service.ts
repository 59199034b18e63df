/**
 * The Binding Service (seed 002 ¶166-211, ¶366-437): a private table of
 * names, bound by the first of an ordered list of binding methods whose
 * pattern matches and whose Locate finds the entity.
 *
 * @module
 */
import { userInfo } from 'node:os';
import { pathToFileURL } from 'node:url';
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';
import { DEFAULT_BINDING_CONFIG, METHOD_NAME, parseBindingConfig, readBindingConfig } from './config.js';
import {
  BINDING_OPERATIONS,
  BindingState,
  type BindingApplication,
  type BindingContext,
  type BindingMethod,
  type BindingQuery,
  type BindingReport,
  type BindingStatus,
  type BoundEntity,
  type EntryInfo,
  type MethodInfo,
  type MethodRegistration,
  type RequestOptions,
} from './types.js';

/** Options of {@link BindingService.start}. */
export interface BindingServiceOptions {
  /**
   * The owner: the principal that may Register, SetOrder and Unregister and
   * whose requests see every entry in Report (default: this OS user's name).
   */
  owner?: string;
  /** Configuration files read after the defaults (default: `$AMIX_BINDING_CONFIG` if set). Each must be owner-only. */
  configFiles?: string[];
  /** Skip the default configuration (tests, embedders that bring their own). */
  noDefaults?: boolean;
  /** Relative names (File, Thread modules) resolve against this (default: the working directory). */
  baseDir?: string;
  /** Data, functions and thread procedures the application offers. */
  application?: Partial<BindingApplication>;
  /** Most names the table holds (default 100000); a Bind of a new name beyond it is refused. */
  maxEntries?: number;
}

interface MethodSlot {
  reg: MethodRegistration;
  seq: number;
  loaded?: BindingMethod;
  loading?: Promise<BindingMethod>;
  inUse: number;
}

interface Entry {
  name: string;
  principal: string;
  state: BindingState;
  method?: string;
  transformed?: string;
  entity?: BoundEntity;
  status?: BindingStatus;
  pending?: Promise<void>;
}

/** Back to UNBOUND (Unbind, or its method unregistered): the next Bind tries the methods again. */
function unbound(e: Entry): void {
  Object.assign(e, {
    state: BindingState.UNBOUND,
    method: undefined,
    entity: undefined,
    status: undefined,
    transformed: undefined,
  });
}

/** The location of the default methods' module. */
const BUILTIN = new URL('./methods.js', import.meta.url).href;
const MAX_NAME = 65_536;

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME)
    throw invalidArg('name', `must be a string of 1 to ${MAX_NAME} characters`, name);
  return name;
}

function checkMethod(m: unknown, name: string): BindingMethod {
  if (m === null || typeof m !== 'object')
    throw new AmixError(ErrorCode.AMIX_ERR_HANDLER_FAILED, `binding method ${name} is not an object`, {
      details: { module: `binding method ${name}`, request: 'load' },
    });
  const rec = m as Record<string, unknown>;
  for (const op of BINDING_OPERATIONS) {
    const v = rec[op];
    const ok =
      v === undefined || v === null || typeof v === 'function' || (op === 'patternMatching' && v instanceof RegExp);
    if (!ok)
      throw new AmixError(ErrorCode.AMIX_ERR_HANDLER_FAILED, `binding method ${name}: ${op} must be a function`, {
        details: { module: `binding method ${name}`, request: 'load' },
      });
  }
  return m as BindingMethod;
}

/**
 * The Binding Service. Start it with {@link BindingService.start} (reads the
 * configuration), then Bind names. Every request takes the principal making
 * it; the table is kept per principal, a method may be limited to some
 * principals, and only the owner changes the methods.
 *
 * @example
 * const b = await BindingService.start({ application: { functions: new Map([['hello', () => 'hi']]) } });
 * (await b.bind('hello')).state // 'BOUND' (by Function)
 */
export class BindingService {
  readonly #owner: string;
  readonly #baseDir: string;
  readonly #app: BindingApplication;
  readonly #maxEntries: number;
  readonly #methods = new Map<string, MethodSlot>();
  readonly #table = new Map<string, Entry>();
  #seq = 0;
  readonly #counters = { binds: 0, bound: 0, notFound: 0, unbound: 0, loads: 0, refused: 0 };

  private constructor(options: BindingServiceOptions) {
    this.#owner = options.owner ?? userInfo().username;
    this.#baseDir = options.baseDir ?? process.cwd();
    this.#app = {
      data: options.application?.data ?? new Map(),
      functions: options.application?.functions ?? new Map(),
      threads: options.application?.threads ?? new Map(),
    };
    const max = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(max) || max < 1) throw invalidArg('maxEntries', 'must be a positive integer', max);
    this.#maxEntries = max;
  }

  /**
   * Start a service: the default configuration (File, Shell, Data, Function,
   * Thread, Process), then each configuration file in order. Nothing is
   * loaded yet: a method's module is imported on its first use.
   */
  static async start(options: BindingServiceOptions = {}): Promise<BindingService> {
    const s = new BindingService(options);
    const regs = options.noDefaults ? [] : parseBindingConfig(DEFAULT_BINDING_CONFIG, '<defaults>');
    const files = options.configFiles ?? (process.env.AMIX_BINDING_CONFIG ? [process.env.AMIX_BINDING_CONFIG] : []);
    for (const f of files) regs.push(...(await readBindingConfig(f)));
    for (const r of regs) s.#put(r);
    return s;
  }

  /** The owner principal. */
  get owner(): string {
    return this.#owner;
  }

  /** What the application offers to Data, Function and Thread (maps the caller may keep filling). */
  get application(): BindingApplication {
    return this.#app;
  }

  #principal(o?: RequestOptions): string {
    const p = o?.principal ?? this.#owner;
    if (typeof p !== 'string' || p === '') throw invalidArg('principal', 'must be a non-empty string', p);
    return p;
  }

  #admin(o: RequestOptions | undefined, op: string): void {
    const principal = this.#principal(o);
    if (principal !== this.#owner) {
      this.#counters.refused++;
      throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `${op}: only ${this.#owner} changes the binding methods`, {
        details: { op, principal },
      });
    }
  }

  #put(reg: MethodRegistration): void {
    const old = this.#methods.get(reg.name);
    if (old && old.inUse > 0) throw this.#busy(old, 'register');
    if (old) this.#unbindBy(reg.name);
    this.#methods.set(reg.name, {
      reg: { ...reg, ...(reg.allow ? { allow: [...reg.allow] } : {}) },
      seq: this.#seq++,
      inUse: 0,
      ...(reg.method ? { loaded: checkMethod(reg.method, reg.name) } : {}),
    });
  }

  #busy(slot: MethodSlot, request: string): AmixError {
    this.#counters.refused++;
    return new AmixError(
      ErrorCode.AMIX_ERR_BAD_TRANSITION,
      `binding method ${slot.reg.name} is in use (${slot.inUse}): ${request} waits until its uses complete (¶419)`,
      { details: { module: `binding method ${slot.reg.name}`, state: 'in use', request } },
    );
  }

  /**
   * Register (¶415): add a method (or replace one of the same name that is
   * not in use) at run time. Owner only (`AMIX_ERR_UNAUTHORIZED`).
   */
  register(reg: MethodRegistration, options?: RequestOptions): void {
    this.#admin(options, 'register');
    if (reg === null || typeof reg !== 'object') throw invalidArg('registration', 'must be an object', reg);
    if (!Number.isSafeInteger(reg.order)) throw invalidArg('order', 'must be an integer', reg.order);
    if (typeof reg.name !== 'string' || !METHOD_NAME.test(reg.name))
      throw invalidArg('name', `must match ${METHOD_NAME}`, reg.name);
    if (reg.method === undefined && (typeof reg.location !== 'string' || reg.location === ''))
      throw invalidArg('location', 'must be given when no method object is', reg.location);
    if (reg.allow !== undefined && (!Array.isArray(reg.allow) || reg.allow.some((p) => typeof p !== 'string')))
      throw invalidArg('allow', 'must be an array of principals', reg.allow);
    this.#put(reg);
  }

  /**
   * SetOrder (¶417): the listed methods first, in that order, then the rest
   * in their current order; orders are renumbered 10, 20, ... Owner only.
   */
  setOrder(names: readonly string[], options?: RequestOptions): void {
    this.#admin(options, 'setOrder');
    if (!Array.isArray(names)) throw invalidArg('names', 'must be an array of method names', names);
    for (const n of names) if (!this.#methods.has(n)) throw invalidArg('names', 'names an unknown method', n);
    const rest = this.#ordered().filter((s) => !names.includes(s.reg.name));
    const all = [...new Set(names)].map((n) => this.#methods.get(n)!).concat(rest);
    all.forEach((s, i) => {
      s.reg.order = (i + 1) * 10;
      s.seq = i;
    });
  }

  /**
   * Unregister (¶419): remove a method once no use of it is in progress;
   * while one is, `AMIX_ERR_BAD_TRANSITION` (state "in use"). Names it bound
   * become UNBOUND. Owner only.
   */
  unregister(name: string, options?: RequestOptions): void {
    this.#admin(options, 'unregister');
    const slot = this.#methods.get(name);
    if (!slot) throw invalidArg('name', 'names an unknown method', name);
    if (slot.inUse > 0) throw this.#busy(slot, 'unregister');
    this.#methods.delete(name);
    this.#unbindBy(name);
  }

  #unbindBy(method: string): void {
    for (const e of this.#table.values()) if (e.method === method) unbound(e);
  }

  #ordered(): MethodSlot[] {
    return [...this.#methods.values()].sort((a, b) => a.reg.order - b.reg.order || a.seq - b.seq);
  }

  async #load(slot: MethodSlot): Promise<BindingMethod> {
    if (slot.loaded) return slot.loaded;
    slot.loading ??= (async () => {
      const loc = slot.reg.location!;
      const url = loc === 'builtin' ? BUILTIN : /^[a-z]+:/.test(loc) ? loc : pathToFileURL(loc).href;
      let mod: Record<string, unknown>;
      try {
        mod = (await import(url)) as Record<string, unknown>;
      } catch (err) {
        throw new AmixError(ErrorCode.AMIX_ERR_HANDLER_FAILED, `binding method ${slot.reg.name}: cannot load ${loc}`, {
          cause: err,
          details: { module: `binding method ${slot.reg.name}`, request: 'load' },
        });
      }
      const m = checkMethod(
        mod[slot.reg.name] ?? (mod.default as Record<string, unknown> | undefined)?.[slot.reg.name],
        slot.reg.name,
      );
      this.#counters.loads++;
      slot.loaded = m;
      return m;
    })();
    try {
      return await slot.loading;
    } finally {
      slot.loading = undefined;
    }
  }

  #ctx(principal: string): BindingContext {
    return { principal, baseDir: this.#baseDir, application: this.#app };
  }

  #key(principal: string, name: string): string {
    return `${principal}\0${name}`;
  }

  /**
   * Bind (¶420-429): the name's entry (added UNBOUND if absent; a BOUND or
   * BOUND_NOT_FOUND one is returned as it is), then each method in order:
   * loaded on first use; skipped when the principal is not allowed or its
   * pattern does not match; NameTransformation; Locate. Found: BOUND, Status
   * kept. Not found by a method with a pattern: BOUND_NOT_FOUND, and no
   * further method is tried (¶427). Not found otherwise: the next method.
   * Resolves with the name's Query.
   */
  async bind(name: string, options?: RequestOptions): Promise<BindingQuery> {
    await this.#bound(checkName(name), this.#principal(options));
    return this.query(name, options);
  }

  async #bound(name: string, principal: string): Promise<Entry> {
    const key = this.#key(principal, name);
    let e = this.#table.get(key);
    if (!e) {
      if (this.#table.size >= this.#maxEntries) {
        this.#counters.refused++;
        throw invalidArg(
          'name',
          `cannot be added: the binding table is full (maxEntries ${this.#maxEntries}; purge or unbind)`,
        );
      }
      e = { name, principal, state: BindingState.UNBOUND };
      this.#table.set(key, e);
    }
    // Two Binds of one name at once share one pass over the methods.
    while (e.pending) await e.pending;
    if (e.state !== BindingState.UNBOUND) return e;
    this.#counters.binds++;
    const run = this.#apply(e).finally(() => {
      e.pending = undefined;
    });
    e.pending = run;
    await run;
    return e;
  }

  async #apply(e: Entry): Promise<void> {
    const ctx = this.#ctx(e.principal);
    for (const slot of this.#ordered()) {
      if (slot.reg.allow && !slot.reg.allow.includes(e.principal)) continue;
      slot.inUse++;
      try {
        const m = await this.#load(slot);
        const pat = m.patternMatching;
        const hasPattern = pat !== undefined && pat !== null;
        if (hasPattern && !(pat instanceof RegExp ? pat.test(e.name) : pat(e.name, ctx))) continue;
        const transformed = m.nameTransformation ? m.nameTransformation(e.name, ctx) : e.name;
        const entity = m.locate ? await m.locate(transformed, ctx) : undefined;
        if (entity) {
          const status = m.status ? await m.status(entity, ctx) : {};
          Object.assign(e, { state: BindingState.BOUND, method: slot.reg.name, transformed, entity, status });
          this.#counters.bound++;
          return;
        }
        if (hasPattern) {
          Object.assign(e, { state: BindingState.BOUND_NOT_FOUND, method: slot.reg.name, transformed });
          this.#counters.notFound++;
          return;
        }
      } finally {
        slot.inUse--;
      }
    }
    this.#counters.unbound++;
  }

  /**
   * Bind `name` and run `fn` with its entity while the binding method counts
   * as in use (Unregister is refused until `fn` settles). For services built
   * on binding (the DCM); the application sees entities only through Query
   * (¶429). Rejects with the method's Query when the name is not BOUND.
   */
  async use<T>(
    name: string,
    fn: (entity: BoundEntity, method: string) => Promise<T> | T,
    options?: RequestOptions,
  ): Promise<T> {
    const principal = this.#principal(options);
    const e = await this.#bound(checkName(name), principal);
    if (e.state !== BindingState.BOUND)
      throw invalidArg(
        'name',
        e.state === BindingState.UNBOUND
          ? 'is UNBOUND: no binding method found it'
          : `is BOUND to ${e.method} but not found`,
        name,
      );
    const slot = this.#methods.get(e.method!)!;
    slot.inUse++;
    try {
      return await fn(e.entity!, e.method!);
    } finally {
      slot.inUse--;
    }
  }

  /** Unbind (¶431): mark the name UNBOUND (the next Bind tries the methods again). False if it was not in the table. */
  unbind(name: string, options?: RequestOptions): boolean {
    const e = this.#table.get(this.#key(this.#principal(options), checkName(name)));
    if (!e) return false;
    unbound(e);
    return true;
  }

  /**
   * Query (¶435): for a BOUND name, its state, method and the method's Query
   * of the kept status (the status itself when it has no Query); for
   * BOUND_NOT_FOUND the state and method; for an UNBOUND or unknown name
   * only `{ name }`.
   */
  query(name: string, options?: RequestOptions): BindingQuery {
    const principal = this.#principal(options);
    const e = this.#table.get(this.#key(principal, checkName(name)));
    if (!e || e.state === BindingState.UNBOUND) return { name };
    if (e.state === BindingState.BOUND_NOT_FOUND) return { name, state: e.state, method: e.method!, found: false };
    const m = this.#methods.get(e.method!)?.loaded;
    const shown = m?.query ? m.query(e.status!, this.#ctx(principal)) : e.status!;
    return { ...shown, name, state: e.state, method: e.method! };
  }

  /**
   * Report (¶433): the methods (order, location, loaded, uses in progress,
   * operations) and the table. The owner sees every principal's entries,
   * anyone else only their own.
   */
  report(options?: RequestOptions): BindingReport {
    const principal = this.#principal(options);
    const entries: EntryInfo[] = [];
    const boundBy = new Map<string, number>();
    for (const e of this.#table.values()) {
      if (e.state === BindingState.BOUND) boundBy.set(e.method!, (boundBy.get(e.method!) ?? 0) + 1);
      if (principal !== this.#owner && e.principal !== principal) continue;
      entries.push({
        name: e.name,
        principal: e.principal,
        state: e.state,
        ...(e.method ? { method: e.method } : {}),
        ...(e.transformed !== undefined && e.transformed !== e.name ? { transformed: e.transformed } : {}),
      });
    }
    const methods: MethodInfo[] = this.#ordered().map((s) => ({
      order: s.reg.order,
      name: s.reg.name,
      location: s.reg.location ?? 'inline',
      loaded: s.loaded !== undefined,
      inUse: s.inUse,
      operations: s.loaded ? BINDING_OPERATIONS.filter((op) => s.loaded![op]) : [],
      ...(s.reg.allow ? { allow: [...s.reg.allow] } : {}),
      bound: boundBy.get(s.reg.name) ?? 0,
    }));
    return { methods, entries, counters: { ...this.#counters } };
  }

  /** Purge (¶437): drop every UNBOUND entry of the principal (the owner: of everyone). Returns how many went. */
  purge(options?: RequestOptions): number {
    const principal = this.#principal(options);
    let n = 0;
    for (const [k, e] of this.#table)
      if (e.state === BindingState.UNBOUND && !e.pending && (principal === this.#owner || e.principal === principal)) {
        this.#table.delete(k);
        n++;
      }
    return n;
  }
}
