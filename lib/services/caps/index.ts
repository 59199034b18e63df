/**
 * CAPS, the Configurable Application Process Service (docs/caps.md): the
 * {@link Caps} administrator and {@link runAms}, the loop an AMS runs.
 *
 * @module
 */
export { Caps } from './caps.js';
export type { Located } from './caps.js';
export { runAms, AMS_SERVICE } from './ams.js';
export type { AmsHandlers, AmsStats } from './ams.js';
export type * from './types.js';
