// Channel.sendMany / trySendMany check the whole batch before sending any of
// it: a message that is not bytes, or is too large, anywhere in the batch
// fails the call with nothing sent; a receiving end or a closed one refuses.
import t from 'tap';
import { PrimitiveRegistry } from '../dist/lib/index.js';

t.test('a bad message anywhere in a batch fails it whole, before anything is sent', async (t) => {
  const reg = new PrimitiveRegistry();
  t.teardown(() => reg.close());
  const rx = await reg.open('queueConditionThread', { maxMessageBytes: 100 });
  const tx = await reg.open('queueConditionThread', { address: rx.address });
  const ok = new Uint8Array(10).fill(1);
  const big = new Uint8Array(rx.maxMessageBytes + 1);
  t.throws(() => tx.trySendMany([ok, 'no' as unknown as Uint8Array, ok]), { code: 'AMIX_ERR_INVALID_ARG' });
  await t.rejects(tx.sendMany([ok, ok, big]), {
    code: 'AMIX_ERR_MESSAGE_TOO_LARGE',
    details: { size: big.byteLength },
  });
  t.equal(rx.tryReceive(), undefined, 'nothing of either batch was sent');
  t.throws(() => rx.trySendMany([ok]), { code: 'AMIX_ERR_INVALID_ARG' }, 'a receiving end');
  t.equal(tx.trySendMany([ok, ok]), 2, 'a good batch goes');
  t.same([rx.tryReceive()?.length, rx.tryReceive()?.length], [10, 10]);
  await tx.close();
  t.throws(() => tx.trySendMany([ok]), { code: 'AMIX_ERR_CLOSED' }, 'a closed end');
  t.throws(() => tx.trySendMany([]), { code: 'AMIX_ERR_CLOSED' }, 'even with an empty batch');
  await rx.destroy();
});
