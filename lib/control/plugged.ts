/**
 * A plugged container as the daemon keeps it: its connection, its principal
 * (from its credential), and what it holds (links it connected, ephemeral
 * points it registered), with the views the handlers need of it.
 *
 * @module
 */
import type { Principal } from '../directory/index.js';
import type { AgentOps } from '../fabric/agent.js';
import type { ControlConnection } from './connection.js';
import type { ContainerInfo, ContainerOps } from './ops.js';
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
