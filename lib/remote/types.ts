/**
 * What the peering modules share: the options and the host they are given,
 * the shapes they report (peer, conduit stats, remote link, status, events),
 * the peer op table, the control channel's constants, and small helpers.
 *
 * @module
 */
import type { PointView } from '../directory/index.js';
import { parsePointId } from '../directory/index.js';
import { MAX_CONTROL_FRAME, PROTOCOL_VERSION } from '../core/controlCodec.js';
import { AmixError, ErrorCode, describe, peerLostError } from '../core/errors.js';
import type { Empty } from '../fabric/agent.js';
import type { Direction } from '../fabric/point.js';
import type { Directory } from '../directory/index.js';
import type { Fabric, LinkInfo } from '../fabric/fabric.js';
import type { CurveKeyPair } from '../../primitives/zeromq/keys.js';
import { maxFrameBytesFor, type ZeromqAddress } from '../../primitives/zeromq.js';

/** A daemon to dial: its `--listen` endpoint, and its public key when it uses CURVE. */
export interface PeerConfig {
  endpoint: string;
  publicKey?: string;
}

/** Options for {@link Peering}. */
export interface PeeringOptions {
  /** Control endpoint to bind (`tcp://HOST:PORT`). Default `tcp://127.0.0.1:*`. */
  listen?: string;
  /** Daemons to dial. */
  peers?: PeerConfig[];
  /** This daemon's CURVE key pair. With it, both receiving ends are CURVE servers. */
  keys?: CurveKeyPair;
  /**
   * The daemons allowed to peer; required with `keys` (anything else is
   * refused). Each entry is a public key, or `"<key> <daemon id>"` binding
   * the key to the id (an {@link AllowList} keeps both). A key without an id
   * is pinned to the id of its first accepted hello (kept in `peering.json`).
   */
  allow?: Iterable<string>;
  /**
   * Peer without CURVE keys: every process that can reach the endpoints (on
   * loopback: every local user) can act as a peer. Logs a warning. Without
   * it, peering needs `keys` and `allow`. Default false.
   */
  insecure?: boolean;
  /** How long a request to a peer may take. Default 10000 ms. */
  requestTimeoutMs?: number;
  /**
   * How long a request or envelope from a daemon that is still saying hello
   * waits for that hello to finish before it is refused. Default 10 s.
   */
  helloGraceMs?: number;
  /**
   * Add each peer's directory to this daemon's federation (its lookups and
   * queries forwarded there). Default true; cluster mode turns it off, as
   * its local replica answers them.
   */
  federate?: boolean;
}

/** What a daemon lends its peering. */
export interface PeeringHost {
  readonly fabric: Fabric;
  readonly directory: Directory;
  /** The daemon's directory (for `peering.json`). */
  readonly stateDir: string;
  log(line: string): void;
  broadcast(e: RemoteEvent): void;
  /**
   * A peer's request for a service op (`PeerOps.service`): the daemon hands
   * it to its services with the peer as the caller. Absent: refused.
   */
  service?(peer: string, op: string, args: Record<string, unknown>): Promise<unknown>;
}

/** A conduit's counters. */
export interface ConduitStats {
  /** Envelopes sent to the peer. */
  sent: number;
  /** Envelopes from the peer delivered to local points. */
  received: number;
  /** Envelopes from the peer refused (unknown receiver, or its link would not open). */
  rejected: number;
  /** Envelopes whose sequence skipped ahead of the one expected (dropped; the flow's sender is asked to re-send from the one expected). */
  gaps: number;
  /** Envelopes this daemon re-sent to the peer (its flows' unacknowledged messages, after the peer restarted or asked). */
  resent: number;
  /** Envelopes that arrived again and were dropped (also after this daemon restarted: the filter is kept in `DIR/delivered.json`). */
  duplicates: number;
  /**
   * Re-sent envelopes delivered to a point (after this daemon restarted, or
   * a re-send it asked for): the point may have taken them before (after
   * the last report of what it took), so these are the possible duplicates,
   * counted (an upper bound).
   */
  redelivered: number;
  /** Envelopes and requests on this peer's connections whose sender named another daemon (dropped). */
  spoofed: number;
}

/** One peer as `amix daemon status` shows it. */
export interface PeerInfo {
  /** The peer's directory id (its points' identifiers start with it). */
  id: string | undefined;
  /** The endpoint dialled, or the peer's control endpoint. */
  endpoint: string | undefined;
  state: 'connecting' | 'up' | 'down' | 'refused';
  /** The peer's CURVE public key (keyed peering). */
  key?: string;
  /** The last refusal or loss, with its code. */
  error?: { code: string; message: string };
  stats: ConduitStats;
  links: string[];
}

/** A remote link as amixd returns it: a {@link LinkInfo} plus the peer. */
export interface RemoteLinkInfo extends LinkInfo {
  remote: {
    peer: string;
    flows: Array<{
      sender: string;
      receiver: string;
      local: 'out' | 'in';
      link?: string;
      /** A direct flow (`amix connect --direct`): its local fabric link, straight between the two points' processes. */
      direct?: string;
      /** Outgoing: messages sent that the peer has not reported taken (kept for re-sending; at most `FLOW_WINDOW`, 8192). */
      unacked?: number;
      /** Incoming: messages from the peer waiting for room in the local link. */
      parked?: number;
    }>;
  };
}

/** What `peers` (and the `peering` part of the daemon's status) answers. */
export interface PeeringStatus {
  /** This daemon's directory id. */
  id: string;
  control?: string;
  data?: string;
  dataAddress?: ZeromqAddress;
  /** True when peering runs without CURVE keys (`--insecure`). */
  insecure: boolean;
  /** Envelopes that did not decode. */
  badEnvelopes: number;
  /** Frames the zeromq receiving ends dropped (outside the primitive's framing, beyond credit, too many sessions). */
  badFrames: number;
  /** Envelopes from no known peer. */
  unknownSender: number;
  /** Envelopes and requests whose sender named a daemon other than the peer whose connection carried them. */
  spoofedSenders: number;
  /** The duplicate filter kept in `delivered.json`: flows kept, and flows not kept because it was full (filtered in memory only). */
  delivered: { flows: number; untracked: number };
  /** Control messages dropped before a hello bound their sender (not a hello, or too many hellos at once). */
  unhelloed: number;
  /** Clients the CURVE allow-list refused: distinct keys (or addresses, for a client without a key). */
  refused: number;
  /** Failed handshakes at the receiving ends, every attempt (a refused client retries on its own). */
  refusedHandshakes: number;
  /** The refused clients, most recent last (at most {@link MAX_REFUSAL_ROWS}). */
  refusedKeys: Array<{ key?: string; address: string; mechanism: string; attempts: number }>;
  /** Hellos refused (`AMIX_ERR_PEER_REFUSED`): how many in all. */
  refusedHellos: number;
  /** Refused hellos by claimed peer id and key, with the reason (at most {@link MAX_REFUSAL_ROWS}). */
  refusals: Array<{ peer: string; key?: string; reason: string; count: number }>;
  /** Keyed peering: per allowed key, its id (named or pinned) and the endpoints only that key may use. */
  slots?: Array<{
    key: string;
    id?: string;
    control: string;
    data: string;
    dataAddress?: ZeromqAddress;
    /** Messages that came with this key but named another daemon as sender. */
    spoofed: number;
    /** Hellos that came with (or claimed) this key and were refused. */
    refusedHellos: number;
  }>;
  peers: PeerInfo[];
}

/** How many rows `refusedKeys` and `refusals` keep. */
export const MAX_REFUSAL_ROWS = 64;

/** The events peering raises (through {@link PeeringHost.broadcast}). */
export type RemoteEvent =
  | { type: 'remote.linkConnected'; link: string; peer: string; a: string; b: string; direction: Direction }
  | { type: 'remote.linkDisconnected'; link: string; peer: string }
  | { type: 'remote.linkFailed'; link: string; peer: string; error: Error }
  /** A direct flow of the link was made again: the peer came back as a new process (what the old halves held is lost). */
  | { type: 'remote.directReopened'; link: string; peer: string; sender: string; receiver: string; direct: string }
  | { type: 'remote.peerRefused'; endpoint: string; error: Error; peer?: string; key?: string }
  | { type: 'remote.peerUp'; peer: string; endpoint: string; links: string[] }
  | { type: 'remote.peerLost'; peer: string; links: string[]; error: Error }
  | { type: 'remote.badEnvelope'; plane: string; error: Error }
  | ({ type: 'remote.rejected'; peer: string | undefined } & Partial<RejectedBody>);

/** The body of a `rejected` event a daemon sends the peer whose envelopes it refused. */
export interface RejectedBody {
  sender: string;
  receiver: string;
  count: number;
  code: string;
  message: string;
}

/**
 * What a daemon says in its hello to a peer, and answers to one. Keyed, the
 * addresses are the ones reserved for the peer's key, `key` is the sender's
 * public key and `proof` its {@link proveKey} of {@link helloText} for the
 * receiver's key.
 */
export interface PeerHello {
  id: string;
  version: number;
  control: ZeromqAddress;
  data: ZeromqAddress;
  key?: string;
  proof?: string;
  /**
   * The sending daemon's incarnation (random per start): a receiver keeps
   * its duplicate filter across its own restart for the same epoch only.
   */
  epoch?: string;
}

/** What a hello's proof covers: the id and the addresses the peer will be reached at. */
export function helloText(h: PeerHello): string {
  return `hello\0${h.version}\0${h.id}\0${h.control.endpoint}\0${h.data.endpoint}`;
}

/** A flow between two daemons: from point `sender` to point `receiver`. */
export interface FlowArgs {
  sender: string;
  receiver: string;
}

/**
 * The events of per-flow credit between daemons (fire and forget, on the
 * control channel). `flowAcks`, from a flow's receiving daemon: per flow
 * `[sender, receiver, taken]`, every message below `taken` was taken by its
 * point (the sender forgets them; its credit is `taken + FLOW_WINDOW`).
 * `resend`, from the receiving daemon too: re-send the flow from `from`
 * (-1: from the first message not reported taken), marked with `base`.
 */
export interface FlowEvents {
  flowAcks: { flows: Array<[string, string, number]> };
  resend: FlowArgs & { from: number };
}

/** How far a federated resolve or query may still go, and where it has been. */
export interface Forward {
  hops?: number | undefined;
  visited?: readonly string[] | undefined;
}

/** The op table between peer daemons (answered by `lib/remote/handlers.ts`). */
export interface PeerOps {
  /** Bind the sender as a peer (the only op before which nothing else is taken). */
  hello: { args: PeerHello; result: PeerHello };
  /** Find a point by name or identifier here (or, with hops left, further on). */
  resolve: { args: { nameOrId: string } & Forward; result: PointView | null };
  /** Run a directory query here (and further on). */
  query: {
    args: { expr: string; limit?: number | undefined; offset?: number | undefined } & Forward;
    result: { points: readonly PointView[]; more: boolean };
  };
  /**
   * The peer will send `sender` -> our `receiver`: open the receiver's link
   * now. `from`: the flow's first message not reported taken (what it sends
   * first, or re-sends); `sent`: its next (what this side may have had of
   * it before a restart lies below).
   */
  open: { args: FlowArgs & { from?: number; sent?: number }; result: Empty };
  /** Our point `sender` should send to the peer's `receiver`; `from` as in `open`. */
  openOut: { args: FlowArgs; result: LinkInfo & { from?: number } };
  /** Take a flow down at both halves here. */
  close: { args: FlowArgs; result: Empty };
  /** Suspend a flow whose sender is here. */
  suspend: { args: FlowArgs; result: Empty };
  /** Resume a flow whose sender is here. */
  resume: { args: FlowArgs; result: Empty };
  /** A service op of this daemon's (`lib/control/services.ts`), asked by the peer as itself. */
  service: { args: { op: string; args?: Record<string, unknown> }; result: unknown };
  /**
   * Direct (`lib/remote/direct.ts`): the peer's point `sender` will send
   * straight to our `receiver`; open a ZeroMQ receiving end in the
   * receiver's process that lets in `clientKey` alone. `link` is the peer's
   * link (closed with `directClose` when ours ends).
   */
  directOpen: {
    args: FlowArgs & { clientKey: string; link: string };
    result: { address: ZeromqAddress; link: string };
  };
  /** Direct: our point `sender` should send straight to the peer's `receiver` (we drive it, with `directOpen`). */
  directOut: { args: FlowArgs; result: { link: string } };
  /** Direct: the peer's side of a direct link ended; end ours, `link` (one this peer set up). */
  directClose: { args: { link: string }; result: Empty };
}

/** The largest control message between daemons (a control frame plus its envelope). */
export const CTL_MAX_BYTES = MAX_CONTROL_FRAME + 4096;
/** The largest message the keyed control endpoint (`--listen`) takes: a hello, before anything is known of the sender. */
export const FRONT_MAX_BYTES = 8 * 1024;
/** Messages one session may have pending at the keyed `--listen` endpoint. */
export const FRONT_MAXMSG = 8;
/** Sessions the keyed `--listen` endpoint keeps (each at most FRONT_MAXMSG x FRONT_MAX_BYTES). */
export const FRONT_MAX_SESSIONS = 64;
/** Sessions a slot's receiving end keeps: its one key needs one per sending end, a few more across restarts. */
export const SLOT_MAX_SESSIONS = 16;
/** Hellos being bound at once; more are dropped (and counted) until some finish. */
export const MAX_HELLOS_IN_FLIGHT = 16;
/** Requests of one peer waiting for its hello; more are refused. */
export const MAX_HELLO_WAITERS = 64;
/** Control channels hold few messages; requests are small and answered quickly. */
export const CTL_MAXMSG = 256;
/** The control channel's credit grant threshold. */
export const CTL_MINMSG = 64;
/** Receiver identifier of control envelopes sent before the peer's id is known. */
export const ANY = '*';
/**
 * The data receiving ends' window (messages per sending daemon, on the
 * wire): the data loop never waits on a local link (each flow has its own
 * credit, {@link FLOW_WINDOW}), so this only bounds what is in transit.
 */
export const DATA_MAXMSG = 8192;
/**
 * Each flow's credit, end to end: a sending daemon has at most this many
 * messages of one flow that the receiving daemon has not reported taken by
 * its point, and keeps them all for re-sending. It bounds what a stalled
 * point holds up at either daemon, and nothing of other flows waits on it.
 */
export const FLOW_WINDOW = 8192;
/**
 * And at most this many bytes of payload per flow (whichever comes first). It must cover a flow's
 * rate times the time to its acknowledgement ({@link FLOW_ACK_MS} plus the round trip): 4 MiB is
 * 20 ms at 200 MB/s. Each daemon on the path holds up to about this much of a busy flow (kept for
 * re-sending at the sender, parked at the receiver), so it is also what a flow costs in memory:
 * at 8 MiB the receiving daemon grew by 81 MB under `bench remote`'s 4 KiB rows, at 4 MiB by 34.
 */
export const FLOW_WINDOW_BYTES = 4 * 1024 * 1024;
/**
 * At most this many messages wait in the sending daemon's end of a flow's local link (the stand-in for
 * the remote point), in front of the flow's pump; a remote point's larger `maxmsg` is cut to it there
 * (its own end, at the receiving daemon, keeps its `maxmsg`). What waits there is not sent yet: the
 * flow's window ({@link FLOW_WINDOW_BYTES}) is what keeps a flow going across the hop. With the default
 * 4096, 4 KiB messages held 16 MiB per busy flow in that queue; 1024 measured no slower in
 * `bench remote` and about 10 MB less at the sending daemon's peak.
 */
export const STAND_IN_MAXMSG = 1024;
/** How often a receiving daemon reports what its points took, while some flow moved (ms). */
export const FLOW_ACK_MS = 5;
/** How long a receiving daemon waits before asking a flow's sender again to re-send (ms). */
export const FLOW_RESEND_ASK_MS = 200;
/** Envelopes per turn of the data loop and of a conduit pump. */
export const BATCH = 256;
/** What a daemon's id (its directory id) may look like on the wire. */
export const DAEMON_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Insecure: how many peer ids `peering.json` remembers (whose data may come before their hello after a restart). */
export const MAX_KNOWN_IDS = 256;
/** How long an id that was waited for in vain is not waited for again. */
export const STRANGER_TTL_MS = 60_000;

/** What a hello's `epoch` looks like. */
export const EPOCH = /^[0-9a-f]{8,64}$/;

/** Check a peer's hello (untrusted input) and return it typed. */
export function checkHello(a: unknown): PeerHello {
  const h = a as Partial<PeerHello> | null;
  if (!h || typeof h.id !== 'string' || !DAEMON_ID.test(h.id))
    throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, 'peer hello without a directory id');
  if (h.version !== PROTOCOL_VERSION)
    throw new AmixError(
      ErrorCode.AMIX_ERR_PROTOCOL,
      `peer ${h.id} speaks protocol ${describe(h.version)}, this daemon ${PROTOCOL_VERSION}`,
    );
  for (const k of ['control', 'data'] as const) {
    const x = h[k];
    if (!x || typeof x !== 'object' || typeof x.endpoint !== 'string')
      throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `peer ${h.id} hello without a ${k} address`);
  }
  if ((h.key !== undefined && typeof h.key !== 'string') || (h.proof !== undefined && typeof h.proof !== 'string'))
    throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `peer ${h.id} hello with a key or proof that is not a string`);
  if (h.epoch !== undefined && (typeof h.epoch !== 'string' || !EPOCH.test(h.epoch)))
    throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `peer ${h.id} hello with a malformed epoch`);
  return h as PeerHello;
}

/**
 * The address of a peer's `--listen` receiving end, from its endpoint and
 * key (all else is fixed): keyed, the small hello-only endpoint; without a
 * key, the whole control channel.
 */
export function controlAddress(endpoint: string, publicKey?: string): ZeromqAddress {
  if (publicKey)
    return {
      endpoint,
      serverPublicKey: publicKey,
      maxmsg: FRONT_MAXMSG,
      minmsg: FRONT_MAXMSG / 2,
      maxMessageBytes: FRONT_MAX_BYTES,
      maxFrameBytes: maxFrameBytesFor(FRONT_MAX_BYTES, FRONT_MAX_BYTES),
      discard: 'block',
    };
  return {
    endpoint,
    maxmsg: CTL_MAXMSG,
    minmsg: CTL_MINMSG,
    maxMessageBytes: CTL_MAX_BYTES,
    maxFrameBytes: maxFrameBytesFor(CTL_MAX_BYTES),
    discard: 'block',
  };
}

/** The key of flow `sender` -> `receiver` in a conduit's maps. */
export function key(sender: string, receiver: string): string {
  return `${sender}>${receiver}`;
}

/** The daemon (directory id) behind a point identifier, or a bare daemon id as control envelopes carry it. */
export function dirOf(id: string): string | undefined {
  return parsePointId(id)?.directoryId ?? (DAEMON_ID.test(id) ? id : undefined);
}

/** Zeroed conduit counters. */
export function newConduitStats(): ConduitStats {
  return { sent: 0, received: 0, rejected: 0, gaps: 0, resent: 0, duplicates: 0, redelivered: 0, spoofed: 0 };
}

/** `AMIX_ERR_PEER_LOST` for a conduit whose peer is not up. */
export function peerLost(c: { id: string; state: string; error: AmixError | undefined }): AmixError {
  return peerLostError(`peer daemon ${c.id} is ${c.state}`, { peer: c.id, state: c.state }, c.error);
}

/** The host part of a `tcp://HOST:PORT` endpoint; `AMIX_ERR_INVALID_ARG` if it is not one. */
export function hostOf(endpoint: string): string {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+|\*)$/.exec(endpoint);
  if (!m)
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `a peering endpoint must look like tcp://HOST:PORT (got ${describe(endpoint)})`,
      { details: { endpoint } },
    );
  return m[1]!;
}

/** Parse and check a `tcp://HOST:PORT` peering endpoint (for the CLI and config). */
export function checkPeerEndpoint(endpoint: string): string {
  hostOf(endpoint);
  return endpoint;
}
