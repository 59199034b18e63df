// CAPS REPLACE with `overlap` (the new stage runs while the old one works off
// its queue) and the two fabric controls under it: a receiving end's fence
// (take nothing from one link until another is gone or sealed and empty)
// and LOAD's `start` (the instance runs before EXECUTE or REPLACE).
import t from 'tap';
import type { Test } from 'tap';
import type { Link } from '../dist/lib/index.js';
import { makeCaps, pipeline, STAGE } from './helpers/caps.js';
import { makeFabric, pointFixture } from './helpers/fabric.js';

/** Send from..n-1 as text, 20 every 10 ms: about 2,000 a second. */
async function pump(input: Link, n: number, from = 0): Promise<void> {
  for (let i = from; i < n; i++) {
    await input.send(Buffer.from(String(i)));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 10));
  }
}

interface Got {
  tags: string[];
  seqs: number[];
}

/** Receive n messages ("tag:seq"); resolve `first(tag)` waiters as each tag is first seen. */
async function take(output: Link, n: number, seen: Map<string, () => void>): Promise<Got> {
  const got: Got = { tags: [], seqs: [] };
  for (let k = 0; k < n; k++) {
    const text = Buffer.from((await output.receive()).data).toString();
    const colon = text.lastIndexOf(':');
    const tag = text.slice(0, colon);
    got.tags.push(tag);
    got.seqs.push(Number(text.slice(colon + 1)));
    seen.get(tag)?.();
    seen.delete(tag);
  }
  return got;
}

const runsOf = (tags: string[]) => tags.filter((tag, i) => i === 0 || tags[i - 1] !== tag);

t.test('REPLACE with overlap: the new stage starts at once, its outputs come after all of the old one', async (t) => {
  const n = 1500;
  const { fabric, caps, events } = await makeCaps(t);
  // S0 takes 1 ms a message, slower than the pump: a queue builds in front of it.
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: { delayMs: 1 } });
  await caps.load({ name: 'S1', location: STAGE, start: true });
  t.ok(
    fabric.instances().some((i) => i.instance === 'S1'),
    'LOAD with start runs the instance before any EXECUTE',
  );
  t.equal(caps.info('S1').state, 'loaded', 'and it stays on LOADED');
  const seen = new Map<string, () => void>();
  const first = (tag: string) => new Promise<void>((r) => seen.set(tag, r));
  const s0 = first('S0');
  const sending = pump(input, n);
  const receiving = take(output, n, seen);
  await s0;
  await new Promise((r) => setTimeout(r, 300)); // let S0's queue grow (it gains ~1 message per ms)
  const r = await caps.replace('S0', 'S1', { overlap: true });
  t.equal(r.handedOver, 0, 'S0 worked off its whole queue itself: nothing handed over');
  await sending;
  const got = await receiving;
  t.same(
    got.seqs,
    Array.from({ length: n }, (_, i) => i),
    'every message once, in order',
  );
  // Without the fence S1 (fast, running at once) would have overtaken S0's backlog at `down`.
  t.same(runsOf(got.tags), ['S0', 'S1'], 'all of S0, then all of S1: no interleaving at the downstream');
  t.ok(
    got.tags.filter((x) => x === 'S0').length > 300,
    `S0 had a backlog when replaced (${got.tags.filter((x) => x === 'S0').length} messages through S0)`,
  );
  t.ok(
    events.some((e) => e.type === 'replaced' && e.old === 'S0'),
    'replaced event',
  );
});

t.test('REPLACE with overlap: a too slow old stage hands over the rest; nothing lost or repeated', async (t) => {
  const n = 800;
  const { fabric, caps } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: { delayMs: 3 } });
  await caps.load({ name: 'S1', location: STAGE });
  const seen = new Map<string, () => void>();
  const s0 = new Promise<void>((r) => seen.set('S0', r));
  const sending = pump(input, n);
  const receiving = take(output, n, seen);
  await s0;
  await new Promise((r) => setTimeout(r, 200));
  const r = await caps.replace('S0', 'S1', { overlap: true, drainMs: 5 });
  t.ok(r.handedOver > 0, `S0 could not work off its queue in 5 ms: ${r.handedOver} handed over`);
  await sending;
  const got = await receiving;
  t.same(
    [...got.seqs].sort((a, b) => a - b),
    Array.from({ length: n }, (_, i) => i),
    'every message arrived once (the handed-over ones after later ones, as documented)',
  );
});

t.test('REPLACE overlap: bad options', async (t) => {
  const { fabric, caps } = await makeCaps(t);
  await pipeline(fabric, caps, 'S0');
  await caps.load({ name: 'S1', location: STAGE });
  await t.rejects(
    caps.replace('S0', 'S1', { overlap: true, state: true }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'overlap cannot carry state',
  );
  await t.rejects(
    caps.replace('S0', 'S1', { overlap: 'yes' as never }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'overlap must be a boolean',
  );
  await t.rejects(
    caps.load({ name: 'S2', location: STAGE, start: 1 as never }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'start must be a boolean',
  );
  t.equal(caps.info('S0').state, 'active', 'S0 untouched by the refused REPLACEs');
});

t.test('a fence: nothing from the fenced link until the other is sealed and taken', async (t) => {
  const { fabric } = await makeFabric(t);
  fabric.register({ name: 'x', location: pointFixture('relay') });
  const a = await fabric.connect(null, 'x', { direction: 'aToB' });
  const b = await fabric.connect(null, 'x', { direction: 'aToB' });
  const out = await fabric.connect('x', null, { direction: 'aToB' });
  await fabric.ends.fence(b.id, 'x', [a.id]);
  await b.send(Buffer.from('b1'));
  await a.send(Buffer.from('a1'));
  await a.send(Buffer.from('a2'));
  const text = async () => Buffer.from((await out.receive()).data).toString();
  t.equal(await text(), 'a1', 'the unfenced link first, although b1 was sent before');
  t.equal(await text(), 'a2');
  // b1 is held back while link a is open and unsealed: a marker sent on a afterwards still overtakes it.
  await a.send(Buffer.from('a3'));
  t.equal(await text(), 'a3', 'b1 still fenced behind the open link');
  await fabric.ends.seal(a.id, 'x');
  t.equal(await text(), 'b1', 'sealed and empty: the fence lifts');
  await b.send(Buffer.from('b2'));
  t.equal(await text(), 'b2', 'and stays lifted');
  await t.rejects(
    fabric.ends.fence(out.id, 'x', [a.id]),
    { code: 'AMIX_ERR_UNKNOWN_LINK' },
    'a link the point only sends on cannot be fenced there',
  );
});
