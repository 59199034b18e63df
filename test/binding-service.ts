// The Binding Service (seed 002 ¶166-211, ¶366-437): every interface and every default method.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BindingService, isAmixError, parseBindingConfig, type BindingMethod } from '../dist/lib/internal.js';

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-bind-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the defaults come from the configuration, in the seed order, loaded on first use', async (t) => {
  const b = await BindingService.start();
  const r = b.report();
  t.same(
    r.methods.map((m) => m.name),
    ['File', 'Shell', 'Data', 'Function', 'Thread', 'Process'],
    'Table 7 in order',
  );
  t.ok(
    r.methods.every((m) => !m.loaded),
    'nothing loaded before a Bind',
  );
  await b.bind('no-such-name-anywhere');
  const after = b.report();
  t.ok(
    after.methods.every((m) => m.loaded),
    'a Bind that tried every method loaded each',
  );
  t.same(after.methods.find((m) => m.name === 'Shell')!.operations, [
    'patternMatching',
    'nameTransformation',
    'locate',
    'status',
  ]);
  t.equal(after.counters.loads, 6);
});

t.test('File binds an existing file and keeps its status; a missing one falls through to UNBOUND', async (t) => {
  const dir = await tmp(t);
  await writeFile(join(dir, 'notes.txt'), 'hello');
  const b = await BindingService.start({ baseDir: dir });
  const q = await b.bind('notes.txt');
  t.match(q, { name: 'notes.txt', state: 'BOUND', method: 'File', path: join(dir, 'notes.txt'), size: 5 });
  t.same(await b.bind('missing.txt'), { name: 'missing.txt' }, 'UNBOUND: Query shows only the name');
  t.same(b.report().entries.find((e) => e.name === 'missing.txt')!.state, 'UNBOUND');
});

t.test('Shell binds shell: statements to /bin/sh; Data and Function bind what the application offers', async (t) => {
  const b = await BindingService.start({
    application: { data: new Map([['greeting', 'hi']]), functions: new Map([['add', () => 3]]) },
  });
  t.match(await b.bind('shell:echo one'), {
    state: 'BOUND',
    method: 'Shell',
    shell: '/bin/sh',
    statements: 'echo one',
  });
  t.match(await b.bind('greeting'), { state: 'BOUND', method: 'Data', type: 'string', value: 'hi' });
  t.match(await b.bind('add'), { state: 'BOUND', method: 'Function', name: 'add' });
  const got = await b.use('add', (e) => e.invoke!());
  t.equal(got, 3, 'the bound function runs through use()');
});

t.test('Thread binds a procedure and runs it in a worker thread', async (t) => {
  const dir = await tmp(t);
  const mod = join(dir, 'procs.mjs');
  await writeFile(
    mod,
    `import { threadId } from 'node:worker_threads'; import { writeFileSync } from 'node:fs';
     export function work(arg) { writeFileSync(arg.out, String(threadId)); }`,
  );
  const b = await BindingService.start({ baseDir: dir });
  t.match(await b.bind('procs.mjs#work'), { state: 'BOUND', method: 'Thread', export: 'work' });
  const out = join(dir, 'tid');
  await b.use('procs.mjs#work', (e) => e.invoke!({ arg: { out } }));
  const { readFile } = await import('node:fs/promises');
  t.not(await readFile(out, 'utf8'), '0', 'it ran off the main thread');
});

t.test('Process binds an existing process; a pattern match that is not found is BOUND but not found', async (t) => {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.teardown(() => child.kill());
  await once(child, 'spawn');
  const b = await BindingService.start();
  t.match(await b.bind(`process:${child.pid}`), { state: 'BOUND', method: 'Process', pid: child.pid, command: 'node' });
  const gone = await b.bind('process:999999999');
  t.same(gone, { name: 'process:999999999', state: 'BOUND_NOT_FOUND', method: 'Process', found: false });
  t.equal(b.purge(), 0, 'BOUND but not found is not UNBOUND: Purge keeps it');
  t.match(await b.bind('process:999999999'), { state: 'BOUND_NOT_FOUND' }, 'a second Bind returns it as it is');
  await t.rejects(
    b.use('process:999999999', () => 1),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'not found cannot be used',
  );
  t.ok(b.unbind('process:999999999'), 'Unbind marks it UNBOUND');
  t.equal(b.purge(), 1, 'then Purge drops it');
});

t.test('Register, SetOrder and Unregister change which method binds a name', async (t) => {
  const b = await BindingService.start({ application: { functions: new Map([['x', () => 'fn']]) } });
  const upper: BindingMethod = {
    patternMatching: null,
    nameTransformation: (n) => n.toUpperCase(),
    locate: (n) => (n === 'X' ? { kind: 'upper', n } : undefined),
    status: (e) => ({ n: e.n as string }),
    query: (s) => ({ shown: `upper ${s.n}` }),
  };
  b.register({ order: 100, name: 'Upper', method: upper });
  t.match(await b.bind('x'), { method: 'Function' }, 'Function comes first');
  b.unbind('x');
  b.setOrder(['Upper']);
  t.equal(b.report().methods[0]!.name, 'Upper', 'SetOrder put it first');
  const q = await b.bind('x');
  t.same(q, { shown: 'upper X', name: 'x', state: 'BOUND', method: 'Upper' }, 'the method Query shapes the output');
  t.equal(b.report().entries[0]!.transformed, 'X', 'Report shows the transformed name');
  b.unregister('Upper');
  t.same(b.query('x'), { name: 'x' }, 'its names became UNBOUND');
  t.match(await b.bind('x'), { method: 'Function' });
  t.throws(() => b.register({ order: 1, name: 'bad name', method: upper }), { code: 'AMIX_ERR_INVALID_ARG' });
  t.throws(() => b.setOrder(['Nope']), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('Unregister is refused while a use of the method is in progress', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const b = await BindingService.start({ application: { functions: new Map([['slow', () => gate]]) } });
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  const use = b.use('slow', async (e) => {
    entered();
    await e.invoke!();
  });
  await inside;
  t.equal(b.report().methods.find((m) => m.name === 'Function')!.inUse, 1);
  const err = (() => {
    try {
      b.unregister('Function');
    } catch (e) {
      return e;
    }
  })();
  t.ok(isAmixError(err, 'AMIX_ERR_BAD_TRANSITION'), 'refused with a stable code');
  t.match((err as { details: unknown }).details, { state: 'in use', request: 'unregister' });
  release();
  await use;
  b.unregister('Function');
  t.notOk(
    b.report().methods.some((m) => m.name === 'Function'),
    'gone once the use completed',
  );
});

t.test('a method module is loaded from its location; a bad one fails with a stable code', async (t) => {
  const dir = await tmp(t);
  await writeFile(
    join(dir, 'm.mjs'),
    `export const Echo = { locate: (n) => ({ kind: 'echo', n }), status: (e) => ({ echo: e.n }) };`,
  );
  await writeFile(join(dir, 'bad.mjs'), `export const Bad = { locate: 42 };`);
  const conf = join(dir, 'binding.conf');
  await writeFile(conf, '5 Echo ./m.mjs allow=alice\n', { mode: 0o600 });
  const b = await BindingService.start({ configFiles: [conf] });
  t.equal(b.report().methods[0]!.location, join(dir, 'm.mjs'), 'relative to the configuration file');
  t.match(await b.bind('anything', { principal: 'alice' }), { method: 'Echo', echo: 'anything' });
  t.same(await b.bind('anything', { principal: 'bob' }), { name: 'anything' }, 'bob may not use Echo');
  t.same(
    b.report({ principal: 'bob' }).entries.map((e) => e.principal),
    ['bob'],
    'bob sees only his entries',
  );
  t.equal(b.report().entries.length, 2, 'the owner sees all');
  t.throws(
    () => b.register({ order: 1, name: 'Mine', location: 'x.mjs' }, { principal: 'bob' }),
    { code: 'AMIX_ERR_UNAUTHORIZED' },
    'only the owner registers',
  );
  b.register({ order: 1, name: 'Bad', location: join(dir, 'bad.mjs') });
  await t.rejects(b.bind('y'), { code: 'AMIX_ERR_HANDLER_FAILED' });
  await chmod(conf, 0o644);
  await t.rejects(
    BindingService.start({ configFiles: [conf] }),
    { code: 'AMIX_ERR_UNSAFE_DIR' },
    'a configuration open to others is refused',
  );
});

t.test('the configuration parser names file, line and column', async (t) => {
  t.same(parseBindingConfig('# c\n10 File builtin\n'), [{ order: 10, name: 'File', location: 'builtin' }]);
  t.throws(() => parseBindingConfig('10 File\n', 'f.conf'), {
    code: 'AMIX_ERR_INVALID_ARG',
    details: { file: 'f.conf', line: 1, column: 8 },
  });
  t.throws(() => parseBindingConfig('\nx File builtin', 'f.conf'), {
    code: 'AMIX_ERR_INVALID_ARG',
    details: { line: 2, column: 1 },
  });
  t.throws(() => parseBindingConfig('1 File builtin zap=1', 'f.conf'), {
    code: 'AMIX_ERR_INVALID_ARG',
    details: { column: 16 },
  });
});

t.test('Purge drops UNBOUND names; the table is bounded', async (t) => {
  const b = await BindingService.start({ maxEntries: 2, noDefaults: true });
  await b.bind('a');
  await b.bind('b');
  await t.rejects(b.bind('c'), { code: 'AMIX_ERR_INVALID_ARG' }, 'full table refuses a new name');
  t.equal(b.purge(), 2);
  t.same(b.report().entries, []);
  await b.bind('c');
  t.equal(b.report().counters.refused, 1, 'the refusal is counted');
});
