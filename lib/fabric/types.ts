/**
 * The fabric's public types: options, events and snapshots, shared by the
 * facade (`fabric.ts`) and its parts (link, brokers, hops, supervisor).
 *
 * @module
 */
import type { AgentTarget } from './agent.js';
import type { ListEntry } from './endpoint.js';
import type { Direction, PointRegistration, PointScope } from './point.js';
import type { PrimitiveRegistry } from '../core/registry.js';
import type { ChannelOptions } from '../core/primitive.js';
import type { HostPlacement } from './pointHost.js';

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
  | {
      type: 'instanceCreated';
      point: string;
      instance: string;
      scope: string;
      pid: number | undefined;
      /** Started in an idle host kept from an ended point ({@link FabricOptions.reuseHosts}). */
      reused?: true;
    }
  | { type: 'instanceStarted'; point: string; instance: string }
  | { type: 'coordinatorWithdrawn'; point: string; instance: string }
  | { type: 'instanceTerminated'; point: string; instance: string; method: 'message' | 'signal'; escalated: boolean }
  | { type: 'instanceDied'; point: string; instance: string; code: number | null; signal: string | null; error?: Error }
  | { type: 'instanceRestarted'; point: string; instance: string; links: string[] }
  /**
   * An instance's point function returned or threw (`error`). The instance stays up with its links
   * (a point may end its loop and keep its coordinator), but nothing reads for it any more.
   */
  | { type: 'mainEnded'; point: string; instance: string; error?: { code?: string; message: string } }
  /** A restartable instance's spare host is booted and initialised: its next restart takes it over. */
  | { type: 'spareReady'; point: string; instance: string; pid: number | undefined }
  | { type: 'linkConnected'; link: string; a: string; b: string; direction: Direction; steps: readonly number[] }
  | { type: 'linkStep'; link: string; step: number; end: string; list: 'sender' | 'receiver'; peer: string }
  | { type: 'linkSuspended'; link: string }
  | { type: 'linkResumed'; link: string }
  | { type: 'linkHeld'; link: string; by: string }
  | { type: 'linkRestored'; link: string }
  | { type: 'linkDisconnected'; link: string }
  | { type: 'peerLost'; link: string; instance: string; peer: string }
  | { type: 'channel'; instance: string; link: string; peer: string; event: string }
  /** A switch learned a route to `dest` (or a better one): through link `via`, `hops` switches away (1: attached to it). */
  | { type: 'routeUp'; switch: string; dest: string; via: string; hops: number }
  /** A switch lost its last route to `dest`. */
  | { type: 'routeDown'; switch: string; dest: string }
  /** A trunk point's trunk link came up (it heard the far trunk point) or went down; `peer` is the far end's endpoint. */
  | { type: 'trunkUp'; trunk: string; peer: string }
  | { type: 'trunkDown'; trunk: string; peer: string }
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
  /**
   * Points whose instances run outside this fabric's own hosts (amixd puts a
   * container's in-container points there). Default: every point runs here.
   */
  placement?: HostPlacement;
  /**
   * Node flags for the hosts of points (child processes and worker threads).
   * Default: this process's own (`process.execArgv`), so a loader the
   * application runs under reaches its points too. `[]` starts hosts
   * without flags: quicker to start when the parent's flags are heavy (a
   * test runner's TypeScript loader, say) and the points are plain
   * JavaScript. A process point's `stackMb` is added to them. With the
   * default, a worker thread inherits the flags as Node's own workers do
   * (the process-wide ones, `--max-old-space-size` or `--expose-gc`, hold
   * for it already); named here, those are refused at a thread point's
   * start (`AMIX_ERR_INVALID_ARG`).
   */
  hostExecArgv?: readonly string[];
  /**
   * Keep the host (worker thread or child process) of a point that ended by
   * its termination message, and start the next point of the same scope and
   * `stackMb` in it rather than in a new one: `true` keeps up to 2 idle
   * hosts per scope for 30 s, or say `{ max, idleMs }`. Default `false`.
   * A reused host starts a point sooner and with warm code (V8 compiles the
   * channel's and the point's hot paths once per host: a fresh host runs
   * them slowly for its first few hundred milliseconds of traffic). But the
   * point's module is imported once per host: its top-level code does not
   * run again, and what a point leaves behind (module variables, timers,
   * listeners) the next one in that host sees. For points that keep their
   * state inside `main` and stop their work when their signal aborts.
   */
  reuseHosts?: boolean | { max?: number; idleMs?: number };
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
  /**
   * @internal The running instance whose sending entries of the new link
   * start held: it sends nothing on the link until `fabric.ends.holdSender`
   * (or `swapSender`) releases them. CAPS opens a replacement's input links
   * this way ahead of the switch-over.
   */
  heldAt?: string;
  /**
   * @internal Every hop of the new link on this primitive, whatever the
   * points' own primitives, with these channel options over the usual ones
   * (amixd's direct remote links: ZeroMQ with the link's CURVE keys).
   */
  hop?: { primitive: string; options: ChannelOptions };
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
  /** The client a private instance serves (a point instance, a container, or `caller`). */
  client?: string;
}

/** An idle host in the fabric's pool ({@link FabricOptions.reuseHosts}). */
export interface IdleHostInfo {
  scope: PointScope;
  /** The stack size, MiB, a point must ask for to be started in it. */
  stackMb: number;
  /** Its process: the fabric's own for a worker thread. */
  pid: number | undefined;
  /** How long it has waited, ms; it is stopped at the pool's `idleMs`. */
  idleForMs: number;
}

/**
 * A snapshot of the fabric's pool of kept hosts ({@link FabricOptions.reuseHosts}). The counts run
 * from the fabric's start. With the pool off, `max` is 0 and every count stays 0.
 */
export interface HostPoolInfo {
  /** Idle hosts kept per scope and stack size. */
  max: number;
  /** How long an idle host waits before it is stopped, ms. */
  idleMs: number;
  /** The hosts waiting now, oldest first per scope. */
  idle: IdleHostInfo[];
  /** Hosts of ended points taken into the pool. */
  kept: number;
  /** Points started in a kept host. */
  reused: number;
  /** Kept hosts stopped unused after `idleMs`. */
  expired: number;
  /** Hosts of points that ended by message but were stopped: the pool was full or closing, or the host refused. */
  notKept: number;
  /** Kept hosts that exited while idle, not stopped by the pool (killed from outside, crashed): dropped from it. */
  died: number;
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
