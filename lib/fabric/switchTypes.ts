/**
 * The types of a switch point's options and snapshots (what
 * `fabric.switches.show` and `amix switch show` report), in a file of their
 * own so the switch's code stays within its file limit.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import type { TrunkFlowStats } from './switchTrunk.js';

/**
 * What a switch needs of the point it runs in (an `Endpoint` is one): its link lists and their channels,
 * its `linkAdded` events, a place for its `switch` service, and where its `route` events go. A trunk point in
 * point mode hands a switch one of its own (its real links plus an in-process one to itself).
 */
export interface SwitchHost {
  readonly senderList: ReadonlyArray<{ link: string; peer: string }>;
  readonly receiverList: ReadonlyArray<{ link: string; peer: string }>;
  channels(link: string): { tx: Channel[]; rx: Channel[] };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an EventEmitter's listener signature
  on(event: 'event', listener: (e: any) => void): unknown;
  emit(event: 'event', e: Record<string, unknown>): boolean;
  readonly services: Map<string, (request: Record<string, unknown>) => unknown>;
  readonly closed: Promise<unknown>;
}

/** Options of a switch, from its registration's `data`. */
export interface SwitchOptions {
  /** Messages queued per output link before sources for it are parked. Default 256. */
  queueLimit?: number;
  /** Messages the poller takes from one source per round. Default 64. */
  readBatch?: number;
  /** Frames in flight per destination over trunk ports (kept until the far switch acknowledges them). Default 512. */
  trunkWindow?: number;
}

/** A snapshot of one route of a switch. */
export interface SwitchRouteInfo {
  dest: string;
  /** The link it goes out on, and the peer at its other end (the destination, or the next switch). */
  link: string;
  nextHop: string;
  /** Switches on the way, this one first (1: the destination is attached here). */
  hops: number;
  path: string[];
  suspended: boolean;
  /** Messages forwarded to it, and dropped for it (its link went while they waited). */
  messages: number;
  dropped: number;
  /** Messages a second forwarded to it over the last second (the switch samples its counters once a second). */
  msgsPerSec: number;
}

/** A snapshot of one link of a switch. */
export interface SwitchPortInfo {
  link: string;
  peer: string;
  /** The peer's switch name when it is a switch. */
  neighbour?: string;
  /** The trunk point's name when the link goes to one (data on it is sequenced and acknowledged). */
  trunk?: string;
  /** Messages read from it, written to it, waiting in its queue, sources parked on it, dropped. */
  in: number;
  out: number;
  /** Messages a second read from it and written to it over the last second. */
  inPerSec: number;
  outPerSec: number;
  queued: number;
  /** Routes frames waiting for it (at most 32: then one full table replaces them). */
  routesQueued: number;
  parked: number;
  dropped: number;
}

/** What `amix switch show` and `Fabric.switches.show` report (rates: over the last second, sampled by the switch). */
export interface SwitchSnapshot {
  switch: string;
  /** When it was taken (ms since the epoch). */
  at: number;
  queueLimit: number;
  /** Messages a second it forwarded over the last second (the sum of its routes' `msgsPerSec`). */
  msgsPerSec: number;
  routes: SwitchRouteInfo[];
  ports: SwitchPortInfo[];
  /** Messages the switch accepted but could not route: no route, too many hops, bad header, link gone. */
  dropped: { unknown: number; hops: number; bad: number; gone: number };
  /** Messages the switch holds now (queued plus in the hands of parked sources). */
  pending: number;
  /** Its flows over trunk ports: sequenced, re-sent, acknowledged, duplicates and gaps dropped, kept now. */
  trunk: TrunkFlowStats & { window: number };
}

/** What a trunk point reports (`trunk` service, `amix switch show`). */
export interface TrunkSnapshot {
  trunk: string;
  at: number;
  state: 'connecting' | 'up' | 'down';
  /** The far point's key, where its receiving end is (once known), where this one's is. */
  peerKey: string;
  peer?: string;
  endpoint: string;
  /** The switch beyond the trunk (once its routes arrived), and the one this point is linked to. */
  remoteSwitch?: string;
  localSwitch?: string;
  /** Trunk frames and switch frames each way; msgsPerFrame = msgsOut / framesOut. */
  framesOut: number;
  msgsOut: number;
  framesIn: number;
  msgsIn: number;
  msgsPerFrame: number;
  /** Switch frames a second out over the trunk and in from it, over the last second (sampled once a second). */
  msgsOutPerSec: number;
  msgsInPerSec: number;
  /** Times the trunk came up, went down; trunk frames the zeromq channel sent again after a reconnect. */
  ups: number;
  downs: number;
  retransmits: number;
  /** Dropped: data read while the trunk was down (its switch keeps a copy), malformed trunk frames. */
  dropped: { down: number; bad: number };
  /** Switch frames waiting for the local switch to take them (at most `window` trunk frames' worth). */
  pending: number;
  lastError?: { code: string; message: string };
  /** What its links go to (`data.trunk.attach`); in point mode, its switch engine's snapshot. */
  attach: 'switch' | 'point';
  engine?: SwitchSnapshot;
}
