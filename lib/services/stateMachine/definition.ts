/**
 * The definition of a threaded state machine (seed 002 ¶640-642): its
 * states, exactly one of them the start, any number of them ends, and the
 * transitions each state's exit value picks. This file holds the types and
 * the one validation every definition goes through.
 *
 * @module
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { invalidArg } from '../../core/errors.js';

/** The special state a datum goes to when its state's exit value has no transition (¶642), or its state thread failed. */
export const ERROR_STATE = 'Error';

/** What an application says of one state. */
export interface StateDefinition {
  /** The state where every attached datum begins. Exactly one state has it. */
  start?: boolean;
  /** A datum that reaches this state has ended there (no transitions). */
  end?: boolean;
  /**
   * The module of the state's thread: a path (absolute, or relative to
   * {@link MachineOptions.baseDir}), a `file:` URL or a package specifier.
   * Its default export (or {@link StateDefinition.export}) is a
   * {@link StateFunction}. Required for a state that is not an end; an end
   * state with one runs it as the datum's last step (its exit value is not used).
   */
  location?: string;
  /** The named export to run instead of the default. */
  export?: string;
  /** Exit value (as a string: `true`, `3` and `'3'` are the same key) → the next state. */
  transitions?: Record<string, string>;
  /** Datums this state runs at once, each on a thread of its own. Default 2, at most 64. */
  concurrency?: number;
}

/** A state machine: its states by name. */
export interface MachineDefinition {
  states: Record<string, StateDefinition>;
}

/**
 * A state's thread function, run once per datum entering the state, in a
 * worker thread: it returns the exit value that picks the next transition,
 * or `{ exit, datum }` to hand the next state a changed datum. The datum is
 * JSON (what `JSON.stringify` keeps): it crosses threads in a
 * machine-independent form.
 */
export type StateFunction = (
  datum: unknown,
  context: { state: string; id: number; signal: AbortSignal },
) => unknown | Promise<unknown>;

/** A validated state, every default filled in. */
export interface NormalState {
  readonly name: string;
  readonly start: boolean;
  readonly end: boolean;
  /** The module's URL (resolved), or undefined for an end state without one. */
  readonly module: string | undefined;
  readonly export: string | undefined;
  readonly transitions: ReadonlyMap<string, string>;
  readonly concurrency: number;
}

/** A validated machine. */
export interface NormalMachine {
  readonly states: ReadonlyMap<string, NormalState>;
  readonly start: NormalState;
}

const STATE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** At most this many threads per state. */
export const MAX_STATE_CONCURRENCY = 64;

function moduleUrl(location: string, baseDir: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(location)) return location; // file:, data:, node: ...
  if (isAbsolute(location)) return pathToFileURL(location).href;
  if (location.startsWith('.')) return pathToFileURL(resolve(baseDir, location)).href;
  return location; // a package specifier, resolved by the worker's import()
}

/**
 * Check a definition and fill in its defaults. `AMIX_ERR_INVALID_ARG` names
 * the field: no states or a bad state name, the reserved `Error`, no start
 * state or more than one, a state without a module that is not an end, an
 * end with transitions, a transition to an undefined state, no end state, a
 * concurrency out of range.
 */
export function normalizeMachine(def: MachineDefinition, baseDir: string): NormalMachine {
  if (typeof def !== 'object' || def === null || typeof def.states !== 'object' || def.states === null)
    throw invalidArg('definition.states', 'must be an object of states by name', def);
  const names = Object.keys(def.states);
  if (names.length === 0) throw invalidArg('definition.states', 'must define at least one state');
  const states = new Map<string, NormalState>();
  for (const name of names) {
    const field = `definition.states.${name}`;
    if (!STATE_NAME.test(name)) throw invalidArg(field, 'must be named by a letter, then letters, digits, _ or -');
    if (name === ERROR_STATE) throw invalidArg(field, `"${ERROR_STATE}" is the machine's own error state (seed ¶642)`);
    const s = def.states[name];
    if (typeof s !== 'object' || s === null) throw invalidArg(field, 'must be an object', s);
    const end = s.end === true;
    if (s.location !== undefined && (typeof s.location !== 'string' || s.location === ''))
      throw invalidArg(`${field}.location`, 'must be a non-empty string', s.location);
    if (!end && s.location === undefined)
      throw invalidArg(`${field}.location`, 'is required for a state that is not an end');
    if (s.export !== undefined && (typeof s.export !== 'string' || s.export === ''))
      throw invalidArg(`${field}.export`, 'must be a non-empty string', s.export);
    const concurrency = s.concurrency ?? 2;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > MAX_STATE_CONCURRENCY)
      throw invalidArg(`${field}.concurrency`, `must be an integer from 1 to ${MAX_STATE_CONCURRENCY}`, concurrency);
    const transitions = new Map<string, string>();
    if (s.transitions !== undefined) {
      if (typeof s.transitions !== 'object' || s.transitions === null)
        throw invalidArg(`${field}.transitions`, 'must be an object of exit value → state', s.transitions);
      if (end && Object.keys(s.transitions).length > 0)
        throw invalidArg(`${field}.transitions`, 'an end state has no transitions');
      for (const [exit, to] of Object.entries(s.transitions)) {
        if (typeof to !== 'string' || (to !== ERROR_STATE && !(to in def.states)))
          throw invalidArg(`${field}.transitions.${exit}`, 'must name a defined state (or Error)', to);
        transitions.set(exit, to);
      }
    }
    states.set(name, {
      name,
      start: s.start === true,
      end,
      module: s.location === undefined ? undefined : moduleUrl(s.location, baseDir),
      export: s.export,
      transitions,
      concurrency,
    });
  }
  const starts = [...states.values()].filter((s) => s.start);
  if (starts.length !== 1)
    throw invalidArg(
      'definition.states',
      starts.length === 0
        ? 'must have exactly one start state (none is marked start: true)'
        : `must have exactly one start state (${starts.map((s) => s.name).join(', ')} are all marked start)`,
    );
  if (![...states.values()].some((s) => s.end))
    throw invalidArg('definition.states', 'must have at least one end state');
  return { states, start: starts[0]! };
}
