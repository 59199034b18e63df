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
import { AllowList } from '../../primitives/zeromq/keys.js';
import type { ZeromqAddress, ZeromqOptions } from '../../primitives/zeromq.js';
import type { Conduit, Dial, RemoteLink } from './conduit.js';
import { encodeEnvelope } from './envelope.js';
import { ANY, dirOf, peerLost, type PeerHello, type PeerOps, type PeeringHost, type PeeringOptions } from './types.js';

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
}

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
  ctlRx: Channel | undefined;
  dataRx: Channel | undefined;
  closed = false;
  /** Envelopes that did not decode, or came from no known peer. */
  readonly counts = { badEnvelopes: 0, unknownSender: 0 };
  /** Requests to and from peers. */
  readonly rpc: RpcPeer<Route>;
  /** Answers peers' requests (set by the facade once the jobs exist). */
  handler: RpcHandler<Route> = () => {
    throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, 'peering is not started');
  };
  #lastBadLog = 0;

  constructor(host: PeeringHost, options: PeeringOptions) {
    this.host = host;
    this.opts = options;
    this.timeout = options.requestTimeoutMs ?? 10_000;
    this.helloGrace = options.helloGraceMs ?? 10_000;
    this.rpc = new RpcPeer<Route>({
      send: (m, r) => this.#send(m, r),
      handle: (op, args, from) => this.handler(op, args, from),
      onEvent: (type, body, from) => {
        if (type === 'rejected') this.host.broadcast({ type: 'remote.rejected', peer: dirOf(from.sender!), ...body });
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

  /** What this daemon says in its hello. */
  helloArgs(): PeerHello {
    return { id: this.id, version: PROTOCOL_VERSION, control: this.addresses.control, data: this.addresses.data };
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
  hello(tx: Channel): Promise<unknown> {
    return this.rpc.request('hello', { ...this.helloArgs() }, { timeoutMs: this.timeout, to: { tx, to: ANY } });
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
      this.host.log(`peering: cannot answer ${r.op} from ${r.sender}: no conduit to it`);
      return undefined;
    }
    return this.post(c.ctlTx, c.id, m).catch((err: Error) =>
      this.host.log(`peering: reply to ${c.id} failed: ${err.message}`),
    );
  }

  /** The receiving ends' CURVE server options. */
  server(): ZeromqOptions {
    const k = this.opts.keys;
    if (!k) return {};
    return { curve: { publicKey: k.publicKey, secretKey: k.secretKey, allow: new AllowList(this.opts.allow ?? []) } };
  }

  /** The sending ends' CURVE client options. */
  client(): { zeromq: ZeromqOptions } {
    const k = this.opts.keys;
    return { zeromq: k ? { curve: { publicKey: k.publicKey, secretKey: k.secretKey } } : {} };
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
