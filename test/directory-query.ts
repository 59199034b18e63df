import t from 'tap';
import { Directory, evaluateQuery, optimizeQuery, parseQuery, type PointView } from '../dist/lib/directory/index.js';

// A small fixture: names p1..p8 with mixed attribute types; p3 carries a private attribute owned by "alice".
const points = [
  {
    name: 'p1',
    owner: 'alice',
    record: { role: 'receiver' },
    attributes: { region: 'eu-west', port: 80, gpu: true, tier: 1 },
  },
  {
    name: 'p2',
    owner: 'bob',
    record: { role: 'sender' },
    attributes: { region: 'eu-north', port: 443, gpu: false, backup: 'p1' },
  },
  {
    name: 'p3',
    owner: 'alice',
    record: { role: 'both' },
    attributes: { region: 'us-east', port: 8080, secret: { value: 'k', visibility: 'private' } },
  },
  { name: 'p4', owner: 'bob', record: { role: 'receiver' }, attributes: { region: 'EU-west', port: '80', tier: 2.5 } },
  {
    name: 'p5',
    owner: 'carol',
    record: { role: 'receiver' },
    attributes: { region: 'eu*star', label: 'a?b', tier: -3 },
  },
  {
    name: 'p6',
    owner: 'carol',
    record: { role: 'sender' },
    attributes: { region: 'ap-south', label: 'axb', note: 'café ✓ 🚀' },
  },
  { name: 'p7', owner: 'dave', record: { role: 'receiver' }, attributes: {} },
  { name: 'p8', owner: 'dave', record: { role: 'sender' }, attributes: { region: 'eu', tier: 1e3 } },
] as const;

function setup(t: { teardown(fn: () => unknown): void }): Directory {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  dir.registerPoints(points as never);
  return dir;
}

const table: Array<[string, string[]]> = [
  ['role = "receiver"', ['p1', 'p4', 'p5', 'p7']],
  ['role = "receiver" and (region = "eu*" or not exists backup)', ['p1', 'p4', 'p5', 'p7']],
  ['role = "receiver" and (region = "eu*" or not exists tier)', ['p1', 'p5', 'p7']],
  ['region = "eu*"', ['p1', 'p2', 'p5', 'p8']],
  ['region = "eu-?????"', ['p2']],
  ['region = "eu-????"', ['p1']],
  ['region = "eu\\*star"', ['p5']],
  ['region = "eu\\**"', ['p5']],
  ['region = "*west"', ['p1', 'p4']],
  ['region = "*"', ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p8']],
  ['region != "eu*"', ['p3', 'p4', 'p6']],
  ['not region = "eu*"', ['p3', 'p4', 'p6', 'p7']],
  ['label = "a?b"', ['p5', 'p6']],
  ['label = "a\\?b"', ['p5']],
  ['port = 80', ['p1']],
  ['port = "80"', ['p4']],
  ['port != 80', ['p2', 'p3', 'p4']],
  ['port > 100', ['p2', 'p3']],
  ['port >= 443 and port < 8080', ['p2']],
  ['port <= 80', ['p1']],
  ['port < "9"', ['p4']],
  ['tier > 0', ['p1', 'p4', 'p8']],
  ['tier < 0', ['p5']],
  ['tier = 1000', ['p8']],
  ['tier = 1e3', ['p8']],
  ['tier >= 2.5', ['p4', 'p8']],
  ['tier > -3.5 and tier < 1.5', ['p1', 'p5']],
  ['gpu = true', ['p1']],
  ['gpu = false', ['p2']],
  ['gpu != true', ['p2']],
  ['gpu = 1', []],
  ['exists backup', ['p2']],
  ['not exists region', ['p7']],
  ['exists name', ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']],
  ['not (exists region or exists tier)', ['p7']],
  ['not not role = "sender"', ['p2', 'p6', 'p8']],
  ['role = "sender" or role = "both"', ['p2', 'p3', 'p6', 'p8']],
  ['role = "sender" and region = "eu*" or tier < 0', ['p2', 'p5', 'p8']],
  ['role = "sender" and (region = "eu*" or tier < 0)', ['p2', 'p8']],
  ['ROLE = "sender" AND NOT Region = "eu*"', []],
  ['role = "sender" AND NOT region = "eu*"', ['p6']],
  ['owner = "carol"', ['p5', 'p6']],
  ['owner != "carol" and owner < "c"', ['p1', 'p2', 'p3', 'p4']],
  ['name = "p?"', ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']],
  ['name > "p6"', ['p7', 'p8']],
  ['name = 1', []],
  ['name != 1', ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']],
  ['note = "café ✓ 🚀"', ['p6']],
  ['note = "caf\\u00e9 \\u2713 \\u{1F680}"', ['p6']],
  ['note = "caf? ? ?"', ['p6']],
  ['port > 79 and port < 444 and role = "sender"', ['p2']],
  ['region >= "eu" and region < "ev"', ['p1', 'p2', 'p5', 'p8']],
  ['tier > 0 and tier < 2 or tier > 100', ['p1', 'p8']],
  ['tier >= 1 and tier <= 1 and tier < "x"', []],
  ['not (port >= 80 and port <= 443)', ['p3', 'p4', 'p5', 'p6', 'p7', 'p8']],
  ['secret = "k"', []],
  ['exists secret', []],
  ['not exists secret', ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']],
];

t.test('the grammar table matches the expected points through SQL and through the in-memory evaluator', async (t) => {
  const dir = setup(t);
  for (const [expr, expected] of table) {
    for (const plan of ['auto', 'index', 'scan'] as const) {
      const got = dir.queryLocal(expr, { limit: 100, plan }).points.map((p) => p.name);
      t.same(got, expected, `SQL (${plan}): ${expr}`);
    }
    const ast = parseQuery(expr);
    const all = dir.queryLocal('exists name', { limit: 100 }).points;
    const mem = all.filter((p) => evaluateQuery(ast, subject(p))).map((p) => p.name);
    t.same(mem, expected, `evaluator: ${expr}`);
    const optimized = all.filter((p) => evaluateQuery(optimizeQuery(ast), subject(p))).map((p) => p.name);
    t.same(optimized, expected, `evaluator, optimized: ${expr}`);
  }
});

function subject(p: PointView) {
  return {
    id: p.id,
    name: p.name,
    owner: p.owner,
    role: p.record.role,
    attributes: Object.fromEntries(Object.entries(p.attributes).map(([k, a]) => [k, a.value])),
  };
}

t.test('built-in id matches by identifier, exact or wildcard', async (t) => {
  const dir = setup(t);
  const p3 = dir.getPoint('p3')!;
  t.same(
    dir.queryLocal(`id = "${p3.id}"`).points.map((p) => p.name),
    ['p3'],
    'exact id',
  );
  t.same(
    dir.queryLocal(`id != "${p3.id}" and role = "both"`).points.map((p) => p.name),
    [],
    'id !=',
  );
  t.same(dir.queryLocal(`id = "${dir.id}.*"`).points.length, 8, 'wildcard over the directory id');
  t.same(dir.queryLocal('id = "0000000000000000.3"').points, [], "another directory's id matches nothing here");
});

t.test('private attributes are matched for the owner and the administrator only', async (t) => {
  const dir = setup(t);
  for (const plan of ['index', 'scan'] as const) {
    t.same(
      dir.queryLocal('secret = "k"', { as: { owner: 'alice' }, plan }).points.map((p) => p.name),
      ['p3'],
      `owner matches (${plan})`,
    );
    t.same(
      dir.queryLocal('exists secret', { as: { owner: 'bob' }, plan }).points,
      [],
      `another owner does not (${plan})`,
    );
    t.same(dir.queryLocal('secret != "x"', { plan }).points, [], `anonymous does not (${plan})`);
  }
  t.same(
    dir.queryLocal('secret = "k"', { as: { owner: 'alice' } }).points.map((p) => p.name),
    ['p3'],
    'owner matches',
  );
  t.same(
    dir.queryLocal('exists secret', { as: { owner: 'root', admin: true } }).points.map((p) => p.name),
    ['p3'],
    'admin matches',
  );
  t.same(dir.queryLocal('exists secret', { as: { owner: 'bob' } }).points, [], 'another owner does not');
  t.same(dir.queryLocal('secret != "zzz"', { as: { owner: 'bob' } }).points, [], '!= does not reveal it either');
  t.equal(
    dir.queryLocal('not exists secret', { as: { owner: 'bob' } }).points.length,
    8,
    'to bob every point lacks it',
  );
  const shown = dir.queryLocal('name = "p3"', { as: { owner: 'bob' } }).points[0]!;
  t.notOk('secret' in shown.attributes, 'query results do not show it to bob');
  const own = dir.queryLocal('name = "p3"', { as: { owner: 'alice' } }).points[0]!;
  t.same(own.attributes.secret, { value: 'k', visibility: 'private' }, 'the owner sees it with its visibility');
});

t.test('results come in identifier order and page stably', async (t) => {
  const dir = setup(t);
  const all = dir.queryLocal('exists name', { limit: 100 });
  t.equal(all.more, false, 'one page holds all');
  const pages: string[] = [];
  for (let offset = 0; ; offset += 3) {
    const page = dir.queryLocal('exists name', { limit: 3, offset });
    pages.push(...page.points.map((p) => p.name));
    if (!page.more) break;
  }
  t.same(
    pages,
    all.points.map((p) => p.name),
    'pages of 3 concatenate to the whole',
  );
  t.same(
    all.points.map((p) => p.name),
    ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8'],
    'identifier order',
  );
  t.throws(() => dir.queryLocal('exists name', { limit: 0 }), { code: 'AMIX_ERR_INVALID_ARG' }, 'limit 0 refused');
  t.throws(
    () => dir.queryLocal('exists name', { offset: -1 }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'negative offset refused',
  );
});

const malformed: Array<[string, number]> = [
  ['', 1],
  ['   ', 4],
  ['region', 7],
  ['region =', 9],
  ['region = ', 10],
  ['region "eu"', 8],
  ['= "eu"', 1],
  ['region == "eu"', 9],
  ['region = "eu', 10],
  ['region = "eu\\x"', 13],
  ['region = "\\u12"', 11],
  ['(role = "a"', 12],
  ['role = "a")', 11],
  ['role = "a" region = "b"', 12],
  ['role = "a" and', 15],
  ['and role = "a"', 1],
  ['not', 4],
  ['exists', 7],
  ['exists "x"', 8],
  ['exists 5', 8],
  ['()', 2],
  ['a ! b', 3],
  ['a = 1 & b = 2', 7],
  ['a < true', 5],
  ['a = 12abc', 5],
  ['a = 1.2.3', 5],
  ['a = -', 5],
  ['a = and', 5],
  ['a = @', 5],
  ['🚀 = 1', 1],
  ['x = "🚀" and 🚀', 13],
  ['a = 1 or or b = 2', 10],
  ['not (a = 1', 11],
  ['((a = 1) and (b = 2)', 21],
];

t.test('malformed queries fail with AMIX_ERR_QUERY_SYNTAX at the expected column', async (t) => {
  for (const [expr, column] of malformed) {
    t.throws(
      () => parseQuery(expr),
      { code: 'AMIX_ERR_QUERY_SYNTAX', details: { column }, message: new RegExp(`column ${column}\\b`) },
      `${JSON.stringify(expr)} → column ${column}`,
    );
  }
});

t.test('deep nesting and over-long queries are refused, not stack-overflowed', async (t) => {
  t.throws(
    () => parseQuery('('.repeat(100) + 'a = 1' + ')'.repeat(100)),
    { code: 'AMIX_ERR_QUERY_SYNTAX', details: { column: 65 } },
    'nesting limit',
  );
  t.throws(() => parseQuery('not '.repeat(100) + 'a = 1'), { code: 'AMIX_ERR_QUERY_SYNTAX' }, 'not-chain limit');
  t.throws(() => parseQuery('a = 1 or '.repeat(1000) + 'a = 1'), { code: 'AMIX_ERR_INVALID_ARG' }, 'length limit');
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  const wide = Array.from({ length: 400 }, (_, i) => `a = ${i}`).join(' or ');
  t.same(dir.queryLocal(wide).points, [], 'a wide flat or-chain compiles and runs');
});

const hostile = [
  "'; DROP TABLE points; --",
  '" OR 1=1 --',
  '%',
  '_',
  '%_%',
  "'",
  "''",
  '\\',
  '\\\\',
  '"',
  '[',
  ']',
  '[a-z]',
  '^',
  '\u0000',
  'ünï©ødé ✓',
  '🚀🚀',
  '\n\t\r',
  "x' UNION SELECT seq, name, owner, record, 0, 0 FROM points --",
];

function quote(v: string): string {
  return (
    '"' +
    [...v]
      .map((c) =>
        c === '"' || c === '\\' || c === '*' || c === '?'
          ? '\\' + c
          : c === '\n'
            ? '\\n'
            : c === '\t'
              ? '\\t'
              : c === '\r'
                ? '\\r'
                : c === '\u0000'
                  ? '\\u0000'
                  : c,
      )
      .join('') +
    '"'
  );
}

t.test('hostile values are stored and matched as plain data', async (t) => {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  hostile.forEach((v, i) =>
    dir.registerPoint({ name: `h${i}`, owner: 'o', record: { role: 'both' }, attributes: { v, [`k${i}`]: v } }),
  );
  dir.registerPoint({ name: 'plain', owner: 'o', record: { role: 'both' }, attributes: { v: 'plain' } });
  hostile.forEach((v, i) => {
    t.same(
      dir.queryLocal(`v = ${quote(v)}`).points.map((p) => p.name),
      [`h${i}`],
      `= ${JSON.stringify(v)} matches exactly one point`,
    );
    t.same(
      dir
        .queryLocal(`v = ${quote(v)}*`.replace(/"\*$/, '*"'))
        .points.map((p) => p.name)
        .includes(`h${i}`),
      true,
      `prefix wildcard ${JSON.stringify(v)}`,
    );
    t.equal(dir.getPoint(`h${i}`)!.attributes.v!.value, v, `${JSON.stringify(v)} round-trips`);
  });
  t.equal(dir.queryLocal('v = "%"').points.length, 1, '% is not a LIKE wildcard');
  t.equal(dir.queryLocal('v = "_"').points.length, 1, '_ is not a LIKE wildcard');
  t.equal(dir.queryLocal('v = "[a-z]"').points.length, 1, '[a-z] is not a GLOB class');
  t.equal(
    dir.queryLocal('exists name', { limit: 1000 }).points.length,
    hostile.length + 1,
    'no table was dropped, nothing extra returned',
  );
  const named = `'; DROP TABLE points; --`;
  dir.registerPoint({ name: named, owner: "o'; --", record: { role: 'both' } });
  t.equal(dir.getPoint(named)!.owner, "o'; --", 'hostile name and owner round-trip');
  t.same(
    dir.queryLocal(`name = ${quote(named)}`).points.map((p) => p.name),
    [named],
    'hostile name matches itself',
  );
});
