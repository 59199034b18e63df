// Shared set-up for fabric tests: a Fabric on a temp runtime dir, torn down
// with the test, fixture point locations, and an event waiter.
import type { Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, type FabricEvent } from '../../dist/lib/index.js';

/** Absolute path of a fixture point module. */
export const pointFixture = (name: string): string =>
  fileURLToPath(new URL(`../fixtures/points/${name}.mjs`, import.meta.url));

/** A fabric on its own temp runtime dir, closed (and the dir removed) at teardown. */
export async function makeFabric(t: Test): Promise<{ fabric: Fabric; events: FabricEvent[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-fab-'));
  const fabric = new Fabric({ runtimeDir: join(dir, 'run') });
  const events: FabricEvent[] = [];
  fabric.on('event', (e: FabricEvent) => events.push(e));
  t.teardown(async () => {
    await fabric.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { fabric, events };
}

/** Resolve with the first event matching `pred` (already seen ones count). */
export function nextEvent<T extends FabricEvent['type']>(
  fabric: Fabric,
  events: FabricEvent[],
  type: T,
  pred: (e: Extract<FabricEvent, { type: T }>) => boolean = () => true,
): Promise<Extract<FabricEvent, { type: T }>> {
  const seen = events.find((e) => e.type === type && pred(e as Extract<FabricEvent, { type: T }>));
  if (seen) return Promise.resolve(seen as Extract<FabricEvent, { type: T }>);
  return new Promise((resolve) => {
    // Point hosts do not keep the process alive; this wait must.
    const keep = setInterval(() => {}, 1 << 30);
    const on = (e: FabricEvent) => {
      if (e.type === type && pred(e as Extract<FabricEvent, { type: T }>)) {
        fabric.off('event', on);
        clearInterval(keep);
        resolve(e as Extract<FabricEvent, { type: T }>);
      }
    };
    fabric.on('event', on);
  });
}

/** Text of a message. */
export const text = (m: { data: Uint8Array }): string => Buffer.from(m.data).toString();
