// amixd: the per-machine amix daemon. A thin shell over lib/control/daemon.ts, started by bin/amixd.ts.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
// Straight from their modules, not lib/internal.js: that would load the zeromq addon into a
// daemon that does not peer. Peering's own modules are imported only when it is asked for.
import { Daemon } from '../lib/control/daemon.js';
import { neeService } from '../lib/services/nee/service.js';
import { capsService } from '../lib/services/caps/service.js';
import { parseLimitFlags } from '../lib/control/guard.js';
import { parseMetricsAddress, type MetricsOptions } from '../lib/control/metricsAddress.js';
import { isAmixError } from '../lib/core/errors.js';
import { defaultDaemonDir } from '../lib/core/paths.js';
import type { PeerConfig, PeeringOptions } from '../lib/remote/types.js';
import { checkClusterOptions, parseServers, type ClusterOptions } from '../lib/cluster/options.js';

const USAGE = `usage: amixd [--dir DIR] [--slots N] [--shared-socket PATH] [--metrics HOST:PORT] [--quiet] [peering options]

Runs the amix daemon in the foreground until SIGTERM, SIGINT or "amix daemon stop".
  --dir DIR          daemon directory (socket, tokens, state); default ${defaultDaemonDir()}
                     (or $AMIX_DIR)
  --slots N          containers that may be plugged in at once (default 64); the
                     administrator has --admin-slots more of its own (default 4)
  --admin-slots N    administrator connections beyond --slots
  --shared-socket PATH  a second control socket, mode 0666, for other local users:
                     a principal's token (amix principal add) is the only way in;
                     who may reach PATH is up to its directory's mode
  --quiet            no log lines on stderr
  --limit KEY=N      a control socket bound (repeat): helloTimeoutMs, maxUnauthenticated,
                     maxFrameBeforeHello, maxUnsentBytes, highWaterBytes, logLines, logWindowMs
  --metrics HOST:PORT  serve Prometheus metrics on http://HOST:PORT/metrics (GET only);
                     HOST must be loopback (127.0.0.1, ::1 as [::1], localhost); port 0: any free one
                     (the address is logged and in "amix daemon status")
  --metrics-allow-remote  let --metrics bind a non-loopback HOST: whoever reaches it reads
                     the names of points, links and peers and their traffic (no authentication)
  --nee-poll-ms MS   how often the NEEM polls the remote systems of DIR/neecf.json (default 5000)
  -h, --help         this help

Peering with other daemons (points on one link to points on another by name
or identifier; directories answer each other's lookups):
  --listen tcp://HOST:PORT   where peers dial this daemon
  --peer tcp://HOST:PORT     a daemon to dial (repeat for more)
  --peer-key=KEY             the public key of the --peer at the same position (with "=": a
                             Z85 key may start with "-")
  --keys FILE                this daemon's CURVE key pair (amix keys generate --out FILE)
  --allow FILE               the daemons allowed to peer: one "<public key> <daemon id>" a line
                             (a key alone is pinned to the id of its first hello, in DIR/peering.json)
  --insecure                 peer without --keys: NOT authenticated (any local user can act as a peer)
  --config FILE              the same as JSON: { "listen", "peers": [{ "endpoint", "publicKey" }],
                             "keys", "allow" (a file, or ["<key> <id>", ...]), "insecure", "slots",
                             "metrics": "HOST:PORT", "metricsAllowRemote" } (flags win)
Peering needs --keys and --allow (every --peer with its --peer-key, listed in --allow), or --insecure.
A daemon relaying 4 KiB messages between peers measured about 30 % faster started as
  node --initial-old-space-size=64 "$(command -v amixd)" ...   (more memory under load: docs/tuning.md)

Cluster mode (control state in NATS JetStream; the data path stays direct peering):
  --cluster nats://HOST:PORT[,...]  join the cluster of these NATS servers: names unique
                             cluster-wide, members found and peered with (keys from the
                             members bucket), a local replica of every registration; needs
                             --listen (an address the other members reach) and --keys
                             (--allow optional) or --insecure. In --config: "cluster":
                             { "servers", "creds" (file), "nkey" (seed file), "token",
                             "replicas", "heartbeatMs", "goneAfterMs", "prefix" }`;

/** An error as one line, with its code when it has one. */
const reason = (err: unknown): string => (isAmixError(err) ? `${err.message} (${err.code})` : (err as Error).message);

const usage = (why: string): never => {
  process.stderr.write(`amixd: ${why}\n${USAGE}\n`);
  process.exit(2);
};

let values: Record<string, string | boolean | string[] | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      dir: { type: 'string' },
      slots: { type: 'string' },
      'admin-slots': { type: 'string' },
      'shared-socket': { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      listen: { type: 'string' },
      peer: { type: 'string', multiple: true },
      'peer-key': { type: 'string', multiple: true },
      keys: { type: 'string' },
      allow: { type: 'string' },
      insecure: { type: 'boolean' },
      config: { type: 'string' },
      limit: { type: 'string', multiple: true },
      metrics: { type: 'string' },
      'metrics-allow-remote': { type: 'boolean' },
      'nee-poll-ms': { type: 'string' },
      cluster: { type: 'string' },
    },
  }));
} catch (err) {
  usage((err as Error).message);
}
if (values!.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const v = values!;

/** The config file's shape; paths in it are relative to the file. */
interface Config {
  listen?: string;
  peers?: Array<string | PeerConfig>;
  keys?: string;
  allow?: string | string[];
  insecure?: boolean;
  slots?: number;
  metrics?: string;
  metricsAllowRemote?: boolean;
  cluster?: Omit<ClusterOptions, 'servers'> & { servers: string | string[] };
}
let config: Config = {};
let configDir = process.cwd();
if (typeof v.config === 'string') {
  try {
    config = JSON.parse(await readFile(v.config, 'utf8')) as Config;
    if (config === null || typeof config !== 'object' || Array.isArray(config))
      throw new Error('must hold a JSON object');
  } catch (err) {
    usage(`--config ${v.config}: ${(err as Error).message}`);
  }
  configDir = dirname(resolve(v.config));
}

const slotsRaw = v.slots ?? config.slots;
const slots = slotsRaw === undefined ? undefined : Number(slotsRaw);
if (slots !== undefined && (!Number.isSafeInteger(slots) || slots < 1)) usage('--slots must be a positive integer');
const adminSlots = v['admin-slots'] === undefined ? undefined : Number(v['admin-slots']);
if (adminSlots !== undefined && (!Number.isSafeInteger(adminSlots) || adminSlots < 1))
  usage('--admin-slots must be a positive integer');

let cluster: ClusterOptions | undefined;
try {
  const c = config.cluster;
  if (c !== undefined && (c === null || typeof c !== 'object')) usage('--config: "cluster" must be an object');
  if (typeof v.cluster === 'string' || c) {
    const file = (f: string | undefined) => (f === undefined ? {} : { path: resolve(configDir, f) });
    cluster = checkClusterOptions({
      ...(c ?? {}),
      servers: parseServers(typeof v.cluster === 'string' ? v.cluster : c!.servers),
      ...(c?.creds !== undefined ? { creds: file(c.creds).path } : {}),
      ...(c?.nkey !== undefined ? { nkey: file(c.nkey).path } : {}),
    });
  }
} catch (err) {
  usage(reason(err));
}
if (cluster && (v.listen ?? config.listen) === undefined)
  usage('--cluster needs --listen tcp://HOST:PORT: the address the other members dial');

let peering: PeeringOptions | undefined;
try {
  const listen = (v.listen as string | undefined) ?? config.listen;
  const peers: PeerConfig[] = [];
  const flagPeers = (v.peer as string[] | undefined) ?? [];
  const flagKeys = (v['peer-key'] as string[] | undefined) ?? [];
  if (flagKeys.length > flagPeers.length) usage('--peer-key needs a --peer at the same position');
  flagPeers.forEach((endpoint, i) => peers.push({ endpoint, ...(flagKeys[i] ? { publicKey: flagKeys[i] } : {}) }));
  if (flagPeers.length === 0)
    for (const p of config.peers ?? []) peers.push(typeof p === 'string' ? { endpoint: p } : p);
  const keysFile =
    (v.keys as string | undefined) ?? (config.keys === undefined ? undefined : resolve(configDir, config.keys));
  const allowSpec =
    (v.allow as string | undefined) ??
    (typeof config.allow === 'string' ? resolve(configDir, config.allow) : config.allow);
  if (listen === undefined && peers.length === 0 && (keysFile || allowSpec !== undefined))
    usage('--keys and --allow are for peering: give --listen or --peer too');
  if (listen !== undefined || peers.length > 0) {
    const { AllowList, isCurveKey, loadKeyPair } = await import('../primitives/zeromq/keys.js');
    const { checkPeerEndpoint } = await import('../lib/remote/types.js');
    for (const p of peers) {
      checkPeerEndpoint(p.endpoint);
      if (p.publicKey !== undefined && !isCurveKey(p.publicKey))
        usage(`the key of peer ${p.endpoint} is not a Z85 CURVE public key`);
    }
    if (listen !== undefined) checkPeerEndpoint(listen);
    peering = {
      ...(listen !== undefined ? { listen } : {}),
      peers,
      ...(keysFile ? { keys: await loadKeyPair(keysFile) } : {}),
      ...(allowSpec !== undefined
        ? { allow: typeof allowSpec === 'string' ? await AllowList.load(allowSpec) : new AllowList(allowSpec) }
        : cluster
          ? { allow: new AllowList() } // the members' keys come from the cluster
          : {}),
      insecure: Boolean(v.insecure ?? config.insecure),
      // In a cluster the local replica answers lookups: peers' directories are not asked.
      ...(cluster ? { federate: false } : {}),
    };
  }
} catch (err) {
  process.stderr.write(`amixd: ${reason(err)}\n`);
  process.exit(2);
}

let limits: ReturnType<typeof parseLimitFlags> = {};
let metrics: MetricsOptions | undefined;
try {
  limits = parseLimitFlags(v.limit as string[] | undefined);
  const spec = (v.metrics as string | undefined) ?? config.metrics;
  const allowRemote = Boolean(v['metrics-allow-remote'] ?? config.metricsAllowRemote);
  if (spec !== undefined) metrics = parseMetricsAddress(String(spec), allowRemote);
  else if (allowRemote) usage('--metrics-allow-remote is for --metrics: give --metrics HOST:PORT too');
} catch (err) {
  usage(reason(err));
}
const neePoll = v['nee-poll-ms'] === undefined ? undefined : Number(v['nee-poll-ms']);
if (neePoll !== undefined && (!Number.isSafeInteger(neePoll) || neePoll < 10))
  usage('--nee-poll-ms must be an integer of at least 10');
const daemon = new Daemon({
  ...(v.dir ? { dir: v.dir as string } : {}),
  limits,
  ...(slots ? { slots } : {}),
  ...(adminSlots ? { adminSlots } : {}),
  ...(v['shared-socket'] ? { sharedSocket: resolve(v['shared-socket'] as string) } : {}),
  ...(peering ? { peering } : {}),
  ...(metrics ? { metrics } : {}),
  ...(cluster ? { cluster } : {}),
  services: [neeService(neePoll !== undefined ? { pollMs: neePoll } : {}), capsService()],
  log: v.quiet ? () => {} : (line) => process.stderr.write(`${line}\n`),
});
try {
  await daemon.start();
} catch (err) {
  process.stderr.write(`amixd: ${reason(err)}\n`);
  process.exit(1);
}
let stopping = false;
const stop = (why: string) => {
  // A second signal while stopping: the user wants out now.
  if (stopping) {
    process.stderr.write(`amixd: ${why} again, exiting at once\n`);
    process.exit(1);
  }
  stopping = true;
  process.stderr.write(v.quiet ? '' : `amixd: ${why}, stopping\n`);
  void daemon.stop().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`amixd: stop failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
daemon.on('exit', () => process.exit(0));
// The daemon stays up while its server listens; tell a parent waiting on our stdout that we are ready.
if (process.env.AMIXD_READY_FD === '1') {
  // A parent that stopped listening (EPIPE) must not take the daemon down with it.
  process.stdout.on('error', () => {});
  process.stdout.write(`ready ${daemon.socketPath}\n`);
}
