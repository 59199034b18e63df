/**
 * One end of a queueConditionThread ring ({@link ThreadHandle}): the views
 * over the shared buffer, the end's cached copies of the other side's
 * positions, and the errors and events every part of the ring raises.
 *
 * @module
 */
import { AmixError, ErrorCode } from '../../lib/core/errors.js';
import type {
  ChannelEvent,
  ChannelHandle,
  ChannelOptions,
  DiscardPolicy,
  IdleStrategy,
} from '../../lib/core/primitive.js';
import * as header from './header.js';

// Own constants, not imported bindings, on the hot path (see header.ts).
const { DISCARD_CODES, Header, NO_MAXMSG, RELEASE_BYTES, RELEASE_EVERY } = header;

const textDecoder = new TextDecoder();

/** The address of a ring: hand it to the other thread (it survives `structuredClone`). */
export interface ThreadAddress {
  readonly [key: string]: unknown;
  readonly sab: SharedArrayBuffer;
}

/** One end of a ring. Everything is the primitive's own; users hold a `Channel`. */
export interface ThreadHandle extends ChannelHandle {
  readonly address: ThreadAddress;
  /** Largest message this ring carries (the smaller of `maxMessageBytes` and the data area less 8). */
  readonly maxMessageBytes: number;
  /** @internal The ring. */ readonly sab: SharedArrayBuffer;
  /** @internal */ readonly i32: Int32Array;
  /** @internal */ readonly f64: Float64Array;
  /** @internal */ readonly u8: Uint8Array;
  /** @internal */ readonly capacity: number;
  /** @internal */ readonly mask: number;
  /** @internal */ readonly dataI32: number;
  /** @internal */ readonly maxmsg: number;
  /** @internal */ readonly minmsg: number;
  /** @internal */ readonly discard: DiscardPolicy;
  /** @internal */ readonly idle: IdleStrategy;
  /** @internal */ readonly onEvent: ((e: ChannelEvent) => void) | undefined;
  /** @internal Own position: head for the sender, tail for the receiver. */ pos: number;
  /** @internal Cached copy of the other side's position. */ otherPos: number;
  /** @internal Own message counter (wseq or rseq). */ seq: number;
  /** @internal Sender: cached rseq. */ otherSeq: number;
  /** @internal Sender: last seen watermark suspension (to emit `resumed` once). */ suspendedSeen: boolean;
  /** @internal Set by destroy of this end. */ destroyed: Error | null;
  /** @internal Sender: the `closed` event for a ring closed by the receiver was emitted. */ peerClosed: boolean;
  /** @internal Async operations queued on this end (keeps them in call order). */ queue: Promise<unknown> | null;
  /** @internal Async operations waiting in `queue`. */ queued: number;
  /** @internal The ring as a Buffer (for native copies). */ readonly buf: Buffer;
  /** @internal Receiver: the slab larger messages are copied into. */ slab: Buffer | null;
  /** @internal Receiver: next free byte in `slab`. */ slabOff: number;
  /** @internal Own position as last stored in the header (HEAD or TAIL); `pos` may run ahead of it. */ published: number;
  /** @internal Sender: records written since the last publication. */ unpublished: number;
  /** @internal Receiver: messages read (as views or copies) since TAIL was last stored. */ leased: number;
  /** @internal Receiver: views are among them, so TAIL must wait for release (lease.ts). */ viewing: boolean;
  /** @internal Receiver: bytes of read records at which TAIL is stored (consumer.ts settle). */ readonly releaseBytes: number;
  /** @internal Receiver: messages read at which TAIL is stored (fewer on rings with a message limit). */ readonly releaseEvery: number;
  /** @internal Sender: messages written since the last publication, counted into the header with it. */ sentHeld: number;
  /** @internal Sender: their payload bytes. */ bytesHeld: number;
  /** @internal Sender: the burst (producer.ts) in which this end last published at once. */ turn: number;
  /** @internal Sender: listed for the publication at the end of the turn. */ due: boolean;
  /** @internal Sender: coalesce publications (not with dropOldest, whose drops work on published records). */ readonly coalesce: boolean;
}

/** Report an event to the end's listener; a throwing listener is ignored. */
export function emit(h: ThreadHandle, e: ChannelEvent): void {
  try {
    h.onEvent?.(e);
  } catch {
    /* onEvent must not throw; a throwing listener must not break the ring */
  }
}

/** `AMIX_ERR_LINK_CLOSED` for this end: destroyed here, or the ring closed by its receiver (with the reason from the header). */
export function closedError(h: ThreadHandle): AmixError {
  if (h.destroyed) {
    return new AmixError(
      ErrorCode.AMIX_ERR_LINK_CLOSED,
      `queueConditionThread ${h.role} end was destroyed: ${h.destroyed.message}`,
      { cause: h.destroyed },
    );
  }
  const n = h.i32[Header.REASON_LEN]!;
  const why = n > 0 ? textDecoder.decode(h.u8.slice(Header.BYTE_REASON, Header.BYTE_REASON + n)) : 'closed';
  return new AmixError(
    ErrorCode.AMIX_ERR_LINK_CLOSED,
    `queueConditionThread ring was closed by its receiving end: ${why}`,
    { details: { reason: why } },
  );
}

/** `AMIX_ERR_MESSAGE_TOO_LARGE` for a message of `size` bytes. */
export function tooLarge(h: ThreadHandle, size: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_MESSAGE_TOO_LARGE,
    `message of ${size} bytes exceeds the queueConditionThread ring maximum of ${h.maxMessageBytes} (raise capacityBytes or maxMessageBytes)`,
    { details: { size, max: h.maxMessageBytes } },
  );
}

/** One end over a ring: the views, and this end's positions and cached copies of the other's, read from the header. */
export function makeHandle(sab: SharedArrayBuffer, role: 'send' | 'receive', options: ChannelOptions): ThreadHandle {
  const i32 = new Int32Array(sab);
  const capacity = i32[Header.CAPACITY]!;
  const maxmsg = i32[Header.MAXMSG]!;
  const discard = DISCARD_CODES[i32[Header.DISCARD]!] ?? 'block';
  const pos = role === 'send' ? Atomics.load(i32, Header.HEAD) : Atomics.load(i32, Header.TAIL);
  return {
    address: { sab },
    role,
    maxMessageBytes: i32[Header.MAX_MESSAGE]!,
    sab,
    i32,
    f64: new Float64Array(sab, 0, Header.BYTE_DATA / 8),
    u8: new Uint8Array(sab),
    capacity,
    mask: capacity - 1,
    dataI32: Header.BYTE_DATA >> 2,
    maxmsg,
    minmsg: i32[Header.MINMSG]!,
    discard,
    idle: options.idle ?? 'spinThenBlock',
    onEvent: options.onEvent,
    pos,
    otherPos: role === 'send' ? Atomics.load(i32, Header.TAIL) : Atomics.load(i32, Header.HEAD),
    seq: role === 'send' ? Atomics.load(i32, Header.WSEQ) : Atomics.load(i32, Header.RSEQ),
    otherSeq: Atomics.load(i32, Header.RSEQ),
    suspendedSeen: role === 'send' && Atomics.load(i32, Header.SUSPENDED) !== 0,
    destroyed: null,
    peerClosed: false,
    queue: null,
    queued: 0,
    buf: Buffer.from(sab),
    slab: null,
    slabOff: 0,
    published: pos,
    unpublished: 0,
    leased: 0,
    viewing: false,
    releaseBytes: Math.min(RELEASE_BYTES, capacity >> 3),
    // With a message limit, a held release makes the sender count more pending than there are:
    // keep that within a quarter of the band between the marks.
    releaseEvery:
      maxmsg === NO_MAXMSG
        ? RELEASE_EVERY
        : Math.max(1, Math.min(RELEASE_EVERY, Math.floor((maxmsg - i32[Header.MINMSG]!) / 4))),
    sentHeld: 0,
    bytesHeld: 0,
    turn: -1,
    due: false,
    coalesce: discard !== 'dropOldest',
  };
}

/** Wake every parked waiter of one side (`RX_WAKE` or `TX_WAKE`). */
export function wake(i32: Int32Array, word: number): void {
  Atomics.add(i32, word, 1);
  Atomics.notify(i32, word);
}
