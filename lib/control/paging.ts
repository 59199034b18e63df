/**
 * Paged replies for the daemon's listings (`point.ls`, `links`, `instances`,
 * `query`): one control frame holds at most {@link MAX_CONTROL_FRAME} bytes,
 * so a listing that can grow is answered a page at a time, each page cut to
 * a byte budget ({@link PAGE_BYTES}) that always fits a frame whatever the
 * items weigh. The client walks the pages (`DaemonClient.list`).
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import { MAX_CONTROL_FRAME } from './protocol.js';

/**
 * The most result JSON one page carries, in bytes: three quarters of a
 * frame, the rest left for the reply's envelope (id, protobuf tags) with
 * room to spare.
 */
export const PAGE_BYTES = Math.floor((MAX_CONTROL_FRAME * 3) / 4);

/** The largest `limit` a listing takes (the byte budget usually cuts a page shorter). */
export const MAX_PAGE_ITEMS = 100_000;

/** Paging arguments of a listing op: where to start, and at most how many items. */
export interface PageArgs {
  /** Items to skip. Default 0. */
  offset?: number;
  /** At most this many items (1 to {@link MAX_PAGE_ITEMS}); the page may hold fewer to fit a frame. */
  limit?: number;
}

/** One page of a listing. */
export interface Page<T> {
  items: T[];
  /** How many items the whole listing holds now. */
  total: number;
  /** The `offset` of the next page; absent on the last page. */
  next?: number;
}

/** `args.offset` and `args.limit`, checked (`AMIX_ERR_INVALID_ARG` naming the bad one). */
export function pageArgs(op: string, args: PageArgs): { offset: number; limit: number } {
  const offset = args.offset ?? 0;
  const limit = args.limit ?? MAX_PAGE_ITEMS;
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw invalidArg(`${op}: argument offset`, 'must be an integer >= 0', offset);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_ITEMS)
    throw invalidArg(`${op}: argument limit`, `must be an integer from 1 to ${MAX_PAGE_ITEMS}`, limit);
  return { offset, limit };
}

/**
 * The items of `all` from `offset`, at most `limit` of them and at most
 * `budget` bytes of JSON: each item's encoding is measured as it is added,
 * so the page fits a frame however large the items are. A page holds at
 * least one item when any remain (the next offset always moves on); an item
 * that alone cannot fit a frame is refused with `AMIX_ERR_FRAME_TOO_LARGE`.
 */
export function cut<S, T = S>(
  op: string,
  all: readonly S[],
  offset: number,
  limit: number,
  budget: number = PAGE_BYTES,
  map: (s: S) => T = (s) => s as unknown as T,
): { items: T[]; more: boolean } {
  const items: T[] = [];
  // The array's brackets and commas: one byte per item plus two.
  let bytes = 2;
  for (let i = offset; i < all.length && items.length < limit; i++) {
    // Only the items on this page are mapped (a listing's view of an item may cost a lookup).
    const item = map(all[i]!);
    const size = Buffer.byteLength(JSON.stringify(item) ?? 'null') + 1;
    if (bytes + size > budget) {
      if (items.length > 0) break;
      throw tooLarge(op, size, `item ${i} alone does not`);
    }
    bytes += size;
    items.push(item);
  }
  return { items, more: offset + items.length < all.length };
}

/** A page of `all` (each item through `map`) as `args` ask for it. */
export function page<S, T = S>(op: string, all: readonly S[], args: PageArgs, map?: (s: S) => T): Page<T> {
  const { offset, limit } = pageArgs(op, args);
  const { items, more } = cut(op, all, offset, limit, PAGE_BYTES, map);
  return { items, total: all.length, ...(more && items.length > 0 ? { next: offset + items.length } : {}) };
}

/**
 * The answer of a listing op: the whole array when the caller passed no
 * paging argument (the reply older clients expect) and it fits one frame,
 * `AMIX_ERR_FRAME_TOO_LARGE` when it does not (never a cut connection);
 * with `offset` or `limit`, a {@link Page}.
 */
export function listing<S, T = S>(
  op: string,
  all: readonly S[],
  args: PageArgs | undefined,
  map?: (s: S) => T,
): T[] | Page<T> {
  if (args?.offset !== undefined || args?.limit !== undefined) return page(op, all, args, map);
  const { items, more } = cut(op, all, 0, MAX_PAGE_ITEMS, PAGE_BYTES, map);
  if (more) throw tooLarge(op, undefined, `${all.length} items do not`);
  return items;
}

function tooLarge(op: string, length: number | undefined, what: string): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_FRAME_TOO_LARGE,
    `${op}: ${what} fit one reply of ${PAGE_BYTES} bytes: ask for pages with offset and limit (DaemonClient.list)`,
    { details: { length: length ?? PAGE_BYTES + 1, max: PAGE_BYTES } },
  );
}
