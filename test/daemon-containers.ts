// Containers as hosts and as link ends through the real amixd: thread points
// started by a container's agent inside its own process (002 ¶58), and
// coordinators one container registers and another dials by name (000,
// claims 2-5). Every container is a real process using DaemonClient from dist.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DaemonClient } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { AMIX, amix, daemonDir, startDaemon } from './helpers/daemon.js';

const CONTAINER = fileURLToPath(new URL('./fixtures/daemon-container.mjs', import.meta.url));
const PROC = 'queueConditionProcess';
const THREAD = 'queueConditionThread';

/** A container process driven over stdio (see fixtures/daemon-container.mjs). */
class Container {
  readonly child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: any) => void; reject: (e: any) => void }>();
  #seq = 0;
  pid = 0;
  id = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as { id?: number; ok?: boolean; result?: unknown; error?: unknown; ready?: true };
      if (m.ready) return void this.#pending.get(0)?.resolve(null);
      const p = this.#pending.get(m.id!);
      this.#pending.delete(m.id!);
      if (m.ok) p?.resolve(m.result);
      else p?.reject(Object.assign(new Error((m.error as { message: string }).message), m.error));
    });
    child.once('exit', () => {
      for (const p of this.#pending.values()) p.reject(new Error('container exited'));
    });
  }

  static async start(t: Test, dir: string, name: string): Promise<Container> {
    const child = spawn(process.execPath, [CONTAINER, dir, name], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const c = new Container(child);
    await new Promise((resolve, reject) => c.#pending.set(0, { resolve, reject }));
    c.#pending.delete(0);
    const hello = (await c.call('hello')) as { pid: number; container: string };
    c.pid = hello.pid;
    c.id = hello.container;
    return c;
  }

  call<T = any>(method: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, method, args })}\n`);
    });
  }

  /** Register a point whose instances run in this container. */
  host(name: string, fixture: string, extra: Record<string, unknown> = {}): Promise<unknown> {
    return this.call('request', {
      op: 'point.register',
      args: {
        registration: { name, location: pointFixture(fixture), characteristics: { scope: 'thread' }, ...extra },
        inContainer: true,
      },
    });
  }
}

async function client(t: Test, dir: string): Promise<DaemonClient> {
  const c = await DaemonClient.connect({ dir, name: 'test' });
  t.teardown(() => c.close());
  return c;
}

const stampOf = (text: string) => JSON.parse(text.toLowerCase()) as { pid: number; threadid: number; text: string };

t.test(
  '002 ¶58 intra_p: a thread point a container hosts runs in its process and exchanges messages with a process point',
  async (t) => {
    const dir = await daemonDir(t);
    const daemon = await startDaemon(t, dir);
    const c1 = await Container.start(t, dir, 'c1');
    // tp runs in c1; its hops to other processes need a process primitive, as the fabric plans them.
    await c1.host('tp', 'stamp', { sendPrimitive: PROC, receivePrimitive: PROC });
    const me = await client(t, dir);
    await me.request('point.register', {
      registration: { name: 'pp', location: pointFixture('upper'), characteristics: { scope: 'process' } },
    });
    // me → tp (thread, in c1) → pp (process) → me
    const into = await me.connect(null, 'tp', { direction: 'aToB' });
    await c1.call('request', { op: 'connect', args: { a: 'tp', b: 'pp', direction: 'aToB' } });
    const out = await me.connect('pp', null, { direction: 'aToB' });
    await into.send(Buffer.from('hi'));
    const got = stampOf(Buffer.from((await out.receive({ signal: AbortSignal.timeout(15_000) })).data).toString());
    t.equal(got.pid, c1.pid, 'the thread point ran in the container that hosts it');
    t.not(got.pid, daemon.pid, 'not in the daemon');
    t.not(got.threadid, 0, 'as a worker thread, not the main thread');
    t.equal(got.text, 'hi', 'and passed the message on to the process point, which answered');
    const inst = (await me.request('instances', {})) as Array<{ instance: string; pid: number; scope: string }>;
    t.match(
      inst.find((i) => i.instance === 'tp'),
      { pid: c1.pid, scope: 'thread' },
      'the daemon reports it at the container pid',
    );
  },
);

t.test('002 ¶58 intra_p: two thread points of one container link over the thread primitive directly', async (t) => {
  const dir = await daemonDir(t);
  await startDaemon(t, dir);
  const c1 = await Container.start(t, dir, 'c1');
  // tA receives from outside over a process primitive and sends on the thread ring; tB the other way round.
  await c1.host('tA', 'stamp', { sendPrimitive: THREAD, receivePrimitive: PROC });
  await c1.host('tB', 'upper', { sendPrimitive: PROC, receivePrimitive: THREAD });
  const me = await client(t, dir);
  const into = await me.connect(null, 'tA', { direction: 'aToB' });
  const mid = (await c1.call('request', { op: 'connect', args: { a: 'tA', b: 'tB', direction: 'aToB' } })) as {
    flows: Array<{ primitive: string }>;
    brokers: string[];
  };
  t.match(mid.flows, [{ primitive: THREAD }], 'tA → tB uses the thread primitive');
  t.same(mid.brokers, [], 'with no broker');
  const out = await me.connect('tB', null, { direction: 'aToB' });
  await into.send(Buffer.from('ring'));
  const got = stampOf(Buffer.from((await out.receive({ signal: AbortSignal.timeout(15_000) })).data).toString());
  t.equal(got.pid, c1.pid, 'stamped in the container');
  t.equal(got.text, 'ring', 'across the ring between its two workers');
  // A thread primitive cannot reach a thread point of another process (the daemon's own here).
  await me.request('point.register', {
    registration: { name: 'dt', location: pointFixture('sink'), characteristics: { scope: 'thread' } },
  });
  await t.rejects(
    me.request('connect', { a: 'tA', b: 'dt', direction: 'aToB' }),
    { code: 'AMIX_ERR_PRIMITIVE_MISMATCH' },
    'a thread hop from a container to the daemon is refused before anything starts',
  );
  // A process point cannot be hosted in a container: it has a process of its own.
  await t.rejects(
    c1.host('nope', 'sink', { characteristics: { scope: 'process' } }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'inContainer takes thread points and coordinators',
  );
});

t.test(
  '002 ¶58 intra_p: a hosted thread point keeps its characteristics: stack size, restart, termination',
  async (t) => {
    const dir = await daemonDir(t);
    await startDaemon(t, dir);
    const c1 = await Container.start(t, dir, 'c1');
    const me = await client(t, dir);
    await me.subscribe();
    const events: Array<{ type: string; body: Record<string, unknown> }> = [];
    me.connection.on('event', (e) => events.push(e as never));
    /** The first event of `type` whose body passes `pred`, seen already or to come. */
    const next = (type: string, pred: (b: Record<string, unknown>) => boolean) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const hit = events.find((e) => e.type === type && pred(e.body));
        if (hit) return resolve(hit.body);
        const on = (e: { type: string; body: Record<string, unknown> }): void => {
          if (e.type !== type || !pred(e.body)) return;
          me.connection.off('event', on as never);
          resolve(e.body);
        };
        me.connection.on('event', on as never);
      });
    const proc = { sendPrimitive: PROC, receivePrimitive: PROC };
    const text = async (l: Awaited<ReturnType<DaemonClient['connect']>>) =>
      Buffer.from((await l.receive({ signal: AbortSignal.timeout(15_000) })).data).toString();
    // Stack: the worker's stackSizeMb is the registration's.
    const depthAt = async (name: string, stackMb: number): Promise<number> => {
      await c1.host(name, 'depth', { ...proc, characteristics: { scope: 'thread', stackMb } });
      const l = await me.connect(null, name);
      await l.send(Buffer.from('?'));
      const n = Number(await text(l));
      await l.close();
      return n;
    };
    const small = await depthAt('d1', 1);
    const big = await depthAt('d8', 8);
    t.ok(big > small * 3, `8 MiB of stack recurses deeper than 1 MiB in the container (${big} vs ${small})`);
    // Restart: the worker dies, the daemon starts it again in the same container and re-links it.
    // Delivery to a restarted point is at least once: "one" and "die" may come again, so it dies only once.
    const dieOnce = join(await mkdtemp(join(tmpdir(), 'amix-crashy-')), 'died');
    t.teardown(() => rm(dirname(dieOnce), { recursive: true, force: true }));
    await c1.host('cr', 'crashy', { ...proc, data: { dieOnce }, characteristics: { scope: 'thread', restart: true } });
    const l = await me.connect(null, 'cr');
    await l.send(Buffer.from('one'));
    t.equal(await text(l), 'one', 'the hosted point answers');
    const restarted = next('instanceRestarted', (b) => b.instance === 'cr');
    await l.send(Buffer.from('die'));
    t.match(await restarted, { instance: 'cr', links: [l.id] }, 'restarted with its link');
    await l.send(Buffer.from('two'));
    let answer = await text(l);
    while (answer === 'one') answer = await text(l); // a redelivered "one" answered again
    t.equal(answer, 'two', 'the re-linked instance answers on the same link');
    const inst = (
      (await me.request('instances', {})) as Array<{ instance: string; pid: number; restarts: number }>
    ).find((i) => i.instance === 'cr');
    t.match(inst, { pid: c1.pid, restarts: 1 }, 'in the container again, one restart counted');
    // Termination: the point's method (message) is what ends it.
    await c1.host('sk', 'sink', { ...proc, characteristics: { scope: 'thread', termination: 'message' } });
    await me.connect(null, 'sk', { direction: 'aToB' });
    const ended = next('instanceTerminated', (b) => b.instance === 'sk');
    await c1.call('request', { op: 'point.rm', args: { name: 'sk' } });
    t.match(await ended, { method: 'message', escalated: false }, 'ended by its termination message');
  },
);

t.test(
  '000 claims 2-5: a container dials another container’s coordinator by name; both ways; its death is peerLost',
  async (t) => {
    const dir = await daemonDir(t);
    await startDaemon(t, dir);
    const c1 = await Container.start(t, dir, 'c1');
    const c2 = await Container.start(t, dir, 'c2');
    await c1.call('coordinator', { name: 'coord', echo: 'c1:' });
    await c2.call('subscribe');
    const info = (await c2.call('connect', { a: null, b: 'coord' })) as {
      id: string;
      a: string;
      b: string[];
      brokers: string[];
      flows: Array<{ primitive: string }>;
    };
    t.match(info, { a: c2.id, b: ['coord'] }, 'c2 is A, the coordinator B');
    t.same(info.brokers, [], 'no broker');
    t.ok(
      info.flows.length === 2 && info.flows.every((f) => f.primitive === PROC),
      'both flows go over the process primitive, between the two containers’ processes',
    );
    await c2.call('send', { link: info.id, text: 'ping' });
    t.same(
      await c2.call('receive', { link: info.id, timeoutMs: 10_000 }),
      { from: 'coord', text: 'c1:ping' },
      'c2 → c1 → c2',
    );
    const m = (await c1.call('coordNext', { name: 'coord' })) as { from: string; text: string };
    t.same([m.from, m.text], [c2.id, 'ping'], 'the coordinator saw the sender by its container id');
    await c1.call('coordSend', { name: 'coord', text: 'from c1' });
    t.same(
      await c2.call('receive', { link: info.id, timeoutMs: 10_000 }),
      { from: 'coord', text: 'from c1' },
      'the coordinator sends on its own too',
    );
    const st = await DaemonClient.connect({ dir });
    t.teardown(() => st.close());
    const inst = (await st.request('instances', {})) as Array<{ instance: string; pid: number }>;
    t.equal(inst.find((i) => i.instance === 'coord')?.pid, c1.pid, 'the coordinator instance is c1’s process');
    // c1 dies abruptly: c2's link closes and c2 hears peerLost, with no hang.
    const receiving = c2.call('receive', { link: info.id, timeoutMs: 20_000 });
    c1.child.kill('SIGKILL');
    await t.rejects(receiving, { code: /AMIX_ERR_(LINK_CLOSED|PEER_LOST|POINT_DIED)/ }, 'c2’s pending receive ends');
    const events = (await c2.call('events')) as Array<{ type: string; body: Record<string, unknown> }>;
    t.ok(
      events.some((e) => e.type === 'peerLost' && e.body.link === info.id && e.body.peer === 'coord'),
      'c2 was told peerLost for the coordinator',
    );
    t.equal(((await st.request('links', {})) as unknown[]).length, 0, 'the link is gone from the daemon');
    await t.rejects(
      c2.call('connect', { a: null, b: 'coord' }),
      { code: 'AMIX_ERR_UNKNOWN_POINT' },
      'and so is the coordinator',
    );
  },
);

t.test(
  '000 claims 2-5 through the CLI: amix connect between a named point and a container’s coordinator',
  async (t) => {
    const dir = await daemonDir(t);
    await startDaemon(t, dir);
    const c1 = await Container.start(t, dir, 'c1');
    await c1.call('coordinator', { name: 'coord' });
    const reg = await amix(dir, ['point', 'register', 'up', pointFixture('upper'), '--scope', 'process']);
    t.equal(reg.code, 0, `amix point register up ${reg.stderr}`);
    const c = await amix(dir, ['connect', 'up', 'coord', '--direction', 'aToB', '--json']);
    t.equal(c.code, 0, `amix connect up coord ${c.stderr}`);
    t.match(JSON.parse(c.stdout || '{}'), { a: 'up', b: ['coord'] }, 'up → coord linked by name');
    // A second link from the coordinator to a named point, and amix recv at its end.
    t.equal(
      (await amix(dir, ['point', 'register', 'low', pointFixture('relay'), '--scope', 'process'])).code,
      0,
      'register low',
    );
    const c2 = await amix(dir, ['connect', 'coord', 'low', '--direction', 'aToB']);
    t.equal(c2.code, 0, `amix connect coord low ${c2.stderr}`);
    const recv = spawn(process.execPath, [AMIX, 'recv', 'low', '--count', '1', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => recv.kill());
    const exited = once(recv, 'exit');
    let got = '';
    recv.stdout.on('data', (d) => (got += d));
    await once(recv.stderr, 'data'); // "recv: linked ..."
    const sent = await amix(dir, ['send', 'up'], 'through\n');
    t.equal(sent.code, 0, `amix send up ${sent.stderr}`);
    const m = (await c1.call('coordNext', { name: 'coord' })) as { from: string; text: string };
    t.same([m.from, m.text.trim()], ['up', 'THROUGH'], 'the coordinator got the named point’s message');
    await c1.call('coordSend', { name: 'coord', text: 'back' });
    const [code] = await exited;
    t.equal(code, 0, 'recv exits after --count');
    t.equal(got, 'back\n', 'the coordinator’s message reached the named point and amix recv');
  },
);
