// Shared set-up for fabric tests: a Fabric on a temp runtime dir, torn down
// with the test, fixture point locations, and an event waiter.
import type { Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Fabric,
  type ConnectOptions,
  type FabricEvent,
  type FabricOptions,
  type PointScope,
} from '../../dist/lib/index.js';
import { normalizePoint } from '../../dist/lib/internal.js';

/** Absolute path of a fixture point module. */
export const pointFixture = (name: string): string =>
  fileURLToPath(new URL(`../fixtures/points/${name}.mjs`, import.meta.url));

/**
 * A fabric on its own temp runtime dir, closed (and the dir removed) at
 * teardown. Its point hosts start without tap's TypeScript loader (the
 * points are plain JavaScript): about a second less per host. Hosts get 30 s to answer instead of
 * the default 10 s: under the whole suite on two cores a process host's start once took longer, and
 * no test here asserts that bound. `options` are added to these.
 */
export async function makeFabric(
  t: Test,
  options: FabricOptions = {},
): Promise<{ fabric: Fabric; events: FabricEvent[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'amix-fab-'));
  const fabric = new Fabric({ runtimeDir: join(dir, 'run'), hostExecArgv: [], requestTimeoutMs: 30_000, ...options });
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

/** The three ways the seed's scenarios run: thread points, process points, and mixed (brokered) links. */
export const LINK_SCOPES = ['thread', 'process', 'mixed'] as const;
/** One of {@link LINK_SCOPES}. */
export type LinkScope = (typeof LINK_SCOPES)[number];

/**
 * The scope of point `name` in a test run for `scope`. In `mixed` the names in
 * `threads` are thread points and every other one a process point, so each link
 * between the two kinds has a broker between their primitives.
 */
export const scopeOf = (scope: LinkScope, name: string, threads: readonly string[]): PointScope =>
  scope === 'mixed' ? (threads.includes(name) ? 'thread' : 'process') : scope;

/**
 * Connect options that make the caller (a null end) a thread end in `mixed`: it is
 * planned as a thread registration, so its links to a process point go through a
 * broker. Elsewhere the caller takes the point's own primitive (no options).
 */
export const callerIn = (scope: LinkScope): Pick<ConnectOptions, 'standIn'> =>
  scope === 'mixed'
    ? { standIn: normalizePoint({ name: 'caller', location: 'caller', characteristics: { scope: 'thread' } }) }
    : {};
