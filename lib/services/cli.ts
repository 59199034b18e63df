/**
 * The `amix` verbs of the services, for bin/amix: `dcm`, `bind` and the `nee` and `caps` groups.
 *
 * @module
 */
export { dcmVerb } from './dcm/cli.js';
export { bindVerb } from './binding/cli.js';
export { neeVerbs } from './nee/cli.js';
export { capsVerbs } from './caps/cli.js';
export type { ServiceVerb, VerbOption } from './cliVerb.js';
