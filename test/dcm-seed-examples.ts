// The seed's DCM examples run as written: spell check (seed 002 ¶479-482) and the word processor
// before and after features are bought (¶486-511). Shared libraries are ES modules (NAME.so -> NAME.mjs),
// THREAD procedures run in worker threads of this process.
import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dcm } from '../dist/lib/internal.js';

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-dcm-seed-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test(
  'spell check (¶479-482): libspell.so is bound to a shared library, spellCheck extracted and invoked',
  async (t) => {
    const dir = await tmp(t);
    await writeFile(
      join(dir, 'libspell.mjs'),
      `import { appendFileSync } from 'node:fs';
     export function spellCheck(arg) { appendFileSync(new URL('./checked', import.meta.url), arg.rule + '\\n'); }`,
    );
    const rules = join(dir, 'spell.rules');
    await writeFile(rules, 'MAIN: report\nspellCheck: libspell.so SHARED.OBJECT\nreport: spellCheck\n');
    const dcm = await Dcm.create();
    await dcm.loadFile(rules);
    const r = await dcm.run();
    t.same(
      r.evaluated,
      ['libspell.so', 'spellCheck', 'report', 'MAIN'],
      'libspell.so first, then spellCheck, then report',
    );
    t.equal(await readFile(join(dir, 'checked'), 'utf8'), 'spellCheck\n', 'the shared object ran once, as a function');
    t.same(r.failed, []);
  },
);

t.test('a SHARED.OBJECT whose library is missing fails, BOUND but not found', async (t) => {
  const dir = await tmp(t);
  const dcm = await Dcm.create({ baseDir: dir });
  dcm.loadText('MAIN: spellCheck\nspellCheck: nolib.so SHARED.OBJECT\n');
  const r = await dcm.run();
  t.same(r.failed, ['nolib.so', 'spellCheck', 'MAIN']);
  t.match(r.errors['nolib.so'], { message: /bound to SharedLibrary but not found/ });
});

const BEFORE = `APINIT: SetEnvironment
MAIN: WordProcessor
DONE: CleanEnvironment
SetEnvironment: setEnv
setEnv: THREAD
WordProcessor: wp
wp: THREAD
CleanEnvironment: clearEnv
clearEnv: THREAD
`;
const AFTER = `APINIT: SetEnvironment
MAIN: WordProcessor
DONE: CleanEnvironment
SetEnvironment: setEnv setSpellEnv setThesEnv
setEnv: THREAD
setSpellEnv: SHARED.OBJECT spell.so
setThesEnv: SHARED.OBJECT thes.so
WordProcessor: wp
wp: THREAD
CleanEnvironment: clearEnv
clearEnv: THREAD
`;

t.test('the word processor gains the features bought, without being rebuilt (¶486-511)', async (t) => {
  const dir = await tmp(t);
  const log = join(dir, 'log');
  // The application's thread procedures: each logs; wp logs the features it finds in its environment.
  await writeFile(
    join(dir, 'wp.mjs'),
    `import { appendFileSync } from 'node:fs'; import { isMainThread } from 'node:worker_threads';
     const say = (s) => appendFileSync(process.env.WP_LOG, s + (isMainThread ? ' (main)' : '') + '\\n');
     export const setEnv = () => say('setEnv');
     export const wp = () => say('wp features=' + (process.env.WP_FEATURES ?? ''));
     export const clearEnv = () => say('clearEnv');`,
  );
  // The Minor Services sold later: each modifies the application's data (its environment) for the wp thread.
  for (const [lib, fn, feature] of [
    ['spell', 'setSpellEnv', 'spell'],
    ['thes', 'setThesEnv', 'thesaurus'],
  ])
    await writeFile(
      join(dir, `${lib}.mjs`),
      `export function ${fn}() { process.env.WP_FEATURES = [process.env.WP_FEATURES, '${feature}'].filter(Boolean).join(','); }`,
    );
  await writeFile(join(dir, 'wp.rules'), BEFORE);
  process.env.WP_LOG = log;
  t.teardown(() => {
    delete process.env.WP_LOG;
    delete process.env.WP_FEATURES;
  });
  const threads = new Map(['setEnv', 'wp', 'clearEnv'].map((n) => [n, { module: join(dir, 'wp.mjs') }]));
  const stateFile = join(dir, 'wp.state');
  const program = async (state: string | null) => {
    const dcm = await Dcm.create({ application: { threads }, stateFile: state });
    await dcm.loadFile(join(dir, 'wp.rules'));
    return dcm.run();
  };

  const first = await program(stateFile);
  t.same(first.evaluated, [
    'setEnv',
    'SetEnvironment',
    'APINIT',
    'wp',
    'WordProcessor',
    'MAIN',
    'clearEnv',
    'CleanEnvironment',
    'DONE',
  ]);
  t.equal(await readFile(log, 'utf8'), 'setEnv\nwp features=\nclearEnv\n', 'three threads, no features');

  await writeFile(join(dir, 'wp.rules'), AFTER);
  await writeFile(log, '');
  const bought = await program(stateFile);
  t.same(
    bought.evaluated,
    ['spell.so', 'setSpellEnv', 'thes.so', 'setThesEnv', 'SetEnvironment', 'APINIT'],
    'the new rules and the flow rule above them, nothing else (¶511)',
  );
  t.same(bought.skipped, ['setEnv', 'wp', 'WordProcessor', 'MAIN', 'clearEnv', 'CleanEnvironment', 'DONE']);
  t.equal(process.env.WP_FEATURES, 'spell,thesaurus', 'both procedures ran during APINIT');

  delete process.env.WP_FEATURES;
  await writeFile(log, '');
  const fresh = await program(null);
  t.equal(fresh.evaluated.length, 13, 'a fresh start evaluates every rule');
  t.equal(
    await readFile(log, 'utf8'),
    'setEnv\nwp features=spell,thesaurus\nclearEnv\n',
    'the wp thread, started after APINIT, sees the features bought (and not the grammar checker)',
  );
});
