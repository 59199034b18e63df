// The shape of the source tree (docs/architecture.md): files stay small,
// each layer imports only the layers below it, no module imports itself
// back through others, and the public entry stays small, documented and
// free of native addons.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAX_LINES = 600;

/** Bottom to top; a file may import from its own layer or a lower one. */
const LAYERS = [
  'lib/core',
  'primitives',
  'lib/directory',
  'lib/fabric',
  'lib/remote',
  'lib/cluster',
  'lib/control',
  'lib/services',
  'lib',
] as const;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(root, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(root, rel)).isDirectory()) sources(rel, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

function layerOf(file: string): number {
  // The longest matching prefix wins (lib/core before lib).
  let best = -1;
  let bestLen = -1;
  LAYERS.forEach((l, i) => {
    if ((file.startsWith(`${l}/`) || dirname(file) === l) && l.length > bestLen) {
      best = i;
      bestLen = l.length;
    }
  });
  return best;
}

/** Relative imports of a file (static, dynamic and type-only), as repository paths of .ts files. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const out: string[] = [];
  const re = /(?:^|\s)(?:import|export)\s[^'";]*?from\s*'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2]!;
    const target = relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push(target);
  }
  return out;
}

const files = [...sources('lib'), ...sources('primitives')];

t.test(`no source file in lib/ or primitives/ is over ${MAX_LINES} lines`, async (t) => {
  t.ok(files.length > 20, `found the sources (${files.length} files)`);
  const long = files
    .map((f) => ({ f, lines: readFileSync(join(root, f), 'utf8').split('\n').length }))
    .filter((x) => x.lines > MAX_LINES)
    .map((x) => `${x.f}: ${x.lines}`);
  t.same(long, [], 'every file is within the limit');
});

t.test('each layer imports only its own layer and the ones below it', async (t) => {
  const upward: string[] = [];
  for (const f of files) {
    const from = layerOf(f);
    t.ok(from >= 0, `${f} is in a layer`);
    for (const target of importsOf(f)) {
      const to = layerOf(target);
      if (to > from) upward.push(`${f} -> ${target}`);
    }
  }
  t.same(upward, [], 'no upward import');
});

t.test('there is no import circle', async (t) => {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((x) => files.includes(x))]));
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const g of graph.get(f) ?? []) {
      if (state.get(g) === 'open') cycles.push([...stack.slice(stack.indexOf(g)), g].join(' -> '));
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  t.same(cycles, [], 'the import graph is acyclic');
});

t.test(
  "import('amix') maps neither the ZeroMQ nor the SQLite addon",
  { skip: process.platform !== 'linux' ? 'reads /proc/self/maps (Linux only)' : false },
  async (t) => {
    const probe = (entry: string, then = ''): { zeromq: boolean; sqlite: boolean; names: number } =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const m = await import(${JSON.stringify(entry)}); ${then}
           const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
           console.log(JSON.stringify({ zeromq: /zeromq[\\/].*\\.node/.test(maps), sqlite: maps.includes('better_sqlite3.node'), names: Object.keys(m).length }));`,
          ],
          { cwd: root, encoding: 'utf8' },
        ),
      );
    const plain = probe('amix');
    t.equal(plain.zeromq, false, 'zeromq.node is not mapped');
    t.equal(plain.sqlite, false, 'better_sqlite3.node is not mapped');
    t.ok(plain.names > 0 && plain.names <= 45, `the root export has at most 45 runtime names (${plain.names})`);
    // The probe itself must be able to see an addon, or the checks above prove nothing.
    const loaded = probe('amix/internal', "const d = new m.Directory({ path: ':memory:' }); d.close();");
    t.equal(loaded.sqlite, true, 'the probe sees better_sqlite3.node once a directory is opened');
  },
);

t.test('every runtime name of the root export has TSDoc', async (t) => {
  const entry = join(root, 'lib/index.ts');
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry)!;
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(source)!);
  const mod = (await import('../dist/lib/index.js')) as Record<string, unknown>;
  const runtime = new Set(Object.keys(mod));
  const undocumented: string[] = [];
  for (const sym of exports) {
    if (!runtime.has(sym.getName())) continue;
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    const doc = ts.displayPartsToString(target.getDocumentationComment(checker)).trim();
    if (doc === '') undocumented.push(sym.getName());
  }
  t.equal(exports.filter((s) => runtime.has(s.getName())).length, runtime.size, 'the checker sees every runtime name');
  t.same(undocumented, [], 'each has a doc comment');
});
