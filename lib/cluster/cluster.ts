/**
 * Cluster mode (`amixd --cluster nats://HOST:PORT[,...]`): the daemon joins
 * a cluster whose control state lives in NATS JetStream key-value buckets,
 * while the data path stays the direct ZeroMQ peering between daemons.
 *
 * Buckets (`<prefix>_...`, replicas 3 on a cluster of 3 or more servers):
 *
 * - `dirids`: `<directoryId>` → this daemon's cluster token, claimed with a
 *   create-if-absent at join, so two daemons never share a directory id
 *   (a copied daemon directory is refused).
 * - `names`: base64url(point name) → the daemon holding it, claimed with a
 *   create-if-absent before the local commit: names are unique cluster-wide
 *   (`AMIX_ERR_DUPLICATE`, as for a local duplicate).
 * - `registrations`: `<directoryId>.<seq>` → the point's public record and
 *   public attributes (private ones never leave the daemon), written by the
 *   daemon holding the directory id only (this code writes only its own
 *   prefix; NATS permissions can enforce it, see the security notes).
 * - `members`: `<directoryId>` → id, incarnation, CURVE public key, peering
 *   endpoint, heartbeat (rewritten every `heartbeatMs`; TTL on the bucket).
 *
 * Each daemon watches `members` (discovery: it allows and dials the members
 * it finds; liveness: a member unseen for `goneAfterMs` is gone, its points
 * unreachable and its peering links told `remote.peerLost`) and
 * `registrations` (its local replica, `replica.ts`, answers `resolve`,
 * `query` and `point show`).
 *
 * The NATS client (`@nats-io/*`) is imported only when {@link Cluster.start} runs.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AmixError, ErrorCode, describe, peerLostError } from '../core/errors.js';
import { createPrivateFile } from '../core/paths.js';
import type { Directory, PointView } from '../directory/index.js';
import type { Conduit, Peering } from '../remote/peering.js';
import { attachHooks } from './hooks.js';
import { Members, type MemberEntry, type MemberState } from './members.js';
import { checkClusterOptions, type CheckedClusterOptions, type ClusterOptions } from './options.js';
import { Replica, type ReplicaStats } from './replica.js';
import { json, parse, type Kv, type KvEntry } from './kv.js';
import { Publisher } from './publisher.js';
export type { ClusterOptions } from './options.js';

/** What the daemon lends its cluster. */
export interface ClusterHost {
  readonly directory: Directory;
  readonly peering: Peering;
  /** The daemon's directory: `cluster.json` (this daemon's cluster token) lives there. */
  readonly stateDir: string;
}

/** `amix daemon status`'s cluster part. */
export interface ClusterStatus {
  id: string;
  servers: string[];
  /** The NATS server this daemon is connected to now, if any. */
  server?: string;
  connected: boolean;
  members: Array<{ id: string; state: 'up' | 'gone'; control: string; seenMsAgo: number }>;
  replica: ReplicaStats & { perMember: Record<string, number> };
  /** Registrations written to the bucket; waiting (a NATS outage); failed attempts (retried). */
  published: number;
  pending: number;
  publishErrors: number;
  /** Local points whose name another daemon holds (registered while apart; not published). */
  conflicts: number;
  /** Members whose entry could not be used (bad key, other mode). */
  badMembers: number;
  /** Watches made again after a stall. */
  rewatches: number;
  /** Heartbeats seen under this daemon's own id from another process (a copied daemon directory). */
  idConflicts: number;
}

/** One bucket watch: its last revision, and what the stall check saw. */
interface Watch {
  kv: Kv;
  it?: { stop(): void };
  rev: number;
  checked: number;
}
interface Nc {
  publish(subject: string, payload: Uint8Array): void;
  subscribe(subject: string): AsyncIterable<{ subject: string; data: Uint8Array }> & { unsubscribe(): void };
  close(): Promise<void>;
  isClosed(): boolean;
  getServer(): string;
  status(): AsyncIterable<{ type: string }>;
}

const enc = new TextEncoder();
const DIR_ID = /^[0-9a-f]{16}$/;

/** A daemon's membership of a cluster. Made by the daemon at construction; joins at {@link Cluster.start}. */
export class Cluster {
  readonly #opts: CheckedClusterOptions;
  readonly #log: (line: string) => void;
  #host: ClusterHost | undefined;
  #nc: Nc | undefined;
  #kv: { names: Kv; regs: Kv; members: Kv; dirids: Kv } | undefined;
  #members: Members | undefined;
  #replica: Replica | undefined;
  #id = '';
  readonly #epoch = randomBytes(8).toString('hex');
  #beat = 0;
  #beatTimer: NodeJS.Timeout | undefined;
  #connected = false;
  #closed = false;
  #watchTimer: NodeJS.Timeout | undefined;
  #offChange: (() => void) | undefined;
  #publisher: Publisher | undefined;
  #counts = { badMembers: 0, idConflicts: 0 };
  #loops: Promise<void>[] = [];

  /** Checks `options` now (`AMIX_ERR_INVALID_ARG`); nothing is loaded or dialled until {@link start}. */
  constructor(options: ClusterOptions, log: (line: string) => void = () => {}) {
    this.#opts = checkClusterOptions(options);
    this.#log = log;
  }

  /**
   * Join: connect to NATS, make or open the buckets, claim the directory id,
   * publish the local points (and withdraw what the bucket holds of ours that
   * the directory no longer does), then start the heartbeat and the watches.
   * `AMIX_ERR_PEER_LOST` when no server answers, `AMIX_ERR_DUPLICATE` when
   * another daemon holds this directory id.
   */
  async start(host: ClusterHost): Promise<void> {
    this.#host = host;
    this.#id = host.peering.id;
    const o = this.#opts;
    // Loaded here only: a daemon without --cluster never maps the NATS client.
    const { connect, credsAuthenticator, nkeyAuthenticator } = await import('@nats-io/transport-node');
    const { Kvm } = await import('@nats-io/kv');
    const auth = o.creds
      ? { authenticator: credsAuthenticator(await readFile(o.creds)) }
      : o.nkey
        ? { authenticator: nkeyAuthenticator(enc.encode((await readFile(o.nkey, 'utf8')).trim())) }
        : o.token
          ? { token: o.token }
          : {};
    try {
      this.#nc = (await connect({
        servers: o.servers,
        name: `amixd ${this.#id}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 5000,
        ...auth,
      })) as unknown as Nc;
    } catch (err) {
      throw peerLostError(
        `cannot reach the cluster at ${o.servers.join(', ')}: ${(err as Error).message}`,
        { endpoint: o.servers.join(','), state: 'unreachable' },
        err,
      );
    }
    this.#connected = true;
    this.#loops.push(this.#watchStatus());
    const kvm = new Kvm(this.#nc as never);
    const bucket = async (name: string, extra: Record<string, unknown> = {}): Promise<Kv> =>
      (await kvm.create(`${o.prefix}_${name}`, { replicas: o.replicas, history: 1, ...extra })) as unknown as Kv;
    this.#kv = {
      dirids: await bucket('dirids'),
      names: await bucket('names'),
      regs: await bucket('registrations'),
      members: await bucket('members', { ttl: Math.max(30_000, 4 * o.goneAfterMs) }),
    };
    await this.#claimDirectoryId(host.stateDir);
    this.#replica = new Replica(host.directory, this.#log);
    this.#members = new Members(
      this.#id,
      o.goneAfterMs,
      (m, restarted) => void this.#memberUp(m, restarted),
      (m, why) => this.#memberGone(m, why),
    );
    await this.#heartbeat();
    this.#beatTimer = setInterval(() => void this.#heartbeat(), o.heartbeatMs);
    this.#beatTimer.unref();
    this.#loops.push(this.#heartbeats().catch(() => {}));
    this.#loops.push(this.#watch(this.#kv.members, (e) => this.#onMember(e)));
    this.#loops.push(this.#watch(this.#kv.regs, (e) => this.#onRegistration(e)));
    // A failed check is logged, never left as an unhandled rejection (which would end amixd).
    this.#watchTimer = setInterval(
      () =>
        void this.#checkWatches().catch((err: unknown) =>
          this.#log(`cluster: watch check failed: ${(err as Error)?.message ?? String(err)}`),
        ),
      1000,
    );
    this.#watchTimer.unref();
    this.#members.start(Math.max(50, Math.floor(o.goneAfterMs / 8)));
    const pub = new Publisher(this.#kv.names, this.#kv.regs, host.directory, this.#id, this.#log);
    this.#publisher = pub;
    this.#offChange = host.directory.onChange((c) => pub.enqueue(c));
    attachHooks(host.directory, {
      claim: (names) => pub.claimAll(names),
      release: (names) => pub.releaseAll(names),
      published: (ids) => pub.published(ids),
    });
    await pub.reconcile();
    this.#log(`amixd cluster: joined as ${this.#id} via ${this.#nc.getServer()} (replicas ${o.replicas})`);
  }

  /** This daemon's id in the cluster (its directory id). */
  get id(): string {
    return this.#id;
  }

  async #claimDirectoryId(stateDir: string): Promise<void> {
    // The token is this daemon directory's own; a copy of the directory elsewhere is caught by the live-epoch check below.
    const file = join(stateDir, 'cluster.json');
    let token: string;
    try {
      token = (JSON.parse(await readFile(file, 'utf8')) as { token: string }).token;
      if (typeof token !== 'string' || !/^[0-9a-f]{32}$/.test(token)) throw new Error('no token');
    } catch {
      token = randomBytes(16).toString('hex');
      await createPrivateFile(file, `${JSON.stringify({ token })}\n`).catch(async () => {
        token = (JSON.parse(await readFile(file, 'utf8')) as { token: string }).token;
      });
    }
    const kv = this.#kv!.dirids;
    const taken = (why: string) =>
      new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `directory id ${this.#id} ${why}`, { details: { name: this.#id } });
    // (A copy of this directory, token and all, is caught later: its heartbeats come under our id, see #heartbeats.)
    try {
      await kv.create(this.#id, json({ token }));
    } catch {
      const e = await kv.get(this.#id);
      const had = e && e.operation === 'PUT' ? (parse(e.value) as { token?: string } | undefined) : undefined;
      if (had?.token !== token) throw taken('is claimed in the cluster by another daemon (a copied daemon directory?)');
    }
  }

  /**
   * Every `heartbeatMs`: the heartbeat (core NATS, see `members.ts`), and
   * every tenth beat this daemon's entry in the members bucket again (its TTL
   * drops the entry of a daemon that died).
   */
  async #heartbeat(): Promise<void> {
    if (this.#closed || !this.#kv) return;
    const p = this.#host!.peering;
    const beat = ++this.#beat;
    this.#nc!.publish(`${this.#opts.prefix}.hb.${this.#id}`, json({ epoch: this.#epoch, beat }));
    // A dial refused because the member had not allowed our key yet is tried afresh (a no-op otherwise).
    for (const m of this.#members?.table.values() ?? [])
      if (m.state === 'up' && p.conduit(m.entry.id)?.state !== 'up') this.#dial(m.entry);
    if (beat % 10 !== 1 && this.#entryWritten) return;
    const entry: MemberEntry = {
      id: this.#id,
      epoch: this.#epoch,
      ...(p.status().insecure ? {} : { publicKey: this.#publicKey() }),
      control: p.addresses.control.endpoint as string,
      beat,
    };
    try {
      await this.#kv.members.put(this.#id, json(entry));
      this.#entryWritten = true;
    } catch {
      // JetStream is electing leaders (a NATS server died), or NATS is away: tried again next beat.
      this.#entryWritten = false;
    }
  }

  #entryWritten = false;
  readonly #subs: Array<{ unsubscribe(): void }> = [];

  /** Follow the heartbeats of every member (and our own: they say our NATS link works). */
  async #heartbeats(): Promise<void> {
    const prefix = `${this.#opts.prefix}.hb.`;
    const sub = this.#nc!.subscribe(`${prefix}*`);
    this.#subs.push(sub);
    for await (const m of sub) {
      const id = m.subject.slice(prefix.length);
      const b = parse(m.data) as { epoch?: unknown } | undefined;
      if (!DIR_ID.test(id) || typeof b?.epoch !== 'string') continue;
      if (id === this.#id && b.epoch !== this.#epoch) {
        // Another process beats under our id: the same daemon directory runs twice (copied?).
        if (this.#counts.idConflicts++ === 0)
          this.#log(`cluster: WARNING: another daemon uses this daemon's id ${this.#id} (a copied daemon directory?)`);
        continue;
      }
      this.#members!.beat(id, b.epoch);
    }
  }

  #publicKey(): string | undefined {
    return (this.#host!.peering.addresses.control as { serverPublicKey?: string }).serverPublicKey;
  }

  /**
   * Follow a bucket: every key's last value, then each change. After a
   * failover the client's ordered consumer recovers by itself; if the watch
   * fails instead, it is made again from the revision after the last one
   * seen, so nothing is missed or replayed.
   */
  async #watch(kv: Kv, each: (e: KvEntry) => void): Promise<void> {
    const w: Watch = { kv, rev: 0, checked: -1 };
    this.#watches.add(w);
    while (!this.#closed) {
      try {
        const it = await kv.watch({ key: '>', ...(w.rev > 0 ? { resumeFromRevision: w.rev + 1 } : {}) });
        w.it = it;
        for await (const e of it) {
          if (this.#closed) break;
          w.rev = Math.max(w.rev, e.revision);
          each(e);
        }
      } catch (err) {
        if (this.#closed) return;
        this.#log(`cluster: watch failed (${(err as Error).message}); watching again`);
        await new Promise((r) => setTimeout(r, 250).unref());
      } finally {
        w.it = undefined;
      }
    }
  }

  readonly #watches = new Set<Watch>();
  #rewatches = 0;

  /**
   * The watch of a bucket that has moved on while the watch has not, two
   * checks running (a second apart), has stalled: a failover left its
   * consumer behind on the server that died, and the client does not always
   * notice. It is made again from the revision after the last one it gave.
   */
  async #checkWatches(): Promise<void> {
    for (const w of this.#watches) {
      const it = w.it;
      if (!it || this.#closed) continue;
      let last: number;
      try {
        last = (await w.kv.status()).streamInfo.state.last_seq;
      } catch {
        continue; // JetStream is electing leaders: next time
      }
      // The watch may have ended or been made again while the status was asked (a failover): then this
      // check says nothing about the watch there is now (and there may be none: `it` was undefined here
      // once, an uncaught TypeError that took amixd down after a NATS server died).
      if (w.it !== it || this.#closed) {
        w.checked = -1;
        continue;
      }
      if (last > w.rev && w.checked === w.rev) {
        this.#rewatches++;
        this.#log(`cluster: a watch stalled at revision ${w.rev} of ${last}; watching again from there`);
        it.stop();
      }
      w.checked = last > w.rev ? w.rev : -1;
    }
  }

  async #watchStatus(): Promise<void> {
    try {
      for await (const s of this.#nc!.status()) {
        if (s.type === 'disconnect') {
          this.#connected = false;
          this.#log('cluster: lost the NATS server; reconnecting');
        } else if (s.type === 'reconnect') {
          this.#connected = true;
          this.#log(`cluster: reconnected to ${this.#nc!.getServer()}`);
        }
      }
    } catch {
      // closed
    }
  }

  #onMember(e: KvEntry): void {
    if (!DIR_ID.test(e.key)) return;
    if (e.operation !== 'PUT') return this.#members!.seen(e.key, null);
    const m = parse(e.value) as MemberEntry | undefined;
    if (!m || m.id !== e.key || typeof m.epoch !== 'string' || typeof m.control !== 'string') {
      this.#counts.badMembers++;
      return;
    }
    this.#members!.seen(e.key, m);
  }

  /** A member is new, back, or restarted: allow its key, and (the lower id of the two) dial it. */
  async #memberUp(m: MemberState, restarted: boolean): Promise<void> {
    const p = this.#host!.peering;
    const insecure = p.status().insecure;
    const e = m.entry;
    this.#replica!.setGone(e.id, false);
    // Back after we marked it gone, the same process: its channels never broke, so its conduit is up again.
    if (!restarted) p.revive(e.id);
    if (insecure !== (e.publicKey === undefined)) {
      this.#counts.badMembers++;
      this.#log(`cluster: member ${e.id} peers ${insecure ? 'with keys' : 'insecure'}, unlike this daemon: not peered`);
      return;
    }
    try {
      if (e.publicKey !== undefined) await p.allowKey(e.publicKey, e.id);
      this.#dial(e);
      this.#log(`cluster: member ${e.id} is up at ${e.control}${restarted ? ' (restarted)' : ''}`);
    } catch (err) {
      this.#counts.badMembers++;
      this.#log(`cluster: cannot peer with member ${e.id}: ${(err as Error).message}`);
    }
  }

  /** Of two members, the one with the lower id dials (one dial per pair, no crossing hellos). */
  #dial(e: MemberEntry): void {
    if (this.#id < e.id)
      this.#host!.peering.addPeer({ endpoint: e.control, ...(e.publicKey ? { publicKey: e.publicKey } : {}) });
  }

  #memberGone(m: MemberState, why: string): void {
    this.#log(`cluster: member ${m.entry.id} is gone: ${why}`);
    this.#replica!.setGone(m.entry.id, true);
    this.#host!.peering.markLost(m.entry.id, why);
  }

  #onRegistration(e: KvEntry): void {
    const dot = e.key.indexOf('.');
    const member = e.key.slice(0, dot);
    const seq = Number(e.key.slice(dot + 1));
    if (!DIR_ID.test(member) || !Number.isSafeInteger(seq) || seq < 1) return;
    // Our own points are in our directory; the bucket only mirrors them.
    if (member === this.#id) return;
    if (e.operation === 'PUT') this.#replica!.put(member, seq, parse(e.value));
    else this.#replica!.delete(member, seq);
  }

  /**
   * A point of another member by name or identifier, and the conduit that
   * reaches it; undefined when no member has it. `AMIX_ERR_PEER_LOST` when
   * its daemon is gone (no heartbeat) or not peered yet: the point is known,
   * and unreachable.
   */
  async resolve(nameOrId: string): Promise<{ view: PointView; peer: Conduit } | undefined> {
    const found = this.#replica?.find(nameOrId);
    if (!found) return undefined;
    const m = found.member;
    if (this.#replica!.isGone(m))
      throw peerLostError(
        `point ${describe(nameOrId)} is on daemon ${m}, which is gone from the cluster (no heartbeat)`,
        {
          peer: m,
          state: 'gone',
        },
      );
    const c = this.#host!.peering.conduit(m);
    if (!c || c.state !== 'up')
      throw peerLostError(`point ${describe(nameOrId)} is on daemon ${m}, which is not peered with this one`, {
        peer: m,
        state: c?.state ?? 'connecting',
      });
    return { view: found.view, peer: c };
  }

  /** The cluster part of `amix daemon status`. */
  status(): ClusterStatus {
    const now = Date.now();
    return {
      id: this.#id,
      servers: this.#opts.servers,
      ...(this.#nc && this.#connected ? { server: this.#nc.getServer() } : {}),
      connected: this.#connected,
      members: [...(this.#members?.table.values() ?? [])].map((m) => ({
        id: m.entry.id,
        state: m.state,
        control: m.entry.control,
        seenMsAgo: now - m.seenAt,
      })),
      replica: {
        ...(this.#replica?.stats ?? { points: 0, badEntries: 0, applied: 0 }),
        perMember: this.#replica?.counts() ?? {},
      },
      ...(this.#publisher?.counts ?? { published: 0, pending: 0, publishErrors: 0, conflicts: 0 }),
      ...this.#counts,
      rewatches: this.#rewatches,
    };
  }

  /**
   * Leave: stop the heartbeat and the watches, delete this daemon's member
   * entry (the others see it leave at once), close NATS. The registrations
   * and names stay: they are this daemon's, and it publishes them again when
   * it comes back. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    // What is queued goes out first (briefly), so a clean stop loses nothing it acknowledged.
    await this.#publisher?.close(2000);
    this.#closed = true;
    clearInterval(this.#beatTimer);
    this.#members?.stop();
    this.#offChange?.();
    if (this.#host) attachHooks(this.#host.directory, undefined);
    await this.#kv?.members.delete(this.#id).catch(() => {});
    clearInterval(this.#watchTimer);
    for (const w of this.#watches) w.it?.stop();
    for (const sub of this.#subs) sub.unsubscribe();
    this.#replica?.close();
    await this.#nc?.close().catch(() => {});
    await Promise.allSettled(this.#loops);
  }
}
