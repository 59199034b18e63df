/**
 * What the fabric needs of a point host, and where a point may be placed
 * other than here. A {@link HostHandle} is the host of a point the fabric
 * runs itself (a worker thread of its process, or a child process); a
 * placement lets the owner of the fabric (amixd) run a point's instances in
 * another process it controls (a container, whose agent starts them: the
 * seed's intra_p point, 002 ¶58) behind the same contract.
 *
 * @module
 */
import type { HostExit, HostHandle } from './hostHandle.js';
import type { HostEvent } from './hostProtocol.js';
import type { PointRegistration } from './point.js';
export type { HostExit } from './hostHandle.js';

/**
 * @internal A running point host as the supervisor drives it: control
 * requests (the host's own ops and the agent's link commands), its events
 * and exit, and the two ways to stop it. {@link HostHandle} is one.
 */
export interface PointHost {
  /** The process the host runs in. */
  readonly pid: number | undefined;
  readonly hasExited: boolean;
  readonly exited: Promise<HostExit>;
  /** A control request, as {@link HostHandle.request}. */
  readonly request: HostHandle['request'];
  /** Stop it by signal (a process: SIGTERM, then SIGKILL after `graceMs`). */
  kill(graceMs: number): Promise<HostExit>;
  /** Stop it at once. */
  forceKill(): Promise<HostExit>;
  on(event: 'event', listener: (e: HostEvent) => void): unknown;
  on(event: 'exit', listener: (e: HostExit) => void): unknown;
  on(event: 'hostError', listener: (e: Error) => void): unknown;
}

/**
 * Where a point's instances run, when not in the fabric's own hosts. Given
 * as {@link FabricOptions.placement}.
 */
export interface HostPlacement {
  /**
   * The host for instance `id` of `reg` when it is placed elsewhere (started
   * there), or undefined to run it here as usual. Throws when the place is
   * gone (a restart then counts as a death).
   */
  host(reg: PointRegistration, id: string): PointHost | undefined;
  /**
   * The process `reg`'s instances run in when it is not the fabric's own
   * (e.g. a container id), else undefined. Two points in different places
   * are linked only over a primitive that crosses processes.
   */
  where(reg: PointRegistration): string | undefined;
}
