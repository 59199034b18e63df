/**
 * What the parts of CAPS share without importing the facade (`caps.ts`):
 * the AMS record, and {@link CapsCore}, the face of {@link Caps} that the
 * link surgery and the deferral use.
 *
 * @module
 */
import type { Fabric } from '../../fabric/fabric.js';
import type { AmsStats } from './ams.js';
import type {
  AmsInfo,
  AmsState,
  BetweenOptions,
  CapsEvent,
  Deallocation,
  ExecuteOptions,
  LoadOptions,
  MapArea,
  ReplaceOptions,
} from './types.js';

/** @internal One AMS as CAPS keeps it. */
export interface AmsRec {
  name: string;
  location: string;
  input: LoadOptions;
  state: AmsState;
  refs: number;
  scope: 'public' | 'private';
  /** Instance ids: the point itself (public) or one derived point per private execution. */
  instances: string[];
  deallocation: Deallocation;
  standby: boolean;
  loads: number;
  privateSeq: number;
}

/** @internal The operations and internals of a CAPS that its parts call. */
export interface CapsCore {
  readonly fabric: Fabric;
  readonly counters: { discarded: number; handedOver: number; storeErrors: number; requestsFailed: number };
  rec(name: string): AmsRec;
  amsRequest<T = AmsStats>(instance: string, op: string, extra?: Record<string, unknown>): Promise<T>;
  emitEvent(e: CapsEvent): void;
  load(options: LoadOptions): Promise<AmsInfo>;
  execute(name: string, options?: ExecuteOptions): Promise<{ instance: string; refs: number }>;
  replace(
    oldName: string,
    newName: string,
    options?: ReplaceOptions,
  ): Promise<{ handedOver: number; pauseMs: number; stateError?: string }>;
  insert(ams: string, options: BetweenOptions): Promise<{ pauseMs: number }>;
  extract(ams: string, options: BetweenOptions): Promise<{ pauseMs: number }>;
  suspend(name: string): Promise<void>;
  resume(name: string): Promise<void>;
  terminate(name: string, options?: { instance?: string }): Promise<{ refs: number; ended: string[] }>;
  dumpMap(name: string, options?: { persistence?: 'terminate' | 'load'; owner?: string }): Promise<MapArea>;
  loadMap(name: string, map: { id?: string; state?: unknown; owner?: string }): Promise<void>;
}
