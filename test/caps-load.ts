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

/**
 * An open-ended stream at the pump's pace, for tests whose phases wait on each other: it keeps
 * sending until `stop`, so a stage that takes over late still gets messages whatever the machine's
 * speed. `burst(k)` sends k at once (resolving when they are sent); `stop` ends the stream with an
 * `end` message and resolves with how many numbered messages went.
 */
function stream(input: Link): { burst(k: number): Promise<void>; stop(): Promise<number> } {
  let next = 0;
  let stopped = false;
  let bursts: { left: number; done: () => void }[] = [];
  const running = (async () => {
    while (!stopped) {
      await input.send(Buffer.from(String(next++)));
      const b = bursts[0];
      if (b) {
        if (--b.left === 0) {
          bursts.shift();
          b.done();
        }
      } else if (next % 20 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    await input.send(Buffer.from('end'));
    return next;
  })();
  return {
    burst: (k) => new Promise<void>((done) => bursts.push({ left: k, done })),
    stop: () => {
      stopped = true;
      bursts = [];
      return running;
    },
  };
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

/** Receive n messages (or up to the `end` of a {@link stream}); check order and count; return the tag (stage) of each. */
async function collect(t: Test, output: Link, n: number | 'end'): Promise<string[]> {
  const tags: string[] = [];
  let lost = 0;
  let dup = 0;
  let reordered = 0;
  let expect = 0;
  for (let k = 0; n === 'end' || k < n; k++) {
    const text = Buffer.from((await output.receive()).data).toString();
    const colon = text.lastIndexOf(':');
    if (text.slice(colon + 1) === 'end') break;
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
  if (n !== 'end') t.equal(expect, n, 'every sequence number arrived');
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
    const s = stream(input);
    const receiving = collect(t, output, 'end');
    await first;
    const r = await caps.replace('S0', 'S1', { disposition: 'terminate' });
    t.ok(r.handedOver > 0, `the old stage's queue went to the new one (${r.handedOver})`);
    await seenTag('S1');
    const viaX = seenTag('S1:X');
    await caps.insert('X', { from: 'up', to: 'S1' });
    await viaX;
    await caps.extract('X', { from: 'up', to: 'S1', disposition: 'standby' });
    await s.burst(10);
    const sent = await s.stop();
    const tags = await receiving;
    t.equal(tags.length, sent, `all ${sent} arrived`);
    t.ok(tags.includes('S1') && tags.includes('S1:X'), 'the new stage carried the rest, some through X');
    t.equal(tags.at(-1), 'S1', 'and, after the EXTRACT, without X');
  },
);

t.test('REPLACE with drainMs: the old stage works off its queue (or hands over the rest when too slow)', async (t) => {
  const { fabric, caps, events } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: { spinUs: 100 } });
  await caps.load({ name: 'S1', location: STAGE, scope: 'process', data: { spinUs: 100 } });
  await caps.load({ name: 'S2', location: STAGE, data: { delayMs: 2 } });
  await caps.load({ name: 'S3', location: STAGE });
  // The stream runs until the end, so each stage gets messages however long a REPLACE takes.
  const s = stream(input);
  const receiving = collect(t, output, 'end');
  await seenTag('S0');
  const r1 = await caps.replace('S0', 'S1', { drainMs: 2000 });
  t.equal(
    r1.handedOver,
    0,
    `S0 worked off its queue within drainMs: nothing handed over (pause ${r1.pauseMs.toFixed(1)} ms)`,
  );
  await seenTag('S1');
  const r2 = await caps.replace('S1', 'S2', { drainMs: 2000 });
  t.equal(r2.handedOver, 0, 'S1 (a process) too');
  await seenTag('S2');
  // S2 takes at least 2 ms a message: a burst of 400 queues in front of it, not worked off in 5 ms.
  await s.burst(400);
  const r3 = await caps.replace('S2', 'S3', { drainMs: 5 });
  t.ok(r3.handedOver > 0, `S2 was too slow for drainMs 5: ${r3.handedOver} handed over`);
  await t.rejects(caps.replace('S3', 'S0', { drainMs: -1 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'drainMs must be >= 0');
  await seenTag('S3');
  const sent = await s.stop();
  const tags = await receiving;
  t.equal(tags.length, sent, `every one of the ${sent} messages sent arrived`);
  const runs = tags.filter((tag, i) => i === 0 || tags[i - 1] !== tag);
  t.same(runs, ['S0', 'S1', 'S2', 'S3'], 'stages took over in order, each got messages');
  t.equal(events.filter((e) => e.type === 'replaced').length, 3);
});

t.test('INSERT and EXTRACT under load: nothing lost, and the inserted stage sees a contiguous run', async (t) => {
  const { fabric, caps } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S0', { data: SLOW });
  await caps.load({ name: 'X', location: STAGE, scope: 'process', data: SLOW });
  await caps.execute('X');
  const started = seenTag('S0');
  const s = stream(input);
  const receiving = collect(t, output, 'end');
  await started;
  const throughX = seenTag('X:S0');
  await caps.insert('X', { from: 'S0', to: 'down' });
  // Extract once messages have gone through X.
  await throughX;
  await caps.extract('X', { from: 'S0', to: 'down', disposition: 'standby' });
  // Sent after the EXTRACT: these go around X.
  await s.burst(20);
  const sent = await s.stop();
  const tags = await receiving;
  t.equal(tags.length, sent, `all ${sent} arrived`);
  const through = tags.map((tag) => tag.startsWith('X:'));
  const first = through.indexOf(true);
  const last = through.lastIndexOf(true);
  t.ok(
    first > 0 && last < tags.length - 1,
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
