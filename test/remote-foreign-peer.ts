// A peer written from docs/protocol.md alone: raw zeromq.js sockets and the
// two .proto files, none of amix's own primitive, codec or peering code. It
// peers with a real amixd (--insecure: the document's proof is not needed
// for this), says hello, opens a flow and delivers one message to a point,
// and hears the per-flow acknowledgement. If this test breaks while the rest
// passes, the document (or the wire) changed.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import * as zmq from 'zeromq';
import { DaemonClient } from '../dist/lib/internal.js';
import { pointFixture } from './helpers/fabric.js';
import { daemonDir, freePort, startDaemon } from './helpers/daemon.js';

const load = (file: string, type: string) =>
  protobuf
    .parse(readFileSync(new URL(`../${file}`, import.meta.url), 'utf8'), { keepCase: true })
    .root.lookupType(type);
const Frame = load('lib/control/protocol.proto', 'amix.control.v1.Frame');
const Envelope = load('lib/remote/envelope.proto', 'amix.remote.v1.Envelope');

// zeromq primitive frames (docs/protocol.md, "zeromq"): big-endian, a u64 as two u32.
const MAXMSG = 64;
const putU64 = (b: Buffer, at: number, v: number) => {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
};
const getU64 = (b: Buffer, at: number) => b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
const credit = (session: Buffer, expected: number, token: number, resend: boolean): Buffer => {
  const b = Buffer.alloc(30);
  b[0] = 0x81;
  session.copy(b, 1);
  putU64(b, 9, expected);
  putU64(b, 17, expected + MAXMSG);
  b.writeUInt32BE(token, 25);
  b[29] = resend ? 1 : 0;
  return b;
};

/** A sending end: a DEALER with one session. */
class Sender {
  readonly sock = new zmq.Dealer({ linger: 0 });
  readonly session = randomBytes(8);
  next = 0;
  limit = 0;
  #credit: (() => void) | undefined;
  constructor(endpoint: string) {
    this.sock.connect(endpoint);
    void (async () => {
      for await (const [f] of this.sock) {
        if (f![0] !== 0x81) continue;
        this.limit = getU64(f!, 17);
        this.#credit?.();
      }
    })().catch(() => {});
  }
  async hello(): Promise<void> {
    const b = Buffer.alloc(25);
    b[0] = 0x02;
    this.session.copy(b, 1);
    putU64(b, 9, 0);
    putU64(b, 17, 0);
    await this.#until(
      () => this.limit > 0,
      () => this.sock.send(b),
    );
  }
  async send(msg: Uint8Array): Promise<void> {
    await this.#until(() => this.next < this.limit);
    const b = Buffer.alloc(25 + 4 + msg.length);
    b[0] = 0x01;
    this.session.copy(b, 1);
    putU64(b, 9, this.next);
    putU64(b, 17, 0);
    b.writeUInt32BE(msg.length, 25);
    Buffer.from(msg).copy(b, 29);
    this.next++;
    await this.sock.send(b);
  }
  async #until(ok: () => boolean, first?: () => Promise<void>): Promise<void> {
    const got = new Promise<void>((r) => (this.#credit = () => ok() && r()));
    await first?.();
    if (!ok()) await got;
  }
}

/** A receiving end: a ROUTER that answers HELLO, DATA and PING with CREDIT and hands out messages. */
class Receiver {
  readonly sock = new zmq.Router({ linger: 0 });
  readonly messages: Buffer[] = [];
  #wake: (() => void) | undefined;
  readonly #next = new Map<string, number>();
  async bind(): Promise<string> {
    await this.sock.bind('tcp://127.0.0.1:*');
    void (async () => {
      for await (const [id, f] of this.sock) {
        const session = f!.subarray(1, 9);
        const key = session.toString('hex');
        const next = this.#next.get(key) ?? 0;
        if (f![0] === 0x02) {
          this.#next.set(key, next);
          await this.sock.send([id!, credit(session, next, 0, next < getU64(f!, 17))]);
        } else if (f![0] === 0x03) {
          await this.sock.send([id!, credit(session, next, f!.readUInt32BE(9), false)]);
        } else if (f![0] === 0x01) {
          let seq = getU64(f!, 9);
          for (let at = 25; at < f!.length; seq++) {
            const len = f!.readUInt32BE(at);
            if (seq >= next) this.messages.push(Buffer.from(f!.subarray(at + 4, at + 4 + len)));
            at += 4 + len;
          }
          this.#next.set(key, Math.max(next, seq));
          await this.sock.send([id!, credit(session, Math.max(next, seq), 0, false)]);
          this.#wake?.();
        }
      }
    })().catch(() => {});
    return this.sock.lastEndpoint!;
  }
  /** The next control message (an envelope holding a control Frame), decoded. */
  async control(pred: (m: Record<string, any>) => boolean, ms = 15_000): Promise<Record<string, any>> {
    const end = Date.now() + ms;
    for (;;) {
      while (this.messages.length > 0) {
        const env = Envelope.decode(this.messages.shift()!) as unknown as { payload: Uint8Array };
        const m = Frame.toObject(Frame.decode(env.payload)) as Record<string, any>;
        if (pred(m)) return m;
      }
      if (Date.now() > end) throw new Error('no such control message in time');
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 200);
      });
    }
  }
}

const envelope = (sender: string, receiver: string, sequence: number, payload: Uint8Array): Uint8Array =>
  Envelope.encode(Envelope.fromObject({ sender, receiver, sequence, payload })).finish();
const request = (id: number, op: string, args: unknown): Uint8Array =>
  Frame.encode(Frame.fromObject({ request: { id, op, args_json: JSON.stringify(args) } })).finish();

t.test('a peer written from docs/protocol.md says hello, opens a flow and delivers to a point', async (t) => {
  const port = await freePort();
  const dir = await daemonDir(t);
  await startDaemon(t, dir, ['--listen', `tcp://127.0.0.1:${port}`, '--insecure']);
  const client = await DaemonClient.connect({ dir });
  t.teardown(() => client.close());
  await client.request('point.register', {
    registration: { name: 'relay', location: pointFixture('relay'), characteristics: { scope: 'process' } },
  });
  const out = await client.connect('relay', null, { direction: 'aToB' });
  const pointId = (await client.request<{ id: string }>('point.show', { name: 'relay' })).id;

  // A directory id is 16 lowercase hex digits: point identifiers are `<id>.<n>`.
  const me = randomBytes(8).toString('hex');
  const ctlIn = new Receiver();
  const dataIn = new Receiver();
  const address = (endpoint: string) => ({
    endpoint,
    maxmsg: MAXMSG,
    minmsg: MAXMSG / 2,
    maxMessageBytes: 1 << 20,
    maxFrameBytes: (1 << 20) + 64,
    discard: 'block',
  });
  const hello = { id: me, version: 1, control: address(await ctlIn.bind()), data: address(await dataIn.bind()) };
  const toControl = new Sender(`tcp://127.0.0.1:${port}`);
  t.teardown(() => {
    for (const s of [toControl.sock, ctlIn.sock, dataIn.sock]) s.close();
  });
  await toControl.hello();
  let ctlSeq = 0;
  await toControl.send(envelope(me, '*', ctlSeq++, request(1, 'hello', hello)));
  // amixd dials back to the control address this hello gave: its reply arrives there.
  const reply = await ctlIn.control((m) => m.reply?.id === 1);
  t.equal(reply.reply.ok, true, `amixd accepted the hello (${JSON.stringify(reply.reply.error ?? {})})`);
  const theirs = JSON.parse(reply.reply.result_json) as { id: string; data: { endpoint: string } };
  t.match(theirs.id, /^[A-Za-z0-9_-]{1,64}$/, "amixd's hello names its directory id");

  // A flow's start is made known with `open`, then its envelopes go to amixd's data endpoint.
  const sender = `${me}.1`;
  await toControl.send(
    envelope(me, theirs.id, ctlSeq++, request(2, 'open', { sender, receiver: pointId, from: 0, sent: 0 })),
  );
  const opened = await ctlIn.control((m) => m.reply?.id === 2);
  t.equal(opened.reply.ok, true, `open: ${JSON.stringify(opened.reply.error ?? {})}`);
  const toData = new Sender(theirs.data.endpoint);
  t.teardown(() => toData.sock.close());
  await toData.hello();
  await toData.send(envelope(sender, pointId, 0, Buffer.from('hello from outside')));

  const m = await out.receive({ signal: AbortSignal.timeout(15_000) });
  t.equal(Buffer.from(m.data).toString(), 'hello from outside', 'the point got the message, relayed to the test');
  const acks = await ctlIn.control((x) => x.event?.type === 'flowAcks');
  const flows = (JSON.parse(acks.event.body_json) as { flows: Array<[string, string, number]> }).flows;
  t.same(flows, [[sender, pointId, 1]], 'amixd reported the flow taken up to 1 (flowAcks)');

  // directOpen: a direct flow may only come from one of the asker's own points, with a real CURVE key.
  const { publicKey } = zmq.curveKeyPair();
  const asks: Array<[string, Record<string, unknown>, string]> = [
    [`${'f'.repeat(16)}.1`, { clientKey: publicKey }, 'AMIX_ERR_UNAUTHORIZED'],
    [sender, { clientKey: 'not a key' }, 'AMIX_ERR_INVALID_ARG'],
    [sender, { clientKey: publicKey, receiver: `${theirs.id}.999` }, 'AMIX_ERR_UNKNOWN_POINT'],
  ];
  let id = 10;
  for (const [from, extra, code] of asks) {
    const args = { sender: from, receiver: pointId, link: 'L1', ...extra };
    await toControl.send(envelope(me, theirs.id, ctlSeq++, request(++id, 'directOpen', args)));
    const r = await ctlIn.control((x) => x.reply?.id === id);
    t.match(r.reply, { ok: false, error: { code } }, `directOpen from ${from} (${Object.keys(extra)}): ${code}`);
  }
});
