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
import type { Endpoint, ListEntry } from './endpoint.js';
import { AmixError, ErrorCode } from '../core/errors.js';
import type { ChannelOptions } from '../core/primitive.js';
import type { PrimitiveRegistry } from '../core/registry.js';
import { handlerTable, type AnyArgs, type ArgsOf, type Handlers, type ResultOf, type RpcHandler } from '../core/rpc.js';

/** A result with nothing in it. */
export type Empty = Record<string, never>;

/** What an agent's `stats` reports: the endpoint's counters, per link and channel, and its lists. */
export interface AgentStats {
  point: ReturnType<Endpoint['stats']>;
  links: Record<
    string,
    {
      tx: Array<ReturnType<Channel['stats']> & { suspended: boolean }>;
      rx: Array<ReturnType<Channel['stats']>>;
    }
  >;
  senderList: readonly ListEntry[];
  receiverList: readonly ListEntry[];
}

/** The agent's op table: each link command's arguments and result. */
export interface AgentOps {
  /** Open a receiving end of `primitive` for `link` from `peer`; its address goes to the sender. */
  openReceiver: {
    args: { link: string; peer: string; primitive: string; options: ChannelOptions };
    result: { address: ChannelOptions['address'] };
  };
  /**
   * Put the receiving end `openReceiver` made for `link` from `peer` on the
   * receiver list (step 2 or 4: after the sender's step 1 or 3, as the seed orders them).
   */
  listReceiver: { args: { link: string; peer: string; switched?: boolean }; result: Empty };
  /** Open a sending end to `address` and connect it, then put it on the sender list. */
  openSender: {
    args: {
      link: string;
      peer: string;
      primitive: string;
      address: ChannelOptions['address'];
      options: ChannelOptions;
      /** The peer is a switch (or the far end behind a broker is): frame sends with the switch header. */
      switched?: boolean;
      /** The entry starts held (ConnectOptions.heldAt). */
      held?: boolean;
    };
    result: Empty;
  };
  /** Close the link's channel ends here; `disconnect` first runs the primitive's own disconnect on the sending ends. */
  closeLink: { args: { link: string; reason?: string | undefined; disconnect?: boolean }; result: Empty };
  /** Hold (or release) the link's entries. */
  hold: { args: { link: string; held: boolean; release?: string }; result: Empty };
  /** Suspend the link's sending ends. */
  suspend: { args: { link: string }; result: Empty };
  /** Resume the link's sending ends. */
  resume: { args: { link: string }; result: Empty };
  /** Cycle the link's sending ends (wait until what was sent is taken). */
  cycle: { args: { link: string }; result: Empty };
  /** How many messages the link's receiving entries hold that the point has not taken (lookahead included). */
  untaken: { args: { link: string }; result: { held: number } };
  /** Take nothing from the link's receiving entries while a link of `behind` is on the receiver list, unless sealed and empty. */
  fence: { args: { link: string; behind: string[] }; result: Empty };
  /** Nothing more comes on the link here: once its receiving entries are empty, they fence nothing. */
  seal: { args: { link: string }; result: Empty };
  /** RECONNECT: give the point a null (size-0) message from the fabric. */
  nullMessage: { args: Empty; result: Empty };
  /** The endpoint's counters. */
  stats: { args: Empty | Record<string, unknown>; result: AgentStats };
  /** A request to a service the point's own code offers on its endpoint (`Endpoint.services`), e.g. `switch`. */
  service: { args: { name: string; request: Record<string, unknown> }; result: unknown };
}

/** The link commands an agent understands. */
export const AGENT_OPS = [
  'openReceiver',
  'listReceiver',
  'openSender',
  'closeLink',
  'hold',
  'suspend',
  'resume',
  'cycle',
  'untaken',
  'fence',
  'seal',
  'nullMessage',
  'stats',
  'service',
] as const satisfies ReadonlyArray<keyof AgentOps>;
/** One of {@link AGENT_OPS}. */
export type AgentOp = (typeof AGENT_OPS)[number];

/**
 * Anything the fabric can send link commands to (an agent here, or one
 * across a thread, a process or the amixd socket). The first signature is
 * checked against {@link AgentOps}; the second lets a caller state the
 * result type it expects.
 */
export interface AgentTarget {
  request<K extends AgentOp>(op: K, args: ArgsOf<AgentOps, K>, timeoutMs?: number): Promise<ResultOf<AgentOps, K>>;
  request<T = unknown>(op: AgentOp, args?: AnyArgs<AgentOps>, timeoutMs?: number): Promise<T>;
}

/** Events an agent reports about its channels (through `onEvent`). */
export type AgentEvent =
  | { type: 'channel'; link: string; peer: string; event: string; error?: Error }
  | { type: 'linkEnded'; link: string; peer: string }
  | { type: 'route'; up: boolean; dest: string; via?: string; hops?: number; switch: string }
  | { type: 'trunk'; up: boolean; trunk: string; peer: string };

/**
 * Executes link commands over one {@link Endpoint} with one registry.
 * Implements {@link AgentTarget} for in-process use, and {@link Agent.handle}
 * answers the same commands arriving over an {@link RpcPeer}.
 */
export class Agent implements AgentTarget {
  readonly #end: Endpoint;
  readonly #reg: PrimitiveRegistry;
  readonly #onEvent: (e: AgentEvent) => void;
  /** The link commands, by name. */
  readonly #ops: Handlers<AgentOps, unknown>;
  /** Answers one link command by name (`AMIX_ERR_PROTOCOL` for an unknown one), as an RpcPeer handler. */
  readonly handle: RpcHandler<unknown>;
  /** Receiving ends opened but not yet on the receiver list, by link and peer. */
  readonly #unlisted = new Map<string, Channel>();

  constructor(endpoint: Endpoint, registry: PrimitiveRegistry, onEvent: (e: AgentEvent) => void = () => {}) {
    this.#end = endpoint;
    this.#reg = registry;
    this.#onEvent = onEvent;
    endpoint.on('event', (e: { type: string; link: string; peer: string }) => {
      if (e.type === 'linkEnded') onEvent({ type: 'linkEnded', link: e.link, peer: e.peer });
      else if (e.type === 'route' || e.type === 'trunk') onEvent(e as unknown as AgentEvent);
    });
    const end = this.#end;
    this.#ops = {
      openReceiver: async (a) => {
        const ch = await this.#reg.open(a.primitive, a.options);
        this.#watch(ch, a.link, a.peer);
        // Not listed yet: the sender attaches (and lists its end) first; what it sends meanwhile waits in the channel.
        this.#unlisted.set(unlistedKey(a.link, a.peer), ch);
        return { address: ch.address };
      },
      listReceiver: (a) => {
        const k = unlistedKey(a.link, a.peer);
        const ch = this.#unlisted.get(k);
        if (!ch)
          throw new AmixError(
            ErrorCode.AMIX_ERR_UNKNOWN_LINK,
            `no receiving end of link ${JSON.stringify(a.link)} from ${JSON.stringify(a.peer)} waits to be listed`,
            { details: { link: a.link } },
          );
        this.#unlisted.delete(k);
        end.addReceiver(a.link, a.peer, ch, a.switched === true);
        return {};
      },
      openSender: async (a) => {
        const ch = await this.#reg.open(a.primitive, { ...a.options, address: a.address });
        this.#watch(ch, a.link, a.peer);
        // The primitive's own connect runs before the entry joins the list (seed: "executed before any other steps").
        try {
          await ch.connect();
        } catch (err) {
          await ch.destroy(err as Error);
          throw err;
        }
        end.addSender(a.link, a.peer, ch, a.switched === true, a.held === true);
        return {};
      },
      closeLink: async (a) => {
        // A DISCONNECT runs the primitive's own disconnect step on each sending end (its connect ran when
        // the end attached). Only then: the fabric flushed the link first, so nothing buffered is dropped.
        if (a.disconnect === true) for (const ch of end.channels(a.link).tx) await ch.disconnect().catch(() => {});
        for (const [k, ch] of this.#unlisted)
          if (k.startsWith(`${a.link}\u0000`)) {
            this.#unlisted.delete(k);
            await ch.close().catch(() => {});
          }
        await end.removeLink(a.link);
        return {};
      },
      hold: (a) => {
        end.hold(a.link, a.held, a.release);
        return {};
      },
      suspend: async (a) => {
        for (const ch of end.channels(a.link).tx) await ch.suspend();
        return {};
      },
      resume: async (a) => {
        for (const ch of end.channels(a.link).tx) await ch.resume();
        return {};
      },
      cycle: async (a) => {
        for (const ch of end.channels(a.link).tx) await ch.cycle();
        return {};
      },
      untaken: (a) => ({ held: end.untaken(a.link) }),
      fence: (a) => {
        end.fence(a.link, a.behind);
        return {};
      },
      seal: (a) => {
        end.seal(a.link);
        return {};
      },
      nullMessage: () => {
        end.deliverNull();
        return {};
      },
      stats: () => this.stats(),
      service: (a) => {
        const fn = end.services.get(a.name);
        if (!fn)
          throw new AmixError(
            ErrorCode.AMIX_ERR_UNKNOWN_POINT,
            `point "${end.name}" offers no service ${JSON.stringify(a.name)} (is it a switch?)`,
            { details: { name: end.name } },
          );
        return fn(a.request ?? {});
      },
    };
    this.handle = handlerTable(
      this.#ops,
      (op) => new AmixError(ErrorCode.AMIX_ERR_PROTOCOL, `unknown agent request ${JSON.stringify(op)}`),
    );
  }

  /** True when `op` is an agent command. */
  static handles(op: string): op is AgentOp {
    return (AGENT_OPS as readonly string[]).includes(op);
  }

  /** Carry out one command. Unknown commands reject with `AMIX_ERR_PROTOCOL`. */
  request<K extends AgentOp>(op: K, args: ArgsOf<AgentOps, K>, timeoutMs?: number): Promise<ResultOf<AgentOps, K>>;
  request<T = unknown>(op: AgentOp, args?: AnyArgs<AgentOps>, timeoutMs?: number): Promise<T>;
  async request(op: string, a: object = {}): Promise<unknown> {
    return this.handle(op, a as Record<string, unknown>, undefined);
  }

  /** The endpoint's counters, per link and channel. */
  stats(): AgentStats {
    const links: AgentStats['links'] = {};
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

/** The key of an unlisted receiving end: link ids and point names hold no NUL. */
function unlistedKey(link: string, peer: string): string {
  return `${link}\u0000${peer}`;
}
