import t from 'tap';
import { Container, ModuleRequest, ModuleState, TRANSITIONS, isAllowed } from '../dist/lib/internal.js';

const settled: ModuleState[] = ['unloaded', 'loaded', 'started', 'quiesced', 'failed'];

/** Drive a fresh module into `state` through allowed transitions only. */
async function moduleIn(state: ModuleState, calls: string[]): Promise<Container> {
  const c = new Container({ name: 'test', quiesceTimeoutMs: 1000 });
  const record = (h: string) => () => {
    calls.push(h);
  };
  c.add('m', {
    load: record('load'),
    start: record('start'),
    unload: record('unload'),
    quiesce: () => {
      calls.push('quiesce');
      if (state === 'failed') throw new Error('boom');
    },
  });
  const path: Record<ModuleState, ModuleRequest[]> = {
    unloaded: [],
    loaded: ['load'],
    started: ['load', 'start'],
    quiesced: ['load', 'start', 'quiesce'],
    failed: ['load', 'start', 'quiesce'],
    loading: [],
    starting: [],
    quiescing: [],
    unloading: [],
  };
  for (const r of path[state]) await c[r]('m').catch(() => {});
  calls.length = 0;
  return c;
}

t.test('the state table: every request from every settled state', async (t) => {
  for (const from of settled) {
    for (const request of Object.values(ModuleRequest)) {
      const calls: string[] = [];
      const c = await moduleIn(from, calls);
      t.equal(c.get('m').state, from, `set-up reached ${from}`);
      if (isAllowed(from, request)) {
        await c[request]('m');
        t.same(calls, [request], `${request} from ${from}: handler ran once`);
        t.equal(
          c.get('m').state,
          TRANSITIONS[request].to,
          `${request} from ${from} ends in ${TRANSITIONS[request].to}`,
        );
      } else {
        await t.rejects(
          c[request]('m'),
          {
            code: 'AMIX_ERR_BAD_TRANSITION',
            details: { module: 'm', state: from, request },
          },
          `${request} from ${from} is refused, naming module, state and request`,
        );
        t.same(calls, [], `${request} from ${from}: handler not invoked`);
        t.equal(c.get('m').state, from, `${request} from ${from}: state unchanged`);
      }
    }
  }
});

t.test('a throwing handler leaves the state the table names', async (t) => {
  for (const request of Object.values(ModuleRequest)) {
    const c = new Container();
    const boom = () => {
      throw new Error(`${request} broke`);
    };
    c.add('m', { [request]: boom });
    const path: Record<ModuleRequest, ModuleRequest[]> = {
      load: [],
      start: ['load'],
      quiesce: ['load', 'start'],
      unload: ['load'],
    };
    for (const r of path[request]) await c[r]('m');
    const events: unknown[] = [];
    c.on('event', (e) => events.push(e));
    await t.rejects(
      c[request]('m'),
      { code: 'AMIX_ERR_HANDLER_FAILED', details: { request } },
      `${request} failure is reported`,
    );
    t.equal(
      c.get('m').state,
      TRANSITIONS[request].onError,
      `after a failed ${request} the module is ${TRANSITIONS[request].onError}`,
    );
    t.match(c.get('m').lastError, { cause: { message: `${request} broke` } }, 'lastError keeps the cause');
    t.ok(
      events.some((e) => (e as { type: string }).type === 'handlerError'),
      'a handlerError event was emitted',
    );
  }
});

t.test('a failed module can still be unloaded and removed', async (t) => {
  const c = new Container();
  c.add('m', {
    quiesce: () => {
      throw new Error('stuck');
    },
  });
  await c.load('m');
  await c.start('m');
  await t.rejects(c.quiesce('m'), { code: 'AMIX_ERR_HANDLER_FAILED' });
  t.equal(c.get('m').state, 'failed');
  await c.unload('m');
  c.remove('m');
  t.notOk(c.has('m'), 'removed');
});

t.test('quiesce stops new work and waits for in-flight work', async (t) => {
  const c = new Container();
  c.add('m', {});
  await c.load('m');
  await c.start('m');
  let release!: () => void;
  const work = c.run(
    'm',
    () =>
      new Promise<string>((r) => {
        release = () => r('done');
      }),
  );
  let quiesced = false;
  const q = c.quiesce('m').then(() => {
    quiesced = true;
  });
  await t.rejects(
    c.run('m', () => 1),
    { code: 'AMIX_ERR_NOT_ACCEPTING' },
    'new work refused while quiescing',
  );
  await new Promise((r) => setImmediate(r));
  t.equal(c.get('m').state, 'quiescing', 'still quiescing while work is in flight');
  t.notOk(quiesced, 'quiesce has not resolved');
  t.equal(c.get('m').inFlight, 1, 'one item in flight');
  release();
  t.equal(await work, 'done', 'the in-flight work completes');
  await q;
  t.ok(quiesced, 'quiesce resolved after the work finished');
  t.equal(c.get('m').state, 'quiesced');
});

t.test('quiesce times out with AMIX_ERR_QUIESCE_TIMEOUT and leaves the module failed', async (t) => {
  const c = new Container({ quiesceTimeoutMs: 30 });
  c.add('m', {});
  await c.load('m');
  await c.start('m');
  let release!: () => void;
  const work = c.run(
    'm',
    () =>
      new Promise<void>((r) => {
        release = r;
      }),
  );
  await t.rejects(c.quiesce('m'), { code: 'AMIX_ERR_QUIESCE_TIMEOUT', details: { inFlight: 1 } });
  t.equal(c.get('m').state, 'failed', 'failed after a quiesce timeout');
  release();
  await work;
});

t.test('start after quiesce resumes work (the table allows it)', async (t) => {
  const c = new Container();
  let signal: AbortSignal | undefined;
  c.add('m', {
    start: (ctx) => {
      signal = ctx.signal;
    },
  });
  await c.load('m');
  await c.start('m');
  const first = signal!;
  await c.quiesce('m');
  t.ok(first.aborted, 'the start signal was aborted by quiesce');
  await c.start('m');
  t.notOk(signal!.aborted, 'a fresh signal on restart');
  t.equal(await c.run('m', () => 42), 42, 'work accepted again');
});

t.test('concurrent requests on one module are serialised in arrival order', async (t) => {
  const c = new Container();
  const log: string[] = [];
  let active = 0;
  const slow = (name: string) => async () => {
    active++;
    t.equal(active, 1, `${name} runs alone`);
    log.push(`${name}:begin`);
    await new Promise((r) => setImmediate(r));
    log.push(`${name}:end`);
    active--;
  };
  c.add('m', { load: slow('load'), start: slow('start'), quiesce: slow('quiesce'), unload: slow('unload') });
  await Promise.all([c.load('m'), c.start('m'), c.quiesce('m'), c.unload('m')]);
  t.same(log, [
    'load:begin',
    'load:end',
    'start:begin',
    'start:end',
    'quiesce:begin',
    'quiesce:end',
    'unload:begin',
    'unload:end',
  ]);
  t.equal(c.get('m').state, 'unloaded');
});

t.test('the module database keeps name, state, metadata and timestamps', async (t) => {
  const c = new Container();
  const before = Date.now();
  c.add('m', {}, { version: '1.2.3' });
  await c.load('m');
  const rec = c.get('m');
  t.equal(rec.name, 'm');
  t.equal(rec.state, 'loaded');
  t.same(rec.metadata, { version: '1.2.3' });
  t.ok(rec.addedAt >= before && rec.changedAt >= rec.addedAt, 'timestamps are set');
  t.throws(() => c.add('m', {}), { code: 'AMIX_ERR_DUPLICATE' }, 'duplicate name refused');
  t.throws(
    () => c.add('x', { load: 5 as unknown as () => void }),
    { code: 'AMIX_ERR_INVALID_ARG' },
    'a handler must be a function',
  );
  t.throws(() => c.remove('m'), { code: 'AMIX_ERR_BAD_TRANSITION' }, 'a loaded module cannot be removed');
});

t.test('close brings modules down inside out (last added first)', async (t) => {
  const c = new Container();
  const log: string[] = [];
  for (const n of ['outer', 'inner']) {
    c.add(n, {
      quiesce: () => {
        log.push(`quiesce ${n}`);
      },
      unload: () => {
        log.push(`unload ${n}`);
      },
    });
    await c.load(n);
    await c.start(n);
  }
  await c.close();
  t.same(log, ['quiesce inner', 'unload inner', 'quiesce outer', 'unload outer']);
  t.same(c.list(), [], 'database empty after close');
});
