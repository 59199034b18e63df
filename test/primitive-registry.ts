import t from 'tap';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_PRIMITIVES, PrimitiveRegistry } from '../dist/lib/index.js';

const fixture = fileURLToPath(new URL('./fixtures/memory-primitive.mjs', import.meta.url));
const characteristics = {
  scopes: ['thread'],
  maxMessageBytes: 1 << 20,
  ordering: 'fifo',
  delivery: 'reliable',
} as const;
const imports = () => (globalThis as { __amixMemoryPrimitiveImports?: number }).__amixMemoryPrimitiveImports ?? 0;

t.test('built-ins are registered by name and nothing is imported until first use', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  t.same(
    reg.list().map((p) => p.name),
    BUILTIN_PRIMITIVES.map((p) => p.name),
    'built-ins listed',
  );
  t.ok(
    reg.list().every((p) => p.state === 'unloaded' && p.builtin),
    'all unloaded until used',
  );
  t.same(
    reg.list({ scope: 'thread' }).map((p) => p.name),
    ['queueConditionThread'],
    'query by scope',
  );
});

t.test('a user primitive on disk is imported only when a channel first needs it', async (t) => {
  const reg = new PrimitiveRegistry({ builtins: false });
  t.teardown(() => reg.close());
  const before = imports();
  reg.register({ name: 'memory', location: fixture, characteristics });
  t.equal(imports(), before, 'register does not import');
  t.equal(reg.get('memory').state, 'unloaded');
  const rx = await reg.open('memory');
  t.teardown(() => rx.destroy());
  t.equal(imports(), before + 1, 'first open imported the module once');
  t.equal(reg.get('memory').state, 'started', 'the module went load → start');
  const rx2 = await reg.open('memory');
  t.teardown(() => rx2.destroy());
  t.equal(imports(), before + 1, 'not imported again');
});

t.test('a relative location resolves against baseDir', async (t) => {
  const reg = new PrimitiveRegistry({
    builtins: false,
    baseDir: fileURLToPath(new URL('./fixtures/', import.meta.url)),
  });
  t.teardown(() => reg.close());
  reg.register({ name: 'memory', location: './memory-primitive.mjs', characteristics });
  const p = await reg.load('memory');
  t.equal(p.name, 'memory');
});

t.test('bad registrations fail with a code naming what was wrong', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const ok = { name: 'x', location: fixture, characteristics };
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['not an object', 42, 'AMIX_ERR_BAD_PRIMITIVE', /must be an object/],
    ['bad name', { ...ok, name: '9lives' }, 'AMIX_ERR_BAD_PRIMITIVE', /name must match/],
    ['missing location', { ...ok, location: '' }, 'AMIX_ERR_BAD_PRIMITIVE', /location/],
    [
      'unknown scope',
      { ...ok, characteristics: { ...characteristics, scopes: ['carrierPigeon'] } },
      'AMIX_ERR_BAD_PRIMITIVE',
      /unknown scope "carrierPigeon"/,
    ],
    [
      'empty scopes',
      { ...ok, characteristics: { ...characteristics, scopes: [] } },
      'AMIX_ERR_BAD_PRIMITIVE',
      /scopes/,
    ],
    [
      'bad size',
      { ...ok, characteristics: { ...characteristics, maxMessageBytes: -1 } },
      'AMIX_ERR_BAD_PRIMITIVE',
      /maxMessageBytes/,
    ],
    [
      'bad ordering',
      { ...ok, characteristics: { ...characteristics, ordering: 'sometimes' } },
      'AMIX_ERR_BAD_PRIMITIVE',
      /ordering/,
    ],
    ['duplicate name', { ...ok, name: 'queueConditionThread' }, 'AMIX_ERR_DUPLICATE', /already registered/],
  ];
  for (const [label, entry, code, message] of cases) {
    t.throws(() => reg.register(entry as never), { code, message }, label);
  }
});

t.test('a module that breaks the contract is refused at load and left unloaded', async (t) => {
  const reg = new PrimitiveRegistry({ builtins: false });
  t.teardown(() => reg.close());
  const missingReceive = `data:text/javascript,export default { name: 'noRecv', characteristics: ${JSON.stringify(characteristics)}, create() {}, destroy() {}, send() {} }`;
  reg.register({ name: 'noRecv', location: missingReceive, characteristics });
  await t.rejects(
    reg.open('noRecv'),
    { code: 'AMIX_ERR_BAD_PRIMITIVE', details: { operation: 'receive' } },
    'missing operation named',
  );
  t.equal(reg.get('noRecv').state, 'unloaded', 'left unloaded after a failed load');
  const wrongName = `data:text/javascript,export default { name: 'other', characteristics: ${JSON.stringify(characteristics)}, create() {}, destroy() {}, send() {}, receive() {} }`;
  reg.register({ name: 'named', location: wrongName, characteristics });
  await t.rejects(reg.open('named'), { code: 'AMIX_ERR_BAD_PRIMITIVE', message: /named "other"/ }, 'name mismatch');
  const badOptional = `data:text/javascript,export default { name: 'badOpt', characteristics: ${JSON.stringify(characteristics)}, create() {}, destroy() {}, send() {}, receive() {}, suspend: 1 }`;
  reg.register({ name: 'badOpt', location: badOptional, characteristics });
  await t.rejects(
    reg.open('badOpt'),
    { code: 'AMIX_ERR_BAD_PRIMITIVE', details: { operation: 'suspend' } },
    'optional op of the wrong type',
  );
  reg.register({ name: 'nowhere', location: '/nonexistent/amix-primitive.js', characteristics });
  await t.rejects(reg.open('nowhere'), { code: 'AMIX_ERR_PRIMITIVE_LOAD' }, 'an import failure has its own code');
  await t.rejects(reg.open('nope'), { code: 'AMIX_ERR_UNKNOWN_PRIMITIVE' }, 'unknown name');
});

t.test('channel options are checked at the edge', async (t) => {
  const reg = new PrimitiveRegistry({ builtins: false });
  t.teardown(() => reg.close());
  reg.register({ name: 'memory', location: fixture, characteristics });
  await t.rejects(reg.open('memory', { maxmsg: 0 }), { code: 'AMIX_ERR_INVALID_ARG', message: /options.maxmsg/ });
  await t.rejects(reg.open('memory', { maxmsg: 4, minmsg: 4 }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /minmsg must be below/,
  });
  await t.rejects(reg.open('memory', { discard: 'shred' as never }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /options.discard/,
  });
  await t.rejects(reg.open('memory', { maxMessageBytes: 2 << 20 }), {
    code: 'AMIX_ERR_INVALID_ARG',
    message: /maxMessageBytes/,
  });
});

t.test('delete quiesces a loaded primitive: it waits for open channels, then unloads', async (t) => {
  const reg = new PrimitiveRegistry({ builtins: false });
  t.teardown(() => reg.close());
  reg.register({ name: 'memory', location: fixture, characteristics });
  const rx = await reg.open('memory');
  let deleted = false;
  const del = reg.delete('memory').then(() => {
    deleted = true;
  });
  await new Promise((r) => setImmediate(r));
  t.equal(reg.get('memory').state, 'quiescing', 'quiescing while a channel is open');
  await t.rejects(reg.open('memory'), { code: 'AMIX_ERR_NOT_ACCEPTING' }, 'no new channel while quiescing');
  t.notOk(deleted, 'delete waits');
  await rx.close();
  await del;
  t.notOk(reg.has('memory'), 'gone after the channel closed');
});

t.test('delete times out when a channel stays open', async (t) => {
  const reg = new PrimitiveRegistry({ builtins: false, quiesceTimeoutMs: 50 });
  t.teardown(() => reg.close());
  reg.register({ name: 'memory', location: fixture, characteristics });
  const rx = await reg.open('memory');
  t.teardown(() => rx.destroy());
  await t.rejects(reg.delete('memory'), { code: 'AMIX_ERR_QUIESCE_TIMEOUT' });
  t.ok(reg.has('memory'), 'still registered after the failed delete');
});

t.test('the registry saves to and loads from a 0600 file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-reg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'state', 'primitives.json');
  const a = new PrimitiveRegistry();
  t.teardown(() => a.close());
  a.register({ name: 'memory', location: fixture, characteristics });
  await a.save(file);
  t.equal((await stat(file)).mode & 0o777, 0o600, 'file is owner-only');
  t.equal((await stat(join(dir, 'state'))).mode & 0o777, 0o700, 'dir is owner-only');
  const b = new PrimitiveRegistry();
  t.teardown(() => b.close());
  t.same(await b.loadFile(file), ['memory'], 'only user entries are saved');
  t.same(b.get('memory').characteristics, characteristics);
  await t.rejects(b.loadFile(file), { code: 'AMIX_ERR_DUPLICATE' }, 'loading twice is a duplicate');
  await t.rejects(b.loadFile(join(dir, 'missing.json')), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('a closed registry refuses work', async (t) => {
  const reg = new PrimitiveRegistry();
  await reg.close();
  await reg.close();
  t.throws(() => reg.register({ name: 'late', location: fixture, characteristics }), { code: 'AMIX_ERR_CLOSED' });
  await t.rejects(reg.open('queueConditionThread'), { code: 'AMIX_ERR_CLOSED' });
});
