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
 * @module
 */
import { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentTarget } from './agent.js';
import {
  Endpoint,
  type PointMessage,
  type PointReceiveOptions,
  type PointSendOptions,
  type ListEntry,
} from './endpoint.js';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import { HostHandle, type HostExit } from './hostHandle.js';
import {
  DIRECTION_STEPS,
  normalizePoint,
  parseDirection,
  type Direction,
  type PointRegistration,
  type PointRegistrationInput,
} from './point.js';
import type { ChannelOptions } from '../core/primitive.js';
import { BUILTIN_PRIMITIVES, PrimitiveRegistry } from '../core/registry.js';

const BROKER_LOCATION = new URL('./brokerPoint.js', import.meta.url).href;
/** How long a disconnect waits for a link's sending ends to flush. */
const FLUSH_MS = 2000;

const kEnded = Symbol('ended');

/** The name the calling application has as a link end. */
export const CALLER = 'caller';

/** State of a point instance. */
export type InstanceState = 'starting' | 'idle' | 'running' | 'terminating' | 'ended' | 'dead';

/** State of a link. */
export type LinkState = 'active' | 'suspended' | 'held' | 'closed';

/** Emitted by the fabric (`'event'`) on every state change. */
export type FabricEvent =
  | { type: 'pointRegistered'; point: string }
  | { type: 'pointDestroyed'; point: string }
  | { type: 'instanceCreated'; point: string; instance: string; scope: string; pid: number | undefined }
  | { type: 'instanceStarted'; point: string; instance: string }
  | { type: 'coordinatorWithdrawn'; point: string; instance: string }
  | { type: 'instanceTerminated'; point: string; instance: string; method: 'message' | 'signal'; escalated: boolean }
  | { type: 'instanceDied'; point: string; instance: string; code: number | null; signal: string | null; error?: Error }
  | { type: 'instanceRestarted'; point: string; instance: string; links: string[] }
  | { type: 'linkConnected'; link: string; a: string; b: string; direction: Direction; steps: readonly number[] }
  | { type: 'linkSuspended'; link: string }
  | { type: 'linkResumed'; link: string }
  | { type: 'linkHeld'; link: string; by: string }
  | { type: 'linkRestored'; link: string }
  | { type: 'linkDisconnected'; link: string }
  | { type: 'peerLost'; link: string; instance: string; peer: string }
  | { type: 'channel'; instance: string; link: string; peer: string; event: string }
  | { type: 'closed' };

/** Options for {@link Fabric}. */
export interface FabricOptions {
  /** A registry to use (the fabric closes it on close). Default: a new one with the built-ins. */
  registry?: PrimitiveRegistry;
  /** Resolve relative point and primitive locations against this. Default `process.cwd()`. */
  baseDir?: string;
  /** Where primitives put their files (sockets). Default `<tmpdir>/amix-<uid>`. */
  runtimeDir?: string;
  /** How long a host may take to answer a control request. Default 10000 ms. */
  requestTimeoutMs?: number;
}

/** Options for {@link Fabric.connect}. */
export interface ConnectOptions {
  /** Which way data flows: `both` (1), `bToA` (2), `aToB` (3), `none` (4), by name or number. Default `both`. */
  direction?: Direction | 1 | 2 | 3 | 4;
  /**
   * `add` (default): a new independent link.
   * `hold`: put A's current link on hold and make this one current; disconnecting it restores the held one.
   * `conference`: add B to A's current link, so one send from A reaches every receiver on it.
   */
  mode?: 'add' | 'hold' | 'conference';
  /** The end that stands for the missing (null) point. Default: this application, through the returned {@link Link}. */
  as?: ExternalEnd;
  /**
   * The registration the missing (null) end is planned as: its roles,
   * primitives (so a broker is inserted when they differ from the point's)
   * and receiving characteristics. amixd passes the far point of a remote
   * link here, so the conduit carries exactly what that point receives.
   * Never started. Default: the null end takes the point's own primitive.
   */
  standIn?: PointRegistration;
}

/** Options for {@link Fabric.disconnect}. */
export interface DisconnectOptions {
  /** Also terminate end `a`, `b`, or `both` of the link. */
  terminate?: 'a' | 'b' | 'both';
}

/** A snapshot of a point instance. */
export interface InstanceInfo {
  point: string;
  instance: string;
  scope: string;
  state: InstanceState;
  pid: number | undefined;
  links: string[];
  restarts: number;
  senderList: ListEntry[];
  receiverList: ListEntry[];
}

/** A snapshot of a link. */
export interface LinkInfo {
  id: string;
  a: string;
  b: string[];
  direction: Direction;
  steps: readonly number[];
  state: LinkState;
  mode: 'add' | 'hold' | 'conference';
  /** Milliseconds spent suspended or held so far. */
  suspendedMs: number;
  /** Broker instances the fabric inserted because the ends' primitives differ. */
  brokers: string[];
  /** Each hop: who sends to whom on which primitive. */
  flows: Array<{ from: string; to: string; primitive: string }>;
}

/** A broker registration: converts primitive `from` into `to` with the point module at `location`. */
export interface BrokerEntry {
  from: string;
  to: string;
  location: string;
}

/** The fabric's own record of a link: the snapshot fields plus what only it needs. */
interface LinkRec extends LinkInfo {
  suspendedSince?: number;
  /** The link this one put on hold (restored on disconnect). */
  held?: string;
  /** The caller's handle, if the caller is an end. */
  handle?: Link;
}

/** A link end: a point instance, or the caller (this application, or a container through amixd). */
interface End {
  id: string;
  /** Where link commands for this end go: its agent. */
  target: AgentTarget;
  links: Set<string>;
  /** Sender and receiver lists as the seed's steps built them (kept here so the fabric can answer without asking the host). */
  senderList: ListEntry[];
  receiverList: ListEntry[];
  /** Placed links (where this end was A), the current one last. */
  placed: string[];
}

interface Inst extends End {
  point: PointRegistration;
  state: InstanceState;
  host: HostHandle;
  restarts: number;
  /** The client a private instance serves. */
  client?: string;
  /** Set while the fabric itself is ending the instance, so its exit is not a death. */
  ending: boolean;
}

/**
 * A link end outside the fabric's process that a caller brings (amixd uses
 * this for a container): its name and the agent that opens its channel ends.
 */
export interface ExternalEnd {
  /** How peers name this end (appears on their lists). */
  readonly name: string;
  /** The end's agent. */
  readonly target: AgentTarget;
  /** True when the end lives in the fabric's own process (amixd's conduits), so thread primitives reach it. */
  readonly inProcess?: boolean;
}

/**
 * A link as the calling application holds it when it is one of the ends:
 * send and receive as a point would. Also returned for links between two
 * other points (then send/receive are refused).
 */
export class Link implements AsyncIterable<PointMessage> {
  /** The link id. */
  readonly id: string;
  readonly #fabric: Fabric;
  readonly #end: Endpoint | undefined;

  /** @internal */
  constructor(fabric: Fabric, id: string, end: Endpoint | undefined) {
    this.id = id;
    this.#fabric = fabric;
    this.#end = end;
  }

  /** A snapshot of the link. */
  get info(): LinkInfo {
    return this.#fabric.link(this.id);
  }

  /** Method: `send(data[, options])`. Send to the link's receivers (the caller must be an end with a sending direction). */
  send(data: Uint8Array, options: PointSendOptions = {}): Promise<void> {
    return this.#endpoint().send(data, options);
  }

  /** Method: `receive([options])`. The next message to the caller on this link, naming the point it came from. */
  receive(options: PointReceiveOptions = {}): Promise<PointMessage> {
    return this.#endpoint().receive(options);
  }

  /** Messages to the caller on this link; ends when the link closes. */
  messages(options: PointReceiveOptions = {}): AsyncGenerator<PointMessage, void, undefined> {
    return this.#endpoint().messages(options);
  }

  [Symbol.asyncIterator](): AsyncIterator<PointMessage> {
    return this.messages();
  }

  /** Suspend the link's senders. */
  suspend(): Promise<void> {
    return this.#fabric.suspend(this.id);
  }
  /** Resume the link's senders. */
  resume(): Promise<void> {
    return this.#fabric.resume(this.id);
  }
  /** Disconnect (restoring a link this one held). Idempotent. */
  async close(options: DisconnectOptions = {}): Promise<void> {
    if (this.#fabric.hasLink(this.id)) await this.#fabric.disconnect(this.id, options);
  }
  /** Calls {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal The fabric removed the link: end the caller's endpoint so its receives finish. */
  [kEnded](reason?: Error): void {
    void this.#end?.close(reason);
  }

  #endpoint(): Endpoint {
    if (!this.#end)
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `link ${this.id} does not have the caller as an end`);
    return this.#end;
  }
}

/**
 * The fabric: points, instances and links of one application process.
 *
 * @example
 * await using fabric = new Fabric()
 * fabric.register({ name: 'upper', location: './upper.js' })
 * const link = await fabric.connect(null, 'upper')        // the caller is A
 * await link.send(Buffer.from('hi')); console.log((await link.receive()).data)
 */
export class Fabric extends EventEmitter {
  /** The primitive registry the fabric uses. */
  readonly registry: PrimitiveRegistry;
  readonly #baseDir: string;
  readonly #runtimeDir: string;
  readonly #timeout: number;
  readonly #points = new Map<string, PointRegistration>();
  /** Instances by instance id. */
  readonly #instances = new Map<string, Inst>();
  readonly #links = new Map<string, LinkRec>();
  /** Caller ends, one per link where the caller (or an external end) is an end. */
  readonly #callerEnds = new Map<string, End>();
  /** Placed links of callers, by caller name. */
  readonly #callerPlaced = new Map<string, string[]>();
  #seq = 0;
  #closed = false;
  readonly #brokers = new Map<string, BrokerEntry>();

  constructor(options: FabricOptions = {}) {
    super();
    this.#baseDir = options.baseDir ?? process.cwd();
    this.#runtimeDir = options.runtimeDir ?? join(tmpdir(), `amix-${process.getuid?.() ?? 'user'}`);
    this.registry =
      options.registry ??
      new PrimitiveRegistry({ baseDir: this.#baseDir, channelDefaults: { runtimeDir: this.#runtimeDir } });
    this.#timeout = options.requestTimeoutMs ?? 10_000;
    const builtins = BUILTIN_PRIMITIVES.map((p) => p.name);
    for (const from of builtins)
      for (const to of builtins)
        if (from !== to) this.#brokers.set(`${from}>${to}`, { from, to, location: BROKER_LOCATION });
  }

  // ---- brokers ---------------------------------------------------------

  /**
   * Register a broker that converts primitive `from` into `to`: a point
   * module that receives on one and sends on the other. `AMIX_ERR_DUPLICATE`
   * if the pair has one already. Built in: the generic forwarder for every
   * pair of built-in primitives.
   */
  registerBroker(entry: BrokerEntry): void {
    this.registry.get(entry.from);
    this.registry.get(entry.to);
    if (typeof entry.location !== 'string' || entry.location === '')
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `broker.location must be a non-empty string (got ${describe(entry.location)})`,
      );
    const key = `${entry.from}>${entry.to}`;
    if (this.#brokers.has(key))
      throw new AmixError(
        ErrorCode.AMIX_ERR_DUPLICATE,
        `a broker from ${entry.from} to ${entry.to} is already registered`,
      );
    this.#brokers.set(key, { ...entry });
  }

  /** Remove the broker for a pair (then connect refuses that pair with `AMIX_ERR_PRIMITIVE_MISMATCH`). */
  deleteBroker(from: string, to: string): boolean {
    return this.#brokers.delete(`${from}>${to}`);
  }

  /** Every registered broker. */
  brokers(): BrokerEntry[] {
    return [...this.#brokers.values()].map((b) => ({ ...b }));
  }

  /** The broker converting `from` into `to`, if any. */
  brokerFor(from: string, to: string): BrokerEntry | undefined {
    return this.#brokers.get(`${from}>${to}`);
  }

  // ---- registration ----------------------------------------------------

  /** Register a point. `AMIX_ERR_INVALID_ARG` names a bad field; `AMIX_ERR_DUPLICATE` for a taken name. */
  register(input: PointRegistrationInput): PointRegistration {
    this.#checkOpen();
    const reg = normalizePoint(input);
    if (reg.name === CALLER)
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `point.name "${CALLER}" is reserved for the calling application`,
      );
    if (this.#points.has(reg.name))
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `point "${reg.name}" is already registered`, {
        details: { name: reg.name },
      });
    for (const p of [reg.sendPrimitive, reg.receivePrimitive]) this.registry.get(p); // AMIX_ERR_UNKNOWN_PRIMITIVE
    this.#points.set(reg.name, reg);
    this.#emit({ type: 'pointRegistered', point: reg.name });
    return reg;
  }

  /** Every registration. */
  points(): PointRegistration[] {
    return [...this.#points.values()];
  }

  /** One registration; `AMIX_ERR_UNKNOWN_POINT` if absent. */
  point(name: string): PointRegistration {
    return this.#reg(name);
  }

  /** Snapshots of running instances, optionally of one point. */
  instances(point?: string): InstanceInfo[] {
    return [...this.#instances.values()]
      .filter((i) => point === undefined || i.point.name === point)
      .map((i) => this.#instInfo(i));
  }

  /** Snapshot of one instance by instance id (a public point's instance id is its name). */
  instance(id: string): InstanceInfo {
    return this.#instInfo(this.#inst(id));
  }

  /** Snapshots of every link. */
  links(): LinkInfo[] {
    return [...this.#links.values()].map((l) => this.#linkInfo(l));
  }

  /** Snapshot of one link; `AMIX_ERR_UNKNOWN_LINK` if absent. */
  link(id: string): LinkInfo {
    return this.#linkInfo(this.#link(id));
  }

  /** True when `id` is a live link. */
  hasLink(id: string): boolean {
    return this.#links.has(id);
  }

  // ---- create / execute ---------------------------------------------------

  /**
   * Create an instance of a point with nobody connected (seed CREATE). A
   * public point that runs already is returned as is. An idle point is
   * loaded but not started. `AMIX_ERR_MAX_CONNECTIONS` past the limit.
   */
  async create(name: string): Promise<InstanceInfo> {
    this.#checkOpen();
    const reg = this.#reg(name);
    const inst = await this.#instanceFor(reg, undefined);
    return this.#instInfo(inst);
  }

  /** Execute a point (seed EXECUTE): create it if needed and start it even if idle: a daemon point. */
  async execute(name: string): Promise<InstanceInfo> {
    this.#checkOpen();
    const reg = this.#reg(name);
    const inst = await this.#instanceFor(reg, undefined);
    await this.#activate(inst);
    return this.#instInfo(inst);
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
    this.#checkOpen();
    const direction = parseDirection(options.direction);
    const mode = options.mode ?? 'add';
    if (mode !== 'add' && mode !== 'hold' && mode !== 'conference') {
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `options.mode must be add, hold or conference (got ${describe(mode)})`,
      );
    }
    if (a === null && b === null)
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'connect needs at least one point name');
    const regA = a === null ? undefined : this.#reg(a);
    const regB = b === null ? undefined : this.#reg(b);
    // What each end is planned as: the point, or for a null end the stand-in (if any).
    const planA = regA ?? (a === null ? options.standIn : undefined);
    const planB = regB ?? (b === null ? options.standIn : undefined);
    const steps = DIRECTION_STEPS[direction];
    // Role checks (seed: one end must be a sender, the other a receiver, for each flow).
    const flowsWanted: Array<['a' | 'b', 'a' | 'b']> = [];
    if (steps.includes(1)) flowsWanted.push(['a', 'b']);
    if (steps.includes(3)) flowsWanted.push(['b', 'a']);
    for (const [from, to] of flowsWanted) {
      const f = from === 'a' ? planA : planB;
      const t = to === 'a' ? planA : planB;
      if (f && f.role === 'receiver')
        throw new AmixError(
          ErrorCode.AMIX_ERR_BAD_DIRECTION,
          `point "${f.name}" is a receiver and cannot send on this link (direction ${direction})`,
        );
      if (t && t.role === 'sender')
        throw new AmixError(
          ErrorCode.AMIX_ERR_BAD_DIRECTION,
          `point "${t.name}" is a sender and cannot receive on this link (direction ${direction})`,
        );
    }
    // Primitive checks before anything is started.
    for (const [from, to] of flowsWanted) {
      const p = this.#planFlow(from === 'a' ? planA : planB, to === 'a' ? planA : planB).primitive;
      // An external end (a container plugged into amixd) is another process.
      const scopes = this.registry.get(p).characteristics.scopes;
      if (options.as && !options.as.inProcess && !scopes.includes('process') && !scopes.includes('remote')) {
        throw new AmixError(
          ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
          `primitive ${p} serves ${scopes.join(', ')} only and cannot link point "${(regA ?? regB)!.name}" with ${options.as.name}, another process; register the point with a process primitive`,
          { details: { primitive: p, end: options.as.name } },
        );
      }
    }

    const callerName = options.as?.name ?? CALLER;
    const callerPlaced = () => {
      let p = this.#callerPlaced.get(callerName);
      if (!p) this.#callerPlaced.set(callerName, (p = []));
      return p;
    };
    let conferenceOf: LinkRec | undefined;
    if (mode === 'conference') {
      const cur = (regA ? this.#instances.get(regA.name)?.placed : callerPlaced())?.at(-1);
      conferenceOf = cur ? this.#links.get(cur) : undefined;
      if (!conferenceOf)
        throw new AmixError(
          ErrorCode.AMIX_ERR_UNKNOWN_LINK,
          `conference needs a current link of ${a ?? callerName} to join`,
        );
    }

    const instA: End | undefined = regA ? await this.#instanceFor(regA, undefined) : undefined;
    const instB: End | undefined = regB ? await this.#instanceFor(regB, instA?.id ?? callerName, true) : undefined;
    const id = conferenceOf?.id ?? `L${++this.#seq}`;
    let caller = this.#callerEnds.get(id);
    let endpoint: Endpoint | undefined;
    if ((!instA || !instB) && !caller) {
      let target: AgentTarget;
      if (options.as) target = options.as.target;
      else {
        endpoint = new Endpoint(callerName, { maxUnlinked: (regA ?? regB)!.characteristics.maxmsg });
        target = new Agent(endpoint, this.registry, (e) => {
          if (e.type === 'linkEnded')
            this.#emit({ type: 'peerLost', link: e.link, instance: callerName, peer: e.peer });
        });
      }
      caller = { id: callerName, target, links: new Set(), senderList: [], receiverList: [], placed: callerPlaced() };
      this.#callerEnds.set(id, caller);
    }
    const endA = instA ?? caller!;
    const endB = instB ?? caller!;
    let rec: LinkRec;
    if (conferenceOf) {
      rec = conferenceOf;
      rec.b.push(endB.id);
    } else {
      rec = {
        id,
        a: endA.id,
        b: [endB.id],
        direction,
        steps,
        state: 'active',
        mode,
        flows: [],
        suspendedMs: 0,
        brokers: [],
      };
    }
    this.#links.set(id, rec);
    try {
      // Steps 1 and 2: B's receiver on A's sender list, A's sender on B's receiver list (flow A → B).
      if (steps.includes(1)) await this.#openFlow(rec, endA, planA, endB, planB);
      // Steps 3 and 4: A's receiver on B's sender list, B's sender on A's receiver list (flow B → A).
      if (steps.includes(3)) await this.#openFlow(rec, endB, planB, endA, planA);
      // Steps 5 and 6: reactivate A, then B, if idle.
      if (instA) await this.#activate(instA as Inst);
      if (instB) await this.#activate(instB as Inst);
    } catch (err) {
      if (!conferenceOf) await this.#teardownLink(rec, err as Error).catch(() => {});
      throw err;
    }
    endA.links.add(id);
    endB.links.add(id);
    if (!conferenceOf) {
      const placed = endA.placed;
      if (mode === 'hold') {
        const cur = placed.at(-1);
        if (cur && this.#links.has(cur)) {
          await this.#setSuspended(this.#links.get(cur)!, true, 'held');
          rec.held = cur;
          this.#emit({ type: 'linkHeld', link: cur, by: id });
        }
      }
      placed.push(id);
    }
    rec.handle ??= new Link(this, id, endpoint);
    this.#emit({ type: 'linkConnected', link: id, a: endA.id, b: endB.id, direction, steps });
    return rec.handle;
  }

  // ---- link control ------------------------------------------------------

  /** Suspend a link: its senders stop (the primitive's own suspend where it has one). */
  async suspend(link: string): Promise<void> {
    const rec = this.#link(link);
    if (rec.state !== 'active') return;
    await this.#setSuspended(rec, true, 'suspended');
    this.#emit({ type: 'linkSuspended', link });
  }

  /** Resume a suspended link. */
  async resume(link: string): Promise<void> {
    const rec = this.#link(link);
    if (rec.state !== 'suspended') return;
    await this.#setSuspended(rec, false, 'active');
    this.#emit({ type: 'linkResumed', link });
  }

  /**
   * Disconnect (seed DISCONNECT): suspend the link, remove it, restore the
   * link it had put on hold (resume it), and optionally terminate either end.
   * An instance whose last link went is ended if it is private or
   * `endWhenUnused`.
   */
  async disconnect(link: string, options: DisconnectOptions = {}): Promise<void> {
    const rec = this.#link(link);
    if (rec.state === 'active') {
      // Flush first: a null message through each sending end lands after every
      // message it accepted, so the receivers hold them all before the suspend
      // and the teardown (which then lets each receiver drain them).
      for (const f of rec.flows)
        await this.#end(rec, f.from)
          ?.target.request('cycle', { link }, FLUSH_MS)
          .catch(() => {});
      await this.#setSuspended(rec, true, 'suspended').catch(() => {});
    }
    await this.#teardownLink(rec);
    this.#emit({ type: 'linkDisconnected', link });
    if (rec.held && this.#links.has(rec.held)) {
      const prior = this.#links.get(rec.held)!;
      await this.#setSuspended(prior, false, 'active');
      this.#emit({ type: 'linkRestored', link: prior.id });
    }
    const ends = [rec.a, ...rec.b];
    const toEnd = new Set<string>();
    if (options.terminate === 'a' || options.terminate === 'both') toEnd.add(rec.a);
    if (options.terminate === 'b' || options.terminate === 'both') for (const b of rec.b) toEnd.add(b);
    for (const id of ends) {
      const inst = this.#instances.get(id);
      if (!inst) continue;
      if (
        inst.links.size === 0 &&
        (inst.point.characteristics.instancing === 'private' || inst.point.characteristics.endWhenUnused)
      )
        toEnd.add(id);
    }
    for (const id of toEnd) {
      const inst = this.#instances.get(id);
      if (inst) await this.#terminate(inst);
    }
  }

  /**
   * Reconnect (seed RECONNECT): send a null message (zero bytes: the point
   * receives an empty message) on every link that delivers to `name`, cycling
   * their primitives, and report the point's state.
   */
  async reconnect(name: string): Promise<InstanceInfo[]> {
    this.#checkOpen();
    this.#reg(name);
    const out: InstanceInfo[] = [];
    for (const inst of [...this.#instances.values()].filter((i) => i.point.name === name)) {
      for (const linkId of inst.links) {
        const rec = this.#links.get(linkId);
        if (!rec) continue;
        for (const f of rec.flows.filter((x) => x.to === inst.id))
          await this.#end(rec, f.from)?.target.request('cycle', { link: linkId }, this.#timeout);
      }
      out.push(this.#instInfo(inst));
    }
    return out;
  }

  /**
   * Destroy (seed DESTROY): remove the registration and terminate every
   * running instance with its termination method (escalating on a timer).
   */
  async destroy(name: string): Promise<void> {
    const reg = this.#reg(name);
    this.#points.delete(name);
    for (const inst of [...this.#instances.values()].filter((i) => i.point === reg)) await this.#terminate(inst);
    this.#emit({ type: 'pointDestroyed', point: name });
  }

  /** Terminate one instance (by instance id) with its point's termination method. */
  async terminate(instance: string): Promise<void> {
    const inst = this.#inst(instance);
    await this.#terminate(inst);
  }

  /** Per-point and per-link counters, from the instance's host. */
  async stats(instance: string): Promise<unknown> {
    const inst = this.#inst(instance);
    const s = await inst.host.request<Record<string, unknown>>('stats', {}, this.#timeout);
    const links: Record<string, LinkInfo> = {};
    for (const l of inst.links) if (this.#links.has(l)) links[l] = this.link(l);
    return { ...s, instance: this.#instInfo(inst), linkInfo: links };
  }

  /** For tests and tools: kill an instance's host abruptly (SIGKILL / terminate), as a crash would. */
  async kill(instance: string): Promise<void> {
    const inst = this.#inst(instance);
    await inst.host.forceKill();
  }

  /**
   * Close the fabric, inside out: terminate instances (the last created
   * first), close the caller's links, then unload the primitives. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const inst of [...this.#instances.values()].reverse()) await this.#terminate(inst).catch(() => {});
    for (const rec of [...this.#links.values()]) await this.#teardownLink(rec).catch(() => {});
    await this.registry.close();
    this.#emit({ type: 'closed' });
  }

  /** Calls {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals --------------------------------------------------------

  /**
   * Choose the primitive for a flow, or a broker when the two ends' differ.
   * `AMIX_ERR_PRIMITIVE_MISMATCH` names both when there is no broker, or
   * when a primitive cannot cross the process boundary a hop needs.
   */
  #planFlow(
    from: PointRegistration | undefined,
    to: PointRegistration | undefined,
  ): { primitive: string; broker?: BrokerEntry } {
    const sendP = from?.sendPrimitive ?? to!.receivePrimitive;
    const recvP = to?.receivePrimitive ?? from!.sendPrimitive;
    if (sendP === recvP) {
      this.#checkCrossing(sendP, from, to);
      return { primitive: sendP };
    }
    const broker = this.brokerFor(sendP, recvP);
    if (!broker) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
        `point "${from?.name ?? CALLER}" sends with ${sendP} but point "${to?.name ?? CALLER}" receives with ${recvP}, and no broker converts between them`,
        {
          details: {
            from: from?.name ?? CALLER,
            to: to?.name ?? CALLER,
            sendPrimitive: sendP,
            receivePrimitive: recvP,
          },
        },
      );
    }
    // The broker runs as a worker of this process: each hop is checked on its own.
    this.#checkCrossing(sendP, from, undefined);
    this.#checkCrossing(recvP, undefined, to);
    return { primitive: sendP, broker };
  }

  /** A hop that leaves a process needs a primitive that can cross processes. */
  #checkCrossing(primitive: string, from: PointRegistration | undefined, to: PointRegistration | undefined): void {
    const crosses = from?.characteristics.scope === 'process' || to?.characteristics.scope === 'process';
    const scopes = this.registry.get(primitive).characteristics.scopes;
    if (crosses && !scopes.includes('process') && !scopes.includes('remote')) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
        `primitive ${primitive} serves ${scopes.join(', ')} only and cannot link "${from?.name ?? CALLER}" and "${to?.name ?? CALLER}" across processes`,
        { details: { primitive, from: from?.name ?? CALLER, to: to?.name ?? CALLER } },
      );
    }
  }

  /** The end named `id` on link `rec`: an instance, or the link's caller end. */
  #end(rec: LinkRec, id: string): End | undefined {
    return (
      this.#instances.get(id) ?? (this.#callerEnds.get(rec.id)?.id === id ? this.#callerEnds.get(rec.id) : undefined)
    );
  }

  /** Open one flow: a receiving end at `to`, a sending end at `from` (each by its agent), and the list entries. */
  async #openFlow(
    rec: LinkRec,
    from: End,
    fromReg: PointRegistration | undefined,
    to: End,
    toReg: PointRegistration | undefined,
  ): Promise<void> {
    const plan = this.#planFlow(fromReg, toReg);
    const rxChar = (toReg ?? fromReg)!.characteristics;
    const options: ChannelOptions = {
      maxmsg: rxChar.maxmsg,
      minmsg: rxChar.minmsg,
      discard: rxChar.discard,
      idle: rxChar.waitStrategy,
      ...(rxChar.maxMessageBytes ? { maxMessageBytes: rxChar.maxMessageBytes } : {}),
    };
    if (!plan.broker) {
      await this.#openHop(rec, from, to, plan.primitive, options);
      return;
    }
    // Insert the broker point: from → broker on one primitive, broker → to on the other.
    const breg = normalizePoint({
      name: 'broker',
      location: plan.broker.location,
      receivePrimitive: plan.broker.from,
      sendPrimitive: plan.broker.to,
      characteristics: {
        scope: 'thread',
        maxmsg: rxChar.maxmsg,
        minmsg: rxChar.minmsg,
        discard: rxChar.discard,
        termination: 'signal',
      },
    });
    let n = 1;
    while (this.#instances.has(`broker#${n}`)) n++;
    const b = await this.#spawn(breg, `broker#${n}`, undefined);
    rec.brokers.push(b.id);
    b.links.add(rec.id);
    await this.#openHop(rec, from, b, plan.broker.from, options);
    await this.#openHop(rec, b, to, plan.broker.to, options);
  }

  /** Open one hop: a receiving end at `to`, a sending end at `from` (each by its agent), and the list entries. */
  async #openHop(rec: LinkRec, from: End, to: End, primitive: string, options: ChannelOptions): Promise<void> {
    const { address } = await to.target.request<{ address: ChannelOptions['address'] }>(
      'openReceiver',
      { link: rec.id, peer: from.id, primitive, options },
      this.#timeout,
    );
    try {
      await from.target.request(
        'openSender',
        { link: rec.id, peer: to.id, primitive, address, options },
        this.#timeout,
      );
    } catch (err) {
      await to.target.request('closeLink', { link: rec.id }, this.#timeout).catch(() => {});
      throw err;
    }
    rec.flows.push({ from: from.id, to: to.id, primitive });
    from.senderList.push({ link: rec.id, peer: to.id });
    to.receiverList.push({ link: rec.id, peer: from.id });
  }

  async #teardownLink(rec: LinkRec, reason?: Error): Promise<void> {
    if (!this.#links.has(rec.id)) return;
    this.#links.delete(rec.id);
    rec.state = 'closed';
    const caller = this.#callerEnds.get(rec.id);
    this.#callerEnds.delete(rec.id);
    // Senders first, so a receiver's drain is not cut short by its own close.
    const senders = new Set(rec.flows.map((f) => f.from));
    const ends = [...new Set([rec.a, ...rec.b])].sort((x, y) => Number(senders.has(y)) - Number(senders.has(x)));
    for (const id of ends) {
      const end = this.#instances.get(id) ?? (caller?.id === id ? caller : undefined);
      if (!end) continue;
      end.links.delete(rec.id);
      end.senderList = end.senderList.filter((e) => e.link !== rec.id);
      end.receiverList = end.receiverList.filter((e) => e.link !== rec.id);
      const i = end.placed.indexOf(rec.id);
      if (i >= 0) end.placed.splice(i, 1);
      if (!(end as Inst).host?.hasExited)
        await end.target.request('closeLink', { link: rec.id, reason: reason?.message }, this.#timeout).catch(() => {});
    }
    for (const b of rec.brokers) {
      const inst = this.#instances.get(b);
      if (inst) await this.#terminate(inst).catch(() => {});
    }
    rec.handle?.[kEnded](reason);
  }

  async #setSuspended(rec: LinkRec, on: boolean, state: LinkState): Promise<void> {
    for (const f of rec.flows)
      await this.#end(rec, f.from)?.target.request(on ? 'suspend' : 'resume', { link: rec.id }, this.#timeout);
    const now = Date.now();
    if (on && rec.suspendedSince === undefined) rec.suspendedSince = now;
    if (!on && rec.suspendedSince !== undefined) {
      rec.suspendedMs += now - rec.suspendedSince;
      rec.suspendedSince = undefined;
    }
    rec.state = state;
  }

  /** The instance a connection to `reg` uses: the public one, or a new private one per client. */
  async #instanceFor(reg: PointRegistration, client: string | undefined, connecting = false): Promise<Inst> {
    const c = reg.characteristics;
    const live = [...this.#instances.values()].filter(
      (i) => i.point === reg && i.state !== 'terminating' && i.state !== 'ended' && i.state !== 'dead',
    );
    if (c.instancing === 'public') {
      const existing = live[0];
      if (existing) {
        if (connecting && c.maxConnections > 0 && existing.links.size >= c.maxConnections)
          throw maxConn(reg, existing.links.size);
        return existing;
      }
      return this.#spawn(reg, reg.name, undefined);
    }
    if (connecting && client !== undefined) {
      // A private point gets one instance per client; an unclaimed one (made by create) is claimed first.
      const unclaimed = live.find((i) => i.client === undefined);
      if (unclaimed) {
        unclaimed.client = client;
        return unclaimed;
      }
    } else if (!connecting && live.length > 0) {
      return live[0]!;
    }
    if (c.maxConnections > 0 && live.length >= c.maxConnections) throw maxConn(reg, live.length);
    let n = 1;
    while (this.#instances.has(`${reg.name}#${n}`)) n++;
    return this.#spawn(reg, `${reg.name}#${n}`, connecting ? client : undefined);
  }

  async #spawn(reg: PointRegistration, id: string, client: string | undefined): Promise<Inst> {
    const host = HostHandle.spawn(reg.characteristics.scope, id, reg.characteristics.stackMb);
    const inst: Inst = {
      point: reg,
      id,
      state: 'starting',
      host,
      target: host,
      links: new Set(),
      restarts: 0,
      senderList: [],
      receiverList: [],
      ending: false,
      placed: [],
      ...(client !== undefined ? { client } : {}),
    };
    this.#instances.set(id, inst);
    this.#wire(inst);
    try {
      await this.#initHost(inst);
    } catch (err) {
      this.#instances.delete(id);
      inst.ending = true;
      await host.forceKill();
      throw err;
    }
    this.#emit({
      type: 'instanceCreated',
      point: reg.name,
      instance: id,
      scope: reg.characteristics.scope,
      pid: host.pid,
    });
    if (!reg.characteristics.idle) await this.#activate(inst);
    else inst.state = 'idle';
    return inst;
  }

  async #initHost(inst: Inst): Promise<void> {
    const primitives = this.registry
      .list()
      .filter((p) => !p.builtin && !p.location.startsWith('inline:'))
      .map(({ name, location, characteristics }) => ({ name, location, characteristics }));
    await inst.host.request(
      'init',
      {
        registration: inst.point,
        instance: inst.id,
        primitives,
        baseDir: this.#baseDir,
        runtimeDir: this.#runtimeDir,
      },
      this.#timeout,
    );
  }

  async #activate(inst: Inst): Promise<void> {
    if (inst.state === 'running') return;
    await inst.host.request('start', {}, this.#timeout);
    inst.state = 'running';
    this.#emit({ type: 'instanceStarted', point: inst.point.name, instance: inst.id });
  }

  #wire(inst: Inst): void {
    const host = inst.host;
    host.on('event', (e: { type: string; link?: string; peer?: string; event?: string }) => {
      if (e.type === 'channel')
        this.#emit({ type: 'channel', instance: inst.id, link: e.link!, peer: e.peer!, event: e.event! });
      else if (e.type === 'linkEnded')
        this.#emit({ type: 'peerLost', link: e.link!, instance: inst.id, peer: e.peer! });
    });
    host.on('exit', (exit: HostExit) => {
      if (inst.host === host) void this.#onExit(inst, exit);
    });
  }

  async #onExit(inst: Inst, exit: HostExit): Promise<void> {
    if (inst.ending) return;
    inst.state = 'dead';
    this.#emit({
      type: 'instanceDied',
      point: inst.point.name,
      instance: inst.id,
      code: exit.code,
      signal: exit.signal,
    });
    const linkIds = [...inst.links];
    if (inst.point.characteristics.restart && !this.#closed && this.#points.get(inst.point.name) === inst.point) {
      try {
        await this.#restart(inst, linkIds);
        return;
      } catch {
        // fall through: treat as a death without restart
      }
    }
    this.#instances.delete(inst.id);
    for (const l of linkIds) {
      const rec = this.#links.get(l);
      if (!rec) continue;
      for (const peer of [rec.a, ...rec.b].filter((x) => x !== inst.id))
        this.#emit({ type: 'peerLost', link: l, instance: peer, peer: inst.id });
      await this.#teardownLink(rec, new AmixError(ErrorCode.AMIX_ERR_POINT_DIED, `point ${inst.id} died`)).catch(
        () => {},
      );
    }
  }

  async #restart(inst: Inst, linkIds: string[]): Promise<void> {
    inst.host = HostHandle.spawn(inst.point.characteristics.scope, inst.id, inst.point.characteristics.stackMb);
    inst.target = inst.host;
    inst.restarts++;
    inst.state = 'starting';
    inst.senderList = [];
    inst.receiverList = [];
    this.#wire(inst);
    await this.#initHost(inst);
    await this.#activate(inst);
    // Re-establish every link the dead instance was in: peers drop their old
    // ends of the link, then each flow is opened again under the same link id.
    for (const l of linkIds) {
      const rec = this.#links.get(l);
      if (!rec) continue;
      const flows = rec.flows;
      rec.flows = [];
      for (const id of new Set([rec.a, ...rec.b])) {
        const peer = this.#end(rec, id);
        if (peer && peer !== inst) {
          await peer.target.request('closeLink', { link: l }, this.#timeout).catch(() => {});
          peer.senderList = peer.senderList.filter((e) => e.link !== l);
          peer.receiverList = peer.receiverList.filter((e) => e.link !== l);
        }
      }
      for (const f of flows) {
        const from = this.#end(rec, f.from)!;
        const to = this.#end(rec, f.to)!;
        await this.#openFlow(rec, from, (from as Inst).point, to, (to as Inst).point);
      }
      if (rec.state !== 'active') await this.#setSuspended(rec, true, rec.state);
    }
    this.#emit({ type: 'instanceRestarted', point: inst.point.name, instance: inst.id, links: linkIds });
  }

  /**
   * End an instance, inside out (seed 000): withdraw its coordinator first so
   * no new connection reaches it, then close its links, then end its work
   * with the point's termination method, escalating to a signal on a timer.
   */
  async #terminate(inst: Inst): Promise<void> {
    if (inst.ending) {
      await inst.host.exited;
      return;
    }
    inst.ending = true;
    inst.state = 'terminating';
    this.#emit({ type: 'coordinatorWithdrawn', point: inst.point.name, instance: inst.id });
    for (const l of [...inst.links]) {
      const rec = this.#links.get(l);
      if (rec) await this.#teardownLink(rec).catch(() => {});
    }
    const { termination, graceMs } = inst.point.characteristics;
    let method: 'message' | 'signal' = 'signal';
    let escalated = false;
    if (termination !== 'signal' && !inst.host.hasExited) {
      try {
        await inst.host.request(
          'terminate',
          { timeoutMs: graceMs },
          termination === 'message' ? Math.max(this.#timeout, graceMs) : graceMs,
        );
        method = 'message';
      } catch {
        escalated = termination === 'messageThenSignal';
      }
    }
    await inst.host.kill(graceMs);
    inst.state = 'ended';
    this.#instances.delete(inst.id);
    this.#emit({ type: 'instanceTerminated', point: inst.point.name, instance: inst.id, method, escalated });
  }

  #instInfo(i: Inst): InstanceInfo {
    return {
      point: i.point.name,
      instance: i.id,
      scope: i.point.characteristics.scope,
      state: i.state,
      pid: i.host.pid,
      links: [...i.links],
      restarts: i.restarts,
      senderList: [...i.senderList],
      receiverList: [...i.receiverList],
    };
  }

  #linkInfo(l: LinkRec): LinkInfo {
    const extra = l.suspendedSince !== undefined ? Date.now() - l.suspendedSince : 0;
    return {
      id: l.id,
      a: l.a,
      b: [...l.b],
      direction: l.direction,
      steps: l.steps,
      state: l.state,
      mode: l.mode,
      suspendedMs: l.suspendedMs + extra,
      brokers: [...l.brokers],
      flows: l.flows.map((f) => ({ ...f })),
    };
  }

  #reg(name: string): PointRegistration {
    const r = this.#points.get(name);
    if (!r) {
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point named ${describe(name)}`, {
        details: { name: String(name) },
      });
    }
    return r;
  }

  #inst(id: string): Inst {
    const i = this.#instances.get(id);
    if (!i)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no running instance ${describe(id)}`, {
        details: { instance: id },
      });
    return i;
  }

  #link(id: string): LinkRec {
    const l = this.#links.get(id);
    if (!l)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `no link ${describe(id)}`, {
        details: { link: String(id) },
      });
    return l;
  }

  #emit(e: FabricEvent): void {
    this.emit('event', e);
  }

  #checkOpen(): void {
    if (this.#closed) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'fabric is closed');
  }
}

function maxConn(reg: PointRegistration, n: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
    `point "${reg.name}" is at its maxConnections (${reg.characteristics.maxConnections}; ${n} in use); retry after a client leaves`,
    { details: { point: reg.name, maxConnections: reg.characteristics.maxConnections } },
  );
}
