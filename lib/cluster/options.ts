/**
 * Cluster mode's options and their checks (`amixd --cluster`, `cluster` in
 * `--config`). No NATS code here: this module is loaded by every daemon.
 *
 * @module
 */
import { invalidArg } from '../core/errors.js';

/** How a daemon joins a cluster (see `lib/cluster/cluster.ts`). */
export interface ClusterOptions {
  /** NATS servers, `nats://HOST:PORT` (the client tries each and fails over between them). */
  servers: string[];
  /** A NATS credentials file (JWT and nkey seed, `nsc` output). */
  creds?: string;
  /** A file holding an nkey seed (`SU...`) to authenticate with. */
  nkey?: string;
  /** A NATS token. */
  token?: string;
  /** Bucket replicas: default 3 when 3 or more servers are given, else 1. */
  replicas?: number;
  /** How often this daemon's heartbeat is written. Default 1000 ms. */
  heartbeatMs?: number;
  /** A member whose heartbeat is not seen for this long is gone. Default 3000 ms. */
  goneAfterMs?: number;
  /** The buckets' name prefix, so clusters can share a NATS system. Default `amix`. */
  prefix?: string;
}

/** Checked options with their defaults filled in. */
export type CheckedClusterOptions = Required<
  Pick<ClusterOptions, 'servers' | 'replicas' | 'heartbeatMs' | 'goneAfterMs' | 'prefix'>
> &
  Pick<ClusterOptions, 'creds' | 'nkey' | 'token'>;

const SERVER_RE = /^(nats|tls):\/\/[^\s/]+:[0-9]{1,5}$/;

/** `nats://a:4222,nats://b:4222` (or an array of them) as a list; `AMIX_ERR_INVALID_ARG` for a malformed one. */
export function parseServers(spec: string | readonly string[]): string[] {
  const list = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((s) => String(s).trim()).filter(Boolean);
  if (list.length === 0) throw invalidArg('cluster.servers', 'must name at least one nats://HOST:PORT', spec);
  for (const s of list)
    if (!SERVER_RE.test(s)) throw invalidArg('cluster.servers', 'each must be nats://HOST:PORT (or tls://)', s);
  return list;
}

/** Check `o` and fill in the defaults. */
export function checkClusterOptions(o: ClusterOptions): CheckedClusterOptions {
  if (o === null || typeof o !== 'object') throw invalidArg('cluster', 'must be an object', o);
  const servers = parseServers(o.servers);
  const int = (name: string, v: unknown, dflt: number, min: number): number => {
    const n = v === undefined ? dflt : v;
    if (!Number.isSafeInteger(n) || (n as number) < min)
      throw invalidArg(`cluster.${name}`, `must be an integer of at least ${min}`, v);
    return n as number;
  };
  const heartbeatMs = int('heartbeatMs', o.heartbeatMs, 1000, 50);
  const goneAfterMs = int('goneAfterMs', o.goneAfterMs, 3000, 2 * heartbeatMs);
  const replicas = int('replicas', o.replicas, servers.length >= 3 ? 3 : 1, 1);
  const prefix = o.prefix ?? 'amix';
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(prefix))
    throw invalidArg('cluster.prefix', 'must be 1 to 32 of A-Z a-z 0-9 _ -', prefix);
  for (const k of ['creds', 'nkey', 'token'] as const)
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === ''))
      throw invalidArg(`cluster.${k}`, 'must be a non-empty string', o[k]);
  return {
    servers,
    replicas,
    heartbeatMs,
    goneAfterMs,
    prefix,
    ...(o.creds !== undefined ? { creds: o.creds } : {}),
    ...(o.nkey !== undefined ? { nkey: o.nkey } : {}),
    ...(o.token !== undefined ? { token: o.token } : {}),
  };
}
