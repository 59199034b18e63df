// Peering is authenticated: real amixd processes over loopback TCP, and raw
// zeromq clients playing attackers (one of them as another uid). No key, a
// key nobody allowed, an allowed key claiming another daemon's id, a spoofed
// envelope sender, unknown senders that must not stall a known peer, and
// keyless peering only with --insecure.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DaemonClient,
  ErrorCode,
  PROTOCOL_VERSION,
  PrimitiveRegistry,
  controlAddress,
  decodeControl,
  decodeEnvelope,
  encodeControlBody,
  encodeEnvelope,
  generateKeyPair,
  helloText,
  proveKey,
  saveKeyPair,
  type Channel,
  type ClientLink,
  type CurveKeyPair,
  type PeerInfo,
} from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { AMIXD, daemonDir, freePort, startDaemon, subscribed, type DaemonEv } from './helpers/daemon.js';

interface Status {
  id: string;
  dataAddress?: Record<string, unknown>;
  insecure: boolean;
  badEnvelopes: number;
  badFrames: number;
  unknownSender: number;
  spoofedSenders: number;
  unhelloed: number;
  refused: number;
  refusedHandshakes: number;
  refusedKeys: Array<{ key?: string; address: string; mechanism: string; attempts: number }>;
  refusedHellos: number;
  refusals: Array<{ peer: string; key?: string; reason: string; count: number }>;
  slots: Array<{ key: string; id?: string; control: string; data: string; dataAddress: Record<string, unknown> }>;
  peers: PeerInfo[];
}
type Ev = DaemonEv;
interface D {
  port: number;
  pair: CurveKeyPair;
  client: DaemonClient;
  event(match: (e: Ev) => boolean): Promise<Ev>;
  peers(): Promise<Status>;
}

/** A temp dir (0700) removed at teardown. */
async function tempDir(t: Test, prefix = 'amix-trust-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A keyed daemon on loopback with its own pair and allow-list text; `dir`/`port` to choose them first. */
async function daemon(
  t: Test,
  o: { pair: CurveKeyPair; allow: string; args?: string[]; dir?: string; port?: number },
): Promise<D> {
  const dir = o.dir ?? (await daemonDir(t));
  const port = o.port ?? (await freePort());
  const base = await tempDir(t);
  await saveKeyPair(join(base, 'keys'), o.pair);
  await writeFile(join(base, 'allow'), o.allow, { mode: 0o600 });
  const args = ['--listen', `tcp://127.0.0.1:${port}`, '--keys', join(base, 'keys'), '--allow', join(base, 'allow')];
  await startDaemon(t, dir, [...args, ...(o.args ?? [])]);
  const { client, event } = await subscribed(t, dir);
  return {
    port,
    pair: o.pair,
    client,
    event,
    peers: () => client.request<Status>('peers'),
  };
}

/** The daemon id of a started daemon (its directory id, known before any peer is up). */
async function idOf(d: D): Promise<string> {
  return (await d.peers()).id;
}

/** Resolves once `d` has peer `id` up. */
async function peerUp(d: D, id: string): Promise<void> {
  const up = d.event((e) => e.type === 'remote.peerUp' && e.body.peer === id);
  if ((await d.peers()).peers.some((p) => p.id === id && p.state === 'up')) return;
  await up;
}

/**
 * A raw peer in this process: its own control and data receiving ends (CURVE
 * servers with `pair`), and sending ends it opens to a daemon. It speaks the
 * peer protocol by hand, so it can say what a real daemon never would.
 */
async function rawPeer(t: Test, pair: CurveKeyPair) {
  const reg = new PrimitiveRegistry();
  const ctl = await reg.open('zeromq', { zeromq: { curve: { ...pair } } });
  const data = await reg.open('zeromq', { zeromq: { curve: { ...pair } } });
  const txs: Channel[] = [];
  t.teardown(async () => {
    for (const tx of txs) await tx.destroy().catch(() => {});
    await ctl.destroy().catch(() => {});
    await data.destroy().catch(() => {});
    await reg.close();
  });
  const open = async (address: unknown): Promise<Channel> => {
    const tx = await reg.open('zeromq', { address: address as never, zeromq: { curve: pair, connectTimeoutMs: 5000 } });
    txs.push(tx);
    return tx;
  };
  return {
    ctl,
    data,
    open,
    /** A hello as daemon `id`, claiming `key` (default its own), proved with its own pair for daemon key `to`. */
    hello(id: string, to: string, key = pair.publicKey): Uint8Array {
      const h = { id, version: PROTOCOL_VERSION, control: ctl.address, data: data.address, key } as never;
      const args = { ...(h as object), proof: proveKey(pair, to, helloText(h)) };
      const payload = encodeControlBody({ kind: 'request', id: 1, op: 'hello', args });
      return encodeEnvelope({ sender: id, receiver: '*', sequence: 0, payload });
    },
  };
}

/** A point `dst` (relay) on `d` and a client link out of it. */
async function sink(d: D, name = 'dst'): Promise<{ id: string; out: ClientLink }> {
  const { id } = await d.client.request<{ id: string }>('point.register', {
    registration: { name, location: pointFixture('relay'), characteristics: { scope: 'process' } },
  });
  return { id, out: await d.client.connect(name, null, { direction: 'aToB' }) };
}

/** A remote link from a new point `src` on `from` to `to` (a name or identifier), and a link into `src`. */
async function source(from: D, to: string): Promise<ClientLink> {
  await from.client.request('point.register', {
    registration: { name: 'src', location: pointFixture('relay'), characteristics: { scope: 'process' } },
  });
  const into = await from.client.connect(null, 'src', { direction: 'aToB' });
  await from.client.request('connect', { a: 'src', b: to, direction: 'aToB' });
  return into;
}

const text = (m: Uint8Array): string => Buffer.from(m).toString();
const hex16 = (): string => Buffer.from(generateKeyPair().publicKey).toString('hex').slice(0, 16);

const CHILD = `
const [lib, front, slotData] = process.argv.slice(2);
const { PrimitiveRegistry, generateKeyPair, encodeEnvelope, encodeControlBody } = await import(lib);
const reg = new PrimitiveRegistry();
const pair = generateKeyPair();
const out = { uid: process.getuid(), publicKey: pair.publicKey };
for (const [name, address] of [['front', JSON.parse(front)], ['data', JSON.parse(slotData)]]) {
  const tx = await reg.open('zeromq', { address, zeromq: { curve: pair, connectTimeoutMs: 3000 } });
  // Sends are accepted on the credit the address promises; they never leave without a handshake.
  const payload = encodeControlBody({ kind: 'request', id: 1, op: name === 'front' ? 'hello' : 'query', args: { expr: 'true' } });
  await tx.send(encodeEnvelope({ sender: 'abcdefabcdefabcd', receiver: '*', sequence: 0, payload }));
  out[name] = await tx.connect().then(() => 'connected', (e) => e.code);
  await tx.destroy();
}
await reg.close();
console.log(JSON.stringify(out));
`;

t.test('without an allowed key nothing gets in over TCP: no hello, no query, no message', async (t) => {
  const aPair = generateKeyPair();
  const a = await daemon(t, { pair: aPair, allow: `${generateKeyPair().publicKey}\n` });
  const { id: dstId, out } = await sink(a);
  const st = await a.peers();
  const slot = st.slots[0]!;
  const front = controlAddress(`tcp://127.0.0.1:${a.port}`, aPair.publicKey);

  // Keyless (the NULL mechanism) at the shared end and at the slot's data end.
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  for (const [name, address] of [
    ['front', front],
    ['data', slot.dataAddress],
  ] as const) {
    const { serverPublicKey: _drop, ...keyless } = address as Record<string, unknown>;
    const tx = await reg.open('zeromq', { address: keyless as never, zeromq: { connectTimeoutMs: 1500 } });
    t.teardown(() => tx.destroy());
    await tx.send(
      encodeEnvelope({ sender: `${hex16()}.1`, receiver: dstId, sequence: 0, payload: Buffer.from('keyless') }),
    );
    const err = await tx.connect().then(
      () => undefined,
      (e: { code: string }) => e,
    );
    t.ok(err, `a keyless client never gets an answer from the ${name} end (${err?.code})`);
  }

  // A CURVE key nobody allowed, from another uid.
  if (process.getuid?.() !== 0)
    t.skip('not root: cannot run the wrong-key client as uid 65534 (setpriv)', async () => {});
  else {
    const dir = await tempDir(t);
    await chmod(dir, 0o755);
    const script = join(dir, 'foreign.mjs');
    await writeFile(script, CHILD, { mode: 0o644 });
    const lib = fileURLToPath(new URL('../dist/lib/internal.js', import.meta.url));
    const child = spawn(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        script,
        lib,
        JSON.stringify(front),
        JSON.stringify(slot.dataAddress),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    t.equal(code, 0, 'the foreign client ran');
    const r = JSON.parse(stdout) as { uid: number; publicKey: string; front: string; data: string };
    t.equal(r.uid, 65534, 'as uid 65534');
    t.equal(r.front, ErrorCode.AMIX_ERR_UNAUTHORIZED, 'the shared end refused its key at the handshake');
    t.equal(r.data, ErrorCode.AMIX_ERR_UNAUTHORIZED, "and so did the slot's data end");
    const after = await a.peers();
    const row = after.refusedKeys.find((k) => k.key === r.publicKey);
    t.ok(row, 'the refused key is listed in peers');
    t.ok(after.refused >= 1, `refused counts clients (${after.refused}), not their retries`);
    t.ok(after.refusedHandshakes >= 2, `every failed handshake is counted too (${after.refusedHandshakes})`);
  }
  const after = await a.peers();
  t.same(after.peers, [], 'no peer was bound');
  t.match(
    after,
    { unhelloed: 0, refusedHellos: 0, unknownSender: 0, spoofedSenders: 0, badEnvelopes: 0 },
    'nothing reached the peering layer at all, so nothing could reach the point',
  );
  await out.close();
});

t.test("an allowed key claiming another daemon's id is refused; B's traffic still goes to B", async (t) => {
  const aPair = generateKeyPair();
  const bPair = generateKeyPair();
  const xPair = generateKeyPair();
  const aPort = await freePort();
  const b = await daemon(t, {
    pair: bPair,
    allow: `${aPair.publicKey}\n`,
    args: ['--peer', `tcp://127.0.0.1:${aPort}`, `--peer-key=${aPair.publicKey}`],
  });
  const bId = await idOf(b);
  // A names B's id for B's key; X's key is listed bare (it may pin an id nobody else has).
  const a = await daemon(t, { pair: aPair, port: aPort, allow: `${bPair.publicKey} ${bId}\n${xPair.publicKey}\n` });
  await peerUp(a, bId);
  const before = (await a.peers()).peers.find((p) => p.id === bId)!;

  const x = await rawPeer(t, xPair);
  const front = await x.open(controlAddress(`tcp://127.0.0.1:${a.port}`, aPair.publicKey));
  await front.connect();
  const refused: Ev[] = [];
  for (const claimed of [xPair.publicKey, bPair.publicKey]) {
    const seen = a.event((e) => e.type === 'remote.peerRefused' && !refused.includes(e));
    await front.send(x.hello(bId, aPair.publicKey, claimed));
    refused.push(await seen);
  }
  t.match(
    refused.map((e) => e.body),
    [
      { peer: bId, key: xPair.publicKey, error: { code: ErrorCode.AMIX_ERR_PEER_REFUSED } },
      { peer: bId, key: bPair.publicKey, error: { code: ErrorCode.AMIX_ERR_PEER_REFUSED } },
    ],
    "X's hello as B is refused, with its own key and with B's",
  );
  const st = await a.peers();
  t.equal(st.refusedHellos, 2, 'both counted');
  t.match(
    st.refusals,
    [
      { peer: bId, key: xPair.publicKey, reason: /bound to another key/, count: 1 },
      { peer: bId, key: bPair.publicKey, reason: /prove/, count: 1 },
    ],
    'per claimed peer and key, with the reason',
  );
  t.notOk(st.slots.find((s) => s.key === xPair.publicKey)?.id, "X's key was not pinned by a refused hello");
  const now = st.peers.find((p) => p.id === bId)!;
  t.match(now, { state: 'up', key: bPair.publicKey, endpoint: before.endpoint }, 'B is still B');

  // Traffic for B goes to B.
  const { out } = await sink(b);
  const into = await source(a, 'dst');
  await into.send(Buffer.from('for B'));
  t.equal(text((await out.receive()).data), 'for B', "a message for B's point arrives at B");
  t.equal(x.ctl.stats().received + x.data.stats().received, 0, 'the impostor got nothing, not even a hello reply');
});

t.test('a spoofed envelope sender is dropped and counted against the peer that sent it', async (t) => {
  const aPair = generateKeyPair();
  const bPair = generateKeyPair();
  const xPair = generateKeyPair();
  const aPort = await freePort();
  const b = await daemon(t, {
    pair: bPair,
    allow: `${aPair.publicKey}\n`,
    args: ['--peer', `tcp://127.0.0.1:${aPort}`, `--peer-key=${aPair.publicKey}`],
  });
  const bId = await idOf(b);
  const a = await daemon(t, { pair: aPair, port: aPort, allow: `${bPair.publicKey} ${bId}\n${xPair.publicKey}\n` });
  await peerUp(a, bId);
  const { id: dstId, out } = await sink(a);

  // X is an honest peer at first: its hello is accepted and A answers it.
  const xId = hex16();
  const x = await rawPeer(t, xPair);
  const front = await x.open(controlAddress(`tcp://127.0.0.1:${a.port}`, aPair.publicKey));
  await front.send(x.hello(xId, aPair.publicKey));
  const reply = decodeControl(decodeEnvelope(await x.ctl.receive()).payload) as {
    ok: boolean;
    result: { data: Record<string, unknown> };
  };
  t.equal(reply.ok, true, "X's own hello is accepted");
  await peerUp(a, xId);
  t.equal((await a.peers()).slots.find((s) => s.key === xPair.publicKey)?.id, xId, "X's bare key is pinned to its id");
  const other = hex16();
  const pinnedOut = a.event((e) => e.type === 'remote.peerRefused' && e.body.peer === other);
  await front.send(x.hello(other, aPair.publicKey));
  t.match(
    (await pinnedOut).body,
    { key: xPair.publicKey, error: { message: new RegExp(`bound to daemon ${xId}`) } },
    'and may not say hello as another id afterwards',
  );
  // Then, on its own data end at A, an envelope claiming to come from B's point.
  const xData = await x.open(reply.result.data);
  const dropped = a.event((e) => e.type === 'remote.badEnvelope' && e.body.plane === 'data');
  await xData.send(
    encodeEnvelope({ sender: `${bId}.1`, receiver: dstId, sequence: 0, payload: Buffer.from('spoofed') }),
  );
  t.match(
    (await dropped).body,
    {
      error: {
        code: ErrorCode.AMIX_ERR_PEER_REFUSED,
        message: new RegExp(`from ${bId}\\.1 that came with the key of ${xId}`),
      },
    },
    'dropped as a spoofed sender',
  );
  const st = await a.peers();
  t.equal(st.spoofedSenders, 1, 'counted');
  t.match(
    st.peers.find((p) => p.id === xId),
    { stats: { spoofed: 1, received: 0 } },
    "on X's conduit",
  );
  t.match(
    st.peers.find((p) => p.id === bId),
    { stats: { spoofed: 0, received: 0 } },
    "never on B's",
  );
  t.match(
    st.slots.find((s) => s.key === xPair.publicKey),
    { id: xId, spoofed: 1, refusedHellos: 1 },
    "and on X's key, with its refused hello",
  );
  // The point got nothing from it: the first message it forwards is B's real one.
  const into = await source(b, dstId);
  await into.send(Buffer.from('from B'));
  t.equal(text((await out.receive()).data), 'from B', 'the spoofed payload was neither delivered nor forwarded');
});

t.test('envelopes from unknown daemon ids do not delay the next good envelope of a known peer', async (t) => {
  const aPair = generateKeyPair();
  const bPair = generateKeyPair();
  const xPair = generateKeyPair();
  const aPort = await freePort();
  const b = await daemon(t, {
    pair: bPair,
    allow: `${aPair.publicKey}\n`,
    args: ['--peer', `tcp://127.0.0.1:${aPort}`, `--peer-key=${aPair.publicKey}`],
  });
  const bId = await idOf(b);
  const a = await daemon(t, { pair: aPair, port: aPort, allow: `${bPair.publicKey} ${bId}\n${xPair.publicKey}\n` });
  await peerUp(a, bId);
  const { id: dstId, out } = await sink(a);
  const into = await source(b, dstId);
  const timeOne = async (i: number): Promise<number> => {
    const t0 = performance.now();
    await into.send(Buffer.from(`good ${i}`));
    const m = await out.receive();
    const ms = performance.now() - t0;
    if (text(m.data) !== `good ${i}`) throw new Error(`expected good ${i}, got ${text(m.data)}`);
    return ms;
  };
  const warm: number[] = [];
  for (let i = 0; i < 20; i++) warm.push(await timeOne(i));
  warm.sort((p, q) => p - q);

  // X, allowed but silent (it never says hello): three envelopes from three ids nobody knows.
  const x = await rawPeer(t, xPair);
  const slot = (await a.peers()).slots.find((s) => s.key === xPair.publicKey)!;
  const xData = await x.open(slot.dataAddress);
  for (let i = 0; i < 3; i++)
    await xData.send(
      encodeEnvelope({ sender: `${hex16()}.1`, receiver: dstId, sequence: 0, payload: new Uint8Array(4) }),
    );
  // Acknowledged by A's receiving end: they are with A's data loop for X's key, which waits for X's hello.
  await xData.cycle();
  const ms = await timeOne(100);
  // Held behind the strangers, it would wait for their hello grace (10 s each); 2 s leaves room for a loaded machine.
  t.ok(ms < 2000, `the good envelope took ${ms.toFixed(1)} ms (median before: ${warm[10]!.toFixed(1)} ms)`);
  // With B's own key (a known peer, bound to its id), unknown ids are dropped at once as spoofed.
  const asB = await rawPeer(t, bPair);
  const bSlot = (await a.peers()).slots.find((s) => s.key === bPair.publicKey)!;
  const bData = await asB.open(bSlot.dataAddress);
  for (let i = 0; i < 3; i++)
    await bData.send(
      encodeEnvelope({ sender: `${hex16()}.1`, receiver: dstId, sequence: 0, payload: new Uint8Array(4) }),
    );
  await bData.cycle();
  const ms2 = await timeOne(101);
  t.ok(ms2 < 100, `on B's own key too: ${ms2.toFixed(1)} ms`);
  t.equal((await a.peers()).spoofedSenders, 3, "those three counted as spoofed, against B's key");
});

t.test('insecure too: envelopes from ids never seen do not wait on the shared data loop', async (t) => {
  const aPort = await freePort();
  const insecure = async (args: string[], port?: number): Promise<D> => {
    const dir = await daemonDir(t);
    const p = port ?? (await freePort());
    await startDaemon(t, dir, ['--listen', `tcp://127.0.0.1:${p}`, '--insecure', ...args]);
    const client = await DaemonClient.connect({ dir });
    t.teardown(() => client.close().catch(() => {}));
    await client.subscribe();
    const events: Ev[] = [];
    client.connection.on('event', (e: Ev) => events.push(e));
    return {
      port: p,
      pair: generateKeyPair(),
      client,
      event: (match) =>
        new Promise((resolve) => {
          const seen = events.find(match);
          if (seen) return resolve(seen);
          client.connection.on('event', (e: Ev) => match(e) && resolve(e));
        }),
      peers: () => client.request<Status>('peers'),
    };
  };
  const a = await insecure([], aPort);
  const b = await insecure(['--peer', `tcp://127.0.0.1:${aPort}`]);
  await peerUp(a, await idOf(b));
  const { id: dstId, out } = await sink(a);
  const into = await source(b, dstId);
  await into.send(Buffer.from('warm'));
  t.equal(text((await out.receive()).data), 'warm', 'the remote link works');
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const raw = await reg.open('zeromq', { address: (await a.peers()).dataAddress as never });
  t.teardown(() => raw.destroy());
  for (let i = 0; i < 3; i++)
    await raw.send(
      encodeEnvelope({ sender: `${hex16()}.1`, receiver: dstId, sequence: 0, payload: new Uint8Array(4) }),
    );
  await raw.cycle();
  const t0 = performance.now();
  await into.send(Buffer.from('good'));
  t.equal(text((await out.receive()).data), 'good', 'the next good envelope arrives');
  const ms = performance.now() - t0;
  t.ok(ms < 100, `in ${ms.toFixed(1)} ms`);
  t.equal((await a.peers()).unknownSender, 3, 'the three were dropped at once and counted');
});

t.test('before its hello, an allowed key gets only a hello through, and small ones', async (t) => {
  const aPair = generateKeyPair();
  const xPair = generateKeyPair();
  const a = await daemon(t, { pair: aPair, allow: `${xPair.publicKey}\n` });
  const x = await rawPeer(t, xPair);
  const front = await x.open(controlAddress(`tcp://127.0.0.1:${a.port}`, aPair.publicKey));
  const payload = encodeControlBody({ kind: 'request', id: 7, op: 'query', args: { expr: 'true' } });
  await front.send(encodeEnvelope({ sender: hex16(), receiver: '*', sequence: 0, payload }));
  await front.cycle();
  t.equal((await a.peers()).unhelloed, 1, 'a query on the shared end before any hello is dropped and counted');
  t.equal(x.ctl.stats().received, 0, 'and not answered');
  t.throws(
    () => front.trySend(new Uint8Array(64 * 1024)),
    { code: ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE },
    'the shared end takes 8 KiB messages (its address says so; libzmq drops a connection that sends more)',
  );
  const st = await a.peers();
  t.same(st.peers, [], 'no peer bound');
  t.notOk(st.slots[0]!.id, 'no id pinned');
});

t.test('keyless peering is refused at start; with --insecure it works and says so loudly', async (t) => {
  const run = async (
    args: string[],
  ): Promise<{ child: ChildProcess; stderr: () => string; ready: boolean; dir: string }> => {
    const dir = await daemonDir(t);
    const child = spawn(process.execPath, [AMIXD, '--dir', dir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AMIXD_READY_FD: '1' },
    });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const ready = await new Promise<boolean>((resolve) => {
      child.stdout!.once('data', () => resolve(true));
      child.once('exit', () => resolve(false));
    });
    return { child, stderr: () => err, ready, dir };
  };
  const port = await freePort();
  const refused = await run(['--listen', `tcp://127.0.0.1:${port}`]);
  t.equal(refused.ready, false, 'a keyless daemon does not start, even on loopback');
  t.equal(refused.child.exitCode, 1, 'it exits 1');
  t.match(refused.stderr(), /AMIX_ERR_INVALID_ARG/, 'with the code');
  t.match(refused.stderr(), /without CURVE keys.*every local user.*--insecure/s, 'and says why and what to do');

  const a = await run(['--listen', `tcp://127.0.0.1:${port}`, '--insecure']);
  t.equal(a.ready, true, 'with --insecure it starts');
  t.match(a.stderr(), /WARNING.*--insecure.*NOT authenticated/, 'and warns');
  const b = await run(['--insecure', '--peer', `tcp://127.0.0.1:${port}`, '--quiet']);
  const client = await DaemonClient.connect({ dir: b.dir });
  t.teardown(() => client.close());
  await client.subscribe();
  const up = new Promise<void>((resolve) =>
    client.connection.on('event', (e: Ev) => {
      if (e.type === 'remote.peerUp') resolve();
    }),
  );
  const st = await client.request<Status>('peers');
  if (!st.peers.some((p) => p.state === 'up')) await up;
  t.equal((await client.request<Status>('peers')).insecure, true, 'peers says it is insecure');
  t.pass('two insecure daemons peer');
});
