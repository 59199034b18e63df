// The seed's example of the threaded state machine (seed 002 ¶644-654): make-like
// rules evaluated by a state machine. Each rule is a datum; "stamp" compares its
// target with its prerequisites and "build" runs its action, each state in threads
// of its own. B and C do not depend on each other, so they go through at once;
// A waits for both. Run: node dist/examples/state-machine.js
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fabric, StateMachine } from '../lib/index.js';

/** A rule: `target: prerequisites`, and what the build state does with them. */
export interface Rule {
  target: string;
  prerequisites: string[];
}

const dir = mkdtempSync(join(tmpdir(), 'amix-sm-example-'));
const f = (name: string): string => join(dir, name);
writeFileSync(f('b'), 'bee\n');
writeFileSync(f('c'), 'sea\n');
// rule 1  A: B C (concatenate)   rule 2  B: b (copy)   rule 3  C: c (copy)
const rules: Record<string, Rule> = {
  A: { target: f('A'), prerequisites: [f('B'), f('C')] },
  B: { target: f('B'), prerequisites: [f('b')] },
  C: { target: f('C'), prerequisites: [f('c')] },
};

await using fabric = new Fabric();
const sm = new StateMachine(fabric, {
  states: {
    stamp: {
      start: true,
      location: new URL('./states/stamp.js', import.meta.url).href,
      transitions: { stale: 'build', fresh: 'upToDate' },
    },
    build: { location: new URL('./states/build.js', import.meta.url).href, transitions: { built: 'built' } },
    built: { end: true },
    upToDate: { end: true },
  },
});
await sm.start();

/** Evaluate A: its prerequisites B and C first, together, then A itself. */
async function make(round: string): Promise<void> {
  const evaluate = async (name: string) => {
    const r = await (await sm.attach(rules[name])).done;
    return `${name} ${r.state}${r.error ? ` (${r.error})` : ''}`;
  };
  const prereqs = await Promise.all(['B', 'C'].map(evaluate));
  console.log(`${round}: ${[...prereqs, await evaluate('A')].join(', ')}`);
}

await make('first run');
await make('second run');
// c changes: C is stale again, so is A; B is not.
const later = new Date(Date.now() + 5000);
utimesSync(f('c'), later, later);
await make('after touching c');
await sm.close();
rmSync(dir, { recursive: true, force: true });
