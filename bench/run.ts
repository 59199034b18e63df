// `npm run bench [-- name ...] [-- --quick|--json]`: run every bench script,
// or the named ones, one after another in child processes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ALL = ['thread', 'process', 'remote', 'directory', 'dcm', 'switch', 'cluster', 'caps'];
const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));
if (flags.includes('-h') || flags.includes('--help')) {
  process.stdout.write(`usage: npm run bench -- [${ALL.join('|')} ...] [--quick] [--json]\n`);
  process.exit(0);
}
const unknown = names.filter((n) => !ALL.includes(n));
if (unknown.length) {
  process.stderr.write(`bench: unknown bench ${unknown.join(', ')}; known: ${ALL.join(', ')}\n`);
  process.exit(2);
}
let failed = 0;
for (const name of names.length ? names : ALL) {
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (!existsSync(script)) {
    process.stderr.write(`bench: ${name} is not built yet, skipped\n`);
    continue;
  }
  const r = spawnSync(process.execPath, ['--expose-gc', script, ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
