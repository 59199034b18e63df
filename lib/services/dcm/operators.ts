/**
 * DCM operators (seed 002 ¶238, ¶467): the policy deciding whether a rule's
 * method runs, given its stamp and its prerequisites' stamps. Pluggable: a
 * {@link Dcm} takes more through `operators`, each with its own token.
 *
 * @module
 */

/** What an operator is told about a rule. */
export interface OperatorInput {
  /** The rule's name. */
  name: string;
  /** Its stamp from earlier runs (undefined: never evaluated). */
  stamp: number | undefined;
  /** Its prerequisites' stamps after they were evaluated (the binding rules are not prerequisites here). */
  prerequisites: ReadonlyArray<{ name: string; stamp: number | undefined }>;
}

/** An evaluation policy. */
export interface DcmOperator {
  /** The name (TIME_VALUE). */
  name: string;
  /** The token in a rules file, in the operator's place (`:`); characters of `:!?<>|&^~%@`. */
  token: string;
  /** True when the rule's method must run (and the rule be re-stamped). */
  mustEvaluate(input: OperatorInput): boolean;
}

/**
 * TIME_VALUE, `:` (¶235-236, ¶463-464): without prerequisites, run if never
 * evaluated; with them, run when the rule's stamp is older than one of
 * theirs (or it has none).
 */
export const TIME_VALUE: DcmOperator = {
  name: 'TIME_VALUE',
  token: ':',
  mustEvaluate({ stamp, prerequisites }) {
    if (stamp === undefined) return true;
    return prerequisites.some((p) => p.stamp !== undefined && p.stamp > stamp);
  },
};

/** ALWAYS, `!` (amix's own): the method runs on every evaluation, like a phony make target. */
export const ALWAYS: DcmOperator = {
  name: 'ALWAYS',
  token: '!',
  mustEvaluate: () => true,
};

/** The built-in operators. */
export const BUILTIN_OPERATORS: readonly DcmOperator[] = [TIME_VALUE, ALWAYS];
