/**
 * What the daemon's registration path (`lib/control/points.ts`) asks of a
 * cluster, without loading the cluster: a cluster attaches its hooks to the
 * daemon's directory when it joins, and points.ts finds them there.
 *
 * @module
 */
import type { Directory } from '../directory/index.js';

/** The cluster's part in a registration. */
export interface RegistrationHooks {
  /**
   * Claim `names` cluster-wide before the local commit (create-if-absent).
   * `AMIX_ERR_DUPLICATE` (`details.name`, `details.index`) when another
   * daemon holds one; what this call claimed is released again then.
   */
  claim(names: readonly string[]): Promise<void>;
  /** Give back names claimed for a registration the local directory then refused. */
  release(names: readonly string[]): Promise<void>;
  /** Resolves once the registrations of `ids` are in the cluster's bucket (or, on a NATS outage, queued for it). */
  published(ids: readonly string[]): Promise<void>;
}

const attached = new WeakMap<Directory, RegistrationHooks>();

/** Attach (or, with undefined, detach) the cluster hooks of `dir`. */
export function attachHooks(dir: Directory, hooks: RegistrationHooks | undefined): void {
  if (hooks) attached.set(dir, hooks);
  else attached.delete(dir);
}

/** The cluster hooks of `dir`, if it belongs to a daemon in a cluster. */
export function hooksOf(dir: Directory): RegistrationHooks | undefined {
  return attached.get(dir);
}
