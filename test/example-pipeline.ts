import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

t.test('the pipeline example runs the same stage code as a thread point and a process point', async (t) => {
  const script = fileURLToPath(new URL('../dist/examples/pipeline.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
  t.match(stdout, /exclaim → caller: HELLO! \(via exclaim, pid \d+\)/, 'first message went through both stages');
  t.match(stdout, /AMIX!/, 'all messages flowed');
  t.match(stdout, /upper ran as a thread point, exclaim as a process point/, 'one stage per scope');
  const [, stagePid, callerPid] = /pid (\d+)\); the caller is pid (\d+)/.exec(stdout) ?? [];
  t.not(stagePid, callerPid, 'the process point ran in another process');
});
