/**
 * The directory query language: a lexer and a recursive-descent parser to an
 * AST (`query/parse.ts`, `query/ast.ts`), a compiler from the AST to a
 * parameterised SQL condition (`query/compile.ts`), and an evaluator of the
 * same AST over a point in memory (`query/evaluate.ts`, used by federation
 * tests and by the bench's `memory-scan` baseline). This module is their
 * one entry.
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
export {
  BUILTIN_FIELDS,
  QUERY_KEYWORDS,
  ComparisonOperator,
  MAX_QUERY_LENGTH,
  MAX_QUERY_DEPTH,
  isAttributeName,
  optimizeQuery,
  isAttributeLeaf,
} from './query/ast.js';
export type { BuiltinField, QueryLiteral, QueryComparison, QueryNode, QueryLeaf } from './query/ast.js';
export { parseQuery } from './query/parse.js';
export { compileQuery, attributeCondition, globOf } from './query/compile.js';
export type { QueryPrincipal, CompiledQuery, CompileOptions } from './query/compile.js';
export { evaluateQuery, compareCodePoints } from './query/evaluate.js';
export type { QuerySubject } from './query/evaluate.js';
