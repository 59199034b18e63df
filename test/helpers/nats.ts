// Real nats-server processes for tests: one server or a cluster of servers,
// JetStream on, each in its own temp store, on ports of their own; all killed
// and removed at teardown. Where the binary is absent (outside CI, which
// installs it), `natsSkip()` gives the reason the caller prints as its skip.
import type { Test } from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './daemon.js';
import type { Hosts } from './netns.js';

const run = promisify(execFile);

/** A running nats-server. */
export interface NatsServer {
  /** `nats://HOST:PORT` for clients. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The current process (a new one after `restart()`). */
  readonly child: ChildProcess;
  /** SIGKILL it and resolve once it has exited (a crash, not a shutdown). */
  kill(): Promise<void>;
  /**
   * Start it again after `kill()`, with the same config (host, port, JetStream store, routes),
   * and resolve once it says it is ready. (Added for the nats primitive's crash tests.)
   */
  restart(): Promise<void>;
}

let cachedSkip: Promise<string | null> | undefined;

/** Why nats-server cannot be run here, or null when it can. */
export function natsSkip(): Promise<string | null> {
  cachedSkip ??= run('nats-server', ['--version']).then(
    () => null,
    () => 'nats-server is not installed (.ci/run installs it with apt-get; `apt-get install nats-server`)',
  );
  return cachedSkip;
}

/** Options of `startNats` / `startNatsCluster`. */
export interface NatsOptions {
  /** Run server `i` inside namespace `i` of this set (its bridge address), instead of on 127.0.0.1. */
  hosts?: Hosts;
  /** JetStream on (default true). */
  jetstream?: boolean;
}

/** Start one nats-server (JetStream on unless told otherwise). */
export async function startNats(t: Test, opts: NatsOptions = {}): Promise<NatsServer> {
  const [s] = await startServers(t, 1, opts);
  return s!;
}

/**
 * Start `n` nats-servers routed into one cluster (JetStream clustered when on) and wait until
 * JetStream has a meta leader, so a KV bucket can be made at once.
 */
export async function startNatsCluster(t: Test, n = 3, opts: NatsOptions = {}): Promise<NatsServer[]> {
  return startServers(t, n, opts);
}

async function startServers(t: Test, n: number, opts: NatsOptions): Promise<NatsServer[]> {
  const base = await mkdtemp(join(tmpdir(), 'amix-nats-'));
  const servers: NatsServer[] = [];
  t.teardown(async () => {
    await Promise.all(servers.map((s) => s.kill()));
    await rm(base, { recursive: true, force: true });
  });
  const js = opts.jetstream !== false;
  const nodes: Array<{ host: string; port: number; cport: number }> = [];
  for (let i = 0; i < n; i++) {
    // In a namespace of its own a server can take the well-known ports; on loopback it
    // takes ports free a moment ago.
    const host = opts.hosts ? opts.hosts.hosts[i]!.address : '127.0.0.1';
    nodes.push(
      opts.hosts ? { host, port: 4222, cport: 6222 } : { host, port: await freePort(), cport: await freePort() },
    );
  }
  for (let i = 0; i < n; i++) {
    const { host, port, cport } = nodes[i]!;
    const lines = [`server_name: n${i + 1}`, `listen: "${host}:${port}"`];
    if (js) lines.push(`jetstream { store_dir: "${join(base, `js${i + 1}`)}" }`);
    if (n > 1) {
      const routes = nodes.filter((_, j) => j !== i).map((o) => `"nats://${o.host}:${o.cport}"`);
      lines.push(`cluster { name: amixtest, listen: "${host}:${cport}", routes: [${routes.join(', ')}] }`);
    }
    const conf = join(base, `n${i + 1}.conf`);
    await writeFile(conf, lines.join('\n') + '\n');
    const launch = () =>
      opts.hosts
        ? opts.hosts.spawn(i, 'nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let child = launch();
    let exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    servers.push({
      url: `nats://${host}:${port}`,
      host,
      port,
      get child() {
        return child;
      },
      async kill() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      },
      async restart() {
        await this.kill();
        child = launch();
        exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        await new Promise<void>((resolve, reject) => {
          let buf = '';
          const timer = setTimeout(() => reject(new Error('restarted nats-server not ready within 20 s')), 20_000);
          child.once('exit', (code) => reject(new Error(`restarted nats-server exited (${code}): ${buf.slice(-400)}`)));
          child.stderr!.setEncoding('utf8');
          child.stderr!.on('data', (d: string) => {
            buf = (buf + d).slice(-8_000);
            if (buf.includes('Server is ready')) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
      },
    });
  }
  // Ready: every server has said so, and, clustered with JetStream, one has said a meta leader
  // was chosen (before that a stream or bucket cannot be created anywhere).
  const needLeader = js && n > 1;
  await new Promise<void>((resolve, reject) => {
    const ready = new Set<NatsServer>();
    let leader = !needLeader;
    const timer = setTimeout(() => reject(new Error('nats-server not ready within 20 s')), 20_000);
    const check = () => {
      if (ready.size === n && leader) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (const s of servers) {
      let buf = '';
      s.child.once('exit', (code) => reject(new Error(`nats-server exited early (${code}): ${buf.slice(-400)}`)));
      s.child.stderr!.setEncoding('utf8');
      s.child.stderr!.on('data', (d: string) => {
        buf += d;
        if (buf.includes('Server is ready')) ready.add(s);
        if (/JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/.test(buf)) {
          leader = true;
        }
        if (buf.length > 64_000) buf = buf.slice(-8_000);
        check();
      });
    }
  });
  return servers;
}
