// State "build" of examples/state-machine.ts: the rule's action, the
// seed's "concatenate B and C to construct A" and "copy b to B" (¶647-652).
import { readFileSync, writeFileSync } from 'node:fs';
import type { Rule } from '../state-machine.js';

export default function build(rule: Rule): string {
  writeFileSync(rule.target, rule.prerequisites.map((p) => readFileSync(p, 'utf8')).join(''));
  return 'built';
}
