// The lifecycle contract (lib/core/lifecycle.ts), run over every long-lived
// public object: close() is idempotent and returns the same promise on every
// call, `closed` resolves only once closed, `await using` closes, and
// destroy(reason) rejects what is pending with an error carrying `reason`.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { Container, DaemonClient, Endpoint, Fabric, PrimitiveRegistry, type FabricEvent } from '../dist/lib/index.js';
import { ControlConnection, Daemon } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';

/** What every object under test offers. */
interface Subject {
  close(): Promise<void>;
  destroy(reason?: Error): Promise<void>;
  readonly closed: Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Made {
  obj: Subject;
  /** Start an operation that stays pending until the object is destroyed (set-up awaited, the operation not). */
  pending(): Promise<{ op: Promise<unknown> }>;
  /** An operation that must be refused once the object is closed. */
  refused(): unknown;
}

/** 'closed' if `p` has settled by the next turn of the event loop, else 'open'. */
async function settledYet(p: Promise<unknown>): Promise<'closed' | 'open'> {
  return Promise.race([p.then(() => 'closed' as const), new Promise<'open'>((r) => setImmediate(() => r('open')))]);
}

/** True when `e` is `reason` or carries it as its cause. */
function carries(e: unknown, reason: Error): boolean {
  return e === reason || (e as { cause?: unknown })?.cause === reason;
}

/** A container with module `m` started, and a promise that holds work open until teardown. */
async function startedContainer(t: Test, options: { name: string; quiesceTimeoutMs?: number }) {
  const c = new Container(options);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  t.teardown(() => release());
  c.add('m', {});
  await c.load('m');
  await c.start('m');
  return { c, held };
}

async function linkedChannels(reg: PrimitiveRegistry) {
  const rx = await reg.open('queueConditionThread');
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  await tx.connect();
  return { rx, tx };
}

const subjects: Record<string, (t: Test) => Promise<Made>> = {
  Channel: async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.destroy());
    const { rx, tx } = await linkedChannels(reg);
    t.teardown(() => tx.destroy());
    return { obj: rx, pending: async () => ({ op: rx.receive() }), refused: () => rx.suspend() };
  },
  PrimitiveRegistry: async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.destroy());
    return {
      obj: reg,
      // Opened only here: a graceful close waits (up to its quiesce timeout) for open channels.
      pending: async () => {
        const rx = await reg.open('queueConditionThread');
        return { op: rx.receive() };
      },
      refused: () => reg.open('queueConditionThread'),
    };
  },
  Container: async (t) => {
    const { c, held } = await startedContainer(t, { name: 'life' });
    return {
      obj: c,
      // A work item in flight, so a quiesce waits for it until destroy.
      pending: async () => {
        void c.run('m', () => held);
        return { op: c.quiesce('m', { timeoutMs: 60_000 }) };
      },
      refused: () => c.add('late', {}),
    };
  },
  Endpoint: async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.destroy());
    const { rx, tx } = await linkedChannels(reg);
    t.teardown(() => tx.destroy());
    const ep = new Endpoint('reader');
    ep.addReceiver('L1', 'writer', rx);
    return { obj: ep, pending: async () => ({ op: ep.receive() }), refused: () => ep.send(Buffer.from('x')) };
  },
  Fabric: async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'amix-life-'));
    const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: [] });
    t.teardown(async () => {
      await fabric.destroy();
      await rm(dir, { recursive: true, force: true });
    });
    fabric.register({ name: 'sink', location: pointFixture('sink') });
    // The caller is A on a two-way link to a point that never sends: a receive waits.
    const link = await fabric.connect(null, 'sink');
    return {
      obj: fabric,
      pending: async () => ({ op: link.receive() }),
      refused: () => fabric.register({ name: 'late', location: pointFixture('sink') }),
    };
  },
  DaemonClient: async (t) => {
    const dir = await daemonIn(t);
    const client = await DaemonClient.connect({ dir });
    t.teardown(() => client.destroy());
    await client.request('point.register', {
      registration: { name: 'sink', location: pointFixture('sink'), characteristics: { scope: 'process' } },
    });
    // This process is A on a two-way link to a point that never sends: a receive waits.
    const link = await client.connect(null, 'sink');
    return { obj: client, pending: async () => ({ op: link.receive() }), refused: () => client.request('status', {}) };
  },
  ControlConnection: async (t) => {
    // Two ends over a socket pair; the far end never answers, so a request waits.
    const dir = await mkdtemp(join(tmpdir(), 'amix-life-'));
    const path = join(dir, 'c.sock');
    const server = createServer();
    const far = new Promise<Socket>((resolve) => server.once('connection', resolve));
    server.listen(path);
    await once(server, 'listening');
    const socket = netConnect(path);
    await once(socket, 'connect');
    const conn = new ControlConnection(socket);
    const peer = new ControlConnection(await far, () => new Promise(() => {}));
    t.teardown(async () => {
      await peer.destroy();
      await conn.destroy();
      server.close();
      await rm(dir, { recursive: true, force: true });
    });
    return {
      obj: conn,
      pending: async () => ({ op: conn.request('status', {}) }),
      refused: () => conn.request('status', {}),
    };
  },
};

/** A daemon in this process in a temp directory, stopped at teardown. */
async function daemonIn(t: Test): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'amix-life-'));
  const dir = join(base, 'd');
  const daemon = new Daemon({ dir });
  await daemon.start();
  t.teardown(async () => {
    await daemon.stop();
    await rm(base, { recursive: true, force: true });
  });
  return dir;
}

t.test('Daemon follows the graceful half of the contract (stop is its close)', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'amix-life-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const daemon = new Daemon({ dir: join(base, 'd') });
  await daemon.start();
  t.equal(await settledYet(daemon.closed), 'open', 'closed is pending while the daemon runs');
  {
    await using held = daemon;
    const client = await DaemonClient.connect({ dir: join(base, 'd') });
    t.ok(client.container, 'a client plugs in while the daemon runs');
    await client.close();
    t.equal(await settledYet(held.closed), 'open', 'still running inside the block');
  }
  t.equal(await daemon.closed, undefined, 'closed resolves, without a reason, after the block');
  const p = daemon.close();
  t.equal(daemon.stop(), p, 'stop and close return the same promise');
  t.equal(daemon[Symbol.asyncDispose](), p, 'so does asyncDispose');
  await t.rejects(
    DaemonClient.connect({ dir: join(base, 'd') }),
    { code: 'AMIX_ERR_DAEMON_UNAVAILABLE' },
    'nobody listens any more',
  );
});

for (const [name, make] of Object.entries(subjects)) {
  t.test(`${name} follows the lifecycle contract`, async (t) => {
    t.test('close() twice returns the same promise, also after it finished', async (t) => {
      const { obj } = await make(t);
      const first = obj.close();
      t.equal(obj.close(), first, 'a second call while closing returns the first promise');
      await first;
      t.equal(obj.close(), first, 'a call after close finished returns it too');
      t.equal(obj.destroy(new Error('late')), first, 'a destroy after close returns it as well');
    });

    t.test('closed stays pending until close, then resolves without a reason', async (t) => {
      const { obj, refused } = await make(t);
      t.equal(await settledYet(obj.closed), 'open', 'closed is pending while the object is open');
      await obj.close();
      t.equal(await settledYet(obj.closed), 'closed', 'closed has resolved once close resolved');
      t.equal(await obj.closed, undefined, 'a graceful close has no reason');
      await t.rejects((async () => refused())(), { code: /^AMIX_ERR_(LINK_)?CLOSED$/ }, 'work is refused after close');
    });

    t.test('await using closes it at the end of the block', async (t) => {
      const { obj } = await make(t);
      {
        await using held = obj;
        t.equal(await settledYet(held.closed), 'open', 'still open inside the block');
      }
      t.equal(await settledYet(obj.closed), 'closed', 'closed after the block');
      const p = obj.close();
      t.equal(obj[Symbol.asyncDispose](), p, 'asyncDispose returns the close promise');
    });

    t.test('destroy(reason) rejects pending operations with the reason', async (t) => {
      const { obj, pending } = await make(t);
      const reason = new Error(`${name} pulled the plug`);
      const { op } = await pending();
      op.catch(() => {});
      t.equal(await settledYet(op), 'open', 'the operation is pending before destroy');
      const d = obj.destroy(reason);
      t.equal(obj.destroy(new Error('again')), d, 'a second destroy returns the same promise');
      t.equal(obj.close(), d, 'a close during destroy returns the destroy promise');
      await d;
      const err = await op.then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err, 'the pending operation rejected');
      t.ok(carries(err, reason), `it rejected with the reason (or an error caused by it): ${String(err)}`);
      t.equal(await obj.closed, reason, 'closed resolves with the reason');
    });
  });
}

t.test('a Container close that fails rejects, but closed still resolves with the error', async (t) => {
  const { c, held } = await startedContainer(t, { name: 'stuck', quiesceTimeoutMs: 20 });
  void c.run('m', () => held);
  const p = c.close();
  await t.rejects(p, { code: 'AMIX_ERR_QUIESCE_TIMEOUT' }, 'close reports the quiesce timeout');
  const reason = await c.closed;
  t.match(reason, { code: 'AMIX_ERR_QUIESCE_TIMEOUT' }, 'closed resolves with that error');
  t.equal(c.close(), p, 'and close keeps returning the same (rejected) promise');
});

t.test('Fabric.destroy(reason) kills instances at once; destroyPoint is the seed DESTROY', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-life-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: [] });
  const events: FabricEvent[] = [];
  fabric.on('event', (e: FabricEvent) => events.push(e));
  // A point that ignores its termination message: a graceful close would wait its grace period.
  fabric.register({
    name: 'stubborn',
    location: pointFixture('stubborn'),
    characteristics: { termination: 'message', graceMs: 60_000 },
  });
  fabric.register({ name: 'gone', location: pointFixture('sink') });
  await fabric.create('gone');
  await fabric.destroyPoint('gone');
  t.throws(() => fabric.point('gone'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'destroyPoint removed the registration');
  t.same(fabric.instances('gone'), [], 'and ended its instance');
  await fabric.create('stubborn');
  const started = Date.now();
  await fabric.destroy(new Error('now'));
  t.ok(Date.now() - started < 30_000, 'destroy did not wait for the grace period');
  t.same(fabric.instances(), [], 'no instance is left');
  t.match(
    events.filter((e) => e.type === 'instanceTerminated' && e.point === 'stubborn'),
    [{ method: 'signal', escalated: false }],
    'the instance was ended by signal',
  );
  t.equal(events.at(-1)?.type, 'closed', 'the last event is closed');
});
