/**
 * The trunk point, TTP (seed 002 ¶363-365, "Thread Trunk Point"): a point
 * (location `amix:trunk`) linked to a switch on one side and, on the other,
 * over a trunk link (TTL: ZeroMQ, CURVE) to a trunk point on another
 * machine, linked to a switch there. To its switch it looks like a
 * neighbouring switch: it relays the far switch's routes frames (adding
 * `trunk`, its own name, which makes the switch's port a trunk port) and
 * its own switch's frames the other way. Data crosses as the switches'
 * sequenced frames; what a trunk point holds is never the only copy (the
 * switch keeps each frame until the far switch acknowledges it), so a
 * trunk point can die and lose nothing.
 *
 * Smart batching: each round it packs what its switch has ready (up to
 * `batchBytes`) into one trunk frame and sends it at once; it never waits
 * for a batch to fill, so an idle trunk adds no delay and a busy one
 * carries many switch frames per trunk frame.
 *
 * Identity is the key: the receiving end's ZAP allow-list holds the far
 * point's public key alone, and the sending end is a CURVE client of a
 * server that must hold `peerKey`; no frame field names a peer. Options are
 * the registration's `data.trunk` ({@link TrunkOptions}); `show` through the
 * point's `trunk` service gives a `TrunkSnapshot`.
 *
 * @module
 */
import type { Channel } from '../../core/channel.js';
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';
import type { ChannelEvent } from '../../core/primitive.js';
import { PrimitiveRegistry } from '../../core/registry.js';
import type { PointContext } from '../../fabric/host.js';
import { SWITCH_ROUTES, decodeSwitchFrame, encodeSwitchRoutes } from '../../fabric/switchFrame.js';
import { isCurveKey, loadKeyPair, type CurveKeyPair } from '../../../primitives/zeromq/keys.js';
import { maxFrameBytesFor } from '../../../primitives/zeromq/wire.js';
import type { TrunkSnapshot } from '../../fabric/switchTypes.js';
import { BatchWriter, decodeTrunkFrame, encodeHello } from './trunkFrame.js';
import { startPointMode, type PointMode } from './trunkAttach.js';

/** Options of a trunk point (its registration's `data.trunk`). */
export interface TrunkOptions {
  /** This point's CURVE key pair, inline or as a key file (`saveKeyPair`'s format, mode 0600). */
  publicKey?: string;
  secretKey?: string;
  keyFile?: string;
  /** The far trunk point's public key: the one key its receiving end accepts, and the key the far end must hold. */
  peerKey: string;
  /** Where its receiving end binds. Default `tcp://127.0.0.1:*`; a fixed port lets the far point dial it again after a restart. */
  listen?: string;
  /** The far point's `listen` endpoint: the side that has it dials; the other answers its hello. */
  connect?: string;
  /** Largest trunk frame built from switch frames. Default 65536 bytes. */
  batchBytes?: number;
  /** Trunk frames the far end may have unread (the zeromq channel's `maxmsg`). Default 1024. */
  window?: number;
  /** Heartbeat interval and timeout of the trunk's sockets: how soon a silent peer counts as lost. Defaults 200, 1000 ms. */
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  /**
   * What this side's links go to: `switch` (default: one switch, which sequences and acknowledges) or
   * `point` (points linked to the trunk point itself; it runs a switch engine for them in its process).
   */
  attach?: 'switch' | 'point';
}

const TRUNK_DEFAULTS = { listen: 'tcp://127.0.0.1:*', batchBytes: 65_536, window: 1024, hb: 200, hbTimeout: 1000 };
/** Switch frames waiting for the local switch at which the point stops reading the trunk. */
const MAX_PENDING = 8192;
const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Check and complete a trunk point's options; `AMIX_ERR_INVALID_ARG` names the bad one. */
export async function trunkOptions(data: unknown): Promise<
  Required<Omit<TrunkOptions, 'connect' | 'keyFile'>> & {
    connect?: string;
  }
> {
  const o = (data as { trunk?: TrunkOptions } | undefined)?.trunk;
  if (!o || typeof o !== 'object') throw invalidArg('data.trunk', 'must be an object with peerKey and keys', o);
  let keys: CurveKeyPair;
  if (o.keyFile !== undefined) keys = await loadKeyPair(o.keyFile);
  else if (isCurveKey(o.publicKey) && isCurveKey(o.secretKey))
    keys = { publicKey: o.publicKey, secretKey: o.secretKey };
  else throw invalidArg('data.trunk.keyFile', 'needs a key file, or publicKey and secretKey (Z85)', o.keyFile);
  if (!isCurveKey(o.peerKey) || o.peerKey === keys.publicKey)
    throw invalidArg(
      'data.trunk.peerKey',
      "must be the far trunk point's CURVE public key (not this one's)",
      o.peerKey,
    );
  const int = (k: string, v: unknown, d: number, min: number): number => {
    if (v === undefined) return d;
    if (!Number.isSafeInteger(v) || (v as number) < min) throw invalidArg(`data.trunk.${k}`, `must be >= ${min}`, v);
    return v as number;
  };
  const ep = (k: string, v: unknown): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^tcp:\/\/\S+:(\d+|\*)$/.test(v))
      throw invalidArg(`data.trunk.${k}`, 'must be tcp://host:port', v);
    return v;
  };
  if (o.attach !== undefined && o.attach !== 'switch' && o.attach !== 'point')
    throw invalidArg('data.trunk.attach', "must be 'switch' or 'point'", o.attach);
  return {
    ...keys,
    attach: o.attach ?? 'switch',
    peerKey: o.peerKey,
    listen: ep('listen', o.listen) ?? TRUNK_DEFAULTS.listen,
    ...(o.connect !== undefined ? { connect: ep('connect', o.connect) } : {}),
    batchBytes: int('batchBytes', o.batchBytes, TRUNK_DEFAULTS.batchBytes, 1024),
    window: int('window', o.window, TRUNK_DEFAULTS.window, 16),
    heartbeatMs: int('heartbeatMs', o.heartbeatMs, TRUNK_DEFAULTS.hb, 10),
    heartbeatTimeoutMs: int('heartbeatTimeoutMs', o.heartbeatTimeoutMs, TRUNK_DEFAULTS.hbTimeout, 10),
  };
}

/** One trunk point over its endpoint. */
export class TrunkPoint {
  readonly #end: PointContext;
  readonly #o: Awaited<ReturnType<typeof trunkOptions>>;
  readonly #reg = new PrimitiveRegistry();
  #rx!: Channel;
  #tx: Channel | undefined;
  #txEndpoint: string | undefined;
  #swTx: Channel | undefined;
  #swRx: Channel | undefined;
  #state: TrunkSnapshot['state'] = 'connecting';
  #remoteSwitch: string | undefined;
  #localSwitch: string | undefined;
  /** The local switch's full table arrived (until then the far side keeps what it knew: an empty table would
   * withdraw every route for a moment, and the far switch would drop what it is sent meanwhile as unroutable). */
  #tableKnown = false;
  /** The local switch's table as its routes frames told it: sent whole to the far point whenever the trunk comes up. */
  readonly #table = new Map<string, string[]>();
  /** The far switch's table as relayed: told whole to a new link to the local switch. */
  readonly #remote = new Map<string, string[]>();
  readonly #pending: Uint8Array[] = [];
  #outBatch: Uint8Array | undefined;
  readonly #w: BatchWriter;
  readonly #s = { framesOut: 0, msgsOut: 0, framesIn: 0, msgsIn: 0, ups: 0, downs: 0, retransmits: 0 };
  readonly #drops = { down: 0, bad: 0 };
  #lastError: TrunkSnapshot['lastError'];
  #open = true;
  /** Rates: the message counters at the last sample (once a second), and what moved in the second before. */
  #seen = { out: 0, in: 0 };
  #rate = { out: 0, in: 0 };
  /** Point mode: the switch engine for the points linked here, and the rings to it. */
  #pm: PointMode | undefined;

  constructor(end: PointContext, o: Awaited<ReturnType<typeof trunkOptions>>) {
    this.#end = end;
    this.#o = o;
    this.#w = new BatchWriter(o.batchBytes);
  }

  /** Bind the receiving end, dial if told to, take the switch link, and move frames until the point ends. */
  async run(): Promise<void> {
    const o = this.#o;
    this.#rx = await this.#reg.open('zeromq', {
      ...this.#sizes(),
      zeromq: {
        bind: o.listen,
        curve: { publicKey: o.publicKey, secretKey: o.secretKey, allow: [o.peerKey] },
        ...this.#beats(),
        onBadFrame: (e: Error) => this.#bad(e),
      },
    });
    this.#end.services.set('trunk', () => this.snapshot());
    const take = (link: string) => {
      const ch = this.#end.channels(link);
      const peer = this.#end.senderList.find((e) => e.link === link)?.peer;
      const tx = ch.tx.at(-1);
      if (ch.rx.at(-1)) this.#swRx = ch.rx.at(-1);
      if (peer) this.#localSwitch = peer;
      if (!tx || tx === this.#swTx) return;
      this.#swTx = tx;
      // Its switch learns at once that this port is a trunk (and no destination), and what is reached through
      // it now (nothing while the trunk is not up); once per channel: a later empty table would undo the relayed one.
      this.#pending.length = 0;
      this.#toSwitch(
        encodeSwitchRoutes({
          switch: this.#remoteSwitch ?? this.#end.instance,
          trunk: this.#end.instance,
          sync: true,
          full: true,
          add: this.#state === 'up' ? [...this.#remote] : [],
        }),
      );
    };
    if (o.attach === 'point') {
      // The engine is this side's switch: the relay's "switch link" is the rings to it, never a fabric link.
      const mark = { switch: this.#end.instance, trunk: this.#end.instance, full: true, add: [] };
      this.#pm = await startPointMode(this.#end, this.#reg, this.#sizes(), encodeSwitchRoutes(mark));
      this.#swTx = this.#pm.toEngine;
      this.#swRx = this.#pm.fromEngine;
    } else {
      this.#end.on('event', (e: { type: string; link: string }) => {
        if (e.type === 'linkAdded') take(e.link);
      });
      for (const e of this.#end.senderList) take(e.link);
    }
    if (o.connect) this.#dial(o.connect);
    let at = performance.now();
    const rates = setInterval(() => {
      const k = 1000 / Math.max(1, performance.now() - at);
      at = performance.now();
      this.#rate = {
        out: Math.round((this.#s.msgsOut - this.#seen.out) * k),
        in: Math.round((this.#s.msgsIn - this.#seen.in) * k),
      };
      this.#seen = { out: this.#s.msgsOut, in: this.#s.msgsIn };
    }, 1000).unref();
    try {
      await this.#poll();
    } finally {
      clearInterval(rates);
      this.#open = false;
      // Nothing to drain: its switch keeps every sequenced frame until the far switch acknowledges it.
      const gone = new Error('trunk point terminating');
      await Promise.all([this.#rx.destroy(gone), this.#tx?.destroy(gone)].map((p) => p?.catch(() => {})));
      await this.#pm?.close();
      await this.#reg.close().catch(() => {});
    }
  }

  /** A snapshot of the trunk. */
  snapshot(): TrunkSnapshot {
    const s = this.#s;
    return {
      trunk: this.#end.instance,
      at: Date.now(),
      state: this.#state,
      peerKey: this.#o.peerKey,
      ...(this.#txEndpoint ? { peer: this.#txEndpoint } : {}),
      endpoint: String((this.#rx.address as { endpoint?: string }).endpoint),
      ...(this.#remoteSwitch ? { remoteSwitch: this.#remoteSwitch } : {}),
      ...(this.#localSwitch ? { localSwitch: this.#localSwitch } : {}),
      ...s,
      retransmits: s.retransmits + ((this.#tx?.stats() as { resent?: number } | undefined)?.resent ?? 0),
      msgsPerFrame: s.framesOut > 0 ? Math.round((s.msgsOut / s.framesOut) * 100) / 100 : 0,
      msgsOutPerSec: this.#rate.out,
      msgsInPerSec: this.#rate.in,
      dropped: { ...this.#drops },
      pending: this.#pending.length,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
      attach: this.#o.attach,
      ...(this.#pm ? { engine: this.#pm.snapshot() } : {}),
    };
  }

  #sizes() {
    const maxMessageBytes = this.#o.batchBytes * 4;
    return { maxmsg: this.#o.window, minmsg: this.#o.window >> 1, maxMessageBytes };
  }

  #beats() {
    return {
      heartbeatIntervalMs: this.#o.heartbeatMs,
      heartbeatTimeoutMs: this.#o.heartbeatTimeoutMs,
      reconnectIntervalMs: 50,
      reconnectMaxIntervalMs: 500,
    };
  }

  /** Open the sending end to the far point's receiving end at `endpoint` (its server key must be `peerKey`). */
  #dial(endpoint: string): void {
    const old = this.#tx;
    this.#tx = undefined;
    this.#txEndpoint = endpoint;
    this.#outBatch = undefined;
    if (old) {
      this.#s.retransmits += (old.stats() as { resent?: number }).resent ?? 0;
      void old.destroy().catch(() => {});
    }
    const o = this.#o;
    const sizes = this.#sizes();
    const address = {
      endpoint,
      serverPublicKey: o.peerKey,
      ...sizes,
      maxFrameBytes: maxFrameBytesFor(sizes.maxMessageBytes),
      discard: 'block',
    };
    let tx: Channel | undefined;
    void this.#reg
      .open('zeromq', {
        address,
        zeromq: { curve: { publicKey: o.publicKey, secretKey: o.secretKey }, ...this.#beats() },
        onEvent: (e: ChannelEvent) => {
          if (this.#tx !== tx) return;
          if (e.type === 'peerLost') this.#down(e.error);
          else if (e.type === 'reconnected' && o.connect) this.#greet();
          else if (e.type === 'refused') this.#bad(e.reason);
        },
      })
      .then((ch) => {
        if (!this.#open || this.#txEndpoint !== endpoint) return void ch.destroy().catch(() => {});
        tx = ch;
        this.#tx = ch;
        this.#greet();
      })
      .catch((err: unknown) => this.#bad(err));
  }

  /** Tell the far point where to answer, and what the local switch reaches. */
  #greet(): void {
    const tx = this.#tx;
    if (!tx) return;
    // The hello goes alone (the far point reads it before the table that follows in a batch).
    tx.trySend(encodeHello(String((this.#rx.address as { endpoint?: string }).endpoint)));
    const table = this.#tableFrame();
    if (table) {
      this.#w.add(table);
      this.#outBatch = this.#w.take().slice();
    }
  }

  /** The local switch's whole table as one routes frame, once its switch (or engine) has told it; else undefined. */
  #tableFrame(): Uint8Array | undefined {
    if (!this.#localSwitch || !this.#tableKnown) return undefined;
    return encodeSwitchRoutes({ switch: this.#localSwitch, full: true, add: [...this.#table] });
  }

  #up(): void {
    if (this.#state === 'up') return;
    this.#state = 'up';
    this.#s.ups++;
    // The far point hears the local table whole now: what the local switch said while the trunk was not up
    // was only noted, and a far point that has heard nothing yet counts the trunk up on this first batch.
    const table = this.#tableFrame();
    if (table) this.#w.add(table);
    this.#end.emit('event', { type: 'trunk', up: true, trunk: this.#end.instance, peer: this.#txEndpoint ?? '' });
  }

  #down(error?: Error): void {
    if (this.#state !== 'up') return;
    this.#state = 'down';
    this.#s.downs++;
    if (error) this.#lastError = { code: (error as AmixError).code ?? 'AMIX_ERR_PEER_LOST', message: error.message };
    // Its switch stops routing through it now: what it reached beyond the trunk is withdrawn.
    this.#remote.clear();
    this.#toSwitch(
      encodeSwitchRoutes({
        switch: this.#remoteSwitch ?? this.#end.instance,
        trunk: this.#end.instance,
        full: true,
        add: [],
      }),
    );
    this.#end.emit('event', { type: 'trunk', up: false, trunk: this.#end.instance, peer: this.#txEndpoint ?? '' });
  }

  #bad(err: unknown): void {
    this.#drops.bad++;
    const e = err as AmixError;
    this.#lastError = { code: e?.code ?? ErrorCode.AMIX_ERR_BAD_FRAME, message: String(e?.message ?? err) };
  }

  #toSwitch(f: Uint8Array): void {
    this.#pending.push(f);
  }

  async #poll(): Promise<void> {
    let idleSince = 0;
    while (this.#open && !this.#end.signal.aborted) {
      const moved = this.#fromTrunk() + this.#fromSwitch();
      if (moved > 0) {
        idleSince = 0;
        // Every round: the zeromq channel writes and reads on the event loop.
        await immediate();
        continue;
      }
      const now = performance.now();
      if (idleSince === 0) idleSince = now;
      await (now - idleSince < 5 ? immediate() : sleep(1));
    }
  }

  /** Hand the local switch what waits for it, then read the trunk while little waits. */
  #fromTrunk(): number {
    let n = this.#drain();
    for (let i = 0; i < 16 && this.#pending.length < MAX_PENDING; i++) {
      let m: Uint8Array | undefined;
      try {
        m = this.#rx.tryReceive();
      } catch {
        break;
      }
      if (m === undefined) break;
      n++;
      const t = decodeTrunkFrame(m);
      if (t instanceof AmixError) {
        this.#bad(t);
        continue;
      }
      if (t.kind === 'hello') {
        // The far point's receiving end (a new one after its restart): answer there. A dialling point knows
        // where the far one is (its own `connect`, which a wildcard bind would not name) and ignores hellos.
        if (this.#o.connect) continue;
        if (t.endpoint !== this.#txEndpoint || !this.#tx) this.#dial(t.endpoint);
        else this.#greet();
        continue;
      }
      this.#s.framesIn++;
      this.#s.msgsIn += t.frames.length;
      this.#up();
      for (const f of t.frames) this.#pending.push(f[0] === SWITCH_ROUTES ? this.#relayRoutes(f) : f);
      n += this.#drain();
    }
    return n;
  }

  #drain(): number {
    const tx = this.#swTx;
    let n = 0;
    if (!tx) return 0;
    try {
      while (this.#pending.length > 0 && tx.trySend(this.#pending[0]!)) {
        this.#pending.shift();
        n++;
      }
    } catch {
      this.#swTx = undefined; // the link went; a new one comes with linkAdded
    }
    return n;
  }

  /** A routes frame from the far switch, as the local switch hears it: marked as coming through this trunk. */
  #relayRoutes(f: Uint8Array): Uint8Array {
    const r = decodeSwitchFrame(f);
    if (r?.kind !== 'routes' || !r.switch) {
      this.#drops.bad++;
      return encodeSwitchRoutes({ switch: this.#remoteSwitch ?? this.#end.instance, trunk: this.#end.instance });
    }
    this.#remoteSwitch = r.switch;
    if (r.full) this.#remote.clear();
    for (const d of r.del ?? []) this.#remote.delete(d);
    for (const [d, path] of r.add ?? []) this.#remote.set(d, path);
    const { kind: _kind, ...rest } = r;
    return encodeSwitchRoutes({ ...rest, trunk: this.#end.instance });
  }

  /** Read what the local switch has ready into one trunk frame and send it; never wait for more. */
  #fromSwitch(): number {
    const rx = this.#swRx;
    const tx = this.#tx;
    if (this.#outBatch) {
      let ok = false;
      try {
        ok = tx?.trySend(this.#outBatch) ?? false;
      } catch {
        ok = false;
      }
      if (!ok) return 0;
      this.#count(this.#outBatch);
      this.#outBatch = undefined;
    }
    if (!rx) return 0;
    let n = 0;
    const up = this.#state === 'up' && tx !== undefined;
    let learned = false;
    for (;;) {
      let f: Uint8Array | undefined;
      try {
        f = rx.tryReceive();
      } catch {
        this.#swRx = undefined;
        break;
      }
      if (f === undefined) break;
      n++;
      if (f[0] === SWITCH_ROUTES) {
        this.#learn(f);
        learned = true;
      } else if (!up) {
        // Down: its switch keeps every sequenced frame until acknowledged and sends it again on the next route.
        this.#drops.down++;
        continue;
      }
      if (!up) continue;
      if (f.length + 7 > this.#sizes().maxMessageBytes) {
        this.#bad(
          new AmixError(
            ErrorCode.AMIX_ERR_FRAME_TOO_LARGE,
            `a ${f.length}-byte switch frame exceeds the trunk's frames`,
            { details: {} },
          ),
        );
        continue;
      }
      // The batch is full: it goes now; this frame starts the next (it is a view the next receive overwrites).
      if (!this.#w.fits(f) && !this.#flush(tx!)) {
        this.#w.add(f);
        return n;
      }
      this.#w.add(f);
    }
    // Not up, yet connected: the far point counts the trunk up on the first frame after a hello, and our
    // greeting carried no table if our switch had not spoken yet. If its greeting carried none either,
    // neither side would ever send a frame and the trunk would never come up: so the table goes now,
    // whole (a later one replaces it), once per round in which the switch's table changed.
    const table = learned && !up && tx ? this.#tableFrame() : undefined;
    if (table) this.#w.add(table);
    if (this.#w.count > 0 && tx) this.#flush(tx);
    return n;
  }

  /** Send the batch built so far; false when the channel cannot take it now (it is kept for the next round). */
  #flush(tx: Channel): boolean {
    const b = this.#w.take();
    let ok = false;
    try {
      ok = tx.trySend(b);
    } catch (err) {
      this.#bad(err);
    }
    if (ok) this.#count(b);
    else this.#outBatch = b.slice();
    return ok;
  }

  #count(b: Uint8Array): void {
    this.#s.framesOut++;
    this.#s.msgsOut += (b[1]! << 8) | b[2]!;
  }

  /** Keep the local switch's table (to send it whole when the trunk comes up). */
  #learn(f: Uint8Array): void {
    const r = decodeSwitchFrame(f);
    if (r?.kind !== 'routes') return;
    if (r.switch) this.#localSwitch = r.switch;
    if (r.full) this.#tableKnown = true;
    if (r.full) this.#table.clear();
    for (const d of r.del ?? []) this.#table.delete(d);
    for (const [d, path] of r.add ?? []) this.#table.set(d, path);
  }
}

/** The trunk point's main: check its options, then relay until terminated. */
export default async function main(point: PointContext): Promise<void> {
  const o = await trunkOptions(point.data);
  await new TrunkPoint(point, o).run();
}
