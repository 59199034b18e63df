/**
 * The primitive contract suite's cases: what every registered primitive must
 * do, written against a small assertion context ({@link ConformanceContext})
 * so that it runs without a test framework (`amix conformance`) as well as
 * under tap (amix's own tests, through an adapter).
 *
 * @module
 */
import type { Channel } from './channel.js';
import type { ChannelOptions } from './primitive.js';
import type { PrimitiveRegistry } from './registry.js';

/** What the suite runs against. */
export interface ConformanceTarget {
  /** The registered primitive name. */
  name: string;
  /** Makes a fresh registry for each case (closed by the case's teardown). */
  registry: () => PrimitiveRegistry;
  /** Options for both ends (sizes, marks, runtimeDir). */
  options?: ChannelOptions;
}

/** The pattern a rejection must match: each key equal on the error (e.g. `{ code: 'AMIX_ERR_CLOSED' }`). */
export type ErrorPattern = Readonly<Record<string, unknown>>;

/**
 * What a case gets to assert with and clean up through. Under amix's own
 * harness a failed assertion throws (the case fails on the first one); an
 * adapter may instead report each one to its framework.
 */
export interface ConformanceContext {
  /** Run `fn` when the case ends, pass or fail (last registered first under amix's harness). */
  teardown(fn: () => unknown): void;
  /** `actual === expected` (Object.is). */
  equal(actual: unknown, expected: unknown, message: string): void;
  /** Deep equality (node:util isDeepStrictEqual). */
  same(actual: unknown, expected: unknown, message: string): void;
  /** `value` is truthy. */
  ok(value: unknown, message: string): void;
  /** `value` is falsy. */
  notOk(value: unknown, message: string): void;
  /** `promise` rejects with an error matching `pattern`. */
  rejects(promise: Promise<unknown>, pattern: ErrorPattern, message: string): Promise<void>;
  /** `promise` resolves. */
  resolves(promise: Promise<unknown>, message: string): Promise<void>;
  /** Aborts when the case has run out of time. */
  readonly signal: AbortSignal;
  /** An AbortSignal that aborts after `ms` (its timer is ref'd and cleared at teardown). */
  timeoutSignal(ms: number): AbortSignal;
}

/** One case of the suite. */
export interface ConformanceCase {
  /** `<primitive>: what it checks`. */
  readonly name: string;
  /** Run it; rejects (or fails an assertion) when the primitive breaks the contract. */
  run(c: ConformanceContext): Promise<void>;
}

/** A receiving and a sending end of one fresh channel, both destroyed (and the registry closed) at teardown. */
async function pair(
  c: ConformanceContext,
  target: ConformanceTarget,
  extra: ChannelOptions = {},
): Promise<{ rx: Channel; tx: Channel }> {
  const reg = target.registry();
  c.teardown(() => reg.close());
  const rx = await reg.open(target.name, { ...target.options, ...extra });
  c.teardown(() => rx.destroy());
  const tx = await reg.open(target.name, { ...target.options, ...extra, address: rx.address });
  c.teardown(() => tx.destroy());
  await tx.connect();
  return { rx, tx };
}

/**
 * Mark a promise that runs beside the case's own awaits as handled: when an
 * assertion fails first, the case ends and its teardown destroys the
 * channel, which rejects this one; that must not become an unhandled
 * rejection (it would end `amix conformance`'s process). It is still awaited
 * on the passing path.
 */
function beside<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 31) & 0xff;
  return b;
}

const text = (m: Uint8Array): string => Buffer.from(m).toString();

/** The contract suite's cases for one primitive, in the order they run. */
export function conformanceCases(target: ConformanceTarget): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  const add = (what: string, run: (c: ConformanceContext) => Promise<void>): void => {
    cases.push({ name: `${target.name}: ${what}`, run });
  };

  add('delivers messages in order with their sizes intact', async (c) => {
    const { rx, tx } = await pair(c, target);
    const sizes = [0, 1, 7, 8, 63, 64, 65, 1000, 4096, 65536, 3];
    const n = 2000;
    const sending = beside(
      (async () => {
        for (let i = 0; i < n; i++) {
          const size = sizes[i % sizes.length]!;
          const msg = bytes(size, i);
          if (size >= 4) new DataView(msg.buffer).setUint32(0, i);
          await tx.send(msg);
        }
      })(),
    );
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const got = await rx.receive();
      const size = sizes[i % sizes.length]!;
      const want = bytes(size, i);
      if (size >= 4) new DataView(want.buffer).setUint32(0, i);
      if (Buffer.compare(Buffer.from(got), Buffer.from(want)) !== 0) bad++;
    }
    await sending;
    c.equal(bad, 0, `all ${n} messages arrived in order, byte for byte`);
  });

  add("the sender's buffer may be reused after send", async (c) => {
    const { rx, tx } = await pair(c, target);
    const buf = Buffer.from('first');
    await tx.send(buf);
    buf.write('XXXXX');
    await tx.send(Buffer.from('second'));
    c.equal(text(await rx.receive()), 'first', 'first message unchanged');
    c.equal(text(await rx.receive()), 'second', 'second message');
  });

  add('an oversize send rejects with AMIX_ERR_MESSAGE_TOO_LARGE', async (c) => {
    const { rx, tx } = await pair(c, target, { maxMessageBytes: 1024 });
    await c.rejects(
      tx.send(new Uint8Array(1025)),
      { code: 'AMIX_ERR_MESSAGE_TOO_LARGE' },
      'one byte over the channel maximum',
    );
    await tx.send(new Uint8Array(1024));
    c.equal((await rx.receive()).length, 1024, 'a message at the maximum still passes');
  });

  add('an undersized receive rejects with AMIX_ERR_BUFFER_TOO_SMALL and keeps the message', async (c) => {
    const { rx, tx } = await pair(c, target);
    await tx.send(bytes(100, 1));
    await c.rejects(rx.receive({ maxBytes: 99 }), { code: 'AMIX_ERR_BUFFER_TOO_SMALL' }, 'maxBytes one short');
    const got = await rx.receive({ maxBytes: 100 });
    c.equal(got.length, 100, 'the message is still there, at its actual size');
  });

  add("each end refuses the other end's operation", async (c) => {
    const { rx, tx } = await pair(c, target);
    await c.rejects(rx.send(new Uint8Array(1)), { code: 'AMIX_ERR_INVALID_ARG' }, 'send on a receiving end');
    await c.rejects(tx.receive(), { code: 'AMIX_ERR_INVALID_ARG' }, 'receive on a sending end');
    await c.rejects(
      tx.send('text' as unknown as Uint8Array),
      { code: 'AMIX_ERR_INVALID_ARG' },
      'a string is not bytes',
    );
  });

  add('destroy wakes a pending receive with AMIX_ERR_LINK_CLOSED', async (c) => {
    const { rx } = await pair(c, target);
    const pending = beside(rx.receive());
    await rx.destroy(new Error('test teardown'));
    await c.rejects(pending, { code: 'AMIX_ERR_LINK_CLOSED' }, 'the waiting receive is woken');
    c.ok(await rx.closed, 'closed resolves with the reason');
  });

  add('close is graceful and idempotent; work after close is refused', async (c) => {
    const { rx, tx } = await pair(c, target);
    await tx.send(Buffer.from('last'));
    c.equal(text(await rx.receive()), 'last', 'message sent before close arrives');
    await Promise.all([tx.close(), tx.close()]);
    await tx.close();
    c.equal(await tx.closed, undefined, 'a graceful close resolves closed with no reason');
    await c.rejects(tx.send(new Uint8Array(1)), { code: 'AMIX_ERR_CLOSED' }, 'send after close');
    await rx.close();
    await c.rejects(rx.receive(), { code: 'AMIX_ERR_LINK_CLOSED' }, 'receive after close');
  });

  add('for await ends on close, and break does not close', async (c) => {
    const { rx, tx } = await pair(c, target);
    for (const s of ['a', 'b', 'c']) await tx.send(Buffer.from(s));
    const seen: string[] = [];
    for await (const m of rx) {
      seen.push(text(m));
      if (seen.length === 1) break;
    }
    c.ok(rx.isOpen, 'break left the channel open');
    const rest = beside(
      (async () => {
        for await (const m of rx) seen.push(text(m));
      })(),
    );
    // Bounded by the case's signal: a primitive that loses a message fails here on time, not never.
    while (seen.length < 3 && !c.signal.aborted) await new Promise((r) => setImmediate(r));
    await rx.close();
    await rest;
    c.same(seen, ['a', 'b', 'c'], 'iteration saw every message and ended on close');
  });

  add('an aborted receive rejects with AMIX_ERR_ABORTED and the channel stays usable', async (c) => {
    const { rx, tx } = await pair(c, target);
    const ac = new AbortController();
    const pending = beside(rx.receive({ signal: ac.signal }));
    ac.abort(new Error('changed my mind'));
    await c.rejects(pending, { code: 'AMIX_ERR_ABORTED', name: 'AbortError' }, 'abort rejects the receive');
    await tx.send(Buffer.from('after'));
    c.equal(text(await rx.receive()), 'after', 'next message is delivered');
  });

  add('suspend holds the sender until resume', async (c) => {
    const { rx, tx } = await pair(c, target);
    await tx.suspend();
    c.ok(tx.isSuspended, 'the sending end reports suspended');
    const sent = beside(tx.send(Buffer.from('held')));
    await c.rejects(
      rx.receive({ signal: c.timeoutSignal(100) }),
      { code: 'AMIX_ERR_ABORTED' },
      'nothing arrives while suspended',
    );
    await tx.resume();
    await sent;
    c.equal(text(await rx.receive()), 'held', 'the held message arrives after resume');
  });

  add('sendMany and receiveMany keep order, in batches where the primitive can', async (c) => {
    const { rx, tx } = await pair(c, target);
    const msgs = Array.from({ length: 500 }, (_, i) => Buffer.from(`m${i}`));
    const sending = beside(tx.sendMany(msgs));
    const got: string[] = [];
    let batches = 0;
    while (got.length < msgs.length) {
      const batch = await rx.receiveMany({ maxCount: 100 });
      c.ok(batch.length >= 1 && batch.length <= 100, 'a batch holds 1 to maxCount messages');
      batches++;
      for (const m of batch) got.push(text(m));
    }
    await sending;
    c.same(
      got,
      msgs.map((m) => m.toString()),
      `all ${msgs.length} in order over ${batches} batches`,
    );
    await c.rejects(rx.receiveMany({ maxCount: 0 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'maxCount must be positive');
  });

  add('sendMany into a full channel stops at maxmsg, then finishes in order as the receiver drains', async (c) => {
    const { rx, tx } = await pair(c, target, { maxmsg: 8, minmsg: 2 });
    const msgs = Array.from({ length: 200 }, (_, i) => Buffer.from(`n${i}`));
    let done = false;
    const sending = beside(
      tx.sendMany(msgs).then(() => {
        done = true;
      }),
    );
    // Nothing is received yet: the sender cannot have got past the receiver's window.
    const first = await rx.receive();
    c.notOk(done, 'sendMany has not finished while the receiver holds at most maxmsg');
    const got = [text(first)];
    while (got.length < msgs.length) for (const m of await rx.receiveMany({ maxCount: 7 })) got.push(text(m));
    await sending;
    c.same(
      got,
      msgs.map((m) => m.toString()),
      'all 200 in order',
    );
  });

  add('seeded random sizes, contents and batching keep every message intact and in order', async (c) => {
    const { rx, tx } = await pair(c, target, { maxmsg: 32, minmsg: 8 });
    // Fixed seeds, one stream each for the contents, the sender and the receiver, so the shapes do not
    // depend on how the two loops interleave; xorshift32 is enough to vary sizes, bytes and batches.
    const prng = (seed: number) => (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const rand = prng(0x2545f491);
    const sendRand = prng(0x9e3779b9);
    const receiveRand = prng(0x85ebca6b);
    const n = 600;
    const msgs = Array.from({ length: n }, (_, i) => {
      const size = rand(4) === 0 ? rand(16384) : rand(64);
      const m = new Uint8Array(Math.max(size, 4));
      for (let k = 4; k < m.length; k++) m[k] = rand(256);
      new DataView(m.buffer).setUint32(0, i);
      return m;
    });
    const sending = beside(
      (async () => {
        for (let i = 0; i < n;) {
          const batch = msgs.slice(i, i + 1 + sendRand(20));
          if (sendRand(2) === 0) await tx.sendMany(batch);
          else for (const m of batch) await tx.send(m);
          i += batch.length;
        }
      })(),
    );
    let got = 0;
    let bad = 0;
    while (got < n) {
      const batch =
        receiveRand(2) === 0 ? await rx.receiveMany({ maxCount: 1 + receiveRand(50) }) : [await rx.receive()];
      for (const m of batch) if (Buffer.compare(Buffer.from(m), Buffer.from(msgs[got++]!)) !== 0) bad++;
    }
    await sending;
    c.equal(bad, 0, `all ${n} messages (0 B to 16 KiB, random bytes, random batches) arrived intact and in order`);
  });

  // The discard policies, checked by what holds for every primitive: where the count is kept (the sending end,
  // the receiving end, or state both share) and which waiting messages go first differ between transports.
  const dropped = (rx: Channel, tx: Channel): number => Math.max(rx.stats().dropped, tx.stats().dropped);
  const receiveN = async (rx: Channel, n: number): Promise<number[]> => {
    const got: number[] = [];
    while (got.length < n) got.push((await rx.receive())[0]!);
    return got;
  };

  add('discard reject: a send with no room rejects with AMIX_ERR_QUEUE_FULL, counted', async (c) => {
    const { rx, tx } = await pair(c, target, { maxmsg: 4, minmsg: 1, discard: 'reject' });
    let accepted = 0;
    let refusal: unknown;
    while (accepted < 64 && refusal === undefined) {
      try {
        await tx.send(Uint8Array.of(accepted));
        accepted++;
      } catch (err) {
        refusal = err;
      }
    }
    c.equal((refusal as { code?: unknown } | undefined)?.code, 'AMIX_ERR_QUEUE_FULL', 'a send past maxmsg is refused');
    c.ok(accepted >= 1 && accepted <= 4, `${accepted} accepted before the refusal, at most maxmsg 4`);
    c.ok(Math.max(rx.stats().rejected, tx.stats().rejected) >= 1, 'the refusal is counted in stats');
    c.same(
      await receiveN(rx, accepted),
      Array.from({ length: accepted }, (_, i) => i),
      'the accepted ones arrive, in order',
    );
  });

  add('discard dropNewest: sends past maxmsg resolve, the newest are dropped and counted', async (c) => {
    const { rx, tx } = await pair(c, target, { maxmsg: 4, minmsg: 1, discard: 'dropNewest' });
    for (let i = 0; i < 10; i++) await tx.send(Uint8Array.of(i));
    const n = dropped(rx, tx);
    c.ok(n >= 6, `${n} of 10 dropped: at most maxmsg 4 kept`);
    c.same(
      await receiveN(rx, 10 - n),
      Array.from({ length: 10 - n }, (_, i) => i),
      'the kept ones are the oldest, in order',
    );
  });

  add('discard dropOldest: sends past maxmsg resolve, older messages are dropped and counted', async (c) => {
    const { rx, tx } = await pair(c, target, { maxmsg: 4, minmsg: 1, discard: 'dropOldest' });
    for (let i = 0; i < 10; i++) await tx.send(Uint8Array.of(i));
    const n = dropped(rx, tx);
    c.ok(n >= 1 && n <= 6, `${n} of 10 dropped`);
    const got = await receiveN(rx, 10 - n);
    c.ok(
      got.every((v, i) => i === 0 || v > got[i - 1]!),
      `the kept ones arrive in order (${got.join(',')})`,
    );
    c.equal(got[got.length - 1], 9, 'the newest is kept');
  });

  add('cycle runs on an open sending end', async (c) => {
    const { tx } = await pair(c, target);
    await c.resolves(tx.cycle(), 'cycle succeeds');
  });

  add('Symbol.asyncDispose closes the channel', async (c) => {
    const { rx, tx } = await pair(c, target);
    {
      await using _tx = tx;
    }
    c.notOk(tx.isOpen, 'disposed at the end of the block');
    c.ok(rx.isOpen, 'the other end is not closed by it');
  });

  return cases;
}
