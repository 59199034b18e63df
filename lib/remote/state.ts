/**
 * What the peering modules share: the daemon's host, the options, the
 * conduits, dials and remote links, both receiving ends, and the one
 * {@link RpcPeer} every control request between daemons goes through (its
 * transport: control envelopes on the conduits' control sending ends).
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import { PROTOCOL_VERSION, encodeControlBody, type ControlMessage } from '../core/controlCodec.js';
import { AmixError, ErrorCode } from '../core/errors.js';
import type { ChannelEvent } from '../core/primitive.js';
import { RpcPeer, type ArgsOf, type ResultOf, type RpcHandler } from '../core/rpc.js';
import type { DirectoryPeer } from '../directory/index.js';
import { LRUCache } from 'lru-cache';
import { AllowList, proveKey, type CurveKeyPair, type RefusedPeer } from '../../primitives/zeromq/keys.js';
import type { ZeromqAddress, ZeromqOptions } from '../../primitives/zeromq.js';
import type { Conduit, Dial, RemoteLink } from './conduit.js';
import { encodeEnvelope } from './envelope.js';
import type { Slot } from './slots.js';
import { DeliveryLog } from './delivered.js';
import { randomBytes } from 'node:crypto';
import {
  ANY,
  MAX_REFUSAL_ROWS,
  dirOf,
  helloText,
  peerLost,
  type PeerHello,
  type PeerOps,
  type PeeringHost,
  type PeeringOptions,
  type PeeringStatus,
} from './types.js';

/**
 * @internal Where a control message goes, or where a request came from: the
 * sending end and receiver id of a request or event; for an incoming
 * request, its sender and op, and the conduit the reply goes through (set by
 * the handler once known: a hello binds it).
 */
export interface Route {
  tx?: Channel | undefined;
  to: string;
  sender?: string;
  op?: string;
  conduit?: Conduit | undefined;
  /** Keyed: the slot whose receiving end the request came in on (undefined: the shared `--listen` end). */
  slot?: Slot | undefined;
}

/** The longest a sending end to a peer waits between reconnect attempts (zeromq's default grows to 2 s). */
export const PEER_RECONNECT_MAX_MS = 250;

/** @internal The shared state of one daemon's peering. */
export class PeeringCore {
  readonly host: PeeringHost;
  readonly opts: PeeringOptions;
  /** How long a request to a peer may take. */
  readonly timeout: number;
  /** How long a request or envelope waits for its sender's hello. */
  readonly helloGrace: number;
  readonly peers = new Map<string, Conduit>();
  readonly dials: Dial[] = [];
  readonly links = new Map<string, RemoteLink>();
  readonly dirPeers = new Map<string, DirectoryPeer>();
  /** The shared control receiving end (`--listen`); keyed, it takes hellos only. */
  ctlRx: Channel | undefined;
  /** Insecure: the one data receiving end (keyed, each {@link Slot} has its own). */
  dataRx: Channel | undefined;
  closed = false;
  /** This daemon's CURVE key pair (undefined: `--insecure`). */
  readonly keys: CurveKeyPair | undefined;
  /** The allowed keys and the ids they are bound to. */
  readonly allow: AllowList;
  /** Keyed: one slot per allowed key (see `slots.ts`). */
  readonly slots = new Map<string, Slot>();
  /** Drops and refusals, as `status()` shows them. */
  readonly counts = { badEnvelopes: 0, unknownSender: 0, spoofedSenders: 0, unhelloed: 0, refusedHellos: 0 };
  /** Clients refused at the handshake, by key (or address), most recent last. */
  readonly refusedKeys = new LRUCache<string, PeeringStatus['refusedKeys'][number]>({ max: MAX_REFUSAL_ROWS });
  /** Distinct refused clients ever seen (the LRU above forgets). */
  refusedClients = 0;
  /** Refused hellos by claimed peer, key and reason. */
  readonly refusals = new LRUCache<string, PeeringStatus['refusals'][number]>({ max: MAX_REFUSAL_ROWS });
  /** Hellos being bound now. */
  hellosInFlight = 0;
  /** Requests to and from peers. */
  readonly rpc: RpcPeer<Route>;
  /** Answers peers' requests (set by the facade once the jobs exist). */
  handler: RpcHandler<Route> = () => {
    throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'peering is not started');
  };
  /** Hears a peer's per-flow credit events (`flowAcks`, `resend`; set by the facade). */
  flowEvent: (type: string, body: Record<string, unknown>, from: Route) => void = () => {};
  /** Re-send what one of our flows to `c` kept (after `c` came back; set by the facade). */
  resendOut: (c: Conduit, k: string) => void = () => {};
  /** Make a direct flow of one of our links to `c` again if `c` is a new process (after it came back; set by the facade). */
  reopenDirect: (c: Conduit, f: RemoteLink['flows'][number]) => Promise<void> = async () => {};
  /** End the direct links with `c` whose far half lived in an earlier process of it (set by the facade). */
  directBack: (c: Conduit) => Promise<void> = async () => {};
  #lastBadLog = 0;
  /** This process's incarnation, in every hello (see {@link PeerHello.epoch}). */
  readonly epoch = randomBytes(8).toString('hex');
  /** The receiving side's duplicate filter, kept in `DIR/delivered.json`. */
  readonly delivery: DeliveryLog;

  constructor(host: PeeringHost, options: PeeringOptions) {
    this.host = host;
    this.delivery = new DeliveryLog(host.stateDir, (line) => host.log(line));
    this.opts = options;
    this.timeout = options.requestTimeoutMs ?? 10_000;
    this.helloGrace = options.helloGraceMs ?? 10_000;
    this.keys = options.keys;
    this.allow = options.allow instanceof AllowList ? options.allow : new AllowList(options.allow ?? []);
    this.rpc = new RpcPeer<Route>({
      send: (m, r) => this.#send(m, r),
      handle: (op, args, from) => this.handler(op, args, from),
      onEvent: (type, body, from) => {
        if (type === 'rejected') this.host.broadcast({ type: 'remote.rejected', peer: dirOf(from.sender!), ...body });
        else this.flowEvent(type, body, from);
      },
      timeoutError: (op, ms, r) =>
        new AmixError(
          ErrorCode.AMIX_ERR_TIMEOUT,
          `peer ${r.to === ANY ? 'daemon' : r.to} did not answer ${op} within ${ms} ms`,
          { details: { op, peer: r.to } },
        ),
      closedError: () => new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'amixd is stopping'),
    });
  }

  /** This daemon's directory id: the `sender` of its control envelopes. */
  get id(): string {
    return this.host.directory.id;
  }

  /** The control and data endpoints peers reach this daemon at. */
  get addresses(): { control: ZeromqAddress; data: ZeromqAddress } {
    return { control: this.ctlRx!.address as ZeromqAddress, data: this.dataRx!.address as ZeromqAddress };
  }

  /** What this daemon says in its hello (keyed: to the holder of `slot`'s key, with its endpoints and a proof). */
  helloArgs(slot?: Slot): PeerHello {
    if (!slot || !this.keys)
      return {
        id: this.id,
        version: PROTOCOL_VERSION,
        control: this.addresses.control,
        data: this.addresses.data,
        epoch: this.epoch,
      };
    const h: PeerHello = {
      id: this.id,
      version: PROTOCOL_VERSION,
      control: slot.ctlRx!.address as ZeromqAddress,
      data: slot.dataRx!.address as ZeromqAddress,
      key: this.keys.publicKey,
    };
    return { ...h, proof: proveKey(this.keys, slot.key, helloText(h)), epoch: this.epoch };
  }

  /** The slot bound to daemon `id` (named or pinned), if any. */
  slotById(id: string): Slot | undefined {
    for (const s of this.slots.values()) if (s.id === id) return s;
    return undefined;
  }

  /** A client the ZAP handler refused: counted once per key (or address), with its attempts. */
  onRefused(p: RefusedPeer): void {
    const k = p.publicKey ?? `${p.mechanism}@${p.address}`;
    const row = this.refusedKeys.get(k);
    if (row) {
      row.attempts++;
      return;
    }
    this.refusedClients++;
    this.refusedKeys.set(k, {
      ...(p.publicKey ? { key: p.publicKey } : {}),
      address: p.address,
      mechanism: p.mechanism,
      attempts: 1,
    });
    // Rate-limited: an attacker can make new keys faster than anyone reads logs.
    this.logLimited(
      `peering: refused a ${p.mechanism} client from ${p.address}${p.publicKey ? ` with key ${p.publicKey}` : ''}: not in the allow-list`,
    );
  }

  /** Ask peer `c`; `AMIX_ERR_PEER_LOST` at once if it is not up, or as soon as it is lost. */
  request<K extends keyof PeerOps>(c: Conduit, op: K, args: ArgsOf<PeerOps, K>): Promise<ResultOf<PeerOps, K>> {
    if (c.state !== 'up' || !c.ctlTx) return Promise.reject(peerLost(c));
    return this.rpc.request(op, args as Record<string, unknown>, {
      timeoutMs: this.timeout,
      to: { tx: c.ctlTx, to: c.id },
      tag: c.id,
    });
  }

  /** Say hello on a dialled channel, before the peer's id is known. */
  hello(tx: Channel, slot?: Slot): Promise<unknown> {
    return this.rpc.request('hello', { ...this.helloArgs(slot) }, { timeoutMs: this.timeout, to: { tx, to: ANY } });
  }

  /** Wrap a control message in an envelope and send it on `tx` to daemon `to`. */
  post(tx: Channel, to: string, m: ControlMessage): Promise<void> {
    const c = this.peers.get(to);
    const sequence = c ? c.ctlSeq++ : 0;
    return tx.send(encodeEnvelope({ sender: this.id, receiver: to, sequence, payload: encodeControlBody(m) }));
  }

  #send(m: ControlMessage, r: Route): Promise<void> | undefined {
    if (m.kind !== 'reply') return this.post(r.tx!, r.to, m);
    const c = r.conduit;
    if (!c?.ctlTx) {
      this.logLimited(`peering: cannot answer ${r.op} from ${r.sender}: no conduit to it`);
      return undefined;
    }
    return this.post(c.ctlTx, c.id, m).catch((err: Error) =>
      this.host.log(`peering: reply to ${c.id} failed: ${err.message}`),
    );
  }

  /**
   * The receiving ends' CURVE server options: accepting the keys `allow`
   * (default: every allowed key, the live list, so a key allowed later, by
   * cluster discovery, is accepted too).
   */
  server(allow: Iterable<string> = this.allow): ZeromqOptions {
    const k = this.keys;
    if (!k) return {};
    return {
      curve: {
        publicKey: k.publicKey,
        secretKey: k.secretKey,
        allow: allow === this.allow ? this.allow : new AllowList(allow),
      },
      onRefused: (p) => this.onRefused(p),
    };
  }

  /** The sending ends' CURVE client options. */
  client(): { zeromq: ZeromqOptions } {
    const k = this.opts.keys;
    // A restarted peer is found again within PEER_RECONNECT_MAX_MS, not after a back-off grown to seconds.
    const base = { reconnectMaxIntervalMs: PEER_RECONNECT_MAX_MS };
    return { zeromq: k ? { ...base, curve: { publicKey: k.publicKey, secretKey: k.secretKey } } : base };
  }

  /** Open a `zeromq` channel end. */
  async open(options: Record<string, unknown>, onEvent?: (e: ChannelEvent) => void): Promise<Channel> {
    const ch = await this.host.fabric.registry.open('zeromq', options);
    if (onEvent) ch.on('event', onEvent);
    return ch;
  }

  /** The remote links through conduit `c`. */
  linksOf(c: Conduit): string[] {
    return [...this.links.values()].filter((l) => l.peer === c.id).map((l) => l.id);
  }

  /**
   * A message on `slot`'s receiving end whose sender names another daemon:
   * dropped, and counted against the slot's peer (never the claimed one).
   */
  spoofed(slot: Slot, sender: string, plane: string): void {
    this.counts.spoofedSenders++;
    slot.stats.spoofed++;
    if (slot.conduit) slot.conduit.stats.spoofed++;
    const err = new AmixError(
      ErrorCode.AMIX_ERR_PEER_REFUSED,
      `dropped a ${plane} message from ${sender} that came with the key of ${slot.id ?? slot.key}`,
      { details: { peer: slot.id ?? '', reason: 'spoofed sender', key: slot.key } },
    );
    this.logLimited(`peering: ${err.message}`);
    this.host.broadcast({ type: 'remote.badEnvelope', plane, error: err });
  }

  /** A hello refused: counted by claimed peer, key and reason, logged (rate-limited), broadcast; the error to throw. */
  refuse(peer: string, reason: string, key: string | undefined, endpoint?: string, slot?: Slot): AmixError {
    this.counts.refusedHellos++;
    if (slot) slot.stats.refusedHellos++;
    const k = `${peer}\0${key ?? ''}\0${reason}`;
    const row = this.refusals.get(k) ?? { peer, ...(key ? { key } : {}), reason, count: 0 };
    row.count++;
    this.refusals.set(k, row);
    const err = new AmixError(ErrorCode.AMIX_ERR_PEER_REFUSED, `a hello as ${peer} was refused: ${reason}`, {
      details: { peer, reason, ...(key ? { key } : {}), ...(endpoint ? { endpoint } : {}) },
    });
    this.logLimited(`peering: ${err.message}${key ? ` (key ${key})` : ''}`);
    this.host.broadcast({
      type: 'remote.peerRefused',
      endpoint: endpoint ?? '',
      error: err,
      peer,
      ...(key ? { key } : {}),
    });
    return err;
  }

  /** An envelope refused on `plane`: counted, logged (rate-limited) and broadcast. */
  bad(err: AmixError, plane: string): void {
    if (err.code === ErrorCode.AMIX_ERR_BAD_FRAME || err.code === ErrorCode.AMIX_ERR_PROTOCOL)
      this.counts.badEnvelopes++;
    this.logLimited(`peering: dropped a ${plane} envelope: ${err.message} (${err.code})`);
    this.host.broadcast({ type: 'remote.badEnvelope', plane, error: err });
  }

  /** Log at most one line a second: a peer sending garbage must not flood the log. */
  logLimited(line: string): void {
    const now = Date.now();
    if (now - this.#lastBadLog <= 1000) return;
    this.#lastBadLog = now;
    this.host.log(line);
  }
}
