/**
 * The switch's side of a trunk (seed 002 ¶363-365: "keep communications
 * flowing when a point on the path terminates unexpectedly"): per-flow
 * sequence numbers, a retransmit window and per-destination credit between
 * two switches joined by trunk points. A port whose routes frames name a
 * `trunk` is a trunk port; data for it is sent as sequenced frames
 * (`0xA3`), kept until the far switch acknowledges (`0xA4`) that it wrote
 * them on to their destination's link. The far switch delivers each flow
 * (source → destination) in order and once: a sequence number below the
 * next expected is a duplicate, one above it a gap (both dropped, counted;
 * the sender goes back to its oldest kept frame). What is kept lives in the
 * switch, not in the trunk point, so a trunk point that dies loses nothing:
 * the switch re-sends what it kept on the route that replaces it.
 *
 * ```
 * seq  0xA3 | hops u8 | dstLen u8 | srcLen u8 | epoch u32 | seq u32 | dst | src | payload
 * ack  0xA4 | n u16 | n × (epoch u32 | next u32 | dstLen u8 | srcLen u8 | dst | src)
 * ```
 *
 * Integers big-endian. `epoch` is random per flow record at the sender, so
 * a flow the sender forgot and starts again is a new flow at the receiver.
 *
 * @module
 */

/** The first byte of a sequenced data frame (between a switch and a trunk). */
export const SWITCH_SEQ = 0xa3;
/** The first byte of an acknowledgement frame (the far switch's, back over the trunk). */
export const SWITCH_ACK = 0xa4;
/** The location that names the trunk point kind in a registration. */
export const TRUNK_LOCATION = 'amix:trunk';
/** Frames in flight per destination over trunks (kept until acknowledged), by default. */
export const TRUNK_WINDOW = 512;
/** A flow whose oldest kept frame has waited this long for an acknowledgement is sent again from there. */
export const RESEND_AFTER_MS = 400;
/** Flow records a switch keeps at most (each side); the idlest finished ones go first. */
const MAX_FLOWS = 65_536;
/** A finished flow (nothing kept) idle this long is forgotten. */
const IDLE_MS = 60_000;

interface OutFlow {
  key: string;
  dst: string;
  epoch: number;
  /** The next sequence number to give, and the first not yet acknowledged. */
  seq: number;
  acked: number;
  /** Frames `acked .. seq-1`. */
  kept: Uint8Array[];
  /** When it last sent or was acknowledged (ms, performance.now()). */
  at: number;
}

/** A flow arriving over a trunk port: what it accepted and what it wrote on. */
export interface InFlow<P> {
  key: string;
  epoch: number;
  /** The next sequence number accepted; the first not yet written on (what the acknowledgement says). */
  next: number;
  done: number;
  /** The `done` last told. */
  told: number;
  /** The trunk port its frames came on last (where its acknowledgements go). */
  port: P;
  at: number;
}

/** Counters a switch reports for its trunk ports. */
export interface TrunkFlowStats {
  /** Frames sent sequenced, sent again (after a reroute or a stall), acknowledged. */
  sent: number;
  retransmits: number;
  acked: number;
  /** Sequenced frames received: taken, duplicates dropped, out of order dropped (a gap: sent again later). */
  accepted: number;
  duplicates: number;
  gaps: number;
  /** Flow records now, frames kept now. */
  flowsOut: number;
  flowsIn: number;
  kept: number;
  /** Bad acknowledgement frames dropped. */
  badAcks: number;
}

const readName = (f: Uint8Array, off: number, n: number): string =>
  String.fromCharCode.apply(null, f.subarray(off, off + n) as unknown as number[]);
const u32 = (f: Uint8Array, o: number): number =>
  ((f[o]! << 24) | (f[o + 1]! << 16) | (f[o + 2]! << 8) | f[o + 3]!) >>> 0;
function put32(f: Uint8Array, o: number, v: number): void {
  f[o] = v >>> 24;
  f[o + 1] = (v >>> 16) & 0xff;
  f[o + 2] = (v >>> 8) & 0xff;
  f[o + 3] = v & 0xff;
}

/** The flows of one switch over its trunk ports (`P` is the switch's port record). */
export class TrunkFlows<P> {
  readonly window: number;
  readonly #out = new Map<string, OutFlow>();
  readonly #in = new Map<string, InFlow<P>>();
  /** Frames kept per destination (its credit used). */
  readonly #inFlight = new Map<string, number>();
  /** Sources parked because their destination's window is full. */
  readonly waiting = new Map<string, Set<P>>();
  /** In-flows with something to acknowledge, per port. */
  readonly #dirty = new Map<P, Set<InFlow<P>>>();
  readonly s = { sent: 0, retransmits: 0, acked: 0, accepted: 0, duplicates: 0, gaps: 0, badAcks: 0 };

  constructor(window = TRUNK_WINDOW) {
    this.window = window;
  }

  /** Counters and sizes. */
  stats(): TrunkFlowStats {
    let kept = 0;
    for (const n of this.#inFlight.values()) kept += n;
    return { ...this.s, flowsOut: this.#out.size, flowsIn: this.#in.size, kept };
  }

  /** The sources parked on `dst`'s window (made on first use). */
  waitingFor(dst: string): Set<P> {
    let w = this.waiting.get(dst);
    if (!w) this.waiting.set(dst, (w = new Set()));
    return w;
  }

  /** True while `dst` has credit left on trunks. */
  room(dst: string): boolean {
    return (this.#inFlight.get(dst) ?? 0) < this.window;
  }

  /** The sequenced frame for data frame `f` (to `dst`, a hop more), kept until acknowledged. */
  send(f: Uint8Array, dst: string): Uint8Array {
    const dn = f[2]!;
    const sn = f[3]!;
    const key = readName(f, 4 + dn, sn) + '\u0000' + dst;
    let fl = this.#out.get(key);
    if (!fl) {
      if (this.#out.size >= MAX_FLOWS) this.#forget(this.#out, (x) => x.kept.length === 0);
      fl = { key, dst, epoch: (Math.random() * 0x1_0000_0000) >>> 0, seq: 0, acked: 0, kept: [], at: 0 };
      this.#out.set(key, fl);
    }
    const sf = new Uint8Array(f.length + 8);
    sf[0] = SWITCH_SEQ;
    sf[1] = f[1]! + 1;
    sf[2] = dn;
    sf[3] = sn;
    put32(sf, 4, fl.epoch);
    put32(sf, 8, fl.seq++);
    sf.set(f.subarray(4), 12);
    if (fl.kept.length === 0) fl.at = performance.now();
    fl.kept.push(sf);
    this.#inFlight.set(dst, (this.#inFlight.get(dst) ?? 0) + 1);
    this.s.sent++;
    return sf;
  }

  /**
   * A sequenced frame from trunk port `port`: the data frame to route (a
   * view of `f`, rewritten in place) and its flow, or undefined for a
   * duplicate or a gap (counted) or a malformed frame (`bad`).
   */
  accept(port: P, f: Uint8Array): { frame: Uint8Array; flow: InFlow<P> } | 'bad' | undefined {
    if (f.length < 13 || f[2] === 0 || 12 + f[2]! + f[3]! > f.length) return 'bad';
    const epoch = u32(f, 4);
    const seq = u32(f, 8);
    const key = readName(f, 12 + f[2]!, f[3]!) + '\u0000' + readName(f, 12, f[2]!);
    let fl = this.#in.get(key);
    if (!fl || fl.epoch !== epoch) {
      // A flow not seen (or started again by its sender): it starts here.
      if (!fl && this.#in.size >= MAX_FLOWS) this.#forget(this.#in, (x) => x.done === x.next);
      fl = { key, epoch, next: seq, done: seq, told: seq, port, at: 0 };
      this.#in.set(key, fl);
    }
    fl.at = performance.now();
    fl.port = port;
    if (seq !== fl.next) {
      if (seq < fl.next) {
        this.s.duplicates++;
        // Tell it again: the sender may have missed the acknowledgement.
        this.#mark(fl);
      } else this.s.gaps++;
      return undefined;
    }
    fl.next++;
    this.s.accepted++;
    const hops = f[1]!;
    f[8] = 0xa1;
    f[9] = hops;
    f[10] = f[2]!;
    f[11] = f[3]!;
    return { frame: f.subarray(8), flow: fl };
  }

  /** A frame of `fl` was written on (or dropped for good): it counts as done; the port it came on owes an ack. */
  done(fl: InFlow<P>): P {
    fl.done++;
    this.#mark(fl);
    return fl.port;
  }

  #mark(fl: InFlow<P>): void {
    let d = this.#dirty.get(fl.port);
    if (!d) this.#dirty.set(fl.port, (d = new Set()));
    d.add(fl);
  }

  /** True when `port` owes acknowledgements. */
  owes(port: P): boolean {
    return (this.#dirty.get(port)?.size ?? 0) > 0;
  }

  /** The acknowledgement frame `port` owes (cleared), or undefined. */
  ackFrame(port: P): Uint8Array | undefined {
    const d = this.#dirty.get(port);
    if (!d || d.size === 0) return undefined;
    this.#dirty.delete(port);
    const flows = [...d].slice(0, 0xffff);
    let size = 3;
    for (const fl of flows) size += 10 + fl.key.length - 1;
    const out = new Uint8Array(size);
    out[0] = SWITCH_ACK;
    out[1] = flows.length >> 8;
    out[2] = flows.length & 0xff;
    let o = 3;
    for (const fl of flows) {
      const cut = fl.key.indexOf('\u0000');
      const src = fl.key.slice(0, cut);
      const dst = fl.key.slice(cut + 1);
      put32(out, o, fl.epoch);
      put32(out, o + 4, fl.done);
      fl.told = fl.done;
      out[o + 8] = dst.length;
      out[o + 9] = src.length;
      o += 10;
      for (let i = 0; i < dst.length; i++) out[o++] = dst.charCodeAt(i);
      for (let i = 0; i < src.length; i++) out[o++] = src.charCodeAt(i);
    }
    return out;
  }

  /** Apply an acknowledgement frame; the destinations whose parked sources may go on. */
  onAck(f: Uint8Array): string[] {
    const freed: string[] = [];
    if (f.length < 3) {
      this.s.badAcks++;
      return freed;
    }
    const n = (f[1]! << 8) | f[2]!;
    let o = 3;
    for (let i = 0; i < n; i++) {
      if (o + 10 > f.length || o + 10 + f[o + 8]! + f[o + 9]! > f.length) {
        this.s.badAcks++;
        break;
      }
      const epoch = u32(f, o);
      const next = u32(f, o + 4);
      const dst = readName(f, o + 10, f[o + 8]!);
      const src = readName(f, o + 10 + f[o + 8]!, f[o + 9]!);
      o += 10 + f[o + 8]! + f[o + 9]!;
      const fl = this.#out.get(src + '\u0000' + dst);
      if (!fl || fl.epoch !== epoch || next <= fl.acked || next > fl.seq) continue;
      const k = next - fl.acked;
      fl.kept.splice(0, k);
      fl.acked = next;
      fl.at = performance.now();
      this.s.acked += k;
      const left = (this.#inFlight.get(dst) ?? k) - k;
      if (left > 0) this.#inFlight.set(dst, left);
      else this.#inFlight.delete(dst);
      if (this.waiting.has(dst) && left <= this.window >> 1) freed.push(dst);
    }
    return freed;
  }

  /** What `dst`'s flows kept, oldest first per flow: to send again on the route that replaced theirs. */
  resend(dst: string): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const fl of this.#out.values())
      if (fl.dst === dst && fl.kept.length > 0) {
        out.push(...fl.kept);
        fl.at = performance.now();
      }
    this.s.retransmits += out.length;
    return out;
  }

  /** Destinations with a flow whose oldest kept frame waited past {@link RESEND_AFTER_MS}; forgets idle flows. */
  stalled(now: number): Set<string> {
    const dsts = new Set<string>();
    for (const fl of this.#out.values())
      if (fl.kept.length > 0 && now - fl.at > RESEND_AFTER_MS) dsts.add(fl.dst);
      else if (fl.kept.length === 0 && now - fl.at > IDLE_MS) this.#out.delete(fl.key);
    for (const fl of this.#in.values()) if (fl.done === fl.next && now - fl.at > IDLE_MS) this.#in.delete(fl.key);
    return dsts;
  }

  /** A port went: it owes nothing any more (what its flows still hold is acknowledged on the port they use next). */
  portGone(port: P): void {
    this.#dirty.delete(port);
    for (const set of this.waiting.values()) set.delete(port);
  }

  #forget<T extends { at: number; key: string }>(m: Map<string, T>, ok: (x: T) => boolean): void {
    let oldest: T | undefined;
    for (const x of m.values()) if (ok(x) && (!oldest || x.at < oldest.at)) oldest = x;
    if (oldest) m.delete(oldest.key);
  }
}
