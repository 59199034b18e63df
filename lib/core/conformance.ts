/**
 * The primitive contract suite as a library: run {@link conformanceCases}
 * against a primitive without a test framework and get a report. Each case
 * gets a fresh {@link ConformanceContext}; it fails on its first failed
 * assertion, a thrown error or its timeout, and every teardown it
 * registered runs either way. `amix conformance MODULE` is a thin shell
 * over {@link loadPrimitiveTarget} and {@link runConformance}.
 *
 * @module
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect, isDeepStrictEqual } from 'node:util';
import {
  conformanceCases,
  type ConformanceCase,
  type ConformanceContext,
  type ErrorPattern,
} from './conformanceCases.js';
import type { ConformanceTarget } from './conformanceCases.js';
import type { ChannelOptions } from './primitive.js';
import { PrimitiveRegistry, importPrimitive } from './registry.js';

export { conformanceCases } from './conformanceCases.js';
export type { ConformanceCase, ConformanceContext, ConformanceTarget, ErrorPattern } from './conformanceCases.js';

/** One case's outcome, as `amix conformance --json` prints it. */
export interface ConformanceResult {
  name: string;
  ok: boolean;
  /** Why it failed: the first failed assertion's message, or the error thrown. */
  error?: string;
}

/** The whole run, as `amix conformance --json` prints it. */
export interface ConformanceReport {
  passed: number;
  failed: number;
  cases: ConformanceResult[];
}

/** Options for {@link runCase} and {@link runConformance}. */
export interface RunConformanceOptions {
  /** Per case, including its teardown. Default 30 000 ms. */
  timeoutMs?: number;
  /** Called as each case finishes (for a report printed as it goes). */
  onResult?: (result: ConformanceResult) => void;
  /**
   * {@link runConformance} only: for the run, listen for unhandled rejections
   * and uncaught exceptions and fail the case during which one came (a
   * primitive must not leave an error nobody can catch). Installs process-wide
   * listeners, so only for a process that runs nothing else (the CLI). Default false.
   */
  catchStray?: boolean;
}

/** A failed assertion: ends the case with its message. */
class AssertionFailed extends Error {}

const show = (v: unknown): string => inspect(v, { depth: 3, breakLength: Infinity, maxArrayLength: 10 });

function errorText(err: unknown): string {
  if (err instanceof AssertionFailed) return err.message;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${err.message} (${code})` : `${err.name}: ${err.message}`;
  }
  return `threw ${show(err)}`;
}

/** A context whose assertions throw, and whose teardowns are collected for {@link runCase}. */
function makeContext(signal: AbortSignal, teardowns: Array<() => unknown>): ConformanceContext {
  const fail = (message: string): never => {
    throw new AssertionFailed(message);
  };
  return {
    signal,
    teardown: (fn) => void teardowns.push(fn),
    equal: (actual, expected, message) => {
      if (!Object.is(actual, expected)) fail(`${message}: expected ${show(expected)}, got ${show(actual)}`);
    },
    same: (actual, expected, message) => {
      if (!isDeepStrictEqual(actual, expected)) fail(`${message}: expected ${show(expected)}, got ${show(actual)}`);
    },
    ok: (value, message) => {
      if (!value) fail(`${message}: expected a truthy value, got ${show(value)}`);
    },
    notOk: (value, message) => {
      if (value) fail(`${message}: expected a falsy value, got ${show(value)}`);
    },
    rejects: async (promise, pattern: ErrorPattern, message) => {
      let err: unknown;
      try {
        await promise;
      } catch (e) {
        err = e ?? new Error('rejected with no reason');
      }
      if (err === undefined) return fail(`${message}: resolved, expected a rejection matching ${show(pattern)}`);
      const got = err as Record<string, unknown>;
      for (const [k, v] of Object.entries(pattern)) {
        if (got[k] !== v) fail(`${message}: rejected with ${errorText(err)}, expected ${k} ${show(v)}`);
      }
    },
    resolves: async (promise, message) => {
      try {
        await promise;
      } catch (err) {
        fail(`${message}: rejected with ${errorText(err)}`);
      }
    },
    timeoutSignal: (ms) => {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error(`timed out after ${ms} ms`)), ms);
      teardowns.push(() => clearTimeout(timer));
      return ac.signal;
    },
  };
}

/** Resolve once `p` settles or `ms` passes, whichever is first; true if it settled. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(
    () => true,
    () => true,
  );
  const late = new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ms)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run one case under amix's own harness. Never rejects: a failure is in the result. */
export async function runCase(c: ConformanceCase, options: RunConformanceOptions = {}): Promise<ConformanceResult> {
  return runOne(c, options, () => undefined);
}

async function runOne(
  c: ConformanceCase,
  options: RunConformanceOptions,
  stray: () => string | undefined,
): Promise<ConformanceResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ac = new AbortController();
  const teardowns: Array<() => unknown> = [];
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const running = Promise.resolve().then(() => c.run(makeContext(ac.signal, teardowns)));
  const timedOut = new Promise<void>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort(new Error(`timed out after ${timeoutMs} ms`));
      reject(new AssertionFailed(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    await Promise.race([running, timedOut]);
  } catch (err) {
    error = errorText(err);
  } finally {
    clearTimeout(timer);
  }
  // A timed-out case is still running: its channels are destroyed below, which wakes what it waits on.
  running.catch(() => undefined);
  // Last registered first: the ends go before the registry that made them.
  for (const fn of teardowns.reverse()) {
    try {
      if (!(await within(Promise.resolve().then(fn), timeoutMs))) error ??= `teardown timed out after ${timeoutMs} ms`;
    } catch (err) {
      error ??= `teardown failed: ${errorText(err)}`;
    }
  }
  // Node reports an unhandled rejection only once the microtask queue drains, and a primitive that settles
  // everything in microtasks may run a whole case without that: let one macrotask pass so it is this case's.
  await new Promise((r) => setImmediate(r));
  const late = stray();
  if (late !== undefined) error ??= `an error no caller could catch: ${late}`;
  const result: ConformanceResult =
    error === undefined ? { name: c.name, ok: true } : { name: c.name, ok: false, error };
  options.onResult?.(result);
  return result;
}

/** Run every case of the suite against `target`, one after another, and report. */
export async function runConformance(
  target: ConformanceTarget,
  options: RunConformanceOptions = {},
): Promise<ConformanceReport> {
  const cases: ConformanceResult[] = [];
  let stray: string | undefined;
  const onStray = (err: unknown): void => {
    stray ??= errorText(err);
  };
  if (options.catchStray) {
    process.on('unhandledRejection', onStray);
    process.on('uncaughtException', onStray);
  }
  try {
    for (const c of conformanceCases(target)) {
      stray = undefined;
      cases.push(await runOne(c, options, () => stray));
    }
  } finally {
    process.off('unhandledRejection', onStray);
    process.off('uncaughtException', onStray);
  }
  const passed = cases.filter((r) => r.ok).length;
  return { passed, failed: cases.length - passed, cases };
}

/**
 * Import a primitive module (`location`: a file path, relative to `baseDir`
 * (default the working directory), or a `file:` URL) the way the registry loads a user primitive
 * (its `default` export, or a named `primitive`), check it, and make a
 * {@link ConformanceTarget} that registers it, under its own name and
 * characteristics, in a fresh registry without the built-ins for each case.
 * Throws `AMIX_ERR_PRIMITIVE_LOAD` when it cannot be imported and
 * `AMIX_ERR_BAD_PRIMITIVE` when its export is not a primitive.
 */
export async function loadPrimitiveTarget(
  location: string,
  options: { baseDir?: string; channel?: ChannelOptions } = {},
): Promise<ConformanceTarget> {
  const baseDir = options.baseDir ?? process.cwd();
  // A path, always (relative to baseDir, even without ./), or a URL: `amix conformance my-bus.mjs` means the file.
  const spec = /^(file|data):/.test(location) ? location : pathToFileURL(resolve(baseDir, location)).href;
  const p = await importPrimitive(spec, location);
  const reg = { name: p.name, location: spec, characteristics: p.characteristics };
  return {
    name: p.name,
    registry: () => {
      const r = new PrimitiveRegistry({ builtins: false, baseDir });
      r.register(reg);
      return r;
    },
    ...(options.channel ? { options: options.channel } : {}),
  };
}
