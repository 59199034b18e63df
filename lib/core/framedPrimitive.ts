/**
 * The primitive object of a message-transport primitive (`zeromq`, `nats`),
 * once: the operations every such primitive answers the same way over its
 * framed ends (`framedSender.ts`, `framedReceiver.ts`). The primitive passes
 * in how it creates, connects, disconnects and closes its ends.
 *
 * @module
 */
import { invalidArg } from './errors.js';
import type {
  ChannelHandle,
  ChannelOptions,
  Primitive,
  PrimitiveCharacteristics,
  ReceiveOptions,
  SendOptions,
} from './primitive.js';
import { closedError, type FramedStats } from './framedWire.js';
import { closeReceiver, takeNext, type FramedReceiveState } from './framedReceiver.js';
import {
  drainOnClose,
  pendingOf,
  ping,
  pump,
  sendBlocking,
  trySendNow,
  waitCredited,
  type FramedSendState,
} from './framedSender.js';

/** A framed receiving end of any session and origin type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyReceiveState = FramedReceiveState<any, any> & ChannelHandle;

/** What a framed primitive does itself (see {@link framedPrimitive}). */
export interface FramedEnds<R extends AnyReceiveState, S extends FramedSendState & ChannelHandle> {
  /** The primitive's name; its options are `ChannelOptions[name]`. */
  readonly name: string;
  readonly characteristics: PrimitiveCharacteristics;
  /** Make a receiving end (no address). */
  createReceiver(options: ChannelOptions): Promise<R>;
  /** Attach a sending end to `options.address`. */
  createSender(options: ChannelOptions): Promise<S>;
  /** Release a receiving end's transport (its credit and blocked receives are closed before); `reason` undefined: graceful. */
  destroyReceiver(h: R, reason: Error | undefined): Promise<void>;
  /** Release a sending end's transport (its waiters failed by it: see `closeSender`). */
  destroySender(h: S, graceful: boolean): void | Promise<void>;
  /** A detached sending end attaches again (before `connect` waits for credit). */
  reattach(h: S): void;
  /** Detach a sending end: messages stay buffered and go out after the next `connect()`. */
  detach(h: S): void;
}

/**
 * The primitive object over `ends`: create (checking `options[name]` is an
 * object), send and trySend on the sending end, receive and tryReceive on
 * the receiving end, cycle (a PING), connect and disconnect, suspend and
 * resume (the sender holds sends; the receiver stops granting), stats, and
 * a destroy that drains a sending end gracefully first.
 */
export function framedPrimitive<R extends AnyReceiveState, S extends FramedSendState & ChannelHandle>(
  ends: FramedEnds<R, S>,
): Primitive<R | S> {
  const { name } = ends;
  return {
    name,
    characteristics: ends.characteristics,

    async create(options: ChannelOptions): Promise<R | S> {
      const own = (options as Record<string, unknown>)[name];
      if (own !== undefined && (own === null || typeof own !== 'object'))
        throw invalidArg(`options.${name}`, 'must be an object', own);
      return options.address === undefined ? ends.createReceiver(options) : ends.createSender(options);
    },

    async destroy(handle: R | S, reason?: Error): Promise<void> {
      if (handle.closed) return;
      if (handle.role === 'send' && reason === undefined) await drainOnClose(handle);
      if (handle.closed) return;
      handle.closed = true;
      handle.closeReason = reason;
      if (handle.role === 'receive') {
        closeReceiver(handle);
        await ends.destroyReceiver(handle, reason);
      } else await ends.destroySender(handle, reason === undefined);
    },

    async send(handle: R | S, data: Uint8Array, options: SendOptions = {}): Promise<void> {
      if (handle.role !== 'send') throw invalidArg('send()', 'needs a sending end');
      if (trySendNow(handle, data)) return;
      return sendBlocking(handle, data, options.signal);
    },

    trySend(handle: R | S, data: Uint8Array): boolean {
      if (handle.role !== 'send') throw invalidArg('trySend()', 'needs a sending end');
      return trySendNow(handle, data);
    },

    async receive(handle: R | S, options: ReceiveOptions): Promise<Uint8Array> {
      if (handle.role !== 'receive') throw invalidArg('receive()', 'needs a receiving end');
      // Inline, not through another async function: one promise per waiting receive, as before.
      const now = takeNext(handle, options.maxBytes);
      if (now !== undefined) return now;
      if (handle.closed) throw closedError(handle, '');
      return handle.readers.wait(options.maxBytes, { signal: options.signal, what: 'receive' });
    },

    tryReceive(handle: R | S, maxBytes: number): Uint8Array | undefined {
      if (handle.role !== 'receive') throw invalidArg('tryReceive()', 'needs a receiving end');
      return takeNext(handle, maxBytes);
    },

    /** Sending end: a PING through to the receiving end and its CREDIT back. Receiving end: nothing. */
    async cycle(handle: R | S, options: SendOptions = {}): Promise<void> {
      if (handle.role === 'send') await ping(handle, options.signal);
    },

    /** Sending end: wait until the receiving end has answered (`AMIX_ERR_TIMEOUT`, `AMIX_ERR_UNAUTHORIZED`). */
    async connect(handle: R | S): Promise<void> {
      if (handle.role !== 'send') return;
      if (handle.detached) {
        handle.detached = false;
        ends.reattach(handle);
      }
      await waitCredited(handle, handle.connectTimeoutMs, 'connect');
    },

    /** Sending end: drop the connection; messages stay buffered and go out after the next `connect()`. */
    async disconnect(handle: R | S): Promise<void> {
      if (handle.role !== 'send' || handle.detached) return;
      handle.detached = true;
      handle.credited = false;
      ends.detach(handle);
    },

    /** Sending end: hold sends. Receiving end: stop granting credit, so remote senders stop at zero credit. */
    suspend(handle: R | S): void {
      if (handle.role === 'send') handle.w.paused = true;
      else handle.credit.suspend();
    },

    resume(handle: R | S): void {
      if (handle.role === 'send') {
        handle.w.paused = false;
        pump(handle);
      } else if (!handle.closed) handle.credit.resume();
    },

    /** The end's counters (the primitive's own too) and what is pending. */
    stats(handle: R | S): FramedStats {
      const pending = handle.role === 'send' ? pendingOf(handle) : handle.queue.length;
      return { ...handle.stats, pending };
    },
  };
}
