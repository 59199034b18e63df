/**
 * The switch header (seed 002, "The Thread Communication Switching
 * Service"): the few bytes a message carries on a link to or from a switch
 * point, so the switch can route it by destination and the receiver sees
 * the original sender. Only entries that face a switch carry it: a direct
 * link between two points pays nothing. The layout is in
 * [docs/switching.md](../../docs/switching.md).
 *
 * ```
 * data    0xA1 | hops u8 | dstLen u8 | srcLen u8 | dst (latin1) | src (latin1) | payload
 * routes  0xA2 | UTF-8 JSON { "switch"?: name, "full"?: true, "add"?: [[dest, [switch, ...]], ...], "del"?: [dest, ...] }
 * ```
 *
 * @module
 */
import { invalidArg } from '../core/errors.js';
import { TRUNK_LOCATION } from './switchTrunk.js';

/** The first byte of a data frame (version 1). */
export const SWITCH_DATA = 0xa1;
/** The first byte of a routes frame (version 1). */
export const SWITCH_ROUTES = 0xa2;
/** A data frame that has crossed this many switches is dropped (a safety net: routes are loop-free). */
export const SWITCH_MAX_HOPS = 16;
/** How long a send through a switch waits for the switch's first routes frame before it calls a name unknown. */
export const ROUTES_WAIT_MS = 2000;
/** The location that names the switch point kind in a registration. */
export const SWITCH_LOCATION = 'amix:switch';

/** A decoded data frame: the payload is a view of the frame. */
export interface SwitchData {
  kind: 'data';
  hops: number;
  dst: string;
  src: string;
  payload: Uint8Array;
}

/**
 * A routes frame: what a switch tells the ends it is linked to. `add` pairs a
 * destination with the path of switches it is reached through (this switch
 * first); `del` withdraws destinations; `full` replaces what the receiver
 * knew from this link; `switch` names the sender when it is a switch.
 */
export interface SwitchRoutes {
  kind: 'routes';
  switch?: string;
  /** Set by a trunk point on what it relays to its switch: its own name (the port is a trunk port). */
  trunk?: string;
  /** Set by a trunk point on its first frame to a switch (a new instance knows nothing): send me your full table. */
  sync?: boolean;
  full?: boolean;
  add?: Array<[string, string[]]>;
  del?: string[];
}

/** True when `location` names the built-in switch point. */
export function isSwitchLocation(location: string | undefined): boolean {
  return location === SWITCH_LOCATION;
}

/**
 * True when a registration is a switch: the built-in one (location
 * `amix:switch`), a trunk point (`amix:trunk`, a switch to its links), or a module of its own that runs `runSwitch(point)` and
 * says so with `data.switch === true`. Links to it carry the switch header.
 */
export function isSwitchPoint(reg: { location: string; data?: unknown } | undefined): boolean {
  if (!reg) return false;
  return (
    isSwitchLocation(reg.location) ||
    reg.location === TRUNK_LOCATION ||
    (reg.data as { switch?: unknown } | undefined)?.switch === true
  );
}

/** The header length of a data frame to `dst` from `src` (what a message through a switch costs on the wire). */
export function headerBytes(dst: string, src: string): number {
  return 4 + dst.length + src.length;
}

/**
 * One data frame: the header then a copy of `payload`. Names are point
 * names (ASCII by the registration rule); `AMIX_ERR_INVALID_ARG` for one
 * longer than 255 characters or with a character above U+00FF.
 */
export function encodeSwitchData(dst: string, src: string, payload: Uint8Array, hops = 0): Uint8Array {
  checkName('to', dst);
  checkName('from', src);
  const out = new Uint8Array(4 + dst.length + src.length + payload.length);
  out[0] = SWITCH_DATA;
  out[1] = hops;
  out[2] = dst.length;
  out[3] = src.length;
  let o = 4;
  for (let i = 0; i < dst.length; i++) out[o++] = dst.charCodeAt(i);
  for (let i = 0; i < src.length; i++) out[o++] = src.charCodeAt(i);
  out.set(payload, o);
  return out;
}

/** A routes frame. */
export function encodeSwitchRoutes(r: Omit<SwitchRoutes, 'kind'>): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(r));
  const out = new Uint8Array(1 + body.length);
  out[0] = SWITCH_ROUTES;
  out.set(body, 1);
  return out;
}

/** The destination of a data frame without decoding the rest (the switch's per-message work), or undefined. */
export function frameDestination(f: Uint8Array): string | undefined {
  if (f.length < 4 || f[0] !== SWITCH_DATA) return undefined;
  const n = f[2]!;
  if (n === 0 || 4 + n + f[3]! > f.length) return undefined;
  return latin1(f, 4, n);
}

/** Decode a frame from a switch entry; undefined for one that is neither a data nor a routes frame. */
export function decodeSwitchFrame(f: Uint8Array): SwitchData | SwitchRoutes | undefined {
  if (f.length >= 4 && f[0] === SWITCH_DATA) {
    const dn = f[2]!;
    const sn = f[3]!;
    if (dn === 0 || 4 + dn + sn > f.length) return undefined;
    return {
      kind: 'data',
      hops: f[1]!,
      dst: latin1(f, 4, dn),
      src: latin1(f, 4 + dn, sn),
      payload: f.subarray(4 + dn + sn),
    };
  }
  if (f.length >= 1 && f[0] === SWITCH_ROUTES) {
    try {
      const r = JSON.parse(new TextDecoder().decode(f.subarray(1))) as Omit<SwitchRoutes, 'kind'>;
      if (r === null || typeof r !== 'object') return undefined;
      const add = Array.isArray(r.add)
        ? r.add.filter(
            (e): e is [string, string[]] =>
              Array.isArray(e) &&
              typeof e[0] === 'string' &&
              Array.isArray(e[1]) &&
              e[1].every((s) => typeof s === 'string'),
          )
        : undefined;
      const del = Array.isArray(r.del) ? r.del.filter((d): d is string => typeof d === 'string') : undefined;
      return {
        kind: 'routes',
        ...(typeof r.switch === 'string' ? { switch: r.switch } : {}),
        ...(typeof r.trunk === 'string' ? { trunk: r.trunk } : {}),
        ...(r.sync === true ? { sync: true } : {}),
        ...(r.full === true ? { full: true } : {}),
        ...(add ? { add } : {}),
        ...(del ? { del } : {}),
      };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * What an end learns from the routes frames of one switch entry: the
 * destinations it reaches and their distance in switches. `synced` once a
 * full table has arrived.
 */
export class LearnedRoutes {
  readonly #dests = new Map<string, number>();
  #synced = false;

  /** True once the switch's full table has arrived. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Apply a routes frame. */
  apply(r: SwitchRoutes): void {
    if (r.full) {
      this.#dests.clear();
      this.#synced = true;
    }
    for (const d of r.del ?? []) this.#dests.delete(d);
    for (const [d, path] of r.add ?? []) this.#dests.set(d, path.length);
  }

  /** The distance to `dest` in switches, or undefined when this entry does not reach it. */
  distance(dest: string): number | undefined {
    return this.#dests.get(dest);
  }

  /** The destinations this entry reaches. */
  destinations(): string[] {
    return [...this.#dests.keys()];
  }
}

function checkName(field: string, name: string): void {
  let ok = name.length > 0 && name.length <= 255;
  // A loop rather than a regular expression: this runs for every message sent through a switch.
  for (let i = 0; ok && i < name.length; i++) {
    const c = name.charCodeAt(i);
    ok = c > 0 && c <= 0xff;
  }
  if (!ok)
    throw invalidArg(`options.${field}`, 'must be a point name of 1-255 Latin-1 characters to cross a switch', name);
}

function latin1(f: Uint8Array, off: number, n: number): string {
  // Names are short: one fromCharCode over the bytes beats a TextDecoder call.
  return String.fromCharCode.apply(null, f.subarray(off, off + n) as unknown as number[]);
}

/**
 * The switch entry an addressed send to `to` goes through: the one (on
 * `link`, if given) with the shortest route; else, while a switch that can
 * teach routes (a receiving entry on its link) has not sent its table,
 * `waiting`; else one that cannot teach routes, tried blind.
 */
export function pickSwitchEntry<T extends { link: string; routes?: LearnedRoutes }>(
  tx: readonly T[],
  rx: ReadonlyArray<{ link: string; switched?: boolean }>,
  to: string,
  link: string | undefined,
): { entry: T | undefined; waiting: boolean } {
  let best: T | undefined;
  let bestD = Infinity;
  let blind: T | undefined;
  let waiting = false;
  for (const e of tx) {
    if (!e.routes || (link !== undefined && e.link !== link)) continue;
    const d = e.routes.distance(to);
    if (d !== undefined && d < bestD) [best, bestD] = [e, d];
    else if (d === undefined && !e.routes.synced) {
      if (rx.some((r) => r.link === e.link && r.switched)) waiting = true;
      else blind ??= e;
    }
  }
  return { entry: best ?? (waiting ? undefined : blind), waiting: best === undefined && waiting };
}

/**
 * A data frame whose source is `name`: `f` itself when it says so already
 * (the usual case, no copy), else a new frame with the source replaced. A
 * switch stamps what arrives from an attached point with the name of that
 * link's far end, so a point cannot pass itself off as another.
 */
export function stampSource(f: Uint8Array, name: string): Uint8Array {
  const dn = f[2]!;
  const sn = f[3]!;
  if (sn === name.length) {
    let same = true;
    for (let i = 0; same && i < sn; i++) same = f[4 + dn + i] === name.charCodeAt(i);
    if (same) return f;
  }
  const dst = latin1(f, 4, dn);
  return encodeSwitchData(dst, name, f.subarray(4 + dn + sn), f[1]);
}
