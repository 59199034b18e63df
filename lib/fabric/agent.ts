/**
 * The agent: the seed's intra_p point. It carries out the fabric's link
 * commands inside one address space (a point host, the calling application,
 * or a container process talking to `amixd`): open a receiving or sending
 * channel end and put it on the endpoint's lists, close a link, hold,
 * suspend, resume, cycle, report stats. The fabric never touches another
 * address space's channels directly; it asks that space's agent.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import type { Endpoint } from './endpoint.js';
import { AmixError, ErrorCode } from '../core/errors.js';
import type { ChannelOptions } from '../core/primitive.js';
import type { PrimitiveRegistry } from '../core/registry.js';

/** The link commands an agent understands. */
export const AGENT_OPS = [
  'openReceiver',
  'openSender',
  'closeLink',
  'hold',
  'suspend',
  'resume',
  'cycle',
  'stats',
] as const;
/** One of {@link AGENT_OPS}. */
export type AgentOp = (typeof AGENT_OPS)[number];

/** Anything the fabric can send link commands to (an agent here, or one across a thread or process). */
export interface AgentTarget {
  request<T = unknown>(op: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
}

/** Events an agent reports about its channels (through `onEvent`). */
export type AgentEvent =
  | { type: 'channel'; link: string; peer: string; event: string; error?: Error }
  | { type: 'linkEnded'; link: string; peer: string };

/**
 * Executes link commands over one {@link Endpoint} with one registry.
 * Implements {@link AgentTarget} for in-process use.
 */
export class Agent implements AgentTarget {
  readonly #end: Endpoint;
  readonly #reg: PrimitiveRegistry;
  readonly #onEvent: (e: AgentEvent) => void;

  constructor(endpoint: Endpoint, registry: PrimitiveRegistry, onEvent: (e: AgentEvent) => void = () => {}) {
    this.#end = endpoint;
    this.#reg = registry;
    this.#onEvent = onEvent;
    endpoint.on('event', (e: { type: string; link: string; peer: string }) => {
      if (e.type === 'linkEnded') onEvent({ type: 'linkEnded', link: e.link, peer: e.peer });
    });
  }

  /** True when `op` is an agent command. */
  static handles(op: string): op is AgentOp {
    return (AGENT_OPS as readonly string[]).includes(op);
  }

  /** Carry out one command. Unknown commands reject with `AMIX_ERR_PROTOCOL`. */
  async request<T = unknown>(op: string, a: Record<string, unknown> = {}): Promise<T> {
    return (await this.#run(op, a)) as T;
  }

  async #run(op: string, a: Record<string, unknown>): Promise<unknown> {
    const link = a.link as string;
    switch (op) {
      case 'openReceiver': {
        const ch = await this.#reg.open(a.primitive as string, a.options as ChannelOptions);
        this.#watch(ch, link, a.peer as string);
        this.#end.addReceiver(link, a.peer as string, ch);
        return { address: ch.address };
      }
      case 'openSender': {
        const ch = await this.#reg.open(a.primitive as string, {
          ...(a.options as ChannelOptions),
          address: a.address as ChannelOptions['address'],
        });
        this.#watch(ch, link, a.peer as string);
        // The primitive's own connect runs before the entry joins the list (seed: "executed before any other steps").
        try {
          await ch.connect();
        } catch (err) {
          await ch.destroy(err as Error);
          throw err;
        }
        this.#end.addSender(link, a.peer as string, ch);
        return {};
      }
      case 'closeLink':
        await this.#end.removeLink(link);
        return {};
      case 'hold':
        this.#end.hold(link, a.held as boolean);
        return {};
      case 'suspend':
      case 'resume':
        for (const ch of this.#end.channels(link).tx) await (op === 'suspend' ? ch.suspend() : ch.resume());
        return {};
      case 'cycle':
        for (const ch of this.#end.channels(link).tx) await ch.cycle();
        return {};
      case 'stats':
        return this.stats();
      default:
        throw new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown agent request ${JSON.stringify(op)}`);
    }
  }

  /** The endpoint's counters, per link and channel. */
  stats(): Record<string, unknown> {
    const links: Record<string, unknown> = {};
    for (const link of this.#end.links()) {
      const { tx, rx } = this.#end.channels(link);
      links[link] = { tx: tx.map((c) => ({ ...c.stats(), suspended: c.isSuspended })), rx: rx.map((c) => c.stats()) };
    }
    return { point: this.#end.stats(), links, senderList: this.#end.senderList, receiverList: this.#end.receiverList };
  }

  #watch(ch: Channel, link: string, peer: string): void {
    ch.on('event', (e: { type: string; error?: Error }) => {
      if (e.type === 'closed') return;
      this.#onEvent({ type: 'channel', link, peer, event: e.type, ...(e.error ? { error: e.error } : {}) });
    });
  }
}
