/**
 * The query evaluator: the same AST and semantics as the SQL compiler, over
 * one point in memory (federation tests and the bench's `memory-scan`
 * baseline use it).
 *
 * @module
 */
import { BUILTIN_SET, type BuiltinField, type QueryLiteral, type QueryNode } from './ast.js';

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
