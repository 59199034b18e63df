/**
 * CAPS deferral (seed 002 ¶105, ¶107, ¶530 and the like): the EVENT list of
 * requests waiting for a time ("at TIME"), an interval ("every INTERVAL") or
 * an event ("on EVENT", run by NOTIFICATION), and the watched request store,
 * an NDJSON file of requests the service polls.
 *
 * @module
 */
import { amixError, invalidArg, isAmixError } from '../../core/errors.js';
import { readPrivateFile } from '../../core/paths.js';
import type { CapsCore as Caps } from './records.js';
import type { BetweenOptions, CapsClock, CapsRequest, DeferrableOp, DeferredInfo, LoadOptions } from './types.js';

/** The operations that can be deferred or come from the store. */
export const DEFERRABLE: readonly DeferrableOp[] = [
  'load',
  'execute',
  'replace',
  'suspend',
  'resume',
  'terminate',
  'insert',
  'extract',
];
/** Largest request store read (bytes); a larger file is refused until it shrinks. */
export const MAX_STORE_BYTES = 4 * 1024 * 1024;
/** Longest line of the store. */
export const MAX_STORE_LINE = 64 * 1024;
/** Shortest interval of an `every` request (ms). */
export const MIN_EVERY_MS = 10;

interface Entry extends DeferredInfo {
  timer?: unknown;
}

function str(args: Record<string, unknown>, k: string): string {
  const v = args[k];
  if (typeof v !== 'string' || v === '') throw invalidArg(`args.${k}`, 'must be a non-empty string', v);
  return v;
}

/** Carry out one request now. */
export function runRequest(caps: Caps, op: DeferrableOp, args: Record<string, unknown>): Promise<unknown> {
  switch (op) {
    case 'load':
      return caps.load(args as unknown as LoadOptions);
    case 'execute':
      return caps.execute(str(args, 'name'), args);
    case 'replace':
      return caps.replace(str(args, 'old'), str(args, 'new'), args);
    case 'suspend':
      return caps.suspend(str(args, 'name'));
    case 'resume':
      return caps.resume(str(args, 'name'));
    case 'terminate':
      return caps.terminate(str(args, 'name'), args);
    case 'insert':
      return caps.insert(str(args, 'ams'), args as unknown as BetweenOptions);
    case 'extract':
      return caps.extract(str(args, 'ams'), args as unknown as BetweenOptions);
  }
}

/** Check a request's shape; returns its time as ms (if any). */
export function checkRequest(r: CapsRequest): number | undefined {
  if (typeof r !== 'object' || r === null) throw invalidArg('request', 'must be an object', r);
  if (!DEFERRABLE.includes(r.op)) throw invalidArg('op', `must be one of ${DEFERRABLE.join(', ')}`, r.op);
  if (typeof r.args !== 'object' || r.args === null || Array.isArray(r.args))
    throw invalidArg('args', 'must be an object', r.args);
  if (r.id !== undefined && (typeof r.id !== 'string' || r.id === '' || r.id.length > 128))
    throw invalidArg('id', 'must be a string of 1-128 characters', r.id);
  if (r.on !== undefined && (typeof r.on !== 'string' || r.on === '' || r.on.length > 256))
    throw invalidArg('on', 'must be an event name of 1-256 characters', r.on);
  if (r.every !== undefined && (!Number.isFinite(r.every) || r.every < MIN_EVERY_MS))
    throw invalidArg('every', `must be a number of ms, at least ${MIN_EVERY_MS}`, r.every);
  if (r.on !== undefined && (r.at !== undefined || r.every !== undefined))
    throw invalidArg('on', 'cannot be combined with at or every');
  if (r.at === undefined) return undefined;
  const at = typeof r.at === 'number' ? r.at : typeof r.at === 'string' ? Date.parse(r.at) : NaN;
  if (!Number.isFinite(at)) throw invalidArg('at', 'must be ms since the epoch or an ISO-8601 time', r.at);
  return at;
}

/** @internal The EVENT list and the store watch of one {@link Caps}. */
export class Deferrals {
  readonly #caps: Caps;
  readonly #clock: CapsClock;
  readonly #max: number;
  readonly #list = new Map<string, Entry>();
  readonly #stops = new Set<() => void>();
  #seq = 0;

  constructor(caps: Caps, clock: CapsClock, max: number) {
    this.#caps = caps;
    this.#clock = clock;
    this.#max = max;
  }

  /** Put a request on the EVENT list, or run it now when it names no time, interval or event. */
  async add(r: CapsRequest, owner: string): Promise<DeferredInfo | { ran: unknown }> {
    const at = checkRequest(r);
    if (at === undefined && r.every === undefined && r.on === undefined)
      return { ran: await runRequest(this.#caps, r.op, r.args) };
    const id = r.id ?? `r${++this.#seq}`;
    if (this.#list.has(id))
      throw amixError('AMIX_ERR_DUPLICATE', `request ${id} is on the EVENT list already`, { name: id });
    if (this.#list.size >= this.#max)
      throw amixError('AMIX_ERR_QUEUE_FULL', `the EVENT list holds ${this.#max} requests`, {
        pending: this.#list.size,
      });
    const now = this.#clock.now();
    const e: Entry = {
      id,
      op: r.op,
      args: r.args,
      ...(at !== undefined ? { at } : {}),
      ...(r.every !== undefined ? { every: r.every } : {}),
      ...(r.on !== undefined ? { on: r.on } : {}),
      repeat: r.on !== undefined && r.repeat === true,
      owner,
      created: now,
      runs: 0,
    };
    this.#list.set(id, e);
    if (r.on === undefined) this.#schedule(e, at ?? now + r.every!);
    this.#caps.emitEvent({ type: 'deferred', request: id, op: r.op });
    return info(e);
  }

  #schedule(e: Entry, next: number): void {
    e.next = next;
    e.timer = this.#clock.setTimeout(() => void this.#fire(e), Math.max(0, next - this.#clock.now()));
  }

  async #fire(e: Entry): Promise<void> {
    if (this.#list.get(e.id) !== e) return;
    if (e.every === undefined) this.#list.delete(e.id);
    await this.#run(e);
    if (e.every !== undefined && this.#list.get(e.id) === e) {
      // The next run keeps the cadence; a run that overran does not queue a burst of catch-ups.
      const now = this.#clock.now();
      let next = (e.next ?? now) + e.every;
      if (next <= now) next = now + e.every;
      this.#schedule(e, next);
    }
  }

  async #run(e: Entry): Promise<{ ok: boolean; result?: unknown; error?: string }> {
    e.runs++;
    try {
      const result = await runRequest(this.#caps, e.op, e.args);
      this.#caps.emitEvent({ type: 'requestRan', request: e.id, op: e.op });
      return { ok: true, result };
    } catch (err) {
      const code = isAmixError(err) ? err.code : 'AMIX_ERR_INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      e.lastError = `${code}: ${message}`;
      this.#caps.counters.requestsFailed++;
      this.#caps.emitEvent({ type: 'requestFailed', request: e.id, op: e.op, code, message });
      return { ok: false, error: e.lastError };
    }
  }

  /** NOTIFICATION: run the requests waiting on `event`, in order; a one-shot one leaves the list first. */
  async notify(event: string): Promise<Array<{ id: string; ok: boolean; result?: unknown; error?: string }>> {
    if (typeof event !== 'string' || event === '') throw invalidArg('event', 'must be a non-empty string', event);
    const due = [...this.#list.values()].filter((e) => e.on === event);
    for (const e of due) if (!e.repeat) this.#list.delete(e.id);
    const out: Array<{ id: string; ok: boolean; result?: unknown; error?: string }> = [];
    for (const e of due) out.push({ id: e.id, ...(await this.#run(e)) });
    this.#caps.emitEvent({ type: 'notified', event, ran: due.map((e) => e.id) });
    return out;
  }

  /** Take a request off the list (only its owner's, when `owner` is given). */
  cancel(id: string, owner?: string): boolean {
    const e = this.#list.get(id);
    if (!e || (owner !== undefined && e.owner !== owner)) return false;
    this.#list.delete(id);
    if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
    this.#caps.emitEvent({ type: 'cancelled', request: id });
    return true;
  }

  /** The EVENT list, oldest first. */
  list(): DeferredInfo[] {
    return [...this.#list.values()].map(info);
  }

  /**
   * Poll `file` every `pollMs`: each complete new line is a request (run
   * now or deferred). The file must be owner-only at every read; one that is
   * not, or too large, is refused (a `storeError` event, counted) and read
   * again at the next poll. A request whose `id` was seen is skipped.
   */
  async watch(file: string, pollMs: number): Promise<() => void> {
    if (!Number.isFinite(pollMs) || pollMs < 10) throw invalidArg('pollMs', 'must be at least 10', pollMs);
    // Refuse an unsafe store at once (the caller sees the error); a missing one is waited for.
    await readPrivateFile(file);
    let done = 0;
    let busy = false;
    const seen = new Set<string>();
    const owner = `store:${file}`;
    const fail = (err: unknown, line?: number) => {
      this.#caps.counters.storeErrors++;
      this.#caps.emitEvent({
        type: 'storeError',
        file,
        ...(line !== undefined ? { line } : {}),
        code: isAmixError(err) ? err.code : 'AMIX_ERR_INVALID_ARG',
        message: err instanceof Error ? err.message : String(err),
      });
    };
    const poll = async () => {
      if (busy) return;
      busy = true;
      try {
        const text = await readPrivateFile(file);
        if (text === undefined) return;
        if (text.length > MAX_STORE_BYTES)
          throw invalidArg(
            'store',
            `is over ${MAX_STORE_BYTES} bytes: shorten it (requests already run keep their ids)`,
          );
        const lines = text.split('\n');
        // Only complete lines: the last piece is a line still being written.
        const complete = lines.length - 1;
        if (complete < done) done = 0; // rewritten shorter: read again (ids keep what ran from running twice)
        for (let i = done; i < complete; i++) {
          done = i + 1;
          const raw = lines[i]!.trim();
          if (raw === '') continue;
          try {
            if (raw.length > MAX_STORE_LINE) throw invalidArg('line', `is over ${MAX_STORE_LINE} characters`);
            const r = JSON.parse(raw) as CapsRequest;
            checkRequest(r);
            if (r.id !== undefined) {
              if (seen.has(r.id)) continue;
              seen.add(r.id);
            }
            await this.add(r, owner);
          } catch (err) {
            fail(err, i + 1);
          }
        }
      } catch (err) {
        fail(err);
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void poll(), pollMs);
    timer.unref();
    void poll();
    const stop = () => {
      clearInterval(timer);
      this.#stops.delete(stop);
    };
    this.#stops.add(stop);
    return stop;
  }

  /** Stop every timer and watch. */
  close(): void {
    for (const e of this.#list.values()) if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
    for (const s of [...this.#stops]) s();
  }
}

function info(e: Entry): DeferredInfo {
  const { timer: _t, ...rest } = e;
  return { ...rest, args: { ...rest.args } };
}
