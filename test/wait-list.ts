// WaitList (lib/core/waitList.ts), the one home of every abortable wait:
// first in, first out; an abort, a timeout or a close settles a waiter once
// and takes it off the list.
import t from 'tap';
import { WaitList } from '../dist/lib/internal.js';

/** 'pending' if `p` has not settled by the next turn of the event loop. */
async function state(p: Promise<unknown>): Promise<string> {
  return Promise.race([
    p.then(
      (v) => `resolved ${String(v)}`,
      (e: { code?: string }) => `rejected ${e.code ?? String(e)}`,
    ),
    new Promise<string>((r) => setImmediate(() => r('pending'))),
  ]);
}

t.test('waiters are served first in, first out, each once', async (t) => {
  const l = new WaitList<string, number>();
  const a = l.wait('a');
  const b = l.wait('b');
  t.equal(l.length, 2);
  t.same(l.values(), ['a', 'b'], 'values oldest first');
  t.equal(l.peek(), 'a');
  const first = l.shift()!;
  t.equal(first.value, 'a', 'shift takes the oldest');
  first.resolve(1);
  first.resolve(2);
  first.reject(new Error('late'));
  t.equal(await a, 1, 'a waiter settles once, with the first result');
  t.equal(await state(b), 'pending', 'the next one still waits');
  l.shift()!.resolve(3);
  t.equal(await b, 3);
  t.equal(l.shift(), undefined, 'empty');
});

t.test('an abort takes the waiter off the list and rejects it with AMIX_ERR_ABORTED', async (t) => {
  const l = new WaitList<number>();
  const ac = new AbortController();
  const a = l.wait(1, { signal: ac.signal, what: 'receive' });
  const b = l.wait(2);
  ac.abort(new Error('stop'));
  await t.rejects(a, { code: 'AMIX_ERR_ABORTED', message: /receive was aborted/ });
  t.same(l.values(), [2], 'the aborted waiter left the list; the other kept its place');
  l.shift()!.resolve();
  await b;
  await t.rejects(
    l.wait(3, { signal: AbortSignal.abort() }),
    { code: 'AMIX_ERR_ABORTED' },
    'an already aborted signal rejects at once',
  );
  t.equal(l.length, 0, 'and never joins the list');
});

t.test('a timeout rejects with AMIX_ERR_TIMEOUT and its details', async (t) => {
  const l = new WaitList<number>();
  const p = l.wait(1, { timeoutMs: 20, what: 'cycle', details: { op: 'cycle', timeoutMs: 20 } });
  const err = await p.catch((e: { code: string; details: unknown }) => e);
  t.match(err, { code: 'AMIX_ERR_TIMEOUT', details: { op: 'cycle', timeoutMs: 20 } });
  t.equal(l.length, 0, 'the timed-out waiter left the list');
});

t.test('serving a waiter clears its abort listener and timer', async (t) => {
  const l = new WaitList<number, string>();
  const ac = new AbortController();
  const p = l.wait(1, { signal: ac.signal, timeoutMs: 50 });
  l.shift()!.resolve('served');
  ac.abort();
  t.equal(await p, 'served', 'a later abort does not turn a served waiter into a rejection');
  await new Promise((r) => setTimeout(r, 80));
  t.equal(await state(p), 'resolved served', 'nor does the timer');
});

t.test('take, resolveAll and rejectAll settle every matching waiter', async (t) => {
  const l = new WaitList<number, string>();
  const ps = [1, 2, 3, 4].map((n) => l.wait(n));
  const even = l.take((n) => n % 2 === 0);
  t.same(
    even.map((w) => w.value),
    [2, 4],
    'take returns the matches, oldest first',
  );
  for (const w of even) w.resolve('even');
  t.same(l.values(), [1, 3], 'and leaves the others in order');
  l.resolveAll('rest');
  t.same(await Promise.all(ps), ['rest', 'even', 'rest', 'even']);
  const q = [l.wait(5), l.wait(6)];
  l.rejectAll(Object.assign(new Error('closed'), { code: 'AMIX_ERR_LINK_CLOSED' }));
  for (const p of q) await t.rejects(p, { code: 'AMIX_ERR_LINK_CLOSED' });
  t.equal(l.length, 0);
});
