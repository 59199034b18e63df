/**
 * `amix nee ...`: the NEEM's verbs for bin/amix, over amixd's `nee.*` ops
 * (`service.ts`). bin/amix hands in its helpers (the client, the printer,
 * its misuse error) and spreads these verbs into its table.
 *
 * @module
 */
import type { DaemonClient } from '../../control/client.js';
import type { CliHelpers, ServiceVerb, VerbValues } from '../cliVerb.js';
import { verbRequest } from '../cliVerb.js';
import type { NeeInfo } from './manager.js';
import type { RunExit } from './run.js';

type Values = VerbValues;

/** `KEY=VALUE` with `true`, `false` and numbers typed, as the query language compares them. */
export function parseAttribute(kv: string): [string, string | number | boolean] {
  const i = kv.indexOf('=');
  if (i <= 0) throw new Error(`attribute ${JSON.stringify(kv)} must be KEY=VALUE`);
  const k = kv.slice(0, i);
  const raw = kv.slice(i + 1);
  if (raw === 'true' || raw === 'false') return [k, raw === 'true'];
  if (raw !== '' && Number.isFinite(Number(raw)) && /^-?[0-9.e+-]+$/i.test(raw)) return [k, Number(raw)];
  return [k, raw];
}

/** The exit status a shell would give: the code, 128 + the signal's number, or 127 for a command that did not start. */
export function exitStatus(e: RunExit): number {
  if (e.error !== undefined) return 127;
  if (e.code !== null) return e.code;
  const n = e.signal
    ? ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[e.signal]
    : undefined;
  return 128 + (n ?? 1);
}

/**
 * Run a command in a named environment through amixd, writing its stdout
 * and stderr as they come. Resolves with how it ended.
 */
export async function runThroughDaemon(
  c: DaemonClient,
  name: string,
  argv: string[],
  sinks: { stdout: (b: Buffer) => Promise<void> | void; stderr: (b: Buffer) => Promise<void> | void },
  background = false,
): Promise<RunExit> {
  const { run } = await c.request<{ run: number }>('nee.run' as never, { name, argv, background } as never);
  for (;;) {
    const r = await c.request<{ stdout: string[]; stderr: string[]; exit?: RunExit }>(
      'nee.read' as never,
      { run, waitMs: 10_000 } as never,
    );
    for (const s of r.stdout) await sinks.stdout(Buffer.from(s, 'base64'));
    for (const s of r.stderr) await sinks.stderr(Buffer.from(s, 'base64'));
    if (r.exit) return r.exit;
  }
}

const write = (stream: NodeJS.WriteStream) => (b: Buffer) =>
  new Promise<void>((resolve) => {
    if (stream.write(b)) resolve();
    else stream.once('drain', () => resolve());
  });

/** The `nee` verbs, keyed as bin/amix keys its group verbs (`nee create`...). */
export function neeVerbs(h: CliHelpers): Record<string, ServiceVerb> {
  const req = verbRequest(h);
  const infoLine = (i: NeeInfo) =>
    `${i.name}${i.aliasOf ? ` (alias of ${i.aliasOf})` : ''}: ${i.system}/${i.set}, owner ${i.owner}, ${i.public ? 'public' : 'private'}, references ${i.references}, attached ${i.attached}, shell ${i.shell}`;
  return {
    'nee attr': {
      usage:
        'amix nee attr ls [--json] | amix nee attr set SET KEY=VALUE... [--system NAME] | amix nee attr rm SET [--system NAME]   registered environment attributes (set, rm: administrator only)',
      options: { system: { type: 'string' } },
      min: 1,
      async run([sub, set, ...kvs], v) {
        const system = v.system as string | undefined;
        if (sub === 'ls') {
          const systems = (await req(v, 'nee.attr.ls', {})) as Array<{
            name: string;
            accessible: boolean;
            sets: Record<string, unknown>;
          }>;
          h.out(v, systems, () =>
            systems
              .flatMap((s) =>
                Object.entries(s.sets).map(
                  ([k, attrs]) => `${s.name}/${k}${s.accessible ? '' : ' (UNACCESSIBLE)'}: ${JSON.stringify(attrs)}`,
                ),
              )
              .join('\n'),
          );
        } else if (sub === 'set' || sub === 'rm') {
          if (!set) throw h.misuse(`nee attr ${sub} needs SET`);
          let attributes: Record<string, unknown> | undefined;
          if (sub === 'set') {
            try {
              attributes = Object.fromEntries(kvs.map(parseAttribute));
            } catch (err) {
              throw h.misuse((err as Error).message);
            }
          }
          const r = await req(v, `nee.attr.${sub}`, {
            set,
            ...(system ? { system } : {}),
            ...(attributes ? { attributes } : {}),
          });
          h.out(v, r, () =>
            sub === 'set' ? `set ${set}` : (r as { removed: boolean }).removed ? `removed ${set}` : `no set ${set}`,
          );
        } else throw h.misuse(`unknown nee attr subcommand ${JSON.stringify(sub)}`);
      },
    },
    'nee create': {
      usage:
        'amix nee create NAME --require EXPR [--public] [--idle SECONDS] [--shell PATH] [--foreground-only | --background-only] [--output FILE] [--anyone-may-terminate]   (it outlives this command: amix nee terminate NAME ends it)',
      options: {
        require: { type: 'string' },
        public: { type: 'boolean' },
        idle: { type: 'string' },
        shell: { type: 'string' },
        'foreground-only': { type: 'boolean' },
        'background-only': { type: 'boolean' },
        output: { type: 'string' },
        'anyone-may-terminate': { type: 'boolean' },
      },
      min: 1,
      max: 1,
      async run([name], v) {
        if (typeof v.require !== 'string')
          throw h.misuse('--require EXPR is required (e.g. --require \'os = "linux"\')');
        const idle = v.idle === undefined ? undefined : Number(v.idle);
        if (idle !== undefined && !(idle >= 0)) throw h.misuse('--idle must be a number of seconds >= 0');
        const info = (await req(v, 'nee.create', {
          name,
          require: v.require,
          ...(v.public ? { public: true } : {}),
          ...(idle !== undefined ? { idleSeconds: idle } : {}),
          ...(v.shell ? { shell: v.shell } : {}),
          ...(v['foreground-only'] ? { foregroundOnly: true } : {}),
          ...(v['background-only'] ? { backgroundOnly: true } : {}),
          ...(v.output ? { output: v.output } : {}),
          ...(v['anyone-may-terminate'] ? { anyoneMayTerminate: true } : {}),
          // A CLI's connection ends with the command: an environment made here outlives it by default.
          endWithOwner: false,
        })) as NeeInfo;
        h.out(v, info, () => infoLine(info));
      },
    },
    'nee run': {
      usage:
        'amix nee run NAME [--background] -- CMD [ARGS...]   run CMD in the environment, streaming its output; exits with its status',
      options: { background: { type: 'boolean' } },
      min: 2,
      async run([name, ...argv], v) {
        const c = await h.client(v);
        try {
          const exit = await runThroughDaemon(
            c,
            name!,
            argv,
            { stdout: write(process.stdout), stderr: write(process.stderr) },
            v.background === true,
          );
          if (exit.error) process.stderr.write(`amix nee run: ${exit.error}\n`);
          process.exitCode = exitStatus(exit);
        } finally {
          await c.close();
        }
      },
    },
    'nee ls': {
      options: {},
      usage: 'amix nee ls [--json]   the ACTIVE environments and the INACTIVE sets',
      max: 0,
      async run(_, v) {
        const r = (await req(v, 'nee.ls', {})) as { active: NeeInfo[]; inactive: string[] };
        h.out(v, r, () =>
          [
            r.active.length
              ? h.table(r.active as unknown as Array<Record<string, unknown>>, [
                  'name',
                  'owner',
                  'system',
                  'set',
                  'public',
                  'references',
                  'attached',
                ])
              : 'no ACTIVE environment',
            r.inactive.length ? `INACTIVE: ${r.inactive.join(', ')}` : '',
          ]
            .filter(Boolean)
            .join('\n'),
        );
      },
    },
    'nee show': {
      options: {},
      usage: 'amix nee show NAME [--json]',
      min: 1,
      max: 1,
      async run([name], v) {
        const i = (await req(v, 'nee.show', { name })) as NeeInfo;
        h.out(v, i, () => infoLine(i));
      },
    },
    'nee terminate': {
      options: {},
      usage: 'amix nee terminate NAME   (its owner, or the administrator)',
      min: 1,
      max: 1,
      async run([name], v) {
        const r = await req(v, 'nee.terminate', { name });
        h.out(v, r, () => `terminated ${name}`);
      },
    },
  };
}
