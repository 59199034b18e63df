/**
 * The amixd op table and event map, shared by the daemon (which answers the
 * ops through a table of handlers) and {@link DaemonClient} (whose
 * `request` is checked against it). Types only: importing this loads
 * nothing, so the client does not pull in the daemon's modules.
 *
 * @module
 */
import type { ClusterStatus } from '../cluster/cluster.js';
import type { AttributeInput, PointView } from '../directory/index.js';
import type { PrimitiveInfo, PrimitiveRegistration } from '../core/registry.js';
import type { AgentStats, Empty } from '../fabric/agent.js';
import type { DisconnectOptions, FabricEvent, InstanceInfo, LinkInfo } from '../fabric/fabric.js';
import type { Direction, PointRegistrationInput, PointScope } from '../fabric/point.js';
import type { HostEvent } from '../fabric/hostProtocol.js';
import type { HostExit } from '../fabric/pointHost.js';
import type { SwitchSnapshot, SwitchSummary, TrunkSnapshot, TrunkSummary } from '../fabric/switches.js';
import type { PrincipalInfo } from './principals.js';
import type { ControlGuardStats } from './guard.js';
import type { PeeringStatus, RemoteEvent, RemoteLinkInfo } from '../remote/types.js';
import type { Page, PageArgs } from './paging.js';
export type { Page, PageArgs } from './paging.js';

/** A plugged-in container, as the daemon sees it. */
export interface ContainerInfo {
  id: string;
  name: string;
  /** The principal its credential names. */
  owner: string;
  admin: boolean;
  pid: number;
  links: string[];
  points: string[];
}

/** What `status` answers (`amix daemon status`). */
export interface DaemonStatus {
  pid: number;
  dir: string;
  socket: string;
  version: number;
  uptimeMs: number;
  slots: number;
  /** Administrator connections allowed beyond `slots`. */
  adminSlots: number;
  /** The shared socket for other local users, if any. */
  sharedSocket?: string;
  containers: ContainerInfo[];
  directory: string | undefined;
  points: number;
  instances: number;
  links: number;
  peering?: PeeringStatus;
  /** Cluster mode (`--cluster`): the NATS link, the members and their state, the replica, what is published. */
  cluster?: ClusterStatus;
  /** The control socket's bounds: refusals, timeouts, cut-off clients, protocol errors (`lib/control/guard.ts`). */
  guard?: ControlGuardStats;
  /** The same for the shared socket, when there is one (its own places before hello, its own counters). */
  sharedGuard?: ControlGuardStats;
  /** Where `amixd --metrics` serves Prometheus metrics: `http://HOST:PORT/metrics`. */
  metrics?: string;
}

/** A point as `point.ls` and `point.register` show it. */
export interface PointInfo {
  id: string | undefined;
  name: string;
  owner: string | undefined;
  role: string;
  scope: string;
  sendPrimitive: string | undefined;
  receivePrimitive: string | undefined;
  instances: string[];
}

/** A link as `links` lists it, with its owner (absent for one a peer made). */
export type OwnedLink = (LinkInfo | RemoteLinkInfo) & { owner?: string | undefined };

/** The ops that list a growing set, answered in pages when asked with `offset` or `limit`. */
export type ListOp = 'point.ls' | 'links' | 'instances';

/** One item of listing `K`. */
export type ListItem<K extends ListOp> = DaemonOps[K]['result'] extends infer R
  ? R extends Array<infer T>
    ? T
    : never
  : never;

/** What `stats` answers: each instance's agent counters (or why it has none), and the links. */
export interface DaemonStats {
  at: number;
  instances: Record<string, AgentStats | { error: string }>;
  links: LinkInfo[];
}

/** The arguments of `connect`: two points by name or identifier (`null`: this container). */
export interface ConnectArgs {
  a: string | null;
  b: string | null;
  direction?: Direction | 1 | 2 | 3 | 4 | undefined;
  mode?: 'add' | 'hold' | 'conference' | undefined;
  /**
   * A link to a point on a peer daemon whose flows go straight between the
   * two points' processes (ZeroMQ with CURVE keys made for the flow), with no
   * daemon on the data path; it promises what the `zeromq` primitive does
   * (docs/delivery.md). Only for a local point and one on a peer.
   */
  direct?: boolean | undefined;
}

/** The hello a container says first, with a principal's token. */
export interface HelloArgs {
  version?: number;
  /** The credential: who the container is follows from it alone. */
  token: string;
  pid?: number;
  name?: string;
  /** @deprecated Ignored: the owner is the principal the token names. */
  owner?: string;
}

/** The daemon's answer to hello. */
export interface HelloResult {
  container: string;
  daemonPid: number;
  version: number;
  runtimeDir: string;
  admin: boolean;
  /** The principal the token names (`admin`, `user`, or one from `principal add`). */
  principal: string;
}

/** The daemon's op table: each request a container may send, its arguments and its result. */
export interface DaemonOps {
  /** Plug in: prove the token (the only op allowed before). */
  hello: { args: HelloArgs; result: HelloResult };
  status: { args: Empty; result: DaemonStatus };
  /** Stop the daemon (after answering). */
  stop: { args: Empty; result: { stopping: true } };
  /** Send this container the daemon's events. */
  subscribe: { args: Empty; result: Empty };
  'primitive.add': { args: { registration: PrimitiveRegistration }; result: PrimitiveInfo };
  'primitive.rm': { args: { name: string }; result: Empty };
  'primitive.ls': { args: Empty; result: PrimitiveInfo[] };
  /**
   * Register a point. Idempotent for a retry: when the name is taken by a
   * point of the same principal with the identical record and attributes
   * (a registration whose reply was lost), the existing point is returned;
   * any other taken name is `AMIX_ERR_DUPLICATE`.
   */
  'point.register': {
    args: {
      registration: PointRegistrationInput;
      attributes?: Record<string, AttributeInput>;
      /** End the point when this container goes. */
      ephemeral?: boolean;
      /**
       * Run the point's instances in this container, started by its agent:
       * a coordinator (location `amix:coordinator`, see
       * `DaemonClient.coordinator`) in the container's own process, a
       * `thread` point as a worker thread of it. Implies `ephemeral`; a
       * `process` point is refused (it has a process of its own).
       */
      inContainer?: boolean;
    };
    result: PointInfo & { id: string };
  };
  /**
   * Register up to 1000 points at once, all or none, in one durable commit;
   * each entry is as `point.register` takes it (and as idempotent). The
   * request must fit one control frame: send large sets in several batches.
   */
  'point.registerBatch': {
    args: { points: Array<DaemonOps['point.register']['args']> };
    result: Array<PointInfo & { id: string }>;
  };
  'point.rm': { args: { name: string }; result: Empty };
  /** The same as `point.rm`. */
  destroy: { args: { name: string }; result: Empty };
  /**
   * The registered points. Without `offset`/`limit`: the whole array if it
   * fits one reply, else `AMIX_ERR_FRAME_TOO_LARGE`; with either: a
   * {@link Page} cut to fit a frame (walk them with `DaemonClient.list`).
   */
  'point.ls': { args: PageArgs; result: PointInfo[] | Page<PointInfo> };
  'point.show': {
    args: { name: string };
    result: PointView & { instances: InstanceInfo[] | never[]; daemon?: string };
  };
  query: {
    args: { expr: string; limit?: number; offset?: number };
    /**
     * At most `limit` points from `offset`, fewer when more would not fit
     * one reply; `next` is the offset to ask for next when `more`.
     */
    result: { points: readonly PointView[]; more: boolean; next?: number };
  };
  connect: { args: ConnectArgs; result: LinkInfo | RemoteLinkInfo };
  disconnect: { args: { link: string; terminate?: DisconnectOptions['terminate'] }; result: Empty };
  suspend: { args: { link: string }; result: LinkInfo | RemoteLinkInfo };
  resume: { args: { link: string }; result: LinkInfo | RemoteLinkInfo };
  peers: { args: Empty; result: PeeringStatus | { peers: never[] } };
  reconnect: { args: { name: string }; result: InstanceInfo[] };
  execute: { args: { name: string }; result: InstanceInfo };
  /** Every running switch point, then every running trunk point, one summary each (`amix switch ls`). */
  'switch.ls': { args: Empty; result: Array<SwitchSummary | TrunkSummary> };
  /** A switch's routes, links and counters, or a trunk point's trunk (`amix switch show`); `name` is a point name or directory id. */
  'switch.show': { args: { name: string }; result: SwitchSnapshot | TrunkSnapshot };
  /** Hold a switch's messages for `dest` (owner or administrator). */
  'switch.suspend': { args: { name: string; dest: string }; result: SwitchSnapshot };
  /** Release them. */
  'switch.resume': { args: { name: string; dest: string }; result: SwitchSnapshot };
  /** Every link, with its owner (the principal that connected it; absent for one a peer made); paged as `point.ls` is. */
  links: { args: PageArgs; result: OwnedLink[] | Page<OwnedLink> };
  /** Every instance, paged as `point.ls` is. */
  instances: { args: PageArgs; result: InstanceInfo[] | Page<InstanceInfo> };
  stats: { args: Empty; result: DaemonStats };
  /** Add a principal (administrator only); the reply carries its token, the only copy. */
  'principal.add': { args: { name: string }; result: { name: string; token: string } };
  /** Remove a principal (administrator only); its connections are closed. */
  'principal.rm': { args: { name: string }; result: Empty };
  /** The principals (administrator only). */
  'principal.ls': { args: Empty; result: PrincipalInfo[] };
}

/**
 * What amixd asks of a container that hosts points (`inContainer`): its
 * agent, the seed's intra_p point, starts and stops their hosts and passes
 * them the fabric's requests; the hosts' events come back as the container's
 * events `host.event` and `host.exit` ({@link ContainerEvents}).
 */
export interface ContainerOps {
  /** Start host `host` (an instance id) of point `point`: a worker thread, or the container's coordinator endpoint. */
  'host.spawn': {
    args: { host: string; point: string; scope: PointScope; stackMb: number; coordinator: boolean };
    result: { pid: number };
  };
  /** One of the host's requests (its init, start and terminate, or a link command). */
  'host.request': {
    args: { host: string; op: string; args: Record<string, unknown>; timeoutMs: number };
    result: unknown;
  };
  /** Stop the host: `force`, at once; else as `HostHandle.kill(graceMs)` does. */
  'host.kill': { args: { host: string; graceMs: number; force: boolean }; result: HostExit };
}

/** The events a container sends amixd about the hosts it runs. */
export interface ContainerEvents {
  'host.event': { host: string; event: HostEvent };
  'host.exit': { host: string; code: number | null; signal: NodeJS.Signals | null };
}

/** One of the daemon's ops. */
export type DaemonOp = keyof DaemonOps;

/** The daemon's own events about containers. */
export type ContainerEvent =
  | { type: 'daemon.containerPlugged'; container: string; name: string; pid: number }
  | { type: 'daemon.containerUnplugged'; container: string; name: string };

/** Every event the daemon broadcasts, as it raises it. */
export type DaemonEvent = FabricEvent | ContainerEvent | RemoteEvent;

/** An error as an event body carries it. */
export interface EventError {
  message: string;
  code: string | undefined;
}

type OnWire<T> = T extends Error ? EventError : T;

/** The body of an event on the wire: its fields but `type`, errors as {@link EventError}. */
export type EventBody<E extends { type: string }> = {
  [K in keyof E as K extends 'type' ? never : K]: OnWire<E[K]>;
};

/** The event map subscribers receive: each event type to its body. */
export type DaemonEvents = { [T in DaemonEvent['type']]: EventBody<Extract<DaemonEvent, { type: T }>> };
