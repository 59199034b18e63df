/**
 * The primitive registry (seed 002's "Communication Primitives List"): add,
 * delete, query. A registration names a primitive, its location (a module
 * path, file URL or package specifier) and its characteristics. The module
 * is imported only when a channel first needs it, then runs through the
 * module model: load → start; quiesce → unload when the entry is deleted or
 * the registry closes.
 *
 * @module
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Channel } from './channel.js';
import { AmixError, ErrorCode, describe, invalidArg } from './errors.js';
import { Lifecycle, type Destroyable } from './lifecycle.js';
import { Container, type ModuleRecord, type ModuleState } from './module.js';
import {
  DiscardPolicy,
  IdleStrategy,
  REQUIRED_OPERATIONS,
  OPTIONAL_OPERATIONS,
  Scope,
  type ChannelHandle,
  type ChannelOptions,
  type Primitive,
  type PrimitiveCharacteristics,
} from './primitive.js';

/** A registration: what the registry knows of a primitive before (and after) loading it. */
export interface PrimitiveRegistration {
  /** Stable name; letters, digits, `.`, `_`, `-`; starts with a letter. */
  readonly name: string;
  /**
   * Where the module is: an absolute path, a path relative to the registry's
   * `baseDir`, a `file:` URL, or a package specifier.
   */
  readonly location: string;
  readonly characteristics: PrimitiveCharacteristics;
}

/** A registration plus its module state. */
export interface PrimitiveInfo extends PrimitiveRegistration {
  /** The module-model state (`unloaded` until first use). */
  readonly state: ModuleState;
  /** True for the primitives amix ships. */
  readonly builtin: boolean;
}

/** Filter for {@link PrimitiveRegistry.list}. */
export interface PrimitiveQuery {
  /** Only primitives serving this scope. */
  scope?: Scope;
  /** Only primitives carrying messages of at least this size. */
  minMessageBytes?: number;
}

/** Options for {@link PrimitiveRegistry}. */
export interface PrimitiveRegistryOptions {
  /** Seed the registry with the built-in primitives. Default true. */
  builtins?: boolean;
  /** Resolve relative locations against this directory. Default `process.cwd()`. */
  baseDir?: string;
  /** How long quiesce waits for open channels on delete/close. Default 5000 ms. */
  quiesceTimeoutMs?: number;
  /** Defaults merged under every {@link PrimitiveRegistry.open} call's options (e.g. `runtimeDir`). */
  channelDefaults?: Partial<ChannelOptions>;
}

const here = new URL('.', import.meta.url);
/** The built-in primitives, registered by default. Their modules load on first use, like any other. */
export const BUILTIN_PRIMITIVES: readonly PrimitiveRegistration[] = Object.freeze([
  {
    name: 'queueConditionThread',
    location: new URL('../../primitives/queueConditionThread.js', here).href,
    characteristics: { scopes: ['thread'], maxMessageBytes: 16 * 1024 * 1024, ordering: 'fifo', delivery: 'reliable' },
  },
  {
    name: 'queueConditionProcess',
    location: new URL('../../primitives/queueConditionProcess.js', here).href,
    characteristics: { scopes: ['process'], maxMessageBytes: 64 * 1024 * 1024, ordering: 'fifo', delivery: 'reliable' },
  },
  {
    name: 'zeromq',
    location: new URL('../../primitives/zeromq.js', here).href,
    characteristics: {
      scopes: ['remote', 'process'],
      maxMessageBytes: 64 * 1024 * 1024,
      ordering: 'fifo',
      delivery: 'reliable',
    },
  },
  {
    // Loads @nats-io/transport-node (and @nats-io/jetstream for durable links) on its first create(), not before.
    name: 'nats',
    location: new URL('../../primitives/nats.js', here).href,
    characteristics: {
      scopes: ['remote', 'process'],
      maxMessageBytes: 64 * 1024 * 1024,
      ordering: 'fifo',
      delivery: 'reliable',
    },
  },
]);

const NAME_RE = /^[A-Za-z][A-Za-z0-9._-]{0,127}$/;
const SCOPES: ReadonlySet<string> = new Set(Object.values(Scope));

function bad(message: string, details: Record<string, unknown>): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_BAD_PRIMITIVE, message, { details });
}

/**
 * Type guard for a registration. Throws `AMIX_ERR_BAD_PRIMITIVE` naming the
 * field and what it got when the entry is malformed.
 */
export function assertRegistration(entry: unknown): asserts entry is PrimitiveRegistration {
  if (entry === null || typeof entry !== 'object')
    throw bad(`primitive registration must be an object (got ${describe(entry)})`, {});
  const e = entry as Record<string, unknown>;
  if (typeof e.name !== 'string' || !NAME_RE.test(e.name)) {
    throw bad(`primitive name must match ${NAME_RE} (got ${describe(e.name)})`, { field: 'name' });
  }
  if (typeof e.location !== 'string' || e.location.length === 0) {
    throw bad(`primitive "${e.name}": location must be a non-empty string (got ${describe(e.location)})`, {
      field: 'location',
      name: e.name,
    });
  }
  assertCharacteristics(e.name, e.characteristics);
}

function assertCharacteristics(name: string, c: unknown): asserts c is PrimitiveCharacteristics {
  const where = `primitive "${name}": characteristics`;
  if (c === null || typeof c !== 'object')
    throw bad(`${where} must be an object (got ${describe(c)})`, { field: 'characteristics', name });
  const ch = c as Record<string, unknown>;
  if (!Array.isArray(ch.scopes) || ch.scopes.length === 0) {
    throw bad(`${where}.scopes must be a non-empty array of ${[...SCOPES].join(', ')} (got ${describe(ch.scopes)})`, {
      field: 'characteristics.scopes',
      name,
    });
  }
  for (const s of ch.scopes) {
    if (typeof s !== 'string' || !SCOPES.has(s)) {
      throw bad(`${where}.scopes has unknown scope ${describe(s)}; known: ${[...SCOPES].join(', ')}`, {
        field: 'characteristics.scopes',
        name,
        scope: String(s),
      });
    }
  }
  if (!Number.isSafeInteger(ch.maxMessageBytes) || (ch.maxMessageBytes as number) < 1) {
    throw bad(`${where}.maxMessageBytes must be a positive integer (got ${describe(ch.maxMessageBytes)})`, {
      field: 'characteristics.maxMessageBytes',
      name,
    });
  }
  if (ch.ordering !== 'fifo' && ch.ordering !== 'unordered') {
    throw bad(`${where}.ordering must be "fifo" or "unordered" (got ${describe(ch.ordering)})`, {
      field: 'characteristics.ordering',
      name,
    });
  }
  if (ch.delivery !== 'reliable' && ch.delivery !== 'bestEffort') {
    throw bad(`${where}.delivery must be "reliable" or "bestEffort" (got ${describe(ch.delivery)})`, {
      field: 'characteristics.delivery',
      name,
    });
  }
}

/**
 * Import the primitive module at `specifier` (written `location` in errors):
 * its `default` export, or a named `primitive`, checked with
 * {@link assertPrimitive} (against `name` when given). `AMIX_ERR_PRIMITIVE_LOAD`
 * when it cannot be imported.
 */
export async function importPrimitive(
  specifier: string,
  location: string,
  name?: string,
): Promise<Primitive<ChannelHandle>> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    const what = name === undefined ? 'a primitive' : `primitive "${name}"`;
    throw new AmixError(
      ErrorCode.AMIX_ERR_PRIMITIVE_LOAD,
      `cannot import ${what} from ${location}: ${(err as Error).message}`,
      { cause: err, details: { name: name ?? basename(location).replace(/\.[cm]?js$/, ''), location } },
    );
  }
  const p = mod.default ?? mod.primitive;
  assertPrimitive(p, name);
  return p;
}

/**
 * Type guard for a loaded primitive module's object: every required
 * operation present, every optional one a function if present. Throws
 * `AMIX_ERR_BAD_PRIMITIVE` naming the operation.
 */
export function assertPrimitive(value: unknown, expectedName?: string): asserts value is Primitive<ChannelHandle> {
  const label = expectedName ? `primitive "${expectedName}"` : 'primitive';
  if (value === null || typeof value !== 'object')
    throw bad(`${label}: module must export an object (got ${describe(value)})`, {});
  const p = value as Record<string, unknown>;
  if (typeof p.name !== 'string')
    throw bad(`${label}: name must be a string (got ${describe(p.name)})`, { field: 'name' });
  if (expectedName !== undefined && p.name !== expectedName) {
    throw bad(`${label}: module exports a primitive named ${describe(p.name)}`, { field: 'name', got: p.name });
  }
  for (const op of REQUIRED_OPERATIONS) {
    if (typeof p[op] !== 'function')
      throw bad(`${label}: missing operation ${op} (got ${describe(p[op])})`, { field: op, operation: op });
  }
  for (const op of OPTIONAL_OPERATIONS) {
    if (p[op] !== undefined && typeof p[op] !== 'function')
      throw bad(`${label}: operation ${op} must be a function (got ${describe(p[op])})`, { field: op, operation: op });
  }
  assertCharacteristics(p.name, p.characteristics);
}

interface Entry {
  reg: PrimitiveRegistration;
  builtin: boolean;
  /** Set by the load handler. */
  primitive?: Primitive<ChannelHandle>;
  /** Given at registration instead of a location (in-memory primitive). */
  inline?: Primitive<ChannelHandle>;
  /** The first load in progress, shared by concurrent first users. */
  loading?: Promise<Primitive<ChannelHandle>>;
}

/** The file format of {@link PrimitiveRegistry.save}. */
interface RegistryFile {
  version: 1;
  primitives: PrimitiveRegistration[];
}

/**
 * The registry of primitives of one fabric. A `Map` on an object, seeded
 * with the built-ins, each entry a module in the registry's {@link Container}.
 *
 * @example
 * const reg = new PrimitiveRegistry()
 * reg.register({ name: 'myBus', location: './my-bus.js', characteristics })
 * const rx = await reg.open('myBus')   // imports ./my-bus.js now, not before
 *
 * Follows the lifecycle contract of `lib/core/lifecycle.ts`: `close()`
 * quiesces (waiting for open channels), `destroy(reason)` destroys every
 * channel it opened first.
 */
export class PrimitiveRegistry implements Destroyable {
  /** The container whose module database holds one module per primitive. */
  readonly container: Container;
  /** Resolves once the registry is closed, with the reason (undefined for a graceful close). Never rejects. */
  readonly closed: Promise<Error | undefined>;
  readonly #entries = new Map<string, Entry>();
  readonly #baseDir: string;
  readonly #defaults: Partial<ChannelOptions>;
  readonly #life = new Lifecycle('primitive registry');
  /** Channels opened and not yet closed, for destroy. */
  readonly #channels = new Set<Channel>();

  constructor(options: PrimitiveRegistryOptions = {}) {
    this.#baseDir = options.baseDir ?? process.cwd();
    this.#defaults = options.channelDefaults ?? {};
    this.container = new Container({ name: 'primitives', quiesceTimeoutMs: options.quiesceTimeoutMs ?? 5000 });
    this.closed = this.#life.closed;
    if (options.builtins !== false) for (const b of BUILTIN_PRIMITIVES) this.#add(b, true);
  }

  /**
   * Register a primitive by name, location and characteristics. Nothing is
   * imported. `AMIX_ERR_BAD_PRIMITIVE` for a malformed entry,
   * `AMIX_ERR_DUPLICATE` for a taken name.
   */
  register(entry: PrimitiveRegistration): void {
    this.#checkOpen();
    assertRegistration(entry);
    this.#add(
      {
        name: entry.name,
        location: entry.location,
        characteristics: { ...entry.characteristics, scopes: [...entry.characteristics.scopes] },
      },
      false,
    );
  }

  /**
   * Register a primitive object already in memory (no import). It is checked
   * at once with `assertPrimitive`.
   */
  registerInline(primitive: Primitive<any>): void {
    this.#checkOpen();
    assertPrimitive(primitive);
    const reg = {
      name: primitive.name,
      location: `inline:${primitive.name}`,
      characteristics: primitive.characteristics,
    };
    this.#add(reg, false, primitive);
  }

  /**
   * Delete a registration. A loaded primitive is quiesced first (waiting for
   * its open channels to close, up to the quiesce timeout), then unloaded.
   */
  async delete(name: string): Promise<void> {
    const e = this.#get(name);
    await this.#bringDown(name);
    this.container.remove(name);
    this.#entries.delete(e.reg.name);
  }

  /** True when `name` is registered. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** One registration with its state. `AMIX_ERR_UNKNOWN_PRIMITIVE` if absent. */
  get(name: string): PrimitiveInfo {
    return this.#info(this.#get(name));
  }

  /** Registrations matching `query`, in registration order. */
  list(query: PrimitiveQuery = {}): PrimitiveInfo[] {
    const out: PrimitiveInfo[] = [];
    for (const e of this.#entries.values()) {
      const c = e.reg.characteristics;
      if (query.scope && !c.scopes.includes(query.scope)) continue;
      if (query.minMessageBytes !== undefined && c.maxMessageBytes < query.minMessageBytes) continue;
      out.push(this.#info(e));
    }
    return out;
  }

  /**
   * The primitive object, importing and starting its module on first use.
   * `AMIX_ERR_PRIMITIVE_LOAD` if the import fails, `AMIX_ERR_BAD_PRIMITIVE`
   * if the module does not satisfy the contract (it is then left unloaded).
   */
  async load(name: string): Promise<Primitive<ChannelHandle>> {
    this.#checkOpen();
    const e = this.#get(name);
    if (e.primitive && this.container.get(name).state === 'started') return e.primitive;
    const now = this.container.get(name).state;
    if (now !== 'unloaded' && now !== 'loaded' && now !== 'loading' && now !== 'starting' && now !== 'started') {
      // Quiescing or unloading means the entry is being deleted: do not start it again.
      throw new AmixError(ErrorCode.AMIX_ERR_NOT_ACCEPTING, `primitive "${name}" is ${now} and takes no new channels`, {
        details: { module: name, state: now },
      });
    }
    e.loading ??= (async () => {
      try {
        const state = this.container.get(name).state;
        if (state === 'unloaded') await this.container.load(name);
        if (this.container.get(name).state !== 'started') await this.container.start(name);
        return e.primitive!;
      } finally {
        e.loading = undefined;
      }
    })();
    return e.loading;
  }

  /**
   * Open one end of a channel on primitive `name`: a new instance (its
   * receiving end) without `options.address`, or the sending end of the
   * instance at `options.address`. Counts as in-flight work of the
   * primitive's module until the channel closes, so quiesce waits for it.
   */
  async open(name: string, options: ChannelOptions = {}): Promise<Channel> {
    const p = await this.load(name);
    const merged = { ...this.#defaults, ...options };
    const limit = p.characteristics.maxMessageBytes;
    const maxMessageBytes = merged.maxMessageBytes ?? limit;
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 0 || maxMessageBytes > limit) {
      throw invalidArg(
        'options.maxMessageBytes',
        `must be an integer from 0 to ${limit} for primitive "${name}"`,
        merged.maxMessageBytes,
      );
    }
    checkChannelOptions(merged);
    const events = Channel.eventSink();
    let channel!: Channel;
    let opened!: () => void;
    const ready = new Promise<void>((r) => {
      opened = r;
    });
    // The channel's whole life is one work item of the module: quiesce waits
    // until it closes. The work function resolves `ready` once the channel
    // exists and then holds the item open until `closed`.
    const work = this.container.run(name, async () => {
      const handle = await p.create({ ...merged, maxMessageBytes, onEvent: events.sink });
      channel = new Channel(p, handle, maxMessageBytes);
      events.bind(channel);
      this.#channels.add(channel);
      opened();
      await channel.closed;
      this.#channels.delete(channel);
    });
    await Promise.race([ready, work]);
    return channel;
  }

  /** Save every non-built-in, non-inline registration to `file` (JSON, mode 0600, written atomically). */
  async save(file: string): Promise<void> {
    const data: RegistryFile = {
      version: 1,
      primitives: [...this.#entries.values()].filter((e) => !e.builtin && !e.inline).map((e) => e.reg),
    };
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  }

  /**
   * Register every entry of a file written by {@link save}. Entries already
   * registered under the same name are refused with `AMIX_ERR_DUPLICATE`.
   * Returns the names added.
   */
  async loadFile(file: string): Promise<string[]> {
    let data: RegistryFile;
    try {
      data = JSON.parse(await readFile(file, 'utf8')) as RegistryFile;
    } catch (err) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `cannot read primitive registry file ${file}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (data?.version !== 1 || !Array.isArray(data.primitives)) {
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${file} is not a version-1 primitive registry file`);
    }
    const added: string[] = [];
    for (const p of data.primitives) {
      this.register(p);
      added.push(p.name);
    }
    return added;
  }

  /**
   * Quiesce and unload every loaded primitive (last registered first),
   * waiting up to the quiesce timeout for open channels. Idempotent: a
   * second call returns the same promise.
   */
  close(): Promise<void> {
    return this.#life.close(() => this.container.close());
  }

  /**
   * Abrupt close: destroy every channel this registry opened (their pending
   * operations reject with `AMIX_ERR_LINK_CLOSED`, cause `reason`), then
   * unload every primitive without waiting.
   */
  destroy(reason?: Error): Promise<void> {
    return this.#life.destroy(reason, async (r) => {
      await Promise.allSettled([...this.#channels].map((c) => c.destroy(r)));
      await this.container.close();
    });
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #add(reg: PrimitiveRegistration, builtin: boolean, inline?: Primitive<ChannelHandle>): void {
    if (this.#entries.has(reg.name)) {
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `primitive "${reg.name}" is already registered`, {
        details: { name: reg.name },
      });
    }
    const entry: Entry = { reg, builtin, ...(inline ? { inline } : {}) };
    this.container.add(
      reg.name,
      {
        load: async () => {
          entry.primitive = entry.inline ?? (await this.#import(entry));
        },
        unload: () => {
          entry.primitive = undefined;
        },
      },
      { location: reg.location },
    );
    this.#entries.set(reg.name, entry);
  }

  #import(e: Entry): Promise<Primitive<ChannelHandle>> {
    return importPrimitive(importSpecifier(e.reg.location, this.#baseDir), e.reg.location, e.reg.name);
  }

  async #bringDown(name: string): Promise<void> {
    const state = this.container.get(name).state;
    if (state === 'started') await this.container.quiesce(name);
    if (this.container.get(name).state !== 'unloaded') await this.container.unload(name);
  }

  #get(name: string): Entry {
    const e = this.#entries.get(name);
    if (!e) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_UNKNOWN_PRIMITIVE,
        `no primitive named ${describe(name)}; registered: ${[...this.#entries.keys()].join(', ') || 'none'}`,
        { details: { name } },
      );
    }
    return e;
  }

  #info(e: Entry): PrimitiveInfo {
    const rec: ModuleRecord = this.container.get(e.reg.name);
    return { ...e.reg, state: rec.state, builtin: e.builtin };
  }

  #checkOpen(): void {
    this.#life.assertOpen();
  }
}

/**
 * What to `import()` for a module location: a URL as is, an absolute path as
 * a file URL, a `.`-relative path resolved against `baseDir`, anything else
 * as a package specifier.
 */
export function importSpecifier(location: string, baseDir: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(location) && !/^[A-Za-z]:[\\/]/.test(location)) return location; // URL (file:, data:, node:)
  if (isAbsolute(location)) return pathToFileURL(location).href;
  if (location.startsWith('.')) return pathToFileURL(resolve(baseDir, location)).href;
  return location; // a package specifier
}

/** Validate the channel options common to every primitive; `AMIX_ERR_INVALID_ARG` names the option. */
export function checkChannelOptions(o: ChannelOptions): void {
  const int = (k: keyof ChannelOptions, min: number) => {
    const v = o[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < min))
      throw invalidArg(`options.${k}`, `must be an integer >= ${min}`, v);
  };
  int('maxmsg', 1);
  int('minmsg', 0);
  int('capacityBytes', 1);
  if (o.maxmsg !== undefined && o.minmsg !== undefined && o.minmsg >= o.maxmsg) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `options.minmsg must be below options.maxmsg (got ${o.minmsg} >= ${o.maxmsg})`,
      { details: { option: 'minmsg' } },
    );
  }
  if (o.discard !== undefined && !Object.values(DiscardPolicy).includes(o.discard))
    throw invalidArg('options.discard', `must be one of ${Object.values(DiscardPolicy).join(', ')}`, o.discard);
  if (o.idle !== undefined && !Object.values(IdleStrategy).includes(o.idle))
    throw invalidArg('options.idle', `must be one of ${Object.values(IdleStrategy).join(', ')}`, o.idle);
}
