/**
 * Planning a connect and a create before anything starts: the arguments
 * checked, both points resolved, the seed's steps for the direction, and
 * the role a CREATE asks for checked against the registration.
 *
 * @module
 */
import { AmixError, ErrorCode, invalidArg } from '../core/errors.js';
import type { FlowEnds } from './brokers.js';
import { DIRECTION_STEPS, parseDirection, type Direction, type PointRegistration, type PointRole } from './point.js';
import { regOf, type FabricCore } from './records.js';
import { CALLER, type ConnectOptions } from './types.js';

/** @internal A connect request once checked: what each end is, and which of the seed's steps run. */
export interface ConnectPlan {
  direction: Direction;
  mode: 'add' | 'hold' | 'conference';
  regA: PointRegistration | undefined;
  regB: PointRegistration | undefined;
  /** What each end is planned as: the point, or for a null end the stand-in (if any). */
  planA: PointRegistration | undefined;
  planB: PointRegistration | undefined;
  steps: readonly number[];
  /** The flows the steps open: A → B (steps 1, 2), B → A (steps 3, 4). */
  flows: FlowEnds[];
  /** The caller's name as a link end. */
  callerName: string;
}

/** @internal Check a connect's arguments and resolve its points; nothing is started. */
export function planConnect(
  core: FabricCore,
  a: string | null,
  b: string | null,
  options: ConnectOptions,
): ConnectPlan {
  const direction = parseDirection(options.direction);
  const mode = options.mode ?? 'add';
  if (mode !== 'add' && mode !== 'hold' && mode !== 'conference')
    throw invalidArg('options.mode', 'must be add, hold or conference', mode);
  if (a === null && b === null) throw invalidArg('connect', 'needs at least one point name');
  const regA = a === null ? undefined : regOf(core, a);
  const regB = b === null ? undefined : regOf(core, b);
  const steps = DIRECTION_STEPS[direction];
  const flows: FlowEnds[] = [];
  if (steps.includes(1)) flows.push(['a', 'b']);
  if (steps.includes(3)) flows.push(['b', 'a']);
  return {
    direction,
    mode,
    regA,
    regB,
    planA: regA ?? (a === null ? options.standIn : undefined),
    planB: regB ?? (b === null ? options.standIn : undefined),
    steps,
    flows,
    callerName: options.as?.name ?? CALLER,
  };
}

/** Options for {@link Fabric.create}. */
export interface CreateOptions {
  /** The role the requester wants the point in (002 ¶293): checked against its registered role. */
  role?: PointRole;
}

/** @internal A point registered as `both` can act in any role; a sender or receiver only in its own. */
export function checkRole(reg: PointRegistration, role: PointRole): void {
  if (role !== 'sender' && role !== 'receiver' && role !== 'both')
    throw invalidArg('options.role', 'must be sender, receiver or both', role);
  if (reg.role === 'both' || reg.role === role) return;
  throw new AmixError(
    ErrorCode.AMIX_ERR_BAD_DIRECTION,
    `point "${reg.name}" is registered as a ${reg.role} and cannot be created as ${role === 'both' ? 'both sender and receiver' : `a ${role}`}`,
    { details: { direction: role } },
  );
}
