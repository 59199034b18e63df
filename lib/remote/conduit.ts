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
  seq: number;
  /** Wraps one message of this flow (identifiers encoded once). */
  wrap: EnvelopeWriter;
}

/** @internal A flow from the peer to a local point. */
export interface InFlow extends Flow {
  ch: Channel;
  expected: number | undefined;
  /** Messages handed to {@link ch} (successful sends). */
  handed: number;
  /** The sequence number after the last message handed to {@link ch}. */
  handedSeq: number;
  /** The flow was open in an earlier process of this daemon (its filter came from `delivered.json`). */
  restored: boolean;
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
  flows: Array<{ sender: string; receiver: string; local: 'out' | 'in' }>;
}

/** @internal A configured peer being dialled. */
export interface Dial {
  config: PeerConfig;
  tx?: Channel;
  peer?: string;
  state: PeerInfo['state'];
  error?: AmixError;
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

  /** Wake pumps waiting for a data channel (they then see the conduit closed). */
  wakeAll(): void {
    this.#dataReady.resolveAll();
  }
}
