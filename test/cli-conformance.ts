// `amix conformance MODULE`: the contract suite as a command, run through the
// built CLI against the memory fixture (passes), a deliberately broken copy
// (fails, naming its case), the example primitive from the guide (passes),
// a primitive that loses everything (each case bounded by --timeout), and
// modules it cannot run (exit 2 with a code).
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AMIX } from './helpers/daemon.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const memory = join(root, 'test/fixtures/memory-primitive.mjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function conformance(args: string[], cwd = root): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AMIX, 'conformance', ...args], { cwd, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface Report {
  passed: number;
  failed: number;
  cases: Array<{ name: string; ok: boolean; error?: string }>;
}

t.test('the memory fixture passes every case (--json)', async (t) => {
  const r = await conformance(['test/fixtures/memory-primitive.mjs', '--json']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr})`);
  const report = JSON.parse(r.stdout) as Report;
  t.same(Object.keys(report).sort(), ['cases', 'failed', 'passed'], 'exactly passed, failed, cases');
  t.equal(report.failed, 0, '0 failed');
  t.ok(report.passed > 10, `${report.passed} passed`);
  t.equal(report.cases.length, report.passed, 'one entry per case');
  t.ok(
    report.cases.every((c) => c.ok && c.error === undefined && c.name.startsWith('memory: ')),
    'every case ok, named after the primitive, without an error',
  );
  t.ok(
    report.cases.some((c) => c.name === 'memory: delivers messages in order with their sizes intact'),
    'the ordering case is in it',
  );
});

t.test('a primitive that swaps two messages fails the ordering case, named', async (t) => {
  const json = await conformance([join(root, 'test/fixtures/broken-primitive.mjs'), '--json']);
  t.equal(json.code, 1, 'exit 1');
  const report = JSON.parse(json.stdout) as Report;
  t.equal(report.failed, 1, 'one case failed');
  const bad = report.cases.filter((c) => !c.ok);
  t.same(
    bad.map((c) => c.name),
    ['brokenMemory: delivers messages in order with their sizes intact'],
    'the ordering case is the one',
  );
  t.match(bad[0]!.error, /in order.*expected 0, got 2/, 'its error says what was wrong');

  const human = await conformance(['test/fixtures/broken-primitive.mjs']);
  t.equal(human.code, 1, 'exit 1 in text mode too');
  t.match(human.stdout, /^FAIL brokenMemory: delivers messages in order/m, 'the failed case is named on its line');
  t.match(human.stdout, /^ok {3}brokenMemory: the sender's buffer may be reused/m, 'passing cases say ok');
  t.match(human.stdout, /^\d+ passed, 1 failed\s*$/m, 'a summary line');
});

t.test('the example primitive of docs/writing-a-primitive.md passes', async (t) => {
  const r = await conformance(['examples/primitives/in-process-queue.mjs', '--json']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr})`);
  const report = JSON.parse(r.stdout) as Report;
  t.equal(report.failed, 0, '0 failed');
  t.ok(report.passed > 10 && report.cases.every((c) => c.name.startsWith('inProcessQueue: ')), 'all its cases ran');
});

t.test(
  'a primitive that loses every message fails each waiting case within --timeout, and the command ends',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'amix-conf-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      join(dir, 'lossy.mjs'),
      `import memory from ${JSON.stringify(pathToFileURL(memory).href)};\n` +
        `export default { ...memory, name: 'lossy', async send() {} };\n`,
    );
    const started = Date.now();
    // A bare file name, relative to the working directory.
    const r = await conformance(['lossy.mjs', '--json', '--timeout', '300'], dir);
    const ms = Date.now() - started;
    t.equal(r.code, 1, 'exit 1');
    const report = JSON.parse(r.stdout) as Report;
    const timedOut = report.cases.filter((c) => c.error === 'timed out after 300 ms');
    t.ok(timedOut.length >= 5, `${timedOut.length} cases timed out`);
    t.ok(
      timedOut.some((c) => c.name === 'lossy: delivers messages in order with their sizes intact'),
      'the ordering case among them',
    );
    t.ok(ms < 30_000, `finished in ${ms} ms: every hung case was cut off and torn down`);
  },
);

t.test(
  'an error the primitive leaves unhandled fails the case it came in, and the report is still printed',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'amix-conf-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      join(dir, 'stray.mjs'),
      `import memory from ${JSON.stringify(pathToFileURL(memory).href)};\n` +
        `let once = true;\n` +
        `export default { ...memory, name: 'stray', async send(h, d, o) {\n` +
        `  if (once) { once = false; Promise.reject(new Error('left behind')); }\n` +
        `  return memory.send(h, d, o);\n} };\n`,
    );
    const r = await conformance([join(dir, 'stray.mjs'), '--json']);
    t.equal(r.code, 1, 'exit 1');
    const report = JSON.parse(r.stdout) as Report;
    const bad = report.cases.filter((c) => !c.ok);
    t.same(
      bad.map((c) => c.name),
      ['stray: delivers messages in order with their sizes intact'],
      'the first case (the first send) is the failed one',
    );
    t.match(bad[0]!.error, /no caller could catch: .*left behind/, 'its error says so');
    t.equal(report.passed, report.cases.length - 1, 'every other case passed');
  },
);

t.test('modules it cannot run: exit 2 with an AMIX_ERR_* code', async (t) => {
  const missing = await conformance(['test/fixtures/no-such-primitive.mjs']);
  t.equal(missing.code, 2, 'a missing file: exit 2');
  t.match(missing.stderr, /no-such-primitive\.mjs.*\(AMIX_ERR_PRIMITIVE_LOAD\)/, 'names the file and the code');
  t.equal(missing.stdout, '', 'nothing on stdout in text mode');

  const missingJson = await conformance(['test/fixtures/no-such-primitive.mjs', '--json']);
  t.equal(missingJson.code, 2, 'exit 2 with --json');
  t.equal(JSON.parse(missingJson.stdout).error.code, 'AMIX_ERR_PRIMITIVE_LOAD', 'the code in the JSON error');

  const none = await conformance([]);
  t.equal(none.code, 2, 'no module: exit 2');
  t.match(none.stderr, /module is needed \(AMIX_ERR_INVALID_ARG\)/, 'says so, with a code');

  const dir = await mkdtemp(join(tmpdir(), 'amix-conf-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'half.mjs'), `export default { name: 'half', create() {}, send() {} };\n`);
  const half = await conformance([join(dir, 'half.mjs')]);
  t.equal(half.code, 2, 'not a primitive: exit 2');
  t.match(half.stderr, /AMIX_ERR_BAD_PRIMITIVE/, 'with the bad-primitive code');

  const help = await conformance(['--help']);
  t.equal(help.code, 0, '--help exits 0');
  t.match(help.stdout, /usage: amix conformance MODULE \[--json\]/, 'and prints the usage');
});
