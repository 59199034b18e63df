// The seed's own scenarios (002) where the fabric once strayed from its letter:
// each test names the paragraph it follows. The items that vary by scope and
// need no more than a few points each run for thread, process and mixed links
// in fabric-letter-scopes.ts (tap runs the two files in parallel).
import t from 'tap';
import { LINK_SCOPES, makeFabric, pointFixture, scopeOf, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';

for (const scope of LINK_SCOPES) {
  t.test(`002 ¶122 (${scope}): a call on hold takes no part in sends; the new call gets every message`, async (t) => {
    const { fabric } = await makeFabric(t);
    // A small window, so a held link that still took sends would fill and block P within a few messages.
    // Mixed: P is a thread point and Q, R process points, so both calls go through brokers.
    for (const name of ['P', 'Q', 'R'])
      fabric.register({
        name,
        location: pointFixture('relay'),
        characteristics: { scope: scopeOf(scope, name, ['P']), maxmsg: 4 },
      });
    const toP = await fabric.connect(null, 'P', { direction: 'aToB' });
    const first = await fabric.connect('P', 'Q', { direction: 'aToB' });
    const second = await fabric.connect('P', 'R', { direction: 'aToB', mode: 'hold' });
    t.equal(first.info.state, 'held', 'P put its first call on hold');
    const fromQ = await fabric.connect('Q', null, { direction: 'aToB' });
    const fromR = await fabric.connect('R', null, { direction: 'aToB' });

    const N = 50;
    const got: string[] = [];
    const receiving = (async () => {
      const signal = timeoutSignal(t, 20_000);
      while (got.length < N) got.push(text(await fromR.receive({ signal })));
    })();
    for (let i = 0; i < N; i++) await toP.send(Buffer.from(`m${i}`));
    await receiving;
    t.same(
      got,
      Array.from({ length: N }, (_, i) => `m${i}`),
      'every message reached the new call, in order',
    );
    const onHold = await fromQ.receive({ signal: timeoutSignal(t, 200) }).catch((e: { code?: string }) => e);
    t.equal((onHold as { code?: string }).code, 'AMIX_ERR_ABORTED', 'the held call received nothing');

    await second.close();
    t.equal(first.info.state, 'active', 'hanging up the new call restores the held one');
    await toP.send(Buffer.from('after'));
    t.equal(text(await fromQ.receive({ signal: timeoutSignal(t, 10_000) })), 'after', 'the restored call takes sends');
  });
}

t.test('a live broker: terminate(broker) ends it and its link; close() finishes within the grace period', async (t) => {
  const { fabric, events } = await makeFabric(t);
  const graceMs = 2000;
  fabric.register({ name: 'T', location: pointFixture('sink'), characteristics: { graceMs } });
  fabric.register({ name: 'P', location: pointFixture('sink'), characteristics: { scope: 'process', graceMs } });
  const first = await fabric.connect('T', 'P');
  const [broker] = first.info.brokers;
  t.ok(broker, 'the link has a broker');
  await fabric.terminate(broker!);
  t.notOk(fabric.hasLink(first.id), "the broker's link is gone");
  t.notOk(
    fabric.instances().some((i) => i.instance === broker),
    'the broker is gone',
  );
  t.ok(
    events.some((e) => e.type === 'instanceTerminated' && e.instance === broker),
    'its termination was reported',
  );

  const second = await fabric.connect('T', 'P');
  t.ok(second.info.brokers.length > 0, 'a new link gets a new broker');
  const started = Date.now();
  await fabric.close();
  t.ok(Date.now() - started < graceMs * 2, `close finished in ${Date.now() - started} ms`);
});

t.test('002 broker service: a broker is invisible to both points; the link still lists it', async (t) => {
  const { fabric } = await makeFabric(t);
  // CP-A is a thread point, CP-B a process point: every flow between them goes through a broker.
  fabric.register({ name: 'CP-A', location: pointFixture('relay') });
  fabric.register({
    name: 'CP-B',
    location: pointFixture('named'),
    data: { from: 'CP-A' },
    characteristics: { scope: 'process' },
  });
  const ab = await fabric.connect('CP-A', 'CP-B');
  t.ok(ab.info.brokers.length > 0, 'link.info lists the brokers');
  // The caller feeds CP-A, which relays to CP-B and to the caller; CP-B takes it with
  // receive({ from: 'CP-A' }) and answers with send({ to: 'CP-A' }), which CP-A relays on.
  const feed = await fabric.connect(null, 'CP-A', { direction: 'aToB' });
  const out = await fabric.connect('CP-A', null, { direction: 'aToB' });
  await feed.send(Buffer.from('hi'));
  const signal = timeoutSignal(t, 20_000);
  const seen: string[] = [];
  while (!seen.includes('CP-A>hi')) seen.push(text(await out.receive({ signal })));
  t.ok(seen.includes('CP-A>hi'), `CP-B received from CP-A by name and answered it by name (${seen.join(', ')})`);
});

t.test('002 broker service: receive({ from }) and send({ to }) name the far point through a broker', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'CP-A', location: pointFixture('sink') });
  fabric.register({ name: 'CP-B', location: pointFixture('sink'), characteristics: { scope: 'process' } });
  await fabric.connect('CP-A', 'CP-B');
  const a = fabric.instance('CP-A');
  const b = fabric.instance('CP-B');
  t.same(
    [...a.senderList, ...a.receiverList].map((e) => e.peer),
    ['CP-B', 'CP-B'],
    "both of CP-A's lists name CP-B",
  );
  t.same(
    [...b.senderList, ...b.receiverList].map((e) => e.peer),
    ['CP-A', 'CP-A'],
    "both of CP-B's lists name CP-A",
  );
});
