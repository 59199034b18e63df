/**
 * The runtime directory of `queueConditionProcess` and its socket files:
 * checked permissions, stale sockets of dead processes swept, a live one
 * refused.
 *
 * @module
 */
import { chmod, lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import { socketAnswers } from '../../lib/core/paths.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmixError, ErrorCode, invalidArg } from '../../lib/core/errors.js';
import { NAME, asAmix, isWindows } from './wire.js';

const swept = new Set<string>();

/**
 * The runtime directory: `options.runtimeDir`, or `amix-<uid>` under the OS
 * temp dir. Created 0700 when missing; an existing one must be a directory
 * (not a symlink) owned by this user and closed to group and others
 * (`AMIX_ERR_INVALID_ARG` otherwise; the default one is re-closed with chmod).
 */
export async function runtimeDirectory(dir?: string): Promise<string> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const path = dir ?? join(tmpdir(), `amix-${uid ?? 'user'}`);
  if (isWindows) return path;
  try {
    await mkdir(path, { mode: 0o700, recursive: dir !== undefined });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
      throw asAmix(err, ErrorCode.AMIX_ERR_INVALID_ARG, `options.runtimeDir ${path} cannot be created`);
  }
  const st = await lstat(path);
  if (!st.isDirectory()) throw invalidArg('options.runtimeDir', 'must be a directory, not a symlink or file', path);
  if (uid !== undefined && st.uid !== uid)
    throw invalidArg('options.runtimeDir', `must be owned by this user (uid ${uid}; owner is ${st.uid})`, path);
  if ((st.mode & 0o077) !== 0) {
    if (dir !== undefined)
      throw invalidArg(
        'options.runtimeDir',
        `must not be accessible by group or others (mode ${(st.mode & 0o777).toString(8)}; want 700)`,
        path,
      );
    await chmod(path, 0o700);
  }
  return path;
}

const SOCKET_RE = /^qcp-(\d+)-[0-9a-f]+\.sock$/;

/** Remove socket files in `dir` named by this primitive for processes that no longer exist. Once per dir per process. */
export async function sweepStale(dir: string): Promise<void> {
  if (isWindows || swept.has(dir)) return;
  swept.add(dir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = SOCKET_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') await unlink(join(dir, name)).catch(() => {});
    }
  }
}

/** Make `path` free to listen on: remove a stale socket, refuse a live one or a non-socket. */
export async function clearStale(path: string): Promise<void> {
  if (isWindows) return;
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw invalidArg('options.socketPath', 'exists and is not a socket', path);
  if (await socketAnswers(path)) {
    throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `${NAME}: a live process is listening on ${path}`, {
      details: { path },
    });
  }
  await unlink(path).catch(() => {});
}
