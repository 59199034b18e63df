/**
 * The address of `amixd --metrics`: its options and the parse of
 * `HOST:PORT`, apart from the endpoint (`metrics.ts`) so that a daemon
 * without `--metrics` checks its options without loading the endpoint.
 *
 * @module
 */
import { invalidArg } from '../core/errors.js';

/** Where and how to serve metrics (`amixd --metrics`, `--metrics-allow-remote`). */
export interface MetricsOptions {
  /** The address to bind: a loopback one unless `allowRemote`. */
  host: string;
  /** The TCP port; 0 picks a free one (see `MetricsEndpoint.url`). */
  port: number;
  /** Allow a non-loopback `host` (anyone who can reach it reads the point, link and peer names). Default false. */
  allowRemote?: boolean;
}

/** True for a loopback host: `localhost`, 127.0.0.0/8, `::1`. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * Parse `HOST:PORT` (`[::1]:PORT` for IPv6). `AMIX_ERR_INVALID_ARG` for a
 * malformed one, and for a non-loopback host unless `allowRemote`.
 */
export function parseMetricsAddress(spec: string, allowRemote = false): MetricsOptions {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw invalidArg('--metrics', 'must be HOST:PORT (e.g. 127.0.0.1:9464; port 0: any)', spec);
  const host = (m[1] ?? m[2])!;
  if (!allowRemote && !isLoopbackHost(host))
    throw invalidArg(
      '--metrics',
      `must be a loopback address unless --metrics-allow-remote is given: anyone who reaches ${host} reads the names of points, links and peers`,
      spec,
    );
  return { host, port, ...(allowRemote ? { allowRemote } : {}) };
}
