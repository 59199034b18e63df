/**
 * The NEEM's remote systems through amixd's peers (seed 002 ¶613-614):
 * the status task's poll of a peer's NEEM (which also brings its machine's
 * registered attributes), and environments created there on this daemon's
 * behalf. The peer answers as it would a local client whose principal is
 * this daemon (`peer:<id>`), and only if its NEECF lets this daemon in
 * (`servePeers`).
 *
 * @module
 */
import { AmixError, ErrorCode } from '../../core/errors.js';
import type { ServiceHost } from '../../control/services.js';
import { evaluateQuery, parseQuery } from '../../directory/query.js';
import type { AttributeSet, SystemEntry } from './attributes.js';
import type { Neem, NeeInfo } from './manager.js';

/** An environment this daemon created on a peer, as it keeps it. */
export interface RemoteEnv {
  peer: string;
  system: string;
  /** The local principal that created it (the peer knows only this daemon). */
  owner: string;
  container: string;
  endWithOwner: boolean;
  info: NeeInfo;
}

/** Reject with `AMIX_ERR_TIMEOUT` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `${what} did not answer in ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * The status task's poll of one remote system: ask its daemon's NEEM for
 * its own machine's attribute sets, within `ms`. Answering makes it
 * ACCESSIBLE and refreshes its sets here; anything else (not peered, down,
 * refused, too slow) makes it UNACCESSIBLE.
 */
export async function reachPeer(
  host: ServiceHost,
  neem: () => Neem | undefined,
  system: SystemEntry,
  ms: number,
): Promise<boolean> {
  const daemon = system.remote?.daemon;
  if (!daemon) return false;
  try {
    const systems = (await within(host.peerRequest(daemon, 'nee.attr.ls', {}), ms, `peer ${daemon}`)) as Array<
      SystemEntry & { accessible?: boolean }
    >;
    const n = neem();
    for (const s of systems)
      if (!s.remote)
        for (const [set, attrs] of Object.entries(s.sets)) n?.register(system.name, set, attrs as AttributeSet);
    return true;
  } catch {
    return false;
  }
}

/** The first accessible remote system (and its set) whose attributes satisfy `require`. */
export function remoteMatch(neem: Neem, require: string): { system: SystemEntry; set: string } | undefined {
  const query = parseQuery(require);
  for (const s of neem.systems()) {
    if (!s.remote || !s.accessible) continue;
    for (const [set, attributes] of Object.entries(s.sets))
      if (evaluateQuery(query, { id: s.name, name: set, owner: '', role: '', attributes })) return { system: s, set };
  }
  return undefined;
}
