// CAPS: each of the seed's operations and list transitions, and every abort
// the seed names (seed 002 ¶520-577), over a real fabric with thread points.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CapsEvent, Link } from '../dist/lib/index.js';
import { pointFixture, text } from './helpers/fabric.js';
import { makeCaps, pipeline, STAGE } from './helpers/caps.js';

const lists = (events: CapsEvent[], ams: string) =>
  events.flatMap((e) => (e.type === 'list' && e.ams === ams ? [`${e.from}>${e.to}`] : []));

async function roundTrip(input: Link, output: Link, msg: string): Promise<string> {
  await input.send(Buffer.from(msg));
  return text(await output.receive());
}

/** Poll a counter until it reaches `n` (no event reports a relay's count). */
async function until(fn: () => Promise<number>, n: number): Promise<void> {
  while ((await fn()) < n) await new Promise((r) => setImmediate(r));
}
const sentBy = (fabric: { stats(i: string): Promise<unknown> }, inst: string) => async () =>
  ((await fabric.stats(inst)) as { point: { sent: number } }).point.sent;

t.test('LOCATE searches the process, the libraries, the registered points, then the binding hook', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-caps-lib-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'libAms.mjs'), 'export default async () => {}\n');
  const { fabric, caps } = await makeCaps(t, {
    libraries: [dir],
    bind: (n) => (n === 'bound' ? 'file:///bound.js' : undefined),
  });
  fabric.register({ name: 'registered', location: pointFixture('sink') });
  await caps.load({ name: 'own', location: STAGE });
  t.same(await caps.locate('own'), { name: 'own', where: 'process', location: STAGE });
  t.same(await caps.locate('libAms'), {
    name: 'libAms',
    where: 'library',
    location: pathToFileURL(join(dir, 'libAms.mjs')).href,
  });
  t.same(await caps.locate('registered'), { name: 'registered', where: 'point', location: pointFixture('sink') });
  t.same(await caps.locate('bound'), { name: 'bound', where: 'binding', location: 'file:///bound.js' });
  await t.rejects(caps.locate('nowhere'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'not found anywhere');
  await t.rejects(caps.locate('bad name!'), { code: 'AMIX_ERR_INVALID_ARG' }, 'a name that is no point name');
  // LOAD without a location uses LOCATE (a library AMS here), and adopts an already registered point.
  t.equal((await caps.load({ name: 'libAms' })).location, pathToFileURL(join(dir, 'libAms.mjs')).href);
  t.equal((await caps.load({ name: 'registered' })).location, pointFixture('sink'), 'a registered point is adopted');
  await t.rejects(
    caps.load({ name: 'nowhere' }),
    { code: 'AMIX_ERR_UNKNOWN_POINT' },
    'LOAD of what LOCATE cannot find',
  );
});

t.test('LOAD, forced LOAD, UNLOAD and their aborts; the list transitions', async (t) => {
  const { fabric, caps, events } = await makeCaps(t);
  const a = await caps.load({ name: 'A', location: STAGE });
  t.match(a, { name: 'A', state: 'loaded', refs: 0, loads: 1, deallocation: 'drain' });
  t.equal((await caps.load({ name: 'A', location: STAGE })).loads, 1, 'a second LOAD of a loaded AMS does nothing');
  t.equal((await caps.load({ name: 'A', location: STAGE, force: true, data: { tag: 'v2' } })).loads, 2, 'forced');
  t.same(fabric.point('A').data, { tag: 'v2' }, 'a forced LOAD registers the point anew');
  await t.rejects(caps.load({ name: 'B', location: STAGE, deallocation: 'later' as never }), {
    code: 'AMIX_ERR_INVALID_ARG',
  });
  await caps.execute('A');
  await t.rejects(
    caps.load({ name: 'A', location: STAGE, force: true }),
    { code: 'AMIX_ERR_BAD_TRANSITION', details: { module: 'A', state: 'active', request: 'load' } },
    'a forced LOAD of an executing AMS is aborted',
  );
  await t.rejects(
    caps.unload('A'),
    { code: 'AMIX_ERR_BAD_TRANSITION', details: { state: 'active', request: 'unload' } },
    'UNLOAD of an ACTIVE AMS is aborted',
  );
  await caps.terminate('A');
  await caps.unload('A');
  t.throws(() => caps.info('A'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'off LOADED');
  t.notOk(
    fabric.points().some((p) => p.name === 'A'),
    'its point is gone',
  );
  await t.rejects(caps.unload('A'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'UNLOAD of what is not loaded');
  t.same(lists(events, 'A'), ['none>loaded', 'loaded>active', 'active>loaded', 'loaded>none']);
  t.same(
    events.filter((e) => e.type === 'loaded').map((e) => (e as { forced: boolean }).forced),
    [false, true],
    'a loaded event per LOAD that did something',
  );
});

t.test('EXECUTE and TERMINATE: PUBLIC reference counting, PRIVATE instances, the aborts', async (t) => {
  const { fabric, caps, events } = await makeCaps(t);
  await t.rejects(caps.execute('ghost'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'EXECUTE of what is not LOADED');
  await caps.load({ name: 'P', location: STAGE });
  await t.rejects(caps.terminate('P'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'TERMINATE of what does not execute');
  t.same(await caps.execute('P'), { instance: 'P', refs: 1 });
  t.same(await caps.execute('P'), { instance: 'P', refs: 2 }, 'a second PUBLIC EXECUTE shares the instance');
  t.equal(fabric.instances('P').length, 1, 'one instance');
  await t.rejects(caps.execute('P', { scope: 'private' }), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'scopes do not mix');
  t.same(await caps.terminate('P'), { refs: 1, ended: [] }, 'still referenced: TERMINATE stops at the decrement');
  t.equal(caps.info('P').state, 'active', 'still ACTIVE');
  t.ok(
    events.some((e) => e.type === 'released' && e.refs === 1),
    'a released event',
  );
  t.same(await caps.terminate('P'), { refs: 0, ended: ['P'] }, 'the last reference ends it');
  t.equal(caps.info('P').state, 'loaded');
  t.equal(fabric.instances('P').length, 0, 'its instance ended');

  await caps.load({ name: 'Q', location: STAGE });
  const q1 = await caps.execute('Q', { scope: 'private' });
  const q2 = await caps.execute('Q', { scope: 'private' });
  t.not(q1.instance, q2.instance, 'PRIVATE: an instance per EXECUTE');
  t.same(caps.info('Q').instances, [q1.instance, q2.instance]);
  t.same(await caps.terminate('Q', { instance: q1.instance }), { refs: 1, ended: [q1.instance] });
  t.equal(caps.info('Q').state, 'active', 'the other private execution goes on');
  await t.rejects(caps.terminate('Q', { instance: 'nope' }), { code: 'AMIX_ERR_UNKNOWN_POINT' });
});

t.test('EXECUTE links upstream and downstream; SUSPEND stops all work until RESUME', async (t) => {
  const { fabric, caps, events } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S');
  t.equal(await roundTrip(input, output, 'hi'), 'S:hi', 'the AMS runs between up and down');
  await t.rejects(caps.resume('S'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'RESUME of an ACTIVE AMS');
  await caps.suspend('S');
  t.equal(caps.info('S').state, 'suspended');
  t.same(caps.query().suspended, ['S']);
  await t.rejects(caps.suspend('S'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'SUSPEND of a SUSPENDED AMS');
  await t.rejects(caps.execute('S'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'EXECUTE of a SUSPENDED AMS');
  const before = (await caps.amsRequest('S', 'stats')).processed;
  await input.send(Buffer.from('held'));
  // up has taken it and tried to pass it on: the suspended AMS gets nothing to work on.
  await until(async () => ((await fabric.stats('up')) as { point: { received: number } }).point.received, 2);
  t.equal((await caps.amsRequest('S', 'stats')).processed, before, 'nothing processed while suspended');
  await caps.resume('S');
  t.equal(text(await output.receive()), 'S:held', 'after RESUME the held message goes through');
  t.same(lists(events, 'S'), ['none>loaded', 'loaded>active', 'active>suspended', 'suspended>active']);
});

t.test('REPLACE: aborts, then each disposition, with and without state', async (t) => {
  const { fabric, caps } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S1');
  await caps.load({ name: 'S2', location: STAGE });
  await caps.load({ name: 'S3', location: STAGE });
  await caps.load({ name: 'S4', location: STAGE });
  await t.rejects(
    caps.replace('S2', 'S3'),
    { code: 'AMIX_ERR_BAD_TRANSITION', details: { module: 'S2', state: 'loaded', request: 'replace' } },
    'REPLACE of an AMS not on ACTIVE is aborted',
  );
  await t.rejects(caps.replace('S1', 'ghost'), { code: 'AMIX_ERR_UNKNOWN_POINT' }, 'the new AMS must be LOADED');
  await t.rejects(caps.replace('S1', 'S1'), { code: 'AMIX_ERR_INVALID_ARG' }, 'not by itself');
  await t.rejects(caps.replace('S1', 'S2', { disposition: 'keep' as never }), { code: 'AMIX_ERR_INVALID_ARG' });
  await caps.execute('S3');
  await t.rejects(caps.replace('S1', 'S3'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'the new AMS may not be executing');
  await caps.terminate('S3');
  // A plain point (no CAPS loop) cannot be replaced with the guarantee.
  await caps.load({ name: 'plain', location: pointFixture('relay') });
  await caps.execute('plain');
  await t.rejects(caps.replace('plain', 'S2'), { code: 'AMIX_ERR_INVALID_ARG' }, 'an AMS without the CAPS loop');
  // A caller's link cannot move (its Link handle is the link).
  await caps.load({ name: 'callerFed', location: STAGE });
  await caps.execute('callerFed');
  await fabric.connect(null, 'callerFed', { direction: 'aToB' });
  await t.rejects(caps.replace('callerFed', 'S2'), { code: 'AMIX_ERR_INVALID_ARG' }, 'an AMS fed by the caller');

  // An AMS attached to a switch: refused (the switch routes by name; moving its routes is not built).
  fabric.register({ name: 'TCS', location: 'amix:switch' });
  await caps.load({ name: 'onSwitch', location: STAGE });
  await caps.execute('onSwitch');
  await fabric.connect('onSwitch', 'TCS');
  await t.rejects(caps.replace('onSwitch', 'S2'), { code: 'AMIX_ERR_INVALID_ARG' }, 'an AMS attached to a switch');

  t.equal(await roundTrip(input, output, 'a'), 'S1:a');
  t.equal(await roundTrip(input, output, 'b'), 'S1:b');
  // State carried: S2 counts on from S1's two messages.
  const r = await caps.replace('S1', 'S2', { state: true, disposition: 'suspend' });
  t.equal(r.handedOver, 0);
  t.equal(await roundTrip(input, output, 'count?'), 'S2:count=3', 'DUMP_MAP/LOAD_MAP carried the count');
  t.equal(caps.info('S1').state, 'suspended', 'disposition suspend: the old AMS is on SUSPENDED');
  t.equal(caps.query().mapAreas.length, 0, 'the carried map area (persistence load) was freed by its LOAD_MAP');
  // Without state S3 starts from nothing; the old one is kept on standby.
  await caps.replace('S2', 'S3', { disposition: 'standby' });
  t.equal(await roundTrip(input, output, 'count?'), 'S3:count=1', 'no state carried');
  t.match(caps.info('S2'), { state: 'active', standby: true, refs: 1 }, 'disposition standby');
  t.same(fabric.instance('S2').links, [], 'a standby AMS has no links');
  // A standby AMS can be brought back; the replaced one is terminated.
  await caps.replace('S3', 'S2');
  t.equal(await roundTrip(input, output, 'count?'), 'S2:count=4', 'the standby AMS kept its own count');
  t.equal(caps.info('S3').state, 'loaded', 'disposition terminate: the old AMS is off ACTIVE');
  t.equal(fabric.instances('S3').length, 0, 'and its instance ended');
  t.same(caps.query().references.S2, 1, 'the references moved to the new AMS');
  // A REPLACE by a process-scope AMS.
  await caps.load({ name: 'S4p', location: STAGE, scope: 'process' });
  await caps.replace('S2', 'S4p');
  t.equal(await roundTrip(input, output, 'x'), 'S4p:x', 'a process AMS took over');
  t.not(fabric.instance('S4p').pid, process.pid, 'in its own process');
  // A state the new AMS refuses: the REPLACE still completes, and says why the state did not go.
  await caps.load({ name: 'S5', location: STAGE, data: { failLoad: true } });
  const bad = await caps.replace('S4p', 'S5', { state: true });
  t.match(bad.stateError, /takes no state/, 'stateError reports the refused LOAD_MAP');
  t.equal(await roundTrip(input, output, 'y'), 'S5:y', 'and the new AMS took over all the same');
});

t.test('DUMP_MAP and LOAD_MAP: map areas, persistence, ownership, the aborts', async (t) => {
  const { fabric, caps, events } = await makeCaps(t, { owner: 'alice' });
  const { input, output } = await pipeline(fabric, caps, 'M');
  await caps.load({ name: 'N', location: STAGE });
  await t.rejects(caps.dumpMap('N'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'DUMP_MAP of an AMS not on ACTIVE');
  await t.rejects(caps.loadMap('N', { state: {} }), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'LOAD_MAP into a loaded AMS');
  await roundTrip(input, output, '1');
  await roundTrip(input, output, '2');
  const area = await caps.dumpMap('M');
  t.match(area, {
    id: /^map\d+$/,
    ams: 'M',
    architecture: { arch: process.arch, platform: process.platform, node: process.version },
    security: { owner: 'alice' },
    persistence: 'terminate',
    format: 'json',
  });
  t.ok(Math.abs(area.at - Date.now()) < 60_000, 'marked with the time');
  t.ok(events.some((e) => e.type === 'dumped' && e.map === area.id));
  await caps.execute('N');
  await t.rejects(
    caps.loadMap('N', { id: area.id, owner: 'mallory' }),
    { code: 'AMIX_ERR_NOT_OWNER' },
    "another principal's area",
  );
  await t.rejects(caps.loadMap('N', { id: 'map999' }), { code: 'AMIX_ERR_INVALID_ARG' }, 'no such area');
  await t.rejects(caps.loadMap('N', {}), { code: 'AMIX_ERR_INVALID_ARG' }, 'neither id nor state');
  await caps.loadMap('N', { id: area.id, owner: 'alice' });
  t.same((await caps.amsRequest('N', 'dump')).state, { count: 2, tag: 'N' }, 'the state went in (by id)');
  t.ok(caps.mapArea(area.id), 'persistence terminate: kept after its LOAD_MAP');
  await caps.loadMap('N', { state: { count: 40 } });
  t.same((await caps.amsRequest('N', 'dump')).state, { count: 40, tag: 'N' }, 'a state by value');
  const once = await caps.dumpMap('N', { persistence: 'load' });
  await caps.loadMap('M', { id: once.id });
  t.throws(() => caps.mapArea(once.id), { code: 'AMIX_ERR_INVALID_ARG' }, 'persistence load: freed by its LOAD_MAP');
  await caps.terminate('M');
  t.throws(() => caps.mapArea(area.id), { code: 'AMIX_ERR_INVALID_ARG' }, 'persistence terminate: freed at TERMINATE');
  const big = await makeCaps(t, { maxMapBytes: 8 });
  await big.caps.load({ name: 'B', location: STAGE });
  await big.caps.execute('B');
  await t.rejects(big.caps.dumpMap('B'), { code: 'AMIX_ERR_INVALID_ARG' }, 'a state over maxMapBytes');
});

t.test('TERMINATE by the de-allocation attribute: drain hands queued messages on, discard counts them', async (t) => {
  for (const deallocation of ['drain', 'discard'] as const) {
    const { fabric, caps, events } = await makeCaps(t);
    fabric.register({ name: `up`, location: pointFixture('relay') });
    fabric.register({ name: `down`, location: pointFixture('relay') });
    const input = await fabric.connect(null, 'up', { direction: 'aToB' });
    const output = await fabric.connect('down', null, { direction: 'aToB' });
    await caps.load({ name: 'T', location: STAGE, deallocation });
    await caps.execute('T', { upstream: ['up'], downstream: ['down'] });
    await caps.amsRequest('T', 'gate');
    for (let i = 0; i < 5; i++) await input.send(Buffer.from(`m${i}`));
    await until(sentBy(fabric, 'up'), 5);
    await caps.terminate('T');
    const ended = events.find((e) => e.type === 'terminated') as Extract<CapsEvent, { type: 'terminated' }>;
    if (deallocation === 'drain') {
      t.equal(ended.discarded, 0, 'drain: nothing discarded');
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push(text(await output.receive()));
      t.same(got, ['T:m0', 'T:m1', 'T:m2', 'T:m3', 'T:m4'], 'drain: the AMS took what was queued before it ended');
    } else {
      t.equal(ended.discarded, 5, 'discard: the queued messages were dropped and counted');
      t.equal(caps.query().counters.discarded, 5, 'QUERY shows the count');
    }
    t.equal(fabric.instances('T').length, 0, `${deallocation}: the instance ended`);
  }
});

t.test('INSERT and EXTRACT: the aborts, and the links they leave', async (t) => {
  const { fabric, caps } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S');
  await caps.load({ name: 'X', location: STAGE });
  await t.rejects(caps.insert('X', { from: 'S', to: 'down' }), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'X not ACTIVE');
  await caps.execute('X');
  await t.rejects(caps.insert('X', { from: 'up', to: 'down' }), { code: 'AMIX_ERR_UNKNOWN_LINK' }, 'no link up → down');
  await t.rejects(caps.insert('X', { from: 'ghost', to: 'down' }), { code: 'AMIX_ERR_UNKNOWN_POINT' });
  await t.rejects(caps.extract('X', { from: 'S', to: 'down' }), { code: 'AMIX_ERR_UNKNOWN_LINK' }, 'X is not there');
  await caps.insert('X', { from: 'S', to: 'down' });
  t.equal(await roundTrip(input, output, 'i'), 'X:S:i', 'A → X → B');
  t.ok(!fabric.links().some((l) => l.a === 'S' && l.b[0] === 'down'), 'the direct link is gone');
  await t.rejects(caps.extract('X', { from: 'S', to: 'down', disposition: 'gone' as never }), {
    code: 'AMIX_ERR_INVALID_ARG',
  });
  await caps.extract('X', { from: 'S', to: 'down', disposition: 'suspend' });
  t.equal(await roundTrip(input, output, 'e'), 'S:e', 'A → B again');
  t.equal(caps.info('X').state, 'suspended', 'disposition suspend');
  await t.rejects(caps.insert('X', { from: 'S', to: 'down' }), { code: 'AMIX_ERR_BAD_TRANSITION' });
});

t.test('COMPRIMS sets the primitives of AMSs loaded after it; QUERY reports everything', async (t) => {
  const { fabric, caps, events } = await makeCaps(t);
  await caps.load({ name: 'before', location: STAGE });
  t.same(caps.comprims({ sendPrimitive: 'queueConditionProcess' }), { sendPrimitive: 'queueConditionProcess' });
  await caps.load({ name: 'after', location: STAGE });
  t.equal(fabric.point('after').sendPrimitive, 'queueConditionProcess', 'the default applies to a later LOAD');
  t.equal(fabric.point('before').sendPrimitive, 'queueConditionThread', 'an earlier AMS keeps its primitives');
  t.throws(() => caps.comprims({ sendPrimitive: '' }), { code: 'AMIX_ERR_INVALID_ARG' });
  t.ok(events.some((e) => e.type === 'comprims'));
  await caps.execute('after');
  await caps.execute('after');
  await caps.dumpMap('after');
  await caps.defer({ op: 'terminate', args: { name: 'after' }, on: 'later' });
  const q = caps.query();
  t.same(q.active, ['after']);
  t.same(q.references, { before: 0, after: 2 });
  t.equal(q.loaded.length, 2);
  t.equal(q.mapAreas.length, 1);
  t.match(q.event, [{ op: 'terminate', on: 'later', repeat: false, runs: 0 }], 'the requests waiting on events');
  t.same(q.comprims, { sendPrimitive: 'queueConditionProcess' });
  t.same(q.counters, { discarded: 0, handedOver: 0, storeErrors: 0, requestsFailed: 0 });
  t.same(q.hosts, fabric.hostPool(), "the fabric's kept hosts");
  t.equal(q.hosts.max, 0, 'off unless the fabric reuses hosts');
});
