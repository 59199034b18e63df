/**
 * Keyed peering's per-key slots. libzmq authenticates each connection's
 * CURVE key, but zeromq.js cannot tell which key a message came in with
 * (it has no `zmq_msg_gets`, so no ZAP "User-Id" per message). So each
 * allowed key gets its own control and data receiving ends, whose ZAP
 * allow-list holds that key alone: whatever arrives there was sent by the
 * holder of that key, and so by the daemon the key is bound to. The hello
 * (on the shared `--listen` end) proves its key with {@link proveKey} and
 * tells the peer the endpoints of its slot; everything after it goes there.
 *
 * A slot's own data loop and control loop also mean that one peer that
 * sends from unknown ids, stalls or never says hello delays nobody else.
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import { WaitList } from '../core/waitList.js';
import type { Conduit } from './conduit.js';
import { MAX_HELLO_WAITERS, STRANGER_TTL_MS } from './types.js';

/** @internal One allowed key: the id it is bound to, its receiving ends, and its peer's conduit. */
export class Slot {
  /** The peer's CURVE public key. */
  readonly key: string;
  /** The id the allow-list line names (fixed), or the one pinned by its first hello. */
  id: string | undefined;
  /** True when the allow-list line names the id (it is never re-pinned). */
  readonly named: boolean;
  /** Where only this key may send control messages. */
  ctlRx: Channel | undefined;
  /** Where only this key may send envelopes. */
  dataRx: Channel | undefined;
  /** The peer's conduit once a hello through this key is bound. */
  conduit: Conduit | undefined;
  /** Drops counted against the key (its conduit's stats count them too, once it has one). */
  readonly stats = { spoofed: 0, refusedHellos: 0 };
  readonly #bound = new WaitList<void, Conduit | undefined>();
  /** Until when a wait for this key's hello is known to be vain. */
  #strangerUntil = 0;

  constructor(key: string, id: string | undefined, named = id !== undefined) {
    this.key = key;
    this.id = id;
    this.named = named;
  }

  /** A hello through this key was bound to conduit `c`: wake what waited for it. */
  bind(c: Conduit): void {
    this.conduit = c;
    this.#strangerUntil = 0;
    this.#bound.resolveAll(c);
  }

  /**
   * The conduit once this key's hello is bound, waiting up to `graceMs`;
   * undefined if none comes, if too many already wait, or if the last wait
   * was in vain less than a minute ago (so a stream of envelopes costs one
   * wait, and only on this key's own loops).
   */
  whenBound(graceMs: number): Promise<Conduit | undefined> {
    if (this.conduit?.ctlTx) return Promise.resolve(this.conduit);
    if (Date.now() < this.#strangerUntil || this.#bound.length >= MAX_HELLO_WAITERS) return Promise.resolve(undefined);
    return this.#bound.wait(undefined, { timeoutMs: graceMs, what: `the hello of key ${this.key}` }).catch(() => {
      this.#strangerUntil = Date.now() + STRANGER_TTL_MS;
      return undefined;
    });
  }

  /** Stop waiting: every waiter gets "no such peer". */
  close(): void {
    this.#bound.resolveAll(undefined);
  }
}
