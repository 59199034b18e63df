/**
 * Who may do what on the daemon: the checks its handlers make before acting.
 * The asker is the principal its credential names (never a field it sends);
 * the owner of a point, link or primitive is the principal that made it.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';
import type { Principal } from '../directory/index.js';

/** The ops only the administrator may send. */
export const ADMIN_OPS: ReadonlySet<string> = new Set([
  'stop',
  'primitive.add',
  'primitive.rm',
  'principal.add',
  'principal.rm',
  'principal.ls',
]);

/** `AMIX_ERR_UNAUTHORIZED` `{ op, principal }` unless `as` is the administrator. */
export function requireAdmin(as: Principal, op: string): void {
  if (as.admin) return;
  throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `only the administrator may ${op} (you are ${as.owner})`, {
    details: { op, principal: as.owner },
  });
}

/** What an owner check is about: a point, a link or a primitive, by name or id. */
export type Owned = { point: string } | { link: string } | { primitive: string };

/**
 * `AMIX_ERR_NOT_OWNER` `{ point | link | primitive, owner, op }` unless `as`
 * is the administrator or `owner`. An unrecorded owner (undefined: a link
 * a peer made, say) leaves it to the administrator.
 */
export function requireOwner(as: Principal, what: Owned, owner: string | undefined, op: string): void {
  if (as.admin || (owner !== undefined && owner === as.owner)) return;
  const [kind, name] = Object.entries(what)[0] as [string, string];
  throw new AmixError(
    ErrorCode.AMIX_ERR_NOT_OWNER,
    `only the owner of ${kind} ${JSON.stringify(name)} (${owner ?? 'the administrator'}) or the administrator may ${op} it`,
    { details: { ...what, ...(owner !== undefined ? { owner } : {}), op } },
  );
}
