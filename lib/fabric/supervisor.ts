/**
 * The instance supervisor: starts point instances (worker threads or child
 * processes, through a {@link HostHandle}), activates idle ones, handles
 * their exits (a death, or a restart that re-establishes their links), and
 * terminates them inside out (seed 000).
 *
 * @module
 */
import { AmixError, ErrorCode } from '../core/errors.js';
import { HostHandle, type HostExit } from './hostHandle.js';
import type { PointHost } from './pointHost.js';
import type { Hops } from './hops.js';
import type { PointRegistration, PointScope } from './point.js';
import type { FabricCore, Inst, Standby } from './records.js';

/** @internal Starts, restarts and ends the fabric's point instances. */
export class Supervisor {
  readonly #core: FabricCore;
  readonly #hops: Hops;

  constructor(core: FabricCore, hops: Hops) {
    this.#core = core;
    this.#hops = hops;
  }
  /** A host of our own, with the fabric's host flags: an idle one of the kind if the pool has one. */
  #newHost(scope: PointScope, id: string, stackMb: number): HostHandle {
    return this.#core.pool.take(scope, stackMb) ?? HostHandle.spawn(scope, id, stackMb, this.#core.hostExecArgv);
  }

  /** The instance a connection to `reg` uses: the public one, or a new private one per client. */
  async instanceFor(reg: PointRegistration, client: string | undefined, connecting = false): Promise<Inst> {
    const c = reg.characteristics;
    const live = [...this.#core.instances.values()].filter(
      (i) => i.point === reg && i.state !== 'terminating' && i.state !== 'ended' && i.state !== 'dead',
    );
    if (c.instancing === 'public') {
      const existing = live[0];
      if (existing) {
        if (connecting && c.maxConnections > 0 && existing.links.size >= c.maxConnections)
          throw maxConn(reg, existing.links.size);
        return existing;
      }
      return this.spawn(reg, reg.name, undefined);
    }
    if (connecting && client !== undefined) {
      // A private point gets one instance per client (seed 002 ¶53, "their own instance"): the client's
      // own instance if it has one, else an unclaimed one (made by create), else a new one.
      const own = live.find((i) => i.client === client);
      if (own) return own;
      const unclaimed = live.find((i) => i.client === undefined);
      if (unclaimed) {
        unclaimed.client = client;
        return unclaimed;
      }
    } else if (!connecting && live.length > 0) {
      return live[0]!;
    }
    if (c.maxConnections > 0 && live.length >= c.maxConnections) throw maxConn(reg, live.length);
    let n = 1;
    while (this.#core.instances.has(`${reg.name}#${n}`)) n++;
    return this.spawn(reg, `${reg.name}#${n}`, connecting ? client : undefined);
  }

  /** Start a host for `reg` under instance id `id`, initialise it, and start it unless the point is idle. */
  async spawn(reg: PointRegistration, id: string, client: string | undefined): Promise<Inst> {
    // A placed point (amixd: in a container) gets its host there; any other here.
    const { scope, stackMb } = reg.characteristics;
    const placed = this.#core.placement?.host(reg, id);
    const pooled = placed ? undefined : this.#core.pool.take(scope, stackMb);
    const host = placed ?? pooled ?? this.#newHost(scope, id, stackMb);
    const inst: Inst = {
      point: reg,
      id,
      state: 'starting',
      host,
      target: host,
      links: new Set(),
      restarts: 0,
      senderList: [],
      receiverList: [],
      ending: false,
      placed: [],
      ...(client !== undefined ? { client } : {}),
    };
    this.#core.instances.set(id, inst);
    this.#wire(inst);
    try {
      await this.#initHost(inst);
    } catch (err) {
      this.#core.instances.delete(id);
      inst.ending = true;
      await host.forceKill();
      throw err;
    }
    this.#core.emit({
      type: 'instanceCreated',
      point: reg.name,
      instance: id,
      scope: reg.characteristics.scope,
      pid: host.pid,
      ...(pooled ? { reused: true as const } : {}),
    });
    if (!reg.characteristics.idle) await this.activate(inst);
    else inst.state = 'idle';
    this.#spare(inst);
    return inst;
  }

  /**
   * Boot and initialise a spare host for a restartable instance (none if it
   * has one, or is ending). Booting a Node process or thread and loading
   * the point are most of a restart's time (on a loaded 2-core machine,
   * 0.2 to 1.5 s of it, measured): a spare made beforehand keeps a restart
   * under load under a second. It costs one idle process (or thread) per
   * restartable instance. Its init loads the point's module (so its
   * top-level code runs then); its main starts only when it takes over.
   */
  #spare(inst: Inst): void {
    if (!inst.point.characteristics.restart || inst.standby || inst.ending || !this.#core.isOpen()) return;
    // Only for hosts of our own: a container that hosts a point starts its own hosts.
    if (!(inst.host instanceof HostHandle)) return;
    const { scope, stackMb } = inst.point.characteristics;
    const host = this.#newHost(scope, inst.id, stackMb);
    const spare: Standby = { host, ready: this.#prepare(inst, host) };
    inst.standby = spare;
    // A spare that dies or fails its init is only forgotten; the next restart boots its own host.
    host.once('exit', () => {
      if (inst.standby === spare) delete inst.standby;
    });
    void spare.ready.then((ok) => {
      if (!ok && inst.standby === spare) void this.#dropSpare(inst);
    });
  }

  /**
   * Initialise a spare, and load its receiving primitive by opening and
   * closing one throwaway receiving end (only `queueConditionProcess`: it
   * costs a socket file for a moment, where another primitive might bind a
   * port): loading it is a good part of the time a restart takes to listen
   * again. Resolves false when the init fails.
   */
  async #prepare(inst: Inst, host: HostHandle): Promise<boolean> {
    try {
      await this.#initHost(inst, host);
    } catch {
      return false;
    }
    const primitive = inst.point.receivePrimitive;
    if (primitive === 'queueConditionProcess') {
      const link = 'amix:warm';
      const t = this.#core.timeoutMs;
      await host
        .request('openReceiver', { link, peer: link, primitive, options: {} }, t)
        .then(() => host.request('closeLink', { link }, t))
        .catch(() => {});
    }
    if (inst.standby?.host === host)
      this.#core.emit({ type: 'spareReady', point: inst.point.name, instance: inst.id, pid: host.pid });
    return !host.hasExited;
  }

  /** Kill an instance's spare host, if it has one. */
  async #dropSpare(inst: Inst): Promise<void> {
    const spare = inst.standby;
    if (!spare) return;
    delete inst.standby;
    await spare.host.forceKill().catch(() => {});
  }

  /** Start an instance's main if it is not running (seed connect steps 5 and 6: reactivate if idle). */
  async activate(inst: Inst): Promise<void> {
    if (inst.state === 'running') return;
    await inst.host.request('start', {}, this.#core.timeoutMs);
    inst.state = 'running';
    this.#core.emit({ type: 'instanceStarted', point: inst.point.name, instance: inst.id });
  }

  /**
   * End an instance, inside out (seed 000): withdraw its coordinator first so
   * no new connection reaches it, then close its links, then end its work
   * with the point's termination method, escalating to a signal on a timer.
   */
  async terminate(inst: Inst): Promise<void> {
    if (inst.ending) {
      await inst.host.exited;
      return;
    }
    inst.ending = true;
    inst.state = 'terminating';
    // Withdrawn at once, in the same turn as the request: no new connection may reach it.
    this.#core.emit({ type: 'coordinatorWithdrawn', point: inst.point.name, instance: inst.id });
    await this.#dropSpare(inst);
    for (const l of [...inst.links]) {
      const rec = this.#core.links.get(l);
      if (rec) await this.#hops.teardownLink(rec).catch(() => {});
    }
    const { termination, graceMs } = inst.point.characteristics;
    let method: 'message' | 'signal' = 'signal';
    let escalated = false;
    if (termination !== 'signal' && !inst.host.hasExited) {
      try {
        await inst.host.request(
          'terminate',
          { timeoutMs: graceMs },
          termination === 'message' ? Math.max(this.#core.timeoutMs, graceMs) : graceMs,
        );
        method = 'message';
      } catch {
        escalated = termination === 'messageThenSignal';
      }
    }
    // Ended by its message, its main returned: the host may wait for the next point (reuseHosts).
    const kept =
      method === 'message' &&
      this.#core.isOpen() &&
      inst.host instanceof HostHandle &&
      (await this.#core.pool.give(inst.host, inst.point.characteristics.stackMb, this.#core.timeoutMs));
    if (!kept) await inst.host.kill(graceMs);
    this.#ended(inst, method, escalated);
  }

  /**
   * Kill an instance at once (SIGKILL, `worker.terminate()`), for an abrupt
   * close: no coordinator withdrawal, no termination message, no link
   * teardown (the caller tears the links down afterwards).
   */
  async kill(inst: Inst): Promise<void> {
    await this.#dropSpare(inst);
    if (inst.ending) {
      await inst.host.forceKill();
      return;
    }
    inst.ending = true;
    inst.state = 'terminating';
    await inst.host.forceKill();
    this.#ended(inst, 'signal', false);
  }

  #ended(inst: Inst, method: 'message' | 'signal', escalated: boolean): void {
    inst.state = 'ended';
    this.#core.instances.delete(inst.id);
    this.#core.emit({ type: 'instanceTerminated', point: inst.point.name, instance: inst.id, method, escalated });
  }

  async #initHost(inst: Inst, host: PointHost = inst.host): Promise<void> {
    const primitives = this.#core.registry
      .list()
      .filter((p) => !p.builtin && !p.location.startsWith('inline:'))
      .map(({ name, location, characteristics }) => ({ name, location, characteristics }));
    await host.request(
      'init',
      {
        registration: inst.point,
        instance: inst.id,
        primitives,
        baseDir: this.#core.baseDir,
        runtimeDir: this.#core.runtimeDir,
      },
      this.#core.timeoutMs,
    );
  }

  #wire(inst: Inst): void {
    const host = inst.host;
    host.on('event', (e: { type: string; link?: string; peer?: string; event?: string }) => {
      if (e.type === 'channel')
        this.#core.emit({ type: 'channel', instance: inst.id, link: e.link!, peer: e.peer!, event: e.event! });
      else if (e.type === 'mainEnded') {
        // A container's host reports this one too: take only two bounded strings from it.
        const err = (e as { error?: { code?: unknown; message?: unknown } }).error;
        const error =
          err && typeof err === 'object'
            ? {
                ...(typeof err.code === 'string' ? { code: err.code.slice(0, 64) } : {}),
                message: String(err.message ?? '').slice(0, 1024),
              }
            : undefined;
        this.#core.emit({ type: 'mainEnded', point: inst.point.name, instance: inst.id, ...(error ? { error } : {}) });
      } else if (e.type === 'linkEnded')
        this.#core.emit({ type: 'peerLost', link: e.link!, instance: inst.id, peer: e.peer! });
      else if (e.type === 'route') {
        const r = e as unknown as { up: boolean; dest: string; via?: string; hops?: number };
        this.#core.emit(
          r.up
            ? { type: 'routeUp', switch: inst.id, dest: r.dest, via: r.via ?? '', hops: r.hops ?? 1 }
            : { type: 'routeDown', switch: inst.id, dest: r.dest },
        );
      } else if (e.type === 'trunk') {
        const r = e as unknown as { up: boolean; peer?: string };
        this.#core.emit({ type: r.up ? 'trunkUp' : 'trunkDown', trunk: inst.id, peer: r.peer ?? '' });
      }
    });
    host.on('exit', (exit: HostExit) => {
      if (inst.host === host) void this.#onExit(inst, exit);
    });
  }

  async #onExit(inst: Inst, exit: HostExit): Promise<void> {
    if (inst.ending) return;
    const core = this.#core;
    inst.state = 'dead';
    core.emit({
      type: 'instanceDied',
      point: inst.point.name,
      instance: inst.id,
      code: exit.code,
      signal: exit.signal,
    });
    const linkIds = [...inst.links];
    if (inst.point.characteristics.restart && core.isOpen() && core.points.get(inst.point.name) === inst.point) {
      try {
        await this.#restart(inst, linkIds);
        return;
      } catch {
        // Fall through: treat as a death without restart; a half-started new host goes too.
        inst.ending = true;
        await inst.host.forceKill().catch(() => {});
      }
    }
    await this.#dropSpare(inst);
    core.instances.delete(inst.id);
    for (const l of linkIds) {
      const rec = core.links.get(l);
      if (!rec) continue;
      for (const peer of [rec.a, ...rec.b].filter((x) => x !== inst.id))
        core.emit({ type: 'peerLost', link: l, instance: peer, peer: inst.id });
      await this.#hops
        .teardownLink(rec, new AmixError(ErrorCode.AMIX_ERR_POINT_DIED, `point ${inst.id} died`))
        .catch(() => {});
    }
  }

  async #restart(inst: Inst, linkIds: string[]): Promise<void> {
    // A point placed elsewhere (a container hosts it) gets its new host there, and has no spare here.
    const placed = this.#core.placement?.host(inst.point, inst.id);
    if (placed) await this.#dropSpare(inst);
    const spare = placed ? undefined : inst.standby;
    delete inst.standby;
    // The spare, if its init succeeds (waiting for one still starting beats starting another).
    const ready = spare !== undefined && !spare.host.hasExited && (await spare.ready) && !spare.host.hasExited;
    if (spare && !ready) await spare.host.forceKill().catch(() => {});
    inst.host =
      placed ??
      (ready
        ? spare.host
        : this.#newHost(inst.point.characteristics.scope, inst.id, inst.point.characteristics.stackMb));
    inst.target = inst.host;
    inst.restarts++;
    inst.state = 'starting';
    inst.senderList = [];
    inst.receiverList = [];
    this.#wire(inst);
    if (!ready) await this.#initHost(inst);
    // Re-establish every link the dead instance was in, under the same link ids, and only then
    // start the point: started first, it could take a re-sent message on a reopened receiving end
    // and answer on that link before its sending end was back (AMIX_ERR_UNKNOWN_LINK in its loop).
    await this.#hops.reopen(inst, linkIds);
    await this.activate(inst);
    this.#core.emit({ type: 'instanceRestarted', point: inst.point.name, instance: inst.id, links: linkIds });
    // Only now: booting the next spare would compete with this recovery for the CPU.
    this.#spare(inst);
  }
}

function maxConn(reg: PointRegistration, n: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_MAX_CONNECTIONS,
    `point "${reg.name}" is at its maxConnections (${reg.characteristics.maxConnections}; ${n} in use); retry after a client leaves`,
    { details: { point: reg.name, maxConnections: reg.characteristics.maxConnections } },
  );
}
