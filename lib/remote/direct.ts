/**
 * Direct remote links: each flow goes straight from the sending point's
 * process to the receiving point's process over the `zeromq` primitive with
 * CURVE, and no daemon is on its data path (`amix connect --direct`).
 *
 * How one flow is made. The daemon of the sending point drives it: it makes
 * a key pair for the flow's sending end and links its point, through its own
 * fabric, to a stand-in for the far point whose agent is this module's
 * proxy. When the fabric asks the proxy for a receiving end, the driver asks
 * the peer (`directOpen`, over the authenticated peering control channel,
 * with the client's public key). The peer links its point the same way,
 * from a stand-in for the sender: its fabric opens the ZeroMQ receiving end
 * in the receiving point's process, bound on the peering host, with a key
 * pair of its own and an allow-list of that one client key, and hands the
 * proxy the address. The address comes back, the driver's fabric opens the
 * sending end in its point's process with the client key pair, and messages
 * flow. Secret keys never leave the daemon that made them and the process
 * it gives them to; only public keys cross.
 *
 * What a direct link promises is the `zeromq` primitive's: credit, order,
 * re-send across a reconnect of the two processes, and no more. The
 * daemon-held guarantees of a conduit flow (its envelopes kept across a
 * restart of the sending daemon, the duplicate filter of `delivered.json`)
 * do not apply: see docs/delivery.md.
 *
 * @module
 */
import { AmixError, ErrorCode, describe } from '../core/errors.js';
import type { ChannelOptions } from '../core/primitive.js';
import type { PointView } from '../directory/index.js';
import { parsePointId } from '../directory/index.js';
import type { AgentTarget, Empty } from '../fabric/agent.js';
import { generateKeyPair, isCurveKey } from '../../primitives/zeromq/keys.js';
import type { ZeromqAddress } from '../../primitives/zeromq.js';
import type { Conduit, RemoteLink } from './conduit.js';
import { standInFor } from './flows.js';
import type { PeeringCore } from './state.js';
import { hostOf, key } from './types.js';

/** The primitive of every direct flow. */
export const DIRECT_PRIMITIVE = 'zeromq';
/** Direct links one peer may have set up here at once (each holds a port and a process's socket). */
export const MAX_DIRECT_PER_PEER = 256;

/** What a proxy end says to any link command it has no part in: its far end is the peer's point. */
const NOTHING: Empty = {};

/** One direct flow's half here: its local fabric link is the key of {@link Direct}'s table. */
interface Half {
  /** The peer it was set up with (`directClose` from that peer alone may end it). */
  readonly peer: string;
  /** The flow's {@link key}. */
  readonly flow: string;
  /** The peer's link (the far half), once known. */
  theirs: string | undefined;
  /** The peer's incarnation (its hello's epoch) when this half was made: the far half lives in that process. */
  readonly epoch: string | undefined;
}

/** @internal Sets up, lists and ends the direct flows of this daemon's remote links. */
export class Direct {
  readonly #core: PeeringCore;
  /** Every direct flow's half here, by its local fabric link. */
  readonly #halves = new Map<string, Half>();

  constructor(core: PeeringCore) {
    this.#core = core;
    // What the sessions call when a peer comes back (they do not know this module).
    core.reopenDirect = (c, f) => this.reopen(c, f);
    core.directBack = (c) => this.back(c);
  }

  /** The local links of the halves set up with peer `id`. */
  #of(id: string): string[] {
    return [...this.#halves].filter(([, h]) => h.peer === id).map(([link]) => link);
  }

  /**
   * Drive the flow from local point `from` to the peer's point `to`:
   * resolves the local fabric link's id once the sending end is connected.
   */
  async openOut(c: Conduit, from: PointView, to: PointView): Promise<string> {
    const client = generateKeyPair();
    const flow = key(from.id, to.id);
    const proxy: AgentTarget = {
      request: (async (op: string, args: Record<string, unknown>) => {
        if (op === 'openReceiver') {
          const link = args.link as string;
          const r = await this.#core.request(c, 'directOpen', {
            sender: from.id,
            receiver: to.id,
            clientKey: client.publicKey,
            link,
          });
          const theirs = typeof r.link === 'string' ? r.link : undefined;
          this.#halves.set(link, { peer: c.id, flow, theirs, epoch: c.epoch });
          return { address: checkAddress(c, r.address) };
        }
        if (op === 'closeLink') return this.#closePeer(c, args.link as string);
        return proxyAnswer(op);
      }) as AgentTarget['request'],
    };
    const link = await this.#core.host.fabric.connect(from.name, null, {
      direction: 'aToB',
      as: { name: to.id, target: proxy },
      standIn: standInFor(c, to),
      hop: { primitive: DIRECT_PRIMITIVE, options: { zeromq: { curve: client } } as ChannelOptions },
    });
    return link.id;
  }

  /**
   * Peer `c` came back. If it is the process the flow's far half lives in,
   * and our half is still up, the flow goes on as it was. Otherwise (a new
   * process: the far half died with the old one) our half is ended, and
   * with it what it held, and the flow is made again: by us when our point
   * sends, by the peer when its point does. `f.direct` becomes the new link.
   */
  async reopen(c: Conduit, f: RemoteLink['flows'][number]): Promise<void> {
    const old = f.direct;
    if (old !== undefined && this.#core.host.fabric.hasLink(old) && this.#halves.get(old)?.epoch === c.epoch) return;
    if (old !== undefined) {
      // Off the table first: the old far half is gone, so there is nothing to tell the peer.
      this.#halves.delete(old);
      await this.end(old).catch(() => undefined);
    }
    if (f.local === 'out') {
      const to = (await this.#core.request(c, 'resolve', { nameOrId: f.receiver, hops: 0 })) as PointView | null;
      if (!to || to.id !== f.receiver)
        throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `peer ${c.id} no longer knows ${describe(f.receiver)}`);
      f.direct = await this.openOut(c, this.#local(f.sender), to);
    } else f.direct = await this.awaitIn(c, f.sender, f.receiver);
  }

  /**
   * A flow from the peer's point `senderId` to our `receiverId`: the peer
   * drives it (`directOut`, which comes back here as `directOpen`). Resolves
   * our half's fabric link.
   */
  async awaitIn(c: Conduit, senderId: string, receiverId: string): Promise<string> {
    await this.#core.request(c, 'directOut', { sender: senderId, receiver: receiverId });
    const link = this.flowLink(senderId, receiverId);
    if (link === undefined)
      throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `peer ${c.id} answered directOut without opening the flow here`);
    return link;
  }

  /** The local link of the direct flow `sender` -> `receiver` this daemon has a half of, if any. */
  flowLink(sender: string, receiver: string): string | undefined {
    const flow = key(sender, receiver);
    // The latest half of the flow (a Map iterates in insertion order).
    let found: string | undefined;
    for (const [link, h] of this.#halves) if (h.flow === flow) found = link;
    return found;
  }

  /**
   * The peer drives a flow from its point `senderId` to our `receiverId`:
   * open the receiving end in the receiving point's process (bound on the
   * peering host, letting in `clientKey` only) and return its address.
   */
  async openIn(
    c: Conduit,
    senderId: string,
    receiverId: string,
    clientKey: string,
    peerLink: string,
  ): Promise<{ address: ZeromqAddress; link: string }> {
    // The sender must be one of the peer's own points: its key says who it is, never a field it sends.
    if (parsePointId(senderId)?.directoryId !== c.id)
      throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `peer ${c.id} cannot send as ${describe(senderId)}`);
    if (!isCurveKey(clientKey))
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'directOpen needs a Z85 CURVE clientKey', {
        details: { option: 'clientKey' },
      });
    const receiver = this.#local(receiverId);
    const rec = receiver.record as { role?: string; characteristics?: { scope?: string } };
    if (rec.role === 'sender')
      throw new AmixError(ErrorCode.AMIX_ERR_BAD_DIRECTION, `point "${receiver.name}" is a sender and cannot receive`);
    // A thread point runs in a worker of this daemon's process, where ZeroMQ's one ZAP endpoint is peering's:
    // its receiving end could not check the flow's key.
    if (rec.characteristics?.scope === 'thread')
      throw new AmixError(
        ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
        `a direct link needs a receiving point with a process of its own; "${receiver.name}" is a thread point of ${this.#core.id} (register it with scope process, or link without direct)`,
        { details: { from: senderId, to: receiver.name, receivePrimitive: DIRECT_PRIMITIVE } },
      );
    const held = this.#of(c.id).length;
    if (held >= MAX_DIRECT_PER_PEER)
      throw new AmixError(
        ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
        `peer ${c.id} has ${held} direct links here already (at most ${MAX_DIRECT_PER_PEER})`,
        { details: { limit: MAX_DIRECT_PER_PEER } },
      );
    const server = generateKeyPair();
    let address: ZeromqAddress | undefined;
    const proxy: AgentTarget = {
      request: (async (op: string, args: Record<string, unknown>) => {
        // The sending end is the peer's: the address is all this side gives it.
        if (op === 'openSender') {
          address = args.address as ZeromqAddress;
          return NOTHING;
        }
        if (op === 'closeLink') return this.#closePeer(c, args.link as string);
        return proxyAnswer(op);
      }) as AgentTarget['request'],
    };
    const from = (await this.#core.request(c, 'resolve', { nameOrId: senderId, hops: 0 })) as PointView | null;
    if (!from || from.id !== senderId)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `peer ${c.id} does not know ${describe(senderId)}`);
    const bind = `tcp://${hostOf(this.#core.opts.listen ?? 'tcp://127.0.0.1:*')}:*`;
    const link = await this.#core.host.fabric.connect(null, receiver.name, {
      direction: 'aToB',
      as: { name: senderId, target: proxy },
      standIn: standInFor(c, from),
      hop: {
        primitive: DIRECT_PRIMITIVE,
        options: { zeromq: { bind, curve: { ...server, allow: [clientKey] } } } as ChannelOptions,
      },
    });
    this.#halves.set(link.id, { peer: c.id, flow: key(senderId, receiver.id), theirs: peerLink, epoch: c.epoch });
    return { address: address!, link: link.id };
  }

  /** A point of this daemon by identifier; `AMIX_ERR_UNKNOWN_POINT` otherwise. */
  #local(id: string): PointView {
    const v = this.#core.host.directory.getPoint(id);
    if (!v || parsePointId(v.id)?.directoryId !== this.#core.id)
      throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_POINT, `no point identified ${describe(id)} on ${this.#core.id}`);
    return v;
  }

  /** Our link `link` ended: tell the peer to end its half (once; an error there changes nothing here). */
  async #closePeer(c: Conduit, link: string): Promise<Empty> {
    const theirs = this.#halves.get(link)?.theirs;
    if (!this.#halves.delete(link)) return NOTHING;
    if (theirs !== undefined && c.state === 'up')
      await this.#core.request(c, 'directClose', { link: theirs }).catch(() => undefined);
    return NOTHING;
  }

  /**
   * Peer `c` said hello again. Every direct link set up with it whose far
   * half lived in another process of it is ended here (that half died with
   * the process; nothing of it is told). {@link reopen} makes this daemon's
   * own remote links' flows again afterwards; the peer makes its own.
   */
  async back(c: Conduit): Promise<void> {
    for (const link of this.#of(c.id)) {
      if (this.#halves.get(link)?.epoch === c.epoch) continue;
      this.#halves.delete(link);
      await this.end(link).catch(() => undefined);
    }
  }

  /** The peer ended its half of our direct link `link`: end ours (only a link set up with that peer). */
  async close(c: Conduit, link: string): Promise<void> {
    if (this.#halves.get(link)?.peer !== c.id) return;
    // Off the table first: the fabric's closeLink on the proxy then has nothing to tell the peer back.
    this.#halves.delete(link);
    await this.end(link);
  }

  /** End a direct flow this daemon holds a half of (the remote link's disconnect). */
  async end(link: string): Promise<void> {
    if (this.#core.host.fabric.hasLink(link)) await this.#core.host.fabric.disconnect(link);
  }
}

/** The link commands a proxy end takes part in by doing nothing: its far end is the peer's point. */
const NO_PART = new Set(['listReceiver', 'suspend', 'resume', 'hold', 'fence', 'seal', 'cycle']);

/** A proxy end's answer to the link commands other than open and close: the far end is not here. */
function proxyAnswer(op: string): Empty | { held: number } {
  if (op === 'untaken') return { held: 0 };
  if (NO_PART.has(op)) return NOTHING;
  throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `a direct link's far end takes no ${describe(op)} here`, {
    details: { option: 'op' },
  });
}

/**
 * The peer's answer, checked before a local process dials it: a TCP endpoint
 * on the host the peer's own endpoints are on (an authenticated peer may not
 * point this daemon's processes at anything else), with a CURVE server key.
 */
function checkAddress(c: Conduit, address: unknown): ZeromqAddress {
  const a = address as ZeromqAddress | null;
  const known = c.dataEndpoint ?? c.ctlEndpoint;
  let ok = typeof a === 'object' && a !== null && typeof a.endpoint === 'string' && isCurveKey(a.serverPublicKey);
  try {
    // hostOf takes tcp://HOST:PORT only (no ipc://, no inproc://).
    ok &&= known !== undefined && hostOf(a!.endpoint) === hostOf(known);
  } catch {
    ok = false;
  }
  if (!ok)
    throw new AmixError(
      ErrorCode.AMIX_ERR_PROTOCOL,
      `peer ${c.id} answered a direct link with an address this daemon will not dial: ${describe(a?.endpoint)}`,
    );
  return a!;
}
