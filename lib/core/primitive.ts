/**
 * The `Primitive` contract: what a transport module must provide to carry a
 * link's bytes. Types only. The seed's "communication primitive object" is
 * one structure for every primitive: a name, characteristics, and the nine
 * operations create, destroy, send, receive, cycle, connect, disconnect,
 * suspend and resume. The first four are required; the other five are
 * optional and fall back to the defaults documented on each member (the
 * {@link Channel} wrapper in `lib/core/channel.ts` applies them).
 *
 * A primitive works on *channels*: one channel is one directed flow (one
 * sender end, one receiver end). `create()` without an address makes a new
 * instance and returns its receiving end; its `address` is handed (by the
 * fabric, over the control plane) to the other side, which calls `create()`
 * with that address and gets the sending end.
 *
 * @module
 */

/** Where a primitive can carry messages. */
export const Scope = {
  /** Between threads of one process. */
  thread: 'thread',
  /** Between processes of one machine. */
  process: 'process',
  /** Between machines. */
  remote: 'remote',
} as const;
/** One of {@link Scope}. */
export type Scope = (typeof Scope)[keyof typeof Scope];

/**
 * What a sending end does when the receiver has `maxmsg` messages pending
 * (or the channel is full). Every discarded or refused message is counted in
 * {@link ChannelStats}; none is lost silently.
 */
export const DiscardPolicy = {
  /** `send` waits for space (the sender is suspended until `minmsg`). */
  block: 'block',
  /** The message being sent is dropped and counted. */
  dropNewest: 'dropNewest',
  /** The oldest pending message is dropped and counted to make room. */
  dropOldest: 'dropOldest',
  /** `send` rejects with `AMIX_ERR_QUEUE_FULL`. */
  reject: 'reject',
} as const;
/** One of {@link DiscardPolicy}. */
export type DiscardPolicy = (typeof DiscardPolicy)[keyof typeof DiscardPolicy];

/**
 * How a receiving end waits for the next message: the seed's idle/cycle
 * characteristic. `spin` burns a core for the lowest latency; `block` sleeps
 * in the kernel (or `Atomics.waitAsync` on the main thread) and costs a
 * wake-up; `spinThenBlock` spins a bounded number of times first.
 */
export const IdleStrategy = {
  spin: 'spin',
  yield: 'yield',
  block: 'block',
  spinThenBlock: 'spinThenBlock',
} as const;
/** One of {@link IdleStrategy}. */
export type IdleStrategy = (typeof IdleStrategy)[keyof typeof IdleStrategy];

/** What a primitive promises, registered with it and queryable before it is loaded. */
export interface PrimitiveCharacteristics {
  /** Where it can carry messages; at least one. */
  readonly scopes: readonly Scope[];
  /** The largest message it carries, in bytes. */
  readonly maxMessageBytes: number;
  /** `fifo`: messages of one channel arrive in send order. */
  readonly ordering: 'fifo' | 'unordered';
  /** `reliable`: an accepted message is delivered or reported lost, never silently dropped. */
  readonly delivery: 'reliable' | 'bestEffort';
}

/**
 * How the other side finds a channel instance: plain data. It must survive
 * `structuredClone` (a thread primitive may put a `SharedArrayBuffer` in it);
 * a primitive whose scopes include `process` or `remote` must also keep it
 * JSON-serialisable.
 */
export type ChannelAddress = Readonly<Record<string, unknown>>;

/** The minimum every channel handle carries. The rest is the primitive's own. */
export interface ChannelHandle {
  /** Hand this to the other side's `create({ address })`. */
  readonly address: ChannelAddress;
  /** `receive` for the end made without an address, `send` for the end attached to it. */
  readonly role: 'send' | 'receive';
  /** The largest message this end carries, when the primitive narrows the option (e.g. a ring's capacity less its record header). */
  readonly maxMessageBytes?: number;
}

/** Emitted by a channel (through {@link ChannelOptions.onEvent}). */
export type ChannelEvent =
  /** Pending messages reached `maxmsg`: the sender is suspended. */
  | { type: 'suspended'; pending: number }
  /** Pending messages fell to `minmsg`: the sender is resumed. */
  | { type: 'resumed'; pending: number }
  /** Messages were dropped by the discard policy. */
  | { type: 'dropped'; policy: DiscardPolicy; count: number }
  /** The other end went away; `error` has code `AMIX_ERR_PEER_LOST` or similar. */
  | { type: 'peerLost'; error: Error }
  /** The primitive is re-establishing the connection (attempt counts from 1). */
  | { type: 'reconnecting'; attempt: number; delayMs: number }
  /** The connection is back; `resent` messages were sent again, `lost` reported lost. */
  | { type: 'reconnected'; resent: number; lost: number }
  /** A peer was refused (authentication, e.g. a CURVE key not on the allow-list). */
  | { type: 'refused'; peer: string; reason: Error }
  /** The channel closed; `reason` says why (undefined for a graceful close). */
  | { type: 'closed'; reason?: Error };

/** Counters of one channel end. Figures an end cannot know are 0. */
export interface ChannelStats {
  sent: number;
  received: number;
  /** Messages accepted but not yet received, as far as this end knows. */
  pending: number;
  /** Dropped by `dropNewest` or `dropOldest`. */
  dropped: number;
  /** Refused by `reject`. */
  rejected: number;
  /** Times `maxmsg` was reached. */
  suspensions: number;
  bytesSent: number;
  bytesReceived: number;
}

/** Options for {@link Primitive.create}. Sizes and marks are the receiving point's. */
export interface ChannelOptions {
  /** Absent: create a new instance and return its receiving end. Present: attach a sending end to it. */
  address?: ChannelAddress;
  /** Largest message accepted on this channel; at most the primitive's `maxMessageBytes`. */
  maxMessageBytes?: number;
  /** Buffer size hint in bytes (rounded as the primitive needs, e.g. to a power of two). */
  capacityBytes?: number;
  /** Pending messages at which the sender is suspended (high-water mark). */
  maxmsg?: number;
  /** Pending messages at which the sender is resumed (low-water mark), below `maxmsg`. */
  minmsg?: number;
  /** What happens at `maxmsg`. Default `block`. */
  discard?: DiscardPolicy;
  /** How a receiving end waits. Default `spinThenBlock`. */
  idle?: IdleStrategy;
  /** Called for every {@link ChannelEvent}; must not throw. */
  onEvent?: (event: ChannelEvent) => void;
  /** A directory for files the primitive makes (sockets). Created 0700 if missing. */
  runtimeDir?: string;
  /** Options only the `zeromq` primitive reads (bind address, CURVE keys, timeouts): see `ZeromqOptions`. */
  zeromq?: Record<string, unknown>;
  /** Options only the `nats` primitive reads (servers, credentials, subject prefix, durability): see `NatsOptions`. */
  nats?: Record<string, unknown>;
}

/** Options for {@link Primitive.send}. */
export interface SendOptions {
  signal?: AbortSignal;
}

/** Options for {@link Primitive.receive}. */
export interface ReceiveOptions {
  /**
   * The largest message the caller accepts. A longer next message is not
   * truncated: `receive` rejects with `AMIX_ERR_BUFFER_TOO_SMALL` and leaves it queued.
   */
  maxBytes: number;
  signal?: AbortSignal;
}

/**
 * A transport module. Export one object satisfying this as the module's
 * `default` export (or as a named export `primitive`), with a stable `name`.
 *
 * Errors: every rejection is an `AmixError` with a code from `lib/core/errors.ts`.
 *
 * @example
 * export default { name: 'myBus', characteristics, create, destroy, send, receive } satisfies Primitive<MyHandle>
 */
export interface Primitive<H extends ChannelHandle = ChannelHandle> {
  /** Stable name, used by config, CLI flags, bench labels and errors. */
  readonly name: string;
  /** What it can do. The registration carries a copy so it can be queried unloaded. */
  readonly characteristics: PrimitiveCharacteristics;

  /** Create: make a new instance (no address: its receiving end) or attach to one (its sending end). */
  create(options: ChannelOptions): Promise<H>;
  /**
   * Destroy: release the end at once. Pending sends and receives on it reject
   * with `AMIX_ERR_LINK_CLOSED` (cause: `reason`). Must be idempotent.
   */
  destroy(handle: H, reason?: Error): Promise<void>;
  /**
   * Send: resolve when the message is accepted by the channel (or discarded
   * by policy, counted). Oversize: `AMIX_ERR_MESSAGE_TOO_LARGE`. Full with
   * `reject`: `AMIX_ERR_QUEUE_FULL`. With `block` it waits for space.
   */
  send(handle: H, data: Uint8Array, options?: SendOptions): Promise<void>;
  /**
   * Receive: resolve with the next message (its `length` is the actual size).
   * Rejects with `AMIX_ERR_LINK_CLOSED` once the channel is closed and drained.
   */
  receive(handle: H, options: ReceiveOptions): Promise<Uint8Array>;

  /** Cycle: send a default (null) message through and back. Default: send a zero-length message. */
  cycle?(handle: H, options?: SendOptions): Promise<void>;
  /** Connect: primitive-specific set-up, run before the fabric links points. Default: nothing. */
  connect?(handle: H): Promise<void>;
  /** Disconnect: primitive-specific tear-down of the connection (the end stays usable for connect). Default: nothing. */
  disconnect?(handle: H): Promise<void>;
  /** Suspend: stop the sender. Default: the wrapper holds sends until resume. */
  suspend?(handle: H): void | Promise<void>;
  /** Resume: restart the sender. Default: the wrapper releases held sends. */
  resume?(handle: H): void | Promise<void>;

  /** Counters. Default: the wrapper's own counts of sent and received. */
  stats?(handle: H): ChannelStats;
  /**
   * Optional synchronous fast path: accept the message now and return true,
   * or return false when `send` would have to wait (nothing is sent then).
   * Throws like `send` rejects.
   */
  trySend?(handle: H, data: Uint8Array): boolean;
  /** Optional synchronous fast path: the next message, or undefined when none is ready. */
  tryReceive?(handle: H, maxBytes: number): Uint8Array | undefined;
  /** Optional batch fast path: accept a prefix of `messages` now; returns how many were accepted (0 when a send would wait). */
  trySendMany?(handle: H, messages: readonly Uint8Array[]): number;
  /** Optional batch fast path: up to `maxCount` ready messages (none: an empty array). */
  tryReceiveMany?(handle: H, maxBytes: number, maxCount: number): Uint8Array[];

  /**
   * Optional zero-copy receive: like `receive`, but the message may be a view
   * into the primitive's own memory, taken under the end's *lease*: it stays
   * valid until `release(handle)` or a copying receive on that end (each view
   * operation extends the lease). A copy is a valid answer too. Default: the
   * wrapper uses `receive` (copies).
   */
  receiveView?(handle: H, options: ReceiveOptions): Promise<Uint8Array>;
  /** Optional zero-copy fast path: the next message as a leased view (see `receiveView`), or undefined when none is ready. */
  tryReceiveView?(handle: H, maxBytes: number): Uint8Array | undefined;
  /** Optional zero-copy batch fast path: up to `maxCount` ready messages as leased views (none: an empty array). */
  tryReceiveManyView?(handle: H, maxBytes: number, maxCount: number): Uint8Array[];
  /** End the lease of the views taken on this receiving end; their bytes may change from then on. Idempotent. Default: nothing. */
  release?(handle: H): void;
}

/** The operation names of the contract, required first. */
export const REQUIRED_OPERATIONS = ['create', 'destroy', 'send', 'receive'] as const;
/** The optional operations, each with a default in the wrapper. */
export const OPTIONAL_OPERATIONS = [
  'cycle',
  'connect',
  'disconnect',
  'suspend',
  'resume',
  'stats',
  'trySend',
  'tryReceive',
  'trySendMany',
  'tryReceiveMany',
  'receiveView',
  'tryReceiveView',
  'tryReceiveManyView',
  'release',
] as const;
