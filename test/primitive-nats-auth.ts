// NATS-level authentication and permissions under the nats primitive, on a
// nats-server of this test's own (users with passwords and an NKey, each
// allowed only its side of one link's subjects): credentials pass through
// (user/password, NKey seed), a wrong password fails with
// AMIX_ERR_UNAUTHORIZED, a user not allowed to subscribe to the link's
// subject gets peerLost with AMIX_ERR_UNAUTHORIZED, and a user not allowed
// to publish there cannot reach the receiver at all.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { connect } from '@nats-io/transport-node';
import { PrimitiveRegistry, type ChannelEvent } from '../dist/lib/index.js';
import type { NatsStats } from '../dist/primitives/nats.js';
import { freePort } from './helpers/daemon.js';
import { natsSkip } from './helpers/nats.js';

t.setTimeout(60_000);
const skip = await natsSkip();

if (skip) {
  t.comment(`skip: ${skip}`);
  t.skip(`nats primitive auth: ${skip}`);
} else {
  const dir = await mkdtemp(join(tmpdir(), 'amix-nats-auth-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const nk = createUser();
  const nkeySeed = new TextDecoder().decode(nk.getSeed());
  const conf = join(dir, 'auth.conf');
  await writeFile(
    conf,
    `listen: "127.0.0.1:${port}"
authorization {
  users: [
    { user: rx, password: rxpw, permissions: { publish: ["amix.link1.c.>"], subscribe: ["amix.link1"] } }
    { user: tx, password: txpw, permissions: { publish: ["amix.link1"], subscribe: ["amix.link1.c.>"] } }
    { nkey: ${nk.getPublicKey()}, permissions: { publish: ["amix.link1"], subscribe: ["amix.link1.c.>"] } }
    { user: eve, password: evepw, permissions: { publish: ["amix.other"], subscribe: ["amix.other"] } }
  ]
}
`,
  );
  const server = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
  t.teardown(async () => {
    server.kill('SIGKILL');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    server.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${buf}`)));
    server.stderr!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      if (buf.includes('Server is ready')) resolve();
    });
  });
  const servers = `nats://127.0.0.1:${port}`;

  t.test('credentials pass through; a wrong one is AMIX_ERR_UNAUTHORIZED', async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    await t.rejects(
      reg.open('nats', { nats: { servers, user: 'rx', pass: 'wrong', id: 'link1' } }),
      { code: 'AMIX_ERR_UNAUTHORIZED' },
      'a wrong password is refused with AMIX_ERR_UNAUTHORIZED',
    );
    const rx = await reg.open('nats', { nats: { servers, user: 'rx', pass: 'rxpw', id: 'link1' } });
    t.teardown(() => rx.destroy());
    const tx = await reg.open('nats', { address: rx.address, nats: { user: 'tx', pass: 'txpw' } });
    t.teardown(() => tx.destroy());
    await tx.connect();
    await tx.send(Buffer.from('by password'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'by password', 'user/password on both ends');
    const tx2 = await reg.open('nats', { address: rx.address, nats: { nkeySeed } });
    t.teardown(() => tx2.destroy());
    await tx2.connect();
    await tx2.send(Buffer.from('by nkey'));
    t.equal(Buffer.from(await rx.receive()).toString(), 'by nkey', 'an NKey seed on the sending end');

    // eve may not publish on the link's subjects: the server drops what she sends, nothing reaches the receiver.
    const eve = await connect({ servers, user: 'eve', pass: 'evepw' });
    t.teardown(() => eve.close());
    const refused = (async () => {
      for await (const st of eve.status()) if (st.type === 'error') return st.error.message;
      return '';
    })();
    for (let i = 0; i < 20; i++) eve.publish('amix.link1', Buffer.from('injected'));
    await eve.flush();
    t.match(await refused, /permission/i, 'the server told her she may not publish there');
    await tx.cycle();
    t.equal((rx.stats() as NatsStats).badFrames, 0, 'nothing of hers even reached the receiving end to be checked');
    t.equal(rx.tryReceive(), undefined, 'and nothing was delivered');
  });

  t.test('a user not allowed to subscribe to the subject gets peerLost with AMIX_ERR_UNAUTHORIZED', async (t) => {
    const reg = new PrimitiveRegistry();
    t.teardown(() => reg.close());
    const events: ChannelEvent[] = [];
    const lost = new Promise<ChannelEvent>((resolve) => {
      void reg.open('nats', { nats: { servers, user: 'eve', pass: 'evepw', id: 'link1' } }).then((rx) => {
        t.teardown(() => rx.destroy());
        rx.on('event', (e: ChannelEvent) => {
          events.push(e);
          if (e.type === 'peerLost') resolve(e);
        });
      });
    });
    const e = (await lost) as { error: { code: string } };
    t.equal(e.error.code, 'AMIX_ERR_UNAUTHORIZED', 'the server refused the subscription, and the end says so');
  });
}
