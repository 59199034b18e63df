/**
 * A plugged container as the daemon keeps it: its connection, its principal
 * (from its credential), and what it holds (links it connected, ephemeral
 * points it registered), with the views the handlers need of it.
 *
 * @module
 */
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import type { Principal } from '../directory/index.js';
import type { AgentOps } from '../fabric/agent.js';
import type { ControlConnection } from './connection.js';
import type { ContainerInfo, ContainerOps, HelloArgs } from './ops.js';
import { PROTOCOL_VERSION } from './protocol.js';
import type { ServiceCaller } from './services.js';

/** The daemon's side of a container's connection: it sends the container's agent link commands. */
export type ContainerConnection = ControlConnection<AgentOps & ContainerOps>;

/** One plugged container. */
export interface Plugged {
  id: string;
  name: string;
  owner: string;
  admin: boolean;
  pid: number;
  conn: ContainerConnection;
  links: Set<string>;
  /** Points registered with `ephemeral`: ended when the container goes. */
  ephemeral: Set<string>;
  subscribed: boolean;
}

/** The principal a container acts as, for the directory's and the access checks. */
export function principal(c: Plugged): Principal {
  return { owner: c.owner, admin: c.admin };
}

/** A container as `daemon status` lists it. */
export function containerInfo(c: Plugged): ContainerInfo {
  return {
    id: c.id,
    name: c.name,
    owner: c.owner,
    admin: c.admin,
    pid: c.pid,
    links: [...c.links],
    points: [...c.ephemeral],
  };
}

/** The caller as a service op sees it. */
export function caller(c: Plugged): ServiceCaller {
  return { container: c.id, owner: c.owner, admin: c.admin };
}

/**
 * The checks of a hello, before anything is held for the client: a
 * principal for its token (else `AMIX_ERR_UNAUTHORIZED`, and the connection
 * is closed after the answer), the protocol version (`AMIX_ERR_PROTOCOL`),
 * and a free slot of its kind (`AMIX_ERR_MAX_CONNECTIONS`, closed too).
 * Returns the principal.
 */
export function admitHello(
  conn: ContainerConnection,
  a: Partial<HelloArgs>,
  who: { name: string; admin: boolean } | undefined,
  plugged: Iterable<Plugged>,
  caps: { slots: number; adminSlots: number },
): { name: string; admin: boolean } {
  if (!who) {
    // Answer, then hang up: a client without a credential has no business here.
    setImmediate(() => conn.close());
    throw new AmixError(
      ErrorCode.AMIX_ERR_UNAUTHORIZED,
      "wrong or missing token: present a principal's token (DIR/token, or one from amix principal add)",
    );
  }
  if (a.version !== undefined && a.version !== PROTOCOL_VERSION) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_PROTOCOL,
      `protocol version ${describe(a.version)} is not spoken here (this daemon speaks ${PROTOCOL_VERSION})`,
    );
  }
  // The administrator's connections have slots of their own: a daemon full of containers still lets it in.
  let held = 0;
  for (const c of plugged) if (c.admin === who.admin) held++;
  const cap = who.admin ? caps.adminSlots : caps.slots;
  if (held >= cap) {
    setImmediate(() => conn.close());
    throw new AmixError(
      ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
      `all ${cap} ${who.admin ? 'administrator ' : ''}daemon slots are in use`,
      {
        details: { slots: cap },
      },
    );
  }
  return who;
}

/** A newly plugged container's record. */
export function newPlugged(
  id: string,
  conn: ContainerConnection,
  who: { name: string; admin: boolean },
  a: Partial<HelloArgs>,
): Plugged {
  return {
    id,
    conn,
    admin: who.admin,
    links: new Set(),
    ephemeral: new Set(),
    subscribed: false,
    name: typeof a.name === 'string' && a.name ? a.name : id,
    owner: who.name,
    pid: Number.isSafeInteger(a.pid) ? a.pid! : 0,
  };
}
