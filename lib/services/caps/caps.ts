/**
 * {@link Caps}, the Configurable Application Process Service (seed 002
 * ¶104-107, ¶242-248, ¶513-583): the Configuration Administrator over a
 * {@link Fabric}. It keeps the LOADED, ACTIVE, SUSPENDED and EVENT lists, a
 * reference count per AMS and the MAP AREAs, and carries out the seed's
 * fifteen operations. An AMS is a point; one that runs {@link runAms} can
 * also be stopped between two messages, handed messages and asked for its
 * state, which REPLACE, INSERT, EXTRACT, DUMP_MAP and LOAD_MAP need.
 * The link surgery is in `surgery.ts`, deferral and the request store in
 * `defer.ts`. docs/caps.md has the guarantees.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AmixError, ErrorCode, amixError, invalidArg } from '../../core/errors.js';
import type { Fabric } from '../../fabric/fabric.js';
import { AMS_SERVICE, type AmsStats } from './ams.js';
import { Deferrals } from './defer.js';
import type { AmsRec, CapsCore } from './records.js';
import { extractAms, hasInstance, insertAms, replaceAms, type SurgeryHost } from './surgery.js';
import type {
  AmsInfo,
  AmsState,
  BetweenOptions,
  CapsClock,
  CapsEvent,
  CapsOptions,
  CapsQuery,
  CapsRequest,
  Comprims,
  DeferredInfo,
  ExecuteOptions,
  LoadOptions,
  MapArea,
  ReplaceOptions,
} from './types.js';

/** Where LOCATE found an AMS. */
export interface Located {
  name: string;
  /** `process` (already loaded here), `library` (a file in a named library), `point` (a registered point), `binding` (the binding hook). */
  where: 'process' | 'library' | 'point' | 'binding';
  location: string;
}

const realClock: CapsClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

const badState = (ams: string, state: string, request: string, why: string) =>
  amixError('AMIX_ERR_BAD_TRANSITION', `${request} ${ams}: ${why} (it is ${state})`, { module: ams, state, request });

/**
 * The Configuration Administrator. Events (`'event'`): a {@link CapsEvent}
 * for every operation and every list transition.
 *
 * @example
 * const caps = new Caps(fabric)
 * await caps.load({ name: 'stageB', location: './stage-b.js' })
 * await caps.replace('stageA', 'stageB', { state: true })
 */
export class Caps extends EventEmitter implements CapsCore {
  /** The fabric the AMSs are points of. */
  readonly fabric: Fabric;
  readonly #opts: CapsOptions;
  readonly #ams = new Map<string, AmsRec>();
  readonly #maps = new Map<string, MapArea & { json: string }>();
  readonly #defer: Deferrals;
  #mapSeq = 0;
  #comprims: Comprims = {};
  #closed = false;
  /** @internal Counters QUERY reports. */
  readonly counters = { discarded: 0, handedOver: 0, storeErrors: 0, requestsFailed: 0 };

  constructor(fabric: Fabric, options: CapsOptions = {}) {
    super();
    this.fabric = fabric;
    this.#opts = options;
    this.#defer = new Deferrals(this, options.clock ?? realClock, options.maxDeferred ?? 1024);
  }

  /** The principal map areas and deferred requests are marked with by default. */
  get owner(): string {
    return this.#opts.owner ?? `process:${process.getuid?.() ?? 0}`;
  }

  // ---- LOCATE, LOAD, UNLOAD, COMPRIMS --------------------------------------------------------

  /**
   * LOCATE (¶521-523): this process's AMSs, then each library directory
   * (`<name>.js`, `<name>.mjs`), then the fabric's registered points, then
   * the binding hook. `AMIX_ERR_UNKNOWN_POINT` when none has it.
   */
  async locate(name: string): Promise<Located> {
    checkName(name);
    const own = this.#ams.get(name);
    if (own) return { name, where: 'process', location: own.location };
    for (const dir of this.#opts.libraries ?? [])
      for (const ext of ['.js', '.mjs']) {
        const file = join(dir, name + ext);
        if (
          await access(file).then(
            () => true,
            () => false,
          )
        )
          return { name, where: 'library', location: pathToFileURL(file).href };
      }
    const reg = this.fabric.points().find((p) => p.name === name);
    if (reg) return { name, where: 'point', location: reg.location };
    const bound = await this.#opts.bind?.(name);
    if (bound) return { name, where: 'binding', location: bound };
    throw amixError('AMIX_ERR_UNKNOWN_POINT', `LOCATE found no AMS "${name}"`, { name });
  }

  /**
   * LOAD (¶525-530): register the AMS as a point unless it is loaded (or
   * `force`), and put it on LOADED. Without a location LOCATE finds it. A
   * forced LOAD of an executing AMS is refused (`AMIX_ERR_BAD_TRANSITION`).
   */
  async load(options: LoadOptions): Promise<AmsInfo> {
    this.#open();
    checkName(options.name);
    const dealloc = options.deallocation ?? 'drain';
    if (dealloc !== 'drain' && dealloc !== 'discard')
      throw invalidArg('deallocation', 'must be drain or discard', dealloc);
    if (options.start !== undefined && typeof options.start !== 'boolean')
      throw invalidArg('start', 'must be a boolean', options.start);
    const had = this.#ams.get(options.name);
    if (had && !options.force) return info(had);
    if (had && had.state !== 'loaded') throw badState(had.name, had.state, 'load', 'a forced LOAD needs it stopped');
    const location = options.location ?? (await this.locate(options.name)).location;
    const existing = this.fabric.points().find((p) => p.name === options.name);
    // A point registered by someone else (LOCATE's `point`) is adopted; a forced LOAD registers it anew.
    if (existing && options.force) await this.fabric.destroyPoint(options.name);
    if (!existing || options.force) this.fabric.register(registration(options, location, this.#comprims));
    if (options.start) await this.fabric.execute(options.name);
    const rec: AmsRec = {
      name: options.name,
      location,
      input: { ...options, location },
      state: 'loaded',
      refs: 0,
      scope: 'public',
      instances: [],
      deallocation: dealloc,
      standby: false,
      loads: (had?.loads ?? 0) + 1,
      privateSeq: had?.privateSeq ?? 0,
    };
    this.#ams.set(rec.name, rec);
    this.emitEvent({ type: 'loaded', ams: rec.name, location, forced: !!had });
    if (!had) this.emitEvent({ type: 'list', ams: rec.name, from: 'none', to: 'loaded' });
    return info(rec);
  }

  /** UNLOAD (¶575): off LOADED; aborted (`AMIX_ERR_BAD_TRANSITION`) while ACTIVE or SUSPENDED. */
  async unload(name: string): Promise<void> {
    const rec = this.rec(name);
    if (rec.state !== 'loaded') throw badState(name, rec.state, 'unload', 'UNLOAD needs it off ACTIVE');
    this.#ams.delete(name);
    if (this.fabric.points().some((p) => p.name === name)) await this.fabric.destroyPoint(name);
    this.emitEvent({ type: 'unloaded', ams: name });
    this.emitEvent({ type: 'list', ams: name, from: 'loaded', to: 'none' });
  }

  /** COMPRIMS (¶573): the default primitives of AMSs loaded from now on; links made before keep theirs. */
  comprims(p: Comprims): Comprims {
    for (const k of ['sendPrimitive', 'receivePrimitive'] as const)
      if (p[k] !== undefined && (typeof p[k] !== 'string' || p[k] === ''))
        throw invalidArg(k, 'must be a primitive name', p[k]);
    this.#comprims = { ...this.#comprims, ...p };
    this.emitEvent({ type: 'comprims', ...this.#comprims });
    return { ...this.#comprims };
  }

  // ---- EXECUTE, SUSPEND, RESUME, TERMINATE -----------------------------------------------

  /**
   * EXECUTE (¶532-537): the AMS must be LOADED. Starts its instance (PUBLIC:
   * the one shared instance, started once; PRIVATE: a new one), links the
   * given upstream and downstream points to it, counts the reference, and
   * puts it on ACTIVE. Returns the instance id.
   */
  async execute(name: string, options: ExecuteOptions = {}): Promise<{ instance: string; refs: number }> {
    this.#open();
    const rec = this.rec(name);
    const scope = options.scope ?? (rec.refs > 0 ? rec.scope : 'public');
    if (scope !== 'public' && scope !== 'private') throw invalidArg('scope', 'must be public or private', scope);
    if (rec.state === 'suspended') throw badState(name, rec.state, 'execute', 'RESUME it first');
    if (rec.refs > 0 && scope !== rec.scope)
      throw badState(name, rec.scope, 'execute', `it executes with ${rec.scope} scope already`);
    let instance = name;
    if (scope === 'private') {
      instance = `${name}-x${++rec.privateSeq}`;
      this.fabric.register(registration({ ...rec.input, name: instance }, rec.location, this.#comprims));
    }
    if (scope === 'private' || rec.instances.length === 0) {
      await this.fabric.execute(instance);
      rec.instances.push(instance);
    }
    for (const up of options.upstream ?? []) await this.fabric.connect(up, instance, { direction: 'aToB' });
    for (const down of options.downstream ?? []) await this.fabric.connect(instance, down, { direction: 'aToB' });
    rec.scope = scope;
    rec.refs++;
    rec.standby = false;
    const from = rec.state;
    rec.state = 'active';
    if (from !== 'active') this.emitEvent({ type: 'list', ams: name, from, to: 'active' });
    this.emitEvent({ type: 'executed', ams: name, instance, refs: rec.refs });
    return { instance, refs: rec.refs };
  }

  /**
   * SUSPEND (¶545): ACTIVE → SUSPENDED. Every link of each instance is
   * suspended (nothing is sent to it or by it) and an AMS that runs
   * {@link runAms} stops taking messages after the one in hand: whichever
   * the platform, it does no more work until RESUME.
   */
  async suspend(name: string): Promise<void> {
    const rec = this.rec(name);
    if (rec.state !== 'active') throw badState(name, rec.state, 'suspend', 'SUSPEND needs it on ACTIVE');
    for (const inst of rec.instances) {
      await this.amsRequest(inst, 'gate').catch(() => undefined);
      for (const l of this.fabric.instance(inst).links) await this.fabric.suspend(l);
    }
    rec.state = 'suspended';
    this.emitEvent({ type: 'list', ams: name, from: 'active', to: 'suspended' });
    this.emitEvent({ type: 'suspended', ams: name });
  }

  /** RESUME (¶548): SUSPENDED → ACTIVE. */
  async resume(name: string): Promise<void> {
    const rec = this.rec(name);
    if (rec.state !== 'suspended') throw badState(name, rec.state, 'resume', 'RESUME needs it on SUSPENDED');
    for (const inst of rec.instances) {
      for (const l of this.fabric.instance(inst).links) await this.fabric.resume(l);
      await this.amsRequest(inst, 'release').catch(() => undefined);
    }
    rec.state = 'active';
    rec.standby = false;
    this.emitEvent({ type: 'list', ams: name, from: 'suspended', to: 'active' });
    this.emitEvent({ type: 'resumed', ams: name });
  }

  /**
   * TERMINATE (¶560-562): decrement the reference count; a PUBLIC AMS still
   * referenced stops there. Otherwise (or for `instance`, one private
   * execution) its links are disconnected after what is queued for it is
   * dealt with by its de-allocation attribute (`drain`: it takes it first;
   * `discard`: dropped and counted), its instance ends, and with no
   * execution left it leaves ACTIVE (or SUSPENDED) and its map areas of
   * persistence `terminate` are freed.
   */
  async terminate(name: string, options: { instance?: string } = {}): Promise<{ refs: number; ended: string[] }> {
    const rec = this.rec(name);
    if (rec.state === 'loaded') throw badState(name, rec.state, 'terminate', 'TERMINATE needs it executed');
    rec.refs = Math.max(0, rec.refs - 1);
    if (rec.scope === 'public' && rec.refs > 0) {
      this.emitEvent({ type: 'released', ams: name, refs: rec.refs });
      return { refs: rec.refs, ended: [] };
    }
    let ending = rec.scope === 'public' ? [...rec.instances] : [options.instance ?? rec.instances.at(-1)!];
    if (options.instance && !rec.instances.includes(options.instance))
      throw amixError('AMIX_ERR_UNKNOWN_POINT', `${name} has no instance ${options.instance}`, {
        instance: options.instance,
      });
    ending = ending.filter(Boolean);
    for (const inst of ending) await this.endInstance(rec, inst);
    if (rec.refs === 0 || rec.instances.length === 0) {
      rec.refs = 0;
      const from = rec.state;
      rec.state = 'loaded';
      rec.standby = false;
      this.emitEvent({ type: 'list', ams: name, from, to: 'loaded' });
      for (const [id, m] of this.#maps)
        if (m.ams === name && m.persistence === 'terminate') {
          this.#maps.delete(id);
          this.emitEvent({ type: 'mapFreed', map: id });
        }
    }
    return { refs: rec.refs, ended: ending };
  }

  /** @internal End one instance of `rec` by its de-allocation attribute. */
  async endInstance(rec: AmsRec, inst: string): Promise<void> {
    let discarded = 0;
    const links = hasInstance(this.fabric, inst) ? this.fabric.instance(inst).links : [];
    if (rec.deallocation === 'discard') {
      // Take what is queued, uncounted by the AMS, and drop it where QUERY shows it.
      if ((await this.amsRequest(inst, 'handoff').catch(() => undefined)) !== undefined) {
        for (const l of links) await this.fabric.disconnect(l).catch(() => {});
        const t = await this.amsRequest<{ messages: Uint8Array[] }>(inst, 'take').catch(() => ({ messages: [] }));
        discarded = t.messages.length;
        this.counters.discarded += discarded;
      }
    } else {
      // A suspended AMS must run to take what is queued for it.
      for (const l of links) if (this.fabric.hasLink(l)) await this.fabric.resume(l).catch(() => {});
      await this.amsRequest(inst, 'release').catch(() => undefined);
    }
    for (const l of links) if (this.fabric.hasLink(l)) await this.fabric.disconnect(l).catch(() => {});
    if (hasInstance(this.fabric, inst)) await this.fabric.terminate(inst).catch(() => {});
    if (inst !== rec.name && this.fabric.points().some((p) => p.name === inst)) await this.fabric.destroyPoint(inst);
    rec.instances = rec.instances.filter((i) => i !== inst);
    this.emitEvent({ type: 'terminated', ams: rec.name, instance: inst, discarded });
  }

  // ---- REPLACE, INSERT, EXTRACT ----------------------------------------------------------------

  /**
   * REPLACE (¶539-543, ¶579-583): `oldName` must be ACTIVE, `newName`
   * LOADED (`AMIX_ERR_BAD_TRANSITION`, `AMIX_ERR_UNKNOWN_POINT` otherwise).
   * Its links are moved to the new AMS with nothing lost, duplicated or
   * reordered (docs/caps.md, "The REPLACE guarantee").
   */
  replace(
    oldName: string,
    newName: string,
    options: ReplaceOptions = {},
  ): Promise<{ handedOver: number; pauseMs: number; stateError?: string }> {
    this.#open();
    return replaceAms(this.#surgery(), oldName, newName, options);
  }

  /** INSERT (¶567): put ACTIVE `ams` on the live link `from` → `to`: from → ams → to, nothing lost. */
  insert(ams: string, options: BetweenOptions): Promise<{ pauseMs: number }> {
    this.#open();
    return insertAms(this.#surgery(), ams, options);
  }

  /** EXTRACT (¶570): from → ams → to becomes from → to, nothing lost; then the disposition. */
  extract(ams: string, options: BetweenOptions): Promise<{ pauseMs: number }> {
    this.#open();
    return extractAms(this.#surgery(), ams, options);
  }

  // ---- DUMP_MAP, LOAD_MAP --------------------------------------------------------------------

  /**
   * DUMP_MAP (¶551-555): the AMS must be ACTIVE. Its loop writes its state
   * (between two messages) into a new MAP AREA, as JSON; returns the area.
   */
  async dumpMap(name: string, options: { persistence?: 'terminate' | 'load'; owner?: string } = {}): Promise<MapArea> {
    const rec = this.rec(name);
    if (rec.state !== 'active') throw badState(name, rec.state, 'dump', 'DUMP_MAP needs it on ACTIVE');
    const persistence = options.persistence ?? 'terminate';
    if (persistence !== 'terminate' && persistence !== 'load')
      throw invalidArg('persistence', 'must be terminate or load', persistence);
    const { state } = await this.amsRequest<{ state: unknown }>(rec.instances[0]!, 'dump');
    const json = JSON.stringify(state ?? null);
    const max = this.#opts.maxMapBytes ?? 16 * 1024 * 1024;
    if (json.length > max)
      throw invalidArg('state', `is ${json.length} bytes of JSON, over the ${max} a map area holds`);
    const area: MapArea & { json: string } = {
      id: `map${++this.#mapSeq}`,
      ams: name,
      architecture: {
        arch: process.arch,
        platform: process.platform,
        endianness: (await import('node:os')).endianness(),
        node: process.version,
      },
      at: Date.now(),
      security: { owner: options.owner ?? this.owner },
      persistence,
      format: 'json',
      bytes: json.length,
      json,
    };
    this.#maps.set(area.id, area);
    this.emitEvent({ type: 'dumped', ams: name, map: area.id, bytes: area.bytes });
    return mapInfo(area);
  }

  /**
   * LOAD_MAP (¶557-558): send a MAP AREA (by id, or a state given by value)
   * to an executing AMS; an area of persistence `load` is freed after. An
   * area whose owner is not `owner` (when given) is `AMIX_ERR_NOT_OWNER`.
   */
  async loadMap(name: string, map: { id?: string; state?: unknown; owner?: string }): Promise<void> {
    const rec = this.rec(name);
    if (rec.state === 'loaded') throw badState(name, rec.state, 'restore', 'LOAD_MAP needs it executed');
    let state: unknown;
    const area = map.id !== undefined ? this.#maps.get(map.id) : undefined;
    if (map.id !== undefined) {
      if (!area) throw invalidArg('map', 'names no map area', map.id);
      if (map.owner !== undefined && area.security.owner !== map.owner)
        throw amixError('AMIX_ERR_NOT_OWNER', `map area ${map.id} belongs to ${area.security.owner}`, {
          owner: area.security.owner,
          op: 'restore',
        });
      state = JSON.parse(area.json);
    } else if ('state' in map) state = JSON.parse(JSON.stringify(map.state ?? null));
    else throw invalidArg('map', 'needs an id or a state');
    for (const inst of rec.instances) await this.amsRequest(inst, 'load', { state });
    this.emitEvent({ type: 'mapLoaded', ams: name, ...(area ? { map: area.id } : {}) });
    if (area && area.persistence === 'load') {
      this.#maps.delete(area.id);
      this.emitEvent({ type: 'mapFreed', map: area.id });
    }
  }

  /** A map area's record (without its state); `AMIX_ERR_INVALID_ARG` for no such area. */
  mapArea(id: string): MapArea {
    const a = this.#maps.get(id);
    if (!a) throw invalidArg('map', 'names no map area', id);
    return mapInfo(a);
  }

  // ---- deferral, NOTIFICATION, QUERY ---------------------------------------------------------

  /**
   * Defer a request (¶530 and the like): "at TIME", "every INTERVAL" or "on
   * EVENT" (CapsRequest `at`, `every`, `on`). It goes on the EVENT list and
   * nothing else happens now. A request with none of the three runs now.
   */
  defer(request: CapsRequest, owner = this.owner): Promise<DeferredInfo | { ran: unknown }> {
    this.#open();
    return this.#defer.add(request, owner);
  }

  /** Take a request off the EVENT list (its owner, when `owner` is given). Returns whether one was. */
  cancel(id: string, owner?: string): boolean {
    return this.#defer.cancel(id, owner);
  }

  /** NOTIFICATION (¶565): run the EVENT-list requests waiting for `event`, in the order they were given. */
  notify(event: string): Promise<Array<{ id: string; ok: boolean; result?: unknown; error?: string }>> {
    this.#open();
    return this.#defer.notify(event);
  }

  /**
   * Watch an NDJSON request store (¶105, ¶245): each line a
   * {@link CapsRequest}, run when it appears (now, or deferred as it says).
   * The file must be owner-only (`AMIX_ERR_UNSAFE_DIR` otherwise, at start
   * and at every read). Returns a stop function.
   */
  watchStore(file: string, options: { pollMs?: number } = {}): Promise<() => void> {
    this.#open();
    return this.#defer.watch(file, options.pollMs ?? 500);
  }

  /** QUERY (¶577): the lists, references, map areas and the requests waiting; and the fabric's kept hosts. */
  query(): CapsQuery {
    const all = [...this.#ams.values()];
    return {
      loaded: all.map(info),
      active: all.filter((r) => r.state === 'active').map((r) => r.name),
      suspended: all.filter((r) => r.state === 'suspended').map((r) => r.name),
      event: this.#defer.list(),
      references: Object.fromEntries(all.map((r) => [r.name, r.refs])),
      mapAreas: [...this.#maps.values()].map(mapInfo),
      comprims: { ...this.#comprims },
      counters: { ...this.counters },
      hosts: this.fabric.hostPool(),
    };
  }

  /** One AMS's record; `AMIX_ERR_UNKNOWN_POINT` when it is not loaded. */
  info(name: string): AmsInfo {
    return info(this.rec(name));
  }

  /** Stop the timers and the store watch. AMSs keep running (the fabric's close ends them). Idempotent. */
  close(): void {
    this.#closed = true;
    this.#defer.close();
  }

  // ---- internals shared with surgery.ts and defer.ts --------------------------------------------

  /** @internal */
  rec(name: string): AmsRec {
    const r = typeof name === 'string' ? this.#ams.get(name) : undefined;
    if (!r)
      throw amixError('AMIX_ERR_UNKNOWN_POINT', `no AMS ${JSON.stringify(name)} is loaded`, { name: String(name) });
    return r;
  }

  /** @internal A request to an instance's AMS loop (`runAms`). */
  amsRequest<T = AmsStats>(instance: string, op: string, extra: Record<string, unknown> = {}): Promise<T> {
    return this.fabric.ends.service<T>(instance, AMS_SERVICE, { op, ...extra }, this.#opts.requestTimeoutMs ?? 10_000);
  }

  /** @internal */
  emitEvent(e: CapsEvent): void {
    this.emit('event', e);
  }

  #surgery(): SurgeryHost {
    return { caps: this, fabric: this.fabric, emit: (e) => this.emitEvent(e), scopeDefault: 'thread' };
  }

  #open(): void {
    if (this.#closed) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'CAPS is closed');
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9._-]{0,100}$/.test(name))
    throw invalidArg('name', 'must be a point name (a letter, then letters, digits, ".", "_", "-")', name);
}

function registration(o: LoadOptions, location: string, comprims: Comprims) {
  return {
    name: o.name,
    location,
    ...(o.data !== undefined ? { data: o.data } : {}),
    ...((o.sendPrimitive ?? comprims.sendPrimitive)
      ? { sendPrimitive: o.sendPrimitive ?? comprims.sendPrimitive }
      : {}),
    ...((o.receivePrimitive ?? comprims.receivePrimitive)
      ? { receivePrimitive: o.receivePrimitive ?? comprims.receivePrimitive }
      : {}),
    characteristics: { ...(o.characteristics ?? {}), ...(o.scope ? { scope: o.scope } : {}) },
  };
}

function info(r: AmsRec): AmsInfo {
  return {
    name: r.name,
    location: r.location,
    state: r.state,
    refs: r.refs,
    scope: r.scope,
    instances: [...r.instances],
    deallocation: r.deallocation,
    standby: r.standby,
    loads: r.loads,
  };
}

function mapInfo(a: MapArea & { json?: string }): MapArea {
  const { json: _json, ...rest } = a;
  return { ...rest, architecture: { ...rest.architecture }, security: { ...rest.security } };
}
