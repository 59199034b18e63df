// Endpoint.messages(): the iterator a point reads its receiver list with.
// Ready messages come in order from the synchronous fast path, waiting ones
// through receive; it ends (done) when the endpoint closes, rethrows any
// other error and is finished after it, and `break` leaves the endpoint open.
import t, { type Test } from 'tap';
import { Endpoint, ErrorCode, PrimitiveRegistry, type Channel } from '../dist/lib/index.js';

/** A connected queueConditionThread ring, torn down with the test. */
async function ring(t: Test): Promise<{ rx: Channel; tx: Channel }> {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionThread');
  t.teardown(() => rx.destroy());
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  t.teardown(() => tx.destroy());
  await tx.connect();
  return { rx, tx };
}

/** An endpoint reading a ring on link L1. */
async function linked(t: Test): Promise<{ ep: Endpoint; tx: Channel; rx: Channel }> {
  const { rx, tx } = await ring(t);
  const ep = new Endpoint('reader');
  ep.addReceiver('L1', 'writer', rx);
  t.teardown(() => ep.close());
  return { ep, tx, rx };
}

const text = (b: Uint8Array): string => Buffer.from(b).toString();

t.test('ready and later messages arrive in order; break leaves the endpoint readable', async (t) => {
  const { ep, tx } = await linked(t);
  for (let i = 0; i < 50; i++) await tx.send(Buffer.from(`m${i}`));
  const got: string[] = [];
  // The first 50 are ready (fast path); the rest are sent while the loop waits.
  const later = (async () => {
    for (let i = 50; i < 100; i++) await tx.send(Buffer.from(`m${i}`));
  })();
  for await (const m of ep.messages()) {
    got.push(text(m.data));
    t.equal(m.from, 'writer');
    if (got.length === 100) break;
  }
  await later;
  t.same(
    got,
    Array.from({ length: 100 }, (_, i) => `m${i}`),
    '100 in order',
  );
  await tx.send(Buffer.from('after'));
  t.equal(text((await ep.receive()).data), 'after', 'the endpoint still delivers after break');
});

t.test('closing the endpoint ends the iteration (done), and next() stays done', async (t) => {
  const { ep, tx } = await linked(t);
  await tx.send(Buffer.from('one'));
  const it = ep.messages();
  t.same(text((await it.next()).value!.data), 'one');
  const waiting = it.next();
  await ep.close();
  t.same(await waiting, { value: undefined, done: true }, 'a waiting next() ends with done');
  t.same(await it.next(), { value: undefined, done: true }, 'and stays done');
});

t.test('an abort rejects next() with AMIX_ERR_ABORTED and finishes the iterator', async (t) => {
  const { ep } = await linked(t);
  const ac = new AbortController();
  const it = ep.messages({ signal: ac.signal });
  const waiting = it.next();
  ac.abort();
  await t.rejects(waiting, { code: ErrorCode.AMIX_ERR_ABORTED });
  t.same(await it.next(), { value: undefined, done: true }, 'finished after the error');
});

t.test('a message above maxBytes rejects with AMIX_ERR_BUFFER_TOO_SMALL on the fast path too', async (t) => {
  const { ep, tx } = await linked(t);
  await tx.send(Buffer.alloc(64));
  const it = ep.messages({ maxBytes: 8 });
  await t.rejects(it.next(), { code: ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL });
  t.same(await it.next(), { value: undefined, done: true });
});

t.test('a loop over messages that are always ready still lets the event loop turn', async (t) => {
  const n = 5000;
  for (const over of ['endpoint', 'channel'] as const) {
    const { ep, rx, tx } = over === 'endpoint' ? await linked(t) : { ep: undefined, ...(await ring(t)) };
    for (let i = 0; i < n; i++) await tx.send(Buffer.from(`m${i}`));
    // Every message is ready before the loop starts: without a turn of the event loop now and then,
    // neither the immediate nor the timer could run until all of them had been read.
    let k = 0;
    let immediateAt = -1;
    let timerAt = -1;
    setImmediate(() => (immediateAt = k));
    setTimeout(() => (timerAt = k), 0);
    const source = ep ? ep.messages() : rx.messages();
    for await (const _m of source) {
      if (++k === n) break;
    }
    t.ok(
      immediateAt > 0 && immediateAt <= 1024,
      `${over}: an immediate ran after ${immediateAt} of ${n} ready messages`,
    );
    t.ok(timerAt > 0 && timerAt < n, `${over}: a timer ran after ${timerAt} of them`);
  }
});

// A receive that settles without a turn of the event loop (a thread ring's receive that spun, say) counts
// toward the same run: a point that takes messages that way and sends as it goes (a process link packs
// its frames until the turn ends) once starved its own sends until its sender stopped (soak R7-daemon).
t.test('messages a receive got without a turn of the event loop count toward the yield too', async (t) => {
  const { messageIterator } = await import('../dist/lib/fabric/endpointParts.js');
  const n = 5000;
  let given = 0;
  const it = messageIterator<number>(
    () => undefined,
    () => Promise.resolve(given++),
  );
  let k = 0;
  let immediateAt = -1;
  setImmediate(() => (immediateAt = k));
  for await (const _m of it) {
    if (++k === n) break;
  }
  t.ok(immediateAt > 0 && immediateAt <= 1024, `an immediate ran after ${immediateAt} of ${n} received messages`);
});

t.test('a loop of receive() over messages that are always ready lets the event loop turn too', async (t) => {
  const n = 5000;
  const { ep, tx } = await linked(t);
  for (let i = 0; i < n; i++) await tx.send(Buffer.from(`m${i}`));
  let k = 0;
  let immediateAt = -1;
  setImmediate(() => (immediateAt = k));
  let inOrder = true;
  for (; k < n; k++) inOrder &&= text((await ep.receive()).data) === `m${k}`;
  t.ok(inOrder, `all ${n} in order`);
  t.ok(immediateAt > 0 && immediateAt <= 1025, `an immediate ran after ${immediateAt} of ${n} ready messages`);
});
