/**
 * The registered environment attributes of the Named Execution Environment
 * Manager (seed 002 ¶249, ¶588-610, Table 11): sets of attributes that
 * describe what a computer system offers, registered by the administrator
 * or filled by a probe, and kept permanently in the configuration file
 * (the seed's NEECF).
 *
 * Attributes are the directory's kind (string, number or boolean values
 * under names the query language accepts), so a required-attribute
 * expression is a directory query. The names this module fills, one or
 * more per row of Table 11: `os`, `os.release`, `os.version` (1: operating
 * system); `arch`, `cpus`, `memory.mb` (2: hardware); `software.<binary>`
 * `true` for each binary asked about and found on PATH (3); `access.local`
 * (4, 11: how the system is reached); `hostname` (5, 10: the physical
 * system); `shell` (7: the default shell); `system` (13: the machine's
 * communication identifier, the NEEM's system name). Rows 6, 8, 9 and 12
 * (security, application-specific, maximum connections, functionality)
 * have no probe: an administrator registers them under names of their own
 * (`security.*`, `app.*`, `connections.max`, `function.*` are suggested).
 *
 * @module
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { arch, cpus, hostname, platform, release, totalmem, version } from 'node:os';
import { delimiter, join } from 'node:path';
import { invalidArg } from '../../core/errors.js';
import { readPrivateFile } from '../../core/paths.js';

/** One attribute value (as in the directory). */
export type AttributeValue = string | number | boolean;
/** A set of registered attributes. */
export type AttributeSet = Record<string, AttributeValue>;

/** A computer system as the NEEM knows it: its attribute sets, and whether it is this machine or a remote one. */
export interface SystemEntry {
  /** The system's name (its communication identifier, Table 11 row 13). */
  name: string;
  /** One or more sets (¶589: several may be registered for one system), by set name. */
  sets: Record<string, AttributeSet>;
  /** A remote system (¶613): reached through a peer daemon of this id; absent for this machine. */
  remote?: { daemon: string; neem?: boolean; neecf?: boolean };
}

/** The configuration file's contents (NEECF): JSON, `{ "systems": [SystemEntry, ...], "servePeers": ... }`. */
export interface NeeConfig {
  systems: SystemEntry[];
  /**
   * Which peer daemons (by id) may create environments and run commands
   * here through amixd (`true`: every peer this daemon peers with). Default
   * none: a peer's `nee.*` requests are refused.
   */
  servePeers?: true | string[];
}

const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$/;
const SYSTEM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Check a set: names the query language accepts, values string, finite number or boolean. */
export function checkAttributeSet(field: string, set: unknown): AttributeSet {
  if (typeof set !== 'object' || set === null || Array.isArray(set))
    throw invalidArg(field, 'must be an object of attributes', set);
  for (const [k, v] of Object.entries(set)) {
    if (!ATTRIBUTE_NAME.test(k))
      throw invalidArg(`${field}.${k}`, 'is not an attribute name the query language accepts');
    if (!(typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))))
      throw invalidArg(`${field}.${k}`, 'must be a string, a finite number or a boolean', v);
  }
  return { ...(set as AttributeSet) };
}

/** Check a system entry (`AMIX_ERR_INVALID_ARG` naming the field). */
export function checkSystem(field: string, s: unknown): SystemEntry {
  if (typeof s !== 'object' || s === null) throw invalidArg(field, 'must be an object', s);
  const e = s as Partial<SystemEntry>;
  if (typeof e.name !== 'string' || !SYSTEM_NAME.test(e.name))
    throw invalidArg(`${field}.name`, 'must be a letter or digit, then letters, digits, ., _ or -', e.name);
  const sets: Record<string, AttributeSet> = {};
  if (typeof e.sets !== 'object' || e.sets === null)
    throw invalidArg(`${field}.sets`, 'must be an object of sets', e.sets);
  for (const [k, v] of Object.entries(e.sets)) sets[k] = checkAttributeSet(`${field}.sets.${k}`, v);
  if (e.remote !== undefined && (typeof e.remote !== 'object' || typeof e.remote?.daemon !== 'string'))
    throw invalidArg(`${field}.remote`, 'must be { daemon: string, neem?: boolean, neecf?: boolean }', e.remote);
  return { name: e.name, sets, ...(e.remote ? { remote: { ...e.remote } } : {}) };
}

/**
 * Read a configuration file. It must be the owner's alone (no group or
 * other bits, no symlink: `AMIX_ERR_UNSAFE_DIR`), since it says where
 * commands may run; a malformed one is `AMIX_ERR_INVALID_ARG` naming the
 * field. A missing file is an empty configuration.
 */
export async function readNeeConfig(path: string): Promise<NeeConfig> {
  // Read without following a symlink, checked on the opened file: ours, 0600 or narrower.
  const text = await readPrivateFile(path);
  if (text === undefined) return { systems: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalidArg('neecf', `${path} is not JSON (${(err as Error).message})`);
  }
  const systems = (raw as { systems?: unknown })?.systems;
  if (!Array.isArray(systems)) throw invalidArg('neecf.systems', `${path}: must be an array of systems`);
  const serve = (raw as { servePeers?: unknown }).servePeers;
  if (serve !== undefined && serve !== true && !(Array.isArray(serve) && serve.every((x) => typeof x === 'string')))
    throw invalidArg('neecf.servePeers', `${path}: must be true or an array of daemon ids`, serve);
  return {
    systems: systems.map((s, i) => checkSystem(`neecf.systems[${i}]`, s)),
    ...(serve !== undefined ? { servePeers: serve as true | string[] } : {}),
  };
}

/** Is `bin` an executable file in a PATH directory? */
function onPath(bin: string): boolean {
  if (!/^[A-Za-z0-9._+-]+$/.test(bin)) return false;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      const f = join(dir, bin);
      if (!statSync(f).isFile()) continue;
      accessSync(f, constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The default shell: `$SHELL` if it is executable, else `/bin/sh`. */
export function defaultShell(): string {
  const sh = process.env.SHELL;
  if (sh) {
    try {
      accessSync(sh, constants.X_OK);
      return sh;
    } catch {
      // fall through
    }
  }
  return '/bin/sh';
}

/**
 * The built-in probe (¶249: "an automated Application Process which probes
 * the machine"): what Node can see of this machine, and `software.<bin>`
 * for each of `software` found on PATH (`false` when it is not).
 */
export function probeAttributes(system: string, software: readonly string[] = []): AttributeSet {
  const set: AttributeSet = {
    system,
    hostname: hostname(),
    os: platform(),
    'os.release': release(),
    'os.version': version(),
    arch: arch(),
    cpus: cpus().length,
    'memory.mb': Math.round(totalmem() / 1048576),
    shell: defaultShell(),
    'access.local': true,
  };
  // /etc/os-release names the distribution, where there is one.
  try {
    const id = /^ID=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.replace(/^"|"$/g, '');
    if (id) set['os.distribution'] = id;
  } catch {
    // not Linux, or no os-release
  }
  for (const bin of software) set[`software.${bin}`] = onPath(bin);
  return set;
}
