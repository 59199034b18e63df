/**
 * Membership and liveness. Each member's entry in the members bucket (its
 * id, incarnation, CURVE public key and peering endpoint) is how the others
 * find it; its heartbeat, a core NATS message on `<prefix>.hb.<id>` every
 * `heartbeatMs`, is how they know it lives. Heartbeats are not JetStream
 * writes on purpose: when a NATS server dies, JetStream is unavailable for
 * seconds while its streams elect leaders, but core NATS is back as soon as
 * the clients have reconnected, so a NATS failover does not look like every
 * daemon dying.
 *
 * Liveness is judged by this daemon's own clock: a member whose heartbeat
 * has not been seen for `goneAfterMs` is gone. No clocks are compared across
 * machines. While this daemon does not see its own heartbeat come back (its
 * NATS link is down), it judges nobody: the fault is more likely its own.
 *
 * @module
 */

/** A member's entry in the members bucket. */
export interface MemberEntry {
  /** Its directory id (the daemon id peering uses). */
  id: string;
  /** Random per process start: a new one is a restart. */
  epoch: string;
  /** Its CURVE public key (Z85), absent when it peers `--insecure`. */
  publicKey?: string;
  /** Its peering control endpoint (`--listen`, as bound). */
  control: string;
  /** Entry counter (rewritten now and then, so the bucket's TTL keeps it while it lives). */
  beat: number;
}

/** One member as this daemon sees it. */
export interface MemberState {
  entry: MemberEntry;
  /** `up`, or `gone` (no heartbeat for `goneAfterMs`, or it left). */
  state: 'up' | 'gone';
  /** When this daemon last saw its heartbeat (its own clock). */
  seenAt: number;
}

/** The member table and the liveness judge. */
export class Members {
  readonly #self: string;
  readonly #goneAfter: number;
  readonly table = new Map<string, MemberState>();
  #selfSeenAt = Date.now();
  readonly #onGone: (m: MemberState, why: string) => void;
  readonly #onUp: (m: MemberState, restarted: boolean) => void;
  #timer: NodeJS.Timeout | undefined;

  /** Members as seen by daemon `self`; `onUp` for a new, back or restarted member, `onGone` when one goes. */
  constructor(
    self: string,
    goneAfterMs: number,
    onUp: (m: MemberState, restarted: boolean) => void,
    onGone: (m: MemberState, why: string) => void,
  ) {
    this.#self = self;
    this.#goneAfter = goneAfterMs;
    this.#onUp = onUp;
    this.#onGone = onGone;
  }

  /** Check liveness every `everyMs` (a quarter of the grace period is fine). */
  start(everyMs: number): void {
    this.#timer = setInterval(() => this.check(Date.now()), everyMs);
    this.#timer.unref();
  }

  /** An entry came off the members watch (null: deleted, the member left). */
  seen(id: string, entry: MemberEntry | null, now = Date.now()): void {
    if (id === this.#self) return;
    const m = this.table.get(id);
    if (entry === null) {
      if (m && m.state === 'up') {
        m.state = 'gone';
        this.#onGone(m, `daemon ${id} left the cluster`);
      }
      return;
    }
    if (!m) {
      // Its first heartbeat may not be here yet: it has the grace period to send one.
      const fresh: MemberState = { entry, state: 'up', seenAt: now };
      this.table.set(id, fresh);
      this.#onUp(fresh, false);
      return;
    }
    const restarted = m.entry.epoch !== entry.epoch;
    m.entry = entry;
    if (restarted) {
      m.seenAt = now;
      m.state = 'up';
      this.#onUp(m, true);
    }
  }

  /** A heartbeat of member `id` (incarnation `epoch`) arrived. */
  beat(id: string, epoch: string, now = Date.now()): void {
    if (id === this.#self) {
      this.#selfSeenAt = now;
      return;
    }
    const m = this.table.get(id);
    // A heartbeat of an incarnation whose entry is not here yet waits for it (it brings the endpoints).
    if (!m || m.entry.epoch !== epoch) return;
    m.seenAt = now;
    if (m.state === 'gone') {
      m.state = 'up';
      this.#onUp(m, false);
    }
  }

  /** Mark members whose heartbeat stopped gone (unless this daemon's own is not coming back either). */
  check(now: number): void {
    if (now - this.#selfSeenAt > this.#goneAfter) return;
    for (const m of this.table.values()) {
      if (m.state !== 'up' || now - m.seenAt <= this.#goneAfter) continue;
      m.state = 'gone';
      this.#onGone(m, `no cluster heartbeat from daemon ${m.entry.id} for ${now - m.seenAt} ms`);
    }
  }

  /** Stop judging. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}
