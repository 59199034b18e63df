/**
 * Raw NATS for the `nats` row of `bench remote`, and the bench's own
 * nats-server: `@nats-io/transport-node` publish/subscribe on one subject,
 * the yardstick the `amix:nats` row is measured against. The publisher
 * flushes (a PING/PONG round trip to the server) every {@link FLUSH_EVERY}
 * messages, so it cannot run unboundedly ahead of a subscriber (NATS core
 * would drop it as a slow consumer); nothing else limits it. Nothing here
 * is part of amix.
 *
 * @module
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/transport-node';
import { freePort } from '../common.js';

/** Messages between two flushes of the raw publisher. */
export const FLUSH_EVERY = 1000;

/** The bench's nats-server: loopback, a free port, JetStream off (core NATS only). */
export interface BenchNats {
  readonly url: string;
  stop(): Promise<void>;
}

/** Start nats-server, or return why it cannot run here (the rows are then skipped with that reason). */
export async function startBenchNats(): Promise<BenchNats | string> {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'nats-server is not installed (apt-get install nats-server)';
  }
  const dir = await mkdtemp(join(tmpdir(), 'amix-bench-nats-'));
  const port = await freePort();
  const conf = join(dir, 'nats.conf');
  await writeFile(conf, `listen: "127.0.0.1:${port}"\n`);
  const child: ChildProcess = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('nats-server not ready within 15 s')), 15_000);
    child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${buf.slice(-300)}`)));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      buf = (buf + d).slice(-4000);
      if (buf.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function open(url: string): Promise<NatsConnection> {
  const { connect } = await import('@nats-io/transport-node');
  return connect({ servers: url });
}

/** Child side: subscribe, say ready with the subject, count `warm` (mark) then `count` messages. */
export async function rawSink(
  url: string,
  warm: number,
  count: number,
  ready: (subject: string) => void,
  mark: () => void,
): Promise<void> {
  const nc = await open(url);
  const subject = `bench.${process.pid}.${Date.now()}`;
  let got = 0;
  const all = new Promise<void>((resolve) => {
    nc.subscribe(subject, {
      callback: () => {
        got++;
        if (got === warm) mark();
        if (got === warm + count) resolve();
      },
    });
  });
  await nc.flush();
  ready(subject);
  await all;
  await nc.close();
}

/** Child side: echo `count` messages from a subject of its own to `back`. */
export async function rawEcho(url: string, back: string, count: number, ready: (subject: string) => void) {
  const nc = await open(url);
  const subject = `bench.echo.${process.pid}.${Date.now()}`;
  let got = 0;
  const all = new Promise<void>((resolve) => {
    nc.subscribe(subject, {
      callback: (_e, m) => {
        nc.publish(back, m.data);
        if (++got === count) resolve();
      },
    });
  });
  await nc.flush();
  ready(subject);
  await all;
  await nc.flush();
  await nc.close();
}

/** Parent side of throughput: `warm` untimed, then `count` timed until the child has them all. */
export async function rawThroughput(
  url: string,
  subject: string,
  msg: Uint8Array,
  warm: number,
  count: number,
  mark: Promise<void>,
  done: Promise<void>,
): Promise<number> {
  const nc = await open(url);
  const send = async (n: number) => {
    for (let i = 0; i < n; i++) {
      nc.publish(subject, msg);
      if (i % FLUSH_EVERY === FLUSH_EVERY - 1) await nc.flush();
    }
    await nc.flush();
  };
  await send(warm);
  await mark;
  const t0 = performance.now();
  await send(count);
  await done;
  const ms = performance.now() - t0;
  await nc.close();
  return (count / ms) * 1000;
}

/** Parent side of round trips: publish one, wait for its echo, `warm + rtts` times (the first `warm` not recorded). */
export async function rawRtt(
  url: string,
  start: (back: string) => Promise<{ ready: unknown; done: Promise<void> }>,
  msg: Uint8Array,
  warm: number,
  rtts: number,
  h: { record(us: number): void },
): Promise<void> {
  const nc = await open(url);
  const back = `bench.back.${process.pid}.${Date.now()}`;
  let wake: (() => void) | undefined;
  nc.subscribe(back, { callback: () => wake?.() });
  await nc.flush();
  const { ready, done } = await start(back);
  for (let i = 0; i < warm + rtts; i++) {
    const t0 = performance.now();
    const echoed = new Promise<void>((r) => (wake = r));
    nc.publish(ready as string, msg);
    await echoed;
    if (i >= warm) h.record((performance.now() - t0) * 1000);
  }
  await done;
  await nc.close();
}
