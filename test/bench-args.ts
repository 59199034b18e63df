// The benches' bad arguments: a clear line on stderr and exit 2, before anything starts (no child, no
// daemon, no nats-server), never a stack trace.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bench = (name: string, ...args: string[]) =>
  spawnSync(process.execPath, [fileURLToPath(new URL(`../dist/bench/${name}.js`, import.meta.url)), ...args], {
    encoding: 'utf8',
    timeout: 20_000,
  });

for (const [name, args, says] of [
  ['remote', ['--bogus'], /^bench remote: Unknown option '--bogus'/],
  ['caps', ['--replaces', '-1'], /^bench caps: Option '--replaces' argument is ambiguous/],
  ['remote', ['--amixd-node-flags=rm -rf'], /^bench remote: --amixd-node-flags takes flags such as/],
  ['remote', ['--systems', 'nope'], /^bench remote: /],
  ['process', ['--systems', 'amix:queueConditionProcess,nope'], /^bench process: unknown --systems nope/],
] as const) {
  t.test(`bench ${name} ${args.join(' ')}`, async (t) => {
    const r = bench(name, ...args);
    t.equal(r.status, 2, 'exits 2');
    t.match(r.stderr, says, 'says what is wrong');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    t.equal(r.stdout, '', 'and runs nothing');
  });
}

// The text table's header names the baseline its ratio column divides by, or says there is none.
t.test('bench process --systems without the baseline says there is no ratio column', async (t) => {
  const r = bench(
    'process',
    '--quick',
    '--sizes',
    '64',
    '--count',
    '2000',
    '--rtts',
    '20',
    '--systems',
    'raw:uds-batched',
  );
  t.equal(r.status, 0, `runs (${r.stderr.slice(-200)})`);
  t.match(r.stdout, /no ratio column: node-ipc was not among the systems run/, 'says so');
  t.notMatch(r.stdout, /ratio = figure \/ node-ipc/, 'and names no ratio it does not print');
});
