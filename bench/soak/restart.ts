/**
 * Soak scenario R2: kill -9 of a restartable receiving point, N times,
 * under a sequence-numbered stream, and what reached it.
 *
 * A process point `source` streams the
 * numbers 0, 1, 2, ... to a restartable point `sink` (`restart: true`,
 * process scope, or thread scope on `queueConditionProcess` both ways) that
 * writes every number it takes to a file, synchronously, before it takes
 * the next. The sink is killed (SIGKILL of its process, or its worker
 * terminated) `kills` times, evenly over `durationMs`, each time only after
 * the previous instance has taken a message; the source's pending (its
 * sending end's accepted-but-unacknowledged messages) is sampled every
 * 20 ms. Each kill waits, if need be, until the sink's spare host is
 * ready (`spareReady`), so recovery is measured from a settled instance.
 * At the end the file is read back against the source's count of
 * accepted messages.
 *
 * Used by `test/fabric-restart-delivery.ts` (short) and the soak runner.
 *
 * @module
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, type FabricEvent, type Link, type PointMessage } from '../../lib/index.js';
import { SeqTracker } from './common.js';

/** Options of {@link runRestartScenario}. */
export interface RestartScenarioOptions {
  /** SIGKILLs of the sink, spread evenly over the run. */
  kills: number;
  /** Messages per second the source offers; 0 (the default): as fast as the link accepts them (saturated). */
  ratePerSec?: number;
  /** Length of the stream in ms (the kills fall inside it). Default 2000 per kill + 1000. */
  durationMs?: number;
  /** The sink's scope. Default `process`. */
  scope?: 'process' | 'thread';
  /** The sink's maxmsg (and so the source's largest pending). Default 1000. */
  maxmsg?: number;
  /** Longest wait for one recovery, or for the end of the stream, before the scenario fails. Default 20000. */
  waitMs?: number;
  /** Every fabric event, for diagnostics. */
  onEvent?: (e: FabricEvent) => void;
}

/** What {@link runRestartScenario} measured. */
export interface RestartScenarioResult {
  /** Messages the source's link accepted. */
  sent: number;
  /** Messages the sink took, counting each take (duplicates included). */
  received: number;
  /** Accepted numbers the sink never took. */
  lost: number;
  /** The first (at most 10) lost numbers, when any were lost. */
  lostSample?: number[];
  /** Takes of a number already taken (at-least-once across a restart). */
  duplicated: number;
  /** First takes out of order: a number first taken after a larger one. */
  reordered: number;
  /** Per kill: ms from the SIGKILL to the first message taken by the new instance. */
  recoveryMs: number[];
  /** Sum over the new instances of their receiving end's `redelivered` count (possible duplicates, flagged). */
  redelivered: number;
  /** Largest pending sampled at the source's sending end. */
  maxPending: number;
  /** The sink's maxmsg. */
  maxmsg: number;
  /** Kills done. */
  kills: number;
  /** Wall time of the stream, ms. */
  durationMs: number;
}

const SOURCE = fileURLToPath(new URL('./points/restart-source.js', import.meta.url));
const SINK = fileURLToPath(new URL('./points/restart-sink.js', import.meta.url));
const QCP = 'queueConditionProcess';

const text = (m: PointMessage): string => Buffer.from(m.data).toString();

/** Run scenario R2 once (see the module comment); rejects if a recovery or the end does not come within `waitMs`. */
export async function runRestartScenario(options: RestartScenarioOptions): Promise<RestartScenarioResult> {
  const kills = options.kills;
  const ratePerSec = options.ratePerSec ?? 0;
  const durationMs = options.durationMs ?? 2000 * kills + 1000;
  const scope = options.scope ?? 'process';
  const maxmsg = options.maxmsg ?? 1000;
  const waitMs = options.waitMs ?? 20_000;
  const dir = await mkdtemp(join(tmpdir(), 'amix-soak-restart-'));
  const file = join(dir, 'taken.log');
  // A loaded machine (or a test runner's loaders in every child) can take seconds to boot a host.
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), requestTimeoutMs: waitMs, hostExecArgv: [] });
  // Point hosts do not keep this process alive, and some waits here hold no handle of their own.
  const keep = setInterval(() => {}, 1 << 30);
  let sampler: NodeJS.Timeout | undefined;
  if (options.onEvent) fabric.on('event', options.onEvent);
  // Spare hosts of the sink made ready so far (one after its start, one after each restart).
  let spares = 0;
  let spareWake: (() => void) | undefined;
  fabric.on('event', (e: FabricEvent) => {
    if (e.type === 'spareReady' && e.instance === 'sink') {
      spares++;
      spareWake?.();
    }
  });
  const spareReady = async (n: number): Promise<void> => {
    const deadline = Date.now() + waitMs;
    while (spares < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`restart scenario: the sink's spare host ${n} was not ready within ${waitMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        spareWake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  try {
    fabric.register({
      name: 'sink',
      location: SINK,
      data: { file },
      // A thread point's own primitive cannot outlive its worker: on queueConditionProcess, its links resume.
      ...(scope === 'thread' ? { sendPrimitive: QCP, receivePrimitive: QCP } : {}),
      characteristics: { scope, restart: true, maxmsg },
    });
    fabric.register({
      name: 'source',
      location: SOURCE,
      data: { ratePerSec },
      characteristics: { scope: 'process' },
    });
    const out = await fabric.connect('sink', null, { direction: 'aToB' });
    const stream = await fabric.connect('source', 'sink', { direction: 'aToB' });
    const ctl = await fabric.connect(null, 'source');

    let maxPending = 0;
    let sampling = false;
    sampler = setInterval(() => {
      if (sampling) return;
      sampling = true;
      fabric
        .stats('source')
        .then((s) => {
          const tx = (s as { links: Record<string, { tx: Array<{ pending: number }> }> }).links[stream.id]?.tx ?? [];
          for (const c of tx) maxPending = Math.max(maxPending, c.pending);
        })
        .catch(() => {})
        .finally(() => {
          sampling = false;
        });
    }, 20);

    const next = async (link: Link, what: string): Promise<string> => {
      try {
        return text(await link.receive({ signal: AbortSignal.timeout(waitMs) }));
      } catch (err) {
        throw new Error(`restart scenario: no ${what} within ${waitMs} ms`, { cause: err });
      }
    };
    const up = async (what: string): Promise<number> => {
      const m = await next(out, what);
      if (!m.startsWith('up ')) throw new Error(`restart scenario: expected "up <ms>" from the sink, got ${m}`);
      return Number(m.slice(3));
    };

    await ctl.send(Buffer.from('go'));
    const t0 = Date.now();
    await up('first message at the sink');
    const recoveryMs: number[] = [];
    let redelivered = 0;
    for (let k = 1; k <= kills; k++) {
      const at = t0 + (k * durationMs) / (kills + 1);
      if (Date.now() < at) await new Promise((r) => setTimeout(r, at - Date.now()));
      // A crash of a settled instance: its spare host is ready (a crash loop faster than a spare boots
      // restarts at the speed of a cold start instead, which this scenario does not measure).
      await spareReady(k);
      const info = fabric.instance('sink');
      const killedAt = Date.now();
      if (scope === 'process') process.kill(info.pid!, 'SIGKILL');
      else await fabric.kill('sink');
      const took = await up(`message at the sink's instance ${k + 1} (after kill ${k})`);
      recoveryMs.push(took - killedAt);
      const s = (await fabric.stats('sink')) as {
        links: Record<string, { rx: Array<{ redelivered?: number }> }>;
      };
      for (const c of s.links[stream.id]?.rx ?? []) redelivered += c.redelivered ?? 0;
    }
    const left = t0 + durationMs - Date.now();
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    await ctl.send(Buffer.from('stop'));
    const { sent } = JSON.parse(await next(ctl, "the source's count")) as { sent: number };
    const streamMs = Date.now() - t0;
    const last = await next(out, 'end of the stream at the sink');
    if (last !== 'end') throw new Error(`restart scenario: expected "end" from the sink, got ${last}`);
    clearInterval(sampler);
    sampler = undefined;
    const tally = await countTakesFile(file, sent);
    return { sent, ...tally, recoveryMs, redelivered, maxPending, maxmsg, kills, durationMs: streamMs };
  } finally {
    clearInterval(keep);
    if (sampler) clearInterval(sampler);
    await fabric.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

/** What {@link countTakes} finds. */
export interface TakeCounts {
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** The first (at most 10) lost numbers, when any were lost. */
  lostSample?: number[];
}

/**
 * The tally of a sink's file, fed in chunks: a file of tens of millions of
 * lines is read as a stream of bytes, never as one string split into lines
 * (which took the runner's RSS past 2 GB and made the scenario's memory
 * figures about the tally, not the fabric).
 */
class TakeTally {
  readonly #sent: number;
  readonly #seen: SeqTracker;
  /** Lines that are no sequence number (never accepted: counted out of order, which fails the run). */
  #invalid = 0;
  /** The line so far: its number, whether it is one (`#bad`), or a marker line (`I ...`, `E`) skipped. */
  #cur = 0;
  #bad = false;
  #skip = false;
  #atStart = true;

  constructor(sent: number) {
    this.#sent = sent;
    this.#seen = new SeqTracker(sent);
  }

  feed(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c === 0x0a) {
        this.#endLine();
        continue;
      }
      if (this.#skip) continue;
      if (this.#atStart) {
        this.#atStart = false;
        // `I <ms>` (an instance's first take) and `E` (the end marker) are not numbers taken.
        if (c === 0x49 || c === 0x45) {
          this.#skip = true;
          continue;
        }
      }
      if (c >= 0x30 && c <= 0x39) this.#cur = this.#cur * 10 + (c - 0x30);
      else this.#bad = true;
    }
  }

  #endLine(): void {
    if (!this.#skip && !this.#atStart) {
      if (this.#bad || !Number.isSafeInteger(this.#cur)) this.#invalid++;
      else this.#seen.take(this.#cur);
    }
    this.#cur = 0;
    this.#bad = false;
    this.#skip = false;
    this.#atStart = true;
  }

  end(): TakeCounts {
    if (!this.#atStart) this.#endLine();
    const c = this.#seen.counts(this.#sent);
    const counts = {
      received: c.received + this.#invalid,
      lost: c.lost,
      duplicated: c.duplicated,
      reordered: c.reordered + c.outOfRange + this.#invalid,
    };
    return c.lost === 0 ? counts : { ...counts, lostSample: this.#seen.lostSample(this.#sent) };
  }
}

/** Lost, duplicated and reordered numbers in the sink's file (its text), against `sent` accepted (0 .. sent - 1). */
export function countTakes(log: string, sent: number): TakeCounts {
  const tally = new TakeTally(sent);
  tally.feed(Buffer.from(log));
  return tally.end();
}

/** {@link countTakes} of the file at `path`, read as a stream. */
async function countTakesFile(path: string, sent: number): Promise<TakeCounts> {
  const tally = new TakeTally(sent);
  for await (const chunk of createReadStream(path)) tally.feed(chunk as Buffer);
  return tally.end();
}
