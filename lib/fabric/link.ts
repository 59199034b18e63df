/**
 * {@link Link}: a link as the calling application holds it. The fabric
 * makes one per link; when the caller is an end, its send and receive go
 * through the caller's own endpoint.
 *
 * @module
 */
import type { Endpoint, ListEntry, PointMessage, PointReceiveOptions, PointSendOptions } from './endpoint.js';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import type { DisconnectOptions, LinkInfo } from './types.js';

/** @internal Ends a link's handle when the fabric removes the link. */
export const kEnded = Symbol('ended');

/** @internal What a {@link Link} asks of its fabric (the fabric implements it). */
export interface LinkControl {
  link(id: string): LinkInfo;
  hasLink(id: string): boolean;
  suspend(link: string): Promise<void>;
  resume(link: string): Promise<void>;
  disconnect(link: string, options?: DisconnectOptions): Promise<void>;
}

/**
 * A link as the calling application holds it when it is one of the ends:
 * send and receive as a point would. Also returned for links between two
 * other points (then send/receive are refused).
 */
export class Link implements AsyncIterable<PointMessage> {
  /** The link id. */
  readonly id: string;
  readonly #fabric: LinkControl;
  readonly #end: Endpoint | undefined;

  /** @internal */
  readonly #sends: boolean;
  readonly #receives: boolean;

  /** @internal `can` says whether the caller sends and receives on this link (from its direction). */
  constructor(
    fabric: LinkControl,
    id: string,
    end: Endpoint | undefined,
    can: { send: boolean; receive: boolean } = { send: true, receive: true },
  ) {
    this.id = id;
    this.#fabric = fabric;
    this.#end = end;
    this.#sends = can.send;
    this.#receives = can.receive;
  }

  /** The caller's sender list on this link (seed: where its sends go). */
  get senderList(): ListEntry[] {
    return this.#endpoint().senderList;
  }

  /** The caller's receiver list on this link (where its receives come from). */
  get receiverList(): ListEntry[] {
    return this.#endpoint().receiverList;
  }

  /** A snapshot of the link. */
  get info(): LinkInfo {
    return this.#fabric.link(this.id);
  }

  /** Method: `send(data[, options])`. Send to the link's receivers (the caller must be an end with a sending direction). */
  send(data: Uint8Array, options: PointSendOptions = {}): Promise<void> {
    // A direction without the caller's send would keep the message where nobody receives it: refuse instead.
    if (!this.#sends) return Promise.reject(this.#wrongWay('send'));
    return this.#endpoint().send(data, options);
  }

  /** Method: `receive([options])`. The next message to the caller on this link, naming the point it came from. */
  receive(options: PointReceiveOptions = {}): Promise<PointMessage> {
    if (!this.#receives) return Promise.reject(this.#wrongWay('receive'));
    return this.#endpoint().receive(options);
  }

  /** Messages to the caller on this link; ends when the link closes. */
  messages(options: PointReceiveOptions = {}): AsyncGenerator<PointMessage, void, undefined> {
    if (!this.#receives) throw this.#wrongWay('receive');
    return this.#endpoint().messages(options);
  }

  /** Same as {@link Link.messages} with no options. */
  [Symbol.asyncIterator](): AsyncIterator<PointMessage> {
    return this.messages();
  }

  /** Suspend the link's senders. */
  suspend(): Promise<void> {
    return this.#fabric.suspend(this.id);
  }
  /** Resume the link's senders. */
  resume(): Promise<void> {
    return this.#fabric.resume(this.id);
  }
  /** Disconnect (restoring a link this one held). Idempotent. */
  async close(options: DisconnectOptions = {}): Promise<void> {
    if (this.#fabric.hasLink(this.id)) await this.#fabric.disconnect(this.id, options);
  }
  /** Calls {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal The fabric removed the link: end the caller's endpoint so its receives finish (with `reason` as their cause). */
  [kEnded](reason?: Error): void {
    if (reason) void this.#end?.destroy(reason);
    else void this.#end?.close();
  }

  #wrongWay(op: 'send' | 'receive'): AmixError {
    const direction = this.#fabric.hasLink(this.id) ? this.#fabric.link(this.id).direction : undefined;
    return new AmixError(
      ErrorCode.AMIX_ERR_BAD_DIRECTION,
      `link ${this.id} (direction ${String(direction)}) does not let the caller ${op}`,
      { details: { direction: String(direction) } },
    );
  }

  #endpoint(): Endpoint {
    if (!this.#end) throw invalidArg(`link ${this.id}`, 'does not have the caller as an end');
    return this.#end;
  }
}
