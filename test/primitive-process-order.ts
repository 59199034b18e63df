// One million messages from a real child process arrive in order, none lost
// and none duplicated, through the public Channel API.
import t from 'tap';
import { PrimitiveRegistry } from '../dist/lib/index.js';
import { spawnPeer, tempDir } from './fixtures/process-helpers.js';

t.test('a million messages from a child process arrive in order, none lost or duplicated', async (t) => {
  const runtimeDir = tempDir(t);
  const reg = new PrimitiveRegistry({ channelDefaults: { runtimeDir } });
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionProcess');
  t.teardown(() => rx.destroy());
  const count = 1_000_000;
  const peer = spawnPeer(t, { role: 'send', address: rx.address, runtimeDir, count, size: 16 });
  let expected = 0;
  let outOfOrder = 0;
  while (expected < count) {
    let m = rx.tryReceive();
    if (m === undefined) m = await rx.receive();
    const n = Buffer.from(m.buffer, m.byteOffset, m.length).readUInt32LE(0);
    if (n !== expected) outOfOrder++;
    expected = n + 1;
  }
  const done = await peer.next<{ sent: number }>((m) => 'sent' in m, 'the sender reported');
  t.equal(done.sent, count, 'the child sent every message');
  t.equal(outOfOrder, 0, 'every message carried the next number');
  t.equal(expected, count, 'the last message was the last one sent');
  t.equal(rx.stats().received, count, 'the receiving end counted exactly the messages sent');
  t.equal(rx.tryReceive(), undefined, 'no message arrived twice');
  t.equal((await peer.exited).code, 0, 'the sender exited cleanly');
});
