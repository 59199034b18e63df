// Per-flow credit between peered daemons: a point on amixd B that stops
// reading holds up its own flow from A (the sender blocks, what A keeps for
// it stays within the flow window) and nothing else: another flow over the
// same conduit keeps delivering, in order. Real amixd processes, keyed
// peering. Before per-flow credit, B's data loop waited on the full link and
// every flow from A stopped with it (soak row R7-daemon).
import t from 'tap';
import { startDaemonPair } from '../dist/bench/soak/daemons.js';
import { FLOW_WINDOW } from '../dist/lib/remote/types.js';
import type { RemoteLinkInfo } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';

const u32 = (i: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
};

t.test('a stalled point on B stops its own flow from A only; another flow goes on', async (t) => {
  const pair = await startDaemonPair();
  t.teardown(() => pair.close());
  const reg = (c: typeof pair.a, name: string, fixture: string, data?: unknown) =>
    c.request('point.register', {
      registration: {
        name,
        location: pointFixture(fixture),
        characteristics: { scope: 'process' },
        ...(data === undefined ? {} : { data }),
      },
    });
  await reg(pair.b, 'stuck', 'gated', { holdMs: 3_600_000 });
  await reg(pair.b, 'back', 'relay');
  await reg(pair.a, 'toStuck', 'relay');
  await reg(pair.a, 'toBack', 'relay');
  // By name from A: B's points are found through the federated directory; both links cross the one conduit.
  const stuckLink = await pair.a.request<{ id: string }>('connect', { a: 'toStuck', b: 'stuck', direction: 'aToB' });
  await pair.a.request('connect', { a: 'toBack', b: 'back', direction: 'aToB' });
  const result = await pair.b.connect('back', null, { direction: 'aToB' });
  const intoStuck = await pair.a.connect(null, 'toStuck', { direction: 'aToB' });
  const intoBack = await pair.a.connect(null, 'toBack', { direction: 'aToB' });

  // Fill the stalled flow: sends are accepted until every window on the way is full, then block.
  let accepted = 0;
  const halt = new AbortController();
  const filling = (async () => {
    for (;;) {
      await intoStuck.send(u32(accepted), { signal: halt.signal });
      accepted++;
    }
  })().catch(() => {});
  t.teardown(() => halt.abort());
  const unacked = async (): Promise<number> => {
    const links = await pair.a.request<RemoteLinkInfo[]>('links');
    const rl = links.find((l) => l.id === stuckLink.id);
    return rl?.remote.flows[0]?.unacked ?? 0;
  };
  // No event says "the flow is full": look, bounded.
  for (const end = Date.now() + 30_000; (await unacked()) < FLOW_WINDOW;) {
    if (Date.now() > end) t.fail(`the stalled flow never filled its window (unacked ${await unacked()})`);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(await unacked(), FLOW_WINDOW, `A keeps exactly the flow window for the stalled flow (${FLOW_WINDOW})`);

  // The other flow over the same conduit: every message arrives, in order, twice over.
  const other = async (from: number, n: number): Promise<number[]> => {
    const got: number[] = [];
    const receiving = (async () => {
      while (got.length < n) {
        const m = await result.receive({ signal: AbortSignal.timeout(20_000) });
        got.push(new DataView(m.data.buffer, m.data.byteOffset).getUint32(0, true));
      }
    })();
    for (let i = from; i < from + n; i++) await intoBack.send(u32(i), { signal: AbortSignal.timeout(20_000) });
    await receiving;
    return got;
  };
  const N = 3000;
  const first = await other(0, N);
  t.equal(first.length, N, `all ${N} messages of the other flow arrived while the first stayed stalled`);
  t.ok(
    first.every((n, i) => n === i),
    'in order',
  );
  const blockedAt = accepted;
  const second = await other(N, N);
  t.ok(
    second.every((n, i) => n === N + i),
    `and ${N} more, in order`,
  );
  t.equal(accepted, blockedAt, `the stalled flow's sender stayed blocked meanwhile (${accepted} accepted in all)`);
  // The flow window at A plus the windows before it (the client's link into A, the point links).
  t.ok(accepted <= 3 * FLOW_WINDOW, `what the stalled flow accepted is bounded by the windows on its way`);
  t.equal(await unacked(), FLOW_WINDOW, 'the stalled flow still holds its window, no more');
  halt.abort();
  await filling;
});
