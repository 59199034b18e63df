/**
 * DCM rules (seed 002 ¶80-87, ¶213-222, ¶439-449): a name, an operator,
 * prerequisites, attributes and a method; rules of one name merge (¶233,
 * ¶461); the reserved flow and binding rules. And the rules-file syntax.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';

/** The flow rules, in evaluation order (¶224-231, Table 10). MAIN is required (¶232). */
export const FLOW_RULES = ['DCMINIT', 'APINIT', 'MAIN', 'DONE', 'APDONE', 'DCMDONE'] as const;
/** The reserved binding rules (¶473-475): prerequisites that choose how a rule's method is bound. */
export const BINDING_RULES = ['SHARED.OBJECT', 'THREAD', 'SHELL'] as const;

const flow: ReadonlySet<string> = new Set(FLOW_RULES);
const binding: ReadonlySet<string> = new Set(BINDING_RULES);

/** True for a flow rule name. */
export function isFlowRule(name: string): boolean {
  return flow.has(name);
}
/** True for a reserved binding rule name. */
export function isBindingRule(name: string): boolean {
  return binding.has(name);
}

/**
 * A rule name: "alphanumeric" (¶82), with `.`, `_`, `-`, `/` and `+` inside
 * so that file and library names (libspell.so) are rule names too.
 */
export const RULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+/-]{0,1023}$/;
/** The characters an operator token is made of. */
export const OPERATOR_CHARS = /^[:!?<>|&^~%@]+$/;

/** A rule, or a part of one, as given (through the API or a rules file). */
export interface RuleSpec {
  name: string;
  /** The operator token (default `:`, TIME_VALUE). */
  operator?: string;
  prerequisites?: readonly string[];
  attributes?: Readonly<Record<string, string>>;
  /** The method's lines (shell statements unless a binding rule or attribute says otherwise); absent: none given. */
  method?: readonly string[];
  /** Where this part was given (file:line), for errors. */
  where?: string;
}

/** A merged rule. */
export interface Rule {
  readonly name: string;
  operator: string;
  prerequisites: string[];
  attributes: Record<string, string>;
  method?: string[];
  /** Where the method was given. */
  methodWhere?: string;
  where?: string;
  /** True for a prerequisite that no part defined (bound by its name: a file, a library, a function). */
  implicit?: boolean;
}

function ruleError(what: string, where?: string, details: Record<string, unknown> = {}): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, where ? `${where}: ${what}` : what, {
    details: { option: 'rules', ...details },
  });
}

/**
 * The rules of one program. `add` merges a part into the rule of its name:
 * prerequisites appended (each once), attributes set (a later one wins), the
 * method given at most once, one operator per rule.
 */
export class RuleSet {
  readonly #rules = new Map<string, Rule>();
  /** Each rule's prerequisites as a set: merging stays linear for a rule with thousands of them. */
  readonly #seen = new Map<string, Set<string>>();

  /** Add (or merge) a rule part. Errors are `AMIX_ERR_INVALID_ARG`, naming where the part came from. */
  add(spec: RuleSpec, details: Record<string, unknown> = {}): Rule {
    if (spec === null || typeof spec !== 'object') throw invalidArg('rule', 'must be an object', spec);
    const { name, where } = spec;
    if (typeof name !== 'string' || !RULE_NAME.test(name))
      throw ruleError(`bad rule name ${JSON.stringify(name)} (letters, digits and . _ - / +)`, where, details);
    if (isBindingRule(name))
      throw ruleError(`${name} is a reserved binding rule: it cannot be redefined`, where, details);
    const op = spec.operator ?? ':';
    if (typeof op !== 'string' || !OPERATOR_CHARS.test(op))
      throw ruleError(`bad operator ${JSON.stringify(op)}`, where, details);
    for (const p of spec.prerequisites ?? [])
      if (typeof p !== 'string' || !RULE_NAME.test(p))
        throw ruleError(`rule ${name}: bad prerequisite ${JSON.stringify(p)}`, where, details);
    let r = this.#rules.get(name);
    if (!r || r.implicit) {
      r = {
        name,
        operator: op,
        prerequisites: r?.prerequisites ?? [],
        attributes: r?.attributes ?? {},
        ...(where ? { where } : {}),
      };
      this.#rules.set(name, r);
    } else if (spec.operator !== undefined && r.operator !== op) {
      throw ruleError(
        `rule ${name} has operator ${r.operator} already${r.where ? ` (${r.where})` : ''}, not ${op}`,
        where,
        details,
      );
    }
    let seen = this.#seen.get(name);
    if (!seen) this.#seen.set(name, (seen = new Set(r.prerequisites)));
    for (const p of spec.prerequisites ?? [])
      if (!seen.has(p)) {
        seen.add(p);
        r.prerequisites.push(p);
      }
    for (const [k, v] of Object.entries(spec.attributes ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || typeof v !== 'string')
        throw ruleError(`rule ${name}: bad attribute ${JSON.stringify(k)}`, where, details);
      r.attributes[k] = v;
    }
    if (spec.method !== undefined) {
      if (r.method !== undefined)
        throw ruleError(
          `rule ${name} has a method already${r.methodWhere ? ` (${r.methodWhere})` : ''}`,
          where,
          details,
        );
      if (!Array.isArray(spec.method) || spec.method.some((l) => typeof l !== 'string'))
        throw ruleError(`rule ${name}: the method must be lines of text`, where, details);
      r.method = [...spec.method];
      if (where) r.methodWhere = where;
    }
    return r;
  }

  /** The rule of that name, if defined. */
  get(name: string): Rule | undefined {
    return this.#rules.get(name);
  }

  /** Every rule. */
  all(): Rule[] {
    return [...this.#rules.values()];
  }

  /** How many rules. */
  get size(): number {
    return this.#rules.size;
  }
}

/** Most bytes of one rules file (16 MiB). */
export const MAX_RULES_FILE = 16 * 1024 * 1024;

function syntax(file: string, line: number, column: number, what: string): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `${file}:${line}:${column}: ${what}`, {
    details: { option: 'rules', file, line, column },
  });
}

/**
 * Parse a rules file into rule parts, in the make-like syntax of docs/dcm.md:
 *
 * ```
 * # a comment
 * NAME OP PREREQ ...     OP is `:` (TIME_VALUE) or another operator's token
 * <TAB>method line       under the rule above
 * NAME.attr = value      an attribute
 * ```
 *
 * `knownOperator` says which tokens are operators. Errors are
 * `AMIX_ERR_INVALID_ARG` with details `{ file, line, column }`.
 */
export function parseRules(text: string, file: string, knownOperator: (token: string) => boolean): RuleSpec[] {
  const out: RuleSpec[] = [];
  let current: RuleSpec | undefined;
  let methodLines: string[] | undefined;
  const flush = () => {
    if (current && methodLines) current.method = methodLines;
    methodLines = undefined;
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.startsWith('\t')) {
      if (!current) throw syntax(file, n, 1, 'a method line (tab) before any rule');
      const body = raw.slice(1);
      if (body.trim() === '') continue;
      (methodLines ??= []).push(body);
      continue;
    }
    const hash = raw.indexOf('#');
    const body = hash >= 0 ? raw.slice(0, hash) : raw;
    if (body.trim() === '') continue;
    if (/^ +\S/.test(body)) throw syntax(file, n, 1, 'method lines start with a tab, not spaces');
    flush();
    current = undefined;
    const nameMatch = /^\S+?(?=\s|[:!?<>|&^~%@=]|$)/.exec(body);
    const name = nameMatch?.[0] ?? '';
    if (!RULE_NAME.test(name)) throw syntax(file, n, 1, `bad rule name ${JSON.stringify(name || body.trim())}`);
    let pos = name.length;
    while (body[pos] === ' ' || body[pos] === '\t') pos++;
    if (body[pos] === '=') {
      const dot = name.lastIndexOf('.');
      if (dot <= 0 || dot === name.length - 1)
        throw syntax(file, n, 1, `an attribute is NAME.attribute = value, got ${JSON.stringify(name)}`);
      out.push({
        name: name.slice(0, dot),
        attributes: { [name.slice(dot + 1)]: body.slice(pos + 1).trim() },
        where: `${file}:${n}`,
      });
      continue;
    }
    const opMatch = /^[:!?<>|&^~%@]+/.exec(body.slice(pos));
    if (!opMatch) throw syntax(file, n, pos + 1, `expected an operator after ${name} (":" or another operator)`);
    const op = opMatch[0];
    if (!knownOperator(op)) throw syntax(file, n, pos + 1, `unknown operator ${JSON.stringify(op)}`);
    pos += op.length;
    const prerequisites: string[] = [];
    for (const m of body.slice(pos).matchAll(/\S+/g)) {
      if (!RULE_NAME.test(m[0])) throw syntax(file, n, pos + m.index + 1, `bad prerequisite ${JSON.stringify(m[0])}`);
      prerequisites.push(m[0]);
    }
    current = { name, operator: op, prerequisites, where: `${file}:${n}` };
    out.push(current);
  }
  flush();
  return out;
}
