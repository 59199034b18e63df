/**
 * The directory query language: a lexer and a recursive-descent parser to an
 * AST, a compiler from the AST to a parameterised SQL condition, and an
 * evaluator of the same AST over a point in memory (used by federation tests
 * and by the bench's `memory-scan` baseline).
 *
 * Grammar (keywords are case-insensitive):
 *
 * ```text
 * query      := or
 * or         := and ( "or" and )*
 * and        := unary ( "and" unary )*
 * unary      := "not" unary | primary
 * primary    := "(" or ")" | "exists" attribute | attribute op literal
 * op         := "=" | "!=" | "<" | "<=" | ">" | ">="
 * literal    := string | number | "true" | "false"
 * attribute  := [A-Za-z_][A-Za-z0-9_.:/-]*   (not a keyword)
 * string     := '"' ( char | '\' escape )* '"'
 * escape     := '"' | '\' | '/' | 'n' | 'r' | 't' | '*' | '?' | 'uXXXX' | 'u{X...}'
 * number     := -?digits[.digits][e[+-]digits]
 * ```
 *
 * Semantics:
 * - `id`, `name`, `owner` and `role` are built-in fields of every point
 *   (strings, always present, always public). Every other name is an attribute.
 * - Comparisons are typed: an attribute compared with a literal of another
 *   type does not match `=`, `<`, `<=`, `>`, `>=`. Numbers compare
 *   numerically, strings by Unicode code point (SQLite `BINARY`), booleans
 *   only with `=` and `!=`.
 * - `a != v` means "a exists and is not equal to v" (a value of another type
 *   is not equal); `not a = v` also matches points without `a`.
 * - In a string compared with `=` or `!=`, an unescaped `*` matches any run of
 *   characters and `?` exactly one; `\*` and `\?` are literal. With the
 *   ordering operators `*` and `?` are plain characters.
 * - An attribute the asker may not see (private, and not theirs) behaves
 *   exactly as if it did not exist.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';

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
const KEYWORD_SET: ReadonlySet<string> = new Set(QUERY_KEYWORDS);
const BUILTIN_SET: ReadonlySet<string> = new Set(BUILTIN_FIELDS);

/** True when `name` can be used as an attribute key (and so queried): the attribute rule, not a keyword, not a built-in field. */
export function isAttributeName(name: string): boolean {
  return ATTRIBUTE_RE.test(name) && !KEYWORD_SET.has(name.toLowerCase()) && !BUILTIN_SET.has(name);
}

type TokenKind = 'ident' | 'keyword' | 'string' | 'number' | 'op' | 'lparen' | 'rparen' | 'end';
interface Token {
  kind: TokenKind;
  /** Identifier or keyword text (keywords lowercased), operator symbol, or decoded string. */
  text: string;
  /** UTF-16 offset where the token starts. */
  start: number;
  number?: number;
  wildcards?: number[];
}

/** Parse a query to its AST. Throws `AMIX_ERR_QUERY_SYNTAX` with the 1-based column in the message and in `details.column`. */
export function parseQuery(source: string): QueryNode {
  if (typeof source !== 'string') {
    throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'query must be a string', { details: { option: 'query' } });
  }
  if (source.length > MAX_QUERY_LENGTH) {
    throw new AmixError(
      ErrorCode.AMIX_ERR_INVALID_ARG,
      `query must be at most ${MAX_QUERY_LENGTH} characters (got ${source.length})`,
      {
        details: { option: 'query' },
      },
    );
  }
  return new Parser(source).parse();
}

function columnOf(source: string, offset: number): number {
  let col = 1;
  for (let i = 0; i < offset && i < source.length; i++) {
    const c = source.charCodeAt(i);
    // A surrogate pair is one column: count only its high half.
    if (c < 0xdc00 || c > 0xdfff) col++;
  }
  return col;
}

function describeToken(tok: Token): string {
  switch (tok.kind) {
    case 'end':
      return 'end of query';
    case 'string':
      return 'a string';
    case 'number':
      return `number ${tok.text}`;
    case 'keyword':
      return `"${tok.text}"`;
    case 'ident':
      return `attribute ${tok.text}`;
    default:
      return `"${tok.text}"`;
  }
}

class Parser {
  readonly #src: string;
  #pos = 0;
  #tok: Token;
  #depth = 0;

  constructor(src: string) {
    this.#src = src;
    this.#tok = this.#lex();
  }

  parse(): QueryNode {
    if (this.#tok.kind === 'end')
      throw this.#error(this.#tok.start, 'empty query: expected an attribute comparison, "exists", "not" or "("');
    const node = this.#or();
    if (this.#current().kind !== 'end') {
      const what =
        this.#tok.kind === 'rparen'
          ? 'unbalanced ")"'
          : `unexpected ${describeToken(this.#tok)}; expected "and", "or" or end of query`;
      throw this.#error(this.#tok.start, what, this.#tok);
    }
    return node;
  }

  #error(offset: number, what: string, tok?: Token): AmixError {
    const column = columnOf(this.#src, offset);
    const details: Record<string, unknown> = { column };
    if (tok) details.found = describeToken(tok);
    return new AmixError(ErrorCode.AMIX_ERR_QUERY_SYNTAX, `query syntax error at column ${column}: ${what}`, {
      details,
    });
  }

  /** The current token, read through a call so narrowing does not survive #next(). */
  #current(): Token {
    return this.#tok;
  }

  #next(): Token {
    const t = this.#tok;
    this.#tok = this.#lex();
    return t;
  }

  #or(): QueryNode {
    const operands = [this.#and()];
    while (this.#tok.kind === 'keyword' && this.#tok.text === 'or') {
      this.#next();
      operands.push(this.#and());
    }
    return operands.length === 1 ? operands[0]! : { kind: 'or', operands };
  }

  #and(): QueryNode {
    const operands = [this.#unary()];
    while (this.#tok.kind === 'keyword' && this.#tok.text === 'and') {
      this.#next();
      operands.push(this.#unary());
    }
    return operands.length === 1 ? operands[0]! : { kind: 'and', operands };
  }

  #enter(tok: Token): void {
    if (++this.#depth > MAX_QUERY_DEPTH)
      throw this.#error(tok.start, `nesting deeper than ${MAX_QUERY_DEPTH} levels`, tok);
  }

  #unary(): QueryNode {
    const tok = this.#tok;
    if (tok.kind === 'keyword' && tok.text === 'not') {
      this.#enter(tok);
      this.#next();
      const operand = this.#unary();
      this.#depth--;
      return { kind: 'not', operand };
    }
    return this.#primary();
  }

  #primary(): QueryNode {
    const tok = this.#tok;
    if (tok.kind === 'lparen') {
      this.#enter(tok);
      this.#next();
      if (this.#tok.kind === 'rparen') throw this.#error(this.#tok.start, 'empty parentheses', this.#tok);
      const inner = this.#or();
      if (this.#current().kind !== 'rparen') {
        throw this.#error(
          this.#tok.start,
          `expected ")" to close the "(" at column ${columnOf(this.#src, tok.start)}, found ${describeToken(this.#tok)}`,
          this.#tok,
        );
      }
      this.#next();
      this.#depth--;
      return inner;
    }
    if (tok.kind === 'keyword' && tok.text === 'exists') {
      this.#next();
      const attr = this.#tok;
      if (attr.kind !== 'ident')
        throw this.#error(attr.start, `expected an attribute name after "exists", found ${describeToken(attr)}`, attr);
      this.#next();
      return { kind: 'exists', attribute: attr.text, column: columnOf(this.#src, tok.start) };
    }
    if (tok.kind !== 'ident') {
      throw this.#error(
        tok.start,
        `expected an attribute name, "exists", "not" or "(", found ${describeToken(tok)}`,
        tok,
      );
    }
    this.#next();
    const op = this.#tok;
    if (op.kind !== 'op')
      throw this.#error(
        op.start,
        `expected a comparison operator (=, !=, <, <=, >, >=) after ${tok.text}, found ${describeToken(op)}`,
        op,
      );
    this.#next();
    const lit = this.#tok;
    const column = columnOf(this.#src, lit.start);
    let value: QueryLiteral;
    if (lit.kind === 'string') {
      const wildcards = op.text === '=' || op.text === '!=' ? lit.wildcards : undefined;
      value =
        wildcards && wildcards.length > 0
          ? { type: 'string', value: lit.text, wildcards, column }
          : { type: 'string', value: lit.text, column };
    } else if (lit.kind === 'number') {
      value = { type: 'number', value: lit.number!, column };
    } else if (lit.kind === 'keyword' && (lit.text === 'true' || lit.text === 'false')) {
      if (op.text !== '=' && op.text !== '!=')
        throw this.#error(lit.start, `operator ${op.text} needs a number or a string, not a boolean`, lit);
      value = { type: 'boolean', value: lit.text === 'true', column };
    } else {
      throw this.#error(
        lit.start,
        `expected a value (a "string", a number, true or false) after ${op.text}, found ${describeToken(lit)}`,
        lit,
      );
    }
    this.#next();
    return {
      kind: 'compare',
      attribute: tok.text,
      op: op.text as ComparisonOperator,
      value,
      column: columnOf(this.#src, tok.start),
    };
  }

  #lex(): Token {
    const s = this.#src;
    let i = this.#pos;
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
    const start = i;
    if (i >= s.length) {
      this.#pos = i;
      return { kind: 'end', text: '', start };
    }
    const c = s[i]!;
    if (c === '(' || c === ')') {
      this.#pos = i + 1;
      return { kind: c === '(' ? 'lparen' : 'rparen', text: c, start };
    }
    if (c === '=') {
      this.#pos = i + 1;
      return { kind: 'op', text: '=', start };
    }
    if (c === '!') {
      if (s[i + 1] === '=') {
        this.#pos = i + 2;
        return { kind: 'op', text: '!=', start };
      }
      throw this.#error(start, '"!" must be followed by "=" (use "not" for negation)');
    }
    if (c === '<' || c === '>') {
      const eq = s[i + 1] === '=';
      this.#pos = i + (eq ? 2 : 1);
      return { kind: 'op', text: eq ? `${c}=` : c, start };
    }
    if (c === '"') return this.#string(start);
    if (c === '-' || c === '.' || (c >= '0' && c <= '9')) return this.#number(start);
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < s.length && /[A-Za-z0-9_.:/-]/.test(s[j]!)) j++;
      const text = s.slice(i, j);
      this.#pos = j;
      const lower = text.toLowerCase();
      if (KEYWORD_SET.has(lower)) return { kind: 'keyword', text: lower, start };
      return { kind: 'ident', text, start };
    }
    throw this.#error(start, `unexpected character ${JSON.stringify(String.fromCodePoint(s.codePointAt(i)!))}`);
  }

  #number(start: number): Token {
    const s = this.#src;
    const m = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(s.slice(start, start + 400));
    const end = start + (m ? m[0].length : 0);
    if (!m || (end < s.length && /[A-Za-z0-9_.:/-]/.test(s[end]!))) {
      throw this.#error(start, 'malformed number');
    }
    const n = Number(m[0]);
    if (!Number.isFinite(n)) throw this.#error(start, 'number out of range');
    this.#pos = end;
    return { kind: 'number', text: m[0], start, number: n };
  }

  #string(start: number): Token {
    const s = this.#src;
    let i = start + 1;
    let out = '';
    const wildcards: number[] = [];
    for (;;) {
      if (i >= s.length) throw this.#error(start, 'unterminated string');
      const c = s[i]!;
      if (c === '"') {
        i++;
        break;
      }
      if (c === '\\') {
        const e = s[i + 1];
        if (e === undefined) throw this.#error(start, 'unterminated string');
        const simple: Record<string, string> = {
          '"': '"',
          '\\': '\\',
          '/': '/',
          n: '\n',
          r: '\r',
          t: '\t',
          '*': '*',
          '?': '?',
        };
        if (e in simple) {
          out += simple[e];
          i += 2;
          continue;
        }
        if (e === 'u') {
          let hex: string | undefined;
          let len: number;
          if (s[i + 2] === '{') {
            const close = s.indexOf('}', i + 3);
            hex = close > 0 ? s.slice(i + 3, close) : undefined;
            len = close > 0 ? close - i + 1 : 0;
            if (hex !== undefined && !/^[0-9A-Fa-f]{1,6}$/.test(hex)) hex = undefined;
          } else {
            hex = s.slice(i + 2, i + 6);
            len = 6;
            if (!/^[0-9A-Fa-f]{4}$/.test(hex)) hex = undefined;
          }
          const cp = hex === undefined ? NaN : parseInt(hex, 16);
          if (!(cp <= 0x10ffff)) throw this.#error(i, 'bad \\u escape: use \\uXXXX or \\u{X...} up to 10FFFF');
          out += String.fromCodePoint(cp);
          i += len;
          continue;
        }
        throw this.#error(i, `unknown escape \\${e}`);
      }
      if (c === '*' || c === '?') wildcards.push(out.length);
      out += c;
      i++;
    }
    this.#pos = i;
    return { kind: 'string', text: out, start, wildcards };
  }
}

// ---------------------------------------------------------------------------
// Compiler

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
const ID_RE = /^([0-9a-f]{16})\.([1-9][0-9]{0,15})$/;

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
      const m = ID_RE.exec(node.value.value);
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

// ---------------------------------------------------------------------------
// Evaluator

/** A point as the evaluator sees it: built-ins plus only the attributes the asker may see. */
export interface QuerySubject {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly role: string;
  /** Visible attributes only. */
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
}

/** Compare two strings by Unicode code point (SQLite BINARY order), not by UTF-16 unit. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800-DFFF) encode code points above FFFF: move them above E000-FFFF.
    if (x >= 0xd800) x += x <= 0xdfff ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y <= 0xdfff ? 0x2000 : -0x800;
    return x - y;
  }
  return a.length - b.length;
}

const regexCache = new Map<string, RegExp>();
function wildcardRegex(value: string, wildcards: readonly number[]): RegExp {
  const key = `${wildcards.join(',')}:${value}`;
  let re = regexCache.get(key);
  if (!re) {
    const wild = new Set(wildcards);
    let src = '';
    for (let i = 0; i < value.length; i++) {
      const c = value[i]!;
      if (wild.has(i)) src += c === '*' ? '.*' : '.';
      else src += c.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
    }
    re = new RegExp(`^${src}$`, 'su');
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(key, re);
  }
  return re;
}

function equalsLiteral(v: string | number | boolean, lit: QueryLiteral): boolean {
  if (typeof v !== lit.type) return false;
  if (lit.type === 'string' && lit.wildcards) return wildcardRegex(lit.value, lit.wildcards).test(v as string);
  return v === lit.value;
}

/** Evaluate an AST against one point in memory, with the same semantics as the SQL compiler. */
export function evaluateQuery(node: QueryNode, subject: QuerySubject): boolean {
  switch (node.kind) {
    case 'and':
    case 'range':
      return node.operands.every((n) => evaluateQuery(n, subject));
    case 'or':
      return node.operands.some((n) => evaluateQuery(n, subject));
    case 'not':
      return !evaluateQuery(node.operand, subject);
    case 'exists':
      return BUILTIN_SET.has(node.attribute) || Object.hasOwn(subject.attributes, node.attribute);
    case 'compare': {
      const v = BUILTIN_SET.has(node.attribute)
        ? subject[node.attribute as BuiltinField]
        : Object.hasOwn(subject.attributes, node.attribute)
          ? subject.attributes[node.attribute]
          : undefined;
      if (v === undefined) return false;
      const lit = node.value;
      if (node.op === '=') return equalsLiteral(v, lit);
      if (node.op === '!=') return !equalsLiteral(v, lit);
      if (typeof v !== lit.type) return false;
      const d = lit.type === 'number' ? (v as number) - lit.value : compareCodePoints(v as string, lit.value as string);
      switch (node.op) {
        case '<':
          return d < 0;
        case '<=':
          return d <= 0;
        case '>':
          return d > 0;
        default:
          return d >= 0;
      }
    }
  }
}
