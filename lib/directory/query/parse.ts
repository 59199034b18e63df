/**
 * The query lexer and recursive-descent parser: source text to the AST of
 * `ast.ts`, with syntax errors that name the 1-based column. The grammar is
 * in `../query.ts`.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../../core/errors.js';
import {
  KEYWORD_SET,
  MAX_QUERY_DEPTH,
  MAX_QUERY_LENGTH,
  type ComparisonOperator,
  type QueryLiteral,
  type QueryNode,
} from './ast.js';

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
    return this.#chain('or', () => this.#and());
  }

  #and(): QueryNode {
    return this.#chain('and', () => this.#unary());
  }

  /** `operand ( kind operand )*`, flattened to one list (a single operand stands alone). */
  #chain(kind: 'and' | 'or', operand: () => QueryNode): QueryNode {
    const operands = [operand()];
    while (this.#tok.kind === 'keyword' && this.#tok.text === kind) {
      this.#next();
      operands.push(operand());
    }
    return operands.length === 1 ? operands[0]! : { kind, operands };
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
