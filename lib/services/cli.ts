/**
 * The `amix` verbs of the services, for bin/amix: `dcm` and `bind`.
 *
 * @module
 */
export { dcmVerb } from './dcm/cli.js';
export { bindVerb } from './binding/cli.js';
export type { ServiceVerb, VerbOption } from './cliVerb.js';
