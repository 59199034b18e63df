/**
 * The receiving end of the credit engine (`credit.ts`, which re-exports it):
 * {@link CreditReceiver}, the session table with its grant decisions, and
 * the fair sharing of one `maxmsg` among the senders of a shared pool.
 *
 * @module
 */
/** What the credit engine knows of one sender's session at the receiving end. */
export interface CreditSession {
  /** The session's identity (as the wire carries it, in some printable form). */
  readonly key: string;
  /** Next message number expected. */
  next: number;
  /** Messages of this session the application has consumed. */
  consumed: number;
  /** Absolute credit limit granted: the sender may send numbers below it. */
  limit: number;
  /** Messages of this session received and not yet consumed. */
  queued: number;
  /** `consumed` as last reported to the sender. */
  ackSent: number;
  /** Bound to a live connection: takes part in grants of a shared pool. */
  live: boolean;
  /** Its window ran out (session pools): the next grant reports it as resumed. */
  starved: boolean;
  /** Shared pool: the limit a revocation asked the sender to lower to, -1 when none is pending. */
  revokeTo: number;
  /** Shared pool: waiting in the queue of sessions granted less than their share. */
  hungry: boolean;
}

/** The fields of a new {@link CreditSession} starting at message `start` (spread into the primitive's own session). */
export function creditFields(key: string, start: number): CreditSession {
  return {
    key,
    next: start,
    consumed: start,
    limit: start,
    queued: 0,
    ackSent: start,
    live: false,
    starved: false,
    revokeTo: -1,
    hungry: false,
  };
}

/** Which messages share one `maxmsg`: every session of the table, or each session on its own. */
export type CreditPool = 'shared' | 'session';

/** Options of a {@link CreditReceiver}. */
export interface CreditReceiverOptions<S extends CreditSession> {
  /** Queued plus outstanding credit never exceeds it (per pool). */
  maxmsg: number;
  /** A pool (or, shared, a session's share of it, scaled alike) is topped up when its queued plus outstanding falls to it. */
  minmsg: number;
  /** See {@link CreditPool}. */
  pool: CreditPool;
  /** At most this many sessions; opening one more forgets an idle one (nothing queued). Default unlimited. */
  maxSessions?: number;
  /**
   * Tell `s`'s sender its new limit and acknowledgement (the wire's credit
   * frame). `resumed` is true when its window had run out.
   */
  onGrant(s: S, resumed: boolean): void;
  /**
   * Shared pool: ask `s`'s sender to lower its limit to `limit` (it answers
   * with {@link CreditReceiver.revoked}); the credit stays counted as
   * outstanding until it does. Without it, credit is never revoked and a
   * session above its share only stops being topped up.
   */
  onRevoke?(s: S, limit: number): void;
}

/**
 * The receiving end's session table and credit accounting. The primitive
 * reports what happens on the wire (a session opened or bound to a
 * connection, a message admitted, one consumed, a connection lost) and writes
 * a credit frame whenever `onGrant` is called.
 *
 * **Fairness of a shared pool.** Each live session's *use* (its queued
 * messages plus its outstanding credit) is held to a share of `maxmsg`
 * (`maxmsg / live sessions`, at least 1), topped up when it falls to the
 * share scaled by `minmsg / maxmsg`: with one session that is exactly the
 * whole pool and `minmsg`, the fast path. A session granted less than its
 * share (the pool was short) waits in a FIFO and is served as credit comes
 * back. When a session binds and the pool cannot give it its share, the
 * sessions holding more credit than their (new) share are asked to give the
 * excess back (`onRevoke`): an idle sender can then hold at most its share,
 * and one that does not answer is the primitive's to cut off. Queued plus
 * outstanding never exceeds `maxmsg`: revoked credit counts until the
 * sender confirms it.
 *
 * @example
 * const credit = new CreditReceiver({ maxmsg: 64, minmsg: 32, pool: 'shared', onGrant: (s) => writeCredit(s) })
 * if (!credit.admit(s)) throw protocolError()   // a data frame arrived
 * credit.consume(s)                             // the application took it
 */
export class CreditReceiver<S extends CreditSession> {
  /** The sessions by key, in the order they were opened. */
  readonly sessions = new Map<string, S>();
  readonly maxmsg: number;
  readonly minmsg: number;
  readonly pool: CreditPool;
  /** Messages received and not yet consumed, over all sessions. */
  queued = 0;
  /** Shared pool: credit granted and not yet used, over all sessions. */
  outstanding = 0;
  /** No credit is granted while suspended (senders stop once their credit is spent). */
  suspended = false;
  /** Nothing is granted after close. */
  closed = false;
  /** Shared pool: revocations asked for (counted for the primitive's stats). */
  revocations = 0;
  readonly #maxSessions: number;
  readonly #onGrant: (s: S, resumed: boolean) => void;
  readonly #onRevoke: ((s: S, limit: number) => void) | undefined;
  /** Shared pool: live sessions, each one's share of `maxmsg`, its top-up mark, the least worth a credit frame. */
  #live = 0;
  #share: number;
  #low: number;
  #batch: number;
  /** Shared pool: sessions granted less than their share, oldest first (lazily cleaned). */
  readonly #hungry: S[] = [];

  constructor(o: CreditReceiverOptions<S>) {
    this.maxmsg = o.maxmsg;
    this.minmsg = o.minmsg;
    this.pool = o.pool;
    this.#maxSessions = o.maxSessions ?? Infinity;
    this.#onGrant = o.onGrant;
    this.#onRevoke = o.onRevoke;
    this.#share = o.maxmsg;
    this.#low = o.minmsg;
    this.#batch = Math.max(1, o.maxmsg - o.minmsg);
  }

  /** The session with this key, if known. */
  get(key: string): S | undefined {
    return this.sessions.get(key);
  }

  /** Shared pool: the share of `maxmsg` each live session is held to now. */
  get share(): number {
    return this.#share;
  }

  /**
   * Add a new session (built with {@link creditFields}). A session pool
   * grants it its whole window at once: the address promised it, so the
   * first messages need no round trip.
   */
  open(s: S): S {
    if (this.sessions.size >= this.#maxSessions) {
      for (const [k, old] of this.sessions) {
        if (old.queued === 0) {
          this.sessions.delete(k);
          break;
        }
      }
    }
    if (this.pool === 'session') {
      s.limit = s.consumed + this.maxmsg;
      s.live = true;
    }
    this.sessions.set(s.key, s);
    return s;
  }

  /**
   * A (re)connected session. A shared pool gives it its share now, as far
   * as the pool's free credit goes (unless suspended); when that falls
   * short, the sessions above the new share are asked to give back the
   * excess and it waits for the rest.
   */
  bind(s: S): void {
    if (this.pool === 'shared') {
      if (!s.live) this.#live++;
      s.live = true;
      this.#reshare();
      if (!this.suspended && !this.closed) {
        this.#fill(s);
        if (this.#use(s) < this.#share) {
          this.#starve(s);
          this.#reclaim();
        }
      }
    }
    s.live = true;
    s.ackSent = s.consumed;
  }

  /**
   * The sender vouches that everything below `firstUnacked` was acknowledged;
   * that is news only when this end restarted (session pools, where the
   * acknowledgement is what was received).
   */
  resync(s: S, firstUnacked: number): void {
    if (firstUnacked <= s.next) return;
    s.next = firstUnacked;
    s.consumed = Math.max(s.consumed, firstUnacked - s.queued);
    s.limit = Math.max(s.limit, s.consumed + this.maxmsg);
  }

  /** Message number `s.next` arrived. False, and nothing counted, when it is beyond the credit granted. */
  admit(s: S): boolean {
    if (s.next >= s.limit) return false;
    s.next++;
    s.queued++;
    this.queued++;
    if (this.pool === 'shared') this.outstanding--;
    return true;
  }

  /** True once when a session's window has just run out (session pools report it as the receiver's `suspended`). */
  exhausted(s: S): boolean {
    if (s.next < s.limit || s.starved) return false;
    s.starved = true;
    return true;
  }

  /** The application took `n` (default 1) messages of `s`. True when `s` was offered credit. */
  consume(s: S, n = 1): boolean {
    s.queued -= n;
    s.consumed += n;
    this.queued -= n;
    return this.#decide(s);
  }

  /**
   * `s`'s sender confirmed a revocation: its limit is now `limit`, which
   * must be the revoked limit or, if it had already sent past it, the next
   * message number (everything it sent before the confirmation has been
   * admitted, the stream being ordered). False, nothing changed, when the
   * confirmation is not one (the primitive's protocol error).
   */
  revoked(s: S, limit: number): boolean {
    if (s.revokeTo < 0 || limit !== Math.max(s.next, s.revokeTo)) return false;
    this.outstanding -= s.limit - limit;
    s.limit = limit;
    s.revokeTo = -1;
    if (!this.suspended && !this.closed) {
      if (s.live && this.#use(s) <= this.#low) this.#grant(s);
      this.#serveHungry();
    }
    return true;
  }

  /**
   * The connection of `s` ended without ending the session: its unused
   * credit returns to the pool now (a dead sender must not starve the next
   * one); it gets credit again when it binds.
   */
  unbind(s: S): void {
    this.#leave(s);
    if (!this.closed) this.#decideAll(s);
  }

  /** The session is over: give back its credit and forget it. */
  end(s: S): void {
    this.#leave(s);
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    this.#decideAll(s);
  }

  /** Stop granting. */
  suspend(): void {
    this.suspended = true;
  }

  /** Grant again, at once where a pool is at or below `minmsg`. */
  resume(): void {
    this.suspended = false;
    if (this.pool === 'shared') {
      this.#decideAll(undefined);
      if (this.#hungry.length > 0) this.#reclaim();
    } else for (const s of this.sessions.values()) this.#decide(s);
  }

  /** Report consumption to every live sender told less than it has consumed (an idle receiver's periodic ack). */
  acknowledge(): void {
    for (const s of this.sessions.values()) {
      // A credit frame during a revocation would carry the old limit back: the confirmation comes first.
      if (s.live && s.consumed !== s.ackSent && s.revokeTo < 0) {
        s.ackSent = s.consumed;
        this.#onGrant(s, false);
      }
    }
  }

  /** Session pool: top `s`'s window up to `maxmsg` once what it may still send plus what waits here fell to `minmsg`. */
  #topUpSession(s: S): boolean {
    const used = s.limit - s.consumed;
    if (used > this.minmsg) return false;
    const add = this.maxmsg - used;
    if (add <= 0 && s.consumed === s.ackSent) return true;
    if (add > 0) s.limit += add;
    this.#tell(s);
    return true;
  }

  /** A credit frame goes to `s` (its new limit and acknowledgement); a starved session resumes. */
  #tell(s: S): void {
    const resumed = s.starved;
    s.starved = false;
    s.ackSent = s.consumed;
    this.#onGrant(s, resumed);
  }

  /** Shared pool: `s`'s queued messages plus the credit it may still use. */
  #use(s: S): number {
    return s.queued + s.limit - s.next;
  }

  #reshare(): void {
    const n = this.#live > 0 ? this.#live : 1;
    this.#share = Math.max(1, Math.floor(this.maxmsg / n));
    this.#low = Math.floor((this.#share * this.minmsg) / this.maxmsg);
    this.#batch = Math.max(1, this.#share - this.#low);
  }

  /**
   * Shared pool: give live `s` what it lacks of its share, as far as the
   * pool's free credit goes, and tell it (with its acknowledgement). Short
   * of its share, it waits in the hungry queue. True when a frame was sent.
   */
  #grant(s: S): boolean {
    const add = this.#fill(s);
    if (this.#use(s) < this.#share) this.#starve(s);
    if (add <= 0 && s.consumed === s.ackSent) return false;
    this.#tell(s);
    return true;
  }

  /** Shared pool: raise `s`'s credit toward its share as far as the pool's free credit goes; the credit added. */
  #fill(s: S): number {
    const want = this.#share - this.#use(s);
    const free = this.maxmsg - this.queued - this.outstanding;
    const add = want < free ? want : free;
    if (add > 0) {
      s.limit += add;
      this.outstanding += add;
    }
    return add;
  }

  #starve(s: S): void {
    if (s.hungry) return;
    s.hungry = true;
    this.#hungry.push(s);
  }

  /**
   * Shared pool: serve the hungry sessions in order while the pool has
   * credit worth a frame for the first; a partly served one goes to the back.
   */
  #serveHungry(): void {
    const q = this.#hungry;
    while (q.length > 0) {
      const h = q[0]!;
      const want = this.#share - this.#use(h);
      if (!h.live || h.revokeTo >= 0 || want <= 0) {
        q.shift();
        h.hungry = false;
        continue;
      }
      const free = this.maxmsg - this.queued - this.outstanding;
      if (free < (want < this.#batch ? want : this.#batch)) return;
      q.shift();
      h.hungry = false;
      this.#grant(h);
      if (h.hungry) return;
    }
  }

  /** Shared pool: ask every live session holding more credit than its share allows to give the excess back. */
  #reclaim(): void {
    const revoke = this.#onRevoke;
    if (revoke === undefined) return;
    for (const x of this.sessions.values()) {
      if (!x.live || x.revokeTo >= 0) continue;
      const keep = Math.max(0, this.#share - x.queued);
      if (x.limit - x.next <= keep) continue;
      x.revokeTo = x.next + keep;
      this.revocations++;
      revoke(x, x.revokeTo);
    }
  }

  /** `s` leaves the pool's live sessions; a shared pool takes back its unused credit (a pending revocation with it). */
  #leave(s: S): void {
    if (this.pool === 'shared') {
      if (s.live) this.#live--;
      this.outstanding -= s.limit - s.next;
      s.limit = s.next;
      s.revokeTo = -1;
      this.#reshare();
    }
    s.live = false;
  }

  #decide(s: S): boolean {
    if (this.suspended || this.closed) return false;
    if (this.pool === 'session') {
      // A session is its own pool: what it may still send plus what waits here.
      if (s.limit - s.consumed > this.minmsg) return false;
      return this.#topUpSession(s);
    }
    // This runs once per message consumed: one comparison on the fast path.
    let granted = false;
    if (s.live && s.revokeTo < 0 && s.queued + s.limit - s.next <= this.#low) granted = this.#grant(s);
    if (this.#hungry.length > 0) this.#serveHungry();
    return granted;
  }

  /** After a session left (or a resume): the shares grew, so every live session at or below its mark is topped up. */
  #decideAll(s: S | undefined): void {
    if (this.suspended || this.closed) return;
    if (this.pool === 'session') {
      if (s !== undefined) this.#decide(s);
      return;
    }
    for (const x of this.sessions.values()) {
      if (x.live && x.revokeTo < 0 && this.#use(x) <= this.#low) this.#grant(x);
    }
    this.#serveHungry();
  }
}
