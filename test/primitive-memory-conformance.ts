// The user primitive from test/fixtures passes the same contract suite as the
// built-ins: a new transport needs no change to amix.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { conformance } from './helpers/conformance.js';

const location = fileURLToPath(new URL('./fixtures/memory-primitive.mjs', import.meta.url));

conformance(t, {
  name: 'memory',
  registry: () => {
    const reg = new PrimitiveRegistry({ builtins: false });
    reg.register({
      name: 'memory',
      location,
      characteristics: { scopes: ['thread'], maxMessageBytes: 1 << 20, ordering: 'fifo', delivery: 'reliable' },
    });
    return reg;
  },
});
