/**
 * One run of a command in a named environment, on the requester's side
 * (seed 002 ¶634-636): the requester is ATTACHED on a link of its own to
 * the environment's shell (`envPoint.ts`) and reads the command's standard
 * output and standard error as two streams, as they come; when the command
 * ends it gets the exit status and is DETACHED (the link closes).
 *
 * Each stream holds at most {@link RUN_STREAM_CHUNKS} chunks nobody has read;
 * beyond that the link is not read, the environment's sends wait and the
 * command's pipes fill, so a requester that stops reading stops the
 * command instead of growing memory. Read both streams (or use
 * {@link NeeRun.text}), as with a child process's pipes.
 *
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Fabric } from '../../fabric/fabric.js';
import type { Link } from '../../fabric/link.js';
import { RunFrame } from './envPoint.js';

/** Unread chunks a stream holds before the run stops reading its link. */
export const RUN_STREAM_CHUNKS = 256;

/** How a run is asked for. */
export interface RunOptions {
  /** A background run (¶621, ¶623): nobody is attached; output goes to the environment's `output` file or nowhere. */
  background?: boolean;
  /** @internal The file a background run's output is appended to. */
  output?: string;
}

/** How a command ended. `error` when it could not start (not found, not executable). */
export interface RunExit {
  code: number | null;
  signal: string | null;
  error?: string;
}

/** A run in progress. */
export interface NeeRun {
  readonly id: number;
  /** The command's standard output, chunk by chunk (empty for a background run). */
  readonly stdout: AsyncIterable<Uint8Array>;
  /** Its standard error. */
  readonly stderr: AsyncIterable<Uint8Array>;
  /** Resolves when the command has ended, its output all handed to the two streams. */
  readonly exit: Promise<RunExit>;
  /** Read both streams whole, and the exit. */
  text(): Promise<RunExit & { stdout: string; stderr: string }>;
  /** SIGSTOP to the command's process group (¶637). */
  suspend(): Promise<void>;
  /** SIGCONT. */
  resume(): Promise<void>;
  /** SIGINT. */
  interrupt(): Promise<void>;
}

/** A bounded queue of chunks read as an async iterable, once. */
class ChunkStream implements AsyncIterable<Uint8Array> {
  readonly #chunks: Uint8Array[] = [];
  #ended = false;
  #reader: (() => void) | undefined;
  #room: (() => void) | undefined;

  push(c: Uint8Array): Promise<void> | undefined {
    this.#chunks.push(c);
    this.#reader?.();
    if (this.#chunks.length < RUN_STREAM_CHUNKS) return undefined;
    return new Promise((r) => (this.#room = r));
  }

  end(): void {
    this.#ended = true;
    this.#reader?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const c = this.#chunks.shift();
      if (c) {
        if (this.#chunks.length < RUN_STREAM_CHUNKS) {
          const room = this.#room;
          this.#room = undefined;
          room?.();
        }
        yield c;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((r) => (this.#reader = r));
      this.#reader = undefined;
    }
  }
}

const enc = new TextEncoder();

/** Attach to the environment's shell point, start the command, and hand back its streams. */
export function startRun(
  fabric: Fabric,
  point: string,
  id: number,
  command: string | readonly string[],
  options: RunOptions,
): NeeRun {
  const stdout = new ChunkStream();
  const stderr = new ChunkStream();
  let link: Link | undefined;
  const linked = fabric.connect(null, point, { direction: 'both' }).then((l) => (link = l));
  const request =
    typeof command === 'string' ? { op: 'run', r: id, command } : { op: 'run', r: id, argv: [...command] };
  const exit = (async (): Promise<RunExit> => {
    const l = await linked;
    let file: WriteStream | undefined;
    if (options.background && options.output) file = createWriteStream(options.output, { flags: 'a', mode: 0o600 });
    try {
      await l.send(enc.encode(JSON.stringify(request)));
      for await (const m of l) {
        const b = m.data;
        if (b.length < 5 || new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(1, true) !== id) continue;
        const body = b.subarray(5);
        if (b[0] === RunFrame.stdout || b[0] === RunFrame.stderr) {
          if (options.background) {
            if (file && !file.write(body)) await new Promise<void>((r) => file!.once('drain', () => r()));
            continue;
          }
          await (b[0] === RunFrame.stdout ? stdout : stderr).push(body);
        } else if (b[0] === RunFrame.exit) {
          return JSON.parse(new TextDecoder().decode(body)) as RunExit;
        } else if (b[0] === RunFrame.error) {
          return { code: null, signal: null, error: new TextDecoder().decode(body) };
        }
      }
      return { code: null, signal: null, error: 'the environment ended before the command' };
    } finally {
      stdout.end();
      stderr.end();
      if (file) await new Promise<void>((r) => file!.end(() => r()));
      // DETACHED: the run's link goes with the run.
      await l.close().catch(() => {});
    }
  })();
  const signal = async (sig: string) => {
    await linked;
    await link!.send(enc.encode(JSON.stringify({ op: 'signal', r: id, sig })));
  };
  return {
    id,
    stdout,
    stderr,
    exit,
    async text() {
      const read = async (s: AsyncIterable<Uint8Array>) => {
        const parts: Uint8Array[] = [];
        for await (const c of s) parts.push(c);
        return Buffer.concat(parts).toString('utf8');
      };
      const [out, err, end] = await Promise.all([read(stdout), read(stderr), exit]);
      return { ...end, stdout: out, stderr: err };
    },
    suspend: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    interrupt: () => signal('SIGINT'),
  };
}
