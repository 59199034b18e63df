// The framed sending end (zeromq, nats) copies each batch into a buffer kept until acknowledged; an
// acknowledged frame's buffer is reused for a later batch (fewer fresh 64 KiB buffers for V8 to move
// to its old generation and free in full collections), but never one that was put on its way again by
// a re-send: that copy may still wait in the transport's queue when the first one is acknowledged.
import t from 'tap';
import {
  flush,
  onCredit,
  resendFrom,
  senderFields,
  senderWindow,
  trySendNow,
  SPARE_FRAMES,
} from '../dist/lib/core/framedSender.js';
import { common, DATA_HEADER } from '../dist/primitives/zeromq/wire.js';

function sender() {
  const outs: Array<{ buf: Uint8Array; first: number; end: number }> = [];
  const h = {
    role: 'send' as const,
    ...common({} as never, 1 << 20, {}),
    ...senderFields({
      io: {
        sealData: () => {},
        out: (buf: Uint8Array, first: number, end: number) => void outs.push({ buf, first, end }),
        kick: () => {},
        pingFrame: () => Buffer.alloc(16),
        sendPing: () => {},
        tooLarge: () => new Error('too large'),
      },
      dataHeader: DATA_HEADER,
      trailer: 0,
      sendLimit: 1 << 20,
      batchBytes: 65_536,
      connectTimeoutMs: 1000,
      closeTimeoutMs: 0,
      peer: 'test',
      answerFrom: 'from test',
      awaitingWelcome: false,
      drainSliceMs: Infinity,
    }),
    w: undefined as never,
  };
  (h as { w: unknown }).w = senderWindow(h as never, 'block', 4096, 'test');
  let seq = 0;
  /** One frame of 15 messages of 4000 bytes, each filled with its sequence number's low byte. */
  const batch = () => {
    for (let i = 0; i < 15; i++, seq++) trySendNow(h as never, Buffer.alloc(4000, seq & 0xff));
    flush(h as never);
    return outs.at(-1)!;
  };
  const ack = (expected: number) => onCredit(h as never, { expected, limit: expected + 4096, token: 0, resend: false });
  return { h, batch, ack, outs };
}

/** The messages in a frame, as their fill bytes (the frame's layout: header, then u32 length and bytes each). */
function fills(buf: Uint8Array): number[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  for (let o = DATA_HEADER; o < b.length; o += 4 + b.readUInt32BE(o)) out.push(b[o + 4]!);
  return out;
}

t.test('an acknowledged frame buffer carries a later batch; a re-sent one never does', async (t) => {
  const { h, batch, ack } = sender();
  const a = batch();
  t.same([a.first, a.end], [0, 15]);
  const b = batch();
  t.not(b.buf.buffer, a.buf.buffer, 'two frames in flight: two buffers');
  ack(15);
  const c = batch();
  t.equal(c.buf.buffer, a.buf.buffer, "the third batch is copied into the first frame's buffer");
  t.same(
    fills(c.buf),
    Array.from({ length: 15 }, (_, i) => 30 + i),
    'and holds its own messages',
  );
  t.same(
    fills(b.buf),
    Array.from({ length: 15 }, (_, i) => 15 + i),
    'the frame still in flight is untouched',
  );

  // c goes out again (a re-send from 30); its first copy is acknowledged while the second may wait.
  resendFrom(h as never, 30);
  ack(45);
  const d = batch();
  const e = batch();
  t.equal(d.buf.buffer, b.buf.buffer, 'a frame never re-sent gives its buffer to the next batch');
  t.not(d.buf.buffer, c.buf.buffer, 'a re-sent frame buffer is not reused');
  t.not(e.buf.buffer, c.buf.buffer);
});

t.test(`at most ${SPARE_FRAMES} spare buffers are kept`, async (t) => {
  const { h, batch, ack } = sender();
  for (let i = 0; i < SPARE_FRAMES + 8; i++) batch();
  ack((SPARE_FRAMES + 8) * 15);
  t.equal((h as unknown as { spare: unknown[] }).spare.length, SPARE_FRAMES);
});
