/**
 * Soak scenario R6: kill -9 of a peered receiving amixd under a stream.
 *
 * Two amixd on loopback, keyed (CURVE) peering: daemon A has point `src`
 * (process scope, `points/forward.ts`), daemon B point `rec` (process
 * scope, `points/recorder.ts`, which writes the number of every message it
 * takes to a file before taking the next). A remote link `src` -> `rec`; this
 * process sends numbered messages into `src` through a client link, as fast
 * as they are accepted (saturated) or at `ratePerSec`. `kills` times, evenly
 * over `durationMs`, B is killed with SIGKILL and started again on the same
 * directory and port. Then sending stops and the scenario waits until `rec`
 * has every number sent (or `drainMs` passes).
 *
 * Counts come from the recorder's files: `lost` numbers sent and never
 * taken, `duplicated` numbers taken more than once, `reordered` numbers
 * taken after a larger one (not counting duplicates). `recoveryMs[i]` is the
 * time from kill i to the first message the restarted `rec` took. B's
 * conduit counters are summed over its lives: `filtered` (re-sent envelopes
 * dropped by the duplicate filter) and `flagged` (delivered again, possibly
 * seen before the crash: `duplicated` never exceeds it).
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DaemonClient,
  generateKeyPair,
  saveKeyPair,
  type ClientLink,
  type CurveKeyPair,
  type PeerInfo,
} from '../../lib/internal.js';
import { freePort } from '../common.js';
import { startAmixd } from './daemons.js';

const POINTS = fileURLToPath(new URL('./points/', import.meta.url));

/** Options of {@link runPeerCrashScenario}. */
export interface PeerCrashOptions {
  /** How many times the receiving daemon is killed. */
  kills: number;
  /** How long the stream runs (the kills are spread evenly over it). */
  durationMs: number;
  /** Messages per second; default: as fast as they are accepted. */
  ratePerSec?: number;
  /** How long to wait for the last messages after the stream stops. Default 20 000 ms. */
  drainMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** What {@link runPeerCrashScenario} measured. */
export interface PeerCrashResult {
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Per kill: from the kill to the first message the restarted receiving point took. */
  recoveryMs: number[];
  /** Re-sent envelopes B's duplicate filter dropped (summed over B's lives). */
  filtered: number;
  /** Envelopes B delivered again that its point may have taken before a crash (an upper bound of `duplicated`). */
  flagged: number;
  /** Resident set size of daemon A (the sender's side), KiB: start, largest seen, end. */
  senderRssKiB: { start: number; max: number; end: number };
}

async function rssKiB(pid: number | undefined): Promise<number> {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The recorder's files, oldest instance first, as one list of numbers taken. */
async function taken(dir: string): Promise<{ nums: Uint32Array; files: number }> {
  const names = (await readdir(dir)).filter((n) => n.startsWith('rec-')).sort();
  const parts: Buffer[] = [];
  for (const n of names) {
    const b = await readFile(join(dir, n));
    parts.push(b.subarray(0, b.length - (b.length % 4)));
  }
  const all = Buffer.concat(parts);
  const nums = new Uint32Array(all.length / 4);
  for (let i = 0; i < nums.length; i++) nums[i] = all.readUInt32LE(i * 4);
  return { nums, files: names.length };
}

/** Resolves once `pred` holds, looking every `everyMs`; rejects after `timeoutMs`. */
async function until(pred: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Two peered daemons with `src` on A linked to `rec` on B (see the module comment), for the scenario and tests. */
export interface PeerPair {
  /** The daemon processes (B changes at each restart). */
  a: ChildProcess;
  b: ChildProcess;
  /** Clients of A and (the current) B. */
  ca: DaemonClient;
  cb: DaemonClient;
  /** This process's link into `src` on A. */
  into: ClientLink;
  /** Where `rec` writes its files. */
  recDir: string;
  /** B's directory (its `delivered.json`). */
  dirB: string;
  /** A's CURVE key pair (a test may speak as A). */
  keyA: CurveKeyPair;
  /** Kill B with SIGKILL and wait until it is gone. */
  killB(): Promise<void>;
  /** Start B again on the same directory and port. */
  startB(): Promise<void>;
  /** Resolves once both daemons see their peer up. */
  peerUp(): Promise<void>;
  /** The numbers `rec` took, oldest instance first, and how many instance files there are. */
  taken(): Promise<{ nums: Uint32Array; files: number }>;
  /** Stop everything and remove the temp directory. */
  close(): Promise<void>;
}

/** Start a {@link PeerPair}. */
export async function startPeerPair(): Promise<PeerPair> {
  const base = await mkdtemp(join(tmpdir(), 'amix-peercrash-'));
  const children = new Set<ChildProcess>();
  const clients: DaemonClient[] = [];
  const close = async (): Promise<void> => {
    for (const c of clients) await c.close().catch(() => {});
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await once(c, 'exit').catch(() => {});
      }
    }
    await rm(base, { recursive: true, force: true });
  };
  try {
    const ka = generateKeyPair();
    const kb = generateKeyPair();
    await saveKeyPair(join(base, 'a.keys'), ka);
    await saveKeyPair(join(base, 'b.keys'), kb);
    await writeFile(join(base, 'allow'), `${ka.publicKey}\n${kb.publicKey}\n`, { mode: 0o600 });
    const recDir = join(base, 'rec');
    await mkdir(recDir, { mode: 0o700 });
    const [pa, pb] = [await freePort(), await freePort()];
    const dirA = join(base, 'a');
    const dirB = join(base, 'b');
    const argsA = ['--listen', `tcp://127.0.0.1:${pa}`, '--keys', join(base, 'a.keys'), '--allow', join(base, 'allow')];
    const argsB = [
      ...['--listen', `tcp://127.0.0.1:${pb}`, '--keys', join(base, 'b.keys'), '--allow', join(base, 'allow')],
      ...['--peer', `tcp://127.0.0.1:${pa}`, `--peer-key=${ka.publicKey}`],
    ];
    const a = await startAmixd(dirA, argsA);
    children.add(a);
    const b = await startAmixd(dirB, argsB);
    children.add(b);
    const ca = await DaemonClient.connect({ dir: dirA });
    clients.push(ca);
    const cb = await DaemonClient.connect({ dir: dirB });
    clients.push(cb);
    const pair = { a, b, ca, cb, recDir, dirB, keyA: ka } as PeerPair;
    pair.peerUp = () =>
      until(
        async () =>
          (await pair.ca.request<{ peers: PeerInfo[] }>('peers')).peers.some((p) => p.state === 'up') &&
          (await pair.cb.request<{ peers: PeerInfo[] }>('peers')).peers.some((p) => p.state === 'up'),
        30_000,
        'the peers to be up',
        20,
      );
    pair.killB = async () => {
      const b = pair.b;
      if (b.exitCode === null && b.signalCode === null) {
        b.kill('SIGKILL');
        await once(b, 'exit');
      }
      children.delete(b);
      await pair.cb.close().catch(() => {});
    };
    pair.startB = async () => {
      pair.b = await startAmixd(dirB, argsB);
      children.add(pair.b);
      pair.cb = await DaemonClient.connect({ dir: dirB });
      clients.push(pair.cb);
    };
    pair.taken = () => taken(recDir);
    pair.close = close;
    await pair.peerUp();
    const reg = (c: DaemonClient, name: string, file: string, data: unknown) =>
      c.request('point.register', {
        registration: { name, location: join(POINTS, file), data, characteristics: { scope: 'process' } },
      });
    await reg(ca, 'src', 'forward.js', {});
    await reg(cb, 'rec', 'recorder.js', { dir: recDir });
    pair.into = await ca.connect(null, 'src', { direction: 'aToB' });
    await ca.request('connect', { a: 'src', b: 'rec', direction: 'aToB' });
    return pair;
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Run scenario R6 (see the module comment) and return its counts. Every
 * process and temp directory it made is gone when it resolves or rejects.
 */
export async function runPeerCrashScenario(o: PeerCrashOptions): Promise<PeerCrashResult> {
  const log = o.log ?? (() => {});
  const pair = await startPeerPair();
  try {
    const { a, into, recDir } = pair;
    const rss = { start: await rssKiB(a.pid), max: 0, end: 0 };
    rss.max = rss.start;

    // B's conduit counters, summed over its lives (each life starts from zero).
    let filtered = 0;
    let flagged = 0;
    const collect = async (): Promise<void> => {
      const st = await pair.cb.request<{ peers: PeerInfo[] }>('peers').catch(() => undefined);
      for (const p of st?.peers ?? []) {
        filtered += p.stats.duplicates;
        flagged += p.stats.redelivered ?? 0;
      }
    };

    let sent = 0;
    let stop = false;
    // A send still blocked when the stream stops is given up (it was never accepted, so it is not counted).
    const halt = new AbortController();
    const t0 = Date.now();
    const sender = (async () => {
      const msg = new Uint8Array(8);
      const dv = new DataView(msg.buffer);
      while (!stop) {
        dv.setUint32(0, sent, true);
        await into.send(msg.slice(), { signal: halt.signal });
        sent++;
        if (o.ratePerSec !== undefined) {
          const due = t0 + (sent * 1000) / o.ratePerSec;
          const wait = due - Date.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        }
      }
    })();
    let tick = 0;
    const sampler = setInterval(() => {
      void rssKiB(a.pid).then((k) => (rss.max = Math.max(rss.max, k)));
      if (++tick % 4 === 0) log(`${Date.now() - t0} ms: ${sent} sent`);
    }, 250);
    const recoveryMs: number[] = [];
    try {
      for (let k = 0; k < o.kills; k++) {
        await new Promise((r) => setTimeout(r, o.durationMs / (o.kills + 1)));
        await collect();
        const before = (await taken(recDir)).files;
        const killedAt = Date.now();
        await pair.killB();
        await pair.startB();
        const upAt = Date.now();
        // The restarted point is a new instance with a file of its own: recovered when it has a record.
        await until(
          async () => {
            const names = (await readdir(recDir)).filter((n) => n.startsWith('rec-')).sort();
            if (names.length <= before) return false;
            const last = await readFile(join(recDir, names[names.length - 1]!));
            return last.length >= 4;
          },
          30_000,
          `the restarted receiver to take a message (kill ${k + 1})`,
          5,
        );
        recoveryMs.push(Date.now() - killedAt);
        log(
          `kill ${k + 1}: recovered in ${recoveryMs[k]} ms (amixd B up again after ${upAt - killedAt} ms), ${sent} sent so far`,
        );
      }
      await new Promise((r) => setTimeout(r, o.durationMs / (o.kills + 1)));
    } finally {
      stop = true;
      // A send blocked for good would mean the stream never recovered: the wait below then reports the loss.
      const t = setTimeout(() => halt.abort(), 5000);
      await sender.catch(() => {});
      clearTimeout(t);
    }
    clearInterval(sampler);
    rss.end = await rssKiB(a.pid);
    const want = sent;
    await until(
      async () => {
        const { nums } = await taken(recDir);
        if (nums.length < want) return false;
        const seen = new Uint8Array(want);
        let distinct = 0;
        for (const n of nums) if (n < want && seen[n] === 0) ((seen[n] = 1), distinct++);
        return distinct === want;
      },
      o.drainMs ?? 20_000,
      'every message to arrive',
      50,
    ).catch((err: Error) => log(err.message));
    await collect();
    const { nums } = await taken(recDir);
    const count = new Uint8Array(want);
    let duplicated = 0;
    let reordered = 0;
    let max = -1;
    for (const n of nums) {
      if (n >= want) continue;
      if (count[n]! > 0) {
        duplicated++;
        continue;
      }
      count[n] = 1;
      if (n < max) reordered++;
      else max = n;
    }
    let lost = 0;
    for (let i = 0; i < want; i++) if (count[i] === 0) lost++;
    return {
      sent,
      received: nums.length,
      lost,
      duplicated,
      reordered,
      recoveryMs,
      filtered,
      flagged,
      senderRssKiB: rss,
    };
  } finally {
    await pair.close();
  }
}
