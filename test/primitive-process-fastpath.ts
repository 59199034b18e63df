// The fast paths of queueConditionProcess on real Unix sockets: messages
// sent in one turn leave in a few writes (counted on the sending socket),
// trySendMany/tryReceiveMany carry batches in order, a data frame split
// across two reads at every byte boundary still arrives whole, and a message
// handed to the application is a view nothing overwrites later (kept
// messages compared after thousands more have been read).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import primitive, {
  FrameKind,
  PROTOCOL_VERSION,
  type ProcessChannelOptions,
  type ProcessHandle,
  type ReceiverHandle,
  type SenderHandle,
} from '../dist/primitives/queueConditionProcess.js';
import { tempDir } from './fixtures/process-helpers.js';

type Tap = Parameters<Parameters<typeof t.test>[1]>[0];

async function pair(
  t: Tap,
  rxOpts: Partial<ProcessChannelOptions> = {},
  txOpts: Partial<ProcessChannelOptions> = {},
): Promise<{ rx: ReceiverHandle; tx: SenderHandle }> {
  const runtimeDir = tempDir(t);
  const rx = (await primitive.create({ runtimeDir, ...rxOpts } as ProcessChannelOptions)) as ReceiverHandle;
  t.teardown(() => primitive.destroy(rx as ProcessHandle, new Error('teardown')));
  const tx = (await primitive.create({
    runtimeDir,
    address: rx.address,
    ...txOpts,
  } as ProcessChannelOptions)) as SenderHandle;
  t.teardown(() => primitive.destroy(tx as ProcessHandle, new Error('teardown')));
  return { rx, tx };
}

/** Count the writes the stream hands to its handle (each one a write or writev system call), and the largest. */
function countWrites(socket: Socket): { writes: number; largest: number } {
  const c = { writes: 0, largest: 0 };
  const s = socket as unknown as {
    _write: (...a: unknown[]) => unknown;
    _writev: (...a: unknown[]) => unknown;
  };
  const w = s._write;
  const v = s._writev;
  s._write = function (this: unknown, ...a: unknown[]) {
    c.writes++;
    c.largest = Math.max(c.largest, (a[0] as Uint8Array).length);
    return w.apply(this, a);
  };
  s._writev = function (this: unknown, ...a: unknown[]) {
    c.writes++;
    const chunks = a[0] as Array<{ chunk: Uint8Array }>;
    c.largest = Math.max(
      c.largest,
      chunks.reduce((n, x) => n + x.chunk.length, 0),
    );
    return v.apply(this, a);
  };
  return c;
}

function message(i: number, size: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let j = 0; j < size; j++) m[j] = (i * 31 + j) & 0xff;
  if (size >= 4) new DataView(m.buffer).setUint32(0, i, true);
  return m;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

async function receiveAll(rx: ReceiverHandle, n: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  while (got.length < n) {
    const batch = primitive.tryReceiveMany(rx, 1 << 20, 256);
    if (batch.length > 0) got.push(...batch);
    else got.push(await primitive.receive(rx, { maxBytes: 1 << 20 }));
  }
  return got;
}

t.test('2000 messages sent in one turn leave in a few writes, and arrive in order', async (t) => {
  const { rx, tx } = await pair(t, { maxmsg: 8192 });
  const writes = countWrites(tx.st.socket!);
  const n = 2000;
  let accepted = 0;
  for (let i = 0; i < n; i++) if (primitive.trySend(tx, message(i, 64))) accepted++;
  t.equal(accepted, n, 'every message was taken synchronously (credit for all of them)');
  const got = await receiveAll(rx, n);
  // 2000 frames of 69 B are 138,000 B: a write at each 64 KiB packed and one at the end of the turn,
  // plus at most one written through at the start (the stream was quiet). One write per message would be 2000.
  t.ok(writes.writes >= 1 && writes.writes <= 4, `2000 messages in ${writes.writes} writes (at most 4)`);
  // Node reads a socket 64 KiB at a time: a write no larger arrives in one read when the receiver keeps up.
  t.ok(writes.largest <= 64 * 1024, `no write larger than 64 KiB (largest ${writes.largest} B)`);
  t.ok(
    got.every((m, i) => same(m, message(i, 64))),
    'every message arrived, in order, with its bytes',
  );
});

t.test(
  'trySendMany and tryReceiveMany carry batches in order; tryReceiveMany stops before a message too large',
  async (t) => {
    const { rx, tx } = await pair(t, { maxmsg: 8192 });
    const writes = countWrites(tx.st.socket!);
    const n = 4096;
    const all = Array.from({ length: n }, (_, i) => message(i, 1 + (i % 200)));
    let sent = 0;
    for (let i = 0; i < n; i += 64) sent += primitive.trySendMany(tx, all.slice(i, i + 64));
    t.equal(sent, n, 'trySendMany took every batch (credit for all of them)');
    t.ok(writes.writes <= 8, `${n} messages (about 420 KB) in ${writes.writes} writes`);
    const got = await receiveAll(rx, n);
    t.equal(got.length, n, 'as many messages received as sent');
    t.ok(
      got.every((m, i) => same(m, all[i]!)),
      'in order, each with its own length and bytes',
    );
    t.equal(primitive.stats(rx).received, n, 'the receiving end counted each one');

    // A large one between small ones: the batch stops before it, and the next call refuses it while it is first.
    primitive.trySendMany(tx, [message(1, 8), message(2, 8), message(3, 100), message(4, 8)]);
    while (primitive.stats(rx).pending < 4) await new Promise((r) => setImmediate(r));
    const first = primitive.tryReceiveMany(rx, 50, 10);
    t.equal(first.length, 2, 'the batch held the two small messages before the large one');
    t.throws(
      () => primitive.tryReceiveMany(rx, 50, 10),
      { code: 'AMIX_ERR_BUFFER_TOO_SMALL' },
      'then the large one is refused',
    );
    t.equal(primitive.stats(rx).pending, 2, 'and stays queued, with the one after it');
    t.same(
      primitive.tryReceiveMany(rx, 1000, 10).map((m) => m.length),
      [100, 8],
      'a large enough limit takes both',
    );
    t.throws(() => primitive.trySendMany(rx as unknown as SenderHandle, [message(0, 1)]), {
      code: 'AMIX_ERR_INVALID_ARG',
    });
    t.throws(() => primitive.tryReceiveMany(tx as unknown as ReceiverHandle, 10, 1), { code: 'AMIX_ERR_INVALID_ARG' });
  },
);

function header(kind: number, len: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32LE(len, 0);
  b[4] = kind;
  return b;
}

function dataFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([header(FrameKind.data, payload.length), payload]);
}

t.test('data frames split across two reads at every byte boundary arrive whole and in order', async (t) => {
  const runtimeDir = tempDir(t);
  const rx = (await primitive.create({ runtimeDir } as ProcessChannelOptions)) as ReceiverHandle;
  t.teardown(() => primitive.destroy(rx, new Error('teardown')));
  // A raw sender: hello, then the same three data frames (empty, 7 B, 64 B) once per split point.
  const socket = connect(rx.address.path);
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  const answered = new Promise<void>((r) => socket.once('data', () => r()));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const hello = Buffer.alloc(33);
  hello[0] = PROTOCOL_VERSION;
  randomBytes(16).copy(hello, 1);
  socket.write(Buffer.concat([header(FrameKind.hello, 33), hello]));
  await answered;
  const conn = [...rx.st.conns][0]!;
  // Resolves once the receiving socket has read `n` bytes in all: the next write is then a read of its own.
  const readUpTo = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (conn.socket.bytesRead < n) return;
        conn.socket.off('data', check);
        resolve();
      };
      conn.socket.on('data', check);
      check();
    });
  const payloads = [new Uint8Array(0), message(7, 7), message(64, 64)];
  const stream = Buffer.concat(payloads.map(dataFrame));
  let written = conn.socket.bytesRead;
  const kept: Uint8Array[] = [];
  for (let cut = 1; cut < stream.length; cut++) {
    socket.write(stream.subarray(0, cut));
    written += cut;
    await readUpTo(written);
    socket.write(stream.subarray(cut));
    written += stream.length - cut;
    await readUpTo(written);
    kept.push(...(await receiveAll(rx, 3)));
  }
  const splits = stream.length - 1;
  t.equal(kept.length, 3 * splits, `${splits} split points, three messages each`);
  t.ok(
    kept.every((m, i) => same(m, payloads[i % 3]!)),
    'every message whole and in order, read as it arrived',
  );
  t.equal(primitive.stats(rx).badFrames, 0, 'no frame was refused');
});

t.test('a message handed to the application is never overwritten by later reads', async (t) => {
  const { rx, tx } = await pair(t);
  const n = 30_000;
  const sizes = [1, 64, 700, 5000];
  const kept: Array<{ i: number; m: Uint8Array }> = [];
  let received = 0;
  const consumer = (async () => {
    while (received < n) {
      const batch = primitive.tryReceiveMany(rx, 1 << 20, 512);
      const got = batch.length > 0 ? batch : [await primitive.receive(rx, { maxBytes: 1 << 20 })];
      // Keep every 97th message as it came (no copy): later chunks must not change a byte of it.
      for (const m of got) if (received++ % 97 === 0) kept.push({ i: received - 1, m });
    }
  })();
  for (let i = 0; i < n; i++) {
    const m = message(i, sizes[i % sizes.length]!);
    if (!primitive.trySend(tx, m)) await primitive.send(tx, m);
  }
  await consumer;
  t.equal(received, n, 'every message arrived');
  const bad = kept.filter(({ i, m }) => !same(m, message(i, sizes[i % sizes.length]!)));
  t.equal(bad.length, 0, `${kept.length} messages kept after ${n} messages were read are unchanged`);
});
