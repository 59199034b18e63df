import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

t.test("the state machine example evaluates the seed's rules A: B C, B: b, C: c (¶647-653)", async (t) => {
  const script = fileURLToPath(new URL('../dist/examples/state-machine.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
  t.match(stdout, /^first run: B built, C built, A built$/m, 'everything built the first time');
  t.match(stdout, /^second run: B upToDate, C upToDate, A upToDate$/m, 'nothing rebuilt when nothing changed');
  t.match(stdout, /^after touching c: B upToDate, C built, A built$/m, 'c changed: C and A rebuilt, B not');
});
