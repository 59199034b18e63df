/**
 * Argument checks and errors the services' daemon ops share.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import type { ServiceCaller } from '../control/services.js';

/** `args[k]` as a non-empty string, else `AMIX_ERR_INVALID_ARG`. */
export function str(args: Record<string, unknown>, k: string): string {
  const v = args[k];
  if (typeof v !== 'string' || v === '') throw invalidArg(k, 'must be a non-empty string', v);
  return v;
}

/** `AMIX_ERR_UNAUTHORIZED` for `op`, naming the caller. */
export const unauthorized = (why: string, c: ServiceCaller, op: string) =>
  new AmixError(ErrorCode.AMIX_ERR_UNAUTHORIZED, why, { details: { op, principal: c.owner } });
