import t from 'tap';
import { readFile } from 'node:fs/promises';
import { AmixError, ErrorCode, errorFromPlain, errorToPlain, isAmixError } from '../dist/lib/internal.js';

t.test('docs/errors.md lists every code and no other', async (t) => {
  const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/`(AMIX_ERR_\w+)`/g)].map((m) => m[1]).sort();
  t.same(documented, Object.values(ErrorCode).sort());
});

t.test('an error survives the trip to plain fields and back', async (t) => {
  const err = new AmixError('AMIX_ERR_QUEUE_FULL', 'full', { details: { pending: 8, fn: () => 1 } });
  const back = errorFromPlain(JSON.parse(JSON.stringify(errorToPlain(err))));
  t.ok(isAmixError(back, 'AMIX_ERR_QUEUE_FULL'));
  t.same(back.details, { pending: 8 }, 'only plain details travel');
  t.equal(
    errorFromPlain({ code: 'NOT_A_CODE', message: 'x' }).code,
    'AMIX_ERR_INTERNAL',
    'unknown codes become internal',
  );
  t.equal(errorToPlain(new TypeError('boom')).code, 'AMIX_ERR_INTERNAL');
});
