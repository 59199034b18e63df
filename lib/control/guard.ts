/**
 * {@link ControlGuard}: the bounds amixd puts on its control socket, before
 * and after a client has said hello, and the counters an operator sees in
 * `daemon status` (`guard`).
 *
 * Before hello a connection costs the daemon little and for a short time: a
 * hello timeout, a cap on connections that have not said hello (the next one
 * is answered `AMIX_ERR_MAX_CONNECTIONS` and closed), and a small largest
 * frame (a longer announced length closes the connection before any of it
 * is buffered). After hello the connection answers requests only while the
 * client takes the replies, and is cut off with `AMIX_ERR_SLOW_CONSUMER`
 * once its unsent replies and events pass a cap. Protocol errors and these
 * refusals are logged through a rate limit; every one is counted.
 *
 * @module
 */
import type { Server, Socket } from 'node:net';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { ControlConnection, hangUp, type ControlConnectionOptions } from './connection.js';
import { MAX_CONTROL_FRAME } from './protocol.js';

/** The bounds of the control socket (`DaemonOptions.limits`). Each is optional; the defaults are below. */
export interface ControlLimits {
  /** A connection that has not completed hello this long after it was accepted is closed. Default 5000 ms. */
  helloTimeoutMs?: number;
  /** Connections that have not said hello, at most; beyond it a new one is refused. Default 64. */
  maxUnauthenticated?: number;
  /** The largest frame body taken before hello succeeds. Default 16 KiB (after hello: 1 MiB). */
  maxFrameBeforeHello?: number;
  /** Unsent replies and events above which a connection is cut off (`AMIX_ERR_SLOW_CONSUMER`). Default 8 MiB. */
  maxUnsentBytes?: number;
  /** Unsent bytes above which requests wait unanswered (and unread) until the client reads. Default min(1 MiB, maxUnsentBytes / 2). */
  highWaterBytes?: number;
  /** Log lines (protocol errors, refusals) per window, at most. Default 10. */
  logLines?: number;
  /** The log window. Default 10000 ms. */
  logWindowMs?: number;
}

/** The guard's counters, in `daemon status` as `guard`. All but `unauthenticated` only grow. */
export interface ControlGuardStats {
  /** Connections open now that have not completed hello. */
  unauthenticated: number;
  /** Connections refused because `maxUnauthenticated` were waiting for hello already. */
  refusedOverCap: number;
  /** Connections closed for saying no hello within `helloTimeoutMs`. */
  helloTimeouts: number;
  /** Connections closed for announcing a frame over `maxFrameBeforeHello` before hello (also in `protocolErrors`). */
  oversizedBeforeHello: number;
  /** Malformed or oversized frames, before or after hello. */
  protocolErrors: number;
  /** Connections cut off with `AMIX_ERR_SLOW_CONSUMER`. */
  slowConsumers: number;
  /** Log lines not written because of the rate limit. */
  logSuppressed: number;
}

/** The limit keys, for flags (`amixd --limit KEY=N`). */
export const CONTROL_LIMIT_KEYS: ReadonlyArray<keyof ControlLimits> = [
  'helloTimeoutMs',
  'maxUnauthenticated',
  'maxFrameBeforeHello',
  'maxUnsentBytes',
  'highWaterBytes',
  'logLines',
  'logWindowMs',
];

/** Unsent bytes before hello above which nothing more is answered until the client reads (the socket's own mark). */
const BEFORE_HELLO_HIGH_WATER = 16 * 1024;
/** Requests (and bad frames) waiting to be answered before hello, at most: a client says hello and waits. */
const BEFORE_HELLO_HELD = 16;

/** The limits with every default filled in, checked; `AMIX_ERR_INVALID_ARG` naming the bad one. */
export function resolveLimits(limits: ControlLimits = {}): Required<ControlLimits> {
  if (limits === null || typeof limits !== 'object') throw invalidArg('options.limits', 'must be an object', limits);
  for (const k of Object.keys(limits))
    if (!CONTROL_LIMIT_KEYS.includes(k as keyof ControlLimits))
      throw invalidArg(`options.limits.${k}`, `is not a limit (${CONTROL_LIMIT_KEYS.join(', ')})`);
  const int = (k: keyof ControlLimits, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = limits[k] ?? dflt;
    if (!Number.isSafeInteger(v) || v < min || v > max)
      throw invalidArg(`options.limits.${k}`, `must be an integer from ${min} to ${max}`, v);
    return v;
  };
  const maxUnsentBytes = int('maxUnsentBytes', 8 << 20, 64 * 1024);
  const highWaterBytes = int('highWaterBytes', Math.min(1 << 20, maxUnsentBytes / 2), 16 * 1024, maxUnsentBytes);
  return {
    helloTimeoutMs: int('helloTimeoutMs', 5000, 1, 2 ** 31 - 1),
    maxUnauthenticated: int('maxUnauthenticated', 64, 1),
    // Small enough that many waiting connections stay cheap; big enough for any hello.
    maxFrameBeforeHello: int('maxFrameBeforeHello', 16 * 1024, 1024, MAX_CONTROL_FRAME),
    maxUnsentBytes,
    highWaterBytes,
    logLines: int('logLines', 10, 1),
    logWindowMs: int('logWindowMs', 10_000, 1, 2 ** 31 - 1),
  };
}

/** Parse `KEY=N` flags into limits (checked as {@link resolveLimits} checks them). */
export function parseLimitFlags(flags: readonly string[] = []): ControlLimits {
  const out: Record<string, number> = {};
  for (const f of flags) {
    const eq = f.indexOf('=');
    const k = eq < 0 ? f : f.slice(0, eq);
    if (eq < 0 || f.slice(eq + 1).trim() === '') throw invalidArg('--limit', 'must be KEY=N', f);
    out[k] = Number(f.slice(eq + 1));
  }
  resolveLimits(out);
  return out;
}

/**
 * At most `lines` lines per `windowMs`; past that, lines are counted, and
 * one "N more suppressed" line is written when the window ends.
 */
export class RateLimitedLog {
  readonly #log: (line: string) => void;
  readonly #lines: number;
  readonly #windowMs: number;
  #windowStart = -Infinity;
  #inWindow = 0;
  #pending = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(log: (line: string) => void, lines: number, windowMs: number) {
    this.#log = log;
    this.#lines = lines;
    this.#windowMs = windowMs;
  }

  /** Lines not written so far, in all. */
  get suppressed(): number {
    return this.#suppressed;
  }

  /** Write `line`, or count it if this window has had its lines. */
  line(line: string): void {
    const now = Date.now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#flush();
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow < this.#lines) {
      this.#inWindow++;
      this.#log(line);
      return;
    }
    this.#pending++;
    this.#suppressed++;
    // Say how many were dropped when the window ends, even if nothing else is logged then.
    this.#timer ??= setTimeout(() => this.#flush(), this.#windowStart + this.#windowMs - now).unref();
  }

  /** Write the pending "suppressed" line now and stop the timer. */
  close(): void {
    this.#flush();
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending === 0) return;
    const n = this.#pending;
    this.#pending = 0;
    this.#log(`${n} more log line${n === 1 ? '' : 's'} suppressed (at most ${this.#lines} per ${this.#windowMs} ms)`);
  }
}

interface Waiting {
  timer: NodeJS.Timeout;
}

/**
 * One per listening control socket: takes each accepted socket
 * ({@link connection}), is told when it has said hello
 * ({@link authenticated}), and keeps the counters ({@link stats}).
 *
 * @example
 * const guard = new ControlGuard({ helloTimeoutMs: 2000 }, log)
 * server.on('connection', (s) => { const conn = guard.connection(s, {}, () => undefined); if (conn) ... })
 */
export class ControlGuard {
  /** The limits in force, defaults filled in. */
  readonly limits: Readonly<Required<ControlLimits>>;
  readonly #log: RateLimitedLog;
  /** Connections that have not said hello yet, each with its hello timer. */
  readonly #waiting = new Map<ControlConnection<any, any>, Waiting>();
  #refusedOverCap = 0;
  #helloTimeouts = 0;
  #oversizedBeforeHello = 0;
  #protocolErrors = 0;
  #slowConsumers = 0;

  constructor(limits: ControlLimits = {}, log: (line: string) => void = () => {}) {
    this.limits = Object.freeze(resolveLimits(limits));
    this.#log = new RateLimitedLog(log, this.limits.logLines, this.limits.logWindowMs);
  }

  /** A rate-limited log line (protocol errors, refusals, and anything a peer can make the daemon say often). */
  log(line: string): void {
    this.#log.line(line);
  }

  /** The counters. */
  stats(): ControlGuardStats {
    return {
      unauthenticated: this.#waiting.size,
      refusedOverCap: this.#refusedOverCap,
      helloTimeouts: this.#helloTimeouts,
      oversizedBeforeHello: this.#oversizedBeforeHello,
      protocolErrors: this.#protocolErrors,
      slowConsumers: this.#slowConsumers,
      logSuppressed: this.#log.suppressed,
    };
  }

  /**
   * Take an accepted socket: a {@link ControlConnection} with the limits
   * applied and its hello timer running, or null when the cap on
   * connections waiting for hello is reached (the socket is then answered
   * `AMIX_ERR_MAX_CONNECTIONS` `{ limit }` and closed). `who` names the
   * client in log lines once it is known.
   */
  connection<Out, E>(
    socket: Socket,
    options: ControlConnectionOptions,
    who: () => string | undefined,
  ): ControlConnection<Out, E> | null {
    const l = this.limits;
    if (this.#waiting.size >= l.maxUnauthenticated) {
      this.#refusedOverCap++;
      this.log(`refused a control connection: ${l.maxUnauthenticated} connections are waiting for hello already`);
      socket.on('error', () => {});
      hangUp(
        socket,
        new AmixError(
          ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
          `${l.maxUnauthenticated} connections are waiting for hello already: retry later`,
          { details: { limit: l.maxUnauthenticated } },
        ),
      );
      return null;
    }
    // Before hello a client has one thing to say: a few small frames, and replies it reads.
    const conn = new ControlConnection<Out, E>(socket, undefined, {
      ...options,
      maxFrameBytes: l.maxFrameBeforeHello,
      highWaterBytes: BEFORE_HELLO_HIGH_WATER,
      maxHeldRequests: BEFORE_HELLO_HELD,
      maxUnsentBytes: l.maxUnsentBytes,
    });
    const key = conn as ControlConnection<any, any>;
    const timer = setTimeout(() => {
      if (!this.#waiting.delete(key)) return;
      this.#helloTimeouts++;
      this.log(`closed a control connection that said no hello within ${l.helloTimeoutMs} ms`);
      void conn.refuse(
        new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `no hello within ${l.helloTimeoutMs} ms`, {
          details: { op: 'hello', timeoutMs: l.helloTimeoutMs },
        }),
      );
    }, l.helloTimeoutMs);
    timer.unref();
    this.#waiting.set(key, { timer });
    conn.on('protocolError', (err) => {
      this.#protocolErrors++;
      const before = this.#waiting.has(key);
      if (before && (err.cause as AmixError | undefined)?.code === ErrorCode.AMIX_ERR_FRAME_TOO_LARGE)
        this.#oversizedBeforeHello++;
      this.log(`protocol error from ${who() ?? 'a client before hello'}: ${err.message}`);
    });
    conn.on('close', (err) => {
      const w = this.#waiting.get(key);
      if (w) {
        clearTimeout(w.timer);
        this.#waiting.delete(key);
      }
      if ((err as AmixError | undefined)?.code === ErrorCode.AMIX_ERR_SLOW_CONSUMER) {
        this.#slowConsumers++;
        this.log(`cut off ${who() ?? 'a client before hello'}: ${err!.message}`);
      }
    });
    return conn;
  }

  /** `conn` has said hello: its timer stops, it leaves the unauthenticated count, and it may send full-size frames. */
  authenticated(conn: ControlConnection<any, any>): void {
    const w = this.#waiting.get(conn);
    if (!w) return;
    clearTimeout(w.timer);
    this.#waiting.delete(conn);
    conn.setLimits({
      maxFrameBytes: MAX_CONTROL_FRAME,
      highWaterBytes: this.limits.highWaterBytes,
      maxHeldRequests: Number.POSITIVE_INFINITY,
    });
  }

  /**
   * Watch the listening socket: an accept that fails (out of file
   * descriptors) is logged through the rate limit instead of being an
   * unhandled `'error'` that would end the daemon.
   */
  watch(server: Server): void {
    server.on('error', (err) => this.log(`control socket: ${err.message}`));
  }

  /** Write the pending "suppressed" line, and close every connection still waiting for hello. */
  close(): void {
    for (const [conn, w] of this.#waiting) {
      clearTimeout(w.timer);
      void conn.destroy();
    }
    this.#waiting.clear();
    this.#log.close();
  }
}
