// The contract suite over queueConditionProcess, both ends in this process
// (the bytes still cross a real Unix socket). Skipped on hosts without
// Unix domain sockets.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { conformance } from './helpers/conformance.js';

if (process.platform === 'win32') {
  t.comment('warning: queueConditionProcess conformance skipped: named pipes are untested here');
} else {
  const runtimeDir = mkdtempSync(join(tmpdir(), 'amix-qcp-conf-'));
  t.teardown(() => rmSync(runtimeDir, { recursive: true, force: true }));
  conformance(t, {
    name: 'queueConditionProcess',
    registry: () => new PrimitiveRegistry({ channelDefaults: { runtimeDir } }),
  });
}
