/**
 * The Thread Communication Service (seed 002), intraprocess version: the
 * {@link Fabric} registers points, creates their instances (worker threads
 * or child processes), links them with the seed's connect steps, and
 * controls links live: suspend, resume, hold, conference, disconnect (which
 * restores the prior link), reconnect, destroy, restart. It is the control
 * plane only: message bytes go over the primitives' channels between the
 * instances, never through the fabric (except for links where the caller
 * itself is an end).
 *
 * This file is the facade and the connect procedure; its parts are
 * `types.ts` (options, events, snapshots), `link.ts` (the caller's handle),
 * `brokers.ts` (broker table and flow planning), `hops.ts` (opening and
 * tearing down hops) and `supervisor.ts` (instances).
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentTarget } from './agent.js';
import { BrokerTable } from './brokers.js';
import { Endpoint, type RECONNECT_FROM } from './endpoint.js';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { Hops } from './hops.js';
import { Lifecycle, type Destroyable } from '../core/lifecycle.js';
import { Link, type LinkControl } from './link.js';
import { checkRole, planConnect, type ConnectPlan, type CreateOptions } from './plan.js';
import { normalizePoint, type PointRegistration, type PointRegistrationInput } from './point.js';
import {
  instInfo,
  instOf,
  linkInfo,
  linkOf,
  regOf,
  type End,
  type FabricCore,
  type Inst,
  type LinkRec,
  endOf,
} from './records.js';
import { PrimitiveRegistry } from '../core/registry.js';
import { Supervisor } from './supervisor.js';
import { SwitchControl } from './switches.js';
import { EndControl } from './endControl.js';
import { hostExecArgvOption } from './hostHandle.js';
import { HostPool } from './hostPool.js';
import { keepAlive } from './endpointParts.js';
import {
  CALLER,
  type BrokerEntry,
  type ConnectOptions,
  type DisconnectOptions,
  type FabricEvent,
  type FabricOptions,
  type HostPoolInfo,
  type InstanceInfo,
  type LinkInfo,
} from './types.js';

export { Link } from './link.js';
export type { CreateOptions } from './plan.js';
export {
  CALLER,
  type BrokerEntry,
  type ConnectOptions,
  type DisconnectOptions,
  type ExternalEnd,
  type FabricEvent,
  type FabricOptions,
  type InstanceInfo,
  type InstanceState,
  type LinkInfo,
  type LinkState,
} from './types.js';

/** How long a disconnect waits for a link's sending ends to flush. */
const FLUSH_MS = 2000;

/**
 * The fabric: points, instances and links of one application process.
 * Follows the lifecycle contract of `lib/core/lifecycle.ts`: `close()`
 * terminates instances gracefully, `destroy(reason)` kills them.
 *
 * @example
 * await using fabric = new Fabric()
 * fabric.register({ name: 'upper', location: './upper.js' })
 * const link = await fabric.connect(null, 'upper')        // the caller is A
 * await link.send(Buffer.from('hi')); console.log((await link.receive()).data)
 */
export class Fabric extends EventEmitter implements LinkControl, Destroyable {
  /** The primitive registry the fabric uses. */
  readonly registry: PrimitiveRegistry;
  /** Resolves once the fabric is closed, with the reason (undefined for a graceful close). Never rejects. */
  readonly closed: Promise<Error | undefined>;
  readonly #core: FabricCore;
  /** Placed links of callers, by caller name. */
  readonly #callerPlaced = new Map<string, string[]>();
  readonly #brokers: BrokerTable;
  readonly #hops: Hops;
  readonly #sup: Supervisor;
  readonly #life = new Lifecycle('fabric');
  #seq = 0;
  /** The switch points (location `amix:switch`): their routes and counters, route suspend and resume. */
  readonly switches: SwitchControl;
  /** Requests to one link end: hold its sending side, ask its point's code for a service (`EndControl`). */
  readonly ends: EndControl;

  constructor(options: FabricOptions = {}) {
    super();
    const pool = new HostPool(options.reuseHosts);
    const baseDir = options.baseDir ?? process.cwd();
    const runtimeDir = options.runtimeDir ?? join(tmpdir(), `amix-${process.getuid?.() ?? 'user'}`);
    this.registry = options.registry ?? new PrimitiveRegistry({ baseDir, channelDefaults: { runtimeDir } });
    this.closed = this.#life.closed;
    this.#core = {
      registry: this.registry,
      baseDir,
      runtimeDir,
      timeoutMs: options.requestTimeoutMs ?? 10_000,
      points: new Map(),
      instances: new Map(),
      links: new Map(),
      callerEnds: new Map(),
      placement: options.placement,
      hostExecArgv: hostExecArgvOption(options.hostExecArgv),
      pool,
      isOpen: () => this.#life.isOpen,
      emit: (e) => this.emit('event', e),
    };
    this.#brokers = new BrokerTable(this.registry, (reg) => options.placement?.where(reg));
    // The hops start and end broker instances; the supervisor tears down and reopens hops.
    this.#hops = new Hops(this.#core, this.#brokers, {
      spawn: (reg, id, client) => this.#sup.spawn(reg, id, client),
      terminate: (inst) => this.#sup.terminate(inst),
    });
    this.#sup = new Supervisor(this.#core, this.#hops);
    this.switches = new SwitchControl(this.#core);
    this.ends = new EndControl(this.#core);
  }

  // ---- brokers ---------------------------------------------------------
  /**
   * Register a broker that converts primitive `from` into `to`: a point
   * module that receives on one and sends on the other. `AMIX_ERR_DUPLICATE`
   * if the pair has one already. Built in: the generic forwarder for every
   * pair of built-in primitives.
   */
  registerBroker(entry: BrokerEntry): void {
    this.#brokers.register(entry);
  }

  /** Remove the broker for a pair (then connect refuses that pair with `AMIX_ERR_PRIMITIVE_MISMATCH`). */
  deleteBroker(from: string, to: string): boolean {
    return this.#brokers.delete(from, to);
  }

  /** Every registered broker. */
  brokers(): BrokerEntry[] {
    return this.#brokers.list();
  }

  /** The broker converting `from` into `to`, if any. */
  brokerFor(from: string, to: string): BrokerEntry | undefined {
    return this.#brokers.get(from, to);
  }

  // ---- registration ----------------------------------------------------
  /** Register a point. `AMIX_ERR_INVALID_ARG` names a bad field; `AMIX_ERR_DUPLICATE` for a taken name. */
  register(input: PointRegistrationInput): PointRegistration {
    this.#life.assertOpen();
    const reg = normalizePoint(input);
    if (reg.name === CALLER) throw invalidArg('point.name', `"${CALLER}" is reserved for the calling application`);
    if (this.#core.points.has(reg.name))
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `point "${reg.name}" is already registered`, {
        details: { name: reg.name },
      });
    for (const p of [reg.sendPrimitive, reg.receivePrimitive]) this.registry.get(p); // AMIX_ERR_UNKNOWN_PRIMITIVE
    this.#core.points.set(reg.name, reg);
    this.#emit({ type: 'pointRegistered', point: reg.name });
    return reg;
  }

  /** Every registration. */
  points(): PointRegistration[] {
    return [...this.#core.points.values()];
  }

  /** One registration; `AMIX_ERR_UNKNOWN_POINT` if absent. */
  point(name: string): PointRegistration {
    return regOf(this.#core, name);
  }

  /** Snapshots of running instances, optionally of one point. */
  instances(point?: string): InstanceInfo[] {
    return [...this.#core.instances.values()]
      .filter((i) => point === undefined || i.point.name === point)
      .map(instInfo);
  }

  /** The pool of kept hosts ({@link FabricOptions.reuseHosts}): its limits, idle hosts and counts. */
  hostPool(): HostPoolInfo {
    return this.#core.pool.info();
  }

  /** Snapshot of one instance by instance id (a public point's instance id is its name). */
  instance(id: string): InstanceInfo {
    return instInfo(instOf(this.#core, id));
  }

  /** Snapshots of every link. */
  links(): LinkInfo[] {
    return [...this.#core.links.values()].map(linkInfo);
  }

  /** Snapshot of one link; `AMIX_ERR_UNKNOWN_LINK` if absent. */
  link(id: string): LinkInfo {
    return linkInfo(linkOf(this.#core, id));
  }

  /** True when `id` is a live link. */
  hasLink(id: string): boolean {
    return this.#core.links.has(id);
  }

  // ---- create / execute ---------------------------------------------------
  /**
   * Create an instance of a point with nobody connected (seed CREATE). A
   * public point that runs already is returned as is. An idle point is
   * loaded but not started. `AMIX_ERR_MAX_CONNECTIONS` past the limit.
   * `options.role` (002 ¶293) is checked against the registration first:
   * `AMIX_ERR_BAD_DIRECTION` when the point cannot act in that role.
   */
  async create(name: string, options: CreateOptions = {}): Promise<InstanceInfo> {
    this.#life.assertOpen();
    const reg = regOf(this.#core, name);
    if (options.role !== undefined) checkRole(reg, options.role);
    const inst = await this.#sup.instanceFor(reg, undefined);
    return instInfo(inst);
  }

  /**
   * Execute a point (seed EXECUTE, 002 ¶320): create it if it is not
   * executing, then resume it: an idle instance is started, and the links it
   * sends on that were suspended are resumed (SUSPEND suspends the senders).
   * A daemon point.
   */
  async execute(name: string): Promise<InstanceInfo> {
    this.#life.assertOpen();
    const reg = regOf(this.#core, name);
    const inst = await this.#sup.instanceFor(reg, undefined);
    await this.#sup.activate(inst);
    for (const l of inst.links) {
      const rec = this.#core.links.get(l);
      if (rec?.state === 'suspended' && rec.flows.some((f) => f.from === inst.id)) await this.resume(l);
    }
    return instInfo(inst);
  }

  // ---- connect ------------------------------------------------------------
  /**
   * Connect A and B with the seed's steps for `direction`. Either may be
   * `null`: then the calling application is that end (as sender for A, as
   * receiver for B, per the seed) and the returned {@link Link} carries its
   * send and receive. A point that is not running is created; an idle one is
   * reactivated. Both ends of a flow must use the same primitive, else the
   * broker hook is asked, else `AMIX_ERR_PRIMITIVE_MISMATCH`.
   */
  async connect(a: string | null, b: string | null, options: ConnectOptions = {}): Promise<Link> {
    this.#life.assertOpen();
    // Resolve both points and check every flow before anything is started (¶289, ¶286).
    const plan = planConnect(this.#core, a, b, options);
    // `as` is the external end standing in for a null end; between two named points it takes no part.
    const external = a === null || b === null ? options.as : undefined;
    this.#brokers.checkFlows(plan.flows, plan.planA, plan.planB, plan.direction, external, options.hop?.primitive);
    const conferenceOf = plan.mode === 'conference' ? this.#conferenceTarget(a, plan) : undefined;
    // Create whichever point is not running (¶294); a private B gets an instance for this client.
    const instA = plan.regA ? await this.#sup.instanceFor(plan.regA, undefined) : undefined;
    const instB = plan.regB ? await this.#sup.instanceFor(plan.regB, instA?.id ?? plan.callerName, true) : undefined;
    const id = conferenceOf?.id ?? `L${++this.#seq}`;
    // A null end is the calling application (¶304-306): it gets a caller end.
    const { caller, endpoint } = this.#callerEnd(id, instA, instB, plan, options);
    const endA = instA ?? caller!;
    const endB = instB ?? caller!;
    const rec = conferenceOf ?? this.#newLink(id, endA, endB, plan);
    if (conferenceOf) rec.b.push(endB.id);
    if (options.heldAt !== undefined) rec.heldAt = options.heldAt;
    if (options.hop !== undefined) rec.hop = options.hop;
    this.#core.links.set(id, rec);
    try {
      await this.#runSteps(rec, plan, endA, endB, instA, instB);
    } catch (err) {
      if (!conferenceOf) await this.#hops.teardownLink(rec, err as Error).catch(() => {});
      throw err;
    }
    endA.links.add(id);
    endB.links.add(id);
    if (!conferenceOf) await this.#place(rec, endA, plan.mode);
    // The caller as A sends on steps 1-2 and receives on 3-4; as B the other way round.
    const flowAB = plan.steps.includes(1);
    const flowBA = plan.steps.includes(3);
    rec.handle ??= new Link(
      this,
      id,
      endpoint,
      endpoint ? { send: a === null ? flowAB : flowBA, receive: a === null ? flowBA : flowAB } : undefined,
    );
    this.#emit({
      type: 'linkConnected',
      link: id,
      a: endA.id,
      b: endB.id,
      direction: plan.direction,
      steps: plan.steps,
    });
    return rec.handle;
  }

  /** The placed links of a caller (by name), made on first use. */
  #placedOf(callerName: string): string[] {
    let p = this.#callerPlaced.get(callerName);
    if (!p) this.#callerPlaced.set(callerName, (p = []));
    return p;
  }

  /** A conference joins A's current link; `AMIX_ERR_UNKNOWN_LINK` if A has none. */
  #conferenceTarget(a: string | null, plan: ConnectPlan): LinkRec {
    const placed = plan.regA ? this.#core.instances.get(plan.regA.name)?.placed : this.#placedOf(plan.callerName);
    const cur = placed?.at(-1);
    const rec = cur ? this.#core.links.get(cur) : undefined;
    if (!rec)
      throw new AmixError(
        ErrorCode.AMIX_ERR_UNKNOWN_LINK,
        `conference needs a current link of ${a ?? plan.callerName} to join`,
      );
    return rec;
  }

  /**
   * The caller's end of link `id` when one end is null: the external end
   * the options bring, or this application through a new endpoint and agent.
   */
  #callerEnd(
    id: string,
    instA: End | undefined,
    instB: End | undefined,
    plan: ConnectPlan,
    options: ConnectOptions,
  ): { caller: End | undefined; endpoint: Endpoint | undefined } {
    let caller = this.#core.callerEnds.get(id);
    let endpoint: Endpoint | undefined;
    if ((!instA || !instB) && !caller) {
      let target: AgentTarget;
      if (options.as) target = options.as.target;
      else {
        const callerName = plan.callerName;
        endpoint = new Endpoint(callerName, { maxUnlinked: (plan.regA ?? plan.regB)!.characteristics.maxmsg });
        target = new Agent(endpoint, this.registry, (e) => {
          if (e.type === 'linkEnded')
            this.#emit({ type: 'peerLost', link: e.link, instance: callerName, peer: e.peer });
        });
      }
      caller = {
        id: plan.callerName,
        target,
        links: new Set(),
        senderList: [],
        receiverList: [],
        placed: this.#placedOf(plan.callerName),
      };
      this.#core.callerEnds.set(id, caller);
    }
    return { caller, endpoint };
  }

  #newLink(id: string, endA: End, endB: End, plan: ConnectPlan): LinkRec {
    return {
      id,
      a: endA.id,
      b: [endB.id],
      direction: plan.direction,
      steps: plan.steps,
      state: 'active',
      mode: plan.mode,
      flows: [],
      suspendedMs: 0,
      brokers: [],
    };
  }

  /** The seed's connect steps for the link's direction (¶297-303). */
  async #runSteps(
    rec: LinkRec,
    plan: ConnectPlan,
    endA: End,
    endB: End,
    instA: Inst | undefined,
    instB: Inst | undefined,
  ): Promise<void> {
    // Steps 1 and 2: B's receiver on A's sender list, A's sender on B's receiver list (flow A → B).
    if (plan.steps.includes(1)) await this.#hops.openFlow(rec, endA, plan.planA, endB, plan.planB, [1, 2]);
    // Steps 3 and 4: A's receiver on B's sender list, B's sender on A's receiver list (flow B → A).
    if (plan.steps.includes(3)) await this.#hops.openFlow(rec, endB, plan.planB, endA, plan.planA, [3, 4]);
    // Steps 5 and 6: reactivate A, then B, if idle.
    if (instA) await this.#sup.activate(instA);
    if (instB) await this.#sup.activate(instB);
  }

  /** Make the new link A's current one; in `hold` mode, put the link that was current on hold. */
  async #place(rec: LinkRec, endA: End, mode: ConnectPlan['mode']): Promise<void> {
    const placed = endA.placed;
    if (mode === 'hold') {
      const cur = placed.at(-1);
      const prior = cur ? this.#core.links.get(cur) : undefined;
      if (prior) {
        // Off A's sender list for sends (seed ¶55: the held call hears nothing of the new one), then suspended.
        await endOf(this.#core, prior, endA.id)?.target.request(
          'hold',
          { link: prior.id, held: true },
          this.#core.timeoutMs,
        );
        await this.#hops.setSuspended(prior, true, 'held');
        rec.held = prior.id;
        this.#emit({ type: 'linkHeld', link: prior.id, by: rec.id });
      }
    }
    placed.push(rec.id);
  }

  // ---- link control ------------------------------------------------------
  /** Suspend a link: its senders stop (the primitive's own suspend where it has one). */
  async suspend(link: string): Promise<void> {
    const rec = linkOf(this.#core, link);
    if (rec.state !== 'active') return;
    await this.#hops.setSuspended(rec, true, 'suspended');
    this.#emit({ type: 'linkSuspended', link });
  }

  /** Resume a suspended link. */
  async resume(link: string): Promise<void> {
    const rec = linkOf(this.#core, link);
    if (rec.state !== 'suspended') return;
    await this.#hops.setSuspended(rec, false, 'active');
    this.#emit({ type: 'linkResumed', link });
  }

  /**
   * Disconnect (seed DISCONNECT): suspend the link, remove it, restore the
   * link it had put on hold (resume it), and optionally terminate either end.
   * An instance whose last link went is ended if it is private or
   * `endWhenUnused`.
   */
  async disconnect(link: string, options: DisconnectOptions = {}): Promise<void> {
    const rec = linkOf(this.#core, link);
    const flushed = rec.state === 'active';
    if (flushed) {
      // Flush first: a null message through each sending end lands after every
      // message it accepted, so the receivers hold them all before the suspend
      // and the teardown (which then lets each receiver drain them).
      await this.#hops.cycle(rec, FLUSH_MS, undefined, true);
      await this.#hops.setSuspended(rec, true, 'suspended').catch(() => {});
    }
    await this.#hops.teardownLink(rec, undefined, flushed);
    this.#emit({ type: 'linkDisconnected', link });
    const prior = rec.held ? this.#core.links.get(rec.held) : undefined;
    if (prior) {
      await this.#hops.setSuspended(prior, false, 'active');
      await endOf(this.#core, prior, rec.a)
        ?.target.request('hold', { link: prior.id, held: false }, this.#core.timeoutMs)
        .catch(() => {});
      this.#emit({ type: 'linkRestored', link: prior.id });
    }
    const toEnd = new Set<string>();
    if (options.terminate === 'a' || options.terminate === 'both') toEnd.add(rec.a);
    if (options.terminate === 'b' || options.terminate === 'both') for (const b of rec.b) toEnd.add(b);
    for (const id of [rec.a, ...rec.b]) {
      const inst = this.#core.instances.get(id);
      if (!inst) continue;
      const c = inst.point.characteristics;
      if (inst.links.size === 0 && (c.instancing === 'private' || c.endWhenUnused)) toEnd.add(id);
    }
    for (const id of toEnd) {
      const inst = this.#core.instances.get(id);
      if (inst) await this.#sup.terminate(inst);
    }
  }

  /**
   * Reconnect (seed RECONNECT, 002 ¶318): send each running instance of
   * `name` a null message (the point receives a size-0 message from
   * {@link RECONNECT_FROM}, with or without incoming links), cycle the
   * primitive of every link that delivers to it, and report its state.
   */
  async reconnect(name: string): Promise<InstanceInfo[]> {
    this.#life.assertOpen();
    regOf(this.#core, name);
    const out: InstanceInfo[] = [];
    for (const inst of [...this.#core.instances.values()].filter((i) => i.point.name === name)) {
      // The null message goes to the point itself (seed ¶318), links or none; then each primitive to it is cycled.
      await inst.target.request('nullMessage', {}, this.#core.timeoutMs);
      for (const linkId of inst.links) {
        const rec = this.#core.links.get(linkId);
        if (rec) await this.#hops.cycle(rec, this.#core.timeoutMs, inst.id);
      }
      out.push(instInfo(inst));
    }
    return out;
  }

  /**
   * Destroy a point (seed DESTROY): remove the registration and terminate
   * every running instance with its termination method (escalating on a
   * timer). `AMIX_ERR_UNKNOWN_POINT` if there is no such point.
   */
  async destroyPoint(name: string): Promise<void> {
    const reg = regOf(this.#core, name);
    this.#core.points.delete(name);
    for (const inst of [...this.#core.instances.values()].filter((i) => i.point === reg))
      await this.#sup.terminate(inst);
    this.#emit({ type: 'pointDestroyed', point: name });
  }

  /**
   * Destroy a point (seed DESTROY).
   *
   * @deprecated Use {@link destroyPoint}: `destroy` is the abrupt close of the
   * fabric itself (see `lib/core/lifecycle.ts`). A string argument still
   * destroys the point of that name.
   */
  destroy(point: string): Promise<void>;
  /**
   * Abrupt close: kill every instance at once (no termination message, no
   * grace), tear every link down with `reason` (the caller's pending
   * receives reject with `AMIX_ERR_LINK_CLOSED`, cause `reason`), then
   * destroy the registry. Idempotent.
   */
  destroy(reason?: Error): Promise<void>;
  destroy(arg?: string | Error): Promise<void> {
    // Anything but an Error (or nothing) keeps the old meaning: a point name.
    if (arg !== undefined && !(arg instanceof Error)) return this.destroyPoint(arg);
    const reason = arg ?? new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'fabric was destroyed');
    return this.#life.destroy(reason, async () => {
      await Promise.allSettled([...this.#core.instances.values()].map((inst) => this.#sup.kill(inst)));
      for (const rec of [...this.#core.links.values()]) await this.#hops.teardownLink(rec, reason).catch(() => {});
      await this.registry.destroy(reason);
      this.#emit({ type: 'closed' });
    });
  }

  /** Terminate one instance (by instance id) with its point's termination method. */
  async terminate(instance: string): Promise<void> {
    await this.#sup.terminate(instOf(this.#core, instance));
  }

  /** Per-point and per-link counters, from the instance's host. */
  async stats(instance: string): Promise<unknown> {
    const inst = instOf(this.#core, instance);
    const s = await inst.host.request<Record<string, unknown>>('stats', {}, this.#core.timeoutMs);
    const links: Record<string, LinkInfo> = {};
    for (const l of inst.links) if (this.#core.links.has(l)) links[l] = this.link(l);
    return { ...s, instance: instInfo(inst), linkInfo: links };
  }

  /** For tests and tools: kill an instance's host abruptly (SIGKILL / terminate), as a crash would. */
  async kill(instance: string): Promise<void> {
    await instOf(this.#core, instance).host.forceKill();
  }

  /**
   * Close the fabric, inside out: terminate instances (the last created
   * first), close the caller's links, then unload the primitives.
   * Idempotent: a second call returns the same promise.
   */
  close(): Promise<void> {
    // Held open while closing: the waits on hosts' exits and their escalation timers are unref'd
    // (a fabric alone must not keep an application alive), so an application whose last act is
    // `await fabric.close()` would otherwise exit half way, its hosts not yet ended.
    return keepAlive(
      this.#life.close(async () => {
        for (const inst of [...this.#core.instances.values()].reverse())
          await this.#sup.terminate(inst).catch(() => {});
        await this.#core.pool.close();
        for (const rec of [...this.#core.links.values()]) await this.#hops.teardownLink(rec).catch(() => {});
        await this.registry.close();
        this.#emit({ type: 'closed' });
      }),
    );
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #emit(e: FabricEvent): void {
    this.emit('event', e);
  }
}
