import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

t.test('the CAPS pipeline example replaces its stage live and loses nothing', async (t) => {
  const script = fileURLToPath(new URL('../dist/examples/caps-pipeline.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 120_000 });
  t.match(stdout, /replaced lower by upper: \d+ handed over/, 'the stage was replaced');
  t.match(
    stdout,
    /all 2000 messages arrived once and in order; the last: "UPPER#2000: 1999"/,
    'state carried, in order',
  );
  t.match(stdout, /ACTIVE: upper; "upper" runs in pid \d+/);
});
