// queueConditionThread passes the primitive contract suite, through the
// registry's built-in entry (so the module is loaded from dist/ by name):
// once with the defaults, once spinning on a ring small enough to wrap often.
import t from 'tap';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { conformance } from './helpers/conformance.js';

conformance(t, {
  name: 'queueConditionThread',
  registry: () => new PrimitiveRegistry(),
});

conformance(t, {
  name: 'queueConditionThread',
  registry: () => new PrimitiveRegistry(),
  options: { idle: 'spin', capacityBytes: 128 * 1024 },
});
