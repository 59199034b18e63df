/**
 * Point identifiers: `<directoryId>.<seq>`, the 16 hex digits of the
 * directory that holds the point and its sequence number there (never
 * reused). Parsing and the identifier order every merged page uses.
 *
 * @module
 */
import { compareCodePoints } from './query/evaluate.js';

/** The shape of a point identifier: group 1 the directory id, group 2 the sequence number. */
export const POINT_ID_RE = /^([0-9a-f]{16})\.([1-9][0-9]{0,15})$/;

/** Split a point identifier into its directory id and sequence number; undefined when `s` is not shaped like one. */
export function parsePointId(s: string): { directoryId: string; seq: number } | undefined {
  const m = POINT_ID_RE.exec(s);
  if (!m) return undefined;
  const seq = Number(m[2]);
  return Number.isSafeInteger(seq) ? { directoryId: m[1]!, seq } : undefined;
}

/** Order two point identifiers: by directory id, then numerically by sequence. */
export function comparePointIds(a: string, b: string): number {
  const x = parsePointId(a);
  const y = parsePointId(b);
  if (!x || !y) return compareCodePoints(a, b);
  return x.directoryId < y.directoryId ? -1 : x.directoryId > y.directoryId ? 1 : x.seq - y.seq;
}
