// CAPS under load: sequence-numbered messages flow caller → up → AMS → down →
// caller while the AMS is replaced (thread and process scopes, with state),
// and while an AMS is inserted and extracted. Every message arrives once, in
// order, and each went through exactly one stage.
import t from 'tap';
import type { Test } from 'tap';
import type { Link } from '../dist/lib/index.js';
import { makeCaps, pipeline, STAGE } from './helpers/caps.js';

const N = 5000;
/** Each stage spins this long per message, so a queue builds in front of it at the paced rate. */
const SLOW = { spinUs: 300 };

/** Send from..n-1 as text, 20 every 10 ms (a stream that outlasts the replaces, faster than a stage drains it). */
async function pump(input: Link, n: number, from = 0): Promise<void> {
  for (let i = from; i < n; i++) {
    await input.send(Buffer.from(String(i)));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolvers waiting for the first message a stage tag produced, and the tags seen so far. */
const waiters = new Map<string, () => void>();
const seenTags = new Set<string>();
/** Resolves once a message of stage `tag` has arrived (at once if one has: a REPLACE may return after it). */
const seenTag = (tag: string): Promise<void> =>
  seenTags.has(tag) ? Promise.resolve() : new Promise((resolve) => waiters.set(tag, resolve));

// Each test starts with nothing seen (the stage names repeat across tests).
t.beforeEach(() => {
  seenTags.clear();
  waiters.clear();
});

/** Receive n messages; check order and count; return the tag (stage) of each. */
async function collect(t: Test, output: Link, n: number): Promise<string[]> {
  const tags: string[] = [];
  let lost = 0;
  let dup = 0;
  let reordered = 0;
  let expect = 0;
  for (let k = 0; k < n; k++) {
    const text = Buffer.from((await output.receive()).data).toString();
    const colon = text.lastIndexOf(':');
    const seq = Number(text.slice(colon + 1));
    const tag = text.slice(0, colon);
    tags.push(tag);
    seenTags.add(tag);
    waiters.get(tag)?.();
    waiters.delete(tag);
    if (seq === expect) expect++;
    else if (seq > expect) {
      lost += seq - expect;
      expect = seq + 1;
    } else if (seq < expect) seq === expect - 1 ? dup++ : reordered++;
  }
  t.equal(lost, 0, 'nothing lost');
  t.equal(dup, 0, 'nothing duplicated');
  t.equal(reordered, 0, 'nothing reordered');
  t.equal(expect, n, 'every sequence number arrived');
  return tags;
}

t.test('REPLACE under load: thread and process stages alternate, nothing lost, duplicated or reordered', async (t) => {
  const { fabric, caps, events } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: SLOW });
  const stages = ['S1', 'S2', 'S3', 'S4'];
  for (const [i, s] of stages.entries())
    await caps.load({ name: s, location: STAGE, data: SLOW, scope: i % 2 === 0 ? 'process' : 'thread' });
  const first = seenTag('S0');
  const sending = pump(input, N);
  const receiving = collect(t, output, N);
  await first;
  let old = 'S0';
  for (const s of stages) {
    const r = await caps.replace(old, s, { disposition: 'terminate' });
    t.ok(r.pauseMs >= 0, `${old} → ${s} in ${r.pauseMs.toFixed(1)} ms, ${r.handedOver} handed over`);
    old = s;
  }
  await sending;
  const tags = await receiving;
  // Each message went through exactly one stage, and the stages' runs are in REPLACE order.
  const runs = tags.filter((tag, i) => i === 0 || tags[i - 1] !== tag);
  t.comment(runs.map((r) => `${r}=${tags.filter((x) => x === r).length}`).join(' '));
  t.same(
    runs,
    ['S0', ...stages].filter((s) => runs.includes(s)),
    'stages took over in order, none came back',
  );
  t.equal(caps.query().active.join(), 'S4', 'the last stage is the only active one');
  t.equal(events.filter((e) => e.type === 'replaced').length, 4, 'a replaced event per REPLACE');
  const handed = events.flatMap((e) => (e.type === 'replaced' ? [e.handedOver] : []));
  t.ok(
    handed.some((n) => n > 0),
    `messages queued for an old stage were handed to its replacement (${handed.join(', ')})`,
  );
});

t.test(
  'REPLACE and EXTRACT while the upstream waits for room: its waiting send goes to the new link, in order',
  { timeout: 60_000 },
  async (t) => {
    // The upstream relay sends one message at a time; a slow stage with room for 4 keeps it waiting
    // for room on the link the REPLACE moves, and the EXTRACT moves the link it waits on again.
    const n = 300;
    const { fabric, caps } = await makeCaps(t);
    const { input, output } = await pipeline(fabric, caps, 'S0', {
      data: { delayMs: 5 },
      characteristics: { maxmsg: 4 },
    });
    await caps.load({ name: 'S1', location: STAGE, data: { delayMs: 5 }, characteristics: { maxmsg: 4 } });
    await caps.load({ name: 'X', location: STAGE, characteristics: { maxmsg: 4 } });
    await caps.execute('X');
    const first = seenTag('S0');
    const sending = pump(input, n);
    const receiving = collect(t, output, n);
    await first;
    const r = await caps.replace('S0', 'S1', { disposition: 'terminate' });
    t.ok(r.handedOver > 0, `the old stage's queue went to the new one (${r.handedOver})`);
    await seenTag('S1');
    const viaX = seenTag('S1:X');
    await caps.insert('X', { from: 'up', to: 'S1' });
    await viaX;
    await caps.extract('X', { from: 'up', to: 'S1', disposition: 'standby' });
    await sending;
    const tags = await receiving;
    t.ok(tags.includes('S1') && tags.includes('S1:X'), 'the new stage carried the rest, some through X');
  },
);

t.test('REPLACE with drainMs: the old stage works off its queue (or hands over the rest when too slow)', async (t) => {
  const n = 4000;
  const { fabric, caps, events } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: { spinUs: 100 } });
  await caps.load({ name: 'S1', location: STAGE, scope: 'process', data: { spinUs: 100 } });
  await caps.load({ name: 'S2', location: STAGE, data: { delayMs: 2 } });
  await caps.load({ name: 'S3', location: STAGE });
  const first = seenTag('S0');
  const sending = pump(input, n / 2);
  const receiving = collect(t, output, n);
  await first;
  const r1 = await caps.replace('S0', 'S1', { drainMs: 2000 });
  t.equal(
    r1.handedOver,
    0,
    `S0 worked off its queue within drainMs: nothing handed over (pause ${r1.pauseMs.toFixed(1)} ms)`,
  );
  await seenTag('S1');
  const r2 = await caps.replace('S1', 'S2', { drainMs: 2000 });
  t.equal(r2.handedOver, 0, 'S1 (a process) too');
  await sending;
  // The second half only now, so that S2 has a queue whatever the machine's speed.
  const sending2 = pump(input, n, n / 2);
  await seenTag('S2');
  // S2 takes 2 ms a message, slower than the pump: its queue grows, and cannot be worked off in 5 ms.
  await new Promise((r) => setTimeout(r, 100));
  const r3 = await caps.replace('S2', 'S3', { drainMs: 5 });
  t.ok(r3.handedOver > 0, `S2 was too slow for drainMs 5: ${r3.handedOver} handed over`);
  await t.rejects(caps.replace('S3', 'S0', { drainMs: -1 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'drainMs must be >= 0');
  await sending2;
  const tags = await receiving;
  const runs = tags.filter((tag, i) => i === 0 || tags[i - 1] !== tag);
  t.same(
    runs,
    ['S0', 'S1', 'S2', 'S3'].filter((x) => runs.includes(x)),
    'stages took over in order',
  );
  t.equal(events.filter((e) => e.type === 'replaced').length, 3);
});

t.test('INSERT and EXTRACT under load: nothing lost, and the inserted stage sees a contiguous run', async (t) => {
  const { fabric, caps } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: SLOW });
  await caps.load({ name: 'X', location: STAGE, scope: 'process', data: SLOW });
  await caps.execute('X');
  const started = seenTag('S0');
  const sending = pump(input, N);
  const receiving = collect(t, output, N);
  await started;
  const throughX = seenTag('X:S0');
  await caps.insert('X', { from: 'S0', to: 'down' });
  // Extract once messages have gone through X.
  await throughX;
  await caps.extract('X', { from: 'S0', to: 'down', disposition: 'standby' });
  await sending;
  const tags = await receiving;
  const through = tags.map((tag) => tag.startsWith('X:'));
  const first = through.indexOf(true);
  const last = through.lastIndexOf(true);
  t.ok(
    first > 0 && last < N - 1,
    `X was inserted and extracted mid-stream (messages ${first}..${last} went through it)`,
  );
  t.ok(
    through.slice(first, last + 1).every(Boolean),
    'from the first message through X to the last, every message went through X',
  );
  t.ok(
    tags.every((tag) => tag === 'S0' || tag === 'X:S0'),
    'every message went through S0, some also through X',
  );
  t.equal(caps.info('X').standby, true, 'the extracted stage is on standby');
  t.equal(caps.info('X').state, 'active', 'a standby AMS stays on ACTIVE');
});
