// The directory's parts cluster mode stands on: a replica (replicaOf) keeps
// another directory's identifiers and sequence numbers, is queried like any
// directory, checks what it is given, and federates; onChange tells a
// listener each committed change (and only committed ones).
import t from 'tap';
import { Directory, type DirectoryChange } from '../dist/lib/directory/index.js';

const SRC = '0123456789abcdef';
const point = (seq: number, name: string, zone: string) => ({
  seq,
  name,
  owner: 'uid:1',
  record: { role: 'receiver' as const },
  attributes: { zone: { value: zone, visibility: 'public' as const } },
  createdAt: 10,
  updatedAt: 20,
});

t.test('a replica keeps the source identifiers, replaces and deletes by sequence', async (t) => {
  const r = new Directory({ path: ':memory:', replicaOf: SRC });
  t.teardown(() => r.close());
  t.equal(r.id, SRC, 'the replica takes the id of the directory it mirrors');
  r.applyReplica([point(7, 'a', 'z1'), point(9, 'b', 'z2')]);
  t.match(r.getPoint('a'), { id: `${SRC}.7`, createdAt: 10, updatedAt: 20 }, 'a point keeps its sequence number');
  t.equal(r.getPoint(`${SRC}.9`)?.name, 'b', 'found by identifier');
  t.same(
    r.queryLocal('zone = "z2"').points.map((p) => p.id),
    [`${SRC}.9`],
    'queried through the indexes like any directory',
  );
  r.applyReplica([point(7, 'a', 'z3')]);
  t.equal(r.getPoint('a')?.attributes.zone?.value, 'z3', 'a put at a held sequence replaces the point');
  t.same(r.queryLocal('zone = "z1"').points, [], 'and its old attribute rows');
  r.applyReplica([point(11, 'a', 'z4')]);
  t.equal(r.getPoint('a')?.id, `${SRC}.11`, 'a name put at another sequence (deleted and taken again) moves');
  t.equal(r.getPoint(`${SRC}.7`), undefined, 'the old sequence is gone');
  r.applyReplica([], [9]);
  t.equal(r.getPoint('b'), undefined, 'deleted by sequence');
  t.equal(r.count(), 1, 'one point left');
});

t.test('a replica checks what it is given: a bad entry fails its batch, nothing half-applied', async (t) => {
  const r = new Directory({ path: ':memory:', replicaOf: SRC });
  t.teardown(() => r.close());
  t.throws(() => r.applyReplica([point(1, 'ok', 'z'), { ...point(2, '', 'z') }]), { code: 'AMIX_ERR_INVALID_ARG' });
  t.throws(() => r.applyReplica([point(0, 'zero', 'z')]), { code: 'AMIX_ERR_INVALID_ARG' }, 'sequence 0 refused');
  t.throws(
    () => r.applyReplica([{ ...point(3, 'x', 'z'), record: { role: 'nonsense' } as never }]),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'a bad record refused',
  );
  t.equal(r.count(), 0, 'the batch with a bad entry left nothing behind');
  t.throws(() => new Directory({ path: ':memory:', replicaOf: 'nope' }), { code: 'AMIX_ERR_INVALID_ARG' });
});

t.test('a replica as a federation peer: query and resolve merged in identifier order', async (t) => {
  const local = new Directory({ path: ':memory:' });
  const r = new Directory({ path: ':memory:', replicaOf: SRC });
  t.teardown(() => {
    local.close();
    r.close();
  });
  local.registerPoint({ name: 'mine', owner: 'uid:1', record: { role: 'both' }, attributes: { zone: 'z' } });
  r.applyReplica([point(1, 'theirs', 'z')]);
  local.addPeer(r);
  t.equal((await local.resolve('theirs'))?.id, `${SRC}.1`, 'resolved through the replica');
  const q = await local.query('zone = "z"');
  t.same(q.points.map((p) => p.name).sort(), ['mine', 'theirs'], 'query merges both');
  local.removePeer(r);
  t.equal(await local.resolve('theirs'), undefined, 'out of the federation, not offered');
});

t.test('onChange hears each committed put and delete, not a refused write', async (t) => {
  const d = new Directory({ path: ':memory:' });
  t.teardown(() => d.close());
  const seen: DirectoryChange[] = [];
  const off = d.onChange((c) => seen.push(c));
  const { id } = d.registerPoint({ name: 'p', owner: 'uid:1', record: { role: 'both' } });
  t.throws(() => d.registerPoint({ name: 'p', owner: 'uid:1', record: { role: 'both' } }), {
    code: 'AMIX_ERR_DUPLICATE',
  });
  const batch = d.registerPoints([
    { name: 'q', owner: 'uid:1', record: { role: 'both' } },
    { name: 'r', owner: 'uid:1', record: { role: 'both' } },
  ]);
  d.setAttributes('p', { a: 1 }, { as: { owner: 'uid:1' } });
  d.deletePoint('q', { as: { owner: 'uid:1' } });
  t.same(seen, [
    { op: 'put', id },
    { op: 'put', id: batch[0]!.id },
    { op: 'put', id: batch[1]!.id },
    { op: 'put', id },
    { op: 'delete', id: batch[0]!.id, name: 'q' },
  ]);
  d.onChange(() => {
    throw new Error('a listener that throws');
  });
  t.doesNotThrow(
    () => d.registerPoint({ name: 's', owner: 'uid:1', record: { role: 'both' } }),
    "a listener's throw is not the writer's",
  );
  t.equal(seen.length, 6, 'and the others still hear it');
  off();
  d.registerPoint({ name: 'u', owner: 'uid:1', record: { role: 'both' } });
  t.equal(seen.length, 6, 'a removed listener hears nothing more');
  t.same(d.ids(), [id, batch[1]!.id, `${d.id}.4`, `${d.id}.5`], 'ids() lists what is held, in order');
  t.equal(d.count(), 4);
});

t.test(
  'replicas answer a federated query from the parsed expression: same pages, order, limits and failures',
  async (t) => {
    // Three in-process replicas (the synchronous path) and one behind a plain
    // async peer (the forwarded path); the merged pages must be the ones a
    // single directory holding everything would give.
    const errors: unknown[] = [];
    const local = new Directory({ path: ':memory:', onPeerError: (err) => errors.push(err) });
    const ids = ['3' + SRC.slice(1), '1' + SRC.slice(1), '2' + SRC.slice(1), 'f' + SRC.slice(1)];
    const reps = ids.map((id) => new Directory({ path: ':memory:', replicaOf: id }));
    t.teardown(() => {
      local.close();
      for (const r of reps) r.close();
    });
    for (let i = 1; i <= 20; i++)
      local.registerPoint({
        name: `own${i}`,
        owner: 'uid:1',
        record: { role: 'both' },
        attributes: { zone: i % 2 ? 'odd' : 'even' },
      });
    reps.forEach((r, k) =>
      r.applyReplica(Array.from({ length: 20 }, (_, i) => point(2 * i + 1 + k, `r${k}-${i}`, i % 2 ? 'odd' : 'even'))),
    );
    const [r0, r1, r2, behind] = reps as [Directory, Directory, Directory, Directory];
    local.addPeer(r0);
    local.addPeer(r1);
    // r2 has a peer of its own: it is asked through query() and forwards to `behind`.
    r2.addPeer(behind);
    local.addPeer(r2);
    const everything = [local, ...reps]
      .flatMap((d) => d.queryLocal('zone = "odd"', { limit: 1000 }).points.map((p) => p.id))
      .sort((a, b) => {
        const [da, sa] = a.split('.');
        const [db, sb] = b.split('.');
        return da === db ? Number(sa) - Number(sb) : da! < db! ? -1 : 1;
      });
    t.equal(everything.length, 50, 'ten odd points in each of the five directories');
    const pages: string[] = [];
    for (let offset = 0; offset < 60; offset += 7) {
      const q = await local.query('zone = "odd"', { limit: 7, offset });
      pages.push(...q.points.map((p) => p.id));
      t.equal(q.more, offset + 7 < 50, `more flag at offset ${offset}`);
    }
    t.same(pages, everything, 'pages of 7 walk every directory in identifier order, each point once');
    t.same(
      (await local.query('zone = "odd" and role = "receiver"', { limit: 3 })).points.map((p) => p.id),
      everything.filter((id) => !id.startsWith(local.id)).slice(0, 3),
      'a planned (non-equality) query merges the same way',
    );
    t.same(
      (await local.query('zone = "odd"', { visited: [r1.id], limit: 1000 })).points.filter(
        (p) => p.directoryId === r1.id,
      ),
      [],
      'a replica already visited is not asked',
    );
    t.same(
      (await local.query('zone = "odd"', { hops: 1, limit: 1000 })).points.filter((p) => p.directoryId === behind.id),
      [],
      'the hop budget still stops at the replica with a peer of its own',
    );
    await t.rejects(
      local.query('zone = = "x"'),
      { code: 'AMIX_ERR_QUERY_SYNTAX' },
      'a bad query is refused once, up front',
    );
    r0.close();
    const after = await local.query('zone = "odd"', { limit: 1000 });
    t.equal(after.points.length, 40, 'a closed replica is skipped');
    t.equal(errors.length, 1, 'and reported to onPeerError');
    t.match(errors[0], { code: 'AMIX_ERR_CLOSED' }, 'with the reason');
  },
);
