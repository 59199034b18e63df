// Backpressure on the nats primitive (NATS core has none; the credit engine
// runs on top): a slow receiver never holds more than maxmsg, the sender
// stops at zero credit (trySend false, suspended / resumed events) and holds
// at most maxmsg unacknowledged; a suspended receiving end stops its
// senders; a message no NATS message can carry (the server's max_payload)
// is refused with AMIX_ERR_FRAME_TOO_LARGE. And the client is loaded only
// when a nats channel is first opened, never by import('amix') or the
// registry.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { PrimitiveRegistry, type ChannelEvent } from '../dist/lib/index.js';
import { FRAME_OVERHEAD, type NatsStats } from '../dist/primitives/nats.js';
import { natsSkip, startNats } from './helpers/nats.js';

t.setTimeout(60_000);
const root = fileURLToPath(new URL('..', import.meta.url));
const skip = await natsSkip();

if (skip) {
  t.comment(`skip: ${skip}`);
  t.skip(`nats primitive backpressure: ${skip}`);
} else {
  const server = await startNats(t);
  const nats = { servers: server.url };

  t.test('a slow receiver holds at most maxmsg; the sender stops at zero credit and resumes', async (t) => {
    const reg = new PrimitiveRegistry({ channelDefaults: { nats } });
    t.teardown(() => reg.close());
    const rx = await reg.open('nats', { maxmsg: 16, minmsg: 8 });
    t.teardown(() => rx.destroy());
    const tx = await reg.open('nats', { address: rx.address });
    t.teardown(() => tx.destroy());
    const events: ChannelEvent[] = [];
    tx.on('event', (e: ChannelEvent) => events.push(e));
    await tx.connect();
    let refusals = 0;
    let maxTxPending = 0;
    const n = 2000;
    const sending = (async () => {
      for (let i = 0; i < n; i++) {
        const m = Buffer.alloc(8);
        m.writeUInt32BE(i, 0);
        if (!tx.trySend(m)) {
          refusals++;
          await tx.send(m);
        }
        maxTxPending = Math.max(maxTxPending, (tx.stats() as NatsStats).pending);
      }
    })();
    let maxRxPending = 0;
    let wrong = 0;
    for (let i = 0; i < n; i++) {
      // A slow consumer: one message per turn of the event loop at most.
      await new Promise((r) => setImmediate(r));
      maxRxPending = Math.max(maxRxPending, rx.stats().pending);
      if (Buffer.from(await rx.receive()).readUInt32BE(0) !== i) wrong++;
    }
    await sending;
    t.equal(wrong, 0, `all ${n} in order`);
    t.ok(maxRxPending <= 16, `the receiving end never held more than maxmsg (at most ${maxRxPending})`);
    t.ok(
      maxTxPending <= 17,
      `the sending end never held more than maxmsg unacknowledged (+ the one waiting): ${maxTxPending}`,
    );
    t.ok(refusals > 0, `trySend said false at zero credit (${refusals} times)`);
    const types = events.map((e) => e.type);
    t.ok(types.includes('suspended') && types.includes('resumed'), 'suspended and resumed reported');
    t.ok((tx.stats() as NatsStats).suspensions > 0, 'suspensions counted');
  });

  t.test('a suspended receiving end stops its senders until resumed', async (t) => {
    const reg = new PrimitiveRegistry({ channelDefaults: { nats } });
    t.teardown(() => reg.close());
    const rx = await reg.open('nats', { maxmsg: 8, minmsg: 2 });
    t.teardown(() => rx.destroy());
    const tx = await reg.open('nats', { address: rx.address, discard: 'reject' });
    t.teardown(() => tx.destroy());
    await tx.connect();
    await rx.suspend();
    for (let i = 0; i < 8; i++) tx.trySend(Buffer.from([i]));
    for (let i = 0; i < 8; i++) await rx.receive();
    await tx.cycle();
    t.throws(() => tx.trySend(Buffer.from([9])), { code: 'AMIX_ERR_QUEUE_FULL' }, 'no credit granted while suspended');
    const resumed = new Promise<void>((resolve) =>
      tx.on('event', (e: ChannelEvent) => {
        if (e.type === 'resumed') resolve();
      }),
    );
    await rx.resume();
    await resumed;
    t.ok(tx.trySend(Buffer.from([10])), 'credit again after resume');
    t.same([...(await rx.receive())], [10], 'and it arrives');
  });

  t.test("a message above the server's max_payload is refused with AMIX_ERR_FRAME_TOO_LARGE", async (t) => {
    const reg = new PrimitiveRegistry({ channelDefaults: { nats } });
    t.teardown(() => reg.close());
    const rx = await reg.open('nats');
    t.teardown(() => rx.destroy());
    const max = Number(rx.address.maxFrameBytes);
    t.equal(max, 1024 * 1024, "the address carries the server's max_payload (default 1 MiB)");
    const tx = await reg.open('nats', { address: rx.address });
    t.teardown(() => tx.destroy());
    const fits = max - FRAME_OVERHEAD;
    await t.rejects(
      tx.send(new Uint8Array(fits + 1)),
      { code: 'AMIX_ERR_FRAME_TOO_LARGE', details: { length: max + 1, max } },
      'one byte over what one NATS message can carry',
    );
    const big = new Uint8Array(fits).map((_, i) => i & 0xff);
    await tx.send(big);
    const got = await rx.receive();
    t.equal(
      Buffer.compare(Buffer.from(got), Buffer.from(big)),
      0,
      `a message of ${fits} bytes (the most) arrives intact`,
    );
  });

  t.test('bad options and addresses are refused with AMIX_ERR_INVALID_ARG naming the option', async (t) => {
    const reg = new PrimitiveRegistry({ channelDefaults: { nats } });
    t.teardown(() => reg.close());
    const bad = async (o: Record<string, unknown>, option: string, what: string) =>
      t.rejects(
        reg.open('nats', o),
        { code: 'AMIX_ERR_INVALID_ARG', message: new RegExp(option.replace(/\./g, '\\.')) },
        what,
      );
    await bad(
      { nats: { ...nats, durable: true } },
      'options.nats.id',
      'a durable link needs an id (it names the stream)',
    );
    await bad({ nats: { ...nats, id: 'a.b' } }, 'options.nats.id', 'an id with a dot (a subject token) is refused');
    await bad({ nats: { ...nats, key: 'short' } }, 'options.nats.key', 'a key that is not 32 bytes of base64url');
    await bad({ nats: { ...nats, servers: [] } }, 'options.nats.servers', 'an empty server list');
    const rx = await reg.open('nats');
    t.teardown(() => rx.destroy());
    await bad({ address: { ...rx.address, subject: 'amix.>' } }, 'options.address.subject', 'a wildcard subject');
    await bad({ address: { ...rx.address, key: undefined } }, 'options.address.key', 'an address without its key');
  });

  t.test('@nats-io is loaded on the first nats channel only, never by amix or its registry', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'amix-nats-lazy-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // A resolve hook (it runs on the loader thread) posts every module URL resolved to the main thread.
    const hook = join(dir, 'hook.mjs');
    await writeFile(
      hook,
      `let port;
export function initialize(d) { port = d.port; }
export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r; }\n`,
    );
    const script = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
let waiting;
port1.on('message', (u) => { seen.push(u); if (waiting && u.startsWith('data:')) waiting(); });
port1.unref();
register(${JSON.stringify('file://' + hook)}, { data: { port: port2 }, transferList: [port2] });
// Messages come in order: once a marker import is seen, everything resolved before it has been too.
let k = 0;
const settle = async () => { const p = new Promise((r) => (waiting = r)); await import('data:text/javascript,export default ' + ++k); await p; };
const has = (name) => seen.some((u) => u.includes('/@nats-io/' + name + '/'));
const out = {};
const amix = await import('amix');
const reg = new amix.PrimitiveRegistry({ channelDefaults: { nats: { servers: process.env.NATS_URL } } });
reg.list(); reg.get('nats');
await settle();
out.afterImport = { amix: seen.some((u) => u.includes('/dist/lib/index.js')), core: has('transport-node'), js: has('jetstream') };
const rx = await reg.open('nats');
await settle();
out.afterCore = { core: has('transport-node'), js: has('jetstream') };
const d = await reg.open('nats', { nats: { servers: process.env.NATS_URL, durable: true, id: 'lazy' } });
await settle();
out.afterDurable = { js: has('jetstream') };
await rx.destroy(); await d.destroy(); await reg.close();
console.log(JSON.stringify(out));
`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, NATS_URL: server.url },
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    t.ok(out.afterImport.amix, 'the probe sees amix itself resolved (it would see @nats-io too)');
    t.equal(out.afterImport.core, false, "import('amix') and the registry resolve no @nats-io/transport-node");
    t.equal(out.afterImport.js, false, 'nor @nats-io/jetstream');
    t.equal(out.afterCore.core, true, 'the first nats channel loads @nats-io/transport-node');
    t.equal(out.afterCore.js, false, 'a core link does not load @nats-io/jetstream');
    t.equal(out.afterDurable.js, true, 'a durable link loads @nats-io/jetstream');
  });
}
