#!/usr/bin/env node
// amixd's entry. Resolving and linking the daemon's modules at start-up runs Node's module loader hot
// enough for TurboFan to optimise its URL and path code, and the optimised code and its compiler's
// memory stay resident: about 3.5 MiB of an idle daemon's 55 (bench/RESULTS.md, session 12). So the
// modules are loaded with TurboFan off, and it is back on before the daemon does any work: functions
// that run hot from then on are optimised as usual. A JIT flag the operator gave is left alone.
import { setFlagsFromString } from 'node:v8';

const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
const ownJit = given.some((f) => /^--(no-)?(opt|turbofan)$|^--jitless$/.test(f));
if (!ownJit) setFlagsFromString('--no-opt');
try {
  await import('./amixdMain.js');
} finally {
  if (!ownJit) setFlagsFromString('--opt');
}
