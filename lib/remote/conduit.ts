/**
 * The conduit point for one peer daemon, and the records of the flows
 * through it, the remote links and the configured peers being dialled.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import type { AmixError } from '../core/errors.js';
import { WaitList } from '../core/waitList.js';
import { Agent } from '../fabric/agent.js';
import { Endpoint } from '../fabric/endpoint.js';
import type { ExternalEnd, Fabric } from '../fabric/fabric.js';
import type { Direction } from '../fabric/point.js';
import type { EnvelopeReader, EnvelopeWriter } from './envelope.js';
import type { FlowSlabs } from './slabPool.js';
import { newConduitStats, type ConduitStats, type PeerConfig, type PeerInfo } from './types.js';

/** @internal One flow through a conduit. */
export interface Flow {
  key: string;
  sender: string;
  receiver: string;
  /** The local fabric link (conduit ↔ point). */
  link: string;
}

/** @internal A flow from a local point to the peer. */
export interface OutFlow extends Flow {
  /** The sequence number of the next message taken from the local point. */
  seq: number;
  /** Wraps one message of this flow (identifiers encoded once). */
  wrap: EnvelopeWriter;
  /** The first message the peer has not reported taken by its point: the flow's credit is `acked + FLOW_WINDOW`. */
  acked: number;
  /** The envelopes of messages `acked` .. `seq - 1`, kept until reported taken, for re-sending. */
  kept: Uint8Array[];
  /** Bytes in {@link kept}. */
  keptBytes: number;
  /** The pooled slabs {@link kept} lies in (reused once taken and sent). */
  slabs: FlowSlabs;
  /** The pump, waiting for credit. */
  readonly credit: WaitList;
  /** The flow's sends to the peer, one after the other: the pump's batches and re-sends keep their order. */
  tail: Promise<unknown>;
  /** Where a queued re-send starts, while it waits in {@link tail} (a later ask from there or beyond adds nothing). */
  resendQueued: number | undefined;
  /** Taken down: the pump stops at its next wait. */
  closed: boolean;
}

/** @internal A flow from the peer to a local point. */
export interface InFlow extends Flow {
  ch: Channel;
  /**
   * The next sequence number taken: lower ones are duplicates, higher ones a
   * gap (dropped, and a re-send asked for). Undefined until the flow's start
   * is known (its `open`, its kept number in `delivered.json`, or a re-sent
   * envelope's `base`): nothing is taken before, lest a re-send be mistaken
   * for duplicates.
   */
  expected: number | undefined;
  /** Messages taken off the wire that the local link could not take at once, oldest first (at most about FLOW_WINDOW). */
  parked: Uint8Array[];
  /** Messages being handed to {@link ch} by the drain now. */
  draining: number;
  /** The `taken` last reported to the sender. */
  reported: number;
  /**
   * Messages below it that are taken are counted `redelivered`: after this
   * daemon restarted, a flow kept in `delivered.json` may be sent again what
   * its point took after the last record. Infinity until the sender's `open`
   * says how far it had sent; 0 for a flow this process opened.
   */
  suspectBelow: number;
  /** The flow was kept in `delivered.json` by an earlier process of this daemon. */
  restored: boolean;
  /** A re-send asked for: from where, and when (0: none outstanding). */
  askedFrom: number;
  askedAt: number;
  /** Recognises this flow's next envelopes (usual layout) without decoding identifiers or a general scan. */
  reader: EnvelopeReader;
}

/** @internal A link this daemon made between a local point and one on a peer. */
export interface RemoteLink {
  id: string;
  peer: string;
  a: string;
  b: string;
  direction: Direction;
  flows: Array<{ sender: string; receiver: string; local: 'out' | 'in'; direct?: string }>;
}

/** @internal A configured peer being dialled. */
export interface Dial {
  config: PeerConfig;
  tx?: Channel;
  peer?: string;
  state: PeerInfo['state'];
  error?: AmixError;
  /** Set when the dial is given up (replaced by a fresh one): its loop ends. */
  dropped?: boolean;
}

/**
 * The conduit point for one peer daemon: its sending ends to that peer, its
 * link end in this daemon's fabric (an agent over an endpoint named
 * `conduit:<peer>`), and the flows through it.
 */
export class Conduit {
  /** The peer's directory id. */
  readonly id: string;
  /** Whether the peer is reachable. */
  state: PeerInfo['state'] = 'connecting';
  /** Why it is not, last time it was lost. */
  error: AmixError | undefined;
  /** The control sending end to the peer. */
  ctlTx: Channel | undefined;
  /** The data sending end to the peer. */
  dataTx: Channel | undefined;
  /** Where {@link ctlTx} points. */
  ctlEndpoint: string | undefined;
  /** Where {@link dataTx} points. */
  dataEndpoint: string | undefined;
  /** The conduit's link end in this daemon's fabric. */
  readonly endpoint: Endpoint;
  /** The agent carrying out the fabric's link commands for {@link endpoint}. */
  readonly agent: Agent;
  /** Flows to the peer, by {@link key}. */
  readonly out = new Map<string, OutFlow>();
  /** Flows from the peer, by {@link key}. */
  readonly in = new Map<string, InFlow>();
  /** Inbound flows whose link is being opened, by key. */
  readonly opening = new Map<string, Promise<InFlow>>();
  /** The conduit's counters. */
  readonly stats: ConduitStats = newConduitStats();
  /** Sequence of the next control envelope to the peer. */
  ctlSeq = 0;
  /** The next sequence number of every flow to the peer this process had, open or closed, by {@link key}. */
  readonly nextSeq = new Map<string, number>();
  /** The epoch of the peer's last hello (its incarnation), if it named one. */
  epoch: string | undefined;
  readonly #dataReady = new WaitList();

  constructor(id: string, fabric: Fabric) {
    this.id = id;
    this.endpoint = new Endpoint(`conduit:${id}`);
    this.agent = new Agent(this.endpoint, fabric.registry);
  }

  /** The fabric end for a link to `name` (a remote point's identifier) through this conduit. */
  end(name: string): ExternalEnd {
    return { name, inProcess: true, target: this.agent };
  }

  /** Replace the data sending end; pumps waiting for one go on. */
  setDataTx(tx: Channel | undefined): void {
    this.dataTx = tx;
    if (tx) this.wakeAll();
  }

  /** Resolves once a data sending end exists. */
  dataReady(): Promise<void> {
    return this.dataTx ? Promise.resolve() : this.#dataReady.wait();
  }

  /** Wake pumps waiting for a data channel or for credit (they look again, and see the conduit closed if it is). */
  wakeAll(): void {
    this.#dataReady.resolveAll();
    for (const f of this.out.values()) f.credit.resolveAll();
  }
}
