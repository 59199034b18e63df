/**
 * The fabric's side of a point host: spawn it as a worker thread or a child
 * process, send it control requests and get replies, hear its events and its
 * exit, and stop it (terminate, or SIGTERM then SIGKILL on a timer).
 *
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { RpcPeer, type AnyArgs, type ArgsOf, type ResultOf } from '../core/rpc.js';
import { fromHostWire, toHostWire, type HostEvent, type HostMessage, type HostOps } from './hostProtocol.js';
import type { PointScope } from './point.js';

const HOST_SCRIPT = new URL('./host.js', import.meta.url);

/** The soft `ulimit -s` in KiB (Linux /proc), read once; undefined when unlimited or unknown. */
let stackLimitKb: number | null | undefined = null;

/**
 * V8's `--stack-size` (KiB) for a process point of `stackMb`. A child's main
 * thread gets the soft `ulimit -s` of stack from the kernel, and V8 must stop
 * short of it or deep recursion crashes the process instead of throwing
 * RangeError: so the size is capped 1 MiB below that limit.
 */
function processStackKb(stackMb: number): number {
  if (stackLimitKb === null) {
    stackLimitKb = undefined;
    try {
      const m = /^Max stack size\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      if (m) stackLimitKb = Math.floor(Number(m[1]) / 1024);
    } catch {
      /* not Linux: no cap known */
    }
  }
  const want = Math.floor(stackMb * 1024);
  return Math.max(64, stackLimitKb === undefined ? want : Math.min(want, stackLimitKb - 1024));
}

/** How a host ended. */
export interface HostExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One of the ops a host answers (see {@link HostOps}). */
export type HostOp = keyof HostOps;

/**
 * @internal A running host. Events: `'event'` ({@link HostEvent}, from the
 * host), `'exit'` ({@link HostExit}), `'hostError'` (Error).
 */
export class HostHandle extends EventEmitter<{ event: [HostEvent]; exit: [HostExit]; hostError: [Error] }> {
  readonly scope: PointScope;
  #worker?: Worker;
  #child?: ChildProcess;
  readonly #rpc: RpcPeer;
  #exited: HostExit | undefined;
  /** Resolves when the host has exited. */
  readonly exited: Promise<HostExit>;
  #resolveExit!: (e: HostExit) => void;

  private constructor(scope: PointScope) {
    super();
    this.scope = scope;
    this.#rpc = new RpcPeer({
      send: (m) => {
        const msg = toHostWire(m);
        if (this.#worker) this.#worker.postMessage(msg);
        else this.#child!.send(msg);
      },
      onEvent: (type, body) => this.emit('event', { type, ...body } as HostEvent),
      timeoutError: (op, timeoutMs) =>
        new AmixError(ErrorCode.AMIX_ERR_TIMEOUT, `point host did not answer ${op} within ${timeoutMs} ms`, {
          details: { op, timeoutMs },
        }),
      closedError: (op) => this.#diedError(op),
      // Keep the fabric's process alive only while a request is outstanding.
      onBusy: (busy) => this.#ref(busy),
    });
    this.exited = new Promise((r) => {
      this.#resolveExit = r;
    });
  }

  /**
   * Start a host of `scope`. `stackMb` sets a worker's stack size, or a
   * process's V8 stack limit; `execArgv` are its Node flags (undefined:
   * this process's own, as Node gives workers and forks).
   */
  static spawn(scope: PointScope, name: string, stackMb: number, execArgv?: readonly string[]): HostHandle {
    const h = new HostHandle(scope);
    if (scope === 'thread') {
      let w: Worker;
      try {
        w = new Worker(HOST_SCRIPT, {
          workerData: { amixHost: true },
          name: `amix:${name}`,
          resourceLimits: { stackSizeMb: stackMb },
          // This process's own flags (no execArgv) go to the worker the way Node passes them, by naming
          // none: named, Node refuses the process-wide ones (a heap size, --expose-gc), which an
          // application may well run with and which already hold for the worker's isolate anyway.
          ...(execArgv ? { execArgv: [...execArgv] } : {}),
        });
      } catch (err) {
        // Process-wide flags (heap sizes, say) named in hostExecArgv are refused by a worker at once.
        throw invalidArg('options.hostExecArgv', `holds flags a worker thread refuses: ${(err as Error).message}`, [
          ...(execArgv ?? process.execArgv),
        ]);
      }
      h.#worker = w;
      w.on('message', (m: HostMessage) => h.#onMessage(m));
      w.on('error', (err) => h.emit('hostError', err));
      w.on('exit', (code) => h.#onExit({ code, signal: null }));
      w.unref();
    } else {
      const c = fork(HOST_SCRIPT, [], {
        execArgv: [...(execArgv ?? process.execArgv), `--stack-size=${processStackKb(stackMb)}`],
        env: { ...process.env, AMIX_HOST: '1' },
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      h.#child = c;
      c.on('message', (m: HostMessage) => h.#onMessage(m));
      c.on('error', (err) => h.emit('hostError', err));
      c.on('exit', (code, signal) => h.#onExit({ code, signal }));
      c.unref();
      c.channel?.unref();
    }
    return h;
  }

  /** The process id of a process host; the fabric's own pid for a thread host. */
  get pid(): number | undefined {
    return this.#child ? this.#child.pid : process.pid;
  }
  /** True once the host has exited. */
  get hasExited(): boolean {
    return this.#exited !== undefined;
  }

  /**
   * Send a control request; rejects with the host's error (rebuilt as an
   * AmixError), `AMIX_ERR_TIMEOUT` after `timeoutMs` (0: no limit), or
   * `AMIX_ERR_POINT_DIED` if it exits first.
   */
  request<K extends HostOp>(op: K, args: ArgsOf<HostOps, K>, timeoutMs?: number): Promise<ResultOf<HostOps, K>>;
  request<T = unknown>(op: HostOp, args?: AnyArgs<HostOps>, timeoutMs?: number): Promise<T>;
  request(op: string, args: object = {}, timeoutMs = 0): Promise<unknown> {
    return this.#rpc.request(op, args as Record<string, unknown>, { timeoutMs });
  }

  /**
   * Stop the host by signal: a worker is terminated; a process gets SIGTERM
   * and, if still alive after `graceMs`, SIGKILL.
   */
  async kill(graceMs: number): Promise<HostExit> {
    if (this.#exited) return this.#exited;
    if (this.#worker) {
      await this.#worker.terminate();
    } else {
      this.#child!.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!this.#exited) this.#child!.kill('SIGKILL');
      }, graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  /** Kill at once (SIGKILL for a process), for tests and fatal paths. */
  async forceKill(): Promise<HostExit> {
    if (this.#exited) return this.#exited;
    if (this.#worker) await this.#worker.terminate();
    else this.#child!.kill('SIGKILL');
    return this.exited;
  }

  #ref(on: boolean): void {
    const target = this.#worker ?? this.#child;
    if (!target) return;
    if (on) {
      target.ref();
      if (this.#child) this.#child.channel?.ref();
    } else {
      target.unref();
      if (this.#child) this.#child.channel?.unref();
    }
  }

  #onMessage(m: HostMessage): void {
    if (m.kind === 'event' || m.kind === 'res') this.#rpc.receive(fromHostWire(m));
  }

  #onExit(e: HostExit): void {
    this.#exited = e;
    this.#rpc.close();
    this.#resolveExit(e);
    this.emit('exit', e);
  }

  #diedError(op: string): AmixError {
    const e = this.#exited;
    return new AmixError(
      ErrorCode.AMIX_ERR_POINT_DIED,
      `point host exited (code ${e?.code ?? 'none'}, signal ${e?.signal ?? 'none'}) before answering ${op}`,
      { details: { exitCode: e?.code ?? null, signal: e?.signal ?? null } },
    );
  }
}

/**
 * The `hostExecArgv` option checked (`AMIX_ERR_INVALID_ARG` unless an array of strings); undefined stays
 * undefined: the hosts take this process's flags ({@link HostHandle.spawn}).
 */
export function hostExecArgvOption(v: unknown): readonly string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((a) => typeof a === 'string'))
    throw invalidArg('options.hostExecArgv', 'must be an array of strings (Node flags)', v);
  return [...(v as string[])];
}
