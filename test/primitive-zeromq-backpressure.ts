// Backpressure end to end on the zeromq primitive: the receiving end's
// maxmsg/minmsg hold across the socket through credit frames, and the
// sending end applies its discard policy at zero credit.
import t from 'tap';
import type { Test } from 'tap';
import { PrimitiveRegistry, type Channel, type ChannelEvent } from '../dist/lib/index.js';
import type { ZeromqStats } from '../dist/primitives/zeromq.js';

t.setTimeout(60_000);

const MAXMSG = 8;
const MINMSG = 2;

async function pair(t: Test, discard?: string): Promise<{ rx: Channel; tx: Channel; events: ChannelEvent[] }> {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('zeromq', { maxmsg: MAXMSG, minmsg: MINMSG });
  t.teardown(() => rx.destroy());
  const tx = await reg.open('zeromq', { address: rx.address, ...(discard ? { discard: discard as never } : {}) });
  t.teardown(() => tx.destroy());
  const events: ChannelEvent[] = [];
  tx.on('event', (e: ChannelEvent) => events.push(e));
  await tx.connect();
  return { rx, tx, events };
}

const msg = (i: number) => Buffer.from(`m${i}`);
const text = (b: Uint8Array) => Buffer.from(b).toString();

t.test('block: the sender stops at maxmsg pending and resumes when the receiver is down to minmsg', async (t) => {
  const { rx, tx, events } = await pair(t);
  for (let i = 0; i < MAXMSG; i++) await tx.send(msg(i));
  t.ok(
    events.some((e) => e.type === 'suspended'),
    'suspended emitted at maxmsg',
  );
  let ninthDone = false;
  const ninth = tx.send(msg(MAXMSG)).then(() => {
    ninthDone = true;
  });
  await tx.cycle();
  t.equal(rx.stats().pending, MAXMSG, 'the receiver holds exactly maxmsg');
  t.notOk(ninthDone, 'the next send waits');
  for (let i = 0; i < MAXMSG - MINMSG - 1; i++) t.equal(text(await rx.receive()), `m${i}`, `m${i} in order`);
  await tx.cycle();
  t.notOk(ninthDone, `still waiting with ${MINMSG + 1} pending (above minmsg)`);
  t.equal(text(await rx.receive()), `m${MAXMSG - MINMSG - 1}`, 'down to minmsg');
  await ninth;
  t.ok(
    events.some((e) => e.type === 'resumed'),
    'resumed emitted',
  );
  for (let i = MAXMSG - MINMSG; i <= MAXMSG; i++) t.equal(text(await rx.receive()), `m${i}`, `m${i} in order`);
  t.equal((tx.stats() as ZeromqStats).suspensions, 1, 'one suspension counted');
});

t.test('reject: a send at zero credit rejects with AMIX_ERR_QUEUE_FULL and is counted', async (t) => {
  const { rx, tx } = await pair(t, 'reject');
  for (let i = 0; i < MAXMSG; i++) await tx.send(msg(i));
  await t.rejects(tx.send(msg(99)), { code: 'AMIX_ERR_QUEUE_FULL' }, 'refused at maxmsg');
  t.equal(tx.stats().rejected, 1, 'counted as rejected');
  for (let i = 0; i < MAXMSG; i++) t.equal(text(await rx.receive()), `m${i}`, `m${i} arrives`);
  await tx.cycle();
  await tx.send(msg(100));
  t.equal(text(await rx.receive()), 'm100', 'sending works again once credit is back');
});

t.test('dropNewest: sends at zero credit are dropped, counted and reported', async (t) => {
  const { rx, tx, events } = await pair(t, 'dropNewest');
  for (let i = 0; i < MAXMSG + 3; i++) await tx.send(msg(i));
  t.equal(tx.stats().dropped, 3, 'three dropped');
  t.equal(events.filter((e) => e.type === 'dropped').length, 3, 'three dropped events');
  await tx.cycle();
  const got: string[] = [];
  for (let m = rx.tryReceive(); m !== undefined; m = rx.tryReceive()) got.push(text(m));
  t.same(
    got,
    Array.from({ length: MAXMSG }, (_, i) => `m${i}`),
    'the first maxmsg arrived, the newest were dropped',
  );
});

t.test('dropOldest: the oldest messages still waiting at the sender make room', async (t) => {
  const { rx, tx } = await pair(t, 'dropOldest');
  for (let i = 0; i < MAXMSG + MAXMSG + 2; i++) await tx.send(msg(i));
  t.equal(tx.stats().dropped, 2, 'two dropped');
  const got: string[] = [];
  while (got.length < MAXMSG + MAXMSG) got.push(text(await rx.receive()));
  const want = [
    ...Array.from({ length: MAXMSG }, (_, i) => `m${i}`),
    ...Array.from({ length: MAXMSG }, (_, i) => `m${MAXMSG + 2 + i}`),
  ];
  t.same(got, want, 'messages already on the wire arrive; of the waiting ones the two oldest were dropped');
});

t.test('destroy wakes a send blocked on credit with AMIX_ERR_LINK_CLOSED', async (t) => {
  const { tx } = await pair(t);
  for (let i = 0; i < MAXMSG; i++) await tx.send(msg(i));
  const blocked = tx.send(msg(MAXMSG));
  await tx.destroy(new Error('going away'));
  await t.rejects(blocked, { code: 'AMIX_ERR_LINK_CLOSED' }, 'the blocked send is woken');
});

t.test('a suspended receiving end grants no credit until resumed', async (t) => {
  const { rx, tx } = await pair(t);
  for (let i = 0; i < MAXMSG; i++) await tx.send(msg(i));
  await rx.suspend();
  let done = false;
  const next = tx.send(msg(MAXMSG)).then(() => {
    done = true;
  });
  for (let i = 0; i < MAXMSG; i++) await rx.receive();
  await tx.cycle();
  t.notOk(done, 'the sender stays stopped while the receiver is suspended, although its queue is empty');
  await rx.resume();
  await next;
  t.equal(text(await rx.receive()), `m${MAXMSG}`, 'flow restarts after resume');
});

t.test('an aborted blocked send rejects with AMIX_ERR_ABORTED and is not sent', async (t) => {
  const { rx, tx } = await pair(t);
  for (let i = 0; i < MAXMSG; i++) await tx.send(msg(i));
  const ac = new AbortController();
  const p = tx.send(msg(500), { signal: ac.signal });
  ac.abort();
  await t.rejects(p, { code: 'AMIX_ERR_ABORTED' }, 'aborted');
  const after = tx.send(msg(501));
  const got: string[] = [];
  while (got.length < MAXMSG + 1) got.push(text(await rx.receive()));
  await after;
  t.notOk(got.includes('m500'), 'the aborted message never arrived');
  t.equal(got.at(-1), 'm501', 'the next one did');
});

t.test(
  'a receiving end that closes right after the last message acknowledges it: the sender closes with nothing lost',
  async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const rx = await reg.open('zeromq');
    t.teardown(() => rx.destroy());
    // A short timeout: without the receiver's last acknowledgement the close gives up and counts the messages lost.
    const tx = await reg.open('zeromq', { address: rx.address, zeromq: { closeTimeoutMs: 300 } });
    t.teardown(() => tx.destroy());
    await tx.connect();
    const n = 100; // far below minmsg: no credit (and so no acknowledgement) is sent along the way
    for (let i = 0; i < n; i++) await tx.send(msg(i));
    for (let i = 0; i < n; i++) t.equal(text(await rx.receive()), `m${i}`);
    // The receiver is gone before the sender's closing PING can reach it.
    await rx.close();
    await tx.close();
    t.equal((tx.stats() as ZeromqStats).lost, 0, 'every message counted as delivered');
    t.equal(tx.stats().sent, n);
  },
);
