/**
 * Peering's state files in the daemon's directory (`peering.json`,
 * `delivered.json`): replaced, never written through a link; read without
 * following one.
 *
 * @module
 */
import { constants } from 'node:fs';
import { open, rename, unlink, writeFile } from 'node:fs/promises';

/**
 * @internal Write a state file without following a link planted at its name: a new
 * file (exclusive create, 0600) renamed over it.
 */
export async function writeState(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await unlink(tmp).catch(() => {});
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
}

/** @internal Read `peering.json` (or another state file; not through a symlink); `{}` when there is none or it is not JSON. */
export async function readState(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return {};
  }
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
