/**
 * The Binding Service's shapes (seed 002 ¶166-211, ¶366-437): a binding
 * method's five operations, the registration (order, location, name), the
 * caller's context and what Report and Query show.
 *
 * @module
 */

/** The states of a name in the table (¶422, ¶427; docs/binding.md says why "BOUND but not found" is its own state). */
export const BindingState = {
  /** No method has bound the name (yet). */
  UNBOUND: 'UNBOUND',
  /** A method located the entity; its Status is kept in the table. */
  BOUND: 'BOUND',
  /** A method whose pattern matched claimed the name, but its Locate failed (¶427). */
  BOUND_NOT_FOUND: 'BOUND_NOT_FOUND',
} as const;
/** One of {@link BindingState}. */
export type BindingState = (typeof BindingState)[keyof typeof BindingState];

/** What an operation of a binding method is told about the request. */
export interface BindingContext {
  /** The principal making the request (¶19: binding respects who asks). */
  readonly principal: string;
  /** The directory relative names are resolved against. */
  readonly baseDir: string;
  /** What the application offers to the Data, Function and Thread methods. */
  readonly application: BindingApplication;
}

/** A thread procedure the application offers: a module and the export to run in a worker thread. */
export interface ThreadProcedure {
  /** The module's path or URL. */
  module: string | URL;
  /** The export to call (default: the bound name). */
  export?: string;
}

/** The application's symbols, seen by the Data (¶187), Function (¶190) and Thread (¶193) methods. */
export interface BindingApplication {
  /** Data by name. */
  readonly data: Map<string, unknown>;
  /** Functions by name; called with the invocation's argument. */
  readonly functions: Map<string, (arg?: unknown) => unknown>;
  /** Thread procedures by name. */
  readonly threads: Map<string, ThreadProcedure>;
}

/** How an entity is run by a service built on binding (the DCM): where, with which output. */
export interface InvokeOptions {
  /** Working directory of a shell command. */
  cwd?: string;
  /** Where a shell command's stdout goes: inherited (default) or onto our stderr (keeps a --json stdout clean). */
  stdout?: 'inherit' | 'stderr' | 'ignore';
  /** The argument given to a function or thread procedure (cloned for a thread). */
  arg?: unknown;
  /** Abort: a shell is killed (SIGTERM), a thread terminated; the invocation rejects with `AMIX_ERR_ABORTED`. */
  signal?: AbortSignal;
}

/**
 * What Locate found. `kind` names it; `invoke` runs it (functions, threads,
 * shell statements, shared objects); `mtimeMs` dates it (files, libraries).
 * Any other fields are the method's own.
 */
export interface BoundEntity {
  kind: string;
  invoke?(options?: InvokeOptions): Promise<unknown>;
  mtimeMs?(): Promise<number | undefined>;
  [field: string]: unknown;
}

/** A plain, serialisable status (the seed's Status list is lost from its text, ¶208: each method says what it keeps). */
export type BindingStatus = Record<string, string | number | boolean | null>;

/**
 * A binding method: the five operations in the seed's order (¶399, Table 8),
 * any of which may be absent.
 *
 * - `patternMatching`: a RegExp or a predicate; absent or null means "matches" (¶425).
 * - `nameTransformation`: the name used for Locate and Status (¶426); absent: the name itself.
 * - `locate`: the entity, or undefined when it is not found; absent: never found.
 * - `status`: plain facts about a BOUND entity, kept in the table (¶428).
 * - `query`: what the Query interface shows of a BOUND name (¶411); absent: the kept status.
 */
export interface BindingMethod {
  /** Pattern Matching: does the name concern this method (absent or null: yes)? */
  patternMatching?: RegExp | ((name: string, ctx: BindingContext) => boolean) | null;
  /** Name Transformation: the name Locate and Status see. */
  nameTransformation?: ((name: string, ctx: BindingContext) => string) | null;
  /** Locate: the entity, or undefined when not found. */
  locate?: ((name: string, ctx: BindingContext) => Promise<BoundEntity | undefined> | BoundEntity | undefined) | null;
  /** Status: plain facts about the located entity, kept in the table. */
  status?: ((entity: BoundEntity, ctx: BindingContext) => Promise<BindingStatus> | BindingStatus) | null;
  /** Query: what the Query interface shows of the kept status. */
  query?: ((status: BindingStatus, ctx: BindingContext) => BindingStatus) | null;
}

/** The five operation names, in order. */
export const BINDING_OPERATIONS = ['patternMatching', 'nameTransformation', 'locate', 'status', 'query'] as const;

/** A registration (¶373, Table 6): order of evaluation, location, name; plus who may use it. */
export interface MethodRegistration {
  /** Order of evaluation: lower first; ties keep registration order. */
  order: number;
  /** The method's name: also the export taken from its module. */
  name: string;
  /**
   * Where its module is: `builtin` (amix's default methods), a path (relative
   * to the configuration file that names it) or a `file:` URL. Loaded with
   * `import()` on first use (¶424). May be omitted when `method` is given.
   */
  location?: string;
  /** The method itself, already loaded (run-time registration by the application). */
  method?: BindingMethod;
  /** Principals allowed to bind with this method (absent: everyone). */
  allow?: readonly string[];
}

/** One method in the Report. */
export interface MethodInfo {
  order: number;
  name: string;
  location: string;
  loaded: boolean;
  /** Uses in progress (Bind operations and invocations); Unregister waits for 0. */
  inUse: number;
  /** The operations the loaded method has (empty before it is loaded). */
  operations: string[];
  allow?: string[];
  /** Names currently BOUND through it. */
  bound: number;
}

/** One table entry in the Report. */
export interface EntryInfo {
  name: string;
  principal: string;
  state: BindingState;
  method?: string;
  transformed?: string;
}

/** Report (¶433): the table and the methods. */
export interface BindingReport {
  methods: MethodInfo[];
  entries: EntryInfo[];
  counters: { binds: number; bound: number; notFound: number; unbound: number; loads: number; refused: number };
}

/** Query (¶435): the method's Query output of a BOUND name; only the name of an UNBOUND one. */
export interface BindingQuery {
  name: string;
  state?: BindingState;
  method?: string;
  [field: string]: unknown;
}

/** Options of one request: who makes it. */
export interface RequestOptions {
  /** The principal (default: the service's owner). Through amixd it would be the connection's principal. */
  principal?: string;
}
