/**
 * Point registrations (seed 002, "Registering Communication Points"): the
 * name, the module that implements the point, its role, its default send
 * and receive primitives, and its characteristics. Everything is validated
 * here, at the public edge, with messages naming the field and the rule.
 *
 * @module
 */
import { AmixError, ErrorCode, describe, invalidArg } from '../core/errors.js';
import { DiscardPolicy, IdleStrategy } from '../core/primitive.js';
import { PointRole } from '../core/pointRole.js';
import type { PointView } from '../directory/index.js';

export { PointRole };

/** Where a point runs: a worker thread of the fabric's process, or a process of its own. */
export const PointScope = { thread: 'thread', process: 'process' } as const;
/** One of {@link PointScope}. */
export type PointScope = (typeof PointScope)[keyof typeof PointScope];

/** How a point is ended. */
export const TerminationMethod = {
  /** Abort the point's signal and wait for its main to return (no escalation). */
  message: 'message',
  /** Stop the thread (`worker.terminate()`) or send SIGTERM to the process (SIGKILL after `graceMs`). */
  signal: 'signal',
  /** Message first; if the point has not ended after `graceMs`, signal. */
  messageThenSignal: 'messageThenSignal',
} as const;
/** One of {@link TerminationMethod}. */
export type TerminationMethod = (typeof TerminationMethod)[keyof typeof TerminationMethod];

/** Characteristics of a point (seed 002's list plus public/private and maxConnections). */
export interface PointCharacteristics {
  /** Thread or process. Default `thread`. */
  scope: PointScope;
  /** Stack size for its thread in MiB (`resourceLimits.stackSizeMb`); for a process, `--stack-size` in KiB derived from it. Default 4. */
  stackMb: number;
  /** Stay idle (loaded, main not started) until something connects. Default false. */
  idle: boolean;
  /** Pending messages at which its senders are suspended. Default 4096 (lower costs the process primitive a credit round trip more often). */
  maxmsg: number;
  /** Pending messages at which its senders are resumed. Default maxmsg / 2. */
  minmsg: number;
  /** Restart the point (and re-establish its links) when it dies. Default false. */
  restart: boolean;
  /** How it is ended. Default `messageThenSignal`. */
  termination: TerminationMethod;
  /** Grace period before a signal escalates (and before SIGTERM becomes SIGKILL). Default 2000 ms. */
  graceMs: number;
  /** What its senders do at maxmsg. Default `block`. */
  discard: DiscardPolicy;
  /** How its receiving ends wait. Default `spinThenBlock`. */
  waitStrategy: IdleStrategy;
  /** `public`: one instance shared by all clients; `private`: one instance per client. Default `public`. */
  instancing: 'public' | 'private';
  /** Clients (public) or instances (private) allowed at once. Default unlimited (0). */
  maxConnections: number;
  /** End the instance when its last link goes away. Default false (private instances always end with their client). */
  endWhenUnused: boolean;
  /** Largest message on its links. Default: the primitive's maximum. */
  maxMessageBytes?: number;
}

/** What a caller passes to register a point. Only `name` and `location` are required. */
export interface PointRegistrationInput {
  /** Unique name; letters, digits, `.`, `_`, `-`. */
  name: string;
  /** The module implementing the point: path (absolute or relative to the fabric's baseDir), file URL or package specifier. Its default export is `main(point)`. */
  location: string;
  /** Default `both`. */
  role?: PointRole;
  /** Primitive its sending ends use. Default by scope: thread → queueConditionThread, process → queueConditionProcess. */
  sendPrimitive?: string;
  /** Primitive its receiving ends use. Default: the same rule as sendPrimitive. */
  receivePrimitive?: string;
  /** Characteristics; each defaults as documented on {@link PointCharacteristics}. */
  characteristics?: Partial<PointCharacteristics>;
  /** Free-form data passed to the point's main as `point.data` (structured-cloneable). */
  data?: unknown;
}

/** A validated registration with every default filled in. */
export interface PointRegistration {
  readonly name: string;
  readonly location: string;
  readonly role: PointRole;
  readonly sendPrimitive: string;
  readonly receivePrimitive: string;
  readonly characteristics: Readonly<PointCharacteristics>;
  readonly data?: unknown;
}

const NAME_RE = /^[A-Za-z][A-Za-z0-9._-]{0,127}$/;

/** The primitive a point uses by default in a scope. */
export const DEFAULT_PRIMITIVE: Readonly<Record<PointScope, string>> = Object.freeze({
  thread: 'queueConditionThread',
  process: 'queueConditionProcess',
});

function fail(field: string, rule: string, got: unknown): AmixError {
  return invalidArg(`point.${field}`, rule, got);
}

function oneOf<T extends string>(field: string, v: unknown, set: Record<string, T>, dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !Object.values(set).includes(v as T))
    throw fail(field, `must be one of ${Object.values(set).join(', ')}`, v);
  return v as T;
}

/** A point's `maxmsg` when its registration gives none. */
export const DEFAULT_MAXMSG = 4096;

function int(field: string, v: unknown, min: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || (v as number) < min) throw fail(field, `must be an integer >= ${min}`, v);
  return v as number;
}

function bool(field: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw fail(field, 'must be a boolean', v);
  return v;
}

/**
 * Validate a registration and fill in defaults. Throws `AMIX_ERR_INVALID_ARG`
 * naming the field (e.g. `point.characteristics.maxmsg must be an integer >= 1`).
 */
export function normalizePoint(input: PointRegistrationInput): PointRegistration {
  if (input === null || typeof input !== 'object') throw fail('', 'registration must be an object', input);
  if (typeof input.name !== 'string' || !NAME_RE.test(input.name))
    throw fail('name', `must match ${NAME_RE}`, input.name);
  if (typeof input.location !== 'string' || input.location.length === 0)
    throw fail('location', 'must be a non-empty string', input.location);
  const role = oneOf('role', input.role, PointRole, 'both');
  const c = input.characteristics ?? {};
  if (c === null || typeof c !== 'object') throw fail('characteristics', 'must be an object', c);
  const known = new Set([
    'scope',
    'stackMb',
    'idle',
    'maxmsg',
    'minmsg',
    'restart',
    'termination',
    'graceMs',
    'discard',
    'waitStrategy',
    'instancing',
    'maxConnections',
    'endWhenUnused',
    'maxMessageBytes',
  ]);
  for (const k of Object.keys(c))
    if (!known.has(k))
      throw fail(
        `characteristics.${k}`,
        `is not a known characteristic; known: ${[...known].join(', ')}`,
        (c as Record<string, unknown>)[k],
      );
  const scope = oneOf('characteristics.scope', c.scope, PointScope, 'thread');
  const maxmsg = int('characteristics.maxmsg', c.maxmsg, 1, DEFAULT_MAXMSG);
  const minmsg = int('characteristics.minmsg', c.minmsg, 0, Math.floor(maxmsg / 2));
  if (minmsg >= maxmsg)
    throw fail('characteristics.minmsg', `must be below characteristics.maxmsg (${maxmsg})`, minmsg);
  const stackMb = c.stackMb === undefined ? 4 : c.stackMb;
  if (typeof stackMb !== 'number' || !(stackMb > 0) || stackMb > 1024)
    throw fail('characteristics.stackMb', 'must be a number of MiB above 0 and at most 1024', stackMb);
  const instancing = c.instancing === undefined ? 'public' : c.instancing;
  if (instancing !== 'public' && instancing !== 'private')
    throw fail('characteristics.instancing', 'must be "public" or "private"', instancing);
  const characteristics: PointCharacteristics = {
    scope,
    stackMb,
    idle: bool('characteristics.idle', c.idle, false),
    maxmsg,
    minmsg,
    restart: bool('characteristics.restart', c.restart, false),
    termination: oneOf('characteristics.termination', c.termination, TerminationMethod, 'messageThenSignal'),
    graceMs: int('characteristics.graceMs', c.graceMs, 0, 2000),
    discard: oneOf('characteristics.discard', c.discard, DiscardPolicy, 'block'),
    waitStrategy: oneOf('characteristics.waitStrategy', c.waitStrategy, IdleStrategy, 'spinThenBlock'),
    instancing,
    maxConnections: int('characteristics.maxConnections', c.maxConnections, 0, 0),
    endWhenUnused: bool('characteristics.endWhenUnused', c.endWhenUnused, false),
    ...(c.maxMessageBytes === undefined
      ? {}
      : { maxMessageBytes: int('characteristics.maxMessageBytes', c.maxMessageBytes, 1, 0) }),
  };
  const prim = (field: string, v: unknown) => {
    if (v === undefined) return DEFAULT_PRIMITIVE[scope];
    if (typeof v !== 'string' || !NAME_RE.test(v)) throw fail(field, 'must be a primitive name', v);
    return v;
  };
  return Object.freeze({
    name: input.name,
    location: input.location,
    role,
    sendPrimitive: prim('sendPrimitive', input.sendPrimitive),
    receivePrimitive: prim('receivePrimitive', input.receivePrimitive),
    characteristics: Object.freeze(characteristics),
    ...(input.data === undefined ? {} : { data: input.data }),
  });
}

/** Connect directions by name, with the seed's numbers (seed 002, paragraphs 250-257). */
export const Direction = {
  /** 1: steps 1-6, data flows both ways. */
  both: 'both',
  /** 2: steps 3-6 (1 and 2 skipped), data flows B → A only. */
  bToA: 'bToA',
  /** 3: steps 1, 2, 5, 6 (3 and 4 skipped), data flows A → B only. */
  aToB: 'aToB',
  /** 4: steps 5 and 6 only: linked and started, no data flows yet. */
  none: 'none',
} as const;
/** One of {@link Direction}. */
export type Direction = (typeof Direction)[keyof typeof Direction];

/** The seed's step numbers done for each direction. */
export const DIRECTION_STEPS: Readonly<Record<Direction, readonly number[]>> = Object.freeze({
  both: [1, 2, 3, 4, 5, 6],
  bToA: [3, 4, 5, 6],
  aToB: [1, 2, 5, 6],
  none: [5, 6],
});

const BY_NUMBER: Record<number, Direction> = { 1: 'both', 2: 'bToA', 3: 'aToB', 4: 'none' };

/** Accept a direction by name or by the seed's number (1-4); `AMIX_ERR_BAD_DIRECTION` otherwise. */
export function parseDirection(d: unknown): Direction {
  if (d === undefined) return 'both';
  if (typeof d === 'number' && BY_NUMBER[d]) return BY_NUMBER[d]!;
  if (typeof d === 'string' && (Object.values(Direction) as string[]).includes(d)) return d as Direction;
  if (typeof d === 'string' && /^[1-4]$/.test(d)) return BY_NUMBER[Number(d)]!;
  throw new AmixError(
    ErrorCode.AMIX_ERR_BAD_DIRECTION,
    `direction must be one of both (1), bToA (2), aToB (3), none (4) (got ${describe(d)})`,
    { details: { direction: String(d) } },
  );
}

/** The directory record of a point (what amixd stores and peers are told): its whole registration. */
export function registrationRecord(
  p: PointRegistration,
): Record<string, unknown> & { role: PointRegistration['role'] } {
  return {
    role: p.role,
    location: p.location,
    primitives: { send: p.sendPrimitive, receive: p.receivePrimitive },
    characteristics: { ...p.characteristics },
    ...(p.data !== undefined ? { data: p.data } : {}),
  };
}

/** The registration input back from a directory view (a record made by {@link registrationRecord}). */
export function registrationInput(v: PointView): PointRegistrationInput {
  const r = v.record as {
    role: PointRegistration['role'];
    location: string;
    primitives?: { send?: string; receive?: string };
    characteristics?: Record<string, unknown>;
    data?: unknown;
  };
  return {
    name: v.name,
    location: r.location,
    role: r.role,
    ...(r.primitives?.send ? { sendPrimitive: r.primitives.send } : {}),
    ...(r.primitives?.receive ? { receivePrimitive: r.primitives.receive } : {}),
    ...(r.characteristics ? { characteristics: r.characteristics } : {}),
    ...(r.data !== undefined ? { data: r.data } : {}),
  };
}
