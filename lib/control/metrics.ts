/**
 * `amixd --metrics HOST:PORT`: the daemon's numbers in the Prometheus text
 * format on `GET /metrics`, built with `prom-client` in a registry of its
 * own. Nothing is counted per message: every value is read at scrape time
 * from what `stats`, `status` and `peers` already answer (the same
 * functions: `fabricStats`, `Daemon.status`), in the metrics' `collect()`
 * callbacks. `prom-client` is imported only when an endpoint starts, so
 * neither `import('amix')` nor a daemon without `--metrics` loads it.
 *
 * The endpoint is loopback-only unless the operator says otherwise
 * (`allowRemote`, `amixd --metrics-allow-remote`): the numbers name
 * points, links and peers. A slow or hostile scraper is bounded: at most
 * {@link METRICS_MAX_CONNECTIONS} connections, a request timeout, one
 * scrape at a time (concurrent requests share its result), and errors are
 * logged, never thrown into the daemon.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AmixError, ErrorCode } from '../core/errors.js';
import type { InstanceInfo } from '../fabric/fabric.js';
import type { DaemonStats, DaemonStatus } from './ops.js';
import { isLoopbackHost, parseMetricsAddress, type MetricsOptions } from './metricsAddress.js';
export { isLoopbackHost, parseMetricsAddress, type MetricsOptions } from './metricsAddress.js';

/** What the endpoint reads at each scrape: the daemon's own answers to `stats` and `status`. */
export interface MetricsSource {
  stats(): Promise<DaemonStats>;
  instances(): InstanceInfo[];
  status(): DaemonStatus;
}

/** Concurrent connections the endpoint accepts; more are closed at once. */
export const METRICS_MAX_CONNECTIONS = 8;
/** Milliseconds a request may take to arrive (headers and all) before its connection is dropped. */
export const METRICS_REQUEST_TIMEOUT_MS = 5_000;

type Labels = Record<string, string>;
/** One scrape's numbers, gathered once and read by every metric's `collect()`. */
interface Snapshot {
  stats: DaemonStats;
  instances: InstanceInfo[];
  status: DaemonStatus;
}
/** A metric's values at one scrape: label sets and numbers. */
type Rows = Array<[Labels, number]>;
interface Def {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels: readonly string[];
  rows: (s: Snapshot) => Rows;
}

const LINK = ['point', 'instance', 'link', 'primitive', 'direction'] as const;
/** ChannelStats keys that are a drop, each a `reason`; the other numbers a primitive adds go to amix_link_primitive_events_total. */
const DROP_KEYS = new Set([
  'dropped',
  'rejected',
  'badFrames',
  'protocolErrors',
  'preHelloRefused',
  'connectionsOverCap',
]);
const BASE_KEYS = new Set(['sent', 'received', 'pending', 'suspensions', 'bytesSent', 'bytesReceived', 'suspended']);
const GUARD_REASONS = ['refusedOverCap', 'helloTimeouts', 'oversizedBeforeHello', 'protocolErrors', 'slowConsumers'];
const PEERING_DROPS = [
  'badEnvelopes',
  'badFrames',
  'unknownSender',
  'spoofedSenders',
  'unhelloed',
  'refusedHellos',
  'refusedHandshakes',
] as const;
const PEER_COUNTERS = [
  ['sent', 'Envelopes sent to the peer.'],
  ['received', 'Envelopes from the peer delivered to local points.'],
  ['rejected', 'Envelopes from the peer refused (unknown receiver, or its link would not open).'],
  ['duplicates', 'Envelopes from the peer that arrived again and were dropped.'],
  ['gaps', 'Envelopes from the peer that skipped ahead of the sequence expected (dropped; re-sent on request).'],
  ['redelivered', 'Re-sent envelopes delivered to a point: possible duplicates (an upper bound).'],
  ['spoofed', "Envelopes and requests on the peer's connections naming another daemon as sender (dropped)."],
  ['resent', 'Envelopes this daemon re-sent to the peer.'],
] as const;
const RESETS =
  'Read from the instance at scrape time: resets to 0 when the instance restarts (see amix_point_restarts_total).';

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** Each channel end of each instance's links: its labels and its counters. */
function* channelEnds(s: Snapshot): Generator<[Labels, Record<string, unknown>]> {
  const pointOf = new Map(s.instances.map((i) => [i.instance, i.point]));
  const flowsOf = new Map(s.stats.links.map((l) => [l.id, l.flows]));
  for (const [instance, st] of Object.entries(s.stats.instances)) {
    if ('error' in st) continue;
    for (const [link, ends] of Object.entries(st.links ?? {})) {
      const flows = flowsOf.get(link) ?? [];
      for (const [direction, list] of [
        ['out', ends.tx],
        ['in', ends.rx],
      ] as const) {
        // The hop this end carries: the flow leaving (out) or reaching (in) this instance.
        const prims = new Set(
          flows.filter((f) => (direction === 'out' ? f.from : f.to) === instance).map((f) => f.primitive),
        );
        const labels = {
          point: pointOf.get(instance) ?? instance,
          instance,
          link,
          direction,
          primitive: [...prims].join(','),
        };
        for (const end of list ?? []) yield [labels, end as unknown as Record<string, unknown>];
      }
    }
  }
}

/** Sum `value(end)` over the channel ends with the same labels (a conference link has one end per peer). */
function perEnd(s: Snapshot, value: (end: Record<string, unknown>, l: Labels) => Rows): Rows {
  const sums = new Map<string, [Labels, number]>();
  for (const [labels, end] of channelEnds(s))
    for (const [extra, v] of value(end, labels)) {
      const all = { ...labels, ...extra };
      const key = JSON.stringify(all);
      const row = sums.get(key);
      if (row) row[1] += v;
      else sums.set(key, [all, v]);
    }
  return [...sums.values()];
}

/** Each control socket's guard counters (`status.guard`, `status.sharedGuard`), by socket. */
const guards = (s: Snapshot): Array<[string, Record<string, unknown>]> =>
  (
    [
      ['private', s.status.guard],
      ['shared', s.status.sharedGuard],
    ] as const
  ).flatMap(([socket, g]) => (g ? [[socket, { ...g }] as [string, Record<string, unknown>]] : []));
const peers = (s: Snapshot) => s.status.peering?.peers ?? [];
const peerName = (p: { id: string | undefined; endpoint: string | undefined }): string => p.id ?? p.endpoint ?? '?';

/** Every metric: its name, type, labels and how to read it from a scrape's snapshot. */
const DEFS: Def[] = [
  {
    name: 'amix_link_messages_total',
    type: 'counter',
    help: `Messages through a link end of a point instance (direction out: sent, in: received). ${RESETS}`,
    labels: LINK,
    rows: (s) => perEnd(s, (e, l) => [[{}, num(l.direction === 'out' ? e.sent : e.received)]]),
  },
  {
    name: 'amix_link_bytes_total',
    type: 'counter',
    help: `Bytes through a link end of a point instance (direction out: sent, in: received). ${RESETS}`,
    labels: LINK,
    rows: (s) => perEnd(s, (e, l) => [[{}, num(l.direction === 'out' ? e.bytesSent : e.bytesReceived)]]),
  },
  {
    name: 'amix_link_pending',
    type: 'gauge',
    help: 'Messages accepted but not yet taken by the receiver, as far as this end knows.',
    labels: LINK,
    rows: (s) => perEnd(s, (e) => [[{}, num(e.pending)]]),
  },
  {
    name: 'amix_link_drops_total',
    type: 'counter',
    help: `Messages or frames a link end dropped or refused, by reason (dropped: dropNewest/dropOldest, rejected: the reject policy, others: the primitive's refusals). ${RESETS}`,
    labels: [...LINK, 'reason'],
    rows: (s) =>
      perEnd(s, (e) =>
        [...DROP_KEYS]
          .filter((k) => k in e || k === 'dropped' || k === 'rejected')
          .map((k) => [{ reason: k }, num(e[k])]),
      ),
  },
  {
    name: 'amix_link_primitive_events_total',
    type: 'counter',
    help: `Other counters a primitive reports for a link end (e.g. creditRevocations, redelivered), by name. ${RESETS}`,
    labels: [...LINK, 'name'],
    rows: (s) =>
      perEnd(s, (e) =>
        Object.keys(e)
          .filter((k) => !DROP_KEYS.has(k) && !BASE_KEYS.has(k) && typeof e[k] === 'number')
          .map((k) => [{ name: k }, num(e[k])]),
      ),
  },
  {
    name: 'amix_link_suspensions_total',
    type: 'counter',
    help: `Times a sending end reached the receiver's maxmsg (high-water mark). ${RESETS}`,
    labels: LINK,
    rows: (s) => perEnd(s, (e, l) => (l.direction === 'out' ? [[{}, num(e.suspensions)]] : [])),
  },
  {
    name: 'amix_link_suspended',
    type: 'gauge',
    help: 'Sending ends of the link at this point suspended now (amix suspend, or hold).',
    labels: LINK,
    rows: (s) => perEnd(s, (e, l) => (l.direction === 'out' ? [[{}, e.suspended === true ? 1 : 0]] : [])),
  },
  {
    name: 'amix_link_suspended_seconds_total',
    type: 'counter',
    help: 'Seconds the link has spent suspended or held since it was connected.',
    labels: ['link', 'state', 'mode'],
    rows: (s) => s.stats.links.map((l) => [{ link: l.id, state: l.state, mode: l.mode }, num(l.suspendedMs) / 1000]),
  },
  {
    name: 'amix_point_messages_total',
    type: 'counter',
    help: `Messages a point instance sent and received, all links together. ${RESETS}`,
    labels: ['point', 'instance', 'direction'],
    rows: (s) =>
      s.instances.flatMap((i) => {
        const st = s.stats.instances[i.instance];
        if (!st || 'error' in st) return [];
        return [
          [{ point: i.point, instance: i.instance, direction: 'out' }, num(st.point.sent)],
          [{ point: i.point, instance: i.instance, direction: 'in' }, num(st.point.received)],
        ] as Rows;
      }),
  },
  {
    name: 'amix_point_dropped_total',
    type: 'counter',
    help: `Messages a point instance dropped while it had no receiver linked (its maxUnlinked and discard policy). ${RESETS}`,
    labels: ['point', 'instance'],
    rows: (s) => pointRows(s, (st) => num(st.point.dropped)),
  },
  {
    name: 'amix_point_unlinked',
    type: 'gauge',
    help: 'Messages a point instance holds until a receiver is linked.',
    labels: ['point', 'instance'],
    rows: (s) => pointRows(s, (st) => num(st.point.unlinked)),
  },
  {
    name: 'amix_point_restarts_total',
    type: 'counter',
    help: 'Times the fabric restarted a point instance.',
    labels: ['point', 'instance', 'state'],
    rows: (s) => s.instances.map((i) => [{ point: i.point, instance: i.instance, state: i.state }, num(i.restarts)]),
  },
  {
    name: 'amix_stats_errors',
    type: 'gauge',
    help: 'Point instances that did not answer the stats request at this scrape (their numbers are missing).',
    labels: [],
    rows: (s) => [[{}, Object.values(s.stats.instances).filter((st) => 'error' in st).length]],
  },
  ...PEER_COUNTERS.map(([k, help]): Def => ({
    name: `amix_peer_${k}_total`,
    type: 'counter',
    help: `${help} Kept per peer id across reconnects: resets only when this daemon restarts.`,
    labels: ['peer'],
    rows: (s) => peers(s).map((p) => [{ peer: peerName(p) }, num(p.stats?.[k])]),
  })),
  {
    name: 'amix_peer_up',
    type: 'gauge',
    help: 'A peer daemon: 1 for its current state (connecting, up, down, refused).',
    labels: ['peer', 'state'],
    rows: (s) => peers(s).map((p) => [{ peer: peerName(p), state: p.state }, 1]),
  },
  {
    name: 'amix_peering_drops_total',
    type: 'counter',
    help: 'What the peering plane dropped or refused, by reason (as amix daemon peers shows it).',
    labels: ['reason'],
    rows: (s) => {
      const p = s.status.peering;
      return p ? PEERING_DROPS.map((r) => [{ reason: r }, num(p[r])]) : [];
    },
  },
  {
    name: 'amix_points_registered',
    type: 'gauge',
    help: 'Points registered with the daemon.',
    labels: [],
    rows: (s) => [[{}, s.status.points]],
  },
  {
    name: 'amix_instances',
    type: 'gauge',
    help: 'Point instances, by state.',
    labels: ['state'],
    rows: (s) => {
      const by = new Map<string, number>();
      for (const i of s.instances) by.set(i.state, (by.get(i.state) ?? 0) + 1);
      return [...by].map(([state, n]) => [{ state }, n]);
    },
  },
  {
    name: 'amix_links',
    type: 'gauge',
    help: 'Links, local and remote.',
    labels: [],
    rows: (s) => [[{}, s.status.links]],
  },
  {
    name: 'amix_clients_connected',
    type: 'gauge',
    help: 'Containers plugged in (hello said), by kind (admin: the administrator, user: any other principal).',
    labels: ['kind'],
    rows: (s) => {
      const admin = s.status.containers.filter((c) => c.admin).length;
      return [
        [{ kind: 'admin' }, admin],
        [{ kind: 'user' }, s.status.containers.length - admin],
      ];
    },
  },
  {
    name: 'amix_control_unauthenticated',
    type: 'gauge',
    help: 'Control socket connections open that have not said hello yet.',
    labels: ['socket'],
    rows: (s) => guards(s).map(([socket, g]) => [{ socket }, num(g.unauthenticated)]),
  },
  {
    name: 'amix_control_refused_total',
    type: 'counter',
    help: 'Control socket connections refused or cut off by its guard, by reason (amix daemon status: guard).',
    labels: ['socket', 'reason'],
    rows: (s) =>
      guards(s).flatMap(([socket, g]) =>
        GUARD_REASONS.map((r) => [{ socket, reason: r }, num(g[r])] as [Labels, number]),
      ),
  },
  {
    name: 'amix_control_log_suppressed_total',
    type: 'counter',
    help: "Log lines the control socket's guard did not write because of its rate limit.",
    labels: ['socket'],
    rows: (s) => guards(s).map(([socket, g]) => [{ socket }, num(g.logSuppressed)]),
  },
  {
    name: 'amix_uptime_seconds',
    type: 'gauge',
    help: 'Seconds since the daemon started.',
    labels: [],
    rows: (s) => [[{}, s.status.uptimeMs / 1000]],
  },
];

function pointRows(
  s: Snapshot,
  value: (st: Exclude<DaemonStats['instances'][string], { error: string }>) => number,
): Rows {
  return s.instances.flatMap((i) => {
    const st = s.stats.instances[i.instance];
    return st && !('error' in st) ? ([[{ point: i.point, instance: i.instance }, value(st)]] as Rows) : [];
  });
}

/** Every metric this endpoint serves, name and type (besides prom-client's process and Node.js ones, prefixed `amix_`). */
export const METRICS: ReadonlyArray<{ name: string; type: 'counter' | 'gauge'; labels: readonly string[] }> = DEFS.map(
  ({ name, type, labels }) => ({ name, type, labels }),
);

/**
 * The HTTP endpoint. `start()` binds it (rejects with `AMIX_ERR_INVALID_ARG`
 * for a non-loopback host without `allowRemote`, or with the listen error);
 * `close()` stops it and drops its connections. Idempotent.
 */
export class MetricsEndpoint {
  readonly #options: MetricsOptions;
  readonly #source: MetricsSource;
  readonly #log: (line: string) => void;
  #server: Server | undefined;
  #render: (() => Promise<{ text: string; contentType: string }>) | undefined;
  /** The scrape in progress: concurrent requests share it (one stats round per scrape, however many scrapers). */
  #inflight: Promise<{ text: string; contentType: string }> | undefined;
  #url: string | undefined;

  constructor(options: MetricsOptions, source: MetricsSource, log: (line: string) => void = () => {}) {
    this.#options = options;
    this.#source = source;
    this.#log = log;
  }

  /** `http://HOST:PORT/metrics` once listening (the port the kernel picked for port 0). */
  get url(): string | undefined {
    return this.#url;
  }

  async start(): Promise<void> {
    const { host, port, allowRemote } = this.#options;
    if (!allowRemote && !isLoopbackHost(host)) parseMetricsAddress(`${host}:${port}`); // throws the same refusal
    // Loaded here only: a daemon without --metrics (and import('amix')) never loads prom-client.
    const prom = await import('prom-client');
    const registry = new prom.Registry();
    let snap: Snapshot | undefined;
    for (const d of DEFS) {
      const Metric = d.type === 'counter' ? prom.Counter : prom.Gauge;
      new Metric({
        name: d.name,
        help: d.help,
        labelNames: d.labels,
        registers: [registry],
        collect(this: InstanceType<typeof Metric>) {
          this.reset();
          if (!snap) return;
          for (const [labels, v] of d.rows(snap))
            if (this instanceof prom.Counter) this.inc(labels, v);
            else (this as InstanceType<typeof prom.Gauge>).set(labels, v);
        },
      });
    }
    // RSS, heap, event-loop lag, open handles: prom-client's own, under the same prefix.
    prom.collectDefaultMetrics({ register: registry, prefix: 'amix_' });
    this.#render = async () => {
      const s = this.#source;
      snap = { stats: await s.stats(), instances: s.instances(), status: s.status() };
      try {
        return { text: await registry.metrics(), contentType: registry.contentType };
      } finally {
        snap = undefined;
      }
    };
    const server = createServer({
      requestTimeout: METRICS_REQUEST_TIMEOUT_MS,
      headersTimeout: METRICS_REQUEST_TIMEOUT_MS,
      // Node checks those timeouts every 30 s by default: a trickling scraper would hold its place that long.
      connectionsCheckingInterval: 1_000,
    });
    server.maxConnections = METRICS_MAX_CONNECTIONS;
    // An idle connection (a scraper that connects and says nothing) is dropped too.
    server.setTimeout(METRICS_REQUEST_TIMEOUT_MS * 2, (socket) => socket.destroy());
    server.on('request', (req, res) => this.#handle(req, res));
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new AmixError(
            ErrorCode.AMIX_ERR_INVALID_ARG,
            `--metrics ${host}:${port}: cannot listen (${err.code ?? err.message})`,
            {
              details: { option: '--metrics' },
              cause: err,
            },
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    server.on('error', (err) => this.#log(`amixd metrics: ${err.message}`));
    this.#server = server;
    const a = server.address() as AddressInfo;
    this.#url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`;
    this.#log(`amixd metrics on ${this.#url}`);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    // One request per connection: a scraper every few seconds gains nothing from keep-alive, and a slot is freed at once.
    res.shouldKeepAlive = false;
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    if (req.method !== 'GET')
      return void res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('method not allowed\n');
    this.#inflight ??= this.#render!().finally(() => (this.#inflight = undefined));
    this.#inflight.then(
      ({ text, contentType }) => res.writeHead(200, { 'content-type': contentType }).end(text),
      (err: unknown) => {
        this.#log(`amixd metrics: scrape failed: ${(err as Error)?.message ?? String(err)}`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
      },
    );
  }

  /** Stop listening and drop every connection. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
