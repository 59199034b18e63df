/**
 * `amix dcm run FILE... [--jobs N] [--dry-run] [--json] [--state FILE]
 * [--binding-config FILE]`: build the program from the rules files and run
 * it in this process (no daemon). The verb's logic lives here; bin/amix
 * only dispatches.
 *
 * @module
 */
import { resolve } from 'node:path';
import { many, misuse, type ServiceVerb } from '../cliVerb.js';
import { Dcm, type DcmResult } from './dcm.js';

const USAGE = `amix dcm run FILE... [--jobs N] [--dry-run] [--json] [--state FILE] [--binding-config FILE]
  build a program from DCM rules files and run it: the flow rules DCMINIT, APINIT, MAIN, DONE, APDONE,
  DCMDONE in order, prerequisites first; a rule runs when it is newer than its stamp says (docs/dcm.md).
  --jobs N              run up to N independent methods at once (default 1)
  --dry-run             print what would be evaluated; run nothing, save nothing
  --state FILE          the stamps between runs (default FILE.amix-state beside the first rules file; 0600)
  --binding-config FILE a binding configuration (owner-only) added to the default methods (repeatable)
  --json                print { "evaluated": [...], "skipped": [...], "failed": [...], "errors": {...} };
                        shell methods' output then goes to stderr
Exit status: 0 when nothing failed, 1 when a rule failed, 2 on misuse.`;

function human(r: DcmResult): string {
  const line = (k: string, xs: string[]) =>
    `${k}${r.dryRun ? ' (dry run)' : ''}: ${xs.length ? xs.join(' ') : '(none)'}`;
  const lines = [line('evaluated', r.evaluated), line('skipped', r.skipped)];
  if (r.failed.length) {
    lines.push(line('failed', r.failed));
    for (const n of r.failed) lines.push(`  ${n}: ${r.errors[n]!.message} (${r.errors[n]!.code})`);
  }
  return lines.join('\n');
}

/** The `amix dcm` verb. */
export const dcmVerb: ServiceVerb = {
  usage: USAGE,
  options: {
    jobs: { type: 'string', short: 'j' },
    'dry-run': { type: 'boolean', short: 'n' },
    state: { type: 'string' },
    'binding-config': { type: 'string', multiple: true },
  },
  min: 1,
  async run(pos, v) {
    const [sub, ...files] = pos;
    if (sub !== 'run') return misuse(dcmVerb, 'dcm', `unknown subcommand ${JSON.stringify(sub)} (only run)`);
    if (files.length === 0) return misuse(dcmVerb, 'dcm', 'give at least one rules file');
    const jobs = v.jobs === undefined ? 1 : Number(v.jobs);
    if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > 1024)
      return misuse(dcmVerb, 'dcm', `--jobs must be an integer from 1 to 1024 (got ${String(v.jobs)})`);
    const configs = many(v['binding-config']);
    const dcm = await Dcm.create({
      stateFile: typeof v.state === 'string' ? resolve(v.state) : `${resolve(files[0]!)}.amix-state`,
      ...(configs.length ? { bindingConfigFiles: configs } : {}),
    });
    for (const f of files) await dcm.loadFile(f);
    const json = v.json === true;
    // Ctrl-C (or a TERM) stops the run, not the process: what completed keeps its stamps, and the result is printed.
    const stop = new AbortController();
    const onSignal = () => stop.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let r;
    try {
      r = await dcm.run({
        jobs,
        dryRun: v['dry-run'] === true,
        signal: stop.signal,
        ...(json ? { stdout: 'stderr' as const } : {}),
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    process.stdout.write(`${json ? JSON.stringify(r) : human(r)}\n`);
    if (r.failed.length) process.exitCode = 1;
  },
};
