// Drives `switched` fixture points (test/fixtures/points/switched.mjs) over their caller links: the
// switch and trunk tests' shared driver (a copy of test/fabric-switch.ts's, exported).
import { createServer } from 'node:net';
import type { Link } from '../../dist/lib/index.js';
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

/** A TCP port free on loopback now. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}
