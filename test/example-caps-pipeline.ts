import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

t.test('the CAPS pipeline example replaces its stage live and loses nothing', async (t) => {
  const script = fileURLToPath(new URL('../dist/examples/caps-pipeline.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 120_000 });
  t.match(stdout, /replaced lower by upper: \d+ handed over/, 'the stage was replaced');
  const [, n, count, seq] =
    /all (\d+) messages arrived once and in order; the last: "UPPER#(\d+): (\d+)"/.exec(stdout) ?? [];
  t.ok(n, 'every message arrived once and in order, the last ones through the new stage');
  t.equal(Number(seq), Number(n) - 1, 'the last message is the last sent');
  t.equal(Number(count), Number(n), "the new stage's count went on from the old one's (state carried)");
  t.match(stdout, /ACTIVE: upper; "upper" runs in pid \d+/);
});
