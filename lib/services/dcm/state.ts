/**
 * The DCM state file: each rule's stamp, kept between runs so that a second
 * run evaluates only what changed (seed 002 ¶97-98). JSON, mode 0600, owned
 * by us, never a symlink; an existing one that is open to others is refused
 * (`AMIX_ERR_UNSAFE_DIR`), never repaired. Written to a fresh 0600 file
 * beside it, then renamed over it, so a crash leaves the old or the new.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AmixError, ErrorCode } from '../../core/errors.js';
import { createPrivateFile, readPrivateFile } from '../../core/paths.js';

/** The stamps of one program. */
export interface DcmState {
  version: 1;
  /** The newest stamp issued: a new one is later still, even if the wall clock stepped back. */
  clock: number;
  stamps: Record<string, number>;
}

/** An empty state. */
export function emptyState(): DcmState {
  return { version: 1, clock: 0, stamps: {} };
}

function bad(path: string, why: string): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `DCM state file ${path} ${why}`, {
    details: { option: 'state', file: path },
  });
}

/** Read the state at `path` (empty when there is none). */
export async function readState(path: string): Promise<DcmState> {
  const text = await readPrivateFile(path);
  if (text === undefined) return emptyState();
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad(path, 'is not JSON');
  }
  const s = v as Partial<DcmState>;
  if (s?.version !== 1 || typeof s.clock !== 'number' || s.stamps === null || typeof s.stamps !== 'object')
    throw bad(path, 'is not a version 1 DCM state');
  for (const [k, x] of Object.entries(s.stamps)) if (typeof x !== 'number') throw bad(path, `has a bad stamp for ${k}`);
  return s as DcmState;
}

/** Write `state` to `path` (0600, atomically). */
export async function writeState(path: string, state: DcmState): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  await createPrivateFile(tmp, JSON.stringify(state));
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
