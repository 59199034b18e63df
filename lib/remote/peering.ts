/**
 * Peering: one amixd talking to others over ZeroMQ (seed 002, "Using TCS for
 * Remote Communication", paragraph 65). Every daemon that peers has
 *
 * - a **control** receiving end (the `--listen` endpoint, or a loopback one)
 *   where peers' requests and replies arrive, and
 * - a **data** receiving end (same host, a port kept across restarts in
 *   `peering.json`) where their envelopes arrive,
 *
 * both `zeromq` primitive channels, so credit flow control, re-send after a
 * reconnect and CURVE come from the primitive. For each peer daemon there is
 * one **conduit** ({@link Conduit}): a control and a data sending end to that
 * peer, and a link end in this daemon's fabric. A local point linked to a
 * point on the peer is linked (by the fabric, with a broker when the two
 * points' primitives differ) to the conduit; the conduit wraps each message
 * in an envelope (`lib/remote/envelope.ts`: sender and receiver identifiers,
 * sequence, payload) and sends it to the peer. There the data loop unwraps
 * it, finds the receiving point by identifier in the directory, and sends it
 * on a link from the conduit to that point, opened on first use. Unknown
 * receivers and malformed envelopes are rejected with a code, counted, and
 * reported to the sending daemon; they never stop the loop.
 *
 * Control messages are amixd's own control frames (`lib/control/protocol.ts`) inside
 * envelopes from daemon to daemon, so one decoder checks both planes.
 *
 * Backpressure runs end to end with no queue of its own: the data loop waits
 * on the local link's send, so it stops taking from the data channel, which
 * stops granting credit, which blocks the peer's conduit pump, which stops
 * taking from its local link, which suspends the sending point at its
 * `maxmsg`. The price: the data loop is one per daemon, so a receiver that
 * stays full holds back every flow arriving at this daemon until it drains.
 *
 * @module
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { Agent } from '../fabric/agent.js';
import type { Channel } from '../core/channel.js';
import type { Directory, DirectoryPeer, PointView, QueryOptions, ResolveOptions } from '../directory/index.js';
import { parsePointId } from '../directory/index.js';
import { Endpoint } from '../fabric/endpoint.js';
import {
  EnvelopeReader,
  decodeEnvelope,
  encodeEnvelope,
  envelopeIdentifier,
  envelopeWriter,
  scanEnvelope,
  type EnvelopeSpan,
  type EnvelopeWriter,
} from './envelope.js';
import { AmixError, ErrorCode, describe, errorFromPlain, errorToPlain } from '../core/errors.js';
import type { ExternalEnd, Fabric, LinkInfo } from '../fabric/fabric.js';
import { AllowList, type CurveKeyPair } from '../../primitives/zeromq/keys.js';
import {
  DIRECTION_STEPS,
  normalizePoint,
  registrationInput,
  type Direction,
  type PointRegistration,
} from '../fabric/point.js';
import type { ChannelEvent } from '../core/primitive.js';
import {
  MAX_CONTROL_FRAME,
  PROTOCOL_VERSION,
  decodeControl,
  encodeControlBody,
  type ControlMessage,
} from '../control/protocol.js';
import { isLoopback, maxFrameBytesFor, type ZeromqAddress, type ZeromqOptions } from '../../primitives/zeromq.js';

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
  /** Public keys of the daemons allowed to peer; required with `keys` (anything else is refused). */
  allow?: Iterable<string>;
  /** Allow a non-loopback listen without keys. Default false. */
  insecure?: boolean;
  /** How long a request to a peer may take. Default 10000 ms. */
  requestTimeoutMs?: number;
  /**
   * How long a request or envelope from a daemon that is still saying hello
   * waits for that hello to finish before it is refused. Default 10 s.
   */
  helloGraceMs?: number;
}

/** What a daemon lends its peering. */
export interface PeeringHost {
  readonly fabric: Fabric;
  readonly directory: Directory;
  /** The daemon's directory (for `peering.json`). */
  readonly stateDir: string;
  log(line: string): void;
  broadcast(e: { type: string } & Record<string, unknown>): void;
}

/** A conduit's counters. */
export interface ConduitStats {
  /** Envelopes sent to the peer. */
  sent: number;
  /** Envelopes from the peer delivered to local points. */
  received: number;
  /** Envelopes from the peer refused (unknown receiver, or its link would not open). */
  rejected: number;
  /** Envelopes whose sequence skipped ahead of the one expected. */
  gaps: number;
  /** Envelopes that arrived again and were dropped. */
  duplicates: number;
}

/** One peer as `amix daemon status` shows it. */
export interface PeerInfo {
  /** The peer's directory id (its points' identifiers start with it). */
  id: string | undefined;
  /** The endpoint dialled, or the peer's control endpoint. */
  endpoint: string | undefined;
  state: 'connecting' | 'up' | 'down' | 'refused';
  /** The last refusal or loss, with its code. */
  error?: { code: string; message: string };
  stats: ConduitStats;
  links: string[];
}

/** A remote link as amixd returns it: a {@link LinkInfo} plus the peer. */
export interface RemoteLinkInfo extends LinkInfo {
  remote: { peer: string; flows: Array<{ sender: string; receiver: string; local: 'out' | 'in'; link?: string }> };
}

/** The largest control message between daemons (a control frame plus its envelope). */
const CTL_MAX_BYTES = MAX_CONTROL_FRAME + 4096;
/** Control channels hold few messages; requests are small and answered quickly. */
const CTL_MAXMSG = 256;
const CTL_MINMSG = 64;
/** Receiver identifier of control envelopes sent before the peer's id is known. */
const ANY = '*';
/** Envelopes per turn of the data loop and of a conduit pump. */
const BATCH = 256;
/** What a daemon's id (its directory id) may look like on the wire. */
const DAEMON_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** How long an id that was waited for in vain is not waited for again. */
const STRANGER_TTL_MS = 60_000;

interface Flow {
  key: string;
  sender: string;
  receiver: string;
  /** The local fabric link (conduit ↔ point). */
  link: string;
}

interface OutFlow extends Flow {
  seq: number;
  /** Wraps one message of this flow (identifiers encoded once). */
  wrap: EnvelopeWriter;
}

interface InFlow extends Flow {
  ch: Channel;
  expected: number | undefined;
  /** Recognises this flow's next envelopes (usual layout) without decoding identifiers or a general scan. */
  reader: EnvelopeReader;
}

interface RemoteLink {
  id: string;
  peer: string;
  a: string;
  b: string;
  direction: Direction;
  flows: Array<{ sender: string; receiver: string; local: 'out' | 'in' }>;
}

/** A configured peer being dialled. */
interface Dial {
  config: PeerConfig;
  tx?: Channel;
  peer?: string;
  state: PeerInfo['state'];
  error?: AmixError;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  /** The peer asked, when known (its loss fails the request at once). */
  peer?: string;
}

/**
 * The conduit point for one peer daemon: its sending ends to that peer, its
 * link end in this daemon's fabric (an agent over an endpoint named
 * `conduit:<peer>`), and the flows through it.
 */
export class Conduit {
  /** The peer's directory id. */
  readonly id: string;
  state: PeerInfo['state'] = 'connecting';
  error: AmixError | undefined;
  ctlTx: Channel | undefined;
  dataTx: Channel | undefined;
  ctlEndpoint: string | undefined;
  dataEndpoint: string | undefined;
  readonly endpoint: Endpoint;
  readonly agent: Agent;
  readonly out = new Map<string, OutFlow>();
  readonly in = new Map<string, InFlow>();
  readonly opening = new Map<string, Promise<InFlow>>();
  readonly stats: ConduitStats = newConduitStats();
  ctlSeq = 0;
  #dataReady: Array<() => void> = [];

  constructor(id: string, fabric: Fabric) {
    this.id = id;
    this.endpoint = new Endpoint(`conduit:${id}`);
    this.agent = new Agent(this.endpoint, fabric.registry);
  }

  /** The fabric end for a link to `name` (a remote point's identifier) through this conduit. */
  end(name: string): ExternalEnd {
    return { name, inProcess: true, target: { request: (op, args) => this.agent.request(op, args ?? {}) } };
  }

  setDataTx(tx: Channel | undefined): void {
    this.dataTx = tx;
    if (tx) this.wakeAll();
  }

  /** Resolves once a data sending end exists. */
  dataReady(): Promise<void> {
    return this.dataTx ? Promise.resolve() : new Promise((r) => this.#dataReady.push(r));
  }

  /** Wake pumps waiting for a data channel (they then see the conduit closed). */
  wakeAll(): void {
    for (const w of this.#dataReady.splice(0)) w();
  }
}

/**
 * A daemon's peering: its two receiving ends, one {@link Conduit} per peer,
 * the remote links it made, and the directory federation through them.
 */
export class Peering {
  readonly #host: PeeringHost;
  readonly #opts: PeeringOptions;
  readonly #timeout: number;
  readonly #helloGrace: number;
  readonly #peers = new Map<string, Conduit>();
  readonly #dials: Dial[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #links = new Map<string, RemoteLink>();
  readonly #dirPeers = new Map<string, DirectoryPeer>();
  #ctlRx: Channel | undefined;
  #dataRx: Channel | undefined;
  #reqSeq = 0;
  #linkSeq = 0;
  #closed = false;
  #loops: Promise<void>[] = [];
  /** Envelopes that did not decode, or came from no known peer. */
  readonly counts = { badEnvelopes: 0, unknownSender: 0 };
  #lastBadLog = 0;
  /** Binds in progress, by peer id (serialised per peer). */
  readonly #binding = new Map<string, Promise<Conduit>>();
  /** Callers waiting for a peer's hello to finish, by directory id (see {@link Peering.#whenPeer}). */
  readonly #helloWaiters = new Map<string, Array<(c: Conduit | undefined) => void>>();
  /** Directory ids that were waited for and never said hello: not waited for again until they do (or the entry ages out). */
  readonly #strangers = new LRUCache<string, true>({ max: 1024, ttl: STRANGER_TTL_MS });

  constructor(host: PeeringHost, options: PeeringOptions) {
    this.#host = host;
    this.#opts = options;
    this.#timeout = options.requestTimeoutMs ?? 10_000;
    this.#helloGrace = options.helloGraceMs ?? 10_000;
    if (options.keys && options.allow === undefined) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        'peering with keys needs an allow-list of peer public keys (--allow FILE)',
        { details: { option: 'allow' } },
      );
    }
  }

  /** This daemon's directory id: the `sender` of its control envelopes. */
  get id(): string {
    return this.#host.directory.id;
  }

  /** The control and data endpoints peers reach this daemon at. */
  get addresses(): { control: ZeromqAddress; data: ZeromqAddress } {
    return { control: this.#ctlRx!.address as ZeromqAddress, data: this.#dataRx!.address as ZeromqAddress };
  }

  /** Bind both receiving ends and start dialling the configured peers (in the background). */
  async start(): Promise<void> {
    const listen = this.#opts.listen ?? 'tcp://127.0.0.1:*';
    const host = hostOf(listen);
    const loopback = isLoopback(listen);
    if (!this.#opts.keys) {
      if (!loopback && !this.#opts.insecure) {
        throw new AmixError(
          ErrorCode.AMIX_ERR_INVALID_ARG,
          `refusing to listen on ${listen} without CURVE keys: anyone who can reach it could link to this daemon's points. Give --keys and --allow, or --insecure`,
          { details: { option: 'listen' } },
        );
      }
      this.#host.log(
        `amixd peering without CURVE keys on ${listen}: peers are not authenticated${loopback ? ' (loopback only)' : ''}`,
      );
    }
    this.#ctlRx = await this.#open({
      maxmsg: CTL_MAXMSG,
      minmsg: CTL_MINMSG,
      maxMessageBytes: CTL_MAX_BYTES,
      zeromq: { ...this.#server(), bind: listen },
    });
    const state = join(this.#host.stateDir, 'peering.json');
    const saved = await readFile(state, 'utf8').then(
      (t) => JSON.parse(t) as { data?: string },
      () => ({}) as { data?: string },
    );
    const wanted = typeof saved.data === 'string' && hostOf(saved.data) === host ? saved.data : `tcp://${host}:*`;
    try {
      this.#dataRx = await this.#open({ zeromq: { ...this.#server(), bind: wanted } });
    } catch (err) {
      if (wanted.endsWith(':*')) throw err;
      this.#host.log(
        `peering: cannot bind the data endpoint ${wanted} again (${(err as Error).message}); peers will be told the new one`,
      );
      this.#dataRx = await this.#open({ zeromq: { ...this.#server(), bind: `tcp://${host}:*` } });
    }
    await writeFile(state, `${JSON.stringify({ data: this.addresses.data.endpoint })}\n`, { mode: 0o600 });
    this.#loops.push(this.#controlLoop(this.#ctlRx), this.#dataLoop(this.#dataRx));
    this.#host.log(
      `amixd peering: control ${this.addresses.control.endpoint}, data ${this.addresses.data.endpoint}${this.#opts.keys ? ', CURVE' : ''}`,
    );
    for (const config of this.#opts.peers ?? []) {
      const d: Dial = { config, state: 'connecting' };
      this.#dials.push(d);
      void this.#dial(d);
    }
  }

  /** Every peer, dialled or dialling in. */
  status(): {
    id: string;
    control?: string;
    data?: string;
    dataAddress?: ZeromqAddress;
    badEnvelopes: number;
    unknownSender: number;
    refused: number;
    peers: PeerInfo[];
  } {
    const peers: PeerInfo[] = [];
    const seen = new Set<string>();
    for (const d of this.#dials) {
      const c = d.peer ? this.#peers.get(d.peer) : undefined;
      if (c) seen.add(c.id);
      peers.push(this.#peerInfo(c, d.config.endpoint, c ? c.state : d.state, c?.error ?? d.error));
    }
    for (const c of this.#peers.values())
      if (!seen.has(c.id)) peers.push(this.#peerInfo(c, c.ctlEndpoint, c.state, c.error));
    const refusedAt = (ch: Channel | undefined): number =>
      (ch?.stats() as { refused?: number } | undefined)?.refused ?? 0;
    const refused = refusedAt(this.#ctlRx) + refusedAt(this.#dataRx);
    return {
      id: this.id,
      ...(this.#ctlRx
        ? {
            control: this.addresses.control.endpoint,
            data: this.addresses.data.endpoint,
            dataAddress: this.addresses.data,
          }
        : {}),
      ...this.counts,
      refused,
      peers,
    };
  }

  /** True when `id` is one of this daemon's remote links. */
  hasLink(id: string): boolean {
    return this.#links.has(id);
  }

  /** Snapshots of the remote links this daemon made. */
  links(): RemoteLinkInfo[] {
    return [...this.#links.values()].map((l) => this.#linkInfo(l));
  }

  /**
   * Find a point on a peer by name or identifier (the directory's federated
   * resolve). Resolves the view and the conduit that reaches it, or undefined.
   */
  async resolve(nameOrId: string): Promise<{ view: PointView; peer: Conduit } | undefined> {
    const view = await this.#host.directory.resolve(nameOrId);
    if (!view) return undefined;
    const dirId = parsePointId(view.id)?.directoryId;
    const peer = dirId === undefined ? undefined : this.#peers.get(dirId);
    if (!peer) return undefined;
    return { view, peer };
  }

  /**
   * Link a local point and a point on a peer (either may be A). The flows
   * from the local point go out through the conduit (with a broker in front
   * when the two points' primitives differ); the flows from the remote point
   * are set up by the peer the same way.
   */
  async connect(
    local: PointView,
    remote: { view: PointView; peer: Conduit },
    localIsA: boolean,
    direction: Direction,
  ): Promise<RemoteLinkInfo> {
    const c = remote.peer;
    this.#checkUp(c);
    const steps = DIRECTION_STEPS[direction];
    const [a, b] = localIsA ? [local, remote.view] : [remote.view, local];
    const rl: RemoteLink = { id: `R${++this.#linkSeq}`, peer: c.id, a: a.name, b: b.name, direction, flows: [] };
    const wanted: Array<[PointView, PointView]> = [];
    if (steps.includes(1)) wanted.push([a, b]);
    if (steps.includes(3)) wanted.push([b, a]);
    try {
      for (const [from, to] of wanted) {
        const out = from === local;
        rl.flows.push({ sender: from.id, receiver: to.id, local: out ? 'out' : 'in' });
        await this.#openFlow(c, from, to, out);
      }
    } catch (err) {
      await this.#closeFlows(c, rl).catch(() => {});
      throw err;
    }
    this.#links.set(rl.id, rl);
    this.#host.broadcast({ type: 'remote.linkConnected', link: rl.id, peer: c.id, a: rl.a, b: rl.b, direction });
    return this.#linkInfo(rl);
  }

  /** Take a remote link down: each flow is flushed, then closed at both daemons. */
  async disconnect(id: string): Promise<void> {
    const rl = this.#link(id);
    this.#links.delete(id);
    const c = this.#peers.get(rl.peer);
    if (c) await this.#closeFlows(c, rl);
    this.#host.broadcast({ type: 'remote.linkDisconnected', link: id, peer: rl.peer });
  }

  /** Suspend (or resume) a remote link's flows: local ones here, the others at the peer. */
  async setSuspended(id: string, on: boolean): Promise<RemoteLinkInfo> {
    const rl = this.#link(id);
    const c = this.#peers.get(rl.peer);
    for (const f of rl.flows) {
      if (f.local === 'out') {
        const flow = c?.out.get(key(f.sender, f.receiver));
        if (flow) await (on ? this.#host.fabric.suspend(flow.link) : this.#host.fabric.resume(flow.link));
      } else if (c) await this.#request(c, on ? 'suspend' : 'resume', { sender: f.sender, receiver: f.receiver });
    }
    return this.#linkInfo(rl);
  }

  /** Close every conduit and both receiving ends. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'amixd is stopping'));
    }
    this.#pending.clear();
    for (const list of this.#helloWaiters.values()) for (const w of list) w(undefined);
    this.#helloWaiters.clear();
    for (const c of this.#peers.values()) {
      const dp = this.#dirPeers.get(c.id);
      if (dp && !this.#host.directory.closed) this.#host.directory.removePeer(dp);
      c.wakeAll();
      await c.endpoint.close().catch(() => {});
      await c.dataTx?.destroy().catch(() => {});
      await c.ctlTx?.destroy().catch(() => {});
    }
    for (const d of this.#dials) await d.tx?.destroy().catch(() => {});
    await this.#ctlRx?.destroy().catch(() => {});
    await this.#dataRx?.destroy().catch(() => {});
    await Promise.allSettled(this.#loops);
  }

  // ---- dialling and hello -------------------------------------------------

  /** Dial a configured peer: keep trying until it answers, then say hello (again after every reconnect). */
  async #dial(d: Dial): Promise<void> {
    const address = controlAddress(d.config.endpoint, d.config.publicKey);
    try {
      d.tx = await this.#open({ address, ...this.#client() }, (e) => this.#onDialEvent(d, e));
    } catch (err) {
      d.state = 'refused';
      d.error = err as AmixError;
      this.#host.log(`peering: cannot dial ${d.config.endpoint}: ${(err as Error).message}`);
      return;
    }
    while (!this.#closed) {
      try {
        await d.tx.connect();
        await this.#hello(d);
        return;
      } catch (err) {
        if (this.#closed) return;
        const e = err as AmixError;
        if (e.code === ErrorCode.AMIX_ERR_UNAUTHORIZED) {
          if (d.state !== 'refused') this.#host.log(`peering: ${d.config.endpoint} refused this daemon: ${e.message}`);
          d.state = 'refused';
          d.error = e;
          this.#host.broadcast({ type: 'remote.peerRefused', endpoint: d.config.endpoint, error: e });
        }
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  }

  #onDialEvent(d: Dial, e: ChannelEvent): void {
    if (this.#closed) return;
    if (e.type === 'reconnected' || (e.type === 'resumed' && d.state === 'down')) {
      // The peer may be a new process that knows nothing of us: say hello again.
      void this.#hello(d).catch((err: Error) =>
        this.#host.log(`peering: hello to ${d.config.endpoint} failed: ${err.message}`),
      );
    } else if (e.type === 'peerLost') {
      const c = d.peer ? this.#peers.get(d.peer) : undefined;
      if (c) this.#lost(c, e.error as AmixError | undefined);
      else if (d.state !== 'refused') d.state = 'down';
    }
  }

  async #hello(d: Dial): Promise<void> {
    const id = ++this.#reqSeq;
    const reply = await this.#call(d.tx!, ANY, id, 'hello', { ...this.#helloArgs() });
    const c = await this.#bind(checkHello(reply), d.tx!);
    d.peer = c.id;
    d.state = 'up';
    d.error = undefined;
  }

  #helloArgs(): HelloArgs {
    return { id: this.id, version: PROTOCOL_VERSION, control: this.addresses.control, data: this.addresses.data };
  }

  /**
   * Take a peer's hello (or hello reply): make or refresh its conduit, with
   * sending ends to the addresses it gave; re-open what this daemon had
   * through it (the peer may have restarted and lost its half).
   */
  #bind(h: HelloArgs, dialled?: Channel): Promise<Conduit> {
    // Two hellos from one peer can cross (its reconnect hello and the reply to
    // ours): bind them one after the other, or both would open data channels.
    const next = (this.#binding.get(h.id) ?? Promise.resolve()).catch(() => {}).then(() => this.#bindNow(h, dialled));
    this.#binding.set(h.id, next);
    void next
      .catch(() => {})
      .finally(() => {
        if (this.#binding.get(h.id) === next) this.#binding.delete(h.id);
      });
    return next;
  }

  async #bindNow(h: HelloArgs, dialled?: Channel): Promise<Conduit> {
    if (h.id === this.id)
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `peer ${h.control.endpoint} is this daemon itself (directory ${h.id})`,
      );
    let c = this.#peers.get(h.id);
    const fresh = !c;
    if (!c) {
      c = new Conduit(h.id, this.#host.fabric);
      this.#peers.set(h.id, c);
    }
    const wasDown = c.state !== 'up';
    // Control to the peer: the channel we dialled it on, else the one we have if it still points there, else a new one.
    const keep = dialled ?? (c.ctlEndpoint === h.control.endpoint ? c.ctlTx : undefined);
    if (c.ctlTx !== keep || !keep) {
      const old = c.ctlTx;
      const conduit = c;
      c.ctlTx =
        keep ?? (await this.#open({ address: h.control, ...this.#client() }, (e) => this.#onConduitEvent(conduit, e)));
      c.ctlEndpoint = h.control.endpoint;
      // A dial channel belongs to its dial (it re-says hello after reconnects); only our own are closed here.
      if (old && !this.#isDial(old)) await old.destroy().catch(() => {});
    }
    if (!c.dataTx || c.dataEndpoint !== h.data.endpoint) {
      const old = c.dataTx;
      c.setDataTx(await this.#open({ address: h.data, ...this.#client() }));
      c.dataEndpoint = h.data.endpoint;
      if (old) await old.destroy().catch(() => {});
    }
    c.state = 'up';
    c.error = undefined;
    // A new process behind this id numbers its flows from 0 again.
    for (const f of c.in.values()) f.expected = undefined;
    if (!this.#dirPeers.has(c.id)) {
      const conduit = c;
      const peer: DirectoryPeer = {
        id: c.id,
        resolve: async (nameOrId: string, o: ResolveOptions = {}) =>
          ((await this.#request(conduit, 'resolve', { nameOrId, hops: o.hops, visited: o.visited })) as
            PointView | undefined) ?? undefined,
        query: async (expr: string, o: QueryOptions = {}) =>
          (await this.#request(conduit, 'query', {
            expr,
            limit: o.limit,
            offset: o.offset,
            hops: o.hops,
            visited: o.visited,
          })) as { points: PointView[]; more: boolean },
      };
      this.#dirPeers.set(c.id, peer);
      this.#host.directory.addPeer(peer);
    }
    this.#strangers.delete(c.id);
    for (const w of this.#helloWaiters.get(c.id)?.splice(0) ?? []) w(c);
    this.#helloWaiters.delete(c.id);
    if (fresh || wasDown) {
      this.#host.log(`peering: ${c.id} is up at ${h.control.endpoint}`);
      this.#host.broadcast({
        type: 'remote.peerUp',
        peer: c.id,
        endpoint: h.control.endpoint,
        links: this.#linksOf(c),
      });
      // After the hello reply has gone out (callers' next step), or the peer would get requests before it knows us.
      const conduit = c;
      setImmediate(() => void this.#reopen(conduit));
    }
    return c;
  }

  #isDial(tx: Channel): boolean {
    return this.#dials.some((d) => d.tx === tx);
  }

  #onConduitEvent(c: Conduit, e: ChannelEvent): void {
    if (this.#closed) return;
    if (e.type === 'peerLost') this.#lost(c, e.error as AmixError | undefined);
    // A peer that dialled us says hello again itself when it comes back.
  }

  #lost(c: Conduit, error: AmixError | undefined): void {
    if (c.state === 'down') return;
    c.state = 'down';
    c.error = error ?? new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `lost peer ${c.id}`);
    for (const [id, p] of this.#pending) {
      if (p.peer === c.id) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
        p.reject(peerLost(c));
      }
    }
    this.#host.log(`peering: lost ${c.id}: ${c.error.message}`);
    this.#host.broadcast({ type: 'remote.peerLost', peer: c.id, links: this.#linksOf(c), error: c.error });
  }

  /** After a peer came (back): ask it again for its half of every flow this daemon made through it. */
  async #reopen(c: Conduit): Promise<void> {
    for (const rl of this.#links.values()) {
      if (rl.peer !== c.id) continue;
      for (const f of rl.flows) {
        try {
          if (f.local === 'out') await this.#request(c, 'open', { sender: f.sender, receiver: f.receiver });
          else await this.#request(c, 'openOut', { sender: f.sender, receiver: f.receiver });
        } catch (err) {
          this.#host.log(`peering: cannot re-open ${f.sender} -> ${f.receiver} at ${c.id}: ${(err as Error).message}`);
          this.#host.broadcast({ type: 'remote.linkFailed', link: rl.id, peer: c.id, error: err as Error });
        }
      }
    }
  }

  #linksOf(c: Conduit): string[] {
    return [...this.#links.values()].filter((l) => l.peer === c.id).map((l) => l.id);
  }

  // ---- flows ------------------------------------------------------------

  async #openFlow(c: Conduit, from: PointView, to: PointView, out: boolean): Promise<void> {
    if (out) {
      // The peer first (it checks the receiver), then our half, which starts sending.
      await this.#request(c, 'open', { sender: from.id, receiver: to.id });
      await this.#openOut(c, from, to);
    } else {
      await this.#openIn(c, from.id, to.id);
      await this.#request(c, 'openOut', { sender: from.id, receiver: to.id });
    }
  }

  /** Link local point `from` to the conduit, planned as remote point `to`, and start the pump. */
  async #openOut(c: Conduit, from: PointView, to: PointView): Promise<OutFlow> {
    const k = key(from.id, to.id);
    const existing = c.out.get(k);
    if (existing && this.#host.fabric.hasLink(existing.link)) return existing;
    let standIn: PointRegistration;
    try {
      standIn = normalizePoint(registrationInput(to));
    } catch (err) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `peer ${c.id} described point ${to.id} in a way this daemon cannot use: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const link = await this.#host.fabric.connect(from.name, null, { direction: 'aToB', as: c.end(to.id), standIn });
    const flow: OutFlow = {
      key: k,
      sender: from.id,
      receiver: to.id,
      link: link.id,
      seq: 0,
      wrap: envelopeWriter(from.id, to.id),
    };
    c.out.set(k, flow);
    const rx = c.endpoint.channels(link.id).rx[0];
    if (rx) void this.#pump(c, flow, rx);
    return flow;
  }

  /**
   * The conduit's outbound half of one flow: take what the local point sent
   * (a batch at a time), wrap each message, send it to the peer. Waiting on
   * the data channel's credit is the backpressure.
   */
  async #pump(c: Conduit, f: OutFlow, rx: Channel): Promise<void> {
    for (;;) {
      let batch: Uint8Array[];
      try {
        batch = await rx.receiveMany({ maxCount: BATCH });
      } catch {
        break;
      }
      const frames = f.wrap.many(f.seq, batch);
      f.seq += batch.length;
      for (;;) {
        if (this.#closed) return;
        await c.dataReady();
        const tx = c.dataTx;
        if (!tx) return;
        try {
          await tx.sendMany(frames);
          c.stats.sent += frames.length;
          break;
        } catch (err) {
          // Replaced by a new data channel (the peer moved): send again there. Otherwise the conduit is closing.
          if (c.dataTx !== tx) continue;
          this.#host.log(`peering: flow ${f.key} to ${c.id} stopped: ${(err as Error).message}`);
          return;
        }
      }
    }
    if (c.out.get(f.key) === f) c.out.delete(f.key);
  }

  /** The conduit's inbound half: a link from the conduit to local point `receiver`, opened once. */
  #openIn(c: Conduit, sender: string, receiver: string): Promise<InFlow> {
    const k = key(sender, receiver);
    const have = c.in.get(k);
    if (have && have.ch.isOpen && this.#host.fabric.hasLink(have.link)) return Promise.resolve(have);
    let p = c.opening.get(k);
    if (!p) {
      p = (async () => {
        const view = this.#host.directory.getPoint(receiver);
        if (!view || parsePointId(view.id)?.directoryId !== this.id) {
          throw new AmixError(
            ErrorCode.AMIX_ERR_UNKNOWN_POINT,
            `no point identified ${describe(receiver)} on ${this.id}`,
            { details: { receiver } },
          );
        }
        const link = await this.#host.fabric.connect(null, view.name, { direction: 'aToB', as: c.end(sender) });
        const ch = c.endpoint.channels(link.id).tx[0];
        if (!ch)
          throw new AmixError(
            ErrorCode.AMIX_ERR_INTERNAL,
            `the link to ${view.name} has no sending end at the conduit`,
          );
        const f: InFlow = {
          key: k,
          sender,
          receiver,
          link: link.id,
          ch,
          expected: undefined,
          reader: new EnvelopeReader(sender, receiver),
        };
        c.in.set(k, f);
        return f;
      })().finally(() => c.opening.delete(k));
      c.opening.set(k, p);
    }
    return p;
  }

  async #closeFlows(c: Conduit, rl: RemoteLink): Promise<void> {
    for (const f of rl.flows) {
      const k = key(f.sender, f.receiver);
      if (f.local === 'out') {
        await this.#closeOut(c, k);
        if (c.state === 'up')
          await this.#request(c, 'close', { sender: f.sender, receiver: f.receiver }).catch(() => {});
      } else {
        if (c.state === 'up')
          await this.#request(c, 'close', { sender: f.sender, receiver: f.receiver }).catch(() => {});
        await this.#closeIn(c, k);
      }
    }
  }

  /** Take down the local half of an outgoing flow (flushed by the disconnect), and wait until the peer has acknowledged what was sent. */
  async #closeOut(c: Conduit, k: string): Promise<void> {
    const f = c.out.get(k);
    if (!f) return;
    c.out.delete(k);
    await this.#host.fabric.disconnect(f.link).catch(() => {});
    // Everything sent so far is acknowledged by the peer before it closes its half.
    await c.dataTx?.cycle().catch(() => {});
  }

  async #closeIn(c: Conduit, k: string): Promise<void> {
    const f = c.in.get(k);
    if (!f) return;
    c.in.delete(k);
    if (this.#host.fabric.hasLink(f.link)) await this.#host.fabric.disconnect(f.link).catch(() => {});
  }

  // ---- the two receive loops -----------------------------------------------

  async #controlLoop(rx: Channel): Promise<void> {
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await rx.receive();
      } catch {
        return;
      }
      let sender: string;
      let msg: ControlMessage;
      try {
        const env = decodeEnvelope(bytes);
        sender = env.sender;
        msg = decodeControl(env.payload);
      } catch (err) {
        this.#bad(err as AmixError, 'control');
        continue;
      }
      if (msg.kind === 'reply') {
        const p = this.#pending.get(msg.id);
        if (!p) continue;
        this.#pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg.result);
        else p.reject(msg.error);
      } else if (msg.kind === 'request') {
        void this.#serve(sender, msg.id, msg.op, msg.args);
      } else if (msg.type === 'rejected') {
        this.#host.broadcast({ type: 'remote.rejected', peer: dirOf(sender), ...msg.body });
      }
    }
  }

  /** Answer one request from a peer (replies go through that peer's conduit). */
  async #serve(sender: string, id: number, op: string, args: Record<string, unknown>): Promise<void> {
    const dir = dirOf(sender) ?? sender;
    let c = this.#peers.get(dir);
    // A peer answers our hello and may send requests at once; they can get
    // here before our side of that hello has bound its conduit (the channels
    // open asynchronously). Wait for it rather than drop the request.
    if (op !== 'hello' && !c?.ctlTx) c = await this.#whenPeer(dir);
    let reply: ControlMessage;
    try {
      if (op === 'hello') {
        c = await this.#bind(checkHello(args));
        reply = { kind: 'reply', id, ok: true, result: this.#helloArgs() };
      } else {
        if (!c) throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `say hello before ${describe(op)}`);
        reply = { kind: 'reply', id, ok: true, result: (await this.#handle(c, op, args)) ?? null };
      }
    } catch (err) {
      reply = {
        kind: 'reply',
        id,
        ok: false,
        error: err instanceof AmixError ? err : errorFromPlain(errorToPlain(err)),
      };
    }
    if (!c?.ctlTx) {
      this.#host.log(`peering: cannot answer ${op} from ${sender}: no conduit to it`);
      return;
    }
    await this.#post(c.ctlTx, c.id, reply).catch((err: Error) =>
      this.#host.log(`peering: reply to ${c!.id} failed: ${err.message}`),
    );
  }

  async #handle(c: Conduit, op: string, a: Record<string, unknown>): Promise<unknown> {
    const id = (k: string): string => {
      const v = a[k];
      if (typeof v !== 'string' || v === '')
        throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${op}: ${k} must be an identifier`);
      return v;
    };
    const forward = {
      ...(typeof a.hops === 'number' ? { hops: a.hops } : {}),
      ...(Array.isArray(a.visited) ? { visited: a.visited as string[] } : {}),
    };
    switch (op) {
      case 'resolve':
        return (await this.#host.directory.resolve(id('nameOrId'), forward)) ?? null;
      case 'query': {
        const r = await this.#host.directory.query(id('expr'), {
          ...forward,
          ...(typeof a.limit === 'number' ? { limit: a.limit } : {}),
          ...(typeof a.offset === 'number' ? { offset: a.offset } : {}),
        });
        return { points: r.points, more: r.more };
      }
      case 'open': {
        // The peer will send from `sender` to our point `receiver`: check the receiver and open its link now.
        const receiver = id('receiver');
        const view = this.#host.directory.getPoint(receiver);
        if (view && (view.record as { role?: string }).role === 'sender')
          throw new AmixError(ErrorCode.AMIX_ERR_BAD_DIRECTION, `point "${view.name}" is a sender and cannot receive`);
        await this.#openIn(c, id('sender'), receiver);
        return {};
      }
      case 'openOut': {
        // The peer wants our point `sender` to send to its point `receiver`.
        const from = this.#host.directory.getPoint(id('sender'));
        if (!from || parsePointId(from.id)?.directoryId !== this.id)
          throw new AmixError(
            ErrorCode.AMIX_ERR_UNKNOWN_POINT,
            `no point identified ${describe(a.sender)} on ${this.id}`,
          );
        const to = (await this.#request(c, 'resolve', { nameOrId: id('receiver'), hops: 0 })) as PointView | null;
        if (!to)
          throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `peer ${c.id} does not know ${describe(a.receiver)}`);
        const flow = await this.#openOut(c, from, to);
        return this.#host.fabric.link(flow.link);
      }
      case 'close': {
        const k = key(id('sender'), id('receiver'));
        await this.#closeOut(c, k);
        await this.#closeIn(c, k);
        return {};
      }
      case 'suspend':
      case 'resume': {
        const out = c.out.get(key(id('sender'), id('receiver')));
        if (!out) throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `no flow ${a.sender} -> ${a.receiver} here`);
        await (op === 'suspend' ? this.#host.fabric.suspend(out.link) : this.#host.fabric.resume(out.link));
        return {};
      }
      default:
        throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown peer request ${describe(op)}`);
    }
  }

  /**
   * Unwrap every envelope from every peer and deliver its payload to the
   * receiving point. Malformed envelopes and unknown senders or receivers are
   * counted and skipped; nothing here throws out of the loop.
   */
  async #dataLoop(rx: Channel): Promise<void> {
    // The flow of the previous envelope: runs of one flow are the common case,
    // recognised by comparing identifier bytes, with no string or map lookup.
    let last: { c: Conduit; f: InFlow } | undefined;
    // Consecutive payloads of one flow go to its link in one sendMany.
    let run: Uint8Array[] = [];
    let runOf: { c: Conduit; f: InFlow } | undefined;
    const flush = async (): Promise<void> => {
      if (!runOf || run.length === 0) return;
      const { c, f } = runOf;
      const n = run.length;
      try {
        await f.ch.sendMany(run);
        c.stats.received += n;
      } catch (err) {
        this.#reject(c, f.sender, f.receiver, err as AmixError, n);
      }
      run = [];
      runOf = undefined;
    };
    for (;;) {
      let batch: Uint8Array[];
      try {
        batch = await rx.receiveMany({ maxCount: BATCH });
      } catch {
        return;
      }
      for (const bytes of batch) {
        let cur = last;
        let sequence: number;
        let payloadStart: number;
        let payloadEnd: number;
        if (cur !== undefined && cur.f.ch.isOpen && cur.f.reader.match(bytes)) {
          // The common case: the same flow as the envelope before, in the usual layout.
          ({ sequence, payloadStart } = cur.f.reader);
          payloadEnd = bytes.length;
        } else {
          // Another flow, or a layout the reader does not take: the general scan, then the flow by identifier.
          let span;
          try {
            span = scanEnvelope(bytes);
          } catch (err) {
            this.#bad(err as AmixError, 'data');
            continue;
          }
          const next = await this.#route(bytes, span);
          if (!next) continue;
          if (next.f !== cur?.f) {
            await flush();
            cur = next;
            last = next;
          }
          ({ sequence, payloadStart, payloadEnd } = span);
        }
        const { c, f } = cur;
        if (f.expected !== undefined) {
          if (sequence < f.expected) {
            c.stats.duplicates++;
            continue;
          }
          if (sequence > f.expected) c.stats.gaps++;
        }
        f.expected = sequence + 1;
        if (runOf !== cur) {
          await flush();
          runOf = cur;
        }
        run.push(bytes.subarray(payloadStart, payloadEnd));
      }
      await flush();
    }
  }

  /** The conduit and flow an envelope belongs to (its link opened if need be), or undefined after rejecting it. */
  async #route(bytes: Uint8Array, span: EnvelopeSpan): Promise<{ c: Conduit; f: InFlow } | undefined> {
    let sender: string;
    let receiver: string;
    try {
      sender = envelopeIdentifier(bytes, span.senderStart, span.senderEnd, 'sender');
      receiver = envelopeIdentifier(bytes, span.receiverStart, span.receiverEnd, 'receiver');
    } catch (err) {
      this.#bad(err as AmixError, 'data');
      return undefined;
    }
    const dir = parsePointId(sender)?.directoryId;
    // A peer's data can arrive before its hello is bound here: a restarted
    // daemon is reached by the peer's reconnecting data channel (which re-sends
    // what was not acknowledged) while the hellos are still crossing. Dropping
    // those would lose accepted messages, so the loop waits for that hello.
    const c = dir === undefined ? undefined : (this.#peers.get(dir) ?? (await this.#whenPeer(dir)));
    if (!c) {
      this.counts.unknownSender++;
      this.#bad(
        new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `envelope from ${describe(sender)}, which is no peer's point`),
        'data',
      );
      return undefined;
    }
    let f = c.in.get(key(sender, receiver));
    if (!f || !f.ch.isOpen) {
      try {
        f = await this.#openIn(c, sender, receiver);
      } catch (err) {
        this.#reject(c, sender, receiver, err as AmixError);
        return undefined;
      }
    }
    return { c, f };
  }

  /**
   * The conduit of peer `dir` once its hello is bound, waiting up to
   * `helloGraceMs` for a hello in progress; undefined if none comes. An id
   * that never says hello is remembered for a while so that a stream of
   * envelopes from it costs one wait, not one each.
   */
  #whenPeer(dir: string): Promise<Conduit | undefined> {
    const c = this.#peers.get(dir);
    if (c?.ctlTx) return Promise.resolve(c);
    if (this.#closed || !DAEMON_ID.test(dir) || this.#strangers.has(dir)) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let list = this.#helloWaiters.get(dir);
      if (!list) this.#helloWaiters.set(dir, (list = []));
      const timer = setTimeout(() => {
        const l = this.#helloWaiters.get(dir);
        const i = l?.indexOf(done) ?? -1;
        if (i >= 0) l!.splice(i, 1);
        if (l?.length === 0) this.#helloWaiters.delete(dir);
        this.#strangers.set(dir, true);
        resolve(undefined);
      }, this.#helloGrace);
      timer.unref();
      const done = (conduit: Conduit | undefined): void => {
        clearTimeout(timer);
        resolve(conduit);
      };
      list.push(done);
    });
  }

  #reject(c: Conduit, sender: string, receiver: string, err: AmixError, count = 1): void {
    c.stats.rejected += count;
    this.#logLimited(
      `peering: rejected an envelope from ${sender} to ${receiver}: ${err.message} (${err.code ?? 'no code'})`,
    );
    if (c.ctlTx)
      void this.#post(c.ctlTx, c.id, {
        kind: 'event',
        type: 'rejected',
        body: { sender, receiver, count, code: err.code ?? ErrorCode.AMIX_ERR_INTERNAL, message: err.message },
      }).catch(() => {});
  }

  #bad(err: AmixError, plane: string): void {
    if (err.code === ErrorCode.AMIX_ERR_BAD_FRAME || err.code === ErrorCode.AMIX_ERR_PROTOCOL)
      this.counts.badEnvelopes++;
    this.#logLimited(`peering: dropped a ${plane} envelope: ${err.message} (${err.code})`);
    this.#host.broadcast({ type: 'remote.badEnvelope', plane, error: err });
  }

  /** Log at most one line a second: a peer sending garbage must not flood the log. */
  #logLimited(line: string): void {
    const now = Date.now();
    if (now - this.#lastBadLog <= 1000) return;
    this.#lastBadLog = now;
    this.#host.log(line);
  }

  // ---- requests ---------------------------------------------------------------

  #request(c: Conduit, op: string, args: Record<string, unknown>): Promise<unknown> {
    if (c.state !== 'up' || !c.ctlTx) return Promise.reject(peerLost(c));
    return this.#call(c.ctlTx, c.id, ++this.#reqSeq, op, args, c.id);
  }

  #call(
    tx: Channel,
    to: string,
    id: number,
    op: string,
    args: Record<string, unknown>,
    peer?: string,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new AmixError(
            ErrorCode.AMIX_ERR_TIMEOUT,
            `peer ${to === ANY ? 'daemon' : to} did not answer ${op} within ${this.#timeout} ms`,
            { details: { op, peer: to } },
          ),
        );
      }, this.#timeout);
      const p: Pending = { resolve, reject, timer, ...(peer ? { peer } : {}) };
      this.#pending.set(id, p);
      this.#post(tx, to, { kind: 'request', id, op, args }).catch((err: Error) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err);
      });
    });
  }

  #post(tx: Channel, to: string, m: ControlMessage): Promise<void> {
    const c = this.#peers.get(to);
    const sequence = c ? c.ctlSeq++ : 0;
    return tx.send(encodeEnvelope({ sender: this.id, receiver: to, sequence, payload: encodeControlBody(m) }));
  }

  // ---- helpers -------------------------------------------------------------------

  #server(): ZeromqOptions {
    const k = this.#opts.keys;
    if (!k) return {};
    return { curve: { publicKey: k.publicKey, secretKey: k.secretKey, allow: new AllowList(this.#opts.allow ?? []) } };
  }

  #client(): { zeromq: ZeromqOptions } {
    const k = this.#opts.keys;
    return { zeromq: k ? { curve: { publicKey: k.publicKey, secretKey: k.secretKey } } : {} };
  }

  async #open(options: Record<string, unknown>, onEvent?: (e: ChannelEvent) => void): Promise<Channel> {
    const ch = await this.#host.fabric.registry.open('zeromq', options);
    if (onEvent) ch.on('event', onEvent);
    return ch;
  }

  #checkUp(c: Conduit): void {
    if (c.state !== 'up') throw peerLost(c);
  }

  #link(id: string): RemoteLink {
    const rl = this.#links.get(id);
    if (!rl)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `no remote link ${describe(id)}`, { details: { link: id } });
    return rl;
  }

  #linkInfo(rl: RemoteLink): RemoteLinkInfo {
    const c = this.#peers.get(rl.peer);
    // The local half of each outgoing flow is a fabric link: brokers, hops and state come from it.
    const local = rl.flows.map((f) => {
      const out = c?.out.get(key(f.sender, f.receiver));
      return out && this.#host.fabric.hasLink(out.link) ? this.#host.fabric.link(out.link) : undefined;
    });
    const suspended = c?.state !== 'up' || local.some((l) => l?.state === 'suspended');
    return {
      id: rl.id,
      a: rl.a,
      b: [rl.b],
      direction: rl.direction,
      steps: DIRECTION_STEPS[rl.direction],
      mode: 'add',
      state: suspended ? 'suspended' : 'active',
      suspendedMs: 0,
      brokers: local.flatMap((l) => l?.brokers ?? []),
      flows: [
        ...local.flatMap((l) => l?.flows ?? []),
        { from: `conduit:${this.id}`, to: `conduit:${rl.peer}`, primitive: 'zeromq' },
      ],
      remote: { peer: rl.peer, flows: rl.flows.map((f, i) => ({ ...f, ...(local[i] ? { link: local[i]!.id } : {}) })) },
    };
  }

  #peerInfo(
    c: Conduit | undefined,
    endpoint: string | undefined,
    state: PeerInfo['state'],
    error: AmixError | undefined,
  ): PeerInfo {
    return {
      id: c?.id,
      endpoint,
      state,
      ...(error ? { error: { code: error.code ?? ErrorCode.AMIX_ERR_INTERNAL, message: error.message } } : {}),
      stats: c ? { ...c.stats } : newConduitStats(),
      links: c ? this.#linksOf(c) : [],
    };
  }
}

interface HelloArgs {
  id: string;
  version: number;
  control: ZeromqAddress;
  data: ZeromqAddress;
}

function checkHello(a: unknown): HelloArgs {
  const h = a as Partial<HelloArgs> | null;
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
  return h as HelloArgs;
}

/** The address of a peer's control receiving end, from its `--listen` endpoint and key (all else is fixed). */
export function controlAddress(endpoint: string, publicKey?: string): ZeromqAddress {
  return {
    endpoint,
    ...(publicKey ? { serverPublicKey: publicKey } : {}),
    maxmsg: CTL_MAXMSG,
    minmsg: CTL_MINMSG,
    maxMessageBytes: CTL_MAX_BYTES,
    maxFrameBytes: maxFrameBytesFor(CTL_MAX_BYTES),
    discard: 'block',
  };
}

function key(sender: string, receiver: string): string {
  return `${sender}>${receiver}`;
}

/** The daemon (directory id) behind a point identifier, or a bare daemon id as control envelopes carry it. */
function dirOf(id: string): string | undefined {
  return parsePointId(id)?.directoryId ?? (DAEMON_ID.test(id) ? id : undefined);
}

function newConduitStats(): ConduitStats {
  return { sent: 0, received: 0, rejected: 0, gaps: 0, duplicates: 0 };
}

function peerLost(c: Conduit): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `peer daemon ${c.id} is ${c.state}`, {
    details: { peer: c.id, state: c.state },
    ...(c.error ? { cause: c.error } : {}),
  });
}

function hostOf(endpoint: string): string {
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
