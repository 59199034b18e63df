/**
 * The broker table and flow planning (seed 002, "The Broker Service"):
 * which primitive each hop of a flow uses, whether a broker point has to
 * sit between two ends whose primitives differ, and whether a primitive can
 * cross the process boundary a hop needs. Pure decisions: nothing here
 * starts an instance or opens a channel (that is `hops.ts`).
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { normalizePoint, type Direction, type PointCharacteristics, type PointRegistration } from './point.js';
import type { ChannelOptions } from '../core/primitive.js';
import { BUILTIN_PRIMITIVES, type PrimitiveRegistry } from '../core/registry.js';
import { CALLER, type BrokerEntry, type ExternalEnd } from './types.js';

const BROKER_LOCATION = new URL('./brokerPoint.js', import.meta.url).href;

/** @internal Which way a flow goes between the connect's ends A and B. */
export type FlowEnds = ['a' | 'b', 'a' | 'b'];

/** @internal The primitive a flow uses, and the broker inserted when the ends' primitives differ. */
export interface FlowPlan {
  primitive: string;
  broker?: BrokerEntry;
}

/**
 * @internal The brokers of one fabric by primitive pair. Seeded with the
 * generic forwarder for every pair of built-in primitives.
 */
export class BrokerTable {
  readonly #registry: PrimitiveRegistry;
  readonly #brokers = new Map<string, BrokerEntry>();
  readonly #where: (reg: PointRegistration) => string | undefined;

  /** `where` names the process a placed point runs in (undefined: the fabric's own or one of its children). */
  constructor(registry: PrimitiveRegistry, where: (reg: PointRegistration) => string | undefined = () => undefined) {
    this.#registry = registry;
    this.#where = where;
    const builtins = BUILTIN_PRIMITIVES.map((p) => p.name);
    for (const from of builtins)
      for (const to of builtins)
        if (from !== to) this.#brokers.set(`${from}>${to}`, { from, to, location: BROKER_LOCATION });
  }

  /** Add a broker; `AMIX_ERR_UNKNOWN_PRIMITIVE`, `AMIX_ERR_INVALID_ARG` or `AMIX_ERR_DUPLICATE`. */
  register(entry: BrokerEntry): void {
    this.#registry.get(entry.from);
    this.#registry.get(entry.to);
    if (typeof entry.location !== 'string' || entry.location === '')
      throw invalidArg('broker.location', 'must be a non-empty string', entry.location);
    const key = `${entry.from}>${entry.to}`;
    if (this.#brokers.has(key))
      throw new AmixError(
        ErrorCode.AMIX_ERR_DUPLICATE,
        `a broker from ${entry.from} to ${entry.to} is already registered`,
      );
    this.#brokers.set(key, { ...entry });
  }

  /** Remove the broker for a pair. */
  delete(from: string, to: string): boolean {
    return this.#brokers.delete(`${from}>${to}`);
  }

  /** Copies of every entry. */
  list(): BrokerEntry[] {
    return [...this.#brokers.values()].map((b) => ({ ...b }));
  }

  /** The broker converting `from` into `to`, if any. */
  get(from: string, to: string): BrokerEntry | undefined {
    return this.#brokers.get(`${from}>${to}`);
  }

  /**
   * Choose the primitive for a flow, or a broker when the two ends' differ.
   * `AMIX_ERR_PRIMITIVE_MISMATCH` names both when there is no broker, or
   * when a primitive cannot cross the process boundary a hop needs.
   */
  planFlow(from: PointRegistration | undefined, to: PointRegistration | undefined): FlowPlan {
    const sendP = from?.sendPrimitive ?? to!.receivePrimitive;
    const recvP = to?.receivePrimitive ?? from!.sendPrimitive;
    if (sendP === recvP) {
      this.#checkCrossing(sendP, from, to);
      return { primitive: sendP };
    }
    const broker = this.get(sendP, recvP);
    if (!broker) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
        `point "${from?.name ?? CALLER}" sends with ${sendP} but point "${to?.name ?? CALLER}" receives with ${recvP}, and no broker converts between them`,
        {
          details: {
            from: from?.name ?? CALLER,
            to: to?.name ?? CALLER,
            sendPrimitive: sendP,
            receivePrimitive: recvP,
          },
        },
      );
    }
    // The broker runs as a worker of this process: each hop is checked on its own.
    this.#checkCrossing(sendP, from, undefined);
    this.#checkCrossing(recvP, undefined, to);
    return { primitive: sendP, broker };
  }

  /**
   * Connect's checks before anything is started: for each flow, one end
   * must be a sender and the other a receiver (seed 002 ¶286), each flow
   * must have a primitive (or a broker), and a flow to an external end (a
   * container plugged into amixd, another process) must use a primitive
   * that crosses processes (`hopPrimitive`, ConnectOptions.hop's, when the
   * link names its own).
   */
  checkFlows(
    flows: readonly FlowEnds[],
    planA: PointRegistration | undefined,
    planB: PointRegistration | undefined,
    direction: Direction,
    as: ExternalEnd | undefined,
    hopPrimitive?: string,
  ): void {
    const plan = (end: 'a' | 'b') => (end === 'a' ? planA : planB);
    for (const [from, to] of flows) {
      const f = plan(from);
      const t = plan(to);
      if (f && f.role === 'receiver')
        throw new AmixError(
          ErrorCode.AMIX_ERR_BAD_DIRECTION,
          `point "${f.name}" is a receiver and cannot send on this link (direction ${direction})`,
        );
      if (t && t.role === 'sender')
        throw new AmixError(
          ErrorCode.AMIX_ERR_BAD_DIRECTION,
          `point "${t.name}" is a sender and cannot receive on this link (direction ${direction})`,
        );
    }
    for (const [from, to] of flows) {
      const p = hopPrimitive ?? this.planFlow(plan(from), plan(to)).primitive;
      const scopes = this.#registry.get(p).characteristics.scopes;
      if (as && !as.inProcess && !scopes.includes('process') && !scopes.includes('remote')) {
        const point = (planA ?? planB)!.name;
        throw new AmixError(
          ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
          `primitive ${p} serves ${scopes.join(', ')} only and cannot link point "${point}" with ${as.name}, another process; register the point with a process primitive`,
          { details: { primitive: p, end: as.name } },
        );
      }
    }
  }

  /** A hop that leaves a process needs a primitive that can cross processes. */
  #checkCrossing(primitive: string, from: PointRegistration | undefined, to: PointRegistration | undefined): void {
    // A placed point (a container's) runs in another process than the fabric's, and than another place's:
    // an absent end is the caller, here (an external caller is checked by checkFlows).
    const placeOf = (r: PointRegistration | undefined) => (r ? this.#where(r) : undefined);
    const crosses =
      from?.characteristics.scope === 'process' ||
      to?.characteristics.scope === 'process' ||
      placeOf(from) !== placeOf(to);
    const scopes = this.#registry.get(primitive).characteristics.scopes;
    if (crosses && !scopes.includes('process') && !scopes.includes('remote')) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH,
        `primitive ${primitive} serves ${scopes.join(', ')} only and cannot link "${from?.name ?? CALLER}" and "${to?.name ?? CALLER}" across processes`,
        { details: { primitive, from: from?.name ?? CALLER, to: to?.name ?? CALLER } },
      );
    }
  }
}

/** @internal The channel options of every hop of a flow: the receiving end's characteristics. */
export function hopOptions(rx: Readonly<PointCharacteristics>): ChannelOptions {
  return {
    maxmsg: rx.maxmsg,
    minmsg: rx.minmsg,
    discard: rx.discard,
    idle: rx.waitStrategy,
    ...(rx.maxMessageBytes ? { maxMessageBytes: rx.maxMessageBytes } : {}),
  };
}

/** @internal The registration of a broker instance: receives on `broker.from`, sends on `broker.to`. */
export function brokerRegistration(broker: BrokerEntry, rx: Readonly<PointCharacteristics>): PointRegistration {
  return normalizePoint({
    name: 'broker',
    location: broker.location,
    receivePrimitive: broker.from,
    sendPrimitive: broker.to,
    characteristics: {
      scope: 'thread',
      maxmsg: rx.maxmsg,
      minmsg: rx.minmsg,
      discard: rx.discard,
      termination: 'signal',
    },
  });
}
