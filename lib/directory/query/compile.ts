/**
 * The query compiler: an AST to a parameterised SQL condition over the
 * directory's `points` and `attributes` tables. Values travel only as
 * parameters, so the SQL text can be cached as a prepared statement.
 *
 * @module
 */
import { POINT_ID_RE } from '../ids.js';
import {
  BUILTIN_SET,
  type BuiltinField,
  type ComparisonOperator,
  type QueryLeaf,
  type QueryLiteral,
  type QueryNode,
} from './ast.js';

/** Who is asking, as far as visibility goes. */
export interface QueryPrincipal {
  /** The asker's owner identity. */
  readonly owner: string;
  /** The administrator sees every attribute. */
  readonly admin?: boolean;
}

/** A compiled condition over `points p`, with its positional parameters. */
export interface CompiledQuery {
  /** A SQL boolean expression over the alias `p` of the `points` table. */
  readonly where: string;
  /** Values for its `?` placeholders, in order. */
  readonly params: unknown[];
}

const BUILTIN_COLUMN: Record<Exclude<BuiltinField, 'id'>, string> = {
  name: 'p.name',
  owner: 'p.owner',
  role: 'p.role',
};

/** Options of {@link compileQuery}. */
export interface CompileOptions {
  /**
   * The attribute leaves to compile as *driving* sub-queries
   * (`p.seq IN (SELECT a.seq ... by the attribute index)`); every other leaf
   * becomes a correlated filter (`EXISTS (... a.seq = p.seq ...)`, one
   * primary-key probe per candidate point). Default: every leaf drives.
   */
  readonly drivers?: ReadonlySet<QueryNode>;
}

/**
 * Compile an AST to a SQL condition over `points p` (joined to `attributes a`
 * through sub-queries). Values only ever travel as parameters; the SQL text
 * depends on the query's shape, the asker's kind (anonymous, owner, admin)
 * and the plan, never on a value, so it can be cached as a prepared statement.
 */
export function compileQuery(
  node: QueryNode,
  directoryId: string,
  as?: QueryPrincipal,
  options: CompileOptions = {},
): CompiledQuery {
  const params: unknown[] = [];
  const where = compileNode(node, { dirId: directoryId, as, drivers: options.drivers }, params);
  return { where, params };
}

interface CompileContext {
  dirId: string;
  as: QueryPrincipal | undefined;
  drivers: ReadonlySet<QueryNode> | undefined;
}

function compileNode(node: QueryNode, cx: CompileContext, params: unknown[]): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      return `(${node.operands.map((n) => compileNode(n, cx, params)).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
    case 'not':
      return `(NOT ${compileNode(node.operand, cx, params)})`;
    case 'range':
      return attributeSubquery(node, cx, params);
    case 'exists':
      if (BUILTIN_SET.has(node.attribute)) return '1';
      return attributeSubquery(node, cx, params);
    case 'compare':
      if (BUILTIN_SET.has(node.attribute)) return compileBuiltin(node, cx.dirId, params);
      return attributeSubquery(node, cx, params);
  }
}

/**
 * The condition on `attributes a` (key, type, value; no visibility) that an
 * attribute leaf tests. `!=` yields the negated value test, still requiring
 * the key.
 */
export function attributeCondition(node: QueryLeaf): CompiledQuery {
  const params: unknown[] = [node.attribute];
  if (node.kind === 'exists') return { where: 'a.key = ?', params };
  if (node.kind === 'range') {
    const conds = node.operands.map((o) => valueCondition('a.value', o.op, o.value, params));
    return { where: `a.key = ? AND a.type = '${node.operands[0]!.value.type}' AND ${conds.join(' AND ')}`, params };
  }
  const typed = `a.type = '${node.value.type}' AND ${valueCondition('a.value', node.op, node.value, params)}`;
  return { where: node.op === '!=' ? `a.key = ? AND NOT (${typed})` : `a.key = ? AND ${typed}`, params };
}

function attributeSubquery(node: QueryLeaf, cx: CompileContext, params: unknown[]): string {
  const cond = attributeCondition(node);
  const drive = cx.drivers === undefined || cx.drivers.has(node);
  params.push(...cond.params);
  let vis = '';
  if (cx.as === undefined) vis = ' AND a.private = 0';
  else if (!cx.as.admin) {
    params.push(cx.as.owner);
    vis = drive
      ? ' AND (a.private = 0 OR EXISTS (SELECT 1 FROM points o WHERE o.seq = a.seq AND o.owner = ?))'
      : ' AND (a.private = 0 OR p.owner = ?)';
  }
  return drive
    ? `p.seq IN (SELECT a.seq FROM attributes a WHERE ${cond.where}${vis})`
    : `EXISTS (SELECT 1 FROM attributes a WHERE a.seq = p.seq AND ${cond.where}${vis})`;
}

/** The SQL condition that column `col` of a value of the literal's type satisfies `op literal`. */
function valueCondition(
  column: string,
  op: ComparisonOperator,
  lit: QueryLiteral,
  params: unknown[],
  columnParams: readonly unknown[] = [],
): string {
  // The column expression may hold placeholders of its own: push them at each use.
  const col = (): string => {
    params.push(...columnParams);
    return column;
  };
  if (lit.type === 'boolean') {
    const c = col();
    params.push(lit.value ? 1 : 0);
    return `${c} = ?`;
  }
  if (lit.type === 'string' && lit.wildcards) {
    const { glob, prefix, upper } = globOf(lit.value, lit.wildcards);
    // GLOB cannot use the index with a parameter on a column without TEXT
    // affinity, so bound the literal prefix as a range the index can use.
    let range = '';
    if (prefix !== '') {
      range = `${col()} >= ? AND `;
      params.push(prefix);
      if (upper !== undefined) {
        range += `${col()} < ? AND `;
        params.push(upper);
      }
    }
    const c = col();
    params.push(glob);
    return `${range}${c} GLOB ?`;
  }
  const c = col();
  params.push(lit.value);
  return `${c} ${op === '!=' ? '=' : op} ?`;
}

function compileBuiltin(node: Extract<QueryNode, { kind: 'compare' }>, dirId: string, params: unknown[]): string {
  // Built-ins are strings and always present: another type never equals them.
  if (node.value.type !== 'string') return node.op === '!=' ? '1' : '0';
  if (node.attribute === 'id') {
    if (!node.value.wildcards && (node.op === '=' || node.op === '!=')) {
      const m = POINT_ID_RE.exec(node.value.value);
      const seq = m && m[1] === dirId ? Number(m[2]) : undefined;
      if (seq === undefined) return node.op === '=' ? '0' : '1';
      params.push(seq);
      return `p.seq ${node.op} ?`;
    }
    const cond = valueCondition(`(? || '.' || p.seq)`, node.op, node.value, params, [dirId]);
    return node.op === '!=' ? `(NOT (${cond}))` : `(${cond})`;
  }
  const col = BUILTIN_COLUMN[node.attribute as Exclude<BuiltinField, 'id'>];
  const cond = valueCondition(col, node.op, node.value, params);
  return node.op === '!=' ? `(NOT (${cond}))` : `(${cond})`;
}

/**
 * The GLOB pattern of a wildcard string (literal `*`, `?`, `[` escaped as
 * character classes), its literal prefix, and the smallest string above every
 * string with that prefix (undefined when there is none).
 */
export function globOf(
  value: string,
  wildcards: readonly number[],
): { glob: string; prefix: string; upper: string | undefined } {
  const wild = new Set(wildcards);
  let glob = '';
  let prefix = '';
  let inPrefix = true;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (wild.has(i)) {
      glob += c;
      inPrefix = false;
      continue;
    }
    if (inPrefix) prefix += c;
    glob += c === '*' || c === '?' || c === '[' ? `[${c}]` : c;
  }
  return { glob, prefix, upper: prefix === '' ? undefined : successor(prefix) };
}

function successor(prefix: string): string | undefined {
  // BINARY collation orders UTF-8 bytes, i.e. code points: bump the last code point.
  const cps = [...prefix];
  while (cps.length > 0) {
    let cp = cps.pop()!.codePointAt(0)! + 1;
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xe000;
    if (cp <= 0x10ffff) return cps.join('') + String.fromCodePoint(cp);
  }
  return undefined;
}
