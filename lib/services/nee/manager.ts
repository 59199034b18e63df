/**
 * The Named Execution Environment Manager (seed 002 ¶249-254, ¶584-638):
 * an application asks for "somewhere to run" by a Boolean expression over
 * the attributes it needs, names it, and runs commands there by that name,
 * their output coming back over the fabric.
 *
 * - Registered attributes: sets per computer system (`attributes.ts`),
 *   from the configuration file (NEECF), from the built-in probe, or
 *   registered at run time. Each set read from the file starts on the
 *   INACTIVE list (¶615); an environment created on it goes on the ACTIVE one.
 * - Create (¶617-632): the first set (this machine's first, then the remote
 *   systems marked accessible) whose attributes satisfy the expression (the
 *   directory's query language) gets a shell: a process point of the fabric
 *   (`envPoint.ts`). When an ACTIVE PUBLIC environment satisfies it, the new
 *   name is an alias of that one and its reference count goes up (¶632).
 * - Use (¶634-636): `run` attaches the requester on a link of its own to the
 *   environment's shell, streams stdout and stderr separately as they come,
 *   and detaches it when the command ends; suspend, resume and interrupt go
 *   to the command's process group.
 * - Terminate (¶638): by the owner only, unless the environment lets anyone.
 * - Status (¶614): a task polls the remote systems and marks each
 *   ACCESSIBLE or UNACCESSIBLE.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { cpus, hostname, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { AmixError, ErrorCode, invalidArg } from '../../core/errors.js';
import { evaluateQuery, parseQuery } from '../../directory/query.js';
import type { Fabric } from '../../fabric/fabric.js';
import type { Link } from '../../fabric/link.js';
import {
  checkAttributeSet,
  defaultShell,
  probeAttributes,
  readNeeConfig,
  type AttributeSet,
  type SystemEntry,
} from './attributes.js';
import type { EnvPointData } from './envPoint.js';
import { startRun, type NeeRun, type RunOptions } from './run.js';

/** Options of a {@link Neem}. */
export interface NeemOptions {
  /** The configuration file (NEECF, JSON; see `attributes.ts`). Must be owner-only. Default: none. */
  config?: string;
  /** This machine's system name. Default the host name. */
  system?: string;
  /** Fill a `probe` set for this machine at start; `software` names the binaries to look for on PATH. Default true. */
  probe?: boolean | { software?: string[] };
  /** How often the status task polls the remote systems (ms). Default 5000. */
  pollMs?: number;
  /** Whether a remote system answers (the status task's poll). Default: none reachable. */
  reach?: (system: SystemEntry) => Promise<boolean>;
}

/** The NEE attributes an owner gives at creation (¶617-630). */
export interface CreateOptions {
  /** The logical name (¶618). */
  name: string;
  /** The required attributes, a directory query (`os = "linux" and cpus >= 2`). */
  require: string;
  /** The owner's principal. In-process the application says; through amixd it is the connection's. Default `owner`. */
  as?: string;
  /** Others may alias it (¶619, ¶632). Default false (private). */
  public?: boolean;
  /** Runs only in the foreground (¶620) or only in the background (¶621). */
  foregroundOnly?: boolean;
  backgroundOnly?: boolean;
  /** Whether others than the owner may run in the foreground (¶622) or background (¶623). Default true. */
  othersForeground?: boolean;
  othersBackground?: boolean;
  /** Where background output goes (¶624): a file path; default discarded. Recorded, used by `run({ background })`. */
  output?: string;
  /**
   * CPU threshold in percent (¶625): a run is refused (`AMIX_ERR_NOT_ACCEPTING`)
   * while the machine's one-minute load average per CPU is above it.
   */
  cpuThreshold?: number;
  /** Suspend when not in use (¶626): the environment's shell process is stopped (SIGSTOP) while no run is attached. */
  suspendWhenUnused?: boolean;
  /** The shell (¶627). Default the matched set's `shell`, else $SHELL or /bin/sh. */
  shell?: string;
  /** Anyone may terminate it (¶628). Default false: the owner only. */
  anyoneMayTerminate?: boolean;
  /** Seconds without a run before it ends (¶629). Default 0: never. */
  idleSeconds?: number;
  /** End it when its owner ends (¶630, {@link Neem.ownerEnded}). Default true. */
  endWithOwner?: boolean;
}

/** An ACTIVE environment (or one of its aliases) as {@link Neem.list} shows it. */
export interface NeeInfo {
  name: string;
  owner: string;
  system: string;
  set: string;
  public: boolean;
  /** The environment this name is an alias of (the first name it was created under). */
  aliasOf?: string;
  /** Names (the first and its aliases) holding the environment. */
  references: number;
  /** Runs attached now. */
  attached: number;
  /** Its shell is stopped while unused (`suspendWhenUnused`). */
  suspended: boolean;
  shell: string;
}

interface Env {
  first: string;
  point: string;
  keeper: Link;
  system: string;
  set: string;
  shell: string;
  public: boolean;
  names: Set<string>;
  attached: number;
  idleTimer: NodeJS.Timeout | undefined;
  suspendWhenUnused: boolean;
  /** Its shell is stopped now (suspendWhenUnused). */
  stopped: boolean;
}

interface Named {
  name: string;
  owner: string;
  env: Env;
  options: CreateOptions;
}

const ENV_POINT = fileURLToPath(new URL('./envPoint.js', import.meta.url));
const NEE_NAME = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;
let managers = 0;

/**
 * A NEEM on a {@link Fabric}.
 *
 * @example
 * const neem = new Neem(fabric); await neem.start();
 * await neem.create({ name: 'build', require: 'os = "linux"' });
 * const run = neem.run('build', ['echo', 'hello']);
 * for await (const chunk of run.stdout) process.stdout.write(chunk);
 * console.log(await run.exit); // { code: 0, signal: null }
 */
export class Neem extends EventEmitter {
  readonly system: string;
  readonly #fabric: Fabric;
  readonly #options: NeemOptions;
  readonly #prefix = `nee${++managers}`;
  readonly #systems = new Map<string, SystemEntry>();
  readonly #accessible = new Map<string, boolean>();
  readonly #names = new Map<string, Named>();
  #seq = 0;
  #runs = 0;
  #poll: NodeJS.Timeout | undefined;
  #started = false;
  #closed = false;

  constructor(fabric: Fabric, options: NeemOptions = {}) {
    super();
    this.#fabric = fabric;
    this.#options = options;
    this.system = options.system ?? hostname();
    const poll = options.pollMs ?? 5000;
    if (!Number.isSafeInteger(poll) || poll < 10) throw invalidArg('options.pollMs', 'must be an integer >= 10', poll);
  }

  /** Read the configuration, probe this machine, start the status task. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const config = this.#options.config ? await readNeeConfig(this.#options.config) : { systems: [] };
    for (const s of config.systems) this.#systems.set(s.name, s);
    const local = this.#systems.get(this.system) ?? { name: this.system, sets: {} };
    this.#systems.set(this.system, local);
    const probe = this.#options.probe ?? true;
    if (probe) local.sets.probe = probeAttributes(this.system, typeof probe === 'object' ? (probe.software ?? []) : []);
    this.#accessible.set(this.system, true);
    if ([...this.#systems.values()].some((s) => s.remote)) {
      await this.pollOnce();
      this.#poll = setInterval(() => void this.pollOnce(), this.#options.pollMs ?? 5000);
      this.#poll.unref();
    }
  }

  /** One round of the status task: ask each remote system, mark it, emit `system` on a change. */
  async pollOnce(): Promise<void> {
    for (const s of this.#systems.values()) {
      if (!s.remote) continue;
      const up = await (this.#options.reach?.(s) ?? Promise.resolve(false)).catch(() => false);
      if (this.#accessible.get(s.name) !== up) {
        this.#accessible.set(s.name, up);
        this.emit('system', { name: s.name, accessible: up });
      }
    }
  }

  /** Register (or replace) a set of attributes of a system (¶612: at any time). */
  register(system: string, set: string, attributes: AttributeSet): void {
    const checked = checkAttributeSet(`attributes`, attributes);
    const s = this.#systems.get(system) ?? { name: system, sets: {} };
    s.sets[set] = checked;
    this.#systems.set(system, s);
    if (system === this.system) this.#accessible.set(system, true);
  }

  /** Remove a set; true if there was one. */
  unregister(system: string, set: string): boolean {
    const s = this.#systems.get(system);
    if (!s || !(set in s.sets)) return false;
    delete s.sets[set];
    return true;
  }

  /** The systems, their sets and whether each is ACCESSIBLE. */
  systems(): Array<SystemEntry & { accessible: boolean }> {
    return [...this.#systems.values()].map((s) => ({
      ...s,
      sets: { ...s.sets },
      accessible: this.#accessible.get(s.name) ?? false,
    }));
  }

  /** The ACTIVE environments by name, and the INACTIVE sets (`system/set`) no environment was created on. */
  list(): { active: NeeInfo[]; inactive: string[] } {
    const used = new Set([...this.#names.values()].map((n) => `${n.env.system}/${n.env.set}`));
    const inactive: string[] = [];
    for (const s of this.#systems.values())
      for (const set of Object.keys(s.sets)) if (!used.has(`${s.name}/${set}`)) inactive.push(`${s.name}/${set}`);
    return { active: [...this.#names.values()].map((n) => this.#info(n)), inactive };
  }

  /** One environment by name; `AMIX_ERR_NO_ENVIRONMENT` if none has it. */
  show(name: string): NeeInfo {
    return this.#info(this.#named(name));
  }

  /**
   * Create a named environment (¶617-632). `AMIX_ERR_INVALID_ARG` for a bad
   * name, option or expression (`AMIX_ERR_QUERY_SYNTAX`); `AMIX_ERR_DUPLICATE`
   * for a name in use; `AMIX_ERR_NO_ENVIRONMENT` when no set satisfies it.
   */
  async create(options: CreateOptions): Promise<NeeInfo> {
    this.#assertOpen();
    const { name } = options;
    if (typeof name !== 'string' || !NEE_NAME.test(name))
      throw invalidArg('name', 'must be a letter, then letters, digits, ., _ or - (at most 64)', name);
    if (this.#names.has(name))
      throw new AmixError(ErrorCode.AMIX_ERR_DUPLICATE, `an environment is already named ${name}`, {
        details: { name },
      });
    const idle = options.idleSeconds ?? 0;
    if (!Number.isFinite(idle) || idle < 0) throw invalidArg('idleSeconds', 'must be a number >= 0', idle);
    if (options.foregroundOnly && options.backgroundOnly)
      throw invalidArg('foregroundOnly', 'and backgroundOnly exclude each other');
    const query = parseQuery(options.require);
    const owner = options.as ?? 'owner';
    const fits = (system: string, set: string): boolean =>
      evaluateQuery(query, {
        id: system,
        name: set,
        owner: '',
        role: '',
        attributes: this.#systems.get(system)!.sets[set]!,
      });
    // ¶632: an ACTIVE PUBLIC environment that satisfies the request is aliased, not created again.
    for (const n of this.#names.values()) {
      if (n.env.public && fits(n.env.system, n.env.set)) {
        n.env.names.add(name);
        this.#names.set(name, { name, owner, env: n.env, options });
        this.emit('created', { name, aliasOf: n.env.first });
        return this.show(name);
      }
    }
    // This machine first, then remote systems marked accessible (started through a peer daemon: not yet).
    const local = this.#systems.get(this.system)!;
    const match = Object.keys(local.sets).find((set) => fits(this.system, set));
    if (match === undefined)
      throw new AmixError(ErrorCode.AMIX_ERR_NO_ENVIRONMENT, `no registered environment satisfies ${options.require}`, {
        details: { name, require: options.require },
      });
    const attrs = local.sets[match]!;
    const shell = options.shell ?? (typeof attrs.shell === 'string' ? attrs.shell : defaultShell());
    const point = `${this.#prefix}.${name}.${++this.#seq}`;
    const data: EnvPointData = { name, shell };
    this.#fabric.register({
      name: point,
      location: ENV_POINT,
      characteristics: { scope: 'process', termination: 'messageThenSignal', graceMs: 1000 },
      data,
    });
    let keeper: Link;
    try {
      // The environment's shell is up from now: a process of its own, held by this link until terminate.
      keeper = await this.#fabric.connect(null, point, { direction: 'both' });
    } catch (err) {
      await this.#fabric.destroyPoint(point).catch(() => {});
      throw err;
    }
    const env: Env = {
      first: name,
      point,
      keeper,
      system: this.system,
      set: match,
      shell,
      public: options.public === true,
      names: new Set([name]),
      attached: 0,
      idleTimer: undefined,
      suspendWhenUnused: options.suspendWhenUnused === true,
      stopped: false,
    };
    this.#names.set(name, { name, owner, env, options });
    this.#armIdle(env, idle);
    this.#pause(env, env.suspendWhenUnused);
    this.emit('created', { name });
    return this.show(name);
  }

  /**
   * Run a command in a named environment (¶634-636): `argv` runs argv[0]
   * with its arguments, a string goes through the environment's shell.
   * Refused with `AMIX_ERR_UNAUTHORIZED` when the environment's
   * foreground/background attributes forbid this run to this requester.
   */
  run(name: string, command: string | readonly string[], options: RunOptions & { as?: string } = {}): NeeRun {
    this.#assertOpen();
    const n = this.#named(name);
    const as = options.as ?? 'owner';
    const bg = options.background === true;
    const o = n.options;
    const refuse = (why: string) => {
      throw new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, `environment ${name} ${why}`, {
        details: { op: 'nee.run', principal: as },
      });
    };
    if (bg && o.foregroundOnly) refuse('runs foreground commands only');
    if (!bg && o.backgroundOnly) refuse('runs background commands only');
    if (as !== n.owner && !bg && o.othersForeground === false) refuse('lets only its owner run in the foreground');
    if (as !== n.owner && bg && o.othersBackground === false) refuse('lets only its owner run in the background');
    if (o.cpuThreshold !== undefined) {
      const load = (loadavg()[0]! / Math.max(cpus().length, 1)) * 100;
      if (load > o.cpuThreshold)
        throw new AmixError(
          ErrorCode.AMIX_ERR_NOT_ACCEPTING,
          `environment ${name} takes no run while the load is ${load.toFixed(0)}% of the CPUs (cpuThreshold ${o.cpuThreshold}%)`,
          { details: { module: name, state: `load ${load.toFixed(0)}%` } },
        );
    }
    const env = n.env;
    env.attached++;
    this.#pause(env, false);
    if (env.idleTimer) clearTimeout(env.idleTimer);
    const run = startRun(this.#fabric, env.point, ++this.#runs, command, {
      ...options,
      ...(bg && o.output ? { output: o.output } : {}),
    });
    void run.exit.finally(() => {
      env.attached--;
      this.#armIdle(env, o.idleSeconds ?? 0);
      if (env.attached === 0 && env.names.size > 0) this.#pause(env, env.suspendWhenUnused);
    });
    return run;
  }

  /**
   * Terminate a name (¶638): by its owner, or anyone if it lets them
   * (`AMIX_ERR_NOT_OWNER` otherwise). The environment ends with its last name.
   */
  async terminate(name: string, options: { as?: string } = {}): Promise<void> {
    const n = this.#named(name);
    const as = options.as ?? 'owner';
    if (as !== n.owner && n.options.anyoneMayTerminate !== true)
      throw new AmixError(ErrorCode.AMIX_ERR_NOT_OWNER, `only ${n.owner} may terminate environment ${name}`, {
        details: { owner: n.owner, op: 'nee.terminate' },
      });
    await this.#drop(n);
  }

  /** The owner ended (¶630): terminate each of its names created with `endWithOwner` (the default). */
  async ownerEnded(owner: string): Promise<void> {
    for (const n of [...this.#names.values()])
      if (n.owner === owner && n.options.endWithOwner !== false) await this.#drop(n);
  }

  /** Terminate every environment and stop the status task. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    for (const n of [...this.#names.values()]) await this.#drop(n);
  }

  async #drop(n: Named): Promise<void> {
    if (this.#names.get(n.name) !== n) return;
    this.#names.delete(n.name);
    const env = n.env;
    env.names.delete(n.name);
    this.emit('terminated', { name: n.name, references: env.names.size });
    if (env.names.size > 0) return;
    if (env.idleTimer) clearTimeout(env.idleTimer);
    // A stopped shell would hold its termination signal pending: let it run to end.
    this.#pause(env, false);
    await env.keeper.close().catch(() => {});
    await this.#fabric.destroyPoint(env.point).catch(() => {});
  }

  /** Stop (SIGSTOP) or continue (SIGCONT) the environment's shell process (¶626). */
  #pause(env: Env, stop: boolean): void {
    if (env.stopped === stop) return;
    const pid = this.#fabric.instances(env.point)[0]?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, stop ? 'SIGSTOP' : 'SIGCONT');
      env.stopped = stop;
    } catch {
      // gone already
    }
  }

  #armIdle(env: Env, seconds: number): void {
    if (env.idleTimer) clearTimeout(env.idleTimer);
    env.idleTimer = undefined;
    if (seconds <= 0 || env.attached > 0 || env.names.size === 0) return;
    env.idleTimer = setTimeout(() => {
      // ¶629: idle past its time, it ends with all its names.
      for (const name of [...env.names]) void this.#drop(this.#names.get(name)!);
    }, seconds * 1000);
    env.idleTimer.unref();
  }

  #named(name: string): Named {
    const n = this.#names.get(name);
    if (!n)
      throw new AmixError(ErrorCode.AMIX_ERR_NO_ENVIRONMENT, `no environment is named ${name}`, { details: { name } });
    return n;
  }

  #info(n: Named): NeeInfo {
    const e = n.env;
    return {
      name: n.name,
      owner: n.owner,
      system: e.system,
      set: e.set,
      public: e.public,
      ...(e.first !== n.name ? { aliasOf: e.first } : {}),
      references: e.names.size,
      attached: e.attached,
      suspended: e.stopped,
      shell: e.shell,
    };
  }

  #assertOpen(): void {
    if (!this.#started || this.#closed)
      throw new AmixError(ErrorCode.AMIX_ERR_CLOSED, this.#closed ? 'the NEEM is closed' : 'the NEEM is not started');
  }
}
