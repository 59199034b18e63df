import t from 'tap';
import { Directory, evaluateQuery, parseQuery } from '../dist/lib/directory/index.js';

// Enough points that the planner counts leaves and mixes driving and filtering.
const N = 3000;
const regions = ['eu-west', 'eu-north', 'us-east', 'ap-south'];

t.test(
  'every plan returns the same pages as the in-memory evaluator on a directory large enough to plan',
  async (t) => {
    const dir = new Directory({ path: ':memory:' });
    t.teardown(() => dir.close());
    dir.registerPoints(
      Array.from({ length: N }, (_, i) => ({
        name: `svc-${i}`,
        owner: `o${i % 4}`,
        record: { role: (['sender', 'receiver', 'both'] as const)[i % 3]! },
        attributes: {
          zone: `z-${i % 500}`,
          region: regions[i % 4]!,
          port: (i * 7919) % 10_000,
          tier: i % 10,
          gpu: i % 3 === 0,
          ...(i % 2 ? { backup: 'yes' } : {}),
          ...(i % 10 === 0 ? { secret: { value: `s${i % 7}`, visibility: 'private' as const } } : {}),
        },
      })),
    );
    const all = dir.queryLocal('exists name', { limit: N, as: { owner: 'root', admin: true } }).points;
    const queries = [
      'zone = "z-17"',
      'zone = "z-17" and tier < 5',
      'tier < 5 and zone = "z-17"',
      'port >= 1000 and port < 1100',
      'port >= 1000 and port < 1100 and region = "eu*"',
      'region = "eu*" and not exists backup',
      'zone = "z-1" or zone = "z-2" or port < 20',
      'zone = "z-1" or tier = 3',
      '(zone = "z-3" or zone = "z-4") and gpu = true',
      'role = "receiver" and (region = "eu*" or not exists backup) and tier < 3',
      'exists backup and tier = 9',
      'not zone = "z-5"',
      'secret = "s3"',
      'exists secret and zone = "z-10"',
      'name = "svc-42" and tier = 2',
    ];
    const askers = [undefined, { owner: 'o2' }, { owner: 'root', admin: true }];
    for (const expr of queries) {
      const ast = parseQuery(expr);
      for (const as of askers) {
        const expected = all
          .filter((p) => {
            const sees = as !== undefined && (as.admin === true || as.owner === p.owner);
            const attributes = Object.fromEntries(
              Object.entries(p.attributes)
                .filter(([, a]) => sees || a.visibility === 'public')
                .map(([k, a]) => [k, a.value]),
            );
            return evaluateQuery(ast, { id: p.id, name: p.name, owner: p.owner, role: p.record.role, attributes });
          })
          .map((p) => p.name);
        for (const plan of ['auto', 'index', 'scan'] as const) {
          const first = dir.queryLocal(expr, { plan, as, limit: 50 });
          const second = dir.queryLocal(expr, { plan, as, limit: 50, offset: 50 });
          t.same(
            [...first.points, ...second.points].map((p) => p.name),
            expected.slice(0, 100),
            `${plan} as ${as?.owner ?? 'anonymous'}: ${expr}`,
          );
          t.equal(second.more, expected.length > 100, `${plan}: more flag for ${expr}`);
        }
      }
    }
  },
);

t.test(
  'an equality on an attribute (the index fast path) pages like the planned query, whatever its type or density',
  async (t) => {
    const dir = new Directory({ path: ':memory:' });
    t.teardown(() => dir.close());
    dir.registerPoints(
      Array.from({ length: N }, (_, i) => ({
        name: `eq-${i}`,
        owner: `o${i % 3}`,
        record: { role: 'receiver' as const },
        attributes: {
          region: regions[i % 4]!,
          tier: i % 10,
          label: String(i % 10),
          gpu: i % 3 === 0,
          ...(i % 5 === 0 ? { secret: { value: 'k', visibility: 'private' as const } } : {}),
        },
      })),
    );
    // Deleted points leave holes in the sequence: pages must still come in identifier order.
    for (let i = 0; i < N; i += 7) dir.deletePoint(`eq-${i}`, { as: { owner: 'root', admin: true } });
    const queries = [
      'region = "eu-west"',
      'tier = 3',
      'label = "3"',
      'gpu = true',
      'gpu = false',
      'secret = "k"',
      'tier = 11',
    ];
    for (const expr of queries) {
      for (const as of [undefined, { owner: 'o1' }, { owner: 'root', admin: true }]) {
        const reference = dir.queryLocal(expr, { plan: 'scan', as, limit: N }).points.map((p) => p.id);
        const got: string[] = [];
        let more = true;
        for (let offset = 0; more; offset += 97) {
          const page = dir.queryLocal(expr, { as, limit: 97, offset });
          got.push(...page.points.map((p) => p.id));
          more = page.more;
          t.equal(
            page.more,
            offset + 97 < reference.length,
            `${expr} as ${as?.owner ?? 'anonymous'}: more at ${offset}`,
          );
        }
        t.same(got, reference, `${expr} as ${as?.owner ?? 'anonymous'}: the same matches, in identifier order`);
      }
    }
    t.same(
      dir.queryLocal('tier = 3', { limit: N }).points.map((p) => p.id),
      dir.queryLocal('tier = 3', { plan: 'index', limit: N }).points.map((p) => p.id),
      'the fast path and the index plan agree',
    );
    t.same(dir.queryLocal('label = 3', { limit: N }).points, [], 'a number never equals a string attribute');
    const secret = dir.queryLocal('secret = "k"', { as: { owner: 'o1' }, limit: N }).points;
    t.ok(secret.length > 0, 'a private attribute matches for its owner');
    t.ok(
      secret.every((p) => p.owner === 'o1'),
      "and only the owner's points",
    );
    t.same(dir.queryLocal('secret = "k"', { limit: N }).points, [], 'never for the anonymous asker');
  },
);
