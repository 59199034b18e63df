// State "stamp" of examples/state-machine.ts: is the rule's target older
// than a prerequisite (or missing)? Exits "stale" or "fresh"; a missing
// prerequisite exits "missing", which the machine has no transition for.
import { statSync } from 'node:fs';
import type { Rule } from '../state-machine.js';

const mtime = (f: string): number | undefined => {
  try {
    return statSync(f).mtimeMs;
  } catch {
    return undefined;
  }
};

export default function stamp(rule: Rule): string {
  const target = mtime(rule.target);
  for (const p of rule.prerequisites) {
    const t = mtime(p);
    if (t === undefined) return 'missing';
    if (target === undefined || t > target) return 'stale';
  }
  return target === undefined ? 'stale' : 'fresh';
}
