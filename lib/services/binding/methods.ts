/**
 * The default binding methods (seed 002 ¶379-398, Table 7): File, Shell,
 * Data, Function, Thread, Process. This module is the `builtin` location of
 * the default configuration: the service imports it on the first Bind that
 * reaches one of them (¶424) and takes the export named like the method.
 *
 * Each method's NameTransformation strips its own prefix (`file:`, `shell:`,
 * `data:`, `function:`, `thread:`, `process:`), so a caller can aim a name at
 * one method; a name still carrying another method's prefix is not located.
 * Only Shell and Process have a pattern: a name they match is theirs, found
 * or not (¶427); the others let a miss fall through to the next method.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AmixError, ErrorCode, abortError } from '../../core/errors.js';
import type { BindingMethod, BindingStatus, BoundEntity, InvokeOptions, ThreadProcedure } from './types.js';

/** The prefixes the default methods answer to. */
export const METHOD_PREFIXES = ['file', 'shell', 'data', 'function', 'thread', 'process', 'library', 'object'] as const;
const prefixed = new RegExp(`^(?:${METHOD_PREFIXES.join('|')}):`, 's');

function strip(prefix: string): (name: string) => string {
  return (name) => (name.startsWith(`${prefix}:`) ? name.slice(prefix.length + 1) : name);
}

/** True when the name still carries some method's prefix: meant for another method. */
export function hasPrefix(name: string): boolean {
  return prefixed.test(name);
}

function failed(name: string, message: string, cause?: unknown): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_HANDLER_FAILED, message, {
    details: { module: name, request: 'invoke' },
    ...(cause === undefined ? {} : { cause }),
  });
}

async function mtimeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** File (¶383): a regular file the computer system can reach (relative names from the base directory). */
export const File: BindingMethod = {
  nameTransformation: strip('file'),
  async locate(name, ctx) {
    if (hasPrefix(name) || name.includes('\0')) return undefined;
    const path = isAbsolute(name) ? name : resolve(ctx.baseDir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return { kind: 'file', path, mtimeMs: () => mtimeOf(path) };
  },
  async status(entity) {
    const path = entity.path as string;
    const st = await stat(path);
    return { path, size: st.size, mtimeMs: st.mtimeMs, mode: (st.mode & 0o7777).toString(8).padStart(4, '0') };
  },
};

/** The shell the Shell method runs statements with. */
export const SHELL_PATH = '/bin/sh';

/** Run `statements` with `/bin/sh -c`; rejects with AMIX_ERR_HANDLER_FAILED on a non-zero exit. */
export function runShell(statements: string, label: string, options: InvokeOptions = {}): Promise<void> {
  const out = options.stdout === 'stderr' ? process.stderr : options.stdout === 'ignore' ? 'ignore' : 'inherit';
  const { signal: abort } = options;
  if (abort?.aborted) return Promise.reject(abortError(abort, label));
  return new Promise((res, rej) => {
    const child = spawn(SHELL_PATH, ['-c', statements], {
      cwd: options.cwd,
      stdio: ['ignore', out === process.stderr ? 'pipe' : out, 'inherit'],
      ...(abort ? { signal: abort } : {}),
    });
    if (out === process.stderr) child.stdout!.pipe(process.stderr, { end: false });
    child.once('error', (err) =>
      rej(
        abort?.aborted
          ? abortError(abort, label)
          : failed(label, `${label}: the shell did not start: ${err.message}`, err),
      ),
    );
    child.once('close', (code, signal) => {
      if (abort?.aborted) rej(abortError(abort, label));
      else if (code === 0) res();
      else rej(failed(label, `${label}: the shell exited with ${signal ? `signal ${signal}` : `code ${code}`}`));
    });
  });
}

/** Shell (¶385): `shell:STATEMENTS`, bound to the user-level shell that will run them. */
export const Shell: BindingMethod = {
  patternMatching: /^shell:/s,
  nameTransformation: strip('shell'),
  async locate(statements) {
    const ok = await access(SHELL_PATH, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (!ok || statements.trim() === '') return undefined;
    return {
      kind: 'shell',
      shell: SHELL_PATH,
      statements,
      invoke: (o) => runShell(statements, `shell: ${statements.split('\n')[0]}`, o),
    };
  },
  status: (e) => ({ shell: e.shell as string, statements: e.statements as string }),
};

/** Data (¶387): a datum the application offers by name. */
export const Data: BindingMethod = {
  nameTransformation: strip('data'),
  locate(name, ctx) {
    if (hasPrefix(name) || !ctx.application.data.has(name)) return undefined;
    return { kind: 'data', name, value: ctx.application.data.get(name) };
  },
  status(e): BindingStatus {
    const v = e.value;
    const type = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
      ? { name: e.name as string, type, value: v }
      : { name: e.name as string, type };
  },
};

/** Function (¶389): a function (procedure) the application offers by name. */
export const Function: BindingMethod = {
  nameTransformation: strip('function'),
  locate(name, ctx) {
    const fn = hasPrefix(name) ? undefined : ctx.application.functions.get(name);
    if (typeof fn !== 'function') return undefined;
    return { kind: 'function', name, invoke: async (o) => fn(o?.arg) };
  },
  status: (e) => ({ name: e.name as string }),
};

/** Run export `name` of `url` in a worker thread; resolves when it returns (or its promise settles). */
export function runThread(url: string, name: string, arg: unknown, abort?: AbortSignal): Promise<void> {
  // An eval'd worker is CommonJS: the dynamic import() loads the ES module.
  const code = `const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  const m = await import(workerData.url);
  const f = m[workerData.name];
  if (typeof f !== 'function') throw new Error('no function ' + workerData.name + ' in ' + workerData.url);
  await f(workerData.arg);
  parentPort.postMessage('done');
})().catch((err) => { setImmediate(() => { throw err; }); });`;
  if (abort?.aborted) return Promise.reject(abortError(abort, `thread ${name}`));
  return new Promise((res, rej) => {
    let done = false;
    const w = new Worker(code, { eval: true, workerData: { url, name, arg } });
    const stop = () => void w.terminate();
    abort?.addEventListener('abort', stop, { once: true });
    w.once('message', () => {
      done = true;
    });
    w.once('error', (err) => rej(failed(name, `thread ${name}: ${err.message}`, err)));
    w.once('exit', (c) => {
      abort?.removeEventListener('abort', stop);
      if (abort?.aborted && !done) rej(abortError(abort, `thread ${name}`));
      else if (done && c === 0) res();
      else rej(failed(name, `thread ${name} exited with code ${c}`));
    });
  });
}

function threadEntity(name: string, proc: ThreadProcedure, baseDir: string): BoundEntity {
  const mod = proc.module;
  const url = mod instanceof URL ? mod.href : /^[a-z]+:/.test(mod) ? mod : pathToFileURL(resolve(baseDir, mod)).href;
  const exportName = proc.export ?? name;
  return {
    kind: 'thread',
    name,
    module: url,
    export: exportName,
    invoke: (o) => runThread(url, exportName, o?.arg ?? null, o?.signal),
  };
}

/**
 * Thread (¶393): a procedure run as a thread of the application process: a
 * name the application offers as a {@link ThreadProcedure}, or
 * `MODULE#EXPORT` with MODULE an existing file.
 */
export const Thread: BindingMethod = {
  nameTransformation: strip('thread'),
  async locate(name, ctx) {
    if (hasPrefix(name)) return undefined;
    const offered = ctx.application.threads.get(name);
    if (offered) return threadEntity(name, offered, ctx.baseDir);
    const hash = name.lastIndexOf('#');
    if (hash <= 0) return undefined;
    const path = resolve(ctx.baseDir, name.slice(0, hash));
    if (!(await stat(path).catch(() => undefined))?.isFile()) return undefined;
    return threadEntity(name.slice(hash + 1), { module: path }, ctx.baseDir);
  },
  status: (e) => ({ name: e.name as string, module: e.module as string, export: e.export as string }),
};

/** Process (¶395): `process:PID`, an existing process this user may signal. */
export const Process: BindingMethod = {
  patternMatching: /^process:\d{1,10}$/,
  nameTransformation: strip('process'),
  locate(name) {
    const pid = Number(name);
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    try {
      // Signal 0 checks existence and permission: a process of another user (EPERM) is not ours to bind.
      process.kill(pid, 0);
    } catch {
      return undefined;
    }
    return { kind: 'process', pid };
  },
  async status(e) {
    const pid = e.pid as number;
    const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
    const uid = field('Uid')?.split(/\s+/)[0];
    return {
      pid,
      command: field('Name') ?? null,
      state: field('State') ?? null,
      uid: uid === undefined ? null : Number(uid),
    };
  },
};
