/**
 * The shape of a verb the services give `bin/amix` (the same fields as the
 * tool's own verbs): the tool parses the flags and calls `run`. A verb
 * prints its own output; on misuse it prints why and its usage to stderr
 * and sets exit code 2; a run that failed sets exit code 1.
 *
 * @module
 */
import type { DaemonClient } from '../control/client.js';

/** A verb's parsed flags. */
export type VerbValues = Record<string, string | boolean | string[] | undefined>;

/** What bin/amix gives a service's verbs: its client, its printer and table, its misuse error. */
export interface CliHelpers {
  client(v: VerbValues): Promise<DaemonClient>;
  out(v: VerbValues, data: unknown, human: () => string): void;
  table(rows: Array<Record<string, unknown>>, cols: string[]): string;
  misuse(message: string): Error;
}

/** A flag of a verb (node:util parseArgs). */
export interface VerbOption {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
}

/** A verb of `amix` implemented in lib/services. */
export interface ServiceVerb {
  usage: string;
  options: Record<string, VerbOption>;
  min?: number;
  max?: number;
  run(positionals: string[], values: Record<string, string | boolean | string[] | undefined>): Promise<void>;
}

/** Print a misuse (exit code 2). */
export function misuse(verb: ServiceVerb, name: string, why: string): void {
  process.stderr.write(`amix ${name}: ${why}\nusage: ${verb.usage}\n`);
  process.exitCode = 2;
}

/** The values of a string flag that may repeat. */
export function many(v: string | boolean | string[] | undefined): string[] {
  return v === undefined || typeof v === 'boolean' ? [] : Array.isArray(v) ? v : [v];
}

/** One daemon request from a verb: a client for it, closed afterwards. */
export function verbRequest(h: CliHelpers) {
  return async (v: VerbValues, op: string, args: Record<string, unknown>): Promise<unknown> => {
    const c = await h.client(v);
    try {
      return await c.request<unknown>(op as never, args as never);
    } finally {
      await c.close();
    }
  };
}
