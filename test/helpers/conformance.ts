// The primitive contract suite: any registered primitive must pass it. Each
// primitive's test file calls `conformance()` with its registry and name;
// a primitive the host cannot run is skipped by its caller with a warning.
import type { Test } from 'tap';
import type { Channel, ChannelOptions, PrimitiveRegistry } from '../../dist/lib/index.js';

/** What the suite runs against. */
export interface ConformanceTarget {
  /** The registered primitive name. */
  name: string;
  /** Makes a fresh registry for each case (closed by the suite). */
  registry: () => PrimitiveRegistry;
  /** Options for the receiving end (sizes, marks, runtimeDir). */
  options?: ChannelOptions;
}

async function pair(
  t: Test,
  target: ConformanceTarget,
  extra: ChannelOptions = {},
): Promise<{ rx: Channel; tx: Channel }> {
  const reg = target.registry();
  t.teardown(() => reg.close());
  const rx = await reg.open(target.name, { ...target.options, ...extra });
  t.teardown(() => rx.destroy());
  const tx = await reg.open(target.name, { ...target.options, ...extra, address: rx.address });
  t.teardown(() => tx.destroy());
  await tx.connect();
  return { rx, tx };
}

/** Like AbortSignal.timeout, but its timer is ref'd, so the test stays alive while it waits. */
export function timeoutSignal(t: Test, ms: number): AbortSignal {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`timed out after ${ms} ms`)), ms);
  t.teardown(() => clearTimeout(timer));
  return ac.signal;
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 31) & 0xff;
  return b;
}

/** Run the contract suite for one primitive as subtests of `t`. */
export function conformance(t: Test, target: ConformanceTarget): void {
  t.test(`${target.name}: delivers messages in order with their sizes intact`, async (t) => {
    const { rx, tx } = await pair(t, target);
    const sizes = [0, 1, 7, 8, 63, 64, 65, 1000, 4096, 65536, 3];
    const n = 2000;
    const sending = (async () => {
      for (let i = 0; i < n; i++) {
        const size = sizes[i % sizes.length]!;
        const msg = bytes(size, i);
        if (size >= 4) new DataView(msg.buffer).setUint32(0, i);
        await tx.send(msg);
      }
    })();
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const got = await rx.receive();
      const size = sizes[i % sizes.length]!;
      const want = bytes(size, i);
      if (size >= 4) new DataView(want.buffer).setUint32(0, i);
      if (Buffer.compare(Buffer.from(got), Buffer.from(want)) !== 0) bad++;
    }
    await sending;
    t.equal(bad, 0, `all ${n} messages arrived in order, byte for byte`);
  });

  t.test(`${target.name}: the sender's buffer may be reused after send`, async (t) => {
    const { rx, tx } = await pair(t, target);
    const buf = Buffer.from('first');
    await tx.send(buf);
    buf.write('XXXXX');
    await tx.send(Buffer.from('second'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'first', 'first message unchanged');
    t.equal(Buffer.from(await rx.receive()).toString(), 'second', 'second message');
  });

  t.test(`${target.name}: an oversize send rejects with AMIX_ERR_MESSAGE_TOO_LARGE`, async (t) => {
    const { rx, tx } = await pair(t, target, { maxMessageBytes: 1024 });
    await t.rejects(
      tx.send(new Uint8Array(1025)),
      { code: 'AMIX_ERR_MESSAGE_TOO_LARGE' },
      'one byte over the channel maximum',
    );
    await tx.send(new Uint8Array(1024));
    t.equal((await rx.receive()).length, 1024, 'a message at the maximum still passes');
  });

  t.test(
    `${target.name}: an undersized receive rejects with AMIX_ERR_BUFFER_TOO_SMALL and keeps the message`,
    async (t) => {
      const { rx, tx } = await pair(t, target);
      await tx.send(bytes(100, 1));
      await t.rejects(rx.receive({ maxBytes: 99 }), { code: 'AMIX_ERR_BUFFER_TOO_SMALL' }, 'maxBytes one short');
      const got = await rx.receive({ maxBytes: 100 });
      t.equal(got.length, 100, 'the message is still there, at its actual size');
    },
  );

  t.test(`${target.name}: each end refuses the other end's operation`, async (t) => {
    const { rx, tx } = await pair(t, target);
    await t.rejects(rx.send(new Uint8Array(1)), { code: 'AMIX_ERR_INVALID_ARG' }, 'send on a receiving end');
    await t.rejects(tx.receive(), { code: 'AMIX_ERR_INVALID_ARG' }, 'receive on a sending end');
    await t.rejects(
      tx.send('text' as unknown as Uint8Array),
      { code: 'AMIX_ERR_INVALID_ARG' },
      'a string is not bytes',
    );
  });

  t.test(`${target.name}: destroy wakes a pending receive with AMIX_ERR_LINK_CLOSED`, async (t) => {
    const { rx } = await pair(t, target);
    const pending = rx.receive();
    await rx.destroy(new Error('test teardown'));
    await t.rejects(pending, { code: 'AMIX_ERR_LINK_CLOSED' }, 'the waiting receive is woken');
    t.ok(await rx.closed, 'closed resolves with the reason');
  });

  t.test(`${target.name}: close is graceful and idempotent; work after close is refused`, async (t) => {
    const { rx, tx } = await pair(t, target);
    await tx.send(Buffer.from('last'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'last', 'message sent before close arrives');
    await Promise.all([tx.close(), tx.close()]);
    await tx.close();
    t.equal(await tx.closed, undefined, 'a graceful close resolves closed with no reason');
    await t.rejects(tx.send(new Uint8Array(1)), { code: 'AMIX_ERR_CLOSED' }, 'send after close');
    await rx.close();
    await t.rejects(rx.receive(), { code: 'AMIX_ERR_LINK_CLOSED' }, 'receive after close');
  });

  t.test(`${target.name}: for await ends on close, and break does not close`, async (t) => {
    const { rx, tx } = await pair(t, target);
    for (const s of ['a', 'b', 'c']) await tx.send(Buffer.from(s));
    const seen: string[] = [];
    for await (const m of rx) {
      seen.push(Buffer.from(m).toString());
      if (seen.length === 1) break;
    }
    t.ok(rx.isOpen, 'break left the channel open');
    const rest = (async () => {
      for await (const m of rx) seen.push(Buffer.from(m).toString());
    })();
    while (seen.length < 3) await new Promise((r) => setImmediate(r));
    await rx.close();
    await rest;
    t.same(seen, ['a', 'b', 'c'], 'iteration saw every message and ended on close');
  });

  t.test(`${target.name}: an aborted receive rejects with AMIX_ERR_ABORTED and the channel stays usable`, async (t) => {
    const { rx, tx } = await pair(t, target);
    const ac = new AbortController();
    const pending = rx.receive({ signal: ac.signal });
    ac.abort(new Error('changed my mind'));
    await t.rejects(pending, { code: 'AMIX_ERR_ABORTED', name: 'AbortError' }, 'abort rejects the receive');
    await tx.send(Buffer.from('after'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'after', 'next message is delivered');
  });

  t.test(`${target.name}: suspend holds the sender until resume`, async (t) => {
    const { rx, tx } = await pair(t, target);
    await tx.suspend();
    t.ok(tx.isSuspended, 'the sending end reports suspended');
    const sent = tx.send(Buffer.from('held'));
    await t.rejects(
      rx.receive({ signal: timeoutSignal(t, 100) }),
      { code: 'AMIX_ERR_ABORTED' },
      'nothing arrives while suspended',
    );
    await tx.resume();
    await sent;
    t.equal(Buffer.from(await rx.receive()).toString(), 'held', 'the held message arrives after resume');
  });

  t.test(`${target.name}: sendMany and receiveMany keep order, in batches where the primitive can`, async (t) => {
    const { rx, tx } = await pair(t, target);
    const msgs = Array.from({ length: 500 }, (_, i) => Buffer.from(`m${i}`));
    const sending = tx.sendMany(msgs);
    const got: string[] = [];
    let batches = 0;
    while (got.length < msgs.length) {
      const batch = await rx.receiveMany({ maxCount: 100 });
      t.ok(batch.length >= 1 && batch.length <= 100, 'a batch holds 1 to maxCount messages');
      batches++;
      for (const m of batch) got.push(Buffer.from(m).toString());
    }
    await sending;
    t.same(
      got,
      msgs.map((m) => m.toString()),
      `all ${msgs.length} in order over ${batches} batches`,
    );
    await t.rejects(rx.receiveMany({ maxCount: 0 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'maxCount must be positive');
  });

  t.test(
    `${target.name}: sendMany into a full channel stops at maxmsg, then finishes in order as the receiver drains`,
    async (t) => {
      const { rx, tx } = await pair(t, target, { maxmsg: 8, minmsg: 2 });
      const msgs = Array.from({ length: 200 }, (_, i) => Buffer.from(`n${i}`));
      let done = false;
      const sending = tx.sendMany(msgs).then(() => {
        done = true;
      });
      // Nothing is received yet: the sender cannot have got past the receiver's window.
      const first = await rx.receive();
      t.notOk(done, 'sendMany has not finished while the receiver holds at most maxmsg');
      const got = [Buffer.from(first).toString()];
      while (got.length < msgs.length)
        for (const m of await rx.receiveMany({ maxCount: 7 })) got.push(Buffer.from(m).toString());
      await sending;
      t.same(
        got,
        msgs.map((m) => m.toString()),
        'all 200 in order',
      );
    },
  );

  t.test(`${target.name}: cycle runs on an open sending end`, async (t) => {
    const { tx } = await pair(t, target);
    await t.resolves(tx.cycle(), 'cycle succeeds');
  });

  t.test(`${target.name}: Symbol.asyncDispose closes the channel`, async (t) => {
    const { rx, tx } = await pair(t, target);
    {
      await using _tx = tx;
    }
    t.notOk(tx.isOpen, 'disposed at the end of the block');
    t.ok(rx.isOpen, 'the other end is not closed by it');
  });
}
