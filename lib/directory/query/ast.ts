/**
 * The query language's AST: the built-in fields, keywords and operators,
 * the node types, the attribute-name rule, and {@link optimizeQuery}, the
 * meaning-preserving rewrite both executors run on. See `../query.ts` for
 * the grammar and the semantics.
 *
 * @module
 */

/** The built-in fields every point has, usable in queries like attributes. */
export const BUILTIN_FIELDS = ['id', 'name', 'owner', 'role'] as const;
/** One of {@link BUILTIN_FIELDS}. */
export type BuiltinField = (typeof BUILTIN_FIELDS)[number];

/** Words with a meaning in the grammar; they cannot be attribute names. */
export const QUERY_KEYWORDS = ['and', 'or', 'not', 'exists', 'true', 'false'] as const;

/** The comparison operators, by name. */
export const ComparisonOperator = {
  eq: '=',
  ne: '!=',
  lt: '<',
  le: '<=',
  gt: '>',
  ge: '>=',
} as const;
/** One of the comparison operator symbols. */
export type ComparisonOperator = (typeof ComparisonOperator)[keyof typeof ComparisonOperator];

/** A literal in a comparison. `column` is 1-based, in code points. */
export type QueryLiteral =
  | {
      readonly type: 'string';
      readonly value: string;
      /** Indices (UTF-16) in `value` of unescaped `*`/`?`; absent when there are none. */
      readonly wildcards?: readonly number[];
      readonly column: number;
    }
  | { readonly type: 'number'; readonly value: number; readonly column: number }
  | { readonly type: 'boolean'; readonly value: boolean; readonly column: number };

/** A comparison of an attribute with a literal. */
export interface QueryComparison {
  readonly kind: 'compare';
  readonly attribute: string;
  readonly op: ComparisonOperator;
  readonly value: QueryLiteral;
  readonly column: number;
}

/**
 * A node of the parsed query. `and`/`or` are flattened to lists. `range` is
 * never parsed: {@link optimizeQuery} makes it from ordering comparisons of
 * one attribute in one `and` (`port >= 5000 and port < 6000`), so they run as
 * one index range.
 */
export type QueryNode =
  | { readonly kind: 'range'; readonly attribute: string; readonly operands: readonly QueryComparison[] }
  | { readonly kind: 'and'; readonly operands: readonly QueryNode[] }
  | { readonly kind: 'or'; readonly operands: readonly QueryNode[] }
  | { readonly kind: 'not'; readonly operand: QueryNode }
  | { readonly kind: 'exists'; readonly attribute: string; readonly column: number }
  | QueryComparison;

/** The longest query accepted, in UTF-16 code units. */
export const MAX_QUERY_LENGTH = 8192;
/** The deepest nesting of parentheses and `not` accepted. */
export const MAX_QUERY_DEPTH = 64;

const ATTRIBUTE_RE = /^[A-Za-z_][A-Za-z0-9_.:/-]*$/;
/** {@link QUERY_KEYWORDS} as a set. */
export const KEYWORD_SET: ReadonlySet<string> = new Set(QUERY_KEYWORDS);
/** {@link BUILTIN_FIELDS} as a set. */
export const BUILTIN_SET: ReadonlySet<string> = new Set(BUILTIN_FIELDS);

/** True when `name` can be used as an attribute key (and so queried): the attribute rule, not a keyword, not a built-in field. */
export function isAttributeName(name: string): boolean {
  return ATTRIBUTE_RE.test(name) && !KEYWORD_SET.has(name.toLowerCase()) && !BUILTIN_SET.has(name);
}

/** A leaf: a comparison, an `exists`, or a merged `range`. */
export type QueryLeaf = Extract<QueryNode, { kind: 'compare' | 'exists' | 'range' }>;

/**
 * Rewrite an AST for execution without changing its meaning: ordering
 * comparisons (`<`, `<=`, `>`, `>=`) of the same user attribute with literals
 * of the same type inside one `and` become one `range` node.
 */
export function optimizeQuery(node: QueryNode): QueryNode {
  switch (node.kind) {
    case 'or':
      return { kind: 'or', operands: node.operands.map(optimizeQuery) };
    case 'not':
      return { kind: 'not', operand: optimizeQuery(node.operand) };
    case 'and': {
      const groups = new Map<string, QueryComparison[]>();
      const rest: QueryNode[] = [];
      for (const o of node.operands) {
        if (
          o.kind === 'compare' &&
          !BUILTIN_SET.has(o.attribute) &&
          o.op !== '=' &&
          o.op !== '!=' &&
          o.value.type !== 'boolean'
        ) {
          const key = `${o.value.type}:${o.attribute}`;
          const g = groups.get(key);
          if (g) g.push(o);
          else groups.set(key, [o]);
        } else rest.push(optimizeQuery(o));
      }
      const merged: QueryNode[] = [...groups.values()].map((g) =>
        g.length === 1 ? g[0]! : { kind: 'range', attribute: g[0]!.attribute, operands: g },
      );
      const operands = [...merged, ...rest];
      return operands.length === 1 ? operands[0]! : { kind: 'and', operands };
    }
    default:
      return node;
  }
}

/** True for a leaf on a user attribute (not a built-in field): the ones {@link CompileOptions.drivers} chooses among. */
export function isAttributeLeaf(node: QueryNode): boolean {
  return (
    node.kind === 'range' || ((node.kind === 'compare' || node.kind === 'exists') && !BUILTIN_SET.has(node.attribute))
  );
}
