/**
 * `amix bind NAME...`, `amix bind query NAME...`, `amix bind report
 * [NAME...]`, `amix bind purge [NAME...]`: a Binding Service in this
 * process (no daemon), started with the default configuration and any
 * `--config` files; the names are bound as this OS user, then the
 * operation runs. The table lives as long as the command.
 *
 * @module
 */
import { many, misuse, type ServiceVerb } from '../cliVerb.js';
import { BindingService } from './service.js';
import type { BindingQuery } from './types.js';

const USAGE = `amix bind NAME... | bind query NAME... | bind report [NAME...] | bind purge [NAME...] [--config FILE] [--json]
  bind names through the ordered binding methods (File, Shell, Data, Function, Thread, Process by default;
  docs/binding.md). NAME may carry a method prefix: file:, shell:, process:PID, thread:MODULE#EXPORT.
  bind NAME...     print each name's state and method
  query NAME...    bind, then print each name's Query (the method's view of it)
  report [NAME...] bind the names, then print the methods and the table
  purge [NAME...]  bind the names, drop the UNBOUND ones, print what is left
  --config FILE    a binding configuration (owner-only) read after the defaults (repeatable)`;

const SUBS = new Set(['query', 'report', 'purge']);

function row(q: BindingQuery): string {
  const { name, state, method, ...rest } = q;
  const more = Object.entries(rest)
    .map(([k, x]) => `${k}=${typeof x === 'string' ? x.split('\n')[0] : JSON.stringify(x)}`)
    .join(' ');
  return `${name}  ${state ?? 'UNBOUND'}${method ? `  ${method}` : ''}${more ? `  ${more}` : ''}`;
}

/** The `amix bind` verb. */
export const bindVerb: ServiceVerb = {
  usage: USAGE,
  options: { config: { type: 'string', multiple: true } },
  min: 1,
  async run(pos, v) {
    const sub = SUBS.has(pos[0]!) ? pos[0]! : 'bind';
    const names = sub === 'bind' ? pos : pos.slice(1);
    if ((sub === 'bind' || sub === 'query') && names.length === 0) return misuse(bindVerb, 'bind', 'give a name');
    const configs = many(v.config);
    const b = await BindingService.start(configs.length ? { configFiles: configs } : {});
    const queries: BindingQuery[] = [];
    for (const n of names) queries.push(await b.bind(n));
    const json = v.json === true;
    const print = (data: unknown, text: string) => process.stdout.write(`${json ? JSON.stringify(data) : text}\n`);
    if (sub === 'bind')
      print(
        queries.map((q) => ({ name: q.name, state: q.state ?? 'UNBOUND', ...(q.method ? { method: q.method } : {}) })),
        queries.map((q) => `${q.name}  ${q.state ?? 'UNBOUND'}${q.method ? `  ${q.method}` : ''}`).join('\n'),
      );
    else if (sub === 'query') print(queries, queries.map(row).join('\n'));
    else {
      const purged = sub === 'purge' ? b.purge() : undefined;
      const r = b.report();
      const methods = r.methods
        .map(
          (m) =>
            `  ${String(m.order).padStart(4)}  ${m.name.padEnd(14)} ${m.loaded ? 'loaded' : 'not loaded'}  ${m.location}`,
        )
        .join('\n');
      const entries = r.entries.map((e) => `  ${e.name}  ${e.state}${e.method ? `  ${e.method}` : ''}`).join('\n');
      print(
        purged === undefined ? r : { purged, ...r },
        `${purged === undefined ? '' : `purged ${purged} UNBOUND\n`}methods:\n${methods}\nnames:\n${entries || '  (none)'}`,
      );
    }
  },
};
