// The stand-in for a remote point at the sending daemon (lib/remote/flows.ts capQueue): its queue is
// cut to STAND_IN_MAXMSG, the remote point's other characteristics kept, and what it gives validates.
import t from 'tap';
import { capQueue } from '../dist/lib/remote/flows.js';
import { STAND_IN_MAXMSG } from '../dist/lib/remote/types.js';
import { normalizePoint } from '../dist/lib/fabric/point.js';

const point = (characteristics?: Record<string, unknown>) => ({
  name: 'tally',
  location: '/nowhere/tally.js',
  ...(characteristics ? { characteristics } : {}),
});

t.test('a remote point with the default or a larger maxmsg is queued at most STAND_IN_MAXMSG deep', async (t) => {
  t.equal(STAND_IN_MAXMSG, 1024);
  const dflt = normalizePoint(capQueue(point()));
  t.equal(dflt.characteristics.maxmsg, STAND_IN_MAXMSG, 'the default 4096 is cut');
  t.equal(dflt.characteristics.minmsg, STAND_IN_MAXMSG / 2, 'its minmsg is half of that');
  const big = normalizePoint(capQueue(point({ maxmsg: 4096, minmsg: 2048, scope: 'process' })));
  t.equal(big.characteristics.maxmsg, STAND_IN_MAXMSG, 'an explicit 4096 is cut');
  t.ok(big.characteristics.minmsg < big.characteristics.maxmsg, 'minmsg stays below maxmsg');
  t.equal(big.characteristics.scope, 'process', 'other characteristics are kept');
  const zero = normalizePoint(capQueue(point({ maxmsg: 3000, minmsg: 0 })));
  t.equal(zero.characteristics.minmsg, 0, 'a minmsg of 0 stays 0');
});

t.test('a remote point with a smaller maxmsg keeps it', async (t) => {
  const small = normalizePoint(capQueue(point({ maxmsg: 8, minmsg: 2 })));
  t.equal(small.characteristics.maxmsg, 8);
  t.equal(small.characteristics.minmsg, 2);
  const input = point({ maxmsg: 100 });
  t.equal(capQueue(input), input, 'given back unchanged');
});
