/**
 * @internal The fabric's own records (link ends, instances, links) and the
 * state its parts share: the facade owns one {@link FabricCore}; the broker
 * table, the hops and the supervisor read and change it. Not exported from
 * the package.
 *
 * @module
 */
import type { AgentTarget } from './agent.js';
import type { ListEntry } from './endpoint.js';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import type { HostPool } from './hostPool.js';
import type { HostPlacement, PointHost } from './pointHost.js';
import type { Link } from './link.js';
import type { PointRegistration } from './point.js';
import type { ChannelOptions } from '../core/primitive.js';
import type { PrimitiveRegistry } from '../core/registry.js';
import type { FabricEvent, FabricOptions, InstanceInfo, InstanceState, LinkInfo } from './types.js';

/** @internal The fabric's own record of a link: the snapshot fields plus what only it needs. */
export interface LinkRec extends LinkInfo {
  suspendedSince?: number;
  /** The link this one put on hold (restored on disconnect). */
  held?: string;
  /** The end whose sending entries of this link start held (ConnectOptions.heldAt). */
  heldAt?: string;
  /** The caller's handle, if the caller is an end. */
  handle?: Link;
  /**
   * How each hop was opened, by {@link hopKey}: its primitive, the receiving
   * end's address and the channel options. A restart re-makes only the dead
   * instance's ends of a hop from this (at the same address), so the peers'
   * ends, and the sender's unacknowledged messages, survive it.
   */
  hops?: Map<string, HopRecord>;
  /** ConnectOptions.hop: the primitive and options every hop of this link is opened with. */
  hop?: { primitive: string; options: ChannelOptions };
}

/** @internal How one hop of a link was opened (see {@link LinkRec.hops}). */
export interface HopRecord {
  primitive: string;
  address: ChannelOptions['address'];
  options: ChannelOptions;
}

/** @internal The key of the hop from end `from` to end `to` in {@link LinkRec.hops} (ids hold no NUL). */
export function hopKey(from: string, to: string): string {
  return `${from}\u0000${to}`;
}

/** @internal A link end: a point instance, or the caller (this application, or a container through amixd). */
export interface End {
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

/** @internal A point instance: an end with a host (worker thread or child process). */
export interface Inst extends End {
  point: PointRegistration;
  state: InstanceState;
  host: PointHost;
  restarts: number;
  /** The client a private instance serves. */
  client?: string;
  /** Set while the fabric itself is ending the instance, so its exit is not a death. */
  ending: boolean;
  /**
   * A restartable instance's spare host, booted and initialised (the point's
   * module loaded, its main not started) ahead of need: a restart takes it
   * over instead of waiting for a new process or thread to boot.
   */
  standby?: Standby;
}

/** @internal A spare host (see {@link Inst.standby}); `ready` resolves true once its init succeeded. */
export interface Standby {
  host: PointHost;
  ready: Promise<boolean>;
}

/** @internal What the fabric's parts share: its tables, its settings, and its event output. */
export interface FabricCore {
  readonly registry: PrimitiveRegistry;
  readonly baseDir: string;
  readonly runtimeDir: string;
  /** How long a host may take to answer a control request. */
  readonly timeoutMs: number;
  /** Registrations by point name. */
  readonly points: Map<string, PointRegistration>;
  /** Instances by instance id. */
  readonly instances: Map<string, Inst>;
  readonly links: Map<string, LinkRec>;
  /** Caller ends, one per link where the caller (or an external end) is an end. */
  readonly callerEnds: Map<string, End>;
  /** Where points placed outside this fabric's hosts run (amixd's containers), if anywhere. */
  readonly placement?: HostPlacement | undefined;
  /** Node flags for the point hosts this fabric starts ({@link FabricOptions.hostExecArgv}); undefined: this process's. */
  readonly hostExecArgv: readonly string[] | undefined;
  /** Idle hosts kept for the next point ({@link FabricOptions.reuseHosts}). */
  readonly pool: HostPool;
  /** True until the fabric starts closing. */
  isOpen(): boolean;
  emit(e: FabricEvent): void;
}

/** @internal The end named `id` on link `rec`: an instance, or the link's caller end. */
export function endOf(core: FabricCore, rec: LinkRec, id: string): End | undefined {
  const caller = core.callerEnds.get(rec.id);
  return core.instances.get(id) ?? (caller?.id === id ? caller : undefined);
}

/** @internal A snapshot of an instance. */
export function instInfo(i: Inst): InstanceInfo {
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
    ...(i.client !== undefined ? { client: i.client } : {}),
  };
}

/** @internal A snapshot of a link; `suspendedMs` counts the suspension still running. */
export function linkInfo(l: LinkRec): LinkInfo {
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

/** @internal The registration of `name`; `AMIX_ERR_UNKNOWN_POINT` if absent. */
export function regOf(core: FabricCore, name: string): PointRegistration {
  const r = core.points.get(name);
  if (!r) {
    throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point named ${describe(name)}`, {
      details: { name: String(name) },
    });
  }
  return r;
}

/** @internal The running instance `id`; `AMIX_ERR_UNKNOWN_POINT` if absent. */
export function instOf(core: FabricCore, id: string): Inst {
  const i = core.instances.get(id);
  if (!i)
    throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no running instance ${describe(id)}`, {
      details: { instance: id },
    });
  return i;
}

/** @internal The live link `id`; `AMIX_ERR_UNKNOWN_LINK` if absent. */
export function linkOf(core: FabricCore, id: string): LinkRec {
  const l = core.links.get(id);
  if (!l)
    throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `no link ${describe(id)}`, {
      details: { link: String(id) },
    });
  return l;
}
