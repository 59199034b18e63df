// Two and three real amixd processes peering over loopback TCP (with CURVE
// keys, the default): remote links by name and identifier, the broker in
// front of the conduit, federation, CURVE refusal, malformed envelopes,
// backpressure, a peer that dies, and direct links (no daemon on the data path).
import t, { type Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  DaemonClient,
  ErrorCode,
  PrimitiveRegistry,
  decodeEnvelope,
  encodeEnvelope,
  generateKeyPair,
  saveKeyPair,
  type ClientLink,
  type CurveKeyPair,
  type PeerInfo,
  type RemoteLinkInfo,
} from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { daemonDir, freePort, startDaemon, subscribed, type DaemonEv } from './helpers/daemon.js';
import { rng } from './helpers/rng.js';

type Ev = DaemonEv;
interface PeeringStatus {
  id: string;
  data: string;
  dataAddress: Record<string, unknown>;
  badEnvelopes: number;
  unknownSender: number;
  refused: number;
  slots?: Array<{ key: string; id?: string; control: string; data: string; dataAddress: Record<string, unknown> }>;
  peers: PeerInfo[];
}

/**
 * The keys the daemons of this file use: a ring of key pairs and one
 * allow-list naming them all (bare keys, so each is pinned to the id of its
 * first hello). A test's daemons take the next pairs of the ring.
 */
const RING = 4;
const ringBase = await mkdtemp(join(tmpdir(), 'amix-ring-'));
t.teardown(() => rm(ringBase, { recursive: true, force: true }));
const ring: Array<{ pair: CurveKeyPair; file: string }> = [];
for (let i = 0; i < RING; i++) {
  const pair = generateKeyPair();
  const file = join(ringBase, `${i}.keys`);
  await saveKeyPair(file, pair);
  ring.push({ pair, file });
}
const ringAllow = join(ringBase, 'allow');
await writeFile(ringAllow, `${ring.map((r) => r.pair.publicKey).join('\n')}\n`, { mode: 0o600 });
const nextKey = new WeakMap<Test, number>();
/** The public key of the ring daemon listening on each port (so a --peer gets its --peer-key). */
const keyAtPort = new Map<number, string>();

/** A daemon child with its directory and a plugged-in, subscribed client that records events. */
interface D {
  dir: string;
  port: number;
  /** Its ring key (undefined when the test gave its own key options). */
  key: number | undefined;
  child: ChildProcess;
  client: DaemonClient;
  events: Ev[];
  /** Resolves with the first event (seen before or after the call) that `match` accepts. */
  event(match: (e: Ev) => boolean): Promise<Ev>;
  peers(): Promise<PeeringStatus>;
}

/**
 * Start a daemon listening on loopback. Unless `args` has key options of its
 * own (--keys or --insecure), it gets the next ring key and the ring
 * allow-list, and every `--peer` a ring daemon listens at gets its --peer-key.
 */
async function daemon(
  t: Test,
  args: string[],
  reuse?: { dir: string; port: number; key: number | undefined },
): Promise<D> {
  const dir = reuse?.dir ?? (await daemonDir(t));
  const port = reuse?.port ?? (await freePort());
  let key = reuse?.key;
  const extra: string[] = [];
  if (!args.includes('--keys') && !args.includes('--insecure')) {
    if (key === undefined) {
      key = nextKey.get(t) ?? 0;
      nextKey.set(t, key + 1);
    }
    extra.push('--keys', ring[key]!.file, '--allow', ringAllow);
    keyAtPort.set(port, ring[key]!.pair.publicKey);
    for (let i = 0; i < args.length; i++) {
      extra.push(args[i]!);
      if (args[i] !== '--peer') continue;
      const endpoint = args[++i]!;
      extra.push(endpoint);
      const k = keyAtPort.get(Number(/:(\d+)$/.exec(endpoint)?.[1]));
      // `--peer-key=KEY`: a Z85 key may start with '-', which parseArgs would take for an option.
      if (k && !args[i + 1]?.startsWith('--peer-key')) extra.push(`--peer-key=${k}`);
    }
  } else extra.push(...args);
  const child = await startDaemon(t, dir, ['--listen', `tcp://127.0.0.1:${port}`, ...extra]);
  const { client, events, event } = await subscribed(t, dir);
  return {
    dir,
    port,
    key,
    child,
    client,
    events,
    event,
    peers: () => client.request<PeeringStatus>('peers'),
  };
}

/** Resolves once `d` has a peer in state up (by its event, or already). */
async function peerUp(d: D): Promise<string> {
  const up = d.event((e) => e.type === 'remote.peerUp');
  const now = (await d.peers()).peers.find((p) => p.state === 'up');
  return now?.id ?? ((await up).body.peer as string);
}

const u32 = (i: number, size = 8): Uint8Array => {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
};
const idx = (m: Uint8Array): number => new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0, true);

async function register(d: D, name: string, fixture: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await d.client.request<{ id: string }>('point.register', {
    registration: { name, location: pointFixture(fixture), characteristics: { scope: 'process' }, ...extra },
  });
  return r.id;
}

/** Receive `n` messages on `link` and check they are 0..n-1 in order (offset by `from`). */
async function expectInOrder(t: Test, link: ClientLink, n: number, from = 0): Promise<void> {
  for (let i = 0; i < n; i++) {
    const m = await link.receive();
    if (idx(m.data) !== from + i) {
      t.fail(`message ${i}: got index ${idx(m.data)}, expected ${from + i}`);
      return;
    }
  }
  t.pass(`${n} messages in order`);
}

/** Relay `src` on `from`, relay `dst` on `to`, a remote link src -> dst made at `from`, and 100 messages through it in order. */
async function relayed(t: Test, from: D, to: D): Promise<{ into: ClientLink; remote: RemoteLinkInfo }> {
  await register(from, 'src', 'relay');
  await register(to, 'dst', 'relay');
  const out = await to.client.connect('dst', null, { direction: 'aToB' });
  const into = await from.client.connect(null, 'src', { direction: 'aToB' });
  const remote = await from.client.request<RemoteLinkInfo>('connect', { a: 'src', b: 'dst', direction: 'aToB' });
  const got = expectInOrder(t, out, 100);
  for (let i = 0; i < 100; i++) await into.send(u32(i));
  await got;
  return { into, remote };
}

/**
 * After `to` restarted: a new link out of `dst`, messages 1000-1099 sent into
 * the same remote link; what was re-sent from before the crash (at least
 * once) is skipped, the new ones must arrive in order.
 */
async function flowsAgain(t: Test, into: ClientLink, to: D): Promise<void> {
  const out = await to.client.connect('dst', null, { direction: 'aToB' });
  for (let i = 1000; i < 1100; i++) await into.send(u32(i));
  let first: number;
  do first = idx((await out.receive()).data);
  while (first !== 1000);
  await expectInOrder(t, out, 99, 1001);
}

t.test('100k messages from a point on A to a point on B, named by identifier, in order, none lost', async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  const bId = await peerUp(a);
  await register(a, 'src', 'relay');
  const dstId = await register(b, 'dst', 'relay');
  t.ok(dstId.startsWith(`${bId}.`), "the point on B has an identifier of B's directory");
  const out = await b.client.connect('dst', null, { direction: 'aToB' });
  const into = await a.client.connect(null, 'src', { direction: 'aToB' });
  const remote = await a.client.request<RemoteLinkInfo>('connect', { a: 'src', b: dstId, direction: 'aToB' });
  t.match(remote, { id: /^R\d+$/, a: 'src', b: ['dst'], brokers: [], remote: { peer: bId } });
  t.ok(
    remote.flows.some((f) => f.primitive === 'zeromq'),
    'the hop between the conduits is the zeromq primitive',
  );
  const N = 100_000;
  const got = expectInOrder(t, out, N);
  for (let i = 0; i < N; i++) await into.send(u32(i));
  await got;
  const aId = (await a.peers()).id;
  const atB = (await b.peers()).peers.find((p) => p.id === aId)!;
  t.match(
    atB.stats,
    { received: N, rejected: 0, gaps: 0, duplicates: 0 },
    "B's conduit for A delivered every envelope",
  );
  const atA = (await a.peers()).peers.find((p) => p.id === bId)!;
  t.equal(atA.stats.sent, N, "A's conduit for B sent every envelope");
  t.ok(
    (await a.client.request<RemoteLinkInfo[]>('links')).some((l) => l.id === remote.id),
    'the remote link is listed',
  );
  await a.client.request('disconnect', { link: remote.id });
  t.notOk(
    (await a.client.request<RemoteLinkInfo[]>('links')).some((l) => l.id === remote.id),
    'and gone after disconnect',
  );
});

t.test('a thread point on A talks to a process point on B through an automatically inserted broker', async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  await peerUp(a);
  const N = 20_000;
  await a.client.request('point.register', {
    registration: {
      name: 'gen',
      role: 'sender',
      location: pointFixture('counter'),
      data: { count: N },
      characteristics: { scope: 'thread' },
    },
  });
  await register(b, 'dst', 'relay');
  const out = await b.client.connect('dst', null, { direction: 'aToB' });
  const remote = await a.client.request<RemoteLinkInfo>('connect', { a: 'gen', b: 'dst', direction: 'aToB' });
  t.equal(remote.brokers.length, 1, 'one broker inserted');
  t.match(
    remote.flows,
    [
      { from: 'gen', to: remote.brokers[0], primitive: 'queueConditionThread' },
      { from: remote.brokers[0], primitive: 'queueConditionProcess' },
      { primitive: 'zeromq' },
    ],
    "thread ring into the broker, the remote point's own primitive out of it, then the conduits",
  );
  const instances = await a.client.request<Array<{ instance: string }>>('instances');
  t.ok(
    instances.some((i) => i.instance === remote.brokers[0]),
    'the broker is a running instance on A',
  );
  await expectInOrder(t, out, N);
});

t.test("the directories federate: A finds, shows and queries B's points", async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  const bId = await peerUp(a);
  const id = await b.client
    .request<{ id: string }>('point.register', {
      registration: { name: 'far', location: pointFixture('sink'), characteristics: { scope: 'process' } },
      attributes: { colour: 'teal' },
    })
    .then((r) => r.id);
  const shown = await a.client.request<{ id: string; name: string; daemon: string }>('point.show', { name: 'far' });
  t.match(shown, { id, name: 'far', daemon: bId });
  const q = await a.client.request<{ points: Array<{ id: string }> }>('query', { expr: 'colour = "teal"' });
  t.same(
    q.points.map((p) => p.id),
    [id],
    "a query on A answers with B's point",
  );
  const missing = await a.client.request('connect', { a: 'nowhere', b: 'far' }).catch((e: { code: string }) => e);
  t.equal(
    (missing as { code: string }).code,
    ErrorCode.AMIX_ERR_UNKNOWN_POINT,
    'a name nobody has is AMIX_ERR_UNKNOWN_POINT',
  );
});

t.test('a keyed daemon refuses an unkeyed peer and accepts a listed one', async (t) => {
  const base = dirname(await daemonDir(t));
  const kPair = generateKeyPair();
  const okPair = generateKeyPair();
  await saveKeyPair(join(base, 'k.keys'), kPair);
  await saveKeyPair(join(base, 'ok.keys'), okPair);
  await writeFile(join(base, 'k.allow'), `# peers of K\n${okPair.publicKey}\n`, { mode: 0o600 });
  await writeFile(join(base, 'ok.allow'), `${kPair.publicKey}\n`, { mode: 0o600 });
  const k = await daemon(t, ['--keys', join(base, 'k.keys'), '--allow', join(base, 'k.allow')]);
  // Unkeyed: it knows K's public key, so it speaks CURVE, but with a throw-away key K has not listed.
  const u = await daemon(t, ['--insecure', '--peer', `tcp://127.0.0.1:${k.port}`, `--peer-key=${kPair.publicKey}`]);
  const refused = await u.event((e) => e.type === 'remote.peerRefused');
  t.match(
    refused.body,
    { endpoint: `tcp://127.0.0.1:${k.port}`, error: { code: ErrorCode.AMIX_ERR_UNAUTHORIZED } },
    'the unkeyed daemon is told it was refused',
  );
  t.match((await u.peers()).peers, [{ state: 'refused', error: { code: ErrorCode.AMIX_ERR_UNAUTHORIZED } }]);
  // A listed peer gets in, so the refusal was about the key.
  const ok = await daemon(t, [
    '--keys',
    join(base, 'ok.keys'),
    '--allow',
    join(base, 'ok.allow'),
    '--peer',
    `tcp://127.0.0.1:${k.port}`,
    `--peer-key=${kPair.publicKey}`,
  ]);
  const okId = (await ok.peers()).id;
  await peerUp(ok);
  const kPeers = await k.peers();
  t.equal(kPeers.refused, 1, 'K counted the refused key once, however often it retried');
  t.same(
    kPeers.peers.map((p) => [p.id, p.state]),
    [[okId, 'up']],
    'K peers with the listed daemon only',
  );
});

t.test('unkeyed peering is refused at start, even on loopback, unless --insecure', async (t) => {
  const dir = await daemonDir(t);
  const bad = await startDaemon(t, dir, ['--listen', `tcp://127.0.0.1:${await freePort()}`]).then(
    () => 'started',
    (e: Error) => e.message,
  );
  t.match(bad, /exited early with 1/, 'amixd refuses to start');
});

t.test('malformed and misaddressed envelopes are rejected and counted; the daemon goes on', async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  await peerUp(a);
  const aId = (await a.peers()).id;
  const bStatus = await b.peers();
  // Sent with A's key to the data end B keeps for A's key: as if A's daemon sent garbage.
  const slot = bStatus.slots!.find((s) => s.key === ring[a.key!]!.pair.publicKey)!;
  const reg = new PrimitiveRegistry();
  const tx = await reg.open('zeromq', {
    address: slot.dataAddress as never,
    zeromq: { curve: ring[a.key!]!.pair },
  });
  t.teardown(async () => {
    await tx.destroy();
    await reg.close();
  });
  await tx.connect();
  const random = rng(9);
  let bad = 0;
  let decodable = 0;
  for (let i = 0; i < 2000; i++) {
    const m = new Uint8Array(1 + Math.floor(random() * 64));
    for (let j = 0; j < m.length; j++) m[j] = Math.floor(random() * 256);
    try {
      decodeEnvelope(m);
      decodable++;
    } catch {
      bad++;
    }
    await tx.send(m);
  }
  // Well-formed, from A's directory, to a point B does not have: rejected, and A is told.
  await tx.send(
    encodeEnvelope({ sender: `${aId}.77`, receiver: `${bStatus.id}.4242`, sequence: 0, payload: new Uint8Array(3) }),
  );
  const told = await a.event((e) => e.type === 'remote.rejected');
  t.match(
    told.body,
    { receiver: `${bStatus.id}.4242`, code: ErrorCode.AMIX_ERR_UNKNOWN_POINT },
    'A hears which envelope was rejected and why',
  );
  const after = await b.peers();
  t.equal(after.badEnvelopes, bad, `every undecodable envelope counted (${bad})`);
  t.equal(after.unknownSender, decodable, `decodable ones from no peer counted (${decodable})`);
  t.equal(after.peers.find((p) => p.id === aId)!.stats.rejected, 1, "the unknown receiver counted on A's conduit");
  // Still serving: a real link works.
  await relayed(t, a, b);
});

t.test(
  'a slow point on B suspends the sending point on A at maxmsg and resumes it, through the conduits',
  async (t) => {
    const a = await daemon(t, []);
    const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
    await peerUp(a);
    const small = { scope: 'process', maxmsg: 64, minmsg: 16 };
    await a.client.request('point.register', {
      registration: { name: 'src', location: pointFixture('relay'), characteristics: small },
    });
    await b.client.request('point.register', {
      registration: { name: 'slow', location: pointFixture('gated'), data: { holdMs: 1500 }, characteristics: small },
    });
    const out = await b.client.connect('slow', null, { direction: 'aToB' });
    const into = await a.client.connect(null, 'src', { direction: 'aToB' });
    const remote = await a.client.request<RemoteLinkInfo>('connect', { a: 'src', b: 'slow', direction: 'aToB' });
    const outLink = remote.remote.flows[0]!.link!;
    const suspended = a.event((e) => e.type === 'channel' && e.body.link === outLink && e.body.event === 'suspended');
    const resumed = suspended.then(() =>
      a.event((e) => e.type === 'channel' && e.body.link === outLink && e.body.event === 'resumed'),
    );
    // More than every window on the way holds: the conduit's (4096) and the points' (64 each).
    const N = 10_000;
    const got = expectInOrder(t, out, N);
    for (let i = 0; i < N; i++) await into.send(u32(i));
    const s = await suspended;
    t.match(s.body, { event: 'suspended', link: outLink }, "the sending point's link to the conduit was suspended");
    await resumed;
    t.pass('and resumed once the slow point drained');
    await got;
  },
);

t.test('three daemons: C links to points on A and B', async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, []);
  const c = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`, '--peer', `tcp://127.0.0.1:${b.port}`]);
  await peerUp(a);
  await peerUp(b);
  await register(a, 'onA', 'relay');
  await register(b, 'onB', 'relay');
  await register(c, 'toA', 'relay');
  await register(c, 'toB', 'relay');
  const outA = await a.client.connect('onA', null, { direction: 'aToB' });
  const outB = await b.client.connect('onB', null, { direction: 'aToB' });
  const inA = await c.client.connect(null, 'toA', { direction: 'aToB' });
  const inB = await c.client.connect(null, 'toB', { direction: 'aToB' });
  await c.client.request('connect', { a: 'toA', b: 'onA', direction: 'aToB' });
  await c.client.request('connect', { a: 'toB', b: 'onB', direction: 'aToB' });
  const got = Promise.all([expectInOrder(t, outA, 500), expectInOrder(t, outB, 500)]);
  for (let i = 0; i < 500; i++) {
    await inA.send(u32(i));
    await inB.send(u32(i));
  }
  await got;
  t.equal((await c.peers()).peers.filter((p) => p.state === 'up').length, 2, 'C has two conduits up');
});

t.test('killing daemon B tells A, and the remote link recovers when B returns', { timeout: 90_000 }, async (t) => {
  const a = await daemon(t, []);
  let b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  const bId = await peerUp(a);
  const { into, remote } = await relayed(t, a, b);

  const lost = a.event((e) => e.type === 'remote.peerLost');
  const upAgain = lost.then(() =>
    a.event(
      (e) =>
        e.type === 'remote.peerUp' && a.events.indexOf(e) > a.events.findIndex((x) => x.type === 'remote.peerLost'),
    ),
  );
  b.child.kill('SIGKILL');
  await once(b.child, 'exit');
  const l = await lost;
  t.match(
    l.body,
    { peer: bId, links: [remote.id], error: { code: ErrorCode.AMIX_ERR_PEER_LOST } },
    'A is told which peer and which links',
  );
  t.match((await a.peers()).peers, [{ id: bId, state: 'down' }]);

  b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`], b);
  const u = await upAgain;
  t.match(u.body, { peer: bId, links: [remote.id] }, 'A sees B back, with the same directory id');
  // After the restart: new messages flow again over the same remote link.
  await flowsAgain(t, into, b);
  const after = (await a.client.request<RemoteLinkInfo[]>('links')).find((x) => x.id === remote.id);
  t.equal(after?.state, 'active', 'the remote link is active again');
});

// The other way round: the daemon that was dialled dies. The sender's data
// channel reconnects to the new process and re-sends before the hellos have
// crossed; those envelopes wait for the hello instead of being dropped.
// Keyed, they wait on the data loop of B's key; insecure, on the shared loop,
// because A's peering.json remembers B's id (ids never seen are not waited for).
for (const mode of ['keyed', 'insecure'] as const)
  t.test(
    `killing the dialled daemon A: B's remote link to a point on A recovers, nothing sent after the restart lost (${mode})`,
    { timeout: 90_000 },
    async (t) => {
      const extra = mode === 'insecure' ? ['--insecure'] : [];
      let a = await daemon(t, extra);
      const b = await daemon(t, [...extra, '--peer', `tcp://127.0.0.1:${a.port}`]);
      const aId = await peerUp(b);
      const { into, remote } = await relayed(t, b, a);

      const seen = b.events.length;
      const lost = b.event((e) => e.type === 'remote.peerLost');
      a.child.kill('SIGKILL');
      await once(a.child, 'exit');
      t.match((await lost).body, { peer: aId, links: [remote.id] }, 'B is told which peer and which links');
      a = await daemon(t, extra, a);
      const up = await b.event((e) => e.type === 'remote.peerUp' && b.events.indexOf(e) >= seen);
      t.match(up.body, { peer: aId, links: [remote.id] }, 'B sees A back');
      await flowsAgain(t, into, a);
      const st = await a.peers();
      t.equal(st.unknownSender, 0, 'no envelope was dropped as coming from no peer');
      t.equal(st.peers.length, 1, 'one conduit, even though two hellos crossed');
    },
  );

/** The TCP ports process `pid` listens on (its socket inodes in /proc/PID/fd, looked up in /proc/PID/net/tcp). */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
    if (m) inodes.add(m[1]!);
  }
  const ports: number[] = [];
  for (const line of (await readFile(`/proc/${pid}/net/tcp`, 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address is HEXIP:HEXPORT, st 0A is LISTEN, field 9 the inode.
    if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
  }
  return ports;
}

/**
 * Relay `src` on `from` fed by `into`, relay `dst` on `to` read by `out`, and a direct link src -> dst,
 * made at `from` (src as A), or at `to` (dst as A, direction bToA: the peer then drives the flow).
 */
async function directLink(
  from: D,
  to: D,
  at: 'from' | 'to' = 'from',
): Promise<{ into: ClientLink; out: ClientLink; remote: RemoteLinkInfo }> {
  const srcId = await register(from, 'src', 'relay');
  const dstId = await register(to, 'dst', 'relay');
  const out = await to.client.connect('dst', null, { direction: 'aToB' });
  const into = await from.client.connect(null, 'src', { direction: 'aToB' });
  const [maker, args] =
    at === 'from' ? [from, { a: 'src', b: dstId, direction: 'aToB' }] : [to, { a: 'dst', b: srcId, direction: 'bToA' }];
  const remote = await maker.client.request<RemoteLinkInfo>('connect', { ...args, direct: true });
  return { into, out, remote };
}

t.test('a direct link: messages go straight between the two points, past both daemons', async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  const bId = await peerUp(a);
  const { into, out, remote } = await directLink(a, b);
  t.match(remote.remote.flows, [{ local: 'out', direct: /^L\d+$/ }], 'the flow is direct, a fabric link of its own');
  t.notOk(
    remote.flows.some((f) => f.from.startsWith('conduit:')),
    'no hop through the conduits',
  );
  t.ok(
    remote.flows.some((f) => f.primitive === 'zeromq'),
    'the zeromq primitive between the points',
  );
  const N = 20_000;
  const got = expectInOrder(t, out, N);
  for (let i = 0; i < N; i++) await into.send(u32(i));
  await got;
  const atA = (await a.peers()).peers.find((p) => p.id === bId)!;
  t.equal(atA.stats.sent, 0, "A's conduit sent no envelope: the daemons are off the data path");
  // Both daemons stopped (SIGSTOP): the points' processes go on talking, and so does this one with them.
  a.child.kill('SIGSTOP');
  b.child.kill('SIGSTOP');
  try {
    const more = expectInOrder(t, out, 1000, N);
    for (let i = N; i < N + 1000; i++) await into.send(u32(i));
    await more;
    t.pass('1000 more went through with both daemons stopped');
  } finally {
    a.child.kill('SIGCONT');
    b.child.kill('SIGCONT');
  }
  const bLinks = () => b.client.request<Array<{ id: string; b: string[] }>>('links');
  t.ok(
    (await bLinks()).some((l) => l.b.includes('dst') && l.id !== out.id),
    "B holds the receiving half as a link of dst's",
  );
  await a.client.request('disconnect', { link: remote.id });
  t.notOk(
    (await a.client.request<RemoteLinkInfo[]>('links')).some((l) => l.id === remote.id),
    'gone at A after disconnect',
  );
  t.same(
    (await bLinks()).filter((l) => l.b.includes('dst') && l.id !== out.id),
    [],
    'and its half at B with it',
  );
});

t.test(
  'a direct link from B to A, driven by B; suspend and resume at the sender; its port lets no stranger in',
  async (t) => {
    const a = await daemon(t, []);
    const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
    await peerUp(a);
    await peerUp(b);
    // Made at A (the receiving side): B's daemon drives the flow from its point.
    const { into, out, remote } = await directLink(b, a, 'to');
    t.match(remote.remote.flows, [{ local: 'in', direct: /^L\d+$/ }], "the flow comes in, A's half a link of dst's");
    const got = expectInOrder(t, out, 1000);
    for (let i = 0; i < 1000; i++) await into.send(u32(i));
    await got;

    const suspended = await a.client.request<RemoteLinkInfo>('suspend', { link: remote.id });
    t.equal(suspended.id, remote.id, 'suspend goes to the sending daemon');
    const bLink = (await b.client.request<Array<{ id: string; a: string; state: string }>>('links')).find(
      (l) => l.a === 'src' && l.id !== into.id,
    );
    t.equal(bLink?.state, 'suspended', "B suspended its half, where the sending end is (src's process)");
    await a.client.request('resume', { link: remote.id });

    // A stranger at the receiving end's port: no CURVE at all, then a key pair of its own. Nothing gets through.
    const inst = (await a.client.request<Array<{ point: string; pid?: number }>>('instances')).find(
      (i) => i.point === 'dst',
    );
    const ports = await listeningPorts(inst!.pid!);
    t.equal(ports.length, 1, "dst's process listens on one TCP port: the direct link's receiving end");
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const stranger = generateKeyPair();
    for (const zeromq of [{}, { curve: stranger }]) {
      const tx = await reg
        .open('zeromq', {
          address: { endpoint: `tcp://127.0.0.1:${ports[0]}`, serverPublicKey: generateKeyPair().publicKey },
          zeromq: { ...zeromq, connectTimeoutMs: 300 },
        } as never)
        .catch((err: Error) => err);
      t.ok(
        tx instanceof Error,
        `a sender with ${zeromq.curve ? 'a key pair of its own' : 'no CURVE'} (and a guessed server key) is never let in`,
      );
    }
    const next = expectInOrder(t, out, 10, 1000);
    for (let i = 1000; i < 1010; i++) await into.send(u32(i));
    await next;

    await a.client.request('disconnect', { link: remote.id });
    t.notOk(
      (await b.client.request<Array<{ a: string; id: string }>>('links')).some(
        (l) => l.a === 'src' && l.id !== into.id,
      ),
      "B's half is gone with the link",
    );
  },
);

t.test('direct is refused where it has no meaning, or to a thread point inside the peer daemon', async (t) => {
  const a = await daemon(t, []);
  const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
  await peerUp(a);
  const threadId = (
    await b.client.request<{ id: string }>('point.register', {
      registration: { name: 'tdst', location: pointFixture('relay'), characteristics: { scope: 'thread' } },
    })
  ).id;
  await register(a, 'tsrc', 'relay');
  await t.rejects(
    a.client.request('connect', { a: 'tsrc', b: threadId, direction: 'aToB', direct: true }),
    { code: ErrorCode.AMIX_ERR_PRIMITIVE_MISMATCH, message: /needs a receiving point with a process of its own/ },
    'a thread point runs in amixd B, whose ZeroMQ ZAP endpoint is peering: refused, with what to do',
  );
  t.notOk(
    (await a.client.request<RemoteLinkInfo[]>('links')).some((l) => l.a === 'tsrc'),
    'and nothing is left of the attempt at A',
  );
  await register(a, 'one', 'relay');
  await register(a, 'two', 'relay');
  for (const direct of [true, 'yes']) {
    await t.rejects(
      a.client.request('connect', { a: 'one', b: 'two', direct }),
      { code: ErrorCode.AMIX_ERR_INVALID_ARG },
      `direct: ${JSON.stringify(direct)} between two local points`,
    );
  }
});

t.test(
  'a direct link is made again when its receiving daemon comes back as a new process',
  { timeout: 90_000 },
  async (t) => {
    const a = await daemon(t, []);
    let b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
    const bId = await peerUp(a);
    const made = await directLink(a, b);
    const { into, remote } = made;
    let out = made.out;
    const first = remote.remote.flows[0]!.direct;
    let got = expectInOrder(t, out, 100);
    for (let i = 0; i < 100; i++) await into.send(u32(i));
    await got;

    const reopened = a.event((e) => e.type === 'remote.directReopened');
    b.child.kill('SIGKILL');
    await once(b.child, 'exit');
    b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`], b);
    const ev = await reopened;
    t.match(ev.body, { link: remote.id, peer: bId, direct: /^L\d+$/ }, 'A made the flow again and said so');
    t.not(ev.body.direct, first, 'as a new local link');
    out = await b.client.connect('dst', null, { direction: 'aToB' });
    got = expectInOrder(t, out, 100, 1000);
    for (let i = 1000; i < 1100; i++) await into.send(u32(i));
    await got;
    const now = (await a.client.request<RemoteLinkInfo[]>('links')).find((l) => l.id === remote.id);
    t.equal(now?.remote.flows[0]?.direct, ev.body.direct, 'the remote link lists the new flow');
  },
);

t.test(
  'the daemon that made a direct link comes back as a new process: the other ends its half',
  { timeout: 90_000 },
  async (t) => {
    let a = await daemon(t, []);
    const b = await daemon(t, ['--peer', `tcp://127.0.0.1:${a.port}`]);
    const aId = await peerUp(b);
    await peerUp(a);
    await directLink(a, b);
    const halves = async () =>
      (await b.client.request<Array<{ id: string; a: string; b: string[] }>>('links')).filter((l) =>
        l.b.includes('dst'),
      );
    const [half] = await halves();
    t.ok(half, 'B holds the receiving half');
    const seen = b.events.length;
    const ended = b.event((e) => e.type === 'linkDisconnected' && b.events.indexOf(e) >= seen);
    a.child.kill('SIGKILL');
    await once(a.child, 'exit');
    a = await daemon(t, [], a);
    t.match((await ended).body, { link: half!.id }, "B ended its half once A's new process said hello");
    t.same(await halves(), [], 'and no longer lists it');
    t.equal((await b.peers()).peers.find((p) => p.id === aId)?.state, 'up', 'A is a peer again');
  },
);
