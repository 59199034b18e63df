// The seed's own scenarios (002) where the fabric once strayed from its letter:
// each test names the paragraph it follows, and runs for thread and process points.
import t from 'tap';
import { makeFabric, pointFixture, text } from './helpers/fabric.js';
import { timeoutSignal } from './helpers/conformance.js';
import { RECONNECT_FROM } from '../dist/lib/index.js';

for (const scope of ['thread', 'process'] as const) {
  t.test(`002 ¶122 (${scope}): a call on hold takes no part in sends; the new call gets every message`, async (t) => {
    const { fabric } = await makeFabric(t);
    // A small window, so a held link that still took sends would fill and block P within a few messages.
    const characteristics = { scope, maxmsg: 4 };
    for (const name of ['P', 'Q', 'R']) fabric.register({ name, location: pointFixture('relay'), characteristics });
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

for (const scope of ['thread', 'process'] as const) {
  t.test(`002 ¶698 (${scope}): RECONNECT sends a null message to a point that only sends`, async (t) => {
    const { fabric } = await makeFabric(t);
    fabric.register({ name: 'W', location: pointFixture('nullwatch'), characteristics: { scope } });
    // W's only link sends from W to the caller: nothing reaches W through a link.
    const fromW = await fabric.connect('W', null, { direction: 'aToB' });
    const [info] = await fabric.reconnect('W');
    t.equal(info!.state, 'running', 'the state is reported');
    t.equal(
      text(await fromW.receive({ signal: timeoutSignal(t, 10_000) })),
      `null size=0 from=${RECONNECT_FROM}`,
      'the point received a size-0 message from the fabric',
    );
  });
}
