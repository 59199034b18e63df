/**
 * The switch point (seed 002 ¶77, ¶359-365, "The Thread Communication
 * Switching Service"): a point that accepts many links and redirects each
 * message to its destination point by the switch header's destination,
 * keeping the header's source, so the receiver sees the original sender.
 * Registered like any point with location `amix:switch` (thread or process
 * scope). Routes are learned, never configured: a point linked to it is a
 * destination while the switch can send to it; a switch linked to it
 * (known by its routes frames) tells it what it reaches, as path vectors
 * (a route whose path already holds this switch is refused: loop-free),
 * and takes it back when a link goes. See docs/switching.md.
 *
 * Backpressure: one bounded queue per output link (`queueLimit`, default
 * 256); a source whose next message is for a full queue is parked (not read)
 * until it is down to half: a slow destination slows only the flows to it.
 *
 * One poller moves every message (`tryReceive`, `trySend`, never a waiting
 * receive or send: that would sleep a whole worker on one idle thread ring).
 * Ports to trunk points carry sequenced, acknowledged frames (`switchTrunk.ts`).
 *
 * @module
 */
import type { Channel } from '../core/channel.js';
import { invalidArg } from '../core/errors.js';
import type { PointContext } from './host.js';
import {
  SWITCH_MAX_HOPS,
  SWITCH_ROUTES,
  decodeSwitchFrame,
  encodeSwitchRoutes,
  frameDestination,
  stampSource,
  type SwitchRoutes,
} from './switchFrame.js';
import { RESEND_AFTER_MS, SWITCH_ACK, SWITCH_SEQ, TRUNK_WINDOW, TrunkFlows, type InFlow } from './switchTrunk.js';
import type { SwitchHost, SwitchOptions, SwitchSnapshot } from './switchTypes.js';
import { sampler, snapshotOf } from './switchStats.js';
import {
  CTL_LIMIT,
  IDLE_YIELD_MS,
  RATE_SAMPLE_MS,
  hop,
  immediate,
  noSuspend,
  positive,
  sleep,
  type Port,
  type Route,
} from './switchParts.js';

export type { SwitchHost, SwitchOptions, SwitchPortInfo, SwitchRouteInfo, SwitchSnapshot } from './switchTypes.js';

/** The switch over one endpoint. */
export class Switch {
  readonly #end: SwitchHost;
  readonly #me: string;
  readonly #limit: number;
  readonly #batch: number;
  readonly #ports = new Map<string, Port>();
  readonly #routes = new Map<string, Route>();
  readonly #suspended = new Set<string>();
  readonly #drops = { unknown: 0, hops: 0, bad: 0, gone: 0 };
  /** Route changes not yet told, per port. */
  readonly #changed = new Set<string>();
  #flush: NodeJS.Immediate | undefined;
  #polling = false;
  /** Ports with something to write (data or routes frames): the poller writes these only. */
  readonly #busy = new Set<Port>();
  #open = true;
  readonly #tf: TrunkFlows<Port>;
  /** Queued frames that came over a trunk: their flow, told done when they are written on. */
  readonly #tagged = new WeakMap<Uint8Array, InFlow<Port>>();
  #anyTagged = false;

  /**
   * Route over `end` as switch `name` (its instance name: what paths hold). Links already on its lists
   * are taken over; later ones as they are added. `AMIX_ERR_INVALID_ARG` for a bad option.
   */
  constructor(end: SwitchHost, name: string, options: SwitchOptions = {}) {
    this.#end = end;
    this.#me = name;
    this.#limit = positive('queueLimit', options.queueLimit, 256);
    this.#batch = positive('readBatch', options.readBatch, 64);
    this.#tf = new TrunkFlows(positive('trunkWindow', options.trunkWindow, TRUNK_WINDOW));
    const timer = setInterval(() => this.#stalled(), RESEND_AFTER_MS / 4).unref();
    // Rates from the counters once a second, off the hot path (no clock read per message).
    const rates = sampler(this.#routes, this.#ports);
    end.on('event', (e: { type: string; link: string; peer: string; list?: string }) => {
      if (e.type === 'linkAdded') this.#attach(e.link, e.peer, e.list === 'sender' ? 'tx' : 'rx');
    });
    end.services.set('switch', (req) => this.#serve(req));
    void end.closed.then(() => {
      this.#open = false;
      clearInterval(timer);
      clearInterval(rates);
    });
    // Links made before the switch started (an idle point's) are on the lists already.
    for (const e of end.senderList) this.#attach(e.link, e.peer, 'tx');
    for (const e of end.receiverList) this.#attach(e.link, e.peer, 'rx');
  }

  /** A snapshot of routes, links and counters. */
  snapshot(): SwitchSnapshot {
    return snapshotOf(this.#me, this.#limit, this.#ports, this.#routes, this.#suspended, this.#drops, this.#tf);
  }

  #serve(req: Record<string, unknown>): unknown {
    const op = req.op ?? 'show';
    if (op === 'show') return this.snapshot();
    if (op !== 'suspend' && op !== 'resume') throw invalidArg('request.op', 'must be show, suspend or resume', op);
    const dest = req.dest;
    const r = typeof dest === 'string' ? this.#routes.get(dest) : undefined;
    if (!r || r.path.length > 1) throw noSuspend(this.#me, dest, r?.port.neighbour);
    if (op === 'suspend') {
      this.#suspended.add(dest as string);
      r.port.suspended = true;
    } else {
      this.#suspended.delete(dest as string);
      r.port.suspended = false;
      this.#busy.add(r.port);
      this.#kick();
    }
    return this.snapshot();
  }

  #attach(link: string, peer: string, side: 'tx' | 'rx'): void {
    const ch = this.#end.channels(link)[side].at(-1);
    if (!ch) return;
    let p = this.#ports.get(link);
    if (!p) {
      p = {
        link,
        peer,
        learned: new Map(),
        queue: [],
        ctl: [],
        suspended: false,
        parked: new Set(),
        synced: false,
        s: { in: 0, out: 0, dropped: 0 },
        seen: { in: 0, out: 0 },
        rate: { in: 0, out: 0 },
      };
      this.#ports.set(link, p);
    }
    if (p[side] === ch) return;
    p[side] = ch;
    // A new sending channel on a known link (its peer restarted and was linked again) hears the full table again.
    if (side === 'tx') p.synced = false;
    const port = p;
    void ch.closed.then(() => this.#gone(port, side, ch));
    // A trunk point that died is seen at once (before any restart re-links it): its routes go, its flows move.
    ch.on('event', (e: { type: string }) => {
      if (e.type === 'peerLost' && port.trunk && port.learned.size > 0) {
        const dests = [...port.learned.keys()];
        port.learned.clear();
        for (const d of dests) this.#recompute(d);
      }
    });
    if (side === 'tx') this.#recompute(peer);
    this.#sync(port);
    this.#kick();
  }

  /** Send a port its full table once it can both hear and be heard (and again to a neighbour found later). */
  #sync(p: Port): void {
    if (p.synced || !p.tx || !(p.rx || p.neighbour)) return;
    p.synced = true;
    this.#tell(p, this.#table(p));
  }

  /** The full table as port `p` hears it. */
  #table(p: Port): Omit<SwitchRoutes, 'kind'> {
    const add: Array<[string, string[]]> = [];
    for (const [dest, r] of this.#routes) if (r.port !== p) add.push([dest, r.path]);
    return { switch: this.#me, full: true, add };
  }

  #tell(p: Port, r: Omit<SwitchRoutes, 'kind'>): void {
    // A peer that does not take its frames gets one full table for all that waits, not an ever longer backlog.
    if (p.ctl.length >= CTL_LIMIT) {
      p.ctl.length = 0;
      r = this.#table(p);
    }
    p.ctl.push(encodeSwitchRoutes(r));
    this.#busy.add(p);
    this.#kick();
  }

  #gone(p: Port, side: 'tx' | 'rx', ch: Channel): void {
    // An old channel's close that comes after its link was made again must not take the new channel.
    if (p[side] !== ch) return;
    p[side] = undefined;
    if (side === 'tx') {
      let lost = 0;
      for (const f of p.queue) {
        // A sequenced frame is kept until acknowledged (it goes again on the next route): not lost.
        if (f[0] !== SWITCH_SEQ) lost++;
        this.#doneFor(f);
      }
      p.queue.length = 0;
      p.ctl.length = 0;
      p.s.dropped += lost;
      this.#drops.gone += lost;
      this.#unpark(p);
    } else if (p.held) {
      // A source that went while parked: its message goes with it.
      this.#drops.gone++;
      if (p.heldFrom) this.#owe(this.#tf.done(p.heldFrom));
      p.held = p.heldFrom = undefined;
      for (const q of this.#ports.values()) q.parked.delete(p);
      for (const w of this.#tf.waiting.values()) w.delete(p);
    }
    if (!p.tx && !p.rx) {
      this.#ports.delete(p.link);
      this.#busy.delete(p);
      this.#tf.portGone(p);
    }
    if (side === 'tx' || !p.rx) {
      const dests = new Set([p.peer, ...p.learned.keys()]);
      if (!p.tx) p.learned.clear();
      for (const d of dests) this.#recompute(d);
    }
  }

  /** Start the poller if it is not running. */
  #kick(): void {
    if (this.#polling) return;
    this.#polling = true;
    void this.#poll();
  }

  /** Move messages until there is nothing to do; the poller stops when the switch has no links. */
  async #poll(): Promise<void> {
    let idleSince = 0;
    let turns = 0;
    try {
      while (this.#ports.size > 0 && this.#open) {
        let moved = 0;
        for (const p of this.#busy) moved += this.#write(p);
        for (const p of this.#ports.values()) if (p.rx && !p.held) moved += this.#read(p);
        if (moved > 0) {
          idleSince = 0;
          // Let the event loop run now and then: sockets' reads (and their credit) need it.
          if (++turns % 16 === 0) await immediate();
          continue;
        }
        // Nothing moved: keep yielding for a while (under load the next message is close), then sleep.
        const now = performance.now();
        if (idleSince === 0) idleSince = now;
        await (now - idleSince < IDLE_YIELD_MS ? immediate() : sleep(1));
      }
    } finally {
      this.#polling = false;
    }
  }

  /** Take up to a batch from source `p` and route it; stop early when it gets parked. */
  #read(p: Port): number {
    const rx = p.rx!;
    let n = 0;
    for (; n < this.#batch; n++) {
      let f: Uint8Array | undefined;
      try {
        f = rx.tryReceive();
      } catch {
        return n; // closed: #gone does the rest
      }
      if (f === undefined) break;
      p.s.in++;
      if (!this.#route(p, f)) return n + 1;
    }
    return n;
  }

  /**
   * Route one frame from `p`; false when `p` is parked with it (its destination's queue, or its window
   * over the trunks, is full). `from`: the trunk flow it came on.
   */
  #route(p: Port, f: Uint8Array, dst?: string, from?: InFlow<Port>): boolean {
    const kind = f[0];
    if (kind === SWITCH_ROUTES) {
      this.#onRoutes(p, f);
      return true;
    }
    if (kind === SWITCH_ACK || kind === SWITCH_SEQ) {
      const a = !p.trunk ? 'bad' : kind === SWITCH_ACK ? this.#tf.onAck(f) : this.#tf.accept(p, f);
      if (a === undefined) return true; // a duplicate or a gap, counted
      if (a === 'bad') {
        this.#drops.bad++;
        return true;
      }
      if (Array.isArray(a)) {
        for (const d of a) this.#release(d);
        return true;
      }
      ({ frame: f, flow: from } = a);
      dst = undefined;
    }
    dst ??= frameDestination(f);
    if (dst === undefined) {
      this.#drops.bad++;
      return true;
    }
    const r = this.#routes.get(dst);
    if (!r) {
      this.#drops.unknown++;
      if (from) this.#owe(this.#tf.done(from));
      return true;
    }
    // From an attached point the source is the name of the link's far end, whatever the frame says
    // (a frame from a neighbour switch keeps the source that switch vouches for).
    if (!p.neighbour) f = stampSource(f, p.peer);
    const out = r.port;
    if (out.neighbour && f[1]! + 1 >= SWITCH_MAX_HOPS) {
      this.#drops.hops++;
      if (from) this.#owe(this.#tf.done(from));
      return true;
    }
    // Parked: this source alone waits; every other source is still read. A source over a trunk is never
    // parked (that would hold up every flow of the trunk): its sender's per-destination window bounds it.
    if (out.queue.length >= this.#limit && !p.trunk) return this.#park(p, f, dst, from, out.parked);
    if (out.trunk) {
      // Per-destination credit: a destination whose window is full parks its sources; other flows go on.
      if (!this.#tf.room(dst)) return this.#park(p, f, dst, from, this.#tf.waitingFor(dst));
      f = this.#tf.send(f, dst); // a new frame, kept until acknowledged, a hop more already
      if (from) this.#owe(this.#tf.done(from));
      from = undefined;
    }
    if (out.queue.length === 0 && out.ctl.length === 0 && !out.suspended && out.tx!.trySend(hop(out, f))) {
      out.s.out++;
      r.messages++;
      if (from) this.#owe(this.#tf.done(from));
      return true;
    }
    // A view into a primitive's receive slab would be overwritten by later receives: keep a copy.
    const own = f.byteOffset === 0 && f.byteLength === f.buffer.byteLength ? f : f.slice();
    if (from) {
      this.#tagged.set(own, from);
      this.#anyTagged = true;
    }
    out.queue.push(hop(out, own));
    this.#busy.add(out);
    r.messages++;
    return true;
  }

  /** Park source `p` with its message on `on` (a full queue's sources, or a destination's window). */
  #park(p: Port, f: Uint8Array, dst: string, from: InFlow<Port> | undefined, on: Set<Port>): false {
    p.held = f;
    p.heldFor = dst;
    p.heldFrom = from;
    on.add(p);
    return false;
  }

  /** Acknowledgements freed `dst`'s window: its parked sources go on. */
  #release(dst: string): void {
    const w = this.#tf.waiting.get(dst);
    this.#tf.waiting.delete(dst);
    if (w) this.#retry([...w]);
  }

  /** A frame that came over a trunk was written on (or dropped): its flow is told, its trunk port owes an ack. */
  #doneFor(f: Uint8Array): void {
    const fl = this.#anyTagged ? this.#tagged.get(f) : undefined;
    if (fl) this.#owe(this.#tf.done(fl));
  }

  #owe(port: Port): void {
    if (!port.tx) return;
    this.#busy.add(port);
    this.#kick();
  }

  /** Send again, on trunk port `out`, what `dst`'s flows kept (after a reroute, or a stall). */
  #resend(out: Port, dst: string): void {
    const frames = this.#tf.resend(dst);
    for (const f of frames) out.queue.push(f);
    this.#busy.add(out);
    this.#kick();
  }

  #stalled(): void {
    for (const dst of this.#tf.stalled(performance.now())) {
      const r = this.#routes.get(dst);
      if (r?.port.trunk && r.port.tx) this.#resend(r.port, dst);
    }
  }

  /** Write what port `p`'s queue has while its channel takes it now; unpark its sources once it is down to half. */
  #write(p: Port): number {
    const tx = p.tx;
    if (!tx) {
      this.#busy.delete(p);
      return 0;
    }
    let n = 0;
    // At most one acknowledgement frame waits, built when it can go (so it says the latest).
    if (p.ctl.length === 0 && this.#tf.owes(p)) p.ctl.push(this.#tf.ackFrame(p)!);
    try {
      while (p.ctl.length > 0 && tx.trySend(p.ctl[0]!)) {
        p.ctl.shift();
        n++;
      }
      // A suspended route holds its data.
      if (p.ctl.length === 0 && !p.suspended)
        while (p.queue.length > 0 && tx.trySend(p.queue[0]!)) {
          this.#doneFor(p.queue.shift()!);
          p.s.out++;
          n++;
        }
    } catch {
      return n; // the link is going: #gone counts what is left
    }
    if (p.parked.size > 0 && p.queue.length <= this.#limit >> 1) this.#unpark(p);
    if (p.ctl.length === 0 && p.queue.length === 0 && !this.#tf.owes(p)) this.#busy.delete(p);
    return n;
  }

  /** Give the sources parked on `out` another go with the message each holds. */
  #unpark(out: Port): void {
    const waiting = [...out.parked];
    out.parked.clear();
    this.#retry(waiting);
  }

  #retry(waiting: Port[]): void {
    for (const s of waiting) {
      const f = s.held!;
      const dst = s.heldFor!;
      const from = s.heldFrom;
      s.held = s.heldFor = s.heldFrom = undefined;
      // Its destination may have moved or gone while it waited.
      if (!this.#routes.has(dst)) {
        this.#drops.gone++;
        if (from) this.#owe(this.#tf.done(from));
      } else this.#route(s, f, dst, from);
    }
  }

  #onRoutes(p: Port, f: Uint8Array): void {
    const r = decodeSwitchFrame(f);
    if (r?.kind !== 'routes' || !r.switch) {
      this.#drops.bad++;
      return;
    }
    const touched = new Set<string>();
    if (r.trunk) p.trunk = r.trunk;
    // A trunk point that started again (behind a broker its restart is not seen otherwise) hears the full table.
    if (r.sync) {
      p.synced = false;
      this.#sync(p);
    }
    if (!p.neighbour) {
      p.neighbour = r.switch;
      // A switch is no destination of its own.
      touched.add(p.peer);
      this.#sync(p);
    } else if (p.trunk) p.neighbour = r.switch; // a trunk point names the switch beyond it once it knows it
    if (r.full) {
      for (const d of p.learned.keys()) touched.add(d);
      p.learned.clear();
    }
    for (const d of r.del ?? []) {
      p.learned.delete(d);
      touched.add(d);
    }
    for (const [d, path] of r.add ?? []) {
      // Path vector: a path that already holds this switch would loop; it counts as a withdrawal.
      if (path.includes(this.#me) || path.length >= SWITCH_MAX_HOPS) p.learned.delete(d);
      else p.learned.set(d, path);
      touched.add(d);
    }
    for (const d of touched) this.#recompute(d);
  }

  /** The best route to `dest` now: attached here first, else the shortest path a neighbour offers. */
  #recompute(dest: string): void {
    if (dest === this.#me) return; // a switch is no destination of its own (a trunk point's engine's relay)
    let best: { port: Port; path: string[] } | undefined;
    for (const p of this.#ports.values())
      if (p.tx && !p.neighbour && p.peer === dest) {
        best = { port: p, path: [this.#me] };
        break;
      }
    if (!best)
      for (const p of this.#ports.values()) {
        const path = p.tx && p.neighbour ? p.learned.get(dest) : undefined;
        if (path && (!best || path.length + 1 < best.path.length)) best = { port: p, path: [this.#me, ...path] };
      }
    const old = this.#routes.get(dest);
    if (old && best && old.port === best.port && old.path.join('\u0000') === best.path.join('\u0000')) return;
    if (best) {
      this.#routes.set(dest, {
        ...best,
        messages: old?.messages ?? 0,
        dropped: old?.dropped ?? 0,
        seen: old?.seen ?? 0,
        rate: old?.rate ?? 0,
      });
      // A new way to it over a trunk: what its flows kept goes there first, ahead of anything new.
      if (best.port.trunk && best.port !== old?.port) this.#resend(best.port, dest);
      this.#end.emit('event', {
        type: 'route',
        up: true,
        switch: this.#me,
        dest,
        via: best.port.link,
        hops: best.path.length,
      });
    } else if (old) {
      this.#routes.delete(dest);
      this.#suspended.delete(dest);
      this.#end.emit('event', { type: 'route', up: false, switch: this.#me, dest });
    } else return;
    this.#changed.add(dest);
    // Changes in one turn go out together: a burst of attaches costs one routes frame per port.
    this.#flush ??= setImmediate(() => this.#tellChanges());
  }

  #tellChanges(): void {
    this.#flush = undefined;
    const dests = [...this.#changed];
    this.#changed.clear();
    for (const p of this.#ports.values()) {
      if (!p.synced || !p.tx) continue;
      const add: Array<[string, string[]]> = [];
      const del: string[] = [];
      for (const d of dests) {
        const r = this.#routes.get(d);
        // Split horizon: a port never hears of a route through itself (a point of its own name; a loop).
        if (r && r.port !== p) add.push([d, r.path]);
        else del.push(d);
      }
      this.#tell(p, { switch: this.#me, add, del });
    }
  }
}

/** Run a switch over `point` until it is terminated. */
export async function runSwitch(point: PointContext, options?: SwitchOptions): Promise<Switch> {
  const data = (point.data ?? {}) as SwitchOptions;
  return new Switch(
    point,
    point.instance,
    options ?? { queueLimit: data.queueLimit, readBatch: data.readBatch, trunkWindow: data.trunkWindow },
  );
}

/** The switch point's main: route until terminated. */
export default async function main(point: PointContext): Promise<void> {
  await runSwitch(point);
  await new Promise<void>((resolve) => point.signal.addEventListener('abort', () => resolve(), { once: true }));
}
