/**
 * The public types of CAPS (`caps.ts`): options, the AMS records of the
 * LOADED, ACTIVE and SUSPENDED lists, MAP AREAs, deferred requests and the
 * events.
 *
 * @module
 */
import type { PointCharacteristics } from '../../fabric/point.js';
import type { HostPoolInfo } from '../../fabric/types.js';

/** Where an AMS stands: on LOADED only, or also on ACTIVE, or moved to SUSPENDED. */
export type AmsState = 'loaded' | 'active' | 'suspended';

/** What TERMINATE does with the messages still queued for an AMS (the seed's de-allocation attribute, ¶561). */
export type Deallocation = 'drain' | 'discard';

/** What REPLACE and EXTRACT do with the AMS taken out (¶541, ¶570). */
export type Disposition = 'terminate' | 'suspend' | 'standby';

/** An injectable clock (tests use a fake one). */
export interface CapsClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options for {@link Caps}. */
export interface CapsOptions {
  /** Directories LOCATE searches for `<name>.js` / `<name>.mjs` after the process's own AMSs. */
  libraries?: readonly string[];
  /** The binding-service step of LOCATE: a location for a name, or undefined. */
  bind?: (name: string) => Promise<string | undefined> | string | undefined;
  /** Default `process`-clock: `Date.now` and the global timers. */
  clock?: CapsClock;
  /** The principal map areas are marked with. Default `process:<uid>`. */
  owner?: string;
  /** Largest state a DUMP_MAP may produce, as JSON bytes. Default 16 MiB. */
  maxMapBytes?: number;
  /** Most requests the EVENT list holds. Default 1024. */
  maxDeferred?: number;
  /** How long a request to an AMS's loop may take. Default 10000 ms. */
  requestTimeoutMs?: number;
}

/** LOAD's input. */
export interface LoadOptions {
  /** The AMS (and its point's) name. */
  name: string;
  /** Its point module; absent, LOCATE finds it. */
  location?: string;
  /** The point's free-form `data`. */
  data?: unknown;
  /** Thread or process (default `thread`). */
  scope?: 'thread' | 'process';
  /** More point characteristics. */
  characteristics?: Partial<PointCharacteristics>;
  /** Primitives of its ends (COMPRIMS's defaults when absent). */
  sendPrimitive?: string;
  receivePrimitive?: string;
  /** The de-allocation attribute (default `drain`). */
  deallocation?: Deallocation;
  /** Load again even if loaded (refused while it executes). */
  force?: boolean;
  /**
   * Start its instance now: a thread or process with the module loaded and
   * its loop running, no links. It stays on LOADED; a later EXECUTE or
   * REPLACE uses it and does not wait for a process or thread to start
   * (nor takes the CPU that costs from the running pipeline then).
   * Default false.
   */
  start?: boolean;
}

/** EXECUTE's input. */
export interface ExecuteOptions {
  /** `public` (default): one shared instance, counted; `private`: an instance of its own per EXECUTE. */
  scope?: 'public' | 'private';
  /** Points linked to the AMS (point → AMS) by this EXECUTE. */
  upstream?: readonly string[];
  /** Points the AMS is linked to (AMS → point). */
  downstream?: readonly string[];
}

/** REPLACE's input. */
export interface ReplaceOptions {
  /** What becomes of the old AMS. Default `terminate`. */
  disposition?: Disposition;
  /** Carry state: DUMP_MAP of the old, LOAD_MAP into the new. Default false. */
  state?: boolean;
  /** Scope of the new AMS's execution (when it is not executing yet). Default `public`. */
  scope?: 'thread' | 'process';
  /**
   * Let the old AMS work off what is already queued for it, for up to this
   * many ms, before the switch-over (its upstreams send to the new AMS from
   * the start): when it gets through in time, nothing is handed over and the
   * pause downstream is a few round trips; when not, the rest is handed
   * over as without it. Default 0: hand over at once (seed 002 ¶583);
   * 5000 with `overlap`.
   */
  drainMs?: number;
  /**
   * Start the new AMS at once, while the old one works off its queue (up to
   * `drainMs`): the upstreams send to the new AMS from the start, and each
   * downstream takes the new AMS's outputs only after the old one's (its
   * receiving end fences the new link behind the old). The pause downstream
   * is then about the time the old link takes to go. Not with `state` (the
   * new AMS runs before the old one stops). What the old AMS has not taken
   * when `drainMs` runs out is handed over, and comes after later messages.
   */
  overlap?: boolean;
}

/** INSERT's and EXTRACT's input: the two AMSs (points) around. */
export interface BetweenOptions {
  from: string;
  to: string;
  /** EXTRACT only: what becomes of the extracted AMS. Default `terminate`. */
  disposition?: Disposition;
}

/** A MAP AREA (¶552-554). */
export interface MapArea {
  id: string;
  /** The AMS that wrote it (its owner). */
  ams: string;
  /** The machine it was written on: `arch`, `platform`, `endianness`, `node`. */
  architecture: { arch: string; platform: string; endianness: string; node: string };
  /** When (ms since the epoch). */
  at: number;
  /** Who may read it: the principal that asked for the dump. */
  security: { owner: string };
  /** `terminate`: kept until its AMS terminates; `load`: freed by the LOAD_MAP of it. */
  persistence: 'terminate' | 'load';
  /** `json`. */
  format: 'json';
  /** Size of the state's JSON. */
  bytes: number;
}

/** One AMS as QUERY reports it. */
export interface AmsInfo {
  name: string;
  location: string;
  state: AmsState;
  /** The reference count (executions in use). */
  refs: number;
  scope: 'public' | 'private';
  /** Its running instances. */
  instances: string[];
  deallocation: Deallocation;
  /** Kept executing, unlinked, after a REPLACE or EXTRACT with disposition `standby`. */
  standby: boolean;
  /** LOADs of it (a forced LOAD counts again). */
  loads: number;
}

/** The operations that can be deferred. */
export type DeferrableOp = 'load' | 'execute' | 'replace' | 'suspend' | 'resume' | 'terminate' | 'insert' | 'extract';

/** A request for the EVENT list (or to run now, from the request store). */
export interface CapsRequest {
  /** Caller's id (the request store dedupes on it); one is given otherwise. */
  id?: string;
  op: DeferrableOp;
  /** The op's arguments: `{ name, ...options }`, REPLACE `{ old, new, ...options }`, INSERT/EXTRACT `{ ams, from, to }`. */
  args: Record<string, unknown>;
  /** Run at this time (ms since the epoch, or an ISO string). */
  at?: number | string;
  /** Run every this many ms (from now, or from `at`). */
  every?: number;
  /** Run when this event is notified. */
  on?: string;
  /** With `on`: run on every notification, not only the first. */
  repeat?: boolean;
}

/** A request on the EVENT list. */
export interface DeferredInfo {
  id: string;
  op: DeferrableOp;
  args: Record<string, unknown>;
  at?: number;
  every?: number;
  on?: string;
  repeat: boolean;
  owner: string;
  created: number;
  runs: number;
  /** When it runs next (timed requests). */
  next?: number;
  lastError?: string;
}

/** COMPRIMS: the default primitives of AMSs loaded from now on (links made before keep theirs). */
export interface Comprims {
  sendPrimitive?: string;
  receivePrimitive?: string;
}

/** QUERY's answer. */
export interface CapsQuery {
  loaded: AmsInfo[];
  active: string[];
  suspended: string[];
  /** The EVENT list: requests waiting for a time or an event. */
  event: DeferredInfo[];
  references: Record<string, number>;
  mapAreas: MapArea[];
  comprims: Comprims;
  counters: { discarded: number; handedOver: number; storeErrors: number; requestsFailed: number };
  /** The fabric's kept hosts, where a REPLACE's new AMS may start warm (`FabricOptions.reuseHosts`). */
  hosts: HostPoolInfo;
}

/** Emitted by {@link Caps} (`'event'`) on every transition. */
export type CapsEvent =
  | { type: 'list'; ams: string; from: AmsState | 'none'; to: AmsState | 'none' }
  | { type: 'loaded'; ams: string; location: string; forced: boolean }
  | { type: 'executed'; ams: string; instance: string; refs: number }
  | { type: 'released'; ams: string; refs: number }
  | { type: 'terminated'; ams: string; instance: string; discarded: number }
  | { type: 'unloaded'; ams: string }
  | { type: 'suspended'; ams: string }
  | { type: 'resumed'; ams: string }
  | {
      type: 'replaced';
      old: string;
      new: string;
      handedOver: number;
      pauseMs: number;
      disposition: Disposition;
      /** Set when `state` was asked and could not be carried (the REPLACE itself completed). */
      stateError?: string;
    }
  | { type: 'inserted'; ams: string; from: string; to: string; pauseMs: number }
  | { type: 'extracted'; ams: string; from: string; to: string; pauseMs: number; disposition: Disposition }
  | { type: 'dumped'; ams: string; map: string; bytes: number }
  | { type: 'mapLoaded'; ams: string; map?: string }
  | { type: 'mapFreed'; map: string }
  | { type: 'comprims'; sendPrimitive?: string; receivePrimitive?: string }
  | { type: 'deferred'; request: string; op: DeferrableOp }
  | { type: 'cancelled'; request: string }
  | { type: 'notified'; event: string; ran: string[] }
  | { type: 'requestRan'; request: string; op: DeferrableOp }
  | { type: 'requestFailed'; request: string; op: DeferrableOp; code: string; message: string }
  | { type: 'storeError'; file: string; line?: number; code: string; message: string };
