// The seed's own scenarios (002) where the fabric once strayed from its letter:
// each test names the paragraph it follows. The items that vary by scope and
// need no more than a few points each run for thread, process and mixed links
// in fabric-letter-scopes.ts and fabric-instances-scopes.ts (tap runs the
// files in parallel).
import t from 'tap';
import { LINK_SCOPES, makeFabric, pointFixture, scopeOf, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';

for (const scope of LINK_SCOPES) {
  t.test(`002 ¶55 (${scope}): a call on hold takes no part in sends; the new call gets every message`, async (t) => {
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

// A broker exists only between a thread point and a process point: this one is mixed by nature.
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

// The broker service (002 ¶68: a broker is invisible to both points) runs per scope in fabric-letter-scopes.ts.
