/**
 * Peer sessions: dialling the configured peers, the hello in both
 * directions, binding a peer's hello to its conduit (serialised per peer),
 * noticing a peer's loss, re-opening flows after a peer came back, and the
 * hello wait (requests and envelopes from a daemon still saying hello).
 *
 * @module
 */
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { Channel } from '../core/channel.js';
import { AmixError, ErrorCode } from '../core/errors.js';
import { checkKeyProof } from '../../primitives/zeromq/keys.js';
import type { ChannelEvent } from '../core/primitive.js';
import { WaitList } from '../core/waitList.js';
import { Conduit, type Dial } from './conduit.js';
import { readState, writeState } from './stateFile.js';
import { directoryPeer } from './federation.js';
import type { Slot } from './slots.js';
import type { PeeringCore } from './state.js';
import {
  DAEMON_ID,
  MAX_KNOWN_IDS,
  STRANGER_TTL_MS,
  checkHello,
  controlAddress,
  helloText,
  key,
  peerLost,
  type PeerHello,
} from './types.js';
import { startAt } from './flowCredit.js';
import { resumeAt } from './flows.js';

/** @internal What `peering.json` keeps: the data endpoint (insecure), and per key its endpoints and pinned id. */
export interface PeeringState {
  data?: string;
  /** Insecure: the ids of the peers that said hello, most recent last (see {@link Sessions.isKnown}). */
  known?: string[];
  slots?: Record<string, { control?: string; data?: string; id?: string }>;
}

/** @internal Read `peering.json` (not through a symlink); `{}` when there is none or it is not JSON. */
export async function readPeeringState(file: string): Promise<PeeringState> {
  return (await readState(file)) as PeeringState;
}

/** @internal The sessions with peer daemons. */
export class Sessions {
  readonly #core: PeeringCore;
  /** Binds in progress, by peer id (serialised per peer). */
  readonly #binding = new Map<string, Promise<Conduit>>();
  /** Callers waiting for a peer's hello to finish, by directory id (see {@link Sessions.whenPeer}). */
  readonly #helloWaiters = new Map<string, WaitList<void, Conduit | undefined>>();
  /** Directory ids that were waited for and never said hello: not waited for again until they do (or the entry ages out). */
  readonly #strangers = new LRUCache<string, true>({ max: 1024, ttl: STRANGER_TTL_MS });
  /** Insecure: ids that said hello here, now or before a restart (kept in `peering.json`). */
  readonly #known = new LRUCache<string, true>({ max: MAX_KNOWN_IDS });

  /** Insecure: take the ids `peering.json` kept. */
  remember(ids: readonly unknown[] | undefined): void {
    for (const id of ids ?? []) if (typeof id === 'string' && DAEMON_ID.test(id)) this.#known.set(id, true);
  }

  /**
   * Insecure: true when daemon `id` said hello here, in this process or
   * before a restart. Only those are waited for by the one data loop (their
   * re-sent data can come before their hello); an id never seen is dropped
   * at once, so it cannot hold up the loop that every peer shares.
   */
  isKnown(id: string): boolean {
    return this.#known.has(id);
  }

  constructor(core: PeeringCore) {
    this.#core = core;
  }

  /** Stop waiting for hellos: every waiter gets "no such peer". */
  close(): void {
    for (const list of this.#helloWaiters.values()) list.resolveAll(undefined);
    this.#helloWaiters.clear();
  }

  /** Dial a configured peer: keep trying until it answers, then say hello (again after every reconnect). */
  async dial(d: Dial): Promise<void> {
    const address = controlAddress(d.config.endpoint, d.config.publicKey);
    try {
      d.tx = await this.#core.open({ address, ...this.#core.client() }, (e) => this.#onDialEvent(d, e));
    } catch (err) {
      d.state = 'refused';
      d.error = err as AmixError;
      this.#core.host.log(`peering: cannot dial ${d.config.endpoint}: ${(err as Error).message}`);
      return;
    }
    while (!this.#core.closed && !d.dropped) {
      try {
        await d.tx.connect();
        await this.#hello(d);
        return;
      } catch (err) {
        if (this.#core.closed || d.dropped) return;
        const e = err as AmixError;
        if (e.code === ErrorCode.AMIX_ERR_UNAUTHORIZED) {
          if (d.state !== 'refused')
            this.#core.host.log(`peering: ${d.config.endpoint} refused this daemon: ${e.message}`);
          d.state = 'refused';
          d.error = e;
          this.#core.host.broadcast({ type: 'remote.peerRefused', endpoint: d.config.endpoint, error: e });
        }
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  }

  #onDialEvent(d: Dial, e: ChannelEvent): void {
    if (this.#core.closed) return;
    if (e.type === 'reconnected' || (e.type === 'resumed' && d.state === 'down')) {
      // The peer may be a new process that knows nothing of us: say hello again.
      void this.#hello(d).catch((err: Error) =>
        this.#core.host.log(`peering: hello to ${d.config.endpoint} failed: ${err.message}`),
      );
    } else if (e.type === 'peerLost') {
      const c = d.peer ? this.#core.peers.get(d.peer) : undefined;
      if (c) this.#lost(c, e.error as AmixError | undefined);
      else if (d.state !== 'refused') d.state = 'down';
    }
  }

  async #hello(d: Dial): Promise<void> {
    // Keyed, the peer we dial is the holder of the key we dial it with: its reply must prove that key.
    const slot = d.config.publicKey ? this.#core.slots.get(d.config.publicKey) : undefined;
    const reply = await this.#core.hello(d.tx!, slot);
    const c = await this.bind(checkHello(reply), d.tx!, slot ?? null);
    d.peer = c.id;
    d.state = 'up';
    d.error = undefined;
  }

  /**
   * Take a peer's hello (or hello reply): make or refresh its conduit, with
   * sending ends to the addresses it gave; re-open what this daemon had
   * through it (the peer may have restarted and lost its half).
   */
  bind(h: PeerHello, dialled?: Channel, via?: Slot | null): Promise<Conduit> {
    let slot: Slot | undefined;
    try {
      slot = this.#core.keys ? this.#admit(h, via ?? undefined) : undefined;
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // Two hellos from one peer can cross (its reconnect hello and the reply to
    // ours): bind them one after the other, or both would open data channels.
    const next = (this.#binding.get(h.id) ?? Promise.resolve())
      .catch(() => {})
      .then(() => this.#bindNow(h, this.#core.keys ? undefined : dialled, slot));
    this.#binding.set(h.id, next);
    void next
      .catch(() => {})
      .finally(() => {
        if (this.#binding.get(h.id) === next) this.#binding.delete(h.id);
      });
    return next;
  }

  /**
   * Keyed: the slot of the key a hello proves, or `AMIX_ERR_PEER_REFUSED`
   * (counted). The hello must name a listed key and prove it (so no other
   * key holder can say it), its id must be the one that key is bound to
   * (named in the allow-list, or pinned by its first hello) and no other
   * key's, and its addresses must be served by that key (so what this daemon
   * sends to the id reaches only the key's holder). `via` is the slot the
   * hello came in on, or the one dialled; undefined for the shared end.
   */
  #admit(h: PeerHello, via: Slot | undefined): Slot {
    const core = this.#core;
    const key = h.key;
    const refuse = (reason: string, slot?: Slot): never => {
      throw core.refuse(h.id, reason, key, h.control.endpoint, slot);
    };
    const slot = key === undefined ? undefined : core.slots.get(key);
    if (!slot) return refuse(key === undefined ? 'the hello names no key' : 'its key is not in the allow-list');
    if (via && via !== slot) return refuse(`it came with the key of ${via.id ?? via.key}, not ${key}`, via);
    if (!checkKeyProof(core.keys!, key, helloText(h), h.proof))
      return refuse('it does not prove its key (the proof does not check)', slot);
    if (h.id === core.id) return refuse("it claims this daemon's own id", slot);
    if (slot.id !== undefined && slot.id !== h.id) return refuse(`its key is bound to daemon ${slot.id}`, slot);
    const owner = core.slotById(h.id);
    if (owner && owner !== slot) return refuse(`daemon ${h.id} is bound to another key`, slot);
    if (h.control.serverPublicKey !== key || h.data.serverPublicKey !== key)
      return refuse('its addresses are not served by its key', slot);
    if (slot.id === undefined) {
      // A key listed without an id: pinned to the first id it proved, here and in peering.json.
      slot.id = h.id;
      void this.savePins();
    }
    return slot;
  }

  /** Write `peering.json` (endpoints and pinned ids), one write at a time. */
  savePins(): Promise<void> {
    const core = this.#core;
    const state: PeeringState = core.keys
      ? {
          slots: Object.fromEntries(
            [...core.slots.values()].map((s) => [
              s.key,
              {
                ...(s.ctlRx ? { control: s.ctlRx.address.endpoint as string } : {}),
                ...(s.dataRx ? { data: s.dataRx.address.endpoint as string } : {}),
                ...(s.id !== undefined && !s.named ? { id: s.id } : {}),
              },
            ]),
          ),
        }
      : { ...(core.dataRx ? { data: core.addresses.data.endpoint } : {}), known: [...this.#known.keys()].reverse() };
    const file = join(core.host.stateDir, 'peering.json');
    this.#saving = this.#saving
      .then(() => writeState(file, `${JSON.stringify(state)}\n`))
      .catch((err: Error) => core.host.log(`peering: cannot write ${file}: ${err.message}`));
    return this.#saving;
  }

  #saving: Promise<void> = Promise.resolve();

  /** Resolves once the last `peering.json` write is done. */
  flushPins(): Promise<void> {
    return this.#saving;
  }

  async #bindNow(h: PeerHello, dialled?: Channel, slot?: Slot): Promise<Conduit> {
    if (h.id === this.#core.id)
      throw new AmixError(
        ErrorCode.AMIX_ERR_INVALID_ARG,
        `peer ${h.control.endpoint} is this daemon itself (directory ${h.id})`,
      );
    let c = this.#core.peers.get(h.id);
    const fresh = !c;
    if (!c) {
      c = new Conduit(h.id, this.#core.host.fabric);
      this.#core.peers.set(h.id, c);
    }
    const wasDown = c.state !== 'up';
    // Control to the peer: the channel we dialled it on, else the one we have if it still points there, else a new one.
    const keep = dialled ?? (c.ctlEndpoint === h.control.endpoint ? c.ctlTx : undefined);
    if (c.ctlTx !== keep || !keep) {
      const old = c.ctlTx;
      const conduit = c;
      c.ctlTx =
        keep ??
        (await this.#core.open({ address: h.control, ...this.#core.client() }, (e) =>
          this.#onConduitEvent(conduit, e),
        ));
      c.ctlEndpoint = h.control.endpoint;
      // A dial channel belongs to its dial (it re-says hello after reconnects); only our own are closed here.
      if (old && !this.#isDial(old)) await old.destroy().catch(() => {});
    }
    if (!c.dataTx || c.dataEndpoint !== h.data.endpoint) {
      const old = c.dataTx;
      c.setDataTx(await this.#core.open({ address: h.data, ...this.#core.client() }));
      c.dataEndpoint = h.data.endpoint;
      if (old) await old.destroy().catch(() => {});
    }
    c.state = 'up';
    c.error = undefined;
    this.#markedLost.delete(c.id);
    // A new process behind this id (another epoch, or one that names none) numbers its flows from 0 again;
    // and lost what it had of ours and had not reported taken, which goes again once the flows are re-opened.
    const restarted = !fresh && (h.epoch === undefined || h.epoch !== c.epoch);
    if (h.epoch === undefined || h.epoch !== c.epoch) {
      for (const f of c.in.values()) f.expected = undefined;
    }
    c.epoch = h.epoch;
    this.#core.delivery.peer(c.id, h.epoch);
    if (!this.#core.dirPeers.has(c.id) && this.#core.opts.federate !== false) {
      const peer = directoryPeer(this.#core, c);
      this.#core.dirPeers.set(c.id, peer);
      this.#core.host.directory.addPeer(peer);
    }
    this.#strangers.delete(c.id);
    slot?.bind(c);
    if (!this.#core.keys && !this.#known.has(c.id)) {
      this.#known.set(c.id, true);
      void this.savePins();
    }
    const waiting = this.#helloWaiters.get(c.id);
    this.#helloWaiters.delete(c.id);
    waiting?.resolveAll(c);
    if (fresh || wasDown || restarted) {
      this.#core.host.log(`peering: ${c.id} is up at ${h.control.endpoint}`);
      this.#core.host.broadcast({
        type: 'remote.peerUp',
        peer: c.id,
        endpoint: h.control.endpoint,
        links: this.#core.linksOf(c),
      });
      // After the hello reply has gone out (callers' next step), or the peer would get requests before it knows us.
      const conduit = c;
      setImmediate(() => void this.#reopen(conduit));
    }
    return c;
  }

  #isDial(tx: Channel): boolean {
    return this.#core.dials.some((d) => d.tx === tx);
  }

  #onConduitEvent(c: Conduit, e: ChannelEvent): void {
    if (this.#core.closed) return;
    if (e.type === 'peerLost') this.#lost(c, e.error as AmixError | undefined);
    // A peer that dialled us says hello again itself when it comes back.
  }

  /** Mark peer `c` lost by another's account (its links' owners told `remote.peerLost`); no-op when it is down already. */
  lost(c: Conduit, error: AmixError | undefined): void {
    if (c.state !== 'down') this.#markedLost.add(c.id);
    this.#lost(c, error);
  }

  /** Peers marked lost by {@link Sessions.lost} whose channels never said so. */
  readonly #markedLost = new Set<string>();

  /**
   * A peer marked lost by {@link Sessions.lost} is back (the same process):
   * its channels never broke, so its conduit is up again (`remote.peerUp`)
   * and its flows are opened again. True when it was so marked and down.
   */
  revive(c: Conduit): boolean {
    if (!this.#markedLost.delete(c.id) || c.state !== 'down' || !c.ctlTx || !c.dataTx) return false;
    c.state = 'up';
    c.error = undefined;
    this.#core.host.log(`peering: ${c.id} is back`);
    this.#core.host.broadcast({
      type: 'remote.peerUp',
      peer: c.id,
      endpoint: c.ctlEndpoint ?? '',
      links: this.#core.linksOf(c),
    });
    setImmediate(() => void this.#reopen(c));
    return true;
  }

  #lost(c: Conduit, error: AmixError | undefined): void {
    if (c.state === 'down') return;
    c.state = 'down';
    c.error = error ?? new AmixError(ErrorCode.AMIX_ERR_PEER_LOST, `lost peer ${c.id}`);
    this.#core.rpc.failWhere(c.id, peerLost(c));
    this.#core.host.log(`peering: lost ${c.id}: ${c.error.message}`);
    this.#core.host.broadcast({ type: 'remote.peerLost', peer: c.id, links: this.#core.linksOf(c), error: c.error });
  }

  /** After a peer came (back): ask it again for its half of every flow this daemon made through it. */
  async #reopen(c: Conduit): Promise<void> {
    // Direct halves whose far half died with the peer's old process go first: the loop below makes ours again.
    await this.#core.directBack(c).catch(() => undefined);
    for (const rl of this.#core.links.values()) {
      if (rl.peer !== c.id) continue;
      for (const f of rl.flows) {
        try {
          const k = key(f.sender, f.receiver);
          if (f.direct !== undefined) {
            const was = f.direct;
            await this.#core.reopenDirect(c, f);
            if (f.direct !== was) {
              const { sender, receiver, direct } = f;
              this.#core.host.broadcast({
                type: 'remote.directReopened',
                link: rl.id,
                peer: c.id,
                sender,
                receiver,
                direct,
              });
            }
          } else if (f.local === 'out') {
            await this.#core.request(c, 'open', {
              sender: f.sender,
              receiver: f.receiver,
              ...resumeAt(c, f.sender, f.receiver),
            });
            // What the peer's earlier process had and did not report taken goes again, from `from`.
            this.#core.resendOut(c, k);
          } else {
            const r = await this.#core.request(c, 'openOut', { sender: f.sender, receiver: f.receiver });
            const inFlow = c.in.get(k);
            if (inFlow) startAt(inFlow, r.from);
          }
        } catch (err) {
          this.#core.host.log(
            `peering: cannot re-open ${f.sender} -> ${f.receiver} at ${c.id}: ${(err as Error).message}`,
          );
          this.#core.host.broadcast({ type: 'remote.linkFailed', link: rl.id, peer: c.id, error: err as Error });
        }
      }
    }
  }

  /**
   * The conduit of peer `dir` once its hello is bound, waiting up to
   * `helloGraceMs` for a hello in progress; undefined if none comes. An id
   * that never says hello is remembered for a while so that a stream of
   * envelopes from it costs one wait, not one each.
   */
  whenPeer(dir: string): Promise<Conduit | undefined> {
    const c = this.#core.peers.get(dir);
    if (c?.ctlTx) return Promise.resolve(c);
    if (this.#core.closed || !DAEMON_ID.test(dir) || this.#strangers.has(dir)) return Promise.resolve(undefined);
    let list = this.#helloWaiters.get(dir);
    if (!list) this.#helloWaiters.set(dir, (list = new WaitList<void, Conduit | undefined>()));
    const waiting = list;
    return waiting.wait(undefined, { timeoutMs: this.#core.helloGrace, what: `the hello of ${dir}` }).catch(() => {
      // Timed out (or the peering closed): remember the stranger, answer "no such peer".
      if (waiting.length === 0 && this.#helloWaiters.get(dir) === waiting) this.#helloWaiters.delete(dir);
      if (!this.#core.closed) this.#strangers.set(dir, true);
      return undefined;
    });
  }
}
