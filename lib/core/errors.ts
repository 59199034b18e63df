/**
 * Every error amix raises is an {@link AmixError} with a stable `code` from
 * {@link ErrorCode}. Tests and callers match on `code`, never on the message.
 * The list is documented in `docs/errors.md`; keep the two in step.
 *
 * @module
 */

/**
 * The stable error codes, each with the one-line meaning shown in the docs.
 * A const object plus a same-named union type (not an `enum`) so the set is
 * erasable syntax and iterable at run time.
 */
export const ErrorCode = {
  /** An option or argument broke its rule; the message names the option and the rule. */
  AMIX_ERR_INVALID_ARG: 'AMIX_ERR_INVALID_ARG',
  /** A module-model handler was requested in a state the state table does not allow. */
  AMIX_ERR_BAD_TRANSITION: 'AMIX_ERR_BAD_TRANSITION',
  /** A module handler (load, start, quiesce, unload) threw; `cause` carries its error. */
  AMIX_ERR_HANDLER_FAILED: 'AMIX_ERR_HANDLER_FAILED',
  /** Quiesce waited longer than its timeout for in-flight work to drain. */
  AMIX_ERR_QUIESCE_TIMEOUT: 'AMIX_ERR_QUIESCE_TIMEOUT',
  /** A module that is quiescing or not started refused new work. */
  AMIX_ERR_NOT_ACCEPTING: 'AMIX_ERR_NOT_ACCEPTING',
  /** A primitive registration or a primitive module is malformed (missing operation, wrong type, unknown scope). */
  AMIX_ERR_BAD_PRIMITIVE: 'AMIX_ERR_BAD_PRIMITIVE',
  /** A name (primitive, point, broker) is already registered. */
  AMIX_ERR_DUPLICATE: 'AMIX_ERR_DUPLICATE',
  /** No primitive is registered under that name. */
  AMIX_ERR_UNKNOWN_PRIMITIVE: 'AMIX_ERR_UNKNOWN_PRIMITIVE',
  /** A primitive module could not be imported from its location. */
  AMIX_ERR_PRIMITIVE_LOAD: 'AMIX_ERR_PRIMITIVE_LOAD',
  /** No point is registered under that name or identifier. */
  AMIX_ERR_UNKNOWN_POINT: 'AMIX_ERR_UNKNOWN_POINT',
  /** No link matches the request. */
  AMIX_ERR_UNKNOWN_LINK: 'AMIX_ERR_UNKNOWN_LINK',
  /** The object (registry, channel, fabric, point) was closed; the message says why. */
  AMIX_ERR_CLOSED: 'AMIX_ERR_CLOSED',
  /** The link or channel was closed while the operation was pending. */
  AMIX_ERR_LINK_CLOSED: 'AMIX_ERR_LINK_CLOSED',
  /** The receiver's queue is at its high-water mark and the discard policy is `reject`. */
  AMIX_ERR_QUEUE_FULL: 'AMIX_ERR_QUEUE_FULL',
  /** A message is larger than the channel or primitive accepts. */
  AMIX_ERR_MESSAGE_TOO_LARGE: 'AMIX_ERR_MESSAGE_TOO_LARGE',
  /** The next message is larger than the `maxBytes` the receiver accepts; the message stays queued. */
  AMIX_ERR_BUFFER_TOO_SMALL: 'AMIX_ERR_BUFFER_TOO_SMALL',
  /** A stream frame announced a length above the hard maximum; that connection is closed. */
  AMIX_ERR_FRAME_TOO_LARGE: 'AMIX_ERR_FRAME_TOO_LARGE',
  /** A frame or envelope could not be decoded. */
  AMIX_ERR_BAD_FRAME: 'AMIX_ERR_BAD_FRAME',
  /** The other end of a channel went away (process died, socket reset). */
  AMIX_ERR_PEER_LOST: 'AMIX_ERR_PEER_LOST',
  /** The operation was aborted through its AbortSignal; `cause` is the signal's reason. */
  AMIX_ERR_ABORTED: 'AMIX_ERR_ABORTED',
  /** The operation did not finish in time. */
  AMIX_ERR_TIMEOUT: 'AMIX_ERR_TIMEOUT',
  /** Two ends of a flow use different primitives and no broker converts between them. */
  AMIX_ERR_PRIMITIVE_MISMATCH: 'AMIX_ERR_PRIMITIVE_MISMATCH',
  /** A point is at its `maxConnections`; retry after a client leaves. */
  AMIX_ERR_MAX_CONNECTIONS: 'AMIX_ERR_MAX_CONNECTIONS',
  /** A connect named a direction that is not one of both, aToB, bToA, none (or 1-4). */
  AMIX_ERR_BAD_DIRECTION: 'AMIX_ERR_BAD_DIRECTION',
  /** Only a point's owner or the administrator may delete or change it. */
  AMIX_ERR_NOT_OWNER: 'AMIX_ERR_NOT_OWNER',
  /** A directory query did not parse; the message gives the column. */
  AMIX_ERR_QUERY_SYNTAX: 'AMIX_ERR_QUERY_SYNTAX',
  /** A control-protocol message was malformed, oversized or of an unknown kind. */
  AMIX_ERR_PROTOCOL: 'AMIX_ERR_PROTOCOL',
  /** The daemon could not be reached on its control socket. */
  AMIX_ERR_DAEMON_UNAVAILABLE: 'AMIX_ERR_DAEMON_UNAVAILABLE',
  /** A peer or client failed authentication (CURVE key, credentials, permissions). */
  AMIX_ERR_UNAUTHORIZED: 'AMIX_ERR_UNAUTHORIZED',
  /** A point's thread or process died; `details` says how (exit code, signal). */
  AMIX_ERR_POINT_DIED: 'AMIX_ERR_POINT_DIED',
  /** A state directory or file is not owned by this uid, is open to group or other, or is a symlink: refused, never repaired. */
  AMIX_ERR_UNSAFE_DIR: 'AMIX_ERR_UNSAFE_DIR',
  /** A client stopped reading: its unsent replies and events passed the cap, and it was cut off. */
  AMIX_ERR_SLOW_CONSUMER: 'AMIX_ERR_SLOW_CONSUMER',
  /** A peer daemon was refused: its key is not allowed, or the id it claims is not bound to its key. */
  AMIX_ERR_PEER_REFUSED: 'AMIX_ERR_PEER_REFUSED',
  /** No registered environment satisfies a named execution environment's required attributes, or no environment has that logical name. */
  AMIX_ERR_NO_ENVIRONMENT: 'AMIX_ERR_NO_ENVIRONMENT',
  /** An internal invariant broke. Please report it. */
  AMIX_ERR_INTERNAL: 'AMIX_ERR_INTERNAL',
} as const;

/** Union of every stable error code. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Options for {@link AmixError}. */
export interface AmixErrorOptions {
  /** The error that caused this one. */
  cause?: unknown;
  /** Plain, serialisable facts about the failure (names, sizes, states). */
  details?: Record<string, unknown>;
}

/**
 * The one error class of amix. `code` is stable across versions; `details`
 * carries plain facts a caller may branch on.
 *
 * @example
 * try { await channel.send(big) }
 * catch (err) { if (isAmixError(err, 'AMIX_ERR_MESSAGE_TOO_LARGE')) shrink() }
 */
export class AmixError extends Error {
  /** The stable code, one of {@link ErrorCode}. */
  readonly code: ErrorCode;
  /** Plain facts about the failure; may be empty. */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: AmixErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code === ErrorCode.AMIX_ERR_ABORTED ? 'AbortError' : 'AmixError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/**
 * True when `err` is an {@link AmixError}, and, if `code` is given, has that code.
 * Works across realms and for errors rebuilt by `errorFromPlain`.
 */
export function isAmixError(err: unknown, code?: ErrorCode): err is AmixError {
  if (err === null || typeof err !== 'object') return false;
  const c = (err as { code?: unknown }).code;
  if (typeof c !== 'string' || !knownCodes.has(c)) return false;
  return code === undefined || c === code;
}

/** The plain form of an error that survives postMessage, JSON and protobuf. */
export interface PlainError {
  code: string;
  message: string;
  name?: string;
  details?: Record<string, unknown>;
}

/**
 * Reduce any thrown value to plain fields for crossing a thread or process
 * boundary. Errors that are not AmixErrors become `AMIX_ERR_INTERNAL`.
 */
export function errorToPlain(err: unknown): PlainError {
  if (isAmixError(err)) {
    return { code: err.code, message: err.message, name: err.name, details: safeDetails(err.details) };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCode.AMIX_ERR_INTERNAL, message, name: err instanceof Error ? err.name : 'Error' };
}

/** Rebuild an {@link AmixError} from its plain form; an unknown code becomes `AMIX_ERR_INTERNAL`. */
export function errorFromPlain(plain: PlainError): AmixError {
  const code = knownCodes.has(plain.code) ? (plain.code as ErrorCode) : ErrorCode.AMIX_ERR_INTERNAL;
  return new AmixError(code, plain.message, { details: plain.details ?? {} });
}

/** An `AMIX_ERR_ABORTED` error (name `AbortError`) carrying the signal's reason as `cause`. */
export function abortError(signal: AbortSignal | undefined, what = 'operation'): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_ABORTED, `${what} was aborted`, { cause: signal?.reason });
}

/** Shorthand for an `AMIX_ERR_INVALID_ARG` naming the option and the rule it broke. */
export function invalidArg(name: string, rule: string, got?: unknown, cause?: unknown): AmixError {
  const shown = got === undefined ? '' : ` (got ${describe(got)})`;
  return new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${name} ${rule}${shown}`, {
    details: { option: name },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The documented shape of `details` for each code (docs/errors.md has the
 * same table). A key is present only where the failure has that fact; values
 * are plain so that they survive a thread or process boundary.
 */
export interface ErrorDetails {
  AMIX_ERR_INVALID_ARG: {
    option?: string;
    file?: string;
    line?: number;
    column?: number;
    endpoint?: string;
    domain?: string;
    length?: number;
    schemaVersion?: number;
    supported?: number;
  };
  AMIX_ERR_BAD_TRANSITION: { module: string; state: string; request: string };
  AMIX_ERR_HANDLER_FAILED: { module: string; request: string };
  AMIX_ERR_QUIESCE_TIMEOUT: { module: string; inFlight: number; timeoutMs: number };
  AMIX_ERR_NOT_ACCEPTING: { module: string; state: string };
  AMIX_ERR_BAD_PRIMITIVE: { field?: string; name?: string; scope?: string; operation?: string; got?: string };
  AMIX_ERR_DUPLICATE: { name?: string; index?: number; path?: string };
  AMIX_ERR_UNKNOWN_PRIMITIVE: { name: string };
  AMIX_ERR_PRIMITIVE_LOAD: { name: string; location: string };
  AMIX_ERR_UNKNOWN_POINT: { name?: string; instance?: string };
  AMIX_ERR_UNKNOWN_LINK: { link?: string; to?: string };
  AMIX_ERR_CLOSED: Record<string, never>;
  AMIX_ERR_LINK_CLOSED: { reason?: string };
  AMIX_ERR_QUEUE_FULL: { pending?: number; maxmsg?: number };
  AMIX_ERR_MESSAGE_TOO_LARGE: { size: number; max: number };
  AMIX_ERR_BUFFER_TOO_SMALL: { size: number; maxBytes: number };
  AMIX_ERR_FRAME_TOO_LARGE: { length: number; max: number; kind?: number; offset?: number };
  AMIX_ERR_BAD_FRAME: { length?: number; kind?: number; offset?: number; seq?: number; limit?: number };
  AMIX_ERR_PEER_LOST: {
    peer?: string;
    state?: string;
    endpoint?: string;
    session?: string;
    unacknowledged?: number;
    attempts?: number;
  };
  AMIX_ERR_ABORTED: Record<string, never>;
  AMIX_ERR_TIMEOUT: { op?: string; timeoutMs?: number; peer?: string; endpoint?: string };
  AMIX_ERR_PRIMITIVE_MISMATCH: {
    primitive?: string;
    from?: string;
    to?: string;
    sendPrimitive?: string;
    receivePrimitive?: string;
    end?: string;
  };
  AMIX_ERR_MAX_CONNECTIONS: { maxConnections?: number; point?: string; slots?: number; limit?: number };
  AMIX_ERR_BAD_DIRECTION: { direction?: string };
  AMIX_ERR_NOT_OWNER: { point?: string; owner?: string; link?: string; primitive?: string; op?: string };
  AMIX_ERR_QUERY_SYNTAX: { column: number; found?: string };
  AMIX_ERR_PROTOCOL: { version?: number; next?: number; limit?: number; length?: number; max?: number };
  AMIX_ERR_DAEMON_UNAVAILABLE: Record<string, never>;
  AMIX_ERR_UNAUTHORIZED: { path?: string; mode?: number; endpoint?: string; op?: string; principal?: string };
  AMIX_ERR_POINT_DIED: { exitCode?: number | null; signal?: string | null; threadId?: number; error?: string };
  AMIX_ERR_UNSAFE_DIR: { path: string; reason: string; mode?: number; uid?: number };
  AMIX_ERR_SLOW_CONSUMER: { unsent?: number; limit?: number };
  AMIX_ERR_PEER_REFUSED: { peer?: string; reason?: string; endpoint?: string; key?: string };
  AMIX_ERR_NO_ENVIRONMENT: { name?: string; require?: string };
  AMIX_ERR_INTERNAL: Record<string, never>;
}

/**
 * The one factory behind the named ones below: an {@link AmixError} whose
 * `details` are checked against {@link ErrorDetails} for its code.
 *
 * @example
 * throw amixError('AMIX_ERR_QUEUE_FULL', `${name} is full`, { pending, maxmsg })
 */
export function amixError<C extends ErrorCode>(
  code: C,
  message: string,
  details?: ErrorDetails[C],
  cause?: unknown,
): AmixError {
  return new AmixError(code, message, {
    ...(details === undefined ? {} : { details: details as Record<string, unknown> }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/** `AMIX_ERR_LINK_CLOSED`: `message` says what was closed; `reason`, if any, is the cause. */
export function linkClosedError(
  message: string,
  reason?: unknown,
  details?: ErrorDetails['AMIX_ERR_LINK_CLOSED'],
): AmixError {
  return amixError(ErrorCode.AMIX_ERR_LINK_CLOSED, message, details, reason);
}

/** `AMIX_ERR_PEER_LOST`: the other end went away. */
export function peerLostError(
  message: string,
  details?: ErrorDetails['AMIX_ERR_PEER_LOST'],
  cause?: unknown,
): AmixError {
  return amixError(ErrorCode.AMIX_ERR_PEER_LOST, message, details ?? {}, cause);
}

/** `AMIX_ERR_PROTOCOL`: a peer broke the protocol. */
export function protocolError(message: string, details?: ErrorDetails['AMIX_ERR_PROTOCOL']): AmixError {
  return amixError(ErrorCode.AMIX_ERR_PROTOCOL, message, details);
}

/** `AMIX_ERR_BAD_FRAME`: a frame or envelope that does not decode. */
export function badFrameError(message: string, details?: ErrorDetails['AMIX_ERR_BAD_FRAME']): AmixError {
  return amixError(ErrorCode.AMIX_ERR_BAD_FRAME, message, details ?? {});
}

/** `AMIX_ERR_BUFFER_TOO_SMALL`: the next message (`size` bytes) is larger than the caller's `maxBytes`. */
export function bufferTooSmallError(what: string, size: number, maxBytes: number): AmixError {
  return amixError(
    ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL,
    `${what}: next message is ${size} bytes, the caller accepts ${maxBytes}`,
    { size, maxBytes },
  );
}

/** `AMIX_ERR_TIMEOUT`: `op` did not finish within `timeoutMs`. */
export function timeoutError(message: string, details: ErrorDetails['AMIX_ERR_TIMEOUT']): AmixError {
  return amixError(ErrorCode.AMIX_ERR_TIMEOUT, message, details);
}

/**
 * `err` if it is an AmixError, else an AmixError of `code` (default
 * `AMIX_ERR_INTERNAL`) wrapping it, its message prefixed by `message: ` when
 * given. What a reply or a primitive hands on when foreign code threw.
 */
export function asAmixError(err: unknown, code: ErrorCode = ErrorCode.AMIX_ERR_INTERNAL, message?: string): AmixError {
  if (err instanceof AmixError) return err;
  const text = (err as Error)?.message ?? String(err);
  return new AmixError(code, message === undefined ? text : `${message}: ${text}`, { cause: err });
}

/** A short, safe description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function safeDetails(details: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(details)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
  }
  return out;
}
