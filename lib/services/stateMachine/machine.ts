/**
 * The State Machine Thread Manager (seed 002 ¶255-256, ¶639-642): it moves
 * each attached datum through an application's states. Each state has its
 * threads, thread points of the fabric (`stateThread.ts`), as many as the
 * state's `concurrency`; a datum entering a state is run by one of them, a
 * separate thread of execution, and the exit value it returns picks the
 * transition. An exit value the state has no transition for sends the
 * datum to the special `Error` state, as does a state thread that throws or
 * dies. Many datums move through one machine at once.
 *
 * Keeping them in step: a datum is in one state at a time, so its steps
 * happen in its path's order; a state runs at most `concurrency` datums at
 * once and queues the rest in arrival order; and at most `maxInFlight`
 * datums are in the machine (attached, not ended), so a slow state makes
 * {@link StateMachine.attach} wait instead of letting a queue grow without bound.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';
import { WaitList } from '../../core/waitList.js';
import type { Fabric } from '../../fabric/fabric.js';
import type { Link } from '../../fabric/link.js';
import {
  ERROR_STATE,
  normalizeMachine,
  type MachineDefinition,
  type NormalMachine,
  type NormalState,
} from './definition.js';
import type { StateThreadData } from './stateThread.js';

/** Options of a {@link StateMachine}. */
export interface MachineOptions {
  /** Prefix of the state points' names (`<name>.<state>.<k>`). Default `sm<n>`, unique in the process. */
  name?: string;
  /** Where relative state locations are resolved. Default `process.cwd()`. */
  baseDir?: string;
  /** Datums in the machine at once (attached, not ended); `attach` waits beyond it. Default 256. */
  maxInFlight?: number;
}

/** How a datum ended. */
export interface DatumResult {
  /** The datum's number, from 1 in attach order. */
  id: number;
  /** The end state it reached, or `Error`. */
  state: string;
  /** The datum as the last state thread handed it on. */
  datum: unknown;
  /** Every state it entered, the start first and `state` last. */
  path: string[];
  /** Why it reached `Error`: the exit value without a transition, what the state threw, a thread that died. */
  error?: string;
}

/** An attached datum: its number, and its end. */
export interface DatumRun {
  readonly id: number;
  /** Resolves when the datum reaches an end state or `Error` (never rejects). */
  readonly done: Promise<DatumResult>;
}

/** One transition, emitted as `transition`. */
export interface TransitionEvent {
  id: number;
  from: string;
  to: string;
  /** The exit value that picked it (absent when a failure sent the datum to `Error`). */
  exit?: string;
}

/** What {@link StateMachine.stats} reports. */
export interface MachineStats {
  attached: number;
  inFlight: number;
  /** The most datums that were ever in the machine at once. */
  peakInFlight: number;
  /** Callers of `attach` waiting for room. */
  waiting: number;
  /** Datums ended, by end state (and `Error`). */
  ended: Record<string, number>;
  /** Per state: datums running on its threads, queued for a thread, and entered in all. */
  states: Record<string, { threads: number; running: number; queued: number; entered: number }>;
}

const STATE_THREAD = fileURLToPath(new URL('./stateThread.js', import.meta.url));
const enc = new TextEncoder();
const dec = new TextDecoder();
let machines = 0;

interface Datum {
  id: number;
  datum: unknown;
  path: string[];
  resolve: (r: DatumResult) => void;
}

interface Thread {
  link: Link;
  busy: Datum | undefined;
}

interface StateRun {
  def: NormalState;
  threads: Thread[];
  queue: Datum[];
  running: number;
  entered: number;
}

/**
 * A threaded state machine on a {@link Fabric}.
 *
 * @example
 * const sm = new StateMachine(fabric, { states: {
 *   check: { start: true, location: './check.js', transitions: { ok: 'done', bad: 'rejected' } },
 *   done: { end: true }, rejected: { end: true } } });
 * await sm.start();
 * const run = await sm.attach({ n: 7 });
 * const { state, path } = await run.done;   // 'done', ['check', 'done']
 * await sm.close();
 */
export class StateMachine extends EventEmitter {
  readonly name: string;
  readonly #fabric: Fabric;
  readonly #machine: NormalMachine;
  readonly #maxInFlight: number;
  readonly #states = new Map<string, StateRun>();
  readonly #room = new WaitList<void, void>();
  readonly #pending = new Set<Datum>();
  readonly #ended: Record<string, number> = {};
  readonly #points: string[] = [];
  #seq = 0;
  #inFlight = 0;
  #peak = 0;
  #started = false;
  #closed = false;

  /** Check the definition (`AMIX_ERR_INVALID_ARG`, see `normalizeMachine`); {@link start} starts the threads. */
  constructor(fabric: Fabric, definition: MachineDefinition, options: MachineOptions = {}) {
    super();
    this.#fabric = fabric;
    this.#machine = normalizeMachine(definition, options.baseDir ?? process.cwd());
    this.name = options.name ?? `sm${++machines}`;
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(this.name))
      throw invalidArg('options.name', 'must be a letter, then letters, digits, _ or -', this.name);
    const max = options.maxInFlight ?? 256;
    if (!Number.isSafeInteger(max) || max < 1)
      throw invalidArg('options.maxInFlight', 'must be a positive integer', max);
    this.#maxInFlight = max;
  }

  /** Register each state's thread points and link the manager to each. Rejects (and undoes what it did) if one fails. */
  async start(): Promise<void> {
    if (this.#started)
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `state machine ${this.name} is already started`);
    this.#started = true;
    try {
      for (const def of this.#machine.states.values()) {
        const run: StateRun = { def, threads: [], queue: [], running: 0, entered: 0 };
        this.#states.set(def.name, run);
        if (def.module === undefined) continue;
        const data: StateThreadData = {
          state: def.name,
          module: def.module,
          ...(def.export ? { export: def.export } : {}),
        };
        const names = Array.from({ length: def.concurrency }, (_, k) => `${this.name}.${def.name}.${k}`);
        for (const point of names) {
          this.#fabric.register({ name: point, location: STATE_THREAD, characteristics: { scope: 'thread' }, data });
          this.#points.push(point);
        }
        const links = await Promise.all(names.map((p) => this.#fabric.connect(null, p, { direction: 'both' })));
        for (const link of links) {
          const th: Thread = { link, busy: undefined };
          run.threads.push(th);
          void this.#read(run, th);
        }
      }
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /**
   * Attach a datum (JSON: what `JSON.stringify` keeps) at the start state.
   * Resolves once the machine has room for it (at most `maxInFlight` in the
   * machine), with its number and its end. `AMIX_ERR_INVALID_ARG` for a
   * datum that is not JSON; `AMIX_ERR_ABORTED` if `signal` aborts the wait;
   * `AMIX_ERR_CLOSED` once the machine is closed.
   */
  async attach(datum: unknown, options: { signal?: AbortSignal } = {}): Promise<DatumRun> {
    this.#assertRunning();
    let json: string | undefined;
    try {
      json = JSON.stringify(datum);
    } catch (err) {
      throw invalidArg('datum', `must be JSON (${(err as Error).message})`);
    }
    if (json === undefined) throw invalidArg('datum', 'must be JSON (undefined, a function or a symbol is not)');
    while (this.#inFlight >= this.#maxInFlight) {
      await this.#room.wait(undefined, { signal: options.signal, what: 'attach' });
      this.#assertRunning();
    }
    this.#inFlight++;
    if (this.#inFlight > this.#peak) this.#peak = this.#inFlight;
    let resolve!: (r: DatumResult) => void;
    const done = new Promise<DatumResult>((r) => (resolve = r));
    // The datum as JSON decodes it: what a state thread will see.
    const d: Datum = { id: ++this.#seq, datum: JSON.parse(json), path: [], resolve };
    this.#pending.add(d);
    this.#enter(d, this.#machine.start.name);
    return { id: d.id, done };
  }

  /** Counters for monitoring and tests. */
  stats(): MachineStats {
    const states: MachineStats['states'] = {};
    for (const [name, r] of this.#states)
      states[name] = { threads: r.threads.length, running: r.running, queued: r.queue.length, entered: r.entered };
    return {
      attached: this.#seq,
      inFlight: this.#inFlight,
      peakInFlight: this.#peak,
      waiting: this.#room.length,
      ended: { ...this.#ended },
      states,
    };
  }

  /** End every datum still in the machine in `Error` ("machine closed"), close the links and destroy the state points. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#room.rejectAll(new AmixError(ErrorCode.AMIX_ERR_CLOSED, `state machine ${this.name} is closed`));
    for (const d of [...this.#pending]) this.#finish(d, ERROR_STATE, 'state machine closed', true);
    for (const r of this.#states.values()) for (const th of r.threads) await th.link.close().catch(() => {});
    for (const p of this.#points) await this.#fabric.destroyPoint(p).catch(() => {});
  }

  #assertRunning(): void {
    if (this.#closed) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, `state machine ${this.name} is closed`);
    if (!this.#started) throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, `state machine ${this.name} is not started`);
  }

  /** The datum enters `state`: ends there, or waits for one of the state's threads. */
  #enter(d: Datum, state: string, error?: string): void {
    d.path.push(state);
    if (state === ERROR_STATE) return this.#finish(d, ERROR_STATE, error);
    const r = this.#states.get(state)!;
    r.entered++;
    if (r.def.module === undefined) return this.#finish(d, state);
    const idle = r.threads.find((th) => th.busy === undefined);
    if (idle) this.#run(r, idle, d);
    else if (r.threads.length === 0) this.#finish(d, ERROR_STATE, `state ${state} has no thread left`, true);
    else r.queue.push(d);
  }

  #run(r: StateRun, th: Thread, d: Datum): void {
    th.busy = d;
    r.running++;
    th.link.send(enc.encode(JSON.stringify({ i: d.id, d: d.datum }))).catch((err: Error) => {
      // The thread did not get it: the datum fails, the thread is freed for the next (if its link lives).
      if (th.busy !== d) return;
      this.#release(r, th);
      this.#finish(d, ERROR_STATE, `state ${r.def.name}: ${err.message}`, true);
    });
  }

  /** The thread is free: give it the next datum queued for its state. */
  #release(r: StateRun, th: Thread): void {
    th.busy = undefined;
    r.running--;
    const next = r.queue.shift();
    if (next) this.#run(r, th, next);
  }

  /** Answers from one state thread, until its link ends. */
  async #read(r: StateRun, th: Thread): Promise<void> {
    try {
      for await (const m of th.link) {
        const d = th.busy;
        let reply: { i: number; x?: string; d?: unknown; e?: string };
        try {
          reply = JSON.parse(dec.decode(m.data)) as typeof reply;
        } catch {
          continue; // not an answer (a RECONNECT's empty message): nothing is waiting on it
        }
        if (!d || reply.i !== d.id) continue;
        this.#release(r, th);
        if (reply.e !== undefined) {
          this.#transition(d, r.def.name, ERROR_STATE, undefined);
          this.#enter(d, ERROR_STATE, reply.e);
          continue;
        }
        d.datum = reply.d;
        if (r.def.end) {
          this.#finish(d, r.def.name);
          continue;
        }
        const to = r.def.transitions.get(reply.x!);
        this.#transition(d, r.def.name, to ?? ERROR_STATE, reply.x);
        this.#enter(
          d,
          to ?? ERROR_STATE,
          to ? undefined : `state ${r.def.name} exit value "${reply.x}" has no transition`,
        );
      }
    } catch {
      // The link was torn down: handled below.
    }
    // The thread is gone (closed, or its worker died): its datum fails, the state runs on with the others.
    r.threads.splice(r.threads.indexOf(th), 1);
    const d = th.busy;
    if (d) {
      r.running--;
      th.busy = undefined;
      if (!this.#closed) this.#finish(d, ERROR_STATE, `state ${r.def.name}: its thread ended`, true);
    }
    if (r.threads.length === 0 && !this.#closed)
      for (const q of r.queue.splice(0)) this.#finish(q, ERROR_STATE, `state ${r.def.name} has no thread left`, true);
  }

  #transition(d: Datum, from: string, to: string, exit: string | undefined): void {
    const e: TransitionEvent = { id: d.id, from, to, ...(exit !== undefined ? { exit } : {}) };
    this.emit('transition', e);
  }

  #finish(d: Datum, state: string, error?: string, enterError = false): void {
    if (!this.#pending.delete(d)) return;
    if (enterError) d.path.push(ERROR_STATE);
    const result: DatumResult = { id: d.id, state, datum: d.datum, path: d.path, ...(error ? { error } : {}) };
    this.#ended[state] = (this.#ended[state] ?? 0) + 1;
    this.#inFlight--;
    this.#room.shift()?.resolve();
    this.emit('end', result);
    d.resolve(result);
  }
}
