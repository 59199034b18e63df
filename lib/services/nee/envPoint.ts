/**
 * A named execution environment's shell (seed 002 ¶631-636): the process
 * point the NEEM starts for an ACTIVE environment. Each run request it
 * receives starts a command there, with standard output and standard error
 * redirected to the point (¶633), and streams both back on the link the
 * request came on, chunk by chunk, then the exit status. A run's output is
 * never gathered whole: the point awaits each send, so a requester that
 * reads slowly slows the command's pipes, and the command with them.
 *
 * Wire. Requests are JSON: `{ "op": "run", "r": id, "argv": [...] }` (run
 * argv[0] with the rest as arguments, no shell) or `{ "op": "run", "r": id,
 * "command": "..." }` (through the environment's shell, `-c`);
 * `{ "op": "signal", "r": id, "sig": "SIGSTOP" | "SIGCONT" | "SIGINT" | "SIGTERM" }`
 * (to the command's whole process group). Answers are one byte of kind, the
 * run id as 4 bytes little-endian, then the payload: kind 1 stdout bytes,
 * 2 stderr bytes, 3 the exit as JSON `{ "code", "signal" }`, 4 an error
 * message (UTF-8) when the command could not start.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { RECONNECT_FROM } from '../../fabric/endpoint.js';
import type { PointContext } from '../../fabric/host.js';

/** What the NEEM puts in the point's `data`. */
export interface EnvPointData {
  name: string;
  shell: string;
}

/** The answer kinds. */
export const RunFrame = { stdout: 1, stderr: 2, exit: 3, error: 4 } as const;

const SIGNALS = new Set(['SIGSTOP', 'SIGCONT', 'SIGINT', 'SIGTERM']);

/** One answer frame. */
export function runFrame(kind: number, run: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, run, true);
  out.set(payload, 5);
  return out;
}

/** Run commands for the environment until it is terminated. */
export default async function environment(point: PointContext): Promise<void> {
  const { shell } = point.data as EnvPointData;
  const runs = new Map<number, ChildProcess>();
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  point.signal.addEventListener('abort', () => {
    for (const c of runs.values()) killGroup(c, 'SIGTERM');
  });
  for await (const m of point) {
    if (m.from === RECONNECT_FROM) continue;
    let req: { op?: string; r?: number; argv?: string[]; command?: string; sig?: string };
    try {
      req = JSON.parse(dec.decode(m.data)) as typeof req;
    } catch {
      continue;
    }
    const r = req.r;
    if (!Number.isSafeInteger(r)) continue;
    if (req.op === 'signal') {
      const c = runs.get(r!);
      if (c && typeof req.sig === 'string' && SIGNALS.has(req.sig)) killGroup(c, req.sig as NodeJS.Signals);
      continue;
    }
    if (req.op !== 'run') continue;
    const argv = Array.isArray(req.argv) ? req.argv.map(String) : undefined;
    const [file, args] =
      argv && argv.length > 0 ? [argv[0]!, argv.slice(1)] : [shell, ['-c', String(req.command ?? '')]];
    let child: ChildProcess;
    try {
      // Its own process group, so suspend, resume and interrupt reach a shell's whole pipeline.
      child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      await point.send(runFrame(RunFrame.error, r!, enc.encode((err as Error).message)), { link: m.link });
      continue;
    }
    runs.set(r!, child);
    void pipeRun(point, m.link, r!, child).finally(() => runs.delete(r!));
  }
}

function killGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (c.pid !== undefined) process.kill(-c.pid, sig);
  } catch {
    // already gone
  }
}

/** Stream one run's stdout and stderr (each chunk sent before the next is read), then its exit. */
async function pipeRun(point: PointContext, link: string, r: number, child: ChildProcess): Promise<void> {
  const enc = new TextEncoder();
  const send = (kind: number, bytes: Uint8Array) => point.send(runFrame(kind, r, bytes), { link });
  const exited = new Promise<{ code: number | null; signal: string | null } | { error: string }>((resolve) => {
    child.once('error', (err) => resolve({ error: err.message }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const pump = async (stream: NodeJS.ReadableStream | null, kind: number) => {
    if (!stream) return;
    for await (const chunk of stream) await send(kind, chunk as Uint8Array);
  };
  try {
    await Promise.all([pump(child.stdout, RunFrame.stdout), pump(child.stderr, RunFrame.stderr)]);
    const end = await exited;
    if ('error' in end) await send(RunFrame.error, enc.encode(end.error));
    else await send(RunFrame.exit, enc.encode(JSON.stringify(end)));
  } catch {
    // The requester's link went away: the command is not orphaned.
    killGroup(child, 'SIGTERM');
  }
}
