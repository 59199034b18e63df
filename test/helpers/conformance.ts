// The primitive contract suite under tap: a thin adapter over the library's
// cases (lib/core/conformanceCases.ts, also run by `amix conformance`). Each
// case is a tap subtest whose assertions are tap's own, so every check still
// shows in the report. Each primitive's test file calls `conformance()` with
// its registry and name; a primitive the host cannot run is skipped by its
// caller with a warning.
import type { Test } from 'tap';
import { conformanceCases } from '../../dist/lib/core/conformance.js';
import type { ConformanceContext, ConformanceTarget } from '../../dist/lib/core/conformance.js';

export type { ConformanceTarget };

/** Like AbortSignal.timeout, but its timer is ref'd, so the test stays alive while it waits. */
export function timeoutSignal(t: Test, ms: number): AbortSignal {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`timed out after ${ms} ms`)), ms);
  t.teardown(() => clearTimeout(timer));
  return ac.signal;
}

/** A case context whose assertions and teardowns are the tap test's. */
function tapContext(t: Test): ConformanceContext {
  return {
    teardown: (fn) => t.teardown(fn as () => void),
    equal: (a, b, m) => void t.equal(a, b, m),
    same: (a, b, m) => void t.same(a, b, m),
    ok: (v, m) => void t.ok(v, m),
    notOk: (v, m) => void t.notOk(v, m),
    rejects: async (p, pattern, m) => void (await t.rejects(p, pattern as object, m)),
    resolves: async (p, m) => void (await t.resolves(p, m)),
    signal: timeoutSignal(t, 60_000),
    timeoutSignal: (ms) => timeoutSignal(t, ms),
  };
}

/** Run the contract suite for one primitive as subtests of `t`. */
export function conformance(t: Test, target: ConformanceTarget): void {
  for (const c of conformanceCases(target)) t.test(c.name, (t) => c.run(tapContext(t)));
}
