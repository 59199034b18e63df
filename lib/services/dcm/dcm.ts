/**
 * Dynamic Configuration Management (seed 002 ¶78-103, ¶212-241,
 * ¶438-512): a program built at run time from rules, evaluated make-like
 * from the flow rules, each rule's method bound through the Binding Service.
 *
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AmixError, ErrorCode, abortError, invalidArg, isAmixError } from '../../core/errors.js';
import { BindingService } from '../binding/service.js';
import { BindingState, type BindingApplication, type InvokeOptions } from '../binding/types.js';
import { DCM_BINDINGS_LOCATION } from './bindings.js';
import { BUILTIN_OPERATORS, type DcmOperator } from './operators.js';
import {
  FLOW_RULES,
  MAX_RULES_FILE,
  OPERATOR_CHARS,
  RuleSet,
  isBindingRule,
  isFlowRule,
  parseRules,
  type Rule,
  type RuleSpec,
} from './rules.js';
import { emptyState, readState, writeState, type DcmState } from './state.js';

/** Options of {@link Dcm.create}. */
export interface DcmOptions {
  /** A Binding Service to bind through (default: one started with the default configuration). */
  binding?: BindingService;
  /** Binding configuration files for the default service (each owner-only). */
  bindingConfigFiles?: string[];
  /** The principal the DCM binds as (default: the Binding Service's owner). Through amixd: the connection's. */
  principal?: string;
  /** Relative names resolve against this (default: the first rules file's directory, else the working directory). */
  baseDir?: string;
  /** The state file keeping the stamps between runs (0600); absent or null: kept in this object only. */
  stateFile?: string | null;
  /** More operators (their tokens become valid in rules files). */
  operators?: DcmOperator[];
  /** Functions, thread procedures and data the application offers (FUNCTION, DEFAULT, THREAD, Data). */
  application?: Partial<BindingApplication>;
}

/** Options of one {@link Dcm.run}. */
export interface DcmRunOptions {
  /** Most methods running at once (default 1: strictly depth-first, one at a time). */
  jobs?: number;
  /** Decide what would be evaluated; run no method, write no state. */
  dryRun?: boolean;
  /** Where shell methods' stdout goes (default inherited). */
  stdout?: InvokeOptions['stdout'];
  /**
   * Abort the run: no method starts after it, a running shell is killed and
   * a running thread terminated; those rules fail with `AMIX_ERR_ABORTED`.
   * The stamps of the rules that completed are saved.
   */
  signal?: AbortSignal;
}

/** What a run did, each list in depth-first evaluation order. */
export interface DcmResult {
  /** Rules whose method ran (or would, in a dry run) and were re-stamped. */
  evaluated: string[];
  /** Rules up to date: method not run, stamp unchanged. */
  skipped: string[];
  /** Rules that failed, or whose prerequisite failed. */
  failed: string[];
  /** Why each failed rule failed. */
  errors: Record<string, { code: string; message: string }>;
  /** Set on a dry run. */
  dryRun?: true;
}

interface Outcome {
  ok: boolean;
  stamp: number | undefined;
}

function failure(rule: string, message: string, cause?: unknown): AmixError {
  return new AmixError(ErrorCode.AMIX_ERR_HANDLER_FAILED, `rule ${rule}: ${message}`, {
    details: { module: rule, request: 'evaluate' },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A counting gate: at most `n` holders at once. */
class Gate {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/**
 * A Dynamically Configured Application Program: add rules (API or rules
 * files), then {@link Dcm.run} it.
 *
 * @example
 * const dcm = await Dcm.create({ application: { functions: new Map([['hello', () => console.log('hi')]]) } });
 * dcm.addRule({ name: 'MAIN', prerequisites: ['hello'] });
 * (await dcm.run()).evaluated // ['hello', 'MAIN']
 */
export class Dcm {
  readonly #rules = new RuleSet();
  readonly #operators = new Map<string, DcmOperator>();
  readonly #options: DcmOptions;
  readonly #app: BindingApplication;
  #binding: BindingService | undefined;
  #baseDir: string | undefined;
  #state: DcmState | undefined;
  #running = false;

  private constructor(options: DcmOptions) {
    this.#options = options;
    this.#baseDir = options.baseDir;
    this.#binding = options.binding;
    this.#app = options.binding?.application ?? {
      data: options.application?.data ?? new Map(),
      functions: options.application?.functions ?? new Map(),
      threads: options.application?.threads ?? new Map(),
    };
    for (const op of [...BUILTIN_OPERATORS, ...(options.operators ?? [])]) {
      if (
        !op ||
        typeof op.mustEvaluate !== 'function' ||
        typeof op.token !== 'string' ||
        !OPERATOR_CHARS.test(op.token)
      )
        throw invalidArg('operators', 'must each have a token of :!?<>|&^~%@ and a mustEvaluate function', op?.token);
      this.#operators.set(op.token, op);
    }
  }

  /** A DCM with no rules yet. */
  static async create(options: DcmOptions = {}): Promise<Dcm> {
    return new Dcm(options);
  }

  /** What the application offers to FUNCTION, DEFAULT and THREAD rules (maps the caller may fill). */
  get application(): BindingApplication {
    return this.#app;
  }

  /** The rules so far. */
  get rules(): RuleSet {
    return this.#rules;
  }

  /** Add a rule or a part of one through the API (merged by name, ¶233). */
  addRule(spec: RuleSpec): Rule {
    if (spec?.operator !== undefined && !this.#operators.has(spec.operator))
      throw invalidArg('operator', 'is not a known operator', spec.operator);
    return this.#rules.add(spec);
  }

  /** Parse rules text (errors name file, line and column) and add its rules. */
  loadText(text: string, file = '<rules>'): void {
    for (const spec of parseRules(text, file, (t) => this.#operators.has(t))) {
      const line = Number(spec.where?.slice(spec.where.lastIndexOf(':') + 1));
      this.#rules.add(spec, { file, line, column: 1 });
    }
  }

  /** Read a rules file (at most 16 MiB) and add its rules. The first one sets the default base directory. */
  async loadFile(path: string): Promise<void> {
    const abs = resolve(path);
    const st = await stat(abs).catch((err) => {
      throw invalidArg('rules file', 'cannot be read', abs, err);
    });
    if (!st.isFile() || st.size > MAX_RULES_FILE)
      throw invalidArg('rules file', `must be a regular file of at most ${MAX_RULES_FILE} bytes`, abs);
    this.#baseDir ??= dirname(abs);
    this.loadText(await readFile(abs, 'utf8'), abs);
  }

  async #bindingService(): Promise<BindingService> {
    if (!this.#binding) {
      const b = await BindingService.start({
        baseDir: this.#baseDir ?? process.cwd(),
        application: this.#app,
        ...(this.#options.bindingConfigFiles ? { configFiles: this.#options.bindingConfigFiles } : {}),
      });
      // Run-time registrations (¶415), ahead of File so that libspell.so is a library before it is a file.
      b.register({ order: 1, name: 'SharedLibrary', location: DCM_BINDINGS_LOCATION });
      b.register({ order: 2, name: 'SharedObject', location: DCM_BINDINGS_LOCATION });
      this.#binding = b;
    }
    return this.#binding;
  }

  async #loadState(): Promise<DcmState> {
    if (!this.#state) this.#state = this.#options.stateFile ? await readState(this.#options.stateFile) : emptyState();
    return this.#state;
  }

  #nextStamp(state: DcmState): number {
    // Sub-millisecond wall time, and always past the last stamp: two rules evaluated in one millisecond stay ordered.
    const t = Math.max(performance.timeOrigin + performance.now(), state.clock + 0.001);
    state.clock = t;
    return t;
  }

  /** Mark rules as changed now (their dependents run next time), and save the state. */
  async touch(names: readonly string[]): Promise<void> {
    const state = await this.#loadState();
    for (const n of names) state.stamps[n] = this.#nextStamp(state);
    if (this.#options.stateFile) await writeState(this.#options.stateFile, state);
  }

  /**
   * The rules reachable from the flow rules, in depth-first post-order (the
   * order a one-job run evaluates them). Undefined prerequisites become
   * implicit rules, bound by name. A cycle is `AMIX_ERR_INVALID_ARG` naming
   * it (`A -> B -> A`). Iterative: a chain of thousands of rules is no deep stack.
   */
  plan(): { order: string[]; rules: Map<string, Rule> } {
    if (!this.#rules.get('MAIN'))
      throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, 'the MAIN rule is required (seed 002 ¶232)', {
        details: { option: 'rules' },
      });
    const rules = new Map<string, Rule>();
    const ruleOf = (n: string): Rule => {
      let r = rules.get(n);
      if (!r) {
        r = this.#rules.get(n) ?? { name: n, operator: ':', prerequisites: [], attributes: {}, implicit: true };
        rules.set(n, r);
      }
      return r;
    };
    const color = new Map<string, 1 | 2>();
    const order: string[] = [];
    for (const root of FLOW_RULES) {
      if (!this.#rules.get(root) || color.has(root)) continue;
      const stack: Array<{ name: string; next: number; pre: string[] }> = [];
      const push = (n: string) => {
        color.set(n, 1);
        stack.push({ name: n, next: 0, pre: ruleOf(n).prerequisites.filter((p) => !isBindingRule(p)) });
      };
      push(root);
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        if (top.next < top.pre.length) {
          const child = top.pre[top.next++]!;
          const c = color.get(child);
          if (c === 1) {
            const from = stack.findIndex((f) => f.name === child);
            const cycle = [...stack.slice(from).map((f) => f.name), child].join(' -> ');
            throw new AmixError(ErrorCode.AMIX_ERR_INVALID_ARG, `the rules form a cycle: ${cycle}`, {
              details: { option: 'rules' },
            });
          }
          if (c === undefined) push(child);
        } else {
          color.set(top.name, 2);
          order.push(top.name);
          stack.pop();
        }
      }
    }
    return { order, rules };
  }

  /**
   * Run the program (¶460-465): each defined flow rule in order (DCMINIT,
   * APINIT, MAIN, DONE, APDONE, DCMDONE), its prerequisites first, depth
   * first; each rule's operator decides whether its method runs. With
   * `jobs` above 1, prerequisites of one rule are evaluated at once and up
   * to `jobs` methods run together; the lists come out in the same
   * (one-job) order. A failed rule fails its dependents; no flow rule after
   * a failed one is evaluated. Stamps are saved to the state file (not in a
   * dry run).
   */
  async run(options: DcmRunOptions = {}): Promise<DcmResult> {
    const jobs = options.jobs ?? 1;
    if (!Number.isSafeInteger(jobs) || jobs < 1) throw invalidArg('jobs', 'must be a positive integer', jobs);
    if (this.#running) throw invalidArg('run', 'is already in progress on this Dcm');
    this.#running = true;
    try {
      return await this.#run(jobs, options);
    } finally {
      this.#running = false;
    }
  }

  async #run(jobs: number, options: DcmRunOptions): Promise<DcmResult> {
    const { order, rules } = this.plan();
    const binding = await this.#bindingService();
    const state = await this.#loadState();
    const dry = options.dryRun === true;
    const provisional = new Map<string, number>();
    const stampOf = (n: string) => (provisional.has(n) ? provisional.get(n) : state.stamps[n]);
    const evaluated = new Set<string>();
    const skipped = new Set<string>();
    const failed = new Set<string>();
    const errors: DcmResult['errors'] = {};
    const gate = new Gate(jobs);
    const memo = new Map<string, Promise<Outcome>>();
    const principal = this.#options.principal ? { principal: this.#options.principal } : {};
    const invokeOptions = (rule: Rule): InvokeOptions => ({
      cwd: this.#baseDir ?? process.cwd(),
      ...(options.stdout ? { stdout: options.stdout } : {}),
      arg: { rule: rule.name, attributes: { ...rule.attributes } },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const fail = (name: string, err: unknown): Outcome => {
      failed.add(name);
      errors[name] = isAmixError(err)
        ? { code: err.code, message: err.message }
        : {
            code: ErrorCode.AMIX_ERR_HANDLER_FAILED,
            message: `rule ${name}: ${(err as Error)?.message ?? String(err)}`,
          };
      return { ok: false, stamp: undefined };
    };
    const record = (name: string, stamp: number): number => {
      if (dry) provisional.set(name, stamp);
      else state.stamps[name] = stamp;
      return stamp;
    };

    /** The name a rule's method is bound by, or null for a NULL method (¶86). */
    const bindingName = async (rule: Rule, pre: string[]): Promise<string | null> => {
      const has = (r: string) => rule.prerequisites.includes(r);
      const kind =
        rule.attributes.method?.toUpperCase() ??
        (has('SHARED.OBJECT')
          ? 'SHARED.OBJECT'
          : has('THREAD')
            ? 'THREAD'
            : has('SHELL') || rule.method
              ? 'SHELL'
              : 'DEFAULT');
      const symbol = rule.attributes.symbol ?? rule.name;
      switch (kind) {
        case 'NULL':
          return null;
        case 'SHELL':
          if (!rule.method?.length)
            throw failure(rule.name, 'a SHELL rule needs method lines (tab-indented statements)');
          return `shell:${rule.method.join('\n')}`;
        case 'THREAD':
          return `thread:${rule.attributes.module ? `${rule.attributes.module}#${symbol}` : symbol}`;
        case 'SHARED.OBJECT': {
          for (const p of pre) {
            const q = binding.query(p, principal);
            if (q.state === BindingState.BOUND && q.method === 'SharedLibrary')
              return `object:${symbol}@${q.path as string}`;
          }
          throw failure(rule.name, 'a SHARED.OBJECT rule needs a prerequisite bound to a shared library (¶473)');
        }
        case 'FUNCTION':
          return `function:${symbol}`;
        case 'FILE':
          return `file:${rule.name}`;
        case 'DEFAULT':
          return rule.name;
        default:
          throw failure(rule.name, `unknown method attribute ${JSON.stringify(rule.attributes.method)}`);
      }
    };

    const evaluate = async (name: string): Promise<Outcome> => {
      // Yield first: the recursion becomes a chain of promises, not a deep synchronous stack.
      await null;
      const rule = rules.get(name)!;
      const pre = rule.prerequisites.filter((p) => !isBindingRule(p));
      const outs: Outcome[] = [];
      if (jobs === 1) for (const p of pre) outs.push(await evalRule(p));
      else outs.push(...(await Promise.all(pre.map(evalRule))));
      const bad = pre.filter((_, i) => !outs[i]!.ok);
      if (bad.length) return fail(name, failure(name, `prerequisite ${bad.join(', ')} failed`));
      try {
        const bname = await bindingName(rule, pre);
        let entity: { invoke: boolean; mtime: number | undefined } | undefined;
        if (bname !== null) {
          const q = await binding.bind(bname, principal);
          if (q.state === BindingState.BOUND) {
            entity = await binding.use(
              bname,
              async (e) => ({ invoke: typeof e.invoke === 'function', mtime: await e.mtimeMs?.() }),
              principal,
            );
          } else if (bname !== rule.name || (pre.length === 0 && !isFlowRule(name))) {
            const why =
              q.state === BindingState.BOUND_NOT_FOUND
                ? `bound to ${q.method} but not found`
                : 'not found by any binding method';
            throw failure(
              name,
              `${bname.split('\n')[0]} is ${why}${bname === rule.name ? ' (DEFAULT: no such function, file or thread)' : ''}`,
            );
          }
        }
        const stamp = stampOf(name);
        if (entity && !entity.invoke && entity.mtime !== undefined) {
          // A file or library: its stamp is its modification time; it is evaluated when that changed.
          if (stamp === entity.mtime) {
            skipped.add(name);
            return { ok: true, stamp };
          }
          evaluated.add(name);
          return { ok: true, stamp: record(name, entity.mtime) };
        }
        const op = this.#operators.get(rule.operator)!;
        const must = op.mustEvaluate({
          name,
          stamp,
          prerequisites: pre.map((p, i) => ({ name: p, stamp: outs[i]!.stamp })),
        });
        if (!must) {
          skipped.add(name);
          return { ok: true, stamp };
        }
        if (!dry && entity?.invoke)
          await gate.run(() => {
            // Checked once the gate is ours: a run aborted while this rule waited for a job starts nothing more.
            if (options.signal?.aborted) throw abortError(options.signal, `rule ${name}`);
            return binding.use(bname!, (e) => e.invoke!(invokeOptions(rule)), principal);
          });
        evaluated.add(name);
        return { ok: true, stamp: record(name, this.#nextStamp(state)) };
      } catch (err) {
        return fail(
          name,
          isAmixError(err, 'AMIX_ERR_HANDLER_FAILED') || isAmixError(err, 'AMIX_ERR_ABORTED')
            ? err
            : failure(name, (err as Error).message, err),
        );
      }
    };
    const evalRule = (name: string): Promise<Outcome> => {
      let p = memo.get(name);
      if (!p) {
        p = evaluate(name);
        memo.set(name, p);
      }
      return p;
    };

    try {
      for (const flow of FLOW_RULES) {
        if (!this.#rules.get(flow)) continue;
        if (!(await evalRule(flow)).ok) break;
      }
    } finally {
      if (!dry && this.#options.stateFile) await writeState(this.#options.stateFile, state);
    }
    const sorted = (s: Set<string>) => order.filter((n) => s.has(n));
    return {
      evaluated: sorted(evaluated),
      skipped: sorted(skipped),
      failed: sorted(failed),
      errors,
      ...(dry ? { dryRun: true as const } : {}),
    };
  }
}
