/**
 * Running a query on one directory: choosing which attribute conditions
 * drive it through the attribute index and which filter per point, then
 * compiling it to SQL and reading one page. The plan changes only the
 * speed, never the result.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import {
  attributeCondition,
  compileQuery,
  isAttributeLeaf,
  optimizeQuery,
  type QueryLeaf,
  type QueryNode,
} from './query.js';
import { POINT_COLUMNS, type DirectoryStore, type PointRow } from './store.js';
import type { Principal, QueryResult } from './types.js';
import type { QueryPlan } from './validate.js';

/** A leaf matching at most this many points drives a query whatever the others match. */
const SURE_DRIVER = 256;

function leaves(node: QueryNode): QueryNode[] {
  if (isAttributeLeaf(node)) return [node];
  if (node.kind === 'and' || node.kind === 'or') return node.operands.flatMap(leaves);
  if (node.kind === 'not') return leaves(node.operand);
  return [];
}

/** The point columns of {@link POINT_COLUMNS}, of the alias `p` (for a join where `seq` is ambiguous). */
const P_COLUMNS = POINT_COLUMNS.split(', ')
  .map((c) => `p.${c}`)
  .join(', ');

/**
 * True for an equality of a user attribute with a plain literal (no
 * wildcard): the attribute index holds its matches in sequence order.
 */
function isIndexEquality(node: QueryNode): node is Extract<QueryNode, { kind: 'compare' }> {
  return (
    node.kind === 'compare' &&
    node.op === '=' &&
    isAttributeLeaf(node) &&
    !(node.value.type === 'string' && node.value.wildcards)
  );
}

/** Plans and runs queries on one {@link DirectoryStore}. */
export class QueryPlanner {
  readonly #store: DirectoryStore;
  /**
   * Leaf match counts the planner measured, for a few seconds: a stale count
   * can only pick a slower plan, never a wrong result, and counting a dense
   * leaf costs about as much as the scan it chooses.
   */
  readonly #estimates = new LRUCache<string, number>({ max: 2048, ttl: 5000 });

  /** A planner over `store`. */
  constructor(store: DirectoryStore) {
    this.#store = store;
  }

  /**
   * Choose which attribute leaves drive the query through the attribute
   * index; the rest become per-point filters. A page of `want` points among
   * `n` costs about `m` index steps when driven by a leaf matching `m`
   * points (each about 4x the cost of a probe: an ephemeral b-tree insert),
   * and about `want * n / m` primary-key probes when scanning points in
   * order with filters; the two meet near `m = sqrt(want * n / 4)`. So count
   * each candidate leaf's matches up to that cap (an index range scan that
   * stops at the cap) and drive by the most selective one when it is under it.
   */
  #plan(ast: QueryNode, want: number): Set<QueryNode> {
    const n = this.#store.maxSeq();
    const cap = Math.max(SURE_DRIVER, Math.min(20_000, Math.round(Math.sqrt((want * n) / 4))));
    const drivers = new Set<QueryNode>();
    if (n <= cap) return new Set(leaves(ast));
    const memo = new Map<QueryNode, number>();
    const estimate = (node: QueryNode): number => {
      let e = memo.get(node);
      if (e !== undefined) return e;
      if (isAttributeLeaf(node)) {
        if (node.kind === 'compare' && node.op === '!=') e = Infinity;
        else {
          const cond = attributeCondition(node as QueryLeaf);
          const key = `${cap}\u0000${cond.where}\u0000${JSON.stringify(cond.params)}`;
          let count = this.#estimates.get(key);
          if (count === undefined) {
            const stmt = this.#store.statement(
              `SELECT count(*) AS n FROM (SELECT 1 FROM attributes a WHERE ${cond.where} LIMIT ?)`,
            );
            count = (stmt.get(...cond.params, cap) as { n: number }).n;
            this.#estimates.set(key, count);
          }
          e = count >= cap ? Infinity : count;
        }
      } else if (node.kind === 'compare') {
        e =
          (node.attribute === 'name' || node.attribute === 'id') &&
          node.op === '=' &&
          !(node.value.type === 'string' && node.value.wildcards)
            ? 1
            : Infinity;
      } else if (node.kind === 'and') {
        // Counting costs up to `cap` index steps: stop at a child that surely drives.
        e = Infinity;
        for (const o of node.operands) {
          e = Math.min(e, estimate(o));
          if (e <= SURE_DRIVER) break;
        }
      } else if (node.kind === 'or') e = node.operands.reduce((sum, o) => sum + estimate(o), 0);
      else e = Infinity;
      memo.set(node, e);
      return e;
    };
    const collect = (node: QueryNode): void => {
      if (isAttributeLeaf(node)) drivers.add(node);
      else if (node.kind === 'or') node.operands.forEach(collect);
      else if (node.kind === 'and') {
        let best = node.operands[0]!;
        for (const o of node.operands) if ((memo.get(o) ?? Infinity) < (memo.get(best) ?? Infinity)) best = o;
        collect(best);
      }
    };
    if (estimate(ast) < cap) collect(ast);
    return drivers;
  }

  /** One page of the matches of `parsed` in this directory, in identifier order, as `as` sees them. */
  run(
    parsed: QueryNode,
    as: Principal | undefined,
    limit: number,
    offset: number,
    plan: QueryPlan = 'auto',
  ): QueryResult {
    // An empty directory (a daemon whose points all live in its cluster
    // replicas) answers without planning or compiling anything.
    if (this.#store.isEmpty()) return { points: [], more: false };
    const ast = optimizeQuery(parsed);
    if (plan === 'auto' && isIndexEquality(ast)) return this.#equality(ast, as, limit, offset);
    const drivers =
      plan === 'auto'
        ? this.#plan(ast, offset + limit + 1)
        : plan === 'index'
          ? new Set(leaves(ast))
          : new Set<QueryNode>();
    const store = this.#store;
    const { where, params } = compileQuery(ast, store.id, as, { drivers });
    const sql = `SELECT ${POINT_COLUMNS} FROM points p WHERE ${where} ORDER BY p.seq LIMIT ? OFFSET ?`;
    const rows = store.statement(sql).all(...params, limit + 1, offset) as PointRow[];
    const more = rows.length > limit;
    if (more) rows.pop();
    return { points: rows.map((r) => store.viewFromRow(r, as)), more };
  }

  /**
   * The fast path of the commonest query, `attribute = literal`: the
   * attribute index (key, type, value, then the table's key seq) holds its
   * matches in sequence order, so one join walks them in identifier order
   * and stops at the page's end, whatever their number: no estimate, no
   * ephemeral list, one statement (the same rows the planned query reads).
   * A point has at most one row per key, so the join yields each once.
   */
  #equality(
    leaf: Extract<QueryNode, { kind: 'compare' }>,
    as: Principal | undefined,
    limit: number,
    offset: number,
  ): QueryResult {
    const store = this.#store;
    const cond = attributeCondition(leaf);
    const params = [...cond.params];
    // The same visibility rule as compileQuery's: a private attribute matches only for its owner and the administrator.
    let vis = '';
    if (as === undefined) vis = ' AND a.private = 0';
    else if (!as.admin) {
      vis = ' AND (a.private = 0 OR p.owner = ?)';
      params.push(as.owner);
    }
    const sql =
      `SELECT ${P_COLUMNS} FROM attributes a JOIN points p ON p.seq = a.seq ` +
      `WHERE ${cond.where}${vis} ORDER BY a.seq LIMIT ? OFFSET ?`;
    const rows = store.statement(sql).all(...params, limit + 1, offset) as PointRow[];
    const more = rows.length > limit;
    if (more) rows.pop();
    return { points: rows.map((r) => store.viewFromRow(r, as)), more };
  }

  /** Forget the measured estimates. */
  clear(): void {
    this.#estimates.clear();
  }
}
