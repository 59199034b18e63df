/**
 * Shared parts of the soak scenarios (`npm run soak`, bench/soak.ts): the
 * result row every scenario returns, the sequence tracker a receiving point
 * runs synchronously on every message it takes, the RSS sampler over a
 * process tree, and small helpers (temp dirs, the sequence-message layout).
 *
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What every scenario reports (the delivery modules R2 and R6 return at least the counters). */
export interface DeliveryCounts {
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
}

/** RSS of one group of processes (same command), in MiB: first sample, largest, last sample. */
export interface RssFigures {
  /** What the processes run (argv, shortened). */
  process: string;
  /** How many distinct pids ran it during the scenario (a restarted point or daemon counts each life). */
  pids: number;
  startMb: number;
  maxMb: number;
  endMb: number;
}

/** One row of `npm run soak --json`: `id`, `ok`, the counters, then scenario-specific figures. */
export interface ScenarioRow extends Partial<DeliveryCounts> {
  id: string;
  ok: boolean;
  /** Why the scenario did not run (a module not built yet). */
  skipped?: string;
  /** Why it failed, when it failed for a reason the counters do not show. */
  error?: string;
  /** Wall time of the scenario in ms. */
  ms?: number;
  memory?: RssFigures[];
  [k: string]: unknown;
}

/** Options every scenario of this folder takes from the runner. */
export interface ScenarioOptions {
  /** The short (`--quick`) variant. */
  quick: boolean;
  /** Progress lines (stderr). */
  log: (msg: string) => void;
}

/** The tag of a message's first u32 that ends a sequence stream; the second u32 is the number sent. */
export const END_TAG = 0xffffffff;

/** A data message of `size` bytes (>= 4) carrying sequence number `seq` (u32 LE at 0). */
export function seqMessage(seq: number, size = 16): Uint8Array {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, seq, true);
  return b;
}

/** The end-of-stream message: {@link END_TAG}, then how many data messages were sent. */
export function endMessage(sent: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, END_TAG, true);
  v.setUint32(4, sent, true);
  return b;
}

/** The u32 at `offset` of a message (little-endian). */
export function u32(data: Uint8Array, offset = 0): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(offset, true);
}

/**
 * Records every sequence number a receiver takes, synchronously, in a byte
 * per number (10 MB for 10,000,000): duplicates, reorders and gaps are exact,
 * not estimated from the last number seen.
 */
export class SeqTracker {
  readonly #seen: Uint8Array;
  #unique = 0;
  #received = 0;
  #duplicated = 0;
  #reordered = 0;
  #outOfRange = 0;
  #max = -1;

  constructor(capacity: number) {
    this.#seen = new Uint8Array(capacity);
  }

  /** One message taken with sequence number `seq`. */
  take(seq: number): void {
    this.#received++;
    if (seq >= this.#seen.length) {
      this.#outOfRange++;
      return;
    }
    if (this.#seen[seq]) {
      this.#duplicated++;
      return;
    }
    this.#seen[seq] = 1;
    this.#unique++;
    // A first arrival below the highest number seen has been overtaken.
    if (seq < this.#max) this.#reordered++;
    else this.#max = seq;
  }

  /** Messages taken so far (duplicates included). */
  get received(): number {
    return this.#received;
  }

  /** The first (at most `max`) numbers below `sent` never taken: to place a loss against a run's events. */
  lostSample(sent: number, max = 10): number[] {
    const out: number[] = [];
    for (let n = 0; n < sent && out.length < max; n++) if (!this.#seen[n]) out.push(n);
    return out;
  }

  /** The counters, given how many the sender says it sent (numbers 0 .. sent-1). */
  counts(sent: number): DeliveryCounts & { outOfRange: number } {
    return {
      sent,
      received: this.#received,
      lost: sent - this.#unique,
      duplicated: this.#duplicated,
      reordered: this.#reordered,
      outOfRange: this.#outOfRange,
    };
  }
}

/** A fresh temp directory (mode 0700, as mkdtemp makes it). */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `amix-soak-${prefix}-`));
}

/** Resident set size of `pid` in KiB (VmRSS of /proc/<pid>/status), or undefined once it is gone. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    // The command may hold spaces and parentheses: the fields after the last ')' are fixed.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // "node .../dist/bin/amixd.js --dir ..." → "node amixd.js --dir"; keep it short but telling.
    return argv
      .slice(0, 3)
      .map((a) => a.replace(/^.*\//, ''))
      .join(' ');
  } catch {
    return '?';
  }
}

/**
 * Samples the RSS of a process and of every descendant it has at each tick
 * (so amixd, point processes and restarted instances are all seen, whoever
 * started them), grouped by command line.
 */
export class RssSampler {
  readonly #root: number;
  readonly #groups = new Map<string, { pids: Set<number>; start: number; max: number; end: number; last: number }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(root: number, everyMs = 250) {
    this.#root = root;
    this.sample();
    this.#timer = setInterval(() => this.sample(), everyMs);
    this.#timer.unref();
  }

  /** Take one sample of the whole tree now. */
  sample(): void {
    const tree = new Set([this.#root]);
    let pids: number[] = [];
    try {
      pids = readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .map(Number);
    } catch {
      /* no /proc: only the root is sampled */
    }
    // Parents come before children often but not always: iterate until no pid joins.
    const parents = new Map(pids.map((p) => [p, parentOf(p)]));
    for (let grown = true; grown;) {
      grown = false;
      for (const [p, pp] of parents)
        if (!tree.has(p) && pp !== undefined && tree.has(pp)) {
          tree.add(p);
          grown = true;
        }
    }
    const rootCmd = commandOf(this.#root);
    for (const pid of tree) {
      const kb = rssKb(pid);
      // Gone, or a zombie (no VmRSS line left, or 0): nothing resident to report.
      if (!kb) continue;
      const cmd = commandOf(pid);
      // A child caught between fork and exec still shows its parent's command line: not a process of its own yet.
      if (pid !== this.#root && cmd === rootCmd) continue;
      const key = pid === this.#root ? `${cmd} (scenario)` : cmd;
      let g = this.#groups.get(key);
      if (!g) this.#groups.set(key, (g = { pids: new Set(), start: kb, max: kb, end: kb, last: pid }));
      g.pids.add(pid);
      g.max = Math.max(g.max, kb);
      g.end = kb;
      g.last = pid;
    }
  }

  /** Stop sampling; the figures per command, largest first. */
  stop(): RssFigures[] {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const mb = (kb: number) => Math.round(kb / 102.4) / 10;
    return [...this.#groups.entries()]
      .map(([process, g]) => ({
        process,
        pids: g.pids.size,
        startMb: mb(g.start),
        maxMb: mb(g.max),
        endMb: mb(g.end),
      }))
      .sort((a, b) => b.maxMb - a.maxMb);
  }
}

/** Percentile `p` (0-100) of `xs` (nearest rank); undefined for none. */
export function percentile(xs: readonly number[], p: number): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Resolve after `ms` (only for pacing a workload, never to wait for a state). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
