#!/usr/bin/env node
// amix: the command-line tool. Each verb is a thin shell over lib/ (mostly a
// DaemonClient request); -h on every verb, --json everywhere, exit 2 on misuse.
import { spawn } from 'node:child_process';
import { closeSync, constants, existsSync, fstatSync, openSync } from 'node:fs';
import { lstat, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
// Each part from its own module, not lib/internal.js: a CLI run is one short
// process, and the whole library (and the zeromq addon, which the key verbs
// need) would double its start-up. Key and conformance verbs import theirs.
import { DaemonClient } from '../lib/control/client.js';
import { DAEMON_FILES, isAlive } from '../lib/control/files.js';
import { checkPrivateFile, createPrivateFile, defaultDaemonDir, ensurePrivateDir } from '../lib/core/paths.js';
import { isAmixError } from '../lib/core/errors.js';
import type { DaemonOp, DaemonOps, DaemonStatus, ListOp } from '../lib/control/ops.js';
import type { PointView } from '../lib/directory/index.js';
import type { PeerInfo, PeeringStatus } from '../lib/remote/types.js';
import type { AnyArgs } from '../lib/core/rpc.js';
import { bindVerb, capsVerbs, dcmVerb, neeVerbs } from '../lib/services/cli.js';
import type { SwitchSnapshot, TrunkSnapshot } from '../lib/fabric/switches.js';

type Opts = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;
interface Verb {
  usage: string;
  options?: Opts;
  min?: number;
  max?: number;
  run(pos: string[], v: Values): Promise<unknown>;
}

class Misuse extends Error {}
const common: Opts = {
  dir: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'token-file': { type: 'string' },
  socket: { type: 'string' },
};
const here = fileURLToPath(new URL('.', import.meta.url));
/** The verb being run (the container's name in `amix daemon status`). */
let verbName = '';

function out(v: Values, data: unknown, human: () => string): void {
  process.stdout.write(v.json ? `${JSON.stringify(data)}\n` : `${human()}\n`);
}

/**
 * Write `text` to stdout and, when the pipe is full, wait until it drains:
 * a verb that prints as it goes (recv, top) holds at most one chunk of
 * output in memory for a slow reader. Resolves false once stdout is gone
 * (its reader left: the verb should stop), else true.
 */
async function emit(text: string): Promise<boolean> {
  if (process.stdout.destroyed) return false;
  if (process.stdout.write(text)) return true;
  await new Promise<void>((res) => {
    const done = () => {
      process.stdout.off('drain', done);
      process.stdout.off('close', done);
      res();
    };
    process.stdout.once('drain', done);
    process.stdout.once('close', done);
  });
  return !process.stdout.destroyed;
}

/**
 * Resolves once everything written to `stream` has reached the kernel (the
 * reader of a pipe has it, or can read it after we are gone), or the stream
 * failed or closed. An empty write's callback runs after every write before
 * it: process.exit before that would drop what is still queued, which on a
 * pipe is all but its first 64 KiB.
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  return new Promise<void>((res) => {
    stream.once('close', () => res());
    stream.write('', () => res());
  });
}

function table(rows: Array<Record<string, unknown>>, cols: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (x: unknown) =>
    x === undefined || x === null
      ? ''
      : Array.isArray(x)
        ? x.join(',')
        : typeof x === 'object'
          ? JSON.stringify(x)
          : String(x);
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (xs: string[]) =>
    xs
      .map((x, i) => x.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

/**
 * Plug in as the principal of --token-file (or $AMIX_TOKEN_FILE), through
 * --socket (or $AMIX_SOCKET); with no token file, as the administrator
 * (DIR/admin.token: whoever can read the daemon's directory runs it).
 */
async function client(v: Values): Promise<DaemonClient> {
  const tokenFile = (v['token-file'] as string | undefined) ?? process.env.AMIX_TOKEN_FILE;
  const socket = (v.socket as string | undefined) ?? process.env.AMIX_SOCKET;
  return DaemonClient.connect({
    ...(v.dir ? { dir: v.dir as string } : {}),
    ...(tokenFile ? { tokenFile } : { admin: true }),
    ...(socket ? { socket } : {}),
    name: `amix ${verbName}`.trim(),
  });
}

/** Run one request against the daemon and print its result. */
async function simple(
  v: Values,
  op: DaemonOp,
  args: Record<string, unknown>,
  human: (r: any) => string,
): Promise<void> {
  const c = await client(v);
  try {
    // What the user typed, unchecked here: the daemon checks every argument and names the one it refuses.
    const r = await c.request<unknown>(op, args as AnyArgs<DaemonOps>);
    out(v, r, () => human(r));
  } finally {
    await c.close();
  }
}

/** Print every item of a listing op, fetched a page at a time (no reply outgrows a control frame). */
async function listed(v: Values, op: ListOp, cols: string[]): Promise<void> {
  const c = await client(v);
  try {
    const all = await c.listAll(op);
    out(v, all, () => table(all as unknown as Array<Record<string, unknown>>, cols));
  } finally {
    await c.close();
  }
}

function int(v: Values, k: string): number | undefined {
  if (v[k] === undefined) return undefined;
  const n = Number(v[k]);
  if (!Number.isSafeInteger(n)) throw new Misuse(`--${k} must be an integer (got ${String(v[k])})`);
  return n;
}

const verbs: Record<string, Verb> = {
  'daemon start': {
    usage:
      'amix daemon start [--dir DIR] [--slots N] [--shared-socket PATH]   start amixd in the background (log: DIR/amixd.log)',
    options: { slots: { type: 'string' }, 'shared-socket': { type: 'string' } },
    async run(_, v) {
      const dir = (v.dir as string | undefined) ?? defaultDaemonDir();
      const socket = join(dir, DAEMON_FILES.socket);
      if (await isAlive(socket)) {
        out(v, { running: true, dir }, () => `amixd already running in ${dir}`);
        return;
      }
      await ensurePrivateDir(dir);
      // The daemon and the point processes it forks write to this file, never
      // to a pipe of ours that closes when this command exits.
      // Appended to, never followed: a log symlink planted in the directory is refused (amixd checks the rest).
      const logFile = join(dir, DAEMON_FILES.log);
      await checkPrivateFile(logFile);
      const log = openSync(
        logFile,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        0o600,
      );
      if ((fstatSync(log).mode & 0o077) !== 0) throw new Error(`${logFile} is open to group or other`);
      const args = [
        join(here, 'amixd.js'),
        '--dir',
        dir,
        ...(v.slots ? ['--slots', v.slots as string] : []),
        ...(v['shared-socket'] ? ['--shared-socket', v['shared-socket'] as string] : []),
      ];
      const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
      closeSync(log);
      let exited: number | null | undefined;
      child.once('exit', (code) => {
        exited = code;
      });
      const deadline = Date.now() + 15_000;
      while (!(await isAlive(socket))) {
        if (exited !== undefined)
          throw new Error(`amixd exited with code ${exited} before it was ready (see ${join(dir, 'amixd.log')})`);
        if (Date.now() > deadline) throw new Error(`amixd did not listen within 15 s (see ${join(dir, 'amixd.log')})`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.unref();
      out(v, { pid: child.pid, dir }, () => `amixd ${child.pid} started in ${dir}`);
    },
  },
  'daemon stop': {
    usage: 'amix daemon stop [--dir DIR]   stop amixd (points end inside out)',
    async run(_, v) {
      const c = await client(v);
      const gone = new Promise<void>((res) => c.connection.once('close', () => res()));
      await c.request('stop');
      await gone;
      out(v, { stopped: true }, () => 'amixd stopped');
    },
  },
  'daemon status': {
    usage: 'amix daemon status [--dir DIR] [--json]',
    async run(_, v) {
      await simple(
        v,
        'status',
        {},
        (s) =>
          `amixd ${s.pid} in ${s.dir}, up ${Math.round(s.uptimeMs / 1000)} s, ${s.containers.filter((c: { admin: boolean }) => !c.admin).length}/${s.slots} slots (+${s.containers.filter((c: { admin: boolean }) => c.admin).length}/${s.adminSlots} administrator), ${s.points} points, ${s.instances} instances, ${s.links} links\n${s.metrics ? `metrics: ${s.metrics}\n` : ''}${guardLine('control socket', s.guard)}${guardLine('shared socket', s.sharedGuard)}${peeringLine(s.peering)}${table(s.containers, ['id', 'name', 'pid', 'owner', 'links'])}`,
      );
    },
  },
  'primitive add': {
    usage:
      'amix primitive add NAME LOCATION --scopes thread,process,remote [--max-bytes N] [--ordering fifo|unordered] [--delivery reliable|bestEffort]',
    options: {
      scopes: { type: 'string' },
      'max-bytes': { type: 'string' },
      ordering: { type: 'string' },
      delivery: { type: 'string' },
    },
    min: 2,
    max: 2,
    async run([name, location], v) {
      if (!v.scopes) throw new Misuse('--scopes is required');
      const loc = location!.startsWith('.') ? resolve(location!) : location!;
      const registration = {
        name,
        location: loc,
        characteristics: {
          scopes: (v.scopes as string).split(','),
          maxMessageBytes: int(v, 'max-bytes') ?? 1 << 20,
          ordering: v.ordering ?? 'fifo',
          delivery: v.delivery ?? 'reliable',
        },
      };
      await simple(v, 'primitive.add', { registration }, (r) => `primitive ${r.name} registered (${r.state})`);
    },
  },
  'primitive rm': {
    usage: 'amix primitive rm NAME',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'primitive.rm', { name }, () => `primitive ${name} removed`);
    },
  },
  'primitive ls': {
    usage: 'amix primitive ls [--json]',
    async run(_, v) {
      await simple(v, 'primitive.ls', {}, (r) =>
        table(
          r.map((p: any) => ({ ...p, scopes: p.characteristics.scopes, maxBytes: p.characteristics.maxMessageBytes })),
          ['name', 'scopes', 'maxBytes', 'state', 'builtin', 'location'],
        ),
      );
    },
  },
  'point register': {
    usage:
      'amix point register NAME LOCATION [--scope thread|process] [--role sender|receiver|both] [--send-primitive P] [--receive-primitive P]\n  [--maxmsg N] [--minmsg N] [--idle] [--restart] [--termination message|signal|messageThenSignal] [--grace-ms N]\n  [--discard block|dropNewest|dropOldest|reject] [--private] [--max-connections N] [--data JSON] [--ephemeral]\n  [--attr KEY=VALUE]... [--private-attr KEY=VALUE]...   attributes for amix query (numbers and true/false are typed)\n  Safe to retry: the same registration again by the same principal answers the existing point;\n  a taken name with anything different (or another owner) is AMIX_ERR_DUPLICATE.',
    options: {
      scope: { type: 'string' },
      role: { type: 'string' },
      'send-primitive': { type: 'string' },
      'receive-primitive': { type: 'string' },
      maxmsg: { type: 'string' },
      minmsg: { type: 'string' },
      idle: { type: 'boolean' },
      restart: { type: 'boolean' },
      termination: { type: 'string' },
      'grace-ms': { type: 'string' },
      discard: { type: 'string' },
      private: { type: 'boolean' },
      'max-connections': { type: 'string' },
      data: { type: 'string' },
      ephemeral: { type: 'boolean' },
      attr: { type: 'string', multiple: true },
      'private-attr': { type: 'string', multiple: true },
    },
    min: 2,
    max: 2,
    async run([name, location], v) {
      const c: Record<string, unknown> = {};
      const set = (k: string, val: unknown) => {
        if (val !== undefined) c[k] = val;
      };
      set('scope', v.scope);
      set('maxmsg', int(v, 'maxmsg'));
      set('minmsg', int(v, 'minmsg'));
      set('idle', v.idle);
      set('restart', v.restart);
      set('termination', v.termination);
      set('graceMs', int(v, 'grace-ms'));
      set('discard', v.discard);
      set('maxConnections', int(v, 'max-connections'));
      if (v.private) c.instancing = 'private';
      let data: unknown;
      if (v.data !== undefined) {
        try {
          data = JSON.parse(v.data as string);
        } catch {
          throw new Misuse('--data must be JSON');
        }
      }
      const loc = location!.startsWith('.') ? resolve(location!) : location!;
      const registration = {
        name,
        location: loc,
        characteristics: c,
        ...(v.role ? { role: v.role } : {}),
        ...(data !== undefined ? { data } : {}),
        ...(v['send-primitive'] ? { sendPrimitive: v['send-primitive'] } : {}),
        ...(v['receive-primitive'] ? { receivePrimitive: v['receive-primitive'] } : {}),
      };
      const attributes: Record<string, unknown> = {};
      for (const [flag, visibility] of [
        ['attr', 'public'],
        ['private-attr', 'private'],
      ] as const) {
        for (const kv of (v[flag] as unknown as string[] | undefined) ?? []) {
          const eq = kv.indexOf('=');
          if (eq < 1) throw new Misuse(`--${flag} takes KEY=VALUE (got ${kv})`);
          const raw = kv.slice(eq + 1);
          const value =
            raw === 'true'
              ? true
              : raw === 'false'
                ? false
                : raw !== '' && Number.isFinite(Number(raw))
                  ? Number(raw)
                  : raw;
          attributes[kv.slice(0, eq)] = { value, visibility };
        }
      }
      await simple(
        v,
        'point.register',
        { registration, attributes, ephemeral: v.ephemeral === true },
        (r) => `point ${r.name} registered as ${r.id} (${r.scope}, owner ${r.owner})`,
      );
    },
  },
  'point rm': {
    usage: 'amix point rm NAME   (owner or administrator only)',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'point.rm', { name }, () => `point ${name} removed`);
    },
  },
  'point ls': {
    usage: 'amix point ls [--json]   every point (fetched in pages, so any number of them)',
    async run(_, v) {
      await listed(v, 'point.ls', [
        'id',
        'name',
        'scope',
        'role',
        'owner',
        'sendPrimitive',
        'receivePrimitive',
        'instances',
      ]);
    },
  },
  'point show': {
    usage: 'amix point show NAME|ID [--json]   (private attributes only for the owner or administrator)',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'point.show', { name }, (r) =>
        [
          ...['id', 'name', 'owner'].map((k) => `${k}: ${r[k]}`),
          `record: ${JSON.stringify(r.record)}`,
          ...Object.entries(r.attributes as Record<string, { value: unknown; visibility: string }>).map(
            ([k, a]) => `attribute ${k} = ${JSON.stringify(a.value)}${a.visibility === 'private' ? ' (private)' : ''}`,
          ),
          `instances: ${(r.instances as Array<{ instance: string; state: string }>).map((i) => `${i.instance} ${i.state}`).join(', ') || 'none'}`,
        ].join('\n'),
      );
    },
  },
  query: {
    usage:
      'amix query EXPR [--limit N] [--offset N]   (default limit 100) e.g. \'role = "receiver" and (region = "eu*" or not exists backup)\'',
    options: { limit: { type: 'string' }, offset: { type: 'string' } },
    min: 1,
    max: 1,
    async run([expr], v) {
      const limit = int(v, 'limit') ?? 100;
      let offset = int(v, 'offset') ?? 0;
      if (limit < 1) throw new Misuse('--limit must be at least 1');
      const c = await client(v);
      const points: PointView[] = [];
      let more = false;
      try {
        // The daemon answers a page that fits one frame; ask on until the limit is reached or nothing is left.
        for (;;) {
          const r = await c.request('query', { expr: expr!, offset, limit: limit - points.length });
          points.push(...r.points);
          more = r.more;
          if (!r.more || r.points.length === 0 || points.length >= limit) break;
          offset = r.next ?? offset + r.points.length;
        }
      } finally {
        await c.close();
      }
      out(
        v,
        { points, more },
        () =>
          `${table(
            points.map((p) => ({
              id: p.id,
              name: p.name,
              owner: p.owner,
              role: p.record.role,
              attributes: Object.fromEntries(Object.entries(p.attributes).map(([k, a]) => [k, a.value])),
            })),
            ['id', 'name', 'owner', 'role', 'attributes'],
          )}${more ? '\n(more: use --offset)' : ''}`,
      );
    },
  },
  links: {
    usage: 'amix links [--json]   every link, with its owner',
    async run(_, v) {
      await listed(v, 'links', ['id', 'a', 'b', 'direction', 'state', 'owner']);
    },
  },
  instances: {
    usage: 'amix instances [--json]   every point instance',
    async run(_, v) {
      await listed(v, 'instances', ['instance', 'point', 'scope', 'state', 'pid', 'links', 'restarts']);
    },
  },
  peers: {
    usage: 'amix peers [--json]   the daemons this one peers with (amixd --listen / --peer), and their counters',
    async run(_, v) {
      await simple(v, 'peers', {}, (r: Partial<PeeringStatus> & { peers: PeerInfo[] }) => {
        if (r.id === undefined) return 'peering is off (start amixd with --listen or --peer)';
        // The same counters as daemon status's peering line: every drop and refusal.
        const head = `${peeringLine(r as PeeringStatus).trimEnd()}${r.control ? `; control ${r.control}` : ''}`;
        return `${head}\n${table(
          r.peers.map((p) => ({
            ...p,
            error: p.error ? `${p.error.code}: ${p.error.message}` : undefined,
            stats: undefined,
            ...p.stats,
          })),
          ['id', 'endpoint', 'state', 'links', ...Object.keys(r.peers[0]?.stats ?? {}), 'error'],
        )}`;
      });
    },
  },
  connect: {
    usage: 'amix connect A B [--direction both|aToB|bToA|none|1-4] [--mode add|hold|conference] [--direct]',
    options: { direction: { type: 'string' }, mode: { type: 'string' }, direct: { type: 'boolean' } },
    min: 2,
    max: 2,
    async run([a, b], v) {
      await simple(
        v,
        'connect',
        {
          a,
          b,
          ...(v.direction ? { direction: v.direction } : {}),
          ...(v.mode ? { mode: v.mode } : {}),
          ...(v.direct ? { direct: true } : {}),
        },
        (r) => `${r.id}: ${r.a} → ${r.b.join(',')} (${r.direction}, steps ${r.steps.join(',')})`,
      );
    },
  },
  disconnect: {
    usage: 'amix disconnect LINK [--terminate a|b|both]',
    options: { terminate: { type: 'string' } },
    min: 1,
    max: 1,
    async run([link], v) {
      await simple(
        v,
        'disconnect',
        { link, ...(v.terminate ? { terminate: v.terminate } : {}) },
        () => `${link} disconnected`,
      );
    },
  },
  suspend: {
    usage: 'amix suspend LINK',
    min: 1,
    max: 1,
    async run([link], v) {
      await simple(v, 'suspend', { link }, (r) => `${r.id} ${r.state}`);
    },
  },
  resume: {
    usage: 'amix resume LINK',
    min: 1,
    max: 1,
    async run([link], v) {
      await simple(v, 'resume', { link }, (r) => `${r.id} ${r.state}`);
    },
  },
  reconnect: {
    usage: 'amix reconnect POINT   (null message through its links; reports its state)',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'reconnect', { name }, (r) => table(r, ['instance', 'state', 'links']));
    },
  },
  execute: {
    usage: 'amix execute POINT   (start it with nobody connected)',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'execute', { name }, (r) => `${r.instance} ${r.state}`);
    },
  },
  destroy: {
    usage: 'amix destroy POINT   (remove the registration, terminate its instances)',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'destroy', { name }, () => `point ${name} destroyed`);
    },
  },
  send: {
    usage: 'amix send POINT [FILE...]   each stdin line (or each whole FILE) becomes one message to POINT',
    min: 1,
    async run([point, ...files], v) {
      const c = await client(v);
      try {
        const link = await c.connect(null, point!, { direction: 'aToB' });
        let n = 0;
        if (files.length > 0)
          for (const f of files) {
            await link.send(await readFile(f));
            n++;
          }
        else
          for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
            await link.send(Buffer.from(line));
            n++;
          }
        await link.close();
        out(v, { sent: n, link: link.id }, () => `sent ${n} message(s) to ${point}`);
      } finally {
        await c.close();
      }
    },
  },
  recv: {
    usage:
      "amix recv POINT [--count N]   print POINT's messages, one per line (--json: objects with from, size, base64 data)",
    options: { count: { type: 'string' } },
    min: 1,
    max: 1,
    async run([point], v) {
      const count = int(v, 'count');
      const c = await client(v);
      try {
        const link = await c.connect(point!, null, { direction: 'aToB' });
        process.stderr.write(`recv: linked ${link.id}\n`);
        let n = 0;
        const stop = () => void link.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        for await (const m of link) {
          const open = await emit(
            v.json
              ? `${JSON.stringify({ from: m.from, size: m.size, data: Buffer.from(m.data).toString('base64') })}\n`
              : `${Buffer.from(m.data).toString()}\n`,
          );
          if (!open || (count !== undefined && ++n >= count)) break;
        }
        await link.close();
      } finally {
        await c.close();
      }
    },
  },
  top: {
    usage: 'amix top [--interval MS] [--once]   live per-link rates, pending, suspended',
    options: { interval: { type: 'string' }, once: { type: 'boolean' } },
    async run(_, v) {
      const c = await client(v);
      const every = int(v, 'interval') ?? 1000;
      let prev: Map<string, { at: number; sent: number }> = new Map();
      try {
        for (;;) {
          const s = await c.request<{ at: number; instances: Record<string, any>; links: any[] }>('stats');
          const rows = s.links.map((l) => {
            const st = s.instances[l.a]?.links?.[l.id] ?? s.instances[l.b[0]]?.links?.[l.id];
            const sent = (st?.tx ?? []).reduce((n: number, x: any) => n + (x.sent ?? 0), 0);
            const pending = (st?.tx ?? []).reduce((n: number, x: any) => n + (x.pending ?? 0), 0);
            const p = prev.get(l.id);
            const rate = p ? Math.round(((sent - p.sent) * 1000) / Math.max(1, s.at - p.at)) : undefined;
            return {
              link: l.id,
              from: l.a,
              to: l.b.join(','),
              state: l.state,
              'msgs/s': rate,
              sent,
              pending,
              suspendedMs: l.suspendedMs,
            };
          });
          prev = new Map(rows.map((r) => [r.link, { at: s.at, sent: r.sent }]));
          let open: boolean;
          if (v.json) open = await emit(`${JSON.stringify({ at: s.at, links: rows })}\n`);
          else {
            if (process.stdout.isTTY && !v.once) process.stdout.write('\x1b[H\x1b[2J');
            open = await emit(
              `amix top  ${new Date(s.at).toISOString()}\n${table(rows, ['link', 'from', 'to', 'state', 'msgs/s', 'sent', 'pending', 'suspendedMs'])}\n`,
            );
          }
          if (v.once || !open) break;
          await new Promise((r) => setTimeout(r, every));
        }
      } finally {
        await c.close();
      }
    },
  },
  'switch ls': {
    usage:
      'amix switch ls [--json]   the running switch points (location amix:switch): routes, links, neighbours, msgs/s, pending, dropped;\n' +
      '  then the running trunk points (amix:trunk): state, peer, local and remote switch, msgs per frame, msgs/s, pending, dropped.\n' +
      '  --json: one array, each row with kind "switch" or "trunk".',
    async run(_, v) {
      await simple(v, 'switch.ls', {}, (r: Array<Record<string, unknown>>) => {
        const sw = table(
          r.filter((x) => x.kind !== 'trunk'),
          ['switch', 'scope', 'pid', 'routes', 'links', 'neighbours', 'msgsPerSec', 'pending', 'dropped'],
        );
        const tr = r.filter((x) => x.kind === 'trunk');
        if (tr.length === 0) return sw;
        const cols = ['trunk', 'scope', 'pid', 'state', 'peer', 'localSwitch', 'remoteSwitch', 'msgsPerFrame'];
        return `${sw}\ntrunks:\n${table(tr, [...cols, 'msgsPerSec', 'pending', 'dropped'])}`;
      });
    },
  },
  'switch show': {
    usage:
      "amix switch show NAME [--json]   a switch's routes (destination, link, next hop, hops, messages, msgs/s, dropped) and links\n" +
      '  (or, for a trunk point, its trunk: state, peer, frames and messages per frame each way, retransmits, drops)\n' +
      '  (messages in and out, msgs/s in and out, queued, sources parked, dropped); NAME is a point name or directory id.\n' +
      '  Rates (msgsPerSec, inPerSec, outPerSec) are over the last second: the switch samples its counters once a second.',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'switch.show', { name }, (x: SwitchSnapshot | TrunkSnapshot) => {
        if (typeof x.trunk === 'string') {
          const t = x as TrunkSnapshot;
          return (
            `trunk ${t.trunk}: ${t.state}, ${t.localSwitch ?? '?'} <-> ${t.remoteSwitch ?? '?'} (peer ${t.peer ?? 'not yet known'}, key ${t.peerKey})\n` +
            `out: ${t.framesOut} frames, ${t.msgsOut} messages (${t.msgsPerFrame} per frame, ${t.msgsOutPerSec}/s); in: ${t.framesIn} frames, ${t.msgsIn} messages (${t.msgsInPerSec}/s)\n` +
            `ups ${t.ups}, downs ${t.downs}, retransmits ${t.retransmits}, pending ${t.pending}; dropped: ${t.dropped.down} while down, ${t.dropped.bad} bad` +
            (t.lastError ? `\nlast error: ${t.lastError.code} ${t.lastError.message}` : '')
          );
        }
        const r = x as SwitchSnapshot;
        const d = r.dropped;
        return (
          `switch ${r.switch}: ${r.routes.length} routes, ${r.ports.length} links, ${r.msgsPerSec} msgs/s, ${r.pending} pending ` +
          `(queue limit ${r.queueLimit}); dropped: ${d.unknown} no route, ${d.hops} too many hops, ${d.bad} bad header, ` +
          `${d.gone} link gone\nroutes:\n${table(
            r.routes.map((y) => ({ ...y, path: y.path.join('>'), suspended: y.suspended ? 'yes' : '' })),
            ['dest', 'link', 'nextHop', 'hops', 'path', 'messages', 'msgsPerSec', 'dropped', 'suspended'],
          )}\nlinks:\n${table(r.ports as unknown as Array<Record<string, unknown>>, ['link', 'peer', 'neighbour', 'trunk', 'in', 'out', 'inPerSec', 'outPerSec', 'queued', 'parked', 'dropped'])}` +
          `\ntrunk flows: ${r.trunk.sent} sent, ${r.trunk.retransmits} re-sent, ${r.trunk.acked} acknowledged, ${r.trunk.kept} kept (window ${r.trunk.window}); ${r.trunk.accepted} in, ${r.trunk.duplicates} duplicates, ${r.trunk.gaps} gaps`
        );
      });
    },
  },
  'switch suspend': {
    usage: "amix switch suspend NAME DEST   hold the switch's messages for DEST (a point attached to it)",
    min: 2,
    max: 2,
    async run([name, dest], v) {
      await simple(v, 'switch.suspend', { name, dest }, () => `${name!}: route to ${dest!} suspended`);
    },
  },
  'switch resume': {
    usage: 'amix switch resume NAME DEST   release a suspended route',
    min: 2,
    max: 2,
    async run([name, dest], v) {
      await simple(v, 'switch.resume', { name, dest }, () => `${name!}: route to ${dest!} resumed`);
    },
  },
  'principal add': {
    usage:
      'amix principal add NAME [--out FILE]   a principal with a new token, written to FILE 0600 (default DIR/principals/NAME.token; administrator only)',
    options: { out: { type: 'string' } },
    min: 1,
    max: 1,
    async run([name], v) {
      const dir = (v.dir as string | undefined) ?? defaultDaemonDir();
      const file = (v.out as string | undefined) ?? join(dir, DAEMON_FILES.principals, `${name!}.token`);
      if (v.out === undefined) await ensurePrivateDir(join(dir, DAEMON_FILES.principals));
      if (
        await lstat(file).then(
          () => true,
          () => false,
        )
      )
        throw new Error(`${file} exists already: not replaced`);
      const c = await client(v);
      try {
        const r = await c.request('principal.add', { name: name! });
        // O_EXCL | O_NOFOLLOW, 0600: the token goes nowhere but a new file of ours; if that fails, no principal.
        await createPrivateFile(file, `${r.token}\n`).catch(async (err: unknown) => {
          await c.request('principal.rm', { name: name! }).catch(() => {});
          throw err;
        });
        out(
          v,
          { name: r.name, tokenFile: file },
          () => `principal ${r.name} added; its token is in ${file} (mode 0600)`,
        );
      } finally {
        await c.close();
      }
    },
  },
  'principal ls': {
    usage: 'amix principal ls [--json]   the principals (administrator only)',
    async run(_, v) {
      await simple(v, 'principal.ls', {}, (r: Array<Record<string, unknown>>) =>
        table(
          r.map((p) => ({ ...p, createdAt: p.createdAt ? new Date(p.createdAt as number).toISOString() : '' })),
          ['name', 'admin', 'builtin', 'createdAt'],
        ),
      );
    },
  },
  'principal rm': {
    usage:
      'amix principal rm NAME   remove a principal: its token stops working, its connections close (administrator only)',
    min: 1,
    max: 1,
    async run([name], v) {
      await simple(v, 'principal.rm', { name }, () => `principal ${name!} removed`);
    },
  },
  'keys generate': {
    usage: 'amix keys generate [--out FILE]   a CURVE key pair (FILE written 0600; without --out, printed)',
    options: { out: { type: 'string' } },
    async run(_, v) {
      const { generateKeyPair, saveKeyPair } = await import('../primitives/zeromq/keys.js');
      const pair = generateKeyPair();
      if (v.out) {
        await saveKeyPair(v.out as string, pair);
        out(
          v,
          { publicKey: pair.publicKey, file: v.out },
          () =>
            `public key ${pair.publicKey} (key pair in ${v.out as string}, mode 0600)\n` +
            `peers allow it with the --allow line: ${pair.publicKey} <this daemon's id, from amix daemon status --json>`,
        );
      } else out(v, pair, () => `public ${pair.publicKey}\nsecret ${pair.secretKey}`);
    },
  },
  bench: {
    usage: 'amix bench [thread|process|remote|directory ...] [--quick] [--json]   run the benchmarks',
    options: { quick: { type: 'boolean' } },
    async run(pos, v) {
      const script = join(here, '..', 'bench', 'run.js');
      if (!existsSync(script)) throw new Error('benchmarks are not built (run npm run build in a checkout)');
      const code = await new Promise<number>((res) =>
        spawn(process.execPath, [script, ...pos, ...(v.quick ? ['--quick'] : []), ...(v.json ? ['--json'] : [])], {
          stdio: 'inherit',
        }).on('exit', (c) => res(c ?? 1)),
      );
      if (code !== 0) process.exitCode = code;
    },
  },
  conformance: {
    usage:
      'amix conformance MODULE [--json] [--timeout MS]   run the primitive contract suite against a primitive module\n' +
      '  MODULE: a path to an ES module whose default export is a primitive (as `amix primitive add` registers it).\n' +
      '  Prints one line per case (--json: {"passed":n,"failed":n,"cases":[{"name","ok","error"?}]}).\n' +
      '  --timeout MS: per case, default 30000. Exit 0 all passed, 1 any failed, 2 no or unloadable module.',
    options: { timeout: { type: 'string' } },
    max: 1,
    async run([module], v) {
      const timeoutMs = int(v, 'timeout') ?? 30_000;
      if (timeoutMs <= 0) throw new Misuse('--timeout must be positive');
      const runtimeDir = await mkdtemp(join(tmpdir(), 'amix-conformance-'));
      try {
        let target;
        const conformance = await import('../lib/core/conformance.js');
        try {
          if (module === undefined)
            throw Object.assign(new Error('a primitive module is needed'), { code: 'AMIX_ERR_INVALID_ARG' });
          target = await conformance.loadPrimitiveTarget(module, { channel: { runtimeDir } });
        } catch (err) {
          // Bad usage, not a failed case: exit 2 with the code, so a script tells "cannot run" from "fails".
          const code = (err as { code?: string }).code ?? 'AMIX_ERR_PRIMITIVE_LOAD';
          if (v.json) process.stdout.write(`${JSON.stringify({ error: { code, message: (err as Error).message } })}\n`);
          process.stderr.write(
            `amix conformance: ${(err as Error).message} (${code})\nusage: ${verbs.conformance!.usage}\n`,
          );
          process.exitCode = 2;
          return;
        }
        const report = await conformance.runConformance(target, {
          timeoutMs,
          catchStray: true,
          onResult: (r) => {
            if (!v.json)
              process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.ok ? '' : `\n     ${r.error!}`}\n`);
          },
        });
        out(v, report, () => `${report.passed} passed, ${report.failed} failed`);
        if (report.failed > 0) process.exitCode = 1;
      } finally {
        await rm(runtimeDir, { recursive: true, force: true });
      }
    },
  },
  // The services' verbs (lib/services/*/cli.ts), over their amixd ops.
  ...neeVerbs({ client, out, table, misuse: (m) => new Misuse(m) }),
  ...capsVerbs({ client, out, table, misuse: (m) => new Misuse(m) }),
};

// The seed's higher services (lib/services): in-process verbs, their logic beside the service.
verbs.dcm = dcmVerb;
verbs.bind = bindVerb;

/** The status view's line for one control socket's guard: what waits for hello, and every refusal counted. */
function guardLine(what: string, g: DaemonStatus['guard']): string {
  if (!g) return '';
  return (
    `${what}: ${g.unauthenticated} waiting for hello; refused ${g.refusedOverCap} over the cap, ` +
    `${g.helloTimeouts} hello timeouts, ${g.protocolErrors} protocol errors ` +
    `(${g.oversizedBeforeHello} oversized before hello), ${g.slowConsumers} slow consumers cut off\n`
  );
}

/** The status view's peering line: who is up, and every drop and refusal counted (empty without peering). */
function peeringLine(p: DaemonStatus['peering']): string {
  if (!p) return '';
  const up = p.peers.filter((x) => x.state === 'up').length;
  return (
    `peering ${p.id}${p.insecure ? ' INSECURE (no keys)' : ''}: ${up}/${p.peers.length} peers up; dropped: ` +
    `${p.badEnvelopes} bad envelopes, ${p.badFrames} bad frames, ${p.unknownSender} from unknown senders, ` +
    `${p.spoofedSenders} spoofed senders, ${p.unhelloed} before hello; refused: ${p.refused} keys ` +
    `(${p.refusedHandshakes} handshakes), ${p.refusedHellos} hellos\n`
  );
}

const GROUPS = new Set(['daemon', 'primitive', 'point', 'keys', 'principal', 'nee', 'switch', 'caps']);

function usageAll(): string {
  return `usage: amix [--dir DIR] [--json] [-h] VERB [ARGS] [--dir DIR] [--json] [-h]\n\n${Object.values(verbs)
    .map((x) => `  ${x.usage.split('\n')[0]}`)
    .join('\n')}\n\nThe daemon directory defaults to ${defaultDaemonDir()} (or $AMIX_DIR).
Every verb that talks to amixd takes --token-file FILE (or $AMIX_TOKEN_FILE: a principal's token;
default DIR/admin.token, the administrator) and --socket PATH (or $AMIX_SOCKET; default DIR/amixd.sock).`;
}

/**
 * Split the global flags (the `common` options: --dir, --json, --token-file,
 * --socket, -h) off the front of `argv`, so they may come before the verb
 * as well as after it. Stops at the first word that is not one of them
 * (the verb); an unknown flag there is misuse.
 */
function leadingGlobals(argv: string[]): { globals: string[]; rest: string[] } | { error: string } {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-') && argv[i] !== '--') {
    const arg = argv[i]!;
    const long = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : undefined;
    const opt = long !== undefined ? common[long] : Object.values(common).find((o) => `-${o.short}` === arg);
    if (!opt) return { error: `unknown option ${arg} before the verb` };
    globals.push(arg);
    i++;
    if (opt.type === 'string' && !arg.includes('=')) {
      if (i >= argv.length) return { error: `${arg} needs a value` };
      globals.push(argv[i++]!);
    }
  }
  return { globals, rest: argv.slice(i) };
}

async function main(all: string[]): Promise<number> {
  const split = leadingGlobals(all);
  if ('error' in split) {
    process.stderr.write(`amix: ${split.error}\n${usageAll()}\n`);
    return 2;
  }
  const { globals, rest: argv } = split;
  const help = globals.some((g) => g === '-h' || g === '--help');
  if (argv.length === 0 || argv[0] === 'help') {
    process.stdout.write(`${usageAll()}\n`);
    return argv.length === 0 && !help ? 2 : 0;
  }
  // A group alone, or with -h (`amix caps --help`): that group's verbs, not "unknown verb".
  if (GROUPS.has(argv[0]!) && (argv[1] === undefined || argv[1] === '-h' || argv[1] === '--help')) {
    const lines = Object.entries(verbs)
      .filter(([k]) => k.startsWith(`${argv[0]} `))
      .map(([, x]) => `  ${x.usage.split('\n')[0]}`);
    const asked = argv[1] !== undefined || help;
    (asked ? process.stdout : process.stderr).write(`usage: amix ${argv[0]} VERB [ARGS]\n\n${lines.join('\n')}\n`);
    return asked ? 0 : 2;
  }
  const key = GROUPS.has(argv[0]!) ? `${argv[0]} ${argv[1] ?? ''}` : argv[0]!;
  const verb = verbs[key];
  if (!verb && help) {
    process.stdout.write(`${usageAll()}\n`);
    return 0;
  }
  if (!verb) {
    process.stderr.write(`amix: unknown verb "${key.trim()}"\n${usageAll()}\n`);
    return 2;
  }
  verbName = key;
  const rest = [...globals, ...argv.slice(GROUPS.has(argv[0]!) ? 2 : 1)];
  let positionals: string[];
  let values: Values;
  try {
    ({ positionals, values } = parseArgs({
      args: rest,
      options: { ...common, ...verb.options },
      allowPositionals: true,
    }) as { positionals: string[]; values: Values });
  } catch (err) {
    process.stderr.write(`amix ${key}: ${(err as Error).message}\nusage: ${verb.usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`usage: ${verb.usage}\n`);
    return 0;
  }
  if (positionals.length < (verb.min ?? 0) || positionals.length > (verb.max ?? Infinity)) {
    process.stderr.write(`amix ${key}: wrong number of arguments\nusage: ${verb.usage}\n`);
    return 2;
  }
  try {
    await verb.run(positionals, values);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof Misuse) {
      process.stderr.write(`amix ${key}: ${err.message}\nusage: ${verb.usage}\n`);
      return 2;
    }
    const msg = isAmixError(err) ? `${err.message} (${err.code})` : (err as Error).message;
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ error: { code: isAmixError(err) ? err.code : 'AMIX_ERR_INTERNAL', message: (err as Error).message } })}\n`,
      );
    process.stderr.write(`amix ${key}: ${msg}\n`);
    return 1;
  }
}

// A reader that leaves early (amix ... | head) closes our pipe: stop writing and leave, no stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stream.destroy();
  });
process.exitCode = await main(process.argv.slice(2));
// Leave once stdout and stderr have drained (exiting before would cut a pipe's reader short at 64 KiB),
// even if a half-closed socket lingers.
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(process.exitCode);
