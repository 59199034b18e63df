/**
 * {@link Channel}: the public wrapper around one end of a primitive's
 * channel. It owns the lifecycle (open → closing → closed), idempotent
 * close, the refusal to work after close, input checks at the edge, and the
 * defaults for operations a primitive lacks. Primitives supply only the raw
 * operations (see `lib/core/primitive.ts`).
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { AmixError, ErrorCode, abortError, invalidArg } from './errors.js';
import { Lifecycle, type Destroyable } from './lifecycle.js';
import { WaitList } from './waitList.js';
import type {
  ChannelAddress,
  ChannelEvent,
  ChannelHandle,
  ChannelOptions,
  ChannelStats,
  Primitive,
} from './primitive.js';

const EMPTY = new Uint8Array(0);

/** Options for {@link Channel.receive}. */
export interface ChannelReceiveOptions {
  /** Largest message accepted. Default: the channel's `maxMessageBytes`. */
  maxBytes?: number;
  signal?: AbortSignal;
}

/**
 * @internal A `for await` loop over messages that are always ready runs on
 * settled promises alone: the event loop never turns, so the thread's timers,
 * its sockets (a process link's next bytes, the control connection) and its
 * other links wait until the stream stops. The iterators (`Channel.messages`,
 * `Endpoint.messages`) hand over one message in this many after a
 * `setImmediate` (about a microsecond per 1024 messages; a timer waits at
 * most that many messages).
 */
export const YIELD_EVERY = 1024;

/**
 * One end of a channel. Made by `PrimitiveRegistry.open()`.
 *
 * Events: `'event'` with a {@link ChannelEvent} (`suspended`, `resumed`,
 * `dropped`, `peerLost`, `reconnecting`, `reconnected`, `closed`).
 * Follows the lifecycle contract of `lib/core/lifecycle.ts`.
 *
 * @example
 * await using rx = await registry.open('queueConditionThread')
 * const tx = await registry.open('queueConditionThread', { address: rx.address })
 * await tx.send(Buffer.from('hi')); const msg = await rx.receive()
 */
export class Channel extends EventEmitter implements AsyncIterable<Uint8Array>, Destroyable {
  /** The primitive's name. */
  readonly primitive: string;
  /** Hand this to the other side to attach. */
  readonly address: ChannelAddress;
  /** `receive` for the end that made the instance, `send` for an attached end. */
  readonly role: 'send' | 'receive';
  /** Largest message this channel carries. */
  readonly maxMessageBytes: number;
  /** Resolves once the channel is closed, with the reason (undefined for a graceful close). */
  readonly closed: Promise<Error | undefined>;

  readonly #p: Primitive<ChannelHandle>;
  readonly #h: ChannelHandle;
  readonly #life: Lifecycle;
  /** Default suspend: sends wait here until resume (only when the primitive has no suspend). */
  #held: WaitList | null = null;
  #inFlight = 0;
  #drained: (() => void) | null = null;
  #iterating = false;
  #sent = 0;
  #received = 0;
  /** Views handed out and not yet released (the next receive or `release()` ends the lease). */
  #leased = false;
  /** Async receives in flight (of any kind), and whether one of them is a view receive. */
  #receiving = 0;
  #viewReceiving = false;

  /** @internal Use `PrimitiveRegistry.open()`. */
  constructor(primitive: Primitive<ChannelHandle>, handle: ChannelHandle, maxMessageBytes: number) {
    super();
    this.#p = primitive;
    this.#h = handle;
    this.primitive = primitive.name;
    this.address = handle.address;
    this.role = handle.role;
    this.maxMessageBytes = Math.min(maxMessageBytes, handle.maxMessageBytes ?? maxMessageBytes);
    this.#life = new Lifecycle(`${primitive.name} channel`);
    this.closed = this.#life.closed;
  }

  /** @internal Events from the primitive arrive here (wired through `ChannelOptions.onEvent`). */
  static eventSink(): { sink: (e: ChannelEvent) => void; bind: (c: Channel) => void } {
    let target: Channel | undefined;
    const early: ChannelEvent[] = [];
    return {
      sink: (e) => {
        if (target) target.#onEvent(e);
        else early.push(e);
      },
      bind: (c) => {
        target = c;
        for (const e of early.splice(0)) c.#onEvent(e);
      },
    };
  }

  /** True while the channel accepts operations. */
  get isOpen(): boolean {
    return this.#life.isOpen;
  }
  /** True while suspended by {@link suspend}. */
  get isSuspended(): boolean {
    return this.#held !== null || this.#suspendedByPrimitive;
  }
  #suspendedByPrimitive = false;

  /**
   * Method: `send(data[, options])`. Resolves when the channel has accepted
   * `data` (or discarded it by policy, counted). Rejects with
   * `AMIX_ERR_MESSAGE_TOO_LARGE`, `AMIX_ERR_QUEUE_FULL` (policy `reject`),
   * `AMIX_ERR_CLOSED` after close, `AMIX_ERR_ABORTED` on abort.
   * While suspended, the send waits for resume.
   */
  send(data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    // The common case (room in the channel, not suspended) settles without
    // entering an async body: one resolved promise instead of a chain.
    try {
      this.#checkSend(data);
      if (!options.signal && !this.#held && this.#p.trySend && this.#p.trySend(this.#h, data)) {
        this.#sent++;
        return Promise.resolve();
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#sendSlow(data, options);
  }

  async #sendSlow(data: Uint8Array, options: { signal?: AbortSignal }): Promise<void> {
    if (options.signal?.aborted) throw abortError(options.signal, 'send');
    this.#inFlight++;
    try {
      if (this.#held) await this.#waitResume(options.signal);
      await this.#p.send(this.#h, data, options);
      this.#sent++;
    } catch (err) {
      if (options.signal?.aborted) throw abortError(options.signal, 'send');
      throw err;
    } finally {
      if (--this.#inFlight === 0 && this.#drained) this.#drained();
    }
  }

  /**
   * Method: `trySend(data)`. The synchronous fast path: true when the
   * channel accepted `data` now, false when a `send` would have to wait
   * (suspended, full, or the primitive has no fast path). Throws like `send` rejects.
   */
  trySend(data: Uint8Array): boolean {
    this.#checkSend(data);
    if (this.#held || !this.#p.trySend) return false;
    const ok = this.#p.trySend(this.#h, data);
    if (ok) this.#sent++;
    return ok;
  }

  /**
   * Method: `trySendMany(messages)`. The synchronous batch fast path: how many
   * of `messages` (a prefix) the channel accepted now; 0 when a send would
   * have to wait. Throws like `send` rejects.
   */
  trySendMany(messages: readonly Uint8Array[]): number {
    this.#checkBatch(messages);
    if (this.#held) return 0;
    let i = 0;
    if (this.#p.trySendMany) i = this.#p.trySendMany(this.#h, messages);
    else if (this.#p.trySend) while (i < messages.length && this.#p.trySend(this.#h, messages[i]!)) i++;
    this.#sent += i;
    return i;
  }

  /**
   * Method: `sendMany(messages[, options])`. Sends every message in order,
   * in batches where the primitive has a batch fast path (one handover for
   * many messages), waiting like {@link send} when the channel is full.
   */
  async sendMany(messages: readonly Uint8Array[], options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#checkBatch(messages);
    let i = 0;
    while (i < messages.length) {
      if (!this.#held && this.#p.trySendMany) {
        const n = this.#p.trySendMany(this.#h, i === 0 ? messages : messages.slice(i));
        this.#sent += n;
        i += n;
        if (i >= messages.length) return;
      } else if (!this.#held && this.#p.trySend && !options.signal?.aborted) {
        // No batch form: the single fast path in a loop, so a batch that fits
        // costs no promise or microtask per message (an awaited send would).
        while (i < messages.length && this.#p.trySend(this.#h, messages[i]!)) {
          this.#sent++;
          i++;
        }
        if (i >= messages.length) return;
      }
      // Full (or no batch path): one ordinary send waits for room, then batch again.
      await this.send(messages[i]!, options);
      i++;
    }
  }

  /**
   * Method: `receiveMany([options])`. At least one message (waiting like
   * {@link receive}), plus whatever else is ready, up to `maxCount` (default 64).
   */
  async receiveMany(options: ChannelReceiveOptions & { maxCount?: number } = {}): Promise<Uint8Array[]> {
    const maxCount = options.maxCount ?? 64;
    if (!Number.isInteger(maxCount) || maxCount < 1)
      throw invalidArg('options.maxCount', 'must be a positive integer', maxCount);
    const maxBytes = this.#checkReceive(options.maxBytes);
    this.#endLease();
    const ready = (n: number): Uint8Array[] => {
      if (this.#p.tryReceiveMany) return this.#p.tryReceiveMany(this.#h, maxBytes, n);
      const out: Uint8Array[] = [];
      for (let m; out.length < n && (m = this.#p.tryReceive?.(this.#h, maxBytes)) !== undefined;) out.push(m);
      return out;
    };
    let batch = ready(maxCount);
    if (batch.length === 0) {
      batch = [await this.receive(options)];
      if (maxCount > 1) batch.push(...ready(maxCount - 1));
      this.#received += batch.length - 1;
    } else this.#received += batch.length;
    return batch;
  }

  /**
   * Method: `receive([options])`. Resolves with the next message; its length
   * is the actual size. Rejects with `AMIX_ERR_BUFFER_TOO_SMALL` when the
   * next message exceeds `maxBytes` (the message stays queued),
   * `AMIX_ERR_LINK_CLOSED` once closed and drained, `AMIX_ERR_ABORTED` on abort.
   */
  receive(options: ChannelReceiveOptions = {}): Promise<Uint8Array> {
    return this.#receiveOne(options, false);
  }

  async #receiveOne(options: ChannelReceiveOptions, view: boolean): Promise<Uint8Array> {
    const maxBytes = this.#checkReceive(options.maxBytes);
    if (view && this.#receiving > 0) {
      throw invalidArg(
        'receiveView()',
        'must not overlap another receive on this channel (the next receive releases the view it returns)',
      );
    }
    this.#endLease();
    if (options.signal?.aborted) throw abortError(options.signal, 'receive');
    const o = { maxBytes, ...(options.signal ? { signal: options.signal } : {}) };
    this.#receiving++;
    if (view) this.#viewReceiving = true;
    try {
      const msg =
        view && this.#p.receiveView ? await this.#p.receiveView(this.#h, o) : await this.#p.receive(this.#h, o);
      this.#received++;
      if (view) this.#leased = true;
      return msg;
    } catch (err) {
      // Whatever the primitive rejected with, an abort reaches the caller as one AbortError shape.
      if (options.signal?.aborted) throw abortError(options.signal, 'receive');
      throw err;
    } finally {
      this.#receiving--;
      if (view) this.#viewReceiving = false;
    }
  }

  /** Method: `tryReceive([maxBytes])`. The next message if one is ready now, else undefined. */
  tryReceive(maxBytes?: number): Uint8Array | undefined {
    const max = this.#checkReceive(maxBytes);
    this.#endLease();
    if (!this.#p.tryReceive) return undefined;
    const msg = this.#p.tryReceive(this.#h, max);
    if (msg !== undefined) this.#received++;
    return msg;
  }

  /**
   * Method: `receiveView([options])`. Zero-copy receive: like {@link receive},
   * but the message may be a view into the primitive's memory (the thread
   * ring's shared buffer), valid until {@link release} or the next receive of
   * any kind on this channel, whichever comes first. Until then the sender
   * cannot reuse its space; after it, its bytes may change at any moment
   * (not detectable on the view: copy with `view.slice()` what you keep).
   * A primitive without views gives a copy. Rejects like `receive`, and with
   * `AMIX_ERR_INVALID_ARG` while another receive on this channel is in flight.
   */
  receiveView(options: ChannelReceiveOptions = {}): Promise<Uint8Array> {
    return this.#receiveOne(options, true);
  }

  /** Method: `tryReceiveView([maxBytes])`. The next message as a leased view (see {@link receiveView}) if one is ready now, else undefined. */
  tryReceiveView(maxBytes?: number): Uint8Array | undefined {
    const max = this.#checkReceive(maxBytes);
    this.#endLease();
    const p = this.#p;
    const msg = p.tryReceiveView ? p.tryReceiveView(this.#h, max) : p.tryReceive?.(this.#h, max);
    if (msg !== undefined) {
      this.#received++;
      this.#leased = true;
    }
    return msg;
  }

  /**
   * Method: `receiveManyView([options])`. {@link receiveMany} as leased views
   * (see {@link receiveView}): every view of the batch stays valid until
   * {@link release} or the next receive on this channel.
   */
  async receiveManyView(options: ChannelReceiveOptions & { maxCount?: number } = {}): Promise<Uint8Array[]> {
    const p = this.#p;
    if (!p.tryReceiveManyView) return this.receiveMany(options);
    const maxCount = options.maxCount ?? 64;
    if (!Number.isInteger(maxCount) || maxCount < 1)
      throw invalidArg('options.maxCount', 'must be a positive integer', maxCount);
    const maxBytes = this.#checkReceive(options.maxBytes);
    this.#endLease();
    let batch = p.tryReceiveManyView(this.#h, maxBytes, maxCount);
    if (batch.length === 0) {
      // One view, waited for; the rest join the same lease.
      batch = [await this.receiveView(options)];
      if (maxCount > 1) batch.push(...p.tryReceiveManyView(this.#h, maxBytes, maxCount - 1));
      this.#received += batch.length - 1;
    } else this.#received += batch.length;
    this.#leased = true;
    return batch;
  }

  /**
   * Method: `release()`. End the lease of the views this receiving end handed
   * out ({@link receiveView}): the sender may reuse their space, so their
   * bytes may change from now on. Idempotent; the next receive does it anyway.
   */
  release(): void {
    if (this.role !== 'receive') throw invalidArg('release()', 'needs a receiving end');
    this.#endLease();
  }

  #endLease(): void {
    if (this.#viewReceiving)
      throw invalidArg(
        'receive',
        'must wait for the view receive in flight on this channel (it would release its view)',
      );
    if (!this.#leased) return;
    this.#leased = false;
    if (this.#life.state !== 'closed') this.#p.release?.(this.#h);
  }

  /**
   * Messages as an async iterable. Ends cleanly when the channel closes;
   * `break` does not close the channel. A second concurrent consumer gets
   * `AMIX_ERR_INVALID_ARG`. Every 1024th message in a row comes after a turn
   * of the event loop, so a loop over messages that are always ready does not
   * stop the thread's timers and I/O.
   */
  async *messages(options: ChannelReceiveOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#iterating) throw invalidArg('messages()', 'allows one consumer at a time; another is iterating');
    this.#iterating = true;
    let run = 0;
    try {
      for (;;) {
        let msg: Uint8Array;
        try {
          msg = await this.receive(options);
        } catch (err) {
          if (
            (err as AmixError).code === ErrorCode.AMIX_ERR_LINK_CLOSED ||
            (err as AmixError).code === ErrorCode.AMIX_ERR_CLOSED
          )
            return;
          throw err;
        }
        if (++run >= YIELD_EVERY) {
          run = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
        yield msg;
      }
    } finally {
      this.#iterating = false;
    }
  }

  /** Same as {@link messages} with default options. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.messages();
  }

  /** Cycle the primitive: its own cycle, or by default a null (zero-length) message on a sending end. */
  async cycle(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#checkOpen();
    if (this.#p.cycle) return this.#p.cycle(this.#h, options);
    if (this.role === 'send') await this.send(EMPTY, options);
  }

  /** Run the primitive's own connect step, if it has one. */
  async connect(): Promise<void> {
    this.#checkOpen();
    await this.#p.connect?.(this.#h);
  }

  /** Run the primitive's own disconnect step, if it has one. */
  async disconnect(): Promise<void> {
    this.#checkOpen();
    await this.#p.disconnect?.(this.#h);
  }

  /** Suspend the sender: the primitive's own suspend, or by default hold sends until {@link resume}. Idempotent. */
  async suspend(): Promise<void> {
    this.#checkOpen();
    if (this.#p.suspend) {
      await this.#p.suspend(this.#h);
      this.#suspendedByPrimitive = true;
      return;
    }
    this.#held ??= new WaitList();
  }

  /** Resume a suspended sender. Idempotent. */
  async resume(): Promise<void> {
    this.#checkOpen();
    if (this.#p.resume) {
      await this.#p.resume(this.#h);
      this.#suspendedByPrimitive = false;
      return;
    }
    const held = this.#held;
    this.#held = null;
    held?.resolveAll();
  }

  /** Counters: the primitive's, or the wrapper's own counts. */
  stats(): ChannelStats {
    if (this.#p.stats) return this.#p.stats(this.#h);
    return { ...emptyStats(), sent: this.#sent, received: this.#received };
  }

  /**
   * Graceful and idempotent (a second call returns the same promise): stop
   * taking new operations, let sends in flight settle, then release the end.
   * Pending receives reject with `AMIX_ERR_LINK_CLOSED`.
   */
  close(): Promise<void> {
    return this.#life.close(async () => {
      this.#releaseHeld();
      if (this.#inFlight > 0)
        await new Promise<void>((r) => {
          this.#drained = r;
        });
      await this.#release(undefined);
    });
  }

  /**
   * Abrupt: release the end now; everything pending rejects with
   * `AMIX_ERR_LINK_CLOSED` (cause: `reason`). Escalates a close in progress.
   */
  destroy(reason?: Error): Promise<void> {
    return this.#life.destroy(reason ?? new AmixError(ErrorCode.AMIX_ERR_LINK_CLOSED, 'channel destroyed'), (r) => {
      this.#releaseHeld();
      return this.#release(r);
    });
  }

  /** Calls {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Sends held by the default suspension fail: the channel is going away. */
  #releaseHeld(): void {
    const held = this.#held;
    this.#held = null;
    held?.rejectAll(new AmixError(ErrorCode.AMIX_ERR_LINK_CLOSED, 'channel closed while the send was suspended'));
  }

  async #release(reason: Error | undefined): Promise<void> {
    // #onEvent may have settled the channel already (the primitive closed it).
    if (this.#life.state === 'closed') return;
    try {
      await this.#p.destroy(this.#h, reason);
    } finally {
      // #onEvent may have settled the state while destroy was awaited.
      if (this.#life.settle(reason))
        this.emit('event', { type: 'closed', ...(reason ? { reason } : {}) } satisfies ChannelEvent);
    }
  }

  #onEvent(e: ChannelEvent): void {
    if (e.type === 'closed') {
      // The primitive closed the end itself (peer gone for good): settle our state once.
      if (!this.#life.settle(e.reason)) return;
    }
    this.emit('event', e);
  }

  #checkOpen(): void {
    this.#life.assertOpen();
  }

  #checkSend(data: Uint8Array): void {
    this.#checkOpen();
    if (!(data instanceof Uint8Array)) throw invalidArg('data', 'must be a Uint8Array (or Buffer)', data);
    if (this.role !== 'send')
      throw invalidArg('send()', 'needs a sending end (this end was created without an address, so it receives)');
    if (data.byteLength > this.maxMessageBytes) {
      throw new AmixError(
        ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE,
        `message of ${data.byteLength} bytes exceeds the ${this.primitive} channel maximum of ${this.maxMessageBytes}`,
        { details: { size: data.byteLength, max: this.maxMessageBytes } },
      );
    }
  }

  /** {@link #checkSend} for a batch: the end's state and role once, each message's type and size. */
  #checkBatch(messages: readonly Uint8Array[]): void {
    if (messages.length === 0) return this.#checkOpen();
    this.#checkSend(messages[0]!);
    const max = this.maxMessageBytes;
    for (let i = 1; i < messages.length; i++) {
      const m = messages[i]!;
      if (!(m instanceof Uint8Array) || m.byteLength > max) this.#checkSend(m);
    }
  }

  #checkReceive(maxBytes: number | undefined): number {
    if (this.#life.state === 'closed') {
      const reason = this.#life.reason;
      throw new AmixError(
        ErrorCode.AMIX_ERR_LINK_CLOSED,
        `${this.primitive} channel is closed`,
        reason ? { cause: reason } : {},
      );
    }
    if (this.role !== 'receive')
      throw invalidArg('receive()', 'needs a receiving end (this end was attached to an address, so it sends)');
    if (maxBytes === undefined) return this.maxMessageBytes;
    if (!Number.isInteger(maxBytes) || maxBytes < 0)
      throw invalidArg('options.maxBytes', 'must be a non-negative integer', maxBytes);
    return maxBytes;
  }

  #waitResume(signal?: AbortSignal): Promise<void> {
    return this.#held!.wait(undefined, { signal, what: 'send' });
  }
}

/** @internal Normalised options the registry passes to a primitive's create. */
export type ResolvedChannelOptions = ChannelOptions & { maxMessageBytes: number };

/** Channel counters at zero: the start of every primitive's stats. */
export function emptyStats(): ChannelStats {
  return { sent: 0, received: 0, pending: 0, dropped: 0, rejected: 0, suspensions: 0, bytesSent: 0, bytesReceived: 0 };
}
