// CAPS deferral: "at TIME", "every INTERVAL" (on an injected clock) and "on
// EVENT" (NOTIFICATION) for each deferrable operation, a short real timer,
// and the watched NDJSON request store with its owner-only check.
import t from 'tap';
import { chmod, mkdtemp, rm, symlink, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CapsClock } from '../dist/lib/index.js';
import { capsEvent, makeCaps, pipeline, STAGE } from './helpers/caps.js';
import { text } from './helpers/fabric.js';

/** A clock the test moves by hand. */
class FakeClock implements CapsClock {
  t = 1_700_000_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #seq = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#timers.delete(h as number);
  }
  /** Move to now + ms, firing each timer due on the way, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }
  get pending(): number {
    return this.#timers.size;
  }
}

t.test('at TIME: on the EVENT list until the clock reaches it, then run once', async (t) => {
  const clock = new FakeClock();
  const { caps, events } = await makeCaps(t, { clock });
  await caps.load({ name: 'A', location: STAGE });
  const d = await caps.defer({ op: 'execute', args: { name: 'A' }, at: clock.now() + 1000 });
  t.match(d, { id: /^r\d+$/, op: 'execute', at: clock.now() + 1000, next: clock.now() + 1000 });
  t.equal(caps.query().event.length, 1, 'waiting on the EVENT list');
  clock.advance(999);
  t.equal(caps.info('A').state, 'loaded', 'not yet');
  clock.advance(1);
  await capsEvent(caps, events, 'requestRan');
  t.equal(caps.info('A').state, 'active', 'ran at its time');
  t.equal(caps.query().event.length, 0, 'and left the list');
  // An ISO time works the same.
  await caps.defer({ op: 'terminate', args: { name: 'A' }, at: new Date(clock.now() + 50).toISOString() });
  clock.advance(50);
  await capsEvent(caps, events, 'requestRan', (e) => e.op === 'terminate');
  t.equal(caps.info('A').state, 'loaded');
});

t.test('every INTERVAL: runs at each interval until cancelled; a failing run is counted', async (t) => {
  const clock = new FakeClock();
  const { caps, events } = await makeCaps(t, { clock });
  await caps.load({ name: 'E', location: STAGE });
  const d = (await caps.defer({ op: 'execute', args: { name: 'E' }, every: 100 })) as { id: string };
  for (let i = 1; i <= 3; i++) {
    clock.advance(100);
    await capsEvent(caps, events, 'requestRan', () => events.filter((e) => e.type === 'requestRan').length >= i);
    // The next run is scheduled once this one is done.
    while (clock.pending === 0) await new Promise((r) => setImmediate(r));
  }
  t.equal(caps.info('E').refs, 3, 'three runs: three references');
  t.equal(caps.query().event[0]!.runs, 3);
  t.ok(caps.cancel(d.id), 'cancelled');
  t.notOk(caps.cancel(d.id), 'once');
  t.equal(clock.pending, 0, 'its timer is gone');
  // A run that fails is reported and counted, and the interval goes on.
  const f = (await caps.defer({ op: 'resume', args: { name: 'E' }, every: 50 })) as { id: string };
  clock.advance(50);
  const failed = await capsEvent(caps, events, 'requestFailed');
  t.equal(failed.code, 'AMIX_ERR_BAD_TRANSITION', 'RESUME of an ACTIVE AMS failed');
  t.match(
    caps.query().event.find((e) => e.id === f.id),
    { lastError: /AMIX_ERR_BAD_TRANSITION/ },
  );
  t.equal(caps.query().counters.requestsFailed, 1);
  while (clock.pending === 0) await new Promise((r) => setImmediate(r));
  t.equal(caps.query().event.length, 1, 'a failed interval request stays on the list, scheduled again');
});

t.test('on EVENT: every deferrable operation waits for its NOTIFICATION', async (t) => {
  const { fabric, caps } = await makeCaps(t);
  const { input, output } = await pipeline(fabric, caps, 'S');
  await caps.load({ name: 'X', location: STAGE });
  const steps: Array<[string, Record<string, unknown>, () => unknown, unknown]> = [
    ['load', { name: 'L', location: STAGE }, () => caps.query().loaded.some((a) => a.name === 'L'), true],
    ['execute', { name: 'X' }, () => caps.info('X').state, 'active'],
    ['insert', { ams: 'X', from: 'S', to: 'down' }, () => fabric.links().some((l) => l.a === 'X'), true],
    ['extract', { ams: 'X', from: 'S', to: 'down', disposition: 'standby' }, () => caps.info('X').standby, true],
    ['suspend', { name: 'S' }, () => caps.info('S').state, 'suspended'],
    ['resume', { name: 'S' }, () => caps.info('S').state, 'active'],
    ['replace', { old: 'S', new: 'L' }, () => caps.info('L').state, 'active'],
    ['terminate', { name: 'X' }, () => caps.info('X').state, 'loaded'],
  ];
  for (const [op, args, probe, after] of steps) {
    const before = probe();
    await caps.defer({ op: op as never, args, on: `go-${op}` });
    t.same(probe(), before, `${op}: nothing happens when deferred`);
    await caps.notify('other');
    t.same(probe(), before, `${op}: another event does not run it`);
    const ran = await caps.notify(`go-${op}`);
    t.match(ran, [{ ok: true }], `${op}: ran on its event`);
    t.same(probe(), after, `${op}: done`);
  }
  t.equal(await (async () => (await input.send(Buffer.from('z')), text(await output.receive())))(), 'L:z');
  t.same(await caps.notify('go-load'), [], 'a one-shot request ran once');
  await caps.defer({ op: 'suspend', args: { name: 'L' }, on: 'tick', repeat: true });
  await caps.defer({ op: 'resume', args: { name: 'L' }, on: 'tick', repeat: true });
  for (let i = 0; i < 2; i++)
    t.match(await caps.notify('tick'), [{ ok: true }, { ok: true }], 'a repeating pair, in order');
  t.equal(caps.query().event.length, 2, 'repeating requests stay');
});

t.test('deferral checks its requests', async (t) => {
  const { caps } = await makeCaps(t, { maxDeferred: 2 });
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ op: 'unload', args: {}, on: 'e' }, 'AMIX_ERR_INVALID_ARG'],
    [{ op: 'execute', args: 'x', on: 'e' }, 'AMIX_ERR_INVALID_ARG'],
    [{ op: 'execute', args: {}, at: 'soon' }, 'AMIX_ERR_INVALID_ARG'],
    [{ op: 'execute', args: {}, every: 1 }, 'AMIX_ERR_INVALID_ARG'],
    [{ op: 'execute', args: {}, on: 'e', at: 5 }, 'AMIX_ERR_INVALID_ARG'],
    [{ op: 'execute', args: {}, on: '' }, 'AMIX_ERR_INVALID_ARG'],
  ];
  for (const [r, code] of bad) await t.rejects(caps.defer(r as never), { code }, JSON.stringify(r));
  await caps.defer({ id: 'one', op: 'execute', args: { name: 'a' }, on: 'e' });
  await t.rejects(caps.defer({ id: 'one', op: 'execute', args: { name: 'a' }, on: 'e' }), {
    code: 'AMIX_ERR_DUPLICATE',
  });
  await caps.defer({ op: 'execute', args: { name: 'a' }, on: 'e' });
  await t.rejects(
    caps.defer({ op: 'execute', args: { name: 'a' }, on: 'e' }),
    { code: 'AMIX_ERR_QUEUE_FULL' },
    'the EVENT list is bounded',
  );
  await t.rejects(caps.notify(''), { code: 'AMIX_ERR_INVALID_ARG' });
  t.match(
    await caps.defer({ op: 'load', args: { name: 'now', location: STAGE } }),
    { ran: { name: 'now' } },
    'no time: now',
  );
});

t.test('a short real timer: at now + 50 ms runs by itself', async (t) => {
  const { caps, events } = await makeCaps(t);
  await caps.load({ name: 'R', location: STAGE });
  const t0 = Date.now();
  await caps.defer({ op: 'execute', args: { name: 'R' }, at: t0 + 50 });
  await capsEvent(caps, events, 'requestRan');
  t.ok(Date.now() - t0 >= 49, 'not before its time');
  t.equal(caps.info('R').state, 'active');
});

t.test('the request store: NDJSON lines run as they appear; owner-only, else refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-caps-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'requests.ndjson');
  await writeFile(file, '', { mode: 0o600 });
  const { caps, events } = await makeCaps(t);
  const stop = await caps.watchStore(file, { pollMs: 20 });
  t.teardown(stop);
  const line = (r: unknown) => appendFile(file, JSON.stringify(r) + '\n');
  await line({ id: 'a', op: 'load', args: { name: 'W', location: STAGE } });
  await line({ id: 'b', op: 'execute', args: { name: 'W' }, on: 'start' });
  await capsEvent(caps, events, 'deferred', (e) => e.request === 'b');
  t.equal(caps.info('W').state, 'loaded', 'the immediate request ran, the deferred one waits');
  t.match(caps.query().event, [{ id: 'b', owner: `store:${file}` }], 'owned by the store');
  await appendFile(file, 'not json\n');
  const err = await capsEvent(caps, events, 'storeError');
  t.match(err, { line: 3, code: 'AMIX_ERR_INVALID_ARG' }, 'a bad line is reported with its number');
  await appendFile(file, '{"op":"execute","args":{"name":"W"}'); // no newline yet: still being written
  await line({ id: 'a', op: 'load', args: { name: 'W', location: STAGE, force: true } });
  await caps.notify('start');
  t.equal(caps.info('W').refs, 1, 'the half-written line and the repeated id did not run');
  t.equal(caps.info('W').loads, 1, 'an id seen before is skipped');
  // Open to others: refused at the next read, nothing more runs.
  await chmod(file, 0o644);
  const unsafe = await capsEvent(caps, events, 'storeError', (e) => e.code === 'AMIX_ERR_UNSAFE_DIR');
  t.equal(unsafe.file, file);
  t.ok(caps.query().counters.storeErrors >= 2, 'counted');
  stop();
  // A store that is unsafe from the start, or a symlink, is refused at once.
  await t.rejects(caps.watchStore(file), { code: 'AMIX_ERR_UNSAFE_DIR' }, 'mode 0644');
  const link = join(dir, 'link.ndjson');
  await chmod(file, 0o600);
  await symlink(file, link);
  await t.rejects(caps.watchStore(link), { code: 'AMIX_ERR_UNSAFE_DIR' }, 'a symlink');
  await t.rejects(caps.watchStore(file, { pollMs: 1 }), { code: 'AMIX_ERR_INVALID_ARG' });
});
