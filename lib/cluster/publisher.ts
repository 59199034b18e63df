/**
 * The cluster's registrations, written by the daemon that holds them: names
 * claimed with a create-if-absent (released with a compare-and-delete), and
 * each committed change of the local directory put in the registrations
 * bucket in order, retried through a NATS outage until it is in.
 *
 * @module
 */
import { AmixError, ErrorCode, describe, peerLostError } from '../core/errors.js';
import type { Directory, DirectoryChange, PointView } from '../directory/index.js';
import { json, nameKey, parse, type Kv } from './kv.js';
import type { RegistrationEntry } from './replica.js';

/** Points whose changes are written to the bucket at once. */
const IN_FLIGHT = 128;

/** The publisher's counters (`ClusterStatus`). */
export interface PublisherCounts {
  published: number;
  pending: number;
  publishErrors: number;
  conflicts: number;
}

/** This daemon's writes to the names and registrations buckets. */
export class Publisher {
  readonly #names: Kv;
  readonly #regs: Kv;
  readonly #dir: Directory;
  readonly #id: string;
  readonly #log: (line: string) => void;
  #closed = false;
  readonly #pendingIds = new Map<string, Promise<void>>();
  readonly #counts: PublisherCounts = { published: 0, pending: 0, publishErrors: 0, conflicts: 0 };

  /** Daemon `id`'s publisher of `dir` into the `names` and `regs` buckets. */
  constructor(names: Kv, regs: Kv, dir: Directory, id: string, log: (line: string) => void) {
    this.#names = names;
    this.#regs = regs;
    this.#dir = dir;
    this.#id = id;
    this.#log = log;
  }

  /** The counters. */
  get counts(): PublisherCounts {
    return { ...this.#counts };
  }

  /** Let what is queued go out (for at most `ms`), then stop. */
  async close(ms: number): Promise<void> {
    await Promise.race([Promise.all(this.#all), new Promise((r) => setTimeout(r, ms).unref())]);
    this.#closed = true;
  }

  /** Claim each name (create-if-absent); the first one another daemon holds fails the lot. */
  async claimAll(names: readonly string[]): Promise<void> {
    const done: string[] = [];
    try {
      // In rounds of 64 at once: a batch of a thousand names costs a few round trips' time, not a thousand.
      for (let i = 0; i < names.length; i += 64) {
        const round = names.slice(i, i + 64);
        const holders = await Promise.allSettled(round.map((name) => this.#claim(name)));
        holders.forEach((h, j) => h.status === 'fulfilled' && h.value === this.#id && done.push(round[j]!));
        holders.forEach((h, j) => {
          if (h.status === 'rejected') throw h.reason;
          if (h.value !== this.#id)
            throw new AmixError(
              ErrorCode.AMIX_ERR_DUPLICATE,
              `point ${JSON.stringify(round[j])} is already registered in the cluster (daemon ${h.value})`,
              { details: { name: round[j]!, ...(names.length > 1 ? { index: i + j } : {}) } },
            );
        });
      }
    } catch (err) {
      await this.releaseAll(done).catch(() => {});
      throw err;
    }
  }

  /** Claim `name` for this daemon unless another holds it: resolves the holder. Retried through a NATS failover (10 s). */
  async #claim(name: string): Promise<string> {
    if (this.#held.has(name)) return this.#id;
    const kv = this.#names;
    const key = nameKey(name);
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        try {
          await kv.create(key, json({ daemon: this.#id }));
          this.#held.add(name);
          return this.#id;
        } catch (err) {
          const e = await kv.get(key);
          if (!e || e.operation !== 'PUT') throw err; // deleted in between, or the create failed for another reason
          const daemon = (parse(e.value) as { daemon?: unknown } | undefined)?.daemon;
          if (daemon === this.#id) this.#held.add(name);
          return typeof daemon === 'string' ? daemon : '?';
        }
      } catch (err) {
        if (this.#closed || Date.now() > until)
          throw peerLostError(`cannot claim the name ${describe(name)} in the cluster: ${(err as Error).message}`, {
            state: 'unreachable',
          });
        await new Promise((r) => setTimeout(r, 200).unref());
      }
    }
  }

  /** Give back names claimed for a registration that was then refused. */
  async releaseAll(names: readonly string[]): Promise<void> {
    await Promise.all(names.map((name) => this.#release(name).catch(() => {})));
  }

  /** Give a name back, if this daemon holds it (a compare-and-delete on its revision). */
  async #release(name: string): Promise<void> {
    // A point of that name is here again (deleted and registered anew, the two changes racing): it keeps the claim.
    if (!this.#dir.closed && this.#dir.getPoint(name)) return;
    this.#held.delete(name);
    const kv = this.#names;
    const key = nameKey(name);
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') return;
    if ((parse(e.value) as { daemon?: string } | undefined)?.daemon !== this.#id) return;
    await kv.delete(key, { previousSeq: e.revision });
  }

  /**
   * A committed local change, queued for the bucket: changes of one point in
   * order, up to {@link IN_FLIGHT} points' at once (a batch of registrations
   * is pipelined, not one round trip each).
   */
  enqueue(c: DirectoryChange): void {
    if (this.#closed) return;
    this.#counts.pending++;
    const before = this.#pendingIds.get(c.id) ?? Promise.resolve();
    const run = before.then(async () => {
      await this.#slot();
      try {
        await this.#publish(c);
      } finally {
        this.#release1();
      }
    });
    this.#pendingIds.set(c.id, run);
    this.#all.add(run);
    void run.finally(() => {
      this.#counts.pending--;
      this.#all.delete(run);
      if (this.#pendingIds.get(c.id) === run) this.#pendingIds.delete(c.id);
    });
  }

  #inFlight = 0;
  readonly #waiting: Array<() => void> = [];
  readonly #all = new Set<Promise<void>>();
  /** Names this daemon holds (claimed, or found to be its own): no round trip to claim them again. */
  readonly #held = new Set<string>();

  #slot(): Promise<void> {
    if (this.#inFlight < IN_FLIGHT) {
      this.#inFlight++;
      return Promise.resolve();
    }
    return new Promise((r) => this.#waiting.push(r));
  }

  #release1(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#inFlight--;
  }

  /** Write one change to the bucket, retrying (every 250 ms) until it is in or the cluster closes. */
  async #publish(c: DirectoryChange): Promise<void> {
    const dir = this.#dir;
    const key = c.id;
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        if (c.op === 'delete') {
          // The name first: once the registration is seen gone anywhere, its name is free to take.
          await this.#release(c.name);
          await this.#regs.delete(key);
        } else {
          // Seen by nobody in particular: public attributes only. Private ones never leave this daemon.
          const v = dir.closed ? undefined : dir.getPoint(c.id);
          if (!v) return; // deleted since; its delete is queued behind
          if ((await this.#claim(v.name)) !== this.#id) {
            this.#counts.conflicts++;
            this.#log(
              `cluster: point ${JSON.stringify(v.name)} (${v.id}) is not published: another daemon holds its name`,
            );
            return;
          }
          await this.#regs.put(key, json(entryOf(v)));
        }
        this.#counts.published++;
        return;
      } catch (err) {
        this.#counts.publishErrors++;
        if (attempt === 0) this.#log(`cluster: cannot publish ${key} yet (${(err as Error).message}); retrying`);
        await new Promise((r) => setTimeout(r, 250).unref());
      }
    }
  }

  /** Wait (at most 10 s: past that the change stays queued, and is published when NATS is back) for `ids` to be in the bucket. */
  async published(ids: readonly string[]): Promise<void> {
    const waits = ids.map((id) => this.#pendingIds.get(id)).filter((p): p is Promise<void> => p !== undefined);
    if (waits.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(waits),
      new Promise<void>((r) => {
        timer = setTimeout(r, 10_000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** At join: publish every local point; withdraw the bucket's entries of ours the directory no longer holds. */
  async reconcile(): Promise<void> {
    const dir = this.#dir;
    const ids = new Set(dir.ids());
    for (const id of ids) this.enqueue({ op: 'put', id });
    try {
      for await (const k of await this.#regs.keys(`${this.#id}.>`)) {
        if (!ids.has(k)) {
          const name = (parse((await this.#regs.get(k))?.value ?? new Uint8Array()) as { name?: string })?.name;
          this.enqueue({ op: 'delete', id: k, name: name ?? '' });
        }
      }
    } catch (err) {
      this.#log(`cluster: cannot list this daemon's registrations: ${(err as Error).message}`);
    }
  }
}

/** A point's bucket entry: its public view (the directory id and the identifier are in the key). */
function entryOf(v: PointView): RegistrationEntry {
  const attributes: Record<string, { value: string | number | boolean; visibility: 'public' }> = {};
  for (const [k, a] of Object.entries(v.attributes))
    if (a.visibility === 'public') attributes[k] = { value: a.value, visibility: 'public' };
  return { name: v.name, owner: v.owner, record: v.record, attributes, createdAt: v.createdAt, updatedAt: v.updatedAt };
}
