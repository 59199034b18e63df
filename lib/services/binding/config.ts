/**
 * The Binding Configuration File (seed 002 ¶171, ¶373, ¶414): the default
 * methods and their order, read when the service starts, and the entries a
 * user adds. The entry form is lost from the seed's text (¶414 ends at "of
 * the form:"); amix's is one method per line:
 *
 * ```
 * # ORDER NAME LOCATION [allow=PRINCIPAL,...]
 * 10 File builtin
 * 70 Spelling ./spelling.mjs allow=alice,bob
 * ```
 *
 * A later entry with the name of an earlier one replaces it (a user may
 * reorder or relocate a default method).
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { AmixError, ErrorCode } from '../../core/errors.js';
import { readPrivateFile } from '../../core/paths.js';
import type { MethodRegistration } from './types.js';

/** The default configuration: the six default methods of ¶379-398, in the seed's order. */
export const DEFAULT_BINDING_CONFIG = `# amix default binding methods (seed 002 Table 7)
# ORDER NAME     LOCATION
10      File     builtin
20      Shell    builtin
30      Data     builtin
40      Function builtin
50      Thread   builtin
60      Process  builtin
`;

/** A method name: a letter, then letters, digits, `_`, `-`, `.` (at most 64). */
export const METHOD_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

function syntax(file: string, line: number, column: number, what: string): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${file}:${line}:${column}: ${what}`, {
    details: { file, line, column },
  });
}

/**
 * Parse configuration text. Relative locations are resolved against the
 * file's directory; `builtin` stays as it is. Errors are
 * `AMIX_ERR_INVALID_ARG` naming file, line and column.
 */
export function parseBindingConfig(text: string, file = '<config>'): MethodRegistration[] {
  const out: MethodRegistration[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const hash = raw.indexOf('#');
    const body = hash >= 0 ? raw.slice(0, hash) : raw;
    if (body.trim() === '') continue;
    const fields = [...body.matchAll(/\S+/g)];
    const col = (k: number) => (fields[k]?.index ?? body.length) + 1;
    if (fields.length < 3) throw syntax(file, i + 1, col(fields.length), 'expected ORDER NAME LOCATION');
    const order = Number(fields[0]![0]);
    if (!Number.isSafeInteger(order))
      throw syntax(file, i + 1, col(0), `order must be an integer, got ${fields[0]![0]}`);
    const name = fields[1]![0];
    if (!METHOD_NAME.test(name)) throw syntax(file, i + 1, col(1), `bad method name ${JSON.stringify(name)}`);
    const loc = fields[2]![0];
    const location = loc === 'builtin' || /^[a-z]+:/.test(loc) || isAbsolute(loc) ? loc : resolve(dirname(file), loc);
    const reg: MethodRegistration = { order, name, location };
    for (let k = 3; k < fields.length; k++) {
      const m = /^allow=(.+)$/.exec(fields[k]![0]);
      if (!m) throw syntax(file, i + 1, col(k), `unknown field ${JSON.stringify(fields[k]![0])} (only allow=...)`);
      reg.allow = m[1]!.split(',').filter(Boolean);
    }
    out.push(reg);
  }
  return out;
}

/**
 * Read a user's configuration file. It names modules amix will import, so
 * it must be owner-only like every amix state file (0600 or narrower, ours,
 * not a symlink): anything else is refused with `AMIX_ERR_UNSAFE_DIR`. A
 * missing file is `AMIX_ERR_INVALID_ARG`.
 */
export async function readBindingConfig(file: string): Promise<MethodRegistration[]> {
  const path = resolve(file);
  const text = await readPrivateFile(path);
  if (text === undefined)
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `binding configuration ${path} does not exist`, {
      details: { option: 'config', file: path },
    });
  return parseBindingConfig(text, path);
}
