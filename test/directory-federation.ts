import t from 'tap';
import { Directory, type DirectoryPeer, type QueryOptions, type ResolveOptions } from '../dist/lib/directory/index.js';

const receiver = { role: 'receiver' } as const;

function open(t: { teardown(fn: () => unknown): void }): Directory {
  const dir = new Directory({ path: ':memory:' });
  t.teardown(() => dir.close());
  return dir;
}

/** A peer that counts calls and forwards to a directory, as a remote client would. */
function counting(dir: Directory) {
  const calls = { resolve: 0, query: 0 };
  const peer: DirectoryPeer = {
    id: dir.id,
    resolve: (n: string, o?: ResolveOptions) => {
      calls.resolve++;
      return dir.resolve(n, o);
    },
    query: (e: string, o?: QueryOptions) => {
      calls.query++;
      return dir.query(e, o);
    },
  };
  return { peer, calls };
}

t.test('a lookup the local directory cannot answer is answered through a peer', async (t) => {
  const a = open(t);
  const b = open(t);
  const { id } = b.registerPoint({
    name: 'remote-svc',
    owner: 'bob',
    record: receiver,
    attributes: { region: 'us', key: { value: 'k', visibility: 'private' } },
  });
  a.registerPoint({ name: 'local-svc', owner: 'alice', record: receiver });
  const { peer, calls } = counting(b);
  a.addPeer(peer);
  const byName = await a.resolve('remote-svc');
  t.equal(byName?.id, id, 'found by name through b');
  t.equal(byName?.directoryId, b.id, 'it says which directory holds it');
  t.notOk('key' in byName!.attributes, 'private attributes stay hidden across peers');
  t.equal((await a.resolve(id))?.name, 'remote-svc', 'found by identifier through b');
  t.equal(
    (await a.resolve(id, { as: { owner: 'bob' } }))?.attributes.key?.value,
    'k',
    'the owner sees private ones through the peer',
  );
  const before = calls.resolve;
  t.equal((await a.resolve('local-svc'))?.directoryId, a.id, 'a local point is answered locally');
  t.equal(calls.resolve, before, 'without asking the peer');
  t.equal(await a.resolve('nowhere'), undefined, 'unknown everywhere: undefined');
  t.equal(a.getPoint('remote-svc'), undefined, 'getPoint stays local');
});

t.test("a query merges the peers' matches in identifier order with stable paging", async (t) => {
  const a = open(t);
  const b = open(t);
  for (let i = 0; i < 7; i++) a.registerPoint({ name: `a${i}`, owner: 'o', record: receiver, attributes: { n: i } });
  for (let i = 0; i < 5; i++) b.registerPoint({ name: `b${i}`, owner: 'o', record: receiver, attributes: { n: i } });
  a.addPeer(b);
  const whole = await a.query('n >= 1', { limit: 100 });
  const expected = [...a.queryLocal('n >= 1').points, ...b.queryLocal('n >= 1').points]
    .map((p) => p.id)
    .sort((x, y) => {
      const [dx, sx] = x.split('.');
      const [dy, sy] = y.split('.');
      return dx! < dy! ? -1 : dx! > dy! ? 1 : Number(sx) - Number(sy);
    });
  t.same(
    whole.points.map((p) => p.id),
    expected,
    'all 10 matches, by directory id then sequence',
  );
  t.equal(whole.more, false, 'nothing more');
  const paged: string[] = [];
  for (let offset = 0; ; offset += 3) {
    const page = await a.query('n >= 1', { limit: 3, offset });
    paged.push(...page.points.map((p) => p.id));
    if (!page.more) break;
  }
  t.same(paged, expected, 'pages of 3 concatenate to the whole');
  await t.rejects(
    a.query('n >= '),
    { code: 'AMIX_ERR_QUERY_SYNTAX', details: { column: 6 } },
    'a syntax error is reported before forwarding',
  );
});

t.test('peers that know each other do not loop, and the hop budget is kept', async (t) => {
  const a = open(t);
  const b = open(t);
  const c = open(t);
  c.registerPoint({ name: 'far', owner: 'o', record: receiver });
  const pa = counting(a);
  const pb = counting(b);
  const pc = counting(c);
  a.addPeer(pb.peer);
  b.addPeer(pa.peer);
  b.addPeer(pc.peer);
  c.addPeer(pb.peer);
  t.equal(await a.resolve('missing'), undefined, 'a miss in a cycle terminates');
  t.equal(pa.calls.resolve, 0, 'a was never asked back');
  t.equal(pb.calls.resolve, 1, 'b asked once');
  t.equal(pc.calls.resolve, 1, 'c asked once');
  t.equal((await a.resolve('far'))?.directoryId, c.id, 'two hops away: found through b');
  t.equal(await a.resolve('far', { hops: 1 }), undefined, 'with one hop allowed c is out of reach');
  const q = await a.query('exists name');
  t.same(
    q.points.map((p) => p.name),
    ['far'],
    'a query reaches c once, no duplicates',
  );
  t.equal(pa.calls.query, 0, 'the query did not come back to a');
});

t.test('a failing peer is skipped and reported', async (t) => {
  const errors: unknown[] = [];
  const a = new Directory({ path: ':memory:', onPeerError: (err) => errors.push(err) });
  t.teardown(() => a.close());
  const b = open(t);
  b.registerPoint({ name: 'svc', owner: 'o', record: receiver });
  const broken: DirectoryPeer = {
    resolve: async () => {
      throw new Error('link down');
    },
    query: async () => {
      throw new Error('link down');
    },
  };
  a.addPeer(broken);
  a.addPeer(b);
  t.equal((await a.resolve('svc'))?.name, 'svc', 'the next peer answers');
  t.same(
    (await a.query('exists name')).points.map((p) => p.name),
    ['svc'],
    "the query gets the healthy peer's matches",
  );
  t.equal(errors.length, 2, 'both failures reported');
  t.throws(() => a.addPeer(a), { code: 'AMIX_ERR_INVALID_ARG' }, 'a directory is not its own peer');
  t.throws(() => a.addPeer({} as never), { code: 'AMIX_ERR_INVALID_ARG' }, 'a peer needs resolve and query');
  t.ok(a.removePeer(broken), 'removed');
});
