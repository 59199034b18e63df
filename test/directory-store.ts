import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIRECTORY_FILE, Directory, MIGRATIONS, migrate, parsePointId } from '../dist/lib/directory/index.js';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-directory-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const receiver = { role: 'receiver' } as const;
const alice = { owner: 'alice' };
const bob = { owner: 'bob' };
const admin = { owner: 'root', admin: true };

t.test('the state dir is created 0700 and the database files 0600', async (t) => {
  const base = await tempDir(t);
  const stateDir = join(base, 'state', 'amix');
  const dir = new Directory({ stateDir });
  t.teardown(() => dir.close());
  dir.registerPoint({ name: 'p', owner: 'alice', record: receiver });
  t.equal((await stat(stateDir)).mode & 0o777, 0o700, 'state dir is 0700');
  t.equal(dir.path, join(stateDir, DIRECTORY_FILE), 'database inside the state dir');
  t.equal((await stat(dir.path)).mode & 0o777, 0o600, 'database file is 0600');
  t.equal((await stat(dir.path + '-wal')).mode & 0o777, 0o600, 'WAL file is 0600 too');
  const raw = new Database(dir.path, { readonly: true });
  t.teardown(() => raw.close());
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal', 'WAL mode');
});

t.test('the directory id is created once and kept across reopening', async (t) => {
  const base = await tempDir(t);
  const a = new Directory({ stateDir: base });
  const id = a.id;
  a.close();
  t.match(id, /^[0-9a-f]{16}$/, '16 hex digits');
  const b = new Directory({ stateDir: base });
  t.teardown(() => b.close());
  t.equal(b.id, id, 'same id after reopening');
  const other = new Directory({ path: ':memory:' });
  t.teardown(() => other.close());
  t.not(other.id, id, 'another directory has another id');
});

t.test('migrations run once and the schema version is recorded', async (t) => {
  const base = await tempDir(t);
  const first = new Directory({ stateDir: base });
  t.equal(first.schemaVersion, MIGRATIONS.length, 'user_version is the last migration');
  first.close();
  const second = new Directory({ stateDir: base });
  second.close();
  const db = new Database(join(base, DIRECTORY_FILE));
  t.teardown(() => db.close());
  const rows = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Array<{ version: number }>;
  t.same(
    rows.map((r) => r.version),
    MIGRATIONS.map((m) => m.version),
    'each migration recorded exactly once after two opens',
  );
  const extra = [
    ...MIGRATIONS,
    { version: MIGRATIONS.length + 1, description: 'test column', up: 'ALTER TABLE points ADD COLUMN note TEXT' },
  ];
  const r1 = migrate(db, extra);
  t.same(r1.applied, [MIGRATIONS.length + 1], 'only the new migration runs');
  const r2 = migrate(db, extra);
  t.same(r2.applied, [], 'running again applies nothing');
  t.equal(r2.to, MIGRATIONS.length + 1, 'version advanced');
  db.close();
  t.throws(
    () => new Directory({ stateDir: base }),
    { code: 'AMIX_ERR_INVALID_ARG', details: { schemaVersion: MIGRATIONS.length + 1 } },
    'a newer schema is refused',
  );
});

t.test('a failing migration leaves the schema at the previous version', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  migrate(db);
  const bad = [
    ...MIGRATIONS,
    { version: MIGRATIONS.length + 1, description: 'broken', up: 'CREATE TABLE half (x); SELECT nope FROM nowhere;' },
  ];
  t.throws(() => migrate(db, bad), 'the broken migration throws');
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length, 'version unchanged');
  t.equal(
    db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'half'").get()!.n as number,
    0,
    'its partial work rolled back',
  );
});

t.test('identifiers are unique, never reused after delete, nor after reopening', async (t) => {
  const base = await tempDir(t);
  let dir = new Directory({ stateDir: base });
  const ids = dir
    .registerPoints(Array.from({ length: 5 }, (_, i) => ({ name: `p${i}`, owner: 'alice', record: receiver })))
    .map((r) => r.id);
  t.equal(new Set(ids).size, 5, 'five distinct ids');
  t.ok(
    ids.every((id) => parsePointId(id)?.directoryId === dir.id),
    'built from the directory id',
  );
  dir.deletePoint('p4', { as: alice });
  dir.deletePoint('p3', { as: alice });
  const next = dir.registerPoint({ name: 'p4', owner: 'alice', record: receiver }).id;
  t.notOk(ids.includes(next), 'the deleted highest id is not handed out again');
  t.equal(parsePointId(next)!.seq, 6, 'sequence moved on');
  dir.deletePoint(next, { as: alice });
  dir.close();
  dir = new Directory({ stateDir: base });
  t.teardown(() => dir.close());
  const after = dir.registerPoint({ name: 'again', owner: 'alice', record: receiver }).id;
  t.equal(parsePointId(after)!.seq, 7, 'after reopening the sequence still moves on');
  t.same(
    dir.queryLocal('exists name').points.map((p) => p.name),
    ['p0', 'p1', 'p2', 'again'],
    'registrations survived the reopen',
  );
});

t.test('a duplicate name is refused, and a batch is all or nothing', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  dir.registerPoint({ name: 'svc', owner: 'alice', record: receiver });
  t.throws(
    () => dir.registerPoint({ name: 'svc', owner: 'bob', record: receiver }),
    { code: 'AMIX_ERR_DUPLICATE', details: { name: 'svc' } },
    'same name refused',
  );
  t.throws(
    () =>
      dir.registerPoints([
        { name: 'a', owner: 'bob', record: receiver },
        { name: 'b', owner: 'bob', record: receiver },
        { name: 'a', owner: 'bob', record: receiver },
      ]),
    { code: 'AMIX_ERR_DUPLICATE', details: { index: 2 } },
    'a repeat inside the batch is refused',
  );
  t.equal(dir.getPoint('a'), undefined, 'nothing of the failed batch was kept');
  t.throws(
    () =>
      dir.registerPoints([
        { name: 'c', owner: 'bob', record: receiver },
        { name: 'd', owner: 'bob', record: { role: 'nope' } as never },
      ]),
    { code: 'AMIX_ERR_INVALID_ARG', message: /registrations\[1\]\.record\.role/ },
    'a malformed entry fails the batch before writing',
  );
  t.equal(dir.getPoint('c'), undefined, 'and nothing was written');
});

t.test('malformed registrations name the field and the rule', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  const ok = { name: 'x', owner: 'o', record: receiver };
  const cases: Array<[string, unknown, RegExp]> = [
    ['empty name', { ...ok, name: '' }, /name must be a string/],
    ['id-shaped name', { ...ok, name: '0123456789abcdef.4' }, /point identifier/],
    ['control char', { ...ok, name: 'a\nb' }, /control/],
    ['no owner', { ...ok, owner: '' }, /owner/],
    ['no role', { ...ok, record: {} }, /record\.role/],
    ['reserved key', { ...ok, attributes: { name: 'x' } }, /built-in field/],
    ['keyword key', { ...ok, attributes: { AND: 1 } }, /keyword/],
    ['bad key', { ...ok, attributes: { 'a b': 1 } }, /must match/],
    ['NaN', { ...ok, attributes: { n: Number.NaN } }, /finite/],
    ['object value', { ...ok, attributes: { n: { value: [] } } }, /string, a finite number or a boolean/],
    ['bad visibility', { ...ok, attributes: { n: { value: 1, visibility: 'secret' } } }, /visibility/],
  ];
  for (const [label, reg, message] of cases)
    t.throws(() => dir.registerPoint(reg as never), { code: 'AMIX_ERR_INVALID_ARG', message }, label);
});

t.test('only the owner or the administrator may change or delete a point', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  const { id } = dir.registerPoint({ name: 'svc', owner: 'alice', record: receiver, attributes: { region: 'eu' } });
  t.throws(() => dir.deletePoint('svc', { as: bob }), { code: 'AMIX_ERR_NOT_OWNER' }, 'bob may not delete by name');
  t.throws(() => dir.deletePoint(id, { as: bob }), { code: 'AMIX_ERR_NOT_OWNER' }, 'nor by id');
  t.throws(
    () => dir.updatePoint('svc', { attributes: { region: 'us' } }, { as: bob }),
    { code: 'AMIX_ERR_NOT_OWNER' },
    'nor change it',
  );
  t.equal(dir.getPoint('svc')!.attributes.region!.value, 'eu', 'unchanged');
  const changed = dir.setAttributes('svc', { region: 'us', tier: { value: 2, visibility: 'private' } }, { as: alice });
  t.same(
    changed.attributes,
    { region: { value: 'us', visibility: 'public' }, tier: { value: 2, visibility: 'private' } },
    'the owner changes it',
  );
  dir.updatePoint(id, { record: { role: 'both' }, attributes: { tier: null } }, { as: admin });
  const now = dir.getPoint('svc', { as: alice })!;
  t.equal(now.record.role, 'both', 'the admin changes the record');
  t.notOk('tier' in now.attributes, 'null removed the attribute');
  t.same(
    dir.queryLocal('role = "both"').points.map((p) => p.name),
    ['svc'],
    'the role column follows the record',
  );
  dir.deletePoint('svc', { as: alice });
  t.equal(dir.getPoint('svc'), undefined, 'the owner deleted it');
  dir.registerPoint({ name: 'svc2', owner: 'alice', record: receiver });
  dir.deletePoint('svc2', { as: admin });
  t.equal(dir.getPoint('svc2'), undefined, 'the administrator deleted it');
  t.throws(
    () => dir.deletePoint('svc2', { as: admin }),
    { code: 'AMIX_ERR_UNKNOWN_POINT' },
    'deleting again: unknown point',
  );
  t.throws(
    () => dir.deletePoint('svc', { as: { owner: '' } }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'a principal needs an owner',
  );
});

t.test('private attributes are shown only to the owner and the administrator', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  dir.registerPoint({
    name: 'svc',
    owner: 'alice',
    record: receiver,
    attributes: { region: 'eu', token: { value: 'hunter2', visibility: 'private' } },
  });
  t.notOk('token' in dir.getPoint('svc')!.attributes, 'hidden from an anonymous asker');
  t.notOk('token' in dir.getPoint('svc', { as: bob })!.attributes, 'hidden from bob');
  t.equal(dir.getPoint('svc', { as: alice })!.attributes.token!.value, 'hunter2', 'shown to the owner');
  t.equal(dir.getPoint('svc', { as: admin })!.attributes.token!.value, 'hunter2', 'shown to the administrator');
  t.notOk('token' in (await dir.resolve('svc'))!.attributes, 'resolve hides it too');
});

t.test('the resolution cache never serves a deleted or changed point', async (t) => {
  const dir = new Directory({ path: ':memory:', cacheSize: 10 });
  t.teardown(() => dir.close());
  const { id } = dir.registerPoint({ name: 'svc', owner: 'alice', record: receiver, attributes: { v: 1 } });
  t.ok(dir.getPoint('svc'), 'cached by name');
  t.ok(dir.getPoint(id), 'cached by id');
  dir.setAttributes('svc', { v: 2 }, { as: alice });
  t.equal(dir.getPoint(id)!.attributes.v!.value, 2, 'a change is seen by id');
  t.equal(dir.getPoint('svc')!.attributes.v!.value, 2, 'and by name');
  dir.deletePoint(id, { as: alice });
  t.equal(dir.getPoint('svc'), undefined, 'deleted: not served by name');
  t.equal(dir.getPoint(id), undefined, 'deleted: not served by id');
  t.equal(await dir.resolve(id), undefined, 'resolve agrees');
  const again = dir.registerPoint({ name: 'svc', owner: 'bob', record: receiver });
  t.equal(dir.getPoint('svc')!.id, again.id, 'the name now resolves to the new point');
  t.equal(dir.getPoint(id), undefined, 'the old id stays gone');
});

t.test('a write by another connection to the same file invalidates the cache', async (t) => {
  const base = await tempDir(t);
  const a = new Directory({ stateDir: base });
  t.teardown(() => a.close());
  const b = new Directory({ stateDir: base });
  t.teardown(() => b.close());
  a.registerPoint({ name: 'svc', owner: 'alice', record: receiver });
  t.ok(a.getPoint('svc'), 'a caches it');
  b.deletePoint('svc', { as: alice });
  t.equal(a.getPoint('svc'), undefined, 'a sees the delete made through b');
});

t.test('primitives are registered, listed and deleted persistently', async (t) => {
  const base = await tempDir(t);
  const characteristics = {
    scopes: ['thread'],
    maxMessageBytes: 1024,
    ordering: 'fifo',
    delivery: 'reliable',
  } as const;
  let dir = new Directory({ stateDir: base });
  dir.registerPrimitive({ name: 'memory', location: '/x/memory.js', characteristics });
  dir.registerPrimitive({ name: 'alpha', location: 'alpha-pkg', characteristics });
  t.throws(
    () => dir.registerPrimitive({ name: 'memory', location: '/y', characteristics }),
    { code: 'AMIX_ERR_DUPLICATE' },
    'duplicate refused',
  );
  t.throws(
    () =>
      dir.registerPrimitive({
        name: 'bad',
        location: '/y',
        characteristics: { ...characteristics, scopes: ['pigeon'] },
      } as never),
    { code: 'AMIX_ERR_BAD_PRIMITIVE' },
    'malformed refused',
  );
  dir.close();
  dir = new Directory({ stateDir: base });
  t.teardown(() => dir.close());
  t.same(
    dir.listPrimitives().map((p) => p.name),
    ['alpha', 'memory'],
    'listed by name after reopening',
  );
  t.same(dir.getPrimitive('memory'), { name: 'memory', location: '/x/memory.js', characteristics }, 'stored as given');
  dir.deletePrimitive('memory');
  t.equal(dir.getPrimitive('memory'), undefined, 'deleted');
  t.throws(() => dir.deletePrimitive('memory'), { code: 'AMIX_ERR_UNKNOWN_PRIMITIVE' }, 'deleting again');
});

t.test('a closed directory refuses work with AMIX_ERR_CLOSED', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  dir.close();
  dir.close();
  t.ok(dir.closed, 'closed');
  t.throws(() => dir.getPoint('x'), { code: 'AMIX_ERR_CLOSED' }, 'sync call throws');
  await t.rejects(dir.query('exists name'), { code: 'AMIX_ERR_CLOSED' }, 'async call rejects');
  await t.rejects(dir.resolve('x'), { code: 'AMIX_ERR_CLOSED' }, 'resolve rejects');
});

t.test('a large batch stores every attribute and every one is found by query', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  const regs = Array.from({ length: 150 }, (_, i) => ({
    name: `p${i}`,
    owner: `o${i % 3}`,
    record: receiver,
    attributes: {
      mod: i % 7,
      tag: `t${i % 5}`,
      even: i % 2 === 0,
      ...(i % 4 === 0 ? { hidden: { value: i, visibility: 'private' as const } } : {}),
    },
  }));
  const ids = dir.registerPoints(regs);
  t.equal(ids.length, 150, 'one id per registration, in order');
  t.same(
    ids.map((r) => dir.getPoint(r.id)!.name),
    regs.map((r) => r.name),
    'each id names its own registration',
  );
  t.same(
    dir.getPoint('p8', { as: { owner: 'o2' } })!.attributes,
    {
      mod: { value: 1, visibility: 'public' },
      tag: { value: 't3', visibility: 'public' },
      even: { value: true, visibility: 'public' },
      hidden: { value: 8, visibility: 'private' },
    },
    'a point reads back with all its attributes',
  );
  for (const plan of ['index', 'scan'] as const) {
    t.equal(
      dir.queryLocal('mod = 3', { plan, limit: 1000 }).points.length,
      regs.filter((_, i) => i % 7 === 3).length,
      `mod = 3 (${plan})`,
    );
    t.equal(
      dir.queryLocal('tag = "t4" and even = false', { plan, limit: 1000 }).points.length,
      regs.filter((_, i) => i % 5 === 4 && i % 2 === 1).length,
      `tag and even (${plan})`,
    );
    t.equal(
      dir.queryLocal('exists hidden', { plan, limit: 1000, as: { owner: 'root', admin: true } }).points.length,
      38,
      `hidden, as admin (${plan})`,
    );
  }
});
