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
 * Control messages are amixd's own control frame bodies (`lib/core/controlCodec.ts`) inside
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
import { join } from 'node:path';
import type { Channel } from '../core/channel.js';
import { decodeControl, type ControlMessage } from '../core/controlCodec.js';
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import { Lifecycle } from '../core/lifecycle.js';
import type { PointView } from '../directory/index.js';
import { parsePointId } from '../directory/index.js';
import { DIRECTION_STEPS, type Direction } from '../fabric/point.js';
import { isLoopback, type ZeromqAddress } from '../../primitives/zeromq.js';
import type { Conduit, Dial, RemoteLink } from './conduit.js';
import { remoteLinkInfo } from './linkInfo.js';
import { DataLoop } from './dataLoop.js';
import { decodeEnvelope } from './envelope.js';
import { Flows } from './flows.js';
import { peerHandler } from './handlers.js';
import { Direct } from './direct.js';
import { Sessions, readPeeringState } from './sessions.js';
import { Slot } from './slots.js';
import { PeeringCore, type Route } from './state.js';
import {
  CTL_MAXMSG,
  CTL_MAX_BYTES,
  DATA_MAXMSG,
  CTL_MINMSG,
  FRONT_MAXMSG,
  FRONT_MAX_BYTES,
  FRONT_MAX_SESSIONS,
  MAX_HELLOS_IN_FLIGHT,
  SLOT_MAX_SESSIONS,
  DAEMON_ID,
  dirOf,
  hostOf,
  key,
  newConduitStats,
  peerLost,
  type PeerConfig,
  type PeerInfo,
  type PeeringHost,
  type PeeringOptions,
  type PeeringStatus,
  type RemoteLinkInfo,
} from './types.js';
export { Conduit } from './conduit.js';
export { checkPeerEndpoint, controlAddress, helloText } from './types.js';
export type {
  ConduitStats,
  PeerConfig,
  PeerHello,
  PeerInfo,
  PeeringHost,
  PeeringOptions,
  PeeringStatus,
  RemoteEvent,
  RemoteLinkInfo,
} from './types.js';

/**
 * A daemon's peering: its two receiving ends, one {@link Conduit} per peer,
 * the remote links it made, and the directory federation through them. A
 * facade over the jobs: sessions (`sessions.ts`), flows (`flows.ts`), the
 * data loop (`dataLoop.ts`), the peer op table (`handlers.ts`) and the
 * directory adapter (`federation.ts`), which share {@link PeeringCore}.
 */
export class Peering {
  readonly #core: PeeringCore;
  readonly #sessions: Sessions;
  readonly #flows: Flows;
  readonly #direct: Direct;
  readonly #data: DataLoop;
  #linkSeq = 0;
  #loops: Promise<void>[] = [];
  readonly #life = new Lifecycle('peering');

  constructor(host: PeeringHost, options: PeeringOptions) {
    if (options.keys && options.allow === undefined) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        'peering with keys needs an allow-list of peer public keys (--allow FILE)',
        { details: { option: 'allow' } },
      );
    }
    const core = new PeeringCore(host, options);
    this.#core = core;
    this.#sessions = new Sessions(core);
    this.#flows = new Flows(core);
    this.#data = new DataLoop(core, this.#sessions, this.#flows);
    this.#direct = new Direct(core);
    core.handler = peerHandler(core, this.#sessions, this.#flows, this.#direct);
    core.flowEvent = (type, body, from) => this.#flowEvent(type, body, from);
    core.resendOut = (c, k) => {
      const f = c.out.get(k);
      if (f) this.#flows.resend(c, f, -1);
    };
  }

  /**
   * A peer's per-flow credit event, about our flows to it: `flowAcks` (its
   * points took so much: forget it, send more) or `resend` (it lost some).
   * Body fields come off the network and are checked; a flow not ours to
   * that peer is ignored.
   */
  #flowEvent(type: string, body: Record<string, unknown>, from: Route): void {
    const dir = from.sender === undefined ? undefined : dirOf(from.sender);
    // Keyed: the conduit of the key the event came in with (its sender's id was checked against it).
    const c = from.slot ? from.slot.conduit : dir === undefined ? undefined : this.#core.peers.get(dir);
    if (!c || c.id !== dir) return;
    if (type === 'flowAcks') {
      const flows = body.flows;
      if (!Array.isArray(flows)) return;
      for (const e of flows as unknown[]) {
        if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') continue;
        const f = c.out.get(key(e[0], e[1]));
        if (f) this.#flows.acked(f, e[2] as number);
      }
    } else if (type === 'resend') {
      const { sender, receiver, from: start } = body;
      if (typeof sender !== 'string' || typeof receiver !== 'string') return;
      if (typeof start !== 'number' || !Number.isSafeInteger(start) || start < -1) return;
      const f = c.out.get(key(sender, receiver));
      if (f) this.#flows.resend(c, f, start);
    }
  }

  /** This daemon's directory id: the `sender` of its control envelopes. */
  get id(): string {
    return this.#core.id;
  }

  /**
   * The control endpoint peers dial, and (insecure) the data endpoint they
   * send to; keyed, each allowed key has its own (`status().slots`).
   */
  get addresses(): { control: ZeromqAddress; data?: ZeromqAddress } {
    const core = this.#core;
    return {
      control: core.ctlRx!.address as ZeromqAddress,
      ...(core.dataRx ? { data: core.dataRx.address as ZeromqAddress } : {}),
    };
  }

  /**
   * Bind the receiving ends and start dialling the configured peers (in the
   * background). Keyed: the `--listen` end for hellos, and per allowed key a
   * control and a data end only that key may reach. Insecure: one control
   * and one data end for everyone. Without keys and without `insecure`,
   * `AMIX_ERR_INVALID_ARG`: there is no unauthenticated peering by default.
   */
  async start(): Promise<void> {
    const core = this.#core;
    const listen = core.opts.listen ?? 'tcp://127.0.0.1:*';
    const host = hostOf(listen);
    // A symlink at peering.json is not followed: the file is read and replaced, never written through.
    const saved = await readPeeringState(join(core.host.stateDir, 'peering.json'));
    await core.delivery.load();
    if (!core.keys) {
      if (!core.opts.insecure) {
        throw new AmixError(
          ErrorCode.AMIX_ERR_INVALID_ARG,
          `refusing to peer on ${listen} without CURVE keys: any process that can reach it (on loopback, every local user) could act as a peer. Give --keys and --allow, or --insecure to accept that`,
          { details: { option: 'keys' } },
        );
      }
      core.host.log(
        `amixd: WARNING: peering on ${listen} with --insecure: peers are NOT authenticated; any process that can reach it${isLoopback(listen) ? ' (on loopback: every local user)' : ''} can say hello, query the directory and send to points`,
      );
      core.ctlRx = await core.open({
        maxmsg: CTL_MAXMSG,
        minmsg: CTL_MINMSG,
        maxMessageBytes: CTL_MAX_BYTES,
        zeromq: { bind: listen },
      });
      core.dataRx = await this.#bindKept(saved.data, host, { maxmsg: DATA_MAXMSG }, undefined);
      this.#sessions.remember(saved.known);
      this.#loops.push(this.#controlLoop(core.ctlRx), this.#data.run(core.dataRx));
    } else {
      for (const p of core.opts.peers ?? []) {
        if (!p.publicKey || !core.allow.has(p.publicKey) || p.publicKey === core.keys.publicKey)
          throw new AmixError(
            ErrorCode.AMIX_ERR_INVALID_ARG,
            `peer ${p.endpoint} needs its public key (--peer-key), listed in --allow and not this daemon's own: keyed peering only talks to listed keys`,
            { details: { option: 'peer-key', endpoint: p.endpoint } },
          );
      }
      // The shared end knows nothing of a sender until its hello: small messages, few of them, few sessions.
      core.ctlRx = await core.open({
        maxmsg: FRONT_MAXMSG,
        minmsg: FRONT_MAXMSG / 2,
        maxMessageBytes: FRONT_MAX_BYTES,
        zeromq: { ...core.server(), bind: listen, batchBytes: FRONT_MAX_BYTES, maxSessions: FRONT_MAX_SESSIONS },
      });
      this.#loops.push(this.#controlLoop(core.ctlRx));
      for (const key of core.allow) if (key !== core.keys.publicKey) await this.#openSlot(key, saved.slots?.[key]);
    }
    await this.#sessions.savePins();
    core.host.log(
      `amixd peering: control ${core.ctlRx.address.endpoint as string}${core.keys ? `, CURVE, ${core.slots.size} allowed keys` : `, data ${core.addresses.data.endpoint}`}`,
    );
    for (const config of core.opts.peers ?? []) {
      const d: Dial = { config, state: 'connecting' };
      core.dials.push(d);
      void this.#sessions.dial(d);
    }
  }

  /** A slot for allowed `key`: its control and data receiving ends (at the ports `kept` had) and their loops. */
  async #openSlot(key: string, kept: { control?: string; data?: string; id?: string } | undefined): Promise<Slot> {
    const core = this.#core;
    const host = hostOf(core.opts.listen ?? 'tcp://127.0.0.1:*');
    const named = core.allow.idOf(key);
    // A pin from peering.json counts unless the allow-list now names an id (for this key or the pinned one).
    const pinned =
      typeof kept?.id === 'string' && DAEMON_ID.test(kept.id) && core.allow.keyOf(kept.id) === undefined
        ? kept.id
        : undefined;
    const slot = new Slot(key, named ?? pinned, named !== undefined);
    core.slots.set(key, slot);
    slot.ctlRx = await this.#bindKept(
      kept?.control,
      host,
      { maxmsg: CTL_MAXMSG, minmsg: CTL_MINMSG, maxMessageBytes: CTL_MAX_BYTES },
      key,
    );
    slot.dataRx = await this.#bindKept(kept?.data, host, { maxmsg: DATA_MAXMSG }, key);
    this.#loops.push(this.#controlLoop(slot.ctlRx, slot), this.#data.run(slot.dataRx, slot));
    return slot;
  }

  /**
   * Allow one more key after start (cluster discovery): bound to daemon `id`,
   * with a slot of its own. No-op for a key already allowed, or without keys.
   */
  async allowKey(publicKey: string, id: string): Promise<void> {
    const core = this.#core;
    if (!core.keys || core.closed || core.slots.has(publicKey) || publicKey === core.keys.publicKey) return;
    core.allow.add(publicKey, id);
    await this.#openSlot(publicKey, undefined);
    await this.#sessions.savePins();
  }

  /**
   * Dial one more peer after start (cluster discovery); no-op when that
   * endpoint is dialled already, unless it refused this daemon (its side may
   * not have allowed this key yet then): that dial is replaced by a fresh one.
   */
  addPeer(config: PeerConfig): void {
    const core = this.#core;
    const old = core.dials.find((d) => d.config.endpoint === config.endpoint);
    if (core.closed || (old && old.state !== 'refused')) return;
    if (old) {
      old.dropped = true;
      core.dials.splice(core.dials.indexOf(old), 1);
      void old.tx?.destroy().catch(() => {});
    }
    const d: Dial = { config, state: 'connecting' };
    core.dials.push(d);
    void this.#sessions.dial(d);
  }

  /** The conduit of peer daemon `id`, if there is one (up or not). */
  conduit(id: string): Conduit | undefined {
    return this.#core.peers.get(id);
  }

  /**
   * Peer `id` is gone by another account (the cluster's heartbeat stopped):
   * mark it lost now, its links' owners told `remote.peerLost`, rather than
   * when its channels notice. True when it was up.
   */
  markLost(id: string, reason: string): boolean {
    const c = this.#core.peers.get(id);
    if (!c || c.state !== 'up') return false;
    this.#sessions.lost(c, new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, reason, { details: { peer: id } }));
    return true;
  }

  /** Peer `id`, marked lost by {@link markLost}, is back (the same process): its conduit is up again. */
  revive(id: string): boolean {
    const c = this.#core.peers.get(id);
    return c ? this.#sessions.revive(c) : false;
  }

  /**
   * Bind a receiving end (only for `key` when given) at the endpoint it had
   * before, kept in `peering.json`: peers' reconnecting channels find it
   * there after a restart. A new port if that one is gone.
   */
  async #bindKept(
    kept: string | undefined,
    host: string,
    options: Record<string, unknown>,
    key: string | undefined,
  ): Promise<Channel> {
    const core = this.#core;
    const wanted = typeof kept === 'string' && hostOf(kept) === host ? kept : `tcp://${host}:*`;
    const zeromq = {
      ...(key ? { ...core.server([key]), maxSessions: SLOT_MAX_SESSIONS } : {}),
    };
    try {
      return await core.open({ ...options, zeromq: { ...zeromq, bind: wanted } });
    } catch (err) {
      if (wanted.endsWith(':*')) throw err;
      core.host.log(
        `peering: cannot bind ${wanted} again (${(err as Error).message}); peers will be told the new endpoint`,
      );
      return core.open({ ...options, zeromq: { ...zeromq, bind: `tcp://${host}:*` } });
    }
  }

  /**
   * Ask peer daemon `peer` for one of its service ops (`PeerOps.service`).
   * `AMIX_ERR_PEER_LOST` when it is not up; the peer's own error otherwise.
   */
  serviceRequest(peer: string, op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const c = this.#core.peers.get(peer);
    if (!c)
      return Promise.reject(new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `no peer ${describe(peer)}`, { details: {} }));
    return this.#core.request(c, 'service', { op, args });
  }

  /** Every peer, dialled or dialling in. */
  status(): PeeringStatus {
    const peers: PeerInfo[] = [];
    const seen = new Set<string>();
    for (const d of this.#core.dials) {
      const c = d.peer ? this.#core.peers.get(d.peer) : undefined;
      if (c) seen.add(c.id);
      peers.push(this.#peerInfo(c, d.config.endpoint, c ? c.state : d.state, c?.error ?? d.error));
    }
    for (const c of this.#core.peers.values())
      if (!seen.has(c.id)) peers.push(this.#peerInfo(c, c.ctlEndpoint, c.state, c.error));
    const core = this.#core;
    const rxs = [core.ctlRx, core.dataRx, ...[...core.slots.values()].flatMap((s) => [s.ctlRx, s.dataRx])];
    const sum = (k: 'refused' | 'badFrames'): number =>
      rxs.reduce((n, ch) => n + ((ch?.stats() as { refused?: number; badFrames?: number } | undefined)?.[k] ?? 0), 0);
    return {
      id: this.id,
      insecure: !core.keys,
      ...(core.ctlRx ? { control: core.ctlRx.address.endpoint as string } : {}),
      ...(core.dataRx ? { data: core.addresses.data.endpoint, dataAddress: core.addresses.data } : {}),
      ...core.counts,
      delivered: { flows: core.delivery.size, untracked: core.delivery.untracked },
      badFrames: sum('badFrames'),
      refused: core.refusedClients,
      refusedHandshakes: sum('refused'),
      refusedKeys: [...core.refusedKeys.values()].reverse(),
      refusals: [...core.refusals.values()].reverse(),
      ...(core.keys
        ? {
            slots: [...core.slots.values()].map((s) => ({
              key: s.key,
              ...(s.id !== undefined ? { id: s.id } : {}),
              control: (s.ctlRx?.address.endpoint as string | undefined) ?? '',
              data: (s.dataRx?.address.endpoint as string | undefined) ?? '',
              ...(s.dataRx ? { dataAddress: s.dataRx.address as ZeromqAddress } : {}),
              ...s.stats,
            })),
          }
        : {}),
      peers,
    };
  }

  /** True when `id` is one of this daemon's remote links. */
  hasLink(id: string): boolean {
    return this.#core.links.has(id);
  }

  /** Snapshots of the remote links this daemon made. */
  links(): RemoteLinkInfo[] {
    return [...this.#core.links.values()].map((l) => this.#linkInfo(l));
  }

  /**
   * Find a point on a peer by name or identifier (the directory's federated
   * resolve). Resolves the view and the conduit that reaches it, or undefined.
   */
  async resolve(nameOrId: string): Promise<{ view: PointView; peer: Conduit } | undefined> {
    const view = await this.#core.host.directory.resolve(nameOrId);
    if (!view) return undefined;
    const dirId = parsePointId(view.id)?.directoryId;
    const peer = dirId === undefined ? undefined : this.#core.peers.get(dirId);
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
    direct = false,
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
        const flow: RemoteLink['flows'][number] = { sender: from.id, receiver: to.id, local: out ? 'out' : 'in' };
        rl.flows.push(flow);
        // Direct: the sender's daemon drives the flow (ours, or the peer's when its point sends).
        if (direct)
          flow.direct = await (out ? this.#direct.openOut(c, from, to) : this.#direct.awaitIn(c, from.id, to.id));
        else await this.#flows.openFlow(c, from, to, out);
      }
    } catch (err) {
      await this.#flows.closeFlows(c, rl).catch(() => {});
      throw err;
    }
    this.#core.links.set(rl.id, rl);
    this.#core.host.broadcast({ type: 'remote.linkConnected', link: rl.id, peer: c.id, a: rl.a, b: rl.b, direction });
    return this.#linkInfo(rl);
  }

  /** Take a remote link down: each flow is flushed, then closed at both daemons. */
  async disconnect(id: string): Promise<void> {
    const rl = this.#link(id);
    this.#core.links.delete(id);
    const c = this.#core.peers.get(rl.peer);
    if (c) await this.#flows.closeFlows(c, rl);
    this.#core.host.broadcast({ type: 'remote.linkDisconnected', link: id, peer: rl.peer });
  }

  /** Suspend (or resume) a remote link's flows: local ones here, the others at the peer. */
  async setSuspended(id: string, on: boolean): Promise<RemoteLinkInfo> {
    const rl = this.#link(id);
    const c = this.#core.peers.get(rl.peer);
    const fabric = this.#core.host.fabric;
    for (const f of rl.flows) {
      if (f.local === 'out') {
        // A conduit flow's local link, or a direct flow's own (its sending end is in our point's process).
        const link = f.direct ?? c?.out.get(key(f.sender, f.receiver))?.link;
        if (link !== undefined && fabric.hasLink(link)) await (on ? fabric.suspend(link) : fabric.resume(link));
      } else if (c) await this.#core.request(c, on ? 'suspend' : 'resume', { sender: f.sender, receiver: f.receiver });
    }
    return this.#linkInfo(rl);
  }

  /** Close every conduit and both receiving ends. Idempotent: later calls return the same promise. */
  close(): Promise<void> {
    return this.#life.close(() => this.#close());
  }

  /** Resolves once peering has closed; never rejects. */
  get closed(): Promise<Error | undefined> {
    return this.#life.closed;
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#core.closed = true;
    this.#core.rpc.close();
    this.#data.credit.stop();
    this.#sessions.close();
    for (const s of this.#core.slots.values()) s.close();
    for (const c of this.#core.peers.values()) {
      const dp = this.#core.dirPeers.get(c.id);
      if (dp && !this.#core.host.directory.closed) this.#core.host.directory.removePeer(dp);
      c.wakeAll();
      await c.endpoint.close().catch(() => {});
      await c.dataTx?.destroy().catch(() => {});
      await c.ctlTx?.destroy().catch(() => {});
    }
    for (const d of this.#core.dials) await d.tx?.destroy().catch(() => {});
    await this.#core.ctlRx?.destroy().catch(() => {});
    await this.#core.dataRx?.destroy().catch(() => {});
    for (const s of this.#core.slots.values()) {
      await s.ctlRx?.destroy().catch(() => {});
      await s.dataRx?.destroy().catch(() => {});
    }
    await this.#sessions.flushPins();
    await Promise.allSettled(this.#loops);
    await this.#core.delivery.close();
  }

  /**
   * Take every control envelope off a control receiving end and hand its
   * message to the RpcPeer. Keyed, the shared end passes hellos only, and a
   * slot's end only messages whose sender is the slot's daemon.
   */
  async #controlLoop(rx: Channel, slot?: Slot): Promise<void> {
    const front = this.#core.keys !== undefined && slot === undefined;
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
        this.#core.bad(err as AmixError, 'control');
        continue;
      }
      const hello = msg.kind === 'request' && msg.op === 'hello';
      if (front && (!hello || this.#core.hellosInFlight >= MAX_HELLOS_IN_FLIGHT)) {
        // Nothing but a hello is taken before a key is known, and only so many at once.
        this.#core.counts.unhelloed++;
        this.#core.logLimited(`peering: dropped a control message from ${sender} before its hello`);
        continue;
      }
      if (slot && !hello && slot.id !== undefined && dirOf(sender) !== slot.id) {
        this.#core.spoofed(slot, sender, 'control');
        continue;
      }
      // Replies settle our requests; requests go to the peer handler, with the sender to answer.
      this.#core.rpc.receive(msg, { to: sender, sender, slot });
    }
  }

  #checkUp(c: Conduit): void {
    if (c.state !== 'up') throw peerLost(c);
  }

  #link(id: string): RemoteLink {
    const rl = this.#core.links.get(id);
    if (!rl)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `no remote link ${describe(id)}`, { details: { link: id } });
    return rl;
  }

  #linkInfo(rl: RemoteLink): RemoteLinkInfo {
    return remoteLinkInfo(this.#core, rl);
  }

  #peerInfo(
    c: Conduit | undefined,
    endpoint: string | undefined,
    state: PeerInfo['state'],
    error: AmixError | undefined,
  ): PeerInfo {
    const slot = c ? this.#core.slotById(c.id) : undefined;
    return {
      id: c?.id,
      endpoint,
      state,
      ...(slot ? { key: slot.key } : {}),
      ...(error ? { error: { code: error.code ?? ErrorCode.AMIX_ERR_INTERNAL, message: error.message } } : {}),
      stats: c ? { ...c.stats } : newConduitStats(),
      links: c ? this.#core.linksOf(c) : [],
    };
  }
}
