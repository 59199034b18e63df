/**
 * Bench point `capsStage` (bench/caps.ts): a CAPS AMS that passes each
 * message on unchanged (`runAms` with the default handler).
 *
 * @module
 */
import { runAms, type PointContext } from '../../lib/index.js';

export default (point: PointContext): Promise<void> => runAms(point);
