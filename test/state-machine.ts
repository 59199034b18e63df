// The threaded state machine (seed 002 ¶639-642): one start state, exit
// values picking transitions, the Error state, many datums at once on
// real thread points, per-datum order, and backpressure from a slow state.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { StateMachine, type DatumResult, type DatumRun, type TransitionEvent } from '../dist/lib/internal.js';
import { makeFabric } from './helpers/fabric.js';

const state = (name: string): string => fileURLToPath(new URL(`./fixtures/states/${name}.mjs`, import.meta.url));

t.test('a definition has exactly one start state, and names only states it defines', async (t) => {
  const { fabric } = await makeFabric(t);
  const ends = { done: { end: true } };
  t.throws(
    () =>
      new StateMachine(fabric, {
        states: {
          a: { start: true, location: state('parse'), transitions: { num: 'done' } },
          b: { start: true, location: state('parse'), transitions: { num: 'done' } },
          ...ends,
        },
      }),
    { code: 'AMIX_ERR_INVALID_ARG', message: /exactly one start state \(a, b are all marked start\)/ },
    'a second start state is refused',
  );
  t.throws(
    () => new StateMachine(fabric, { states: { a: { location: state('parse') }, ...ends } }),
    { code: 'AMIX_ERR_INVALID_ARG', message: /exactly one start state \(none/ },
    'no start state',
  );
  t.throws(
    () =>
      new StateMachine(fabric, {
        states: { a: { start: true, location: state('parse'), transitions: { num: 'nowhere' } }, ...ends },
      }),
    { code: 'AMIX_ERR_INVALID_ARG', details: { option: 'definition.states.a.transitions.num' } },
    'a transition to an undefined state',
  );
  t.throws(
    () => new StateMachine(fabric, { states: { Error: { start: true, end: true } } }),
    { code: 'AMIX_ERR_INVALID_ARG', message: /machine's own error state/ },
    'Error is reserved',
  );
  t.throws(
    () => new StateMachine(fabric, { states: { a: { start: true }, ...ends } }),
    { code: 'AMIX_ERR_INVALID_ARG', details: { option: 'definition.states.a.location' } },
    'a state that is not an end needs its module',
  );
  t.throws(() => new StateMachine(fabric, { states: { a: { start: true, location: state('parse') } } }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /at least one end state/,
  });
});

t.test('an exit value without a transition, and a state that throws, reach Error', async (t) => {
  const { fabric } = await makeFabric(t);
  const sm = new StateMachine(fabric, {
    states: {
      parse: { start: true, location: state('parse'), transitions: { num: 'check', bad: 'rejected' } },
      check: { location: state('thrower'), transitions: { ok: 'done' } },
      done: { end: true },
      rejected: { end: true },
    },
  });
  t.teardown(() => sm.close());
  await sm.start();
  const run = async (d: unknown) => (await sm.attach(d)).done;
  const weird = await run({ n: -1 });
  t.equal(weird.state, 'Error', 'exit "weird" has no transition');
  t.same(weird.path, ['parse', 'Error']);
  t.match(weird.error, /exit value "weird" has no transition/);
  const odd = await run({ n: 3 });
  t.same([odd.state, odd.path], ['Error', ['parse', 'check', 'Error']], 'a throw sends the datum to Error');
  t.match(odd.error, /threw: odd 3/);
  t.same((await run({ n: 4 })).path, ['parse', 'check', 'done']);
  t.same((await run('text')).path, ['parse', 'rejected']);
  t.same(sm.stats().ended, { Error: 2, done: 1, rejected: 1 });
  await t.rejects(
    sm.attach(() => 1),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'a datum that is not JSON',
  );
});

t.test('1,000 datums through a 4-state machine end where they should, each in its own order', async (t) => {
  const { fabric } = await makeFabric(t);
  const sm = new StateMachine(
    fabric,
    {
      states: {
        parse: {
          start: true,
          location: state('parse'),
          transitions: { num: 'square', bad: 'rejected' },
          concurrency: 2,
        },
        square: { location: state('square'), transitions: { big: 'label', small: 'label' }, concurrency: 3 },
        label: {
          location: state('label'),
          export: 'label',
          transitions: { big: 'big', small: 'small' },
          concurrency: 2,
        },
        big: { end: true },
        small: { end: true },
        rejected: { end: true },
      },
    },
    { maxInFlight: 64 },
  );
  t.teardown(() => sm.close());
  const events = new Map<number, TransitionEvent[]>();
  sm.on('transition', (e: TransitionEvent) => {
    const list = events.get(e.id) ?? [];
    list.push(e);
    events.set(e.id, list);
  });
  await sm.start();
  const runs: Array<Promise<DatumResult>> = [];
  const expected = new Map<number, string[]>();
  for (let i = 0; i < 1000; i++) {
    const datum = i % 10 === 9 ? { n: 'x' } : { n: i };
    const run = await sm.attach(datum);
    expected.set(
      run.id,
      typeof datum.n === 'number'
        ? ['parse', 'square', 'label', datum.n * datum.n > 250_000 ? 'big' : 'small']
        : ['parse', 'rejected'],
    );
    runs.push(run.done);
  }
  const results = await Promise.all(runs);
  let wrongEnd = 0;
  let wrongPath = 0;
  let wrongEvents = 0;
  for (const r of results) {
    const want = expected.get(r.id)!;
    if (r.state !== want.at(-1)) wrongEnd++;
    if (JSON.stringify(r.path) !== JSON.stringify(want)) wrongPath++;
    // The transitions emitted for this datum, in the order they were emitted, walk its path.
    const walked = [want[0], ...(events.get(r.id) ?? []).map((e) => e.to)];
    if (JSON.stringify(walked) !== JSON.stringify(want)) wrongEvents++;
  }
  t.equal(results.length, 1000);
  t.equal(wrongEnd, 0, 'every datum in its expected end state');
  t.equal(wrongPath, 0, 'every path as expected');
  t.equal(wrongEvents, 0, "each datum's transitions emitted in its path's order");
  const labelled = results.find((r) => r.state === 'big')!;
  t.match(labelled.datum, { sq: Number, label: /^n=/, by: 'square' }, 'a state hands the next a changed datum');
  const s = sm.stats();
  const want: Record<string, number> = {};
  for (const path of expected.values()) want[path.at(-1)!] = (want[path.at(-1)!] ?? 0) + 1;
  t.same(s.ended, want, `ended by state: ${JSON.stringify(want)}`);
  t.ok(s.peakInFlight <= 64, `at most maxInFlight in the machine (peak ${s.peakInFlight})`);
  t.ok(s.peakInFlight > 3, 'datums moved through at once');
  t.equal(s.states.square!.threads, 3, 'square ran on its 3 threads');
});

t.test('a slow state applies backpressure: attach waits, nothing queues past maxInFlight', async (t) => {
  const { fabric } = await makeFabric(t);
  const sm = new StateMachine(
    fabric,
    {
      states: {
        slow: { start: true, location: state('gated'), transitions: { ok: 'done' }, concurrency: 1 },
        done: { end: true },
      },
    },
    { maxInFlight: 8 },
  );
  const gate = new BroadcastChannel('amix-sm-gate');
  t.teardown(async () => {
    gate.close();
    await sm.close();
  });
  await sm.start();
  const asked = new Promise<void>((resolve) => {
    gate.onmessage = (e: MessageEvent) => {
      if (e.data === 'waiting:1') resolve();
    };
  });
  const runs: DatumRun[] = [];
  for (let i = 0; i < 8; i++) runs.push(await sm.attach({ n: i }));
  let ninth = false;
  const late = sm.attach({ n: 8 }).then((r) => {
    ninth = true;
    return r;
  });
  await asked; // the first datum is in the slow state's only thread, held there
  const s = sm.stats();
  t.equal(ninth, false, 'the ninth attach waits');
  t.same(
    [s.inFlight, s.waiting, s.states.slow!.running, s.states.slow!.queued],
    [8, 1, 1, 7],
    '1 running, 7 queued, 1 caller waiting',
  );
  gate.postMessage('go:all');
  const all = await Promise.all([...runs.map((r) => r.done), (await late).done]);
  t.equal(ninth, true);
  t.same(
    all.map((r) => r.state),
    Array(9).fill('done'),
    'every datum done once the state speeds up',
  );
  t.equal(sm.stats().peakInFlight, 8, 'never more than maxInFlight in the machine');
});

t.test(
  'a state thread that dies fails its datum; the state runs on with its other thread; close ends the rest',
  async (t) => {
    const { fabric } = await makeFabric(t);
    const sm = new StateMachine(fabric, {
      states: {
        work: { start: true, location: state('exiter'), transitions: { ok: 'done' }, concurrency: 2 },
        done: { end: true },
      },
    });
    t.teardown(() => sm.close());
    await sm.start();
    const dead = await (await sm.attach({ exit: true })).done;
    t.same([dead.state, dead.path], ['Error', ['work', 'Error']]);
    t.match(dead.error, /its thread ended/);
    const after = await Promise.all([0, 1, 2].map(async (n) => (await sm.attach({ n })).done));
    t.same(
      after.map((r) => r.state),
      ['done', 'done', 'done'],
      'the surviving thread takes the rest',
    );
    t.equal(sm.stats().states.work!.threads, 1);
    await sm.close();
    await t.rejects(sm.attach({ n: 1 }), { code: 'AMIX_ERR_CLOSED' }, 'attach after close');
  },
);
