/**
 * The receiving side's duplicate filter, kept across a restart of this
 * daemon: per peer incarnation (the `epoch` of its hello) and per flow, the
 * first sequence number the receiving point has not yet taken (`taken`).
 *
 * After a restart, a flow of a peer with the same epoch starts from the kept
 * number: a re-sent envelope below it is dropped and counted as a
 * duplicate. (Re-sent envelopes above it are delivered and counted as
 * `redelivered` by the data loop: the point may have taken them after the
 * last confirmation.) A peer with another epoch is a new process that
 * numbers its flows from 0 again, and its entries are dropped.
 *
 * The file is `DIR/delivered.json` (0600), replaced with an exclusive-create
 * temporary file and a rename (never written through a link), read with
 * `O_NOFOLLOW`. It holds at most {@link MAX_FLOWS} flows; beyond that, new
 * flows are not kept (they are then filtered in memory only, and counted in
 * `untracked`).
 *
 * @module
 */
import { join } from 'node:path';
import { readState, writeState } from './stateFile.js';

/** Flows the file keeps at most. */
export const MAX_FLOWS = 4096;
/** Coalesce writes of `taken` for this long. */
export const SAVE_DELAY_MS = 50;

/** @internal One flow's kept numbers. */
export interface KeptFlow {
  taken: number;
}

interface FileShape {
  version: 1;
  peers: Record<string, { epoch: string; flows: Record<string, number> }>;
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** @internal The duplicate filter's state and its file. */
export class DeliveryLog {
  readonly file: string;
  readonly #peers = new Map<string, { epoch: string; flows: Map<string, KeptFlow> }>();
  #count = 0;
  /** Flows not kept because the file was full. */
  untracked = 0;
  #timer: NodeJS.Timeout | undefined;
  #saving: Promise<void> = Promise.resolve();
  readonly #log: (line: string) => void;

  constructor(dir: string, log: (line: string) => void) {
    this.file = join(dir, 'delivered.json');
    this.#log = log;
  }

  /** Read the file (a missing or malformed file is an empty filter: at-least-once still holds). */
  async load(): Promise<void> {
    const v = (await readState(this.file)) as unknown as Partial<FileShape>;
    if (v.version !== 1 || !v.peers || typeof v.peers !== 'object') return;
    for (const [peer, p] of Object.entries(v.peers)) {
      if (!p || typeof p.epoch !== 'string' || !p.flows || typeof p.flows !== 'object') continue;
      const flows = new Map<string, KeptFlow>();
      for (const [k, f] of Object.entries(p.flows)) {
        if (this.#count >= MAX_FLOWS) break;
        if (!isNum(f)) continue;
        flows.set(k, { taken: f });
        this.#count++;
      }
      this.#peers.set(peer, { epoch: p.epoch, flows });
    }
  }

  /**
   * A peer said hello with `epoch`: keep its flows if it is the process they
   * were kept for, forget them if not (it numbers from 0 again).
   */
  peer(peer: string, epoch: string | undefined): void {
    const p = this.#peers.get(peer);
    if (p && p.epoch === epoch) return;
    if (p) {
      this.#count -= p.flows.size;
      this.#peers.delete(peer);
    }
    if (epoch !== undefined) this.#peers.set(peer, { epoch, flows: new Map() });
    this.#schedule();
  }

  /** The kept numbers of a flow of `peer`'s process `epoch`, if any. */
  get(peer: string, epoch: string | undefined, key: string): KeptFlow | undefined {
    const p = this.#peers.get(peer);
    return p && epoch !== undefined && p.epoch === epoch ? p.flows.get(key) : undefined;
  }

  #flow(peer: string, epoch: string | undefined, key: string): KeptFlow | undefined {
    const p = this.#peers.get(peer);
    if (!p || epoch === undefined || p.epoch !== epoch) return undefined;
    let f = p.flows.get(key);
    if (!f) {
      if (this.#count >= MAX_FLOWS) {
        this.untracked++;
        return undefined;
      }
      f = { taken: 0 };
      p.flows.set(key, f);
      this.#count++;
    }
    return f;
  }

  /** A flow opened: kept (from 0) so that a crash soon after still finds it. */
  opened(peer: string, epoch: string | undefined, key: string): void {
    const p = this.#peers.get(peer);
    if (!p || p.epoch !== epoch || p.flows.has(key)) return;
    if (this.#flow(peer, epoch, key)) this.#schedule();
  }

  /** Forget a flow that was closed. */
  forget(peer: string, epoch: string | undefined, key: string): void {
    const p = this.#peers.get(peer);
    if (!p || p.epoch !== epoch || !p.flows.delete(key)) return;
    this.#count--;
    this.#schedule();
  }

  /** How many flows are kept. */
  get size(): number {
    return this.#count;
  }

  /** The point has taken every message of the flow below `taken`: kept soon (coalesced). */
  taken(peer: string, epoch: string | undefined, key: string, taken: number): void {
    const f = this.#flow(peer, epoch, key);
    if (!f || taken <= f.taken) return;
    f.taken = taken;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.save();
    }, SAVE_DELAY_MS);
    this.#timer.unref();
  }

  /** Write the file now (one write at a time, in order). */
  save(): Promise<void> {
    const state: FileShape = { version: 1, peers: {} };
    for (const [peer, p] of this.#peers) {
      const flows: Record<string, number> = {};
      for (const [k, f] of p.flows) flows[k] = f.taken;
      state.peers[peer] = { epoch: p.epoch, flows };
    }
    const text = `${JSON.stringify(state)}\n`;
    this.#saving = this.#saving
      .then(() => writeState(this.file, text))
      .catch((err: Error) => this.#log(`peering: cannot write ${this.file}: ${(err as Error).message}`));
    return this.#saving;
  }

  /** Stop the timer and write what is pending. */
  async close(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    await this.save();
  }
}
