// Separate hosts for tests: Linux network namespaces joined by veth pairs to
// one bridge, so traffic between "machines" crosses a real network stack
// (routing, ARP, TCP), not loopback. Needs root and iproute2; `netnsSkip()`
// says why not when the machine cannot provide them, and the caller prints
// that as its skip reason.
import type { Test } from 'tap';
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One namespace of a `Hosts` set: its name and its address on the shared bridge. */
export interface NetnsHost {
  /** The namespace name, for `ip netns exec`. */
  readonly ns: string;
  /** The host's IPv4 address on the bridge (a /24 of 10.0.0.0/8 picked at random per set). */
  readonly address: string;
}

/** A set of namespaces on one bridge; `spawn` runs a command inside one of them. */
export interface Hosts {
  readonly hosts: readonly NetnsHost[];
  /** Spawn `cmd args` inside host `i`'s namespace (killed with SIGKILL at teardown if still running). */
  spawn(i: number, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** With `{ root: true }`: this process's (the root namespace's) address on the bridge, else undefined. */
  readonly rootAddress?: string;
  /** Take host `i`'s link down (`false`) or up again: a cable pulled, not a process killed. */
  setLink(i: number, up: boolean): Promise<void>;
}

let cachedSkip: Promise<string | null> | undefined;

/**
 * Why this machine cannot create namespaces, or null when it can. Tried once per process by
 * creating and deleting a namespace, so a container without CAP_SYS_ADMIN is caught here.
 */
export function netnsSkip(): Promise<string | null> {
  cachedSkip ??= (async () => {
    if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
    if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add)';
    const probe = `amixprobe${randomBytes(3).toString('hex')}`;
    try {
      await run('ip', ['netns', 'add', probe]);
      await run('ip', ['netns', 'del', probe]);
      return null;
    } catch (err) {
      return `cannot create a network namespace: ${(err as Error).message.split('\n')[0]}`;
    }
  })();
  return cachedSkip;
}

/**
 * Create `n` namespaces, each with a veth to one bridge living in a hub namespace, addresses
 * 10.A.B.1..n/24 (A.B random). Everything is deleted at teardown: deleting a namespace deletes
 * its veth ends, and the hub's deletion takes the bridge. `root: true` also joins the root
 * namespace (the test process) to the bridge as 10.A.B.254, so the test can reach every host.
 */
export async function makeHosts(t: Test, n: number, opts: { root?: boolean } = {}): Promise<Hosts> {
  const tag = randomBytes(3).toString('hex');
  const a = 16 + (randomBytes(1)[0]! % 200);
  const b = randomBytes(1)[0]!;
  const hub = `amix${tag}hub`;
  const made: string[] = [];
  const children: ChildProcess[] = [];
  const rootIf = `amx${tag}`;
  let rootAddress: string | undefined;
  t.teardown(async () => {
    if (rootAddress) await run('ip', ['link', 'del', rootIf]).catch(() => {});
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of made.reverse()) await run('ip', ['netns', 'del', ns]).catch(() => {});
  });
  const ip = (args: string[]) => run('ip', args);
  await ip(['netns', 'add', hub]);
  made.push(hub);
  await ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', hub, 'link', 'set', 'br0', 'up']);
  const hosts: NetnsHost[] = [];
  for (let i = 1; i <= n; i++) {
    const ns = `amix${tag}h${i}`;
    await ip(['netns', 'add', ns]);
    made.push(ns);
    // Interface names are per namespace, but a veth pair is created in one namespace first,
    // so both ends need names unique there (the hub) before one end moves.
    await ip(['-n', hub, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', `e${i}`]);
    await ip(['-n', hub, 'link', 'set', `e${i}`, 'netns', ns]);
    await ip(['-n', hub, 'link', 'set', `p${i}`, 'master', 'br0']);
    await ip(['-n', hub, 'link', 'set', `p${i}`, 'up']);
    await ip(['-n', ns, 'link', 'set', `e${i}`, 'name', 'eth0']);
    await ip(['-n', ns, 'addr', 'add', `10.${a}.${b}.${i}/24`, 'dev', 'eth0']);
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    hosts.push({ ns, address: `10.${a}.${b}.${i}` });
  }
  if (opts.root) {
    await ip(['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', `${rootIf}b`]);
    rootAddress = `10.${a}.${b}.254`;
    await ip(['link', 'set', `${rootIf}b`, 'netns', hub]);
    await ip(['-n', hub, 'link', 'set', `${rootIf}b`, 'master', 'br0']);
    await ip(['-n', hub, 'link', 'set', `${rootIf}b`, 'up']);
    await ip(['addr', 'add', `${rootAddress}/24`, 'dev', rootIf]);
    await ip(['link', 'set', rootIf, 'up']);
  }
  return {
    hosts,
    rootAddress,
    spawn(i, cmd, args, opts = {}) {
      const child = spawn('ip', ['netns', 'exec', hosts[i]!.ns, cmd, ...args], opts);
      children.push(child);
      return child;
    },
    async setLink(i, up) {
      await ip(['-n', hosts[i]!.ns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
    },
  };
}
