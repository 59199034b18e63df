/**
 * Where amix keeps its files, and how it trusts them: state directories are
 * 0700 and owned by us, state files 0600, owned by us and never symlinks.
 * Anything else is refused with `AMIX_ERR_UNSAFE_DIR`, never repaired: a
 * directory that was open to others before we looked may hold files someone
 * else planted, and a chmod would only hide that.
 *
 * @module
 */
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { AmixError, ErrorCode } from './errors.js';

/**
 * The daemon's directory: `$AMIX_DIR`, else `$XDG_RUNTIME_DIR/amix`, else
 * `<tmpdir>/amix-<uid>`.
 */
export function defaultDaemonDir(): string {
  if (process.env.AMIX_DIR) return process.env.AMIX_DIR;
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'amix');
  return join(tmpdir(), `amix-${process.getuid?.() ?? userInfo().username}`);
}

/** `O_NOFOLLOW` where the platform has it (0 elsewhere: the lstat checks still refuse symlinks). */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

function unsafe(path: string, reason: string, st?: Stats): AmixError {
  const mode = st ? st.mode & 0o7777 : undefined;
  return new AmixError(
    ErrorCode.AMIX_ERR_UNSAFE_DIR,
    `${path} is unsafe: ${reason}${mode !== undefined ? ` (mode ${mode.toString(8).padStart(4, '0')}, uid ${st!.uid})` : ''}; ` +
      'fix or remove it by hand (amix never repairs state it did not make)',
    { details: { path, reason, ...(st ? { mode, uid: st.uid } : {}) } },
  );
}

/**
 * Check what `lstat` says of a state path: of `kind`, owned by this uid, no
 * group or other bits. Throws `AMIX_ERR_UNSAFE_DIR` with the reason.
 */
export function checkPrivateStat(path: string, st: Stats, kind: 'directory' | 'file'): void {
  if (st.isSymbolicLink()) throw unsafe(path, 'is a symbolic link', st);
  if (kind === 'directory' ? !st.isDirectory() : !st.isFile()) throw unsafe(path, `is not a ${kind}`, st);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw unsafe(path, `belongs to uid ${st.uid}, not to this user (${uid})`, st);
  if ((st.mode & 0o077) !== 0) throw unsafe(path, 'is open to group or other', st);
}

/**
 * Create `dir` 0700 if missing (parents too, each 0700), or check the one
 * there: a directory (not a symlink), owned by this uid, with no group or
 * other permission bits. Anything else is refused with
 * `AMIX_ERR_UNSAFE_DIR` (details `{ path, reason, mode, uid }`); nothing is
 * chmod'ed.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  let st: Stats;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // A new directory is ours from birth: mkdir's mode under any umask is at most 0700.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    st = await lstat(dir);
  }
  checkPrivateStat(dir, st, 'directory');
}

/**
 * Check the state file at `path` if there is one: a regular file (not a
 * symlink), ours, no group or other bits. Returns false when it does not
 * exist; throws `AMIX_ERR_UNSAFE_DIR` when it is unsafe.
 */
export async function checkPrivateFile(path: string): Promise<boolean> {
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  checkPrivateStat(path, st, 'file');
  return true;
}

/**
 * Read the state file at `path` without following a symlink (`O_NOFOLLOW`),
 * checking the opened file (fstat: regular, ours, 0600 or narrower).
 * Undefined when there is none; `AMIX_ERR_UNSAFE_DIR` when it is unsafe.
 */
export async function readPrivateFile(path: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | NOFOLLOW | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw unsafe(path, 'is a symbolic link');
    throw err;
  }
  try {
    checkPrivateStat(path, await fh.stat(), 'file');
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Create the file at `path` with `data`, mode 0600, refusing to follow a
 * symlink or to replace anything there (`O_CREAT | O_EXCL | O_NOFOLLOW`):
 * `AMIX_ERR_DUPLICATE` if something exists at `path`.
 */
export async function createPrivateFile(path: string, data: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `${path} exists already: not replaced`, {
        cause: err,
        details: { path },
      });
    throw err;
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** True when a live process accepts connections on the Unix socket at `path`. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
