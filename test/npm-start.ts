import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

t.test('npm start shows messages flowing through a thread point and a process point, then exits 0', async (t) => {
  const script = fileURLToPath(new URL('../dist/examples/start.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], {
    timeout: 120_000,
    env: { ...process.env, AMIX_DEMO_COUNT: '20000' },
  });
  t.match(stdout, /relayThread\s+thread\s+pid \d+ \(this process, a worker thread\)/, 'a thread point');
  t.match(stdout, /relayProcess\s+process\s+pid \d+/, 'a process point');
  t.match(stdout, /amix: 20,000 messages of 64 B/, 'every message came back');
  t.match(stdout, /throughput [\d,]+ msg\/s/, 'a rate summary');
});
