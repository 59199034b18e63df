/**
 * The batched form of raw zeromq.js for the `zeromq-tcp-multipart` row of
 * `bench remote`: PUSH/PULL, {@link PARTS} messages per multipart send
 * (one `await push.send(parts)` each), the receiver counting parts and their
 * bytes. Nothing here is part of amix; it is the yardstick the daemons'
 * remote path is measured against.
 *
 * @module
 */
import type * as zmq from 'zeromq';

/** The row's system name (fixed by issue 17). */
export const MULTIPART = 'zeromq-tcp-multipart';

/** Messages per multipart send. */
export const PARTS = 64;

/** Send `n` messages as multipart sends of {@link PARTS} (the last one shorter), awaiting each send. */
export async function sendParts(push: zmq.Push, batch: Uint8Array[], n: number): Promise<void> {
  for (let i = 0; i < n; i += PARTS) await push.send(n - i >= PARTS ? batch : batch.slice(0, n - i));
}

/** Receive parts until `n` arrived; throws if more came or their bytes are not `n * size`. */
export async function receiveParts(pull: zmq.Pull, n: number, size: number): Promise<void> {
  let got = 0;
  let bytes = 0;
  while (got < n) {
    const parts = await pull.receive();
    got += parts.length;
    for (const p of parts) bytes += p.length;
  }
  if (got !== n || bytes !== n * size)
    throw new Error(`${MULTIPART}: got ${got} parts (${bytes} bytes), want ${n} (${n * size} bytes)`);
}
