/**
 * The extension point for the services above the daemon (`lib/services/`):
 * a {@link DaemonService} adds ops to amixd's control protocol and hears of
 * containers that go. The daemon cannot import those services (they are a
 * layer above it); whoever starts it (bin/amixd, or an embedding
 * application) hands them in `DaemonOptions.services`.
 *
 * A service op is called with the caller's container and principal, taken
 * from the connection's credential (never from a field it sends); the ops
 * are reachable after hello only, like every other op.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';
import type { Fabric } from '../fabric/fabric.js';
import type { Peering } from '../remote/peering.js';

/** Who is asking: the plugged container and its principal. */
export interface ServiceCaller {
  /** The container's id (`c1`, ...). */
  readonly container: string;
  /** Its principal's name. */
  readonly owner: string;
  /** Whether it is the administrator. */
  readonly admin: boolean;
  /** Set when the caller is a peer daemon (its id, authenticated by its key); container and owner are then `peer:<id>`. */
  readonly peer?: string;
}

/** What the daemon gives a service when it starts. */
export interface ServiceHost {
  /** The daemon's fabric: a service's points run there. */
  readonly fabric: Fabric;
  /** The daemon's directory (owner-only): a service's state files go here. */
  readonly dir: string;
  /** The daemon's log. */
  readonly log: (line: string) => void;
  /** The peer daemons and whether each is up (none without peering). */
  peers(): Array<{ id: string; up: boolean }>;
  /** Ask peer daemon `peer` for one of its service ops (answered by its services with this daemon as the caller). */
  peerRequest(peer: string, op: string, args?: Record<string, unknown>): Promise<unknown>;
}

/** A service plugged into amixd. */
export interface DaemonService {
  /** Its name, for logs. Its ops should start with it (`nee.create`). */
  readonly name: string;
  /** Ops by name; each gets the request's arguments and its caller, and answers a JSON value. */
  readonly ops: Readonly<Record<string, (args: Record<string, unknown>, caller: ServiceCaller) => unknown>>;
  /** Called once at daemon start, before it listens. A throw fails the start. */
  start?(host: ServiceHost): Promise<void> | void;
  /** A container went away (its connection closed). */
  unplugged?(caller: ServiceCaller): Promise<void> | void;
  /** Called at daemon stop, before the fabric closes. */
  close?(): Promise<void> | void;
}

/** The {@link ServiceHost} of a daemon: its peers and their service ops come from its peering (read when asked: it starts later). */
export function serviceHostOf(
  fabric: Fabric,
  dir: string,
  log: (line: string) => void,
  peering: () => Peering | undefined,
): ServiceHost {
  return {
    fabric,
    dir,
    log,
    peers: () => (peering()?.status().peers ?? []).flatMap((p) => (p.id ? [{ id: p.id, up: p.state === 'up' }] : [])),
    peerRequest: (peer, op, args) =>
      peering()?.serviceRequest(peer, op, args) ??
      Promise.reject(new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, 'this daemon does not peer')),
  };
}
