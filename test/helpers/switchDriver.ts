// Drives `switched` fixture points (test/fixtures/points/switched.mjs) over their caller links: the
// switch and trunk tests' shared driver.
import type { Link } from '../../dist/lib/index.js';
import type { CurveKeyPair } from '../../dist/lib/internal.js';
import { makeFabric, pointFixture } from './fabric.js';

export type Answer = {
  id?: number;
  ok?: boolean;
  error?: string;
  got?: string;
  from?: string;
  count?: number;
  froms?: Record<string, number>;
};

/** Drives one `switched` fixture point over its caller link: commands with ids, and the point's reports. */
export class Driver {
  readonly reports: Answer[] = [];
  readonly #waiting = new Map<number, (a: Answer) => void>();
  readonly #reportWaiters: Array<() => void> = [];
  #id = 0;
  constructor(readonly link: Link) {
    void (async () => {
      for (;;) {
        let m;
        try {
          m = await link.receive();
        } catch {
          return;
        }
        const a = JSON.parse(Buffer.from(m.data).toString()) as Answer;
        if (a.id !== undefined) this.#waiting.get(a.id)?.(a);
        else {
          this.reports.push(a);
          for (const w of this.#reportWaiters.splice(0)) w();
        }
      }
    })();
  }
  cmd(c: Record<string, unknown>): Promise<Answer> {
    const id = ++this.#id;
    const p = new Promise<Answer>((r) => this.#waiting.set(id, r));
    void this.link.send(Buffer.from(JSON.stringify({ ...c, id })));
    return p;
  }
  /** Resolve once `n` reports have arrived. */
  async reported(n: number): Promise<Answer[]> {
    while (this.reports.length < n) await new Promise<void>((r) => this.#reportWaiters.push(r));
    return this.reports;
  }
}

export async function attach(
  fabric: Awaited<ReturnType<typeof makeFabric>>['fabric'],
  name: string,
  sw: string,
  data: Record<string, unknown> = {},
): Promise<{ drv: Driver; link: Link }> {
  fabric.register({ name, location: pointFixture('switched'), data: { sw, ...data } });
  const drv = new Driver(await fabric.connect(null, name));
  const link = await fabric.connect(name, sw);
  return { drv, link };
}

export { freePort } from './daemon.js';

/**
 * `p`, or a rejection naming `what` after `ms`: a set-up step that never ends fails as itself, not as the
 * file's timeout with no assertion to show where it stopped. The timer does not keep the process alive.
 */
export function within<T>(p: Promise<T>, what: string, ms = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * A trunk between switches `a` and `b` of one fabric: trunk points `names[0]` (dialling, linked to
 * `a`) and `names[1]` (listening on a loopback port, linked to `b`), each in a process of its own,
 * each allowing only the other's key. Resolves with the two key pairs (`k1` is `names[0]`'s).
 * `b` null: `names[1]` is in point mode (`attach: 'point'`), linked to nothing yet (link points to it).
 * `restart`: both restarted by their supervisor when they die.
 */
export async function trunkPair(
  fabric: Awaited<ReturnType<typeof makeFabric>>['fabric'],
  a: string,
  b: string | null,
  names: readonly [string, string] = ['TTP-1', 'TTP-2'],
  restart = false,
): Promise<{ k1: CurveKeyPair; k2: CurveKeyPair }> {
  const { TRUNK_LOCATION } = await import('../../dist/lib/index.js');
  const { generateKeyPair } = await import('../../dist/lib/internal.js');
  const { freePort } = await import('./daemon.js');
  const [k1, k2] = [generateKeyPair(), generateKeyPair()];
  const listen = `tcp://127.0.0.1:${await freePort()}`;
  const proc = { scope: 'process' as const, ...(restart ? { restart } : {}) };
  fabric.register({
    name: names[1],
    location: TRUNK_LOCATION,
    characteristics: proc,
    data: { trunk: { ...k2, peerKey: k1.publicKey, listen, ...(b === null ? { attach: 'point' } : {}) } },
  });
  fabric.register({
    name: names[0],
    location: TRUNK_LOCATION,
    characteristics: proc,
    data: { trunk: { ...k1, peerKey: k2.publicKey, connect: listen } },
  });
  if (b !== null) await fabric.connect(b, names[1]);
  await fabric.connect(a, names[0]);
  return { k1, k2 };
}
