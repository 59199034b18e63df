// CURVE on the zeromq primitive: a receiving end started with keys and an
// allow-list lets listed clients through and refuses an unkeyed peer and a
// peer whose key is not listed; the refusal is observable on both ends.
import t from 'tap';
import type { Test } from 'tap';
import * as zmq from 'zeromq';
import { PrimitiveRegistry, type Channel } from '../dist/lib/index.js';
import { generateKeyPair, zapAuthenticator, type RefusedPeer } from '../dist/primitives/zeromq/keys.js';
import type { ZeromqStats } from '../dist/primitives/zeromq.js';

if (zmq.capability.curve !== true) {
  t.comment('warning: zeromq CURVE tests skipped: this ZeroMQ build has no CURVE');
} else {
  const server = generateKeyPair();
  const good = generateKeyPair();
  const stranger = generateKeyPair();

  /** Wait for a condition the event loop will make true, checking once per turn, failing after `ms`. */
  async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async function keyedReceiver(t: Test, refusedSeen: RefusedPeer[]): Promise<{ reg: PrimitiveRegistry; rx: Channel }> {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const rx = await reg.open('zeromq', {
      zeromq: { curve: { ...server, allow: [good.publicKey] }, onRefused: (p: RefusedPeer) => refusedSeen.push(p) },
    } as never);
    t.teardown(() => rx.destroy());
    return { reg, rx };
  }

  t.test('a listed client key gets its messages through, encrypted', async (t) => {
    const { reg, rx } = await keyedReceiver(t, []);
    t.equal(rx.address.serverPublicKey, server.publicKey, 'the address carries the server public key');
    const tx = await reg.open('zeromq', { address: rx.address, zeromq: { curve: good } } as never);
    t.teardown(() => tx.destroy());
    await tx.connect();
    await tx.send(Buffer.from('secret'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'secret', 'delivered');
    t.equal((rx.stats() as ZeromqStats).refused, 0, 'nobody refused');
  });

  t.test('a client whose key is not listed is refused and gets nothing through', async (t) => {
    const refused: RefusedPeer[] = [];
    const { reg, rx } = await keyedReceiver(t, refused);
    const bad = await reg.open('zeromq', {
      address: rx.address,
      zeromq: { curve: stranger, connectTimeoutMs: 5000 },
    } as never);
    t.teardown(() => bad.destroy());
    const events: string[] = [];
    bad.on('event', (e: { type: string; error?: { code?: string } }) => {
      if (e.type === 'peerLost') events.push(e.error?.code ?? '');
    });
    await bad.send(Buffer.from('let me in'));
    await t.rejects(bad.connect(), { code: 'AMIX_ERR_UNAUTHORIZED' }, 'connect reports the refusal');
    t.ok(events.includes('AMIX_ERR_UNAUTHORIZED'), 'the refused end emitted peerLost with AMIX_ERR_UNAUTHORIZED');
    await until(() => refused.length > 0, 5000, 'the ZAP refusal');
    t.equal(refused[0]!.publicKey, stranger.publicKey, 'onRefused names the refused key');
    t.equal(refused[0]!.mechanism, 'CURVE', 'mechanism CURVE');
    await until(() => (rx.stats() as ZeromqStats).refused >= 1, 5000, 'the refusal count');
    t.pass('the receiving end counted the refusal');
    // A listed client proves the receiver is alive; the stranger's message never shows up.
    const ok = await reg.open('zeromq', { address: rx.address, zeromq: { curve: good } } as never);
    t.teardown(() => ok.destroy());
    await ok.connect();
    await ok.send(Buffer.from('marker'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'marker', 'the listed client is served');
    await ok.cycle();
    t.equal(rx.tryReceive(), undefined, 'nothing from the refused client is queued');
    t.equal((bad.stats() as ZeromqStats).pending, 1, 'the refused message is still pending at its sender');
  });

  t.test('an unkeyed peer is refused by a keyed receiving end', async (t) => {
    const { reg, rx } = await keyedReceiver(t, []);
    const { serverPublicKey: _drop, ...plain } = rx.address as Record<string, unknown>;
    const bad = await reg.open('zeromq', { address: plain, zeromq: { connectTimeoutMs: 5000 } } as never);
    t.teardown(() => bad.destroy());
    await bad.send(Buffer.from('plain text'));
    await t.rejects(
      bad.connect(),
      { code: 'AMIX_ERR_UNAUTHORIZED' },
      'the mechanism mismatch is reported as unauthorized',
    );
    await until(() => (rx.stats() as ZeromqStats).refused >= 1, 5000, 'the server-side refusal');
    t.pass('the receiving end counted the refusal');
    t.equal(rx.tryReceive(), undefined, 'nothing arrived');
  });

  t.test('a keyed receiving end without an allow-list accepts any client key', async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const rx = await reg.open('zeromq', { zeromq: { curve: server } } as never);
    t.teardown(() => rx.destroy());
    const tx = await reg.open('zeromq', { address: rx.address } as never);
    t.teardown(() => tx.destroy());
    await tx.connect();
    await tx.send(Buffer.from('any key'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'any key', 'a throw-away client key is accepted');
  });

  t.test('the ZAP handler is shared and released with the last keyed receiving end', async (t) => {
    const before = zapAuthenticator.counts.refused;
    const { reg, rx } = await keyedReceiver(t, []);
    const rx2 = await reg.open('zeromq', { zeromq: { curve: { ...server, allow: [stranger.publicKey] } } } as never);
    t.teardown(() => rx2.destroy());
    const tx = await reg.open('zeromq', { address: rx2.address, zeromq: { curve: stranger } } as never);
    t.teardown(() => tx.destroy());
    await tx.connect();
    t.pass('two keyed receiving ends with different allow-lists coexist');
    await tx.send(Buffer.from('x'));
    t.equal(Buffer.from(await rx2.receive()).toString(), 'x', 'the second list admits its key');
    await rx.destroy();
    await rx2.destroy();
    t.equal(zapAuthenticator.counts.refused, before, 'no refusal was needed');
  });
}
