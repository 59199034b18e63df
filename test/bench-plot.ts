// bench/plot.ts as a user runs it (node dist/bench/plot.js FILE.json --out DIR,
// a real child process) on a tiny fixture of the benches' --json shape: both
// SVGs written, well-formed enough for a browser (one balanced <svg> root, a
// title, every system named, no script), byte-identical from the same input;
// a file that is not a bench result is refused with a message and exit 1.
// Also the pieces of the bench harness this work added: the progress bar and
// --sweep's sizes.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { progressBar, SWEEP_SIZES, scaleForSize } from '../dist/bench/common.js';

const run = promisify(execFile);
const PLOT = fileURLToPath(new URL('../dist/bench/plot.js', import.meta.url));
const THREAD = fileURLToPath(new URL('../dist/bench/thread.js', import.meta.url));

const fixture = {
  bench: 'fixture',
  conditions: { date: '2026-12-01T00:00:00.000Z', node: 'v20.0.0', cpu: 'test <cpu> & co', cores: 2, repetitions: 3 },
  rows: [
    { system: 'postMessage', size: 64, msgsPerSec: 190000, rttP50Us: 40.1, rttP99Us: 120.5 },
    { system: 'amix:queueConditionThread', size: 64, msgsPerSec: 6000000, rttP50Us: 1.2, rttP99Us: 4 },
    { system: 'postMessage', size: 4096, msgsPerSec: 150000, rttP50Us: 45, rttP99Us: 130 },
    { system: 'amix:queueConditionThread', size: 4096, msgsPerSec: 900000, rttP50Us: 2.5, rttP99Us: 9 },
    { system: 'postMessage', size: 1048576, msgsPerSec: 900, rttP50Us: 700, rttP99Us: 4000 },
    { system: 'amix:queueConditionThread', size: 1048576, msgsPerSec: 4000, rttP50Us: 290, rttP99Us: 13000 },
  ],
};

/** Count the occurrences of `re` in `s`. */
function count(s: string, re: RegExp): number {
  return (s.match(re) ?? []).length;
}

t.test('plot: two SVGs per input, well-formed, titled, every system named, deterministic', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-plot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const input = join(dir, 'fixture.json');
  await writeFile(input, JSON.stringify(fixture));
  const outs: Record<string, string>[] = [];
  for (const sub of ['a', 'b']) {
    const { stdout } = await run(process.execPath, [PLOT, input, '--out', join(dir, sub)]);
    const files = stdout.trim().split('\n');
    t.same(
      files,
      [join(dir, sub, 'fixture-throughput.svg'), join(dir, sub, 'fixture-latency.svg')],
      'prints the two paths',
    );
    const got: Record<string, string> = {};
    for (const f of files) got[f.slice(join(dir, sub).length + 1)] = await readFile(f, 'utf8');
    outs.push(got);
  }
  for (const [name, svg] of Object.entries(outs[0]!)) {
    t.ok(svg.startsWith('<svg '), `${name} starts with <svg`);
    t.ok(svg.trimEnd().endsWith('</svg>'), `${name} ends with </svg>`);
    t.equal(count(svg, /<svg[\s>]/g), 1, `${name}: one <svg> element`);
    t.equal(count(svg, /<\/svg>/g), 1, `${name}: balanced </svg>`);
    t.match(svg, /xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, `${name}: SVG namespace`);
    t.notMatch(svg, /<script|\son[a-z]+="|href=/i, `${name}: no script, handler or external reference`);
    // Every element opened is closed (self-closing or with its end tag), so a strict XML parser takes it.
    for (const tag of ['g', 'text', 'title'])
      t.equal(
        count(svg, new RegExp(`<${tag}[\\s>]`, 'g')),
        count(svg, new RegExp(`</${tag}>`, 'g')),
        `${name}: <${tag}> balanced`,
      );
    t.match(svg, /<title>fixture: /, `${name}: a title`);
    for (const s of ['postMessage', 'amix:queueConditionThread']) t.ok(svg.includes(`>${s}<`), `${name} names ${s}`);
    t.ok(svg.includes('cpu=test &lt;cpu&gt; &amp; co'), `${name}: the conditions as an escaped caption`);
    t.equal(svg, outs[1]![name], `${name}: same input, same bytes`);
  }
  const tp = outs[0]!['fixture-throughput.svg']!;
  t.equal(count(tp, /<polyline /g), 2, 'throughput: one line per system');
  for (const l of ['64 B', '4 KiB', '1 MiB', 'messages/s', 'bytes']) t.ok(tp.includes(l), `throughput axis shows ${l}`);
  const lat = outs[0]!['fixture-latency.svg']!;
  t.ok(lat.includes('microseconds') && lat.includes('p99'), 'latency: unit and percentile labelled');
});

t.test('plot: a file that is not a bench result is refused with its name and exit 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amix-plot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ hello: 1 }));
  const err = await run(process.execPath, [PLOT, bad, '--out', dir]).then(
    () => undefined,
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(err?.code, 1, 'exit 1');
  t.match(err?.stderr, /bad\.json is not a bench --json result/, 'names the file and the expected shape');
});

t.test('bench harness: progress bar, --sweep sizes and count scaling', async (t) => {
  t.equal(progressBar(0), `[${'.'.repeat(24)}]   0%`);
  t.equal(progressBar(0.5), `[${'#'.repeat(12)}${'.'.repeat(12)}]  50%`);
  t.equal(progressBar(7), `[${'#'.repeat(24)}] 100%`, 'clamped');
  t.same(SWEEP_SIZES, [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576], '64 B to 1 MiB');
  t.equal(scaleForSize(12000, 4096, 4096, 200), 12000, 'full count up to the threshold');
  t.equal(scaleForSize(12000, 16384, 4096, 200), 3000, 'inverse to size above it');
  t.equal(scaleForSize(12000, 1048576, 4096, 200), 200, 'never under the floor');
  const err = await run(process.execPath, [THREAD, '--sweep', '--sizes', '64']).then(
    () => undefined,
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(err?.code, 2, '--sweep with --sizes is a usage error');
  t.match(err?.stderr, /--sweep and --sizes exclude each other/);
});
