// An example primitive, written as docs/writing-a-primitive.md explains: an
// in-process queue carrying messages between two ends in one thread. Plain
// JavaScript, no import from amix; check it with
//
//   amix conformance examples/primitives/in-process-queue.mjs
//
// and register it with `amix primitive add inProcessQueue ./in-process-queue.mjs --scopes thread`.
//
// One channel is one directed flow. create() without an address makes the
// instance and returns its receiving end; create({ address }) attaches a
// sending end to it. The receiving end owns the instance.

/** Every live instance, by the id its address carries. */
const instances = new Map();
let nextId = 1;

/** Errors carry a stable code from docs/errors.md; amix passes them on as they are. */
function error(code, message, cause) {
  const err = new Error(message, cause ? { cause } : undefined);
  err.name = code === 'AMIX_ERR_ABORTED' ? 'AbortError' : 'AmixError';
  err.code = code;
  return err;
}

/** Wait until `wake` is called, or reject on abort or on the instance's close. */
function wait(list, signal, what) {
  return new Promise((resolve, reject) => {
    const waiter = { resolve, reject };
    list.push(waiter);
    signal?.addEventListener(
      'abort',
      () => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        reject(error('AMIX_ERR_ABORTED', `${what} aborted`, signal.reason));
      },
      { once: true },
    );
  });
}

function closed(q) {
  return error('AMIX_ERR_LINK_CLOSED', `in-process queue ${q.id} is closed`, q.reason);
}

/** The receiver took a message: below minmsg, release blocked senders (the low-water mark). */
function drained(q) {
  if (q.suspended && q.messages.length <= q.minmsg) {
    q.suspended = false;
    q.onEvent?.({ type: 'resumed', pending: q.messages.length });
    for (const s of q.senders.splice(0)) s.resolve();
  }
}

const inProcessQueue = {
  name: 'inProcessQueue',
  characteristics: { scopes: ['thread'], maxMessageBytes: 16 << 20, ordering: 'fifo', delivery: 'reliable' },

  async create(options) {
    if (options.address === undefined) {
      const maxmsg = options.maxmsg ?? 1024;
      const q = {
        id: nextId++,
        messages: [],
        receivers: [], // receive() calls waiting for a message
        senders: [], // send() calls waiting for room
        maxmsg,
        minmsg: options.minmsg ?? Math.floor(maxmsg / 2),
        discard: options.discard ?? 'block',
        onEvent: options.onEvent,
        suspended: false,
        isClosed: false,
        reason: undefined,
        stats: { sent: 0, received: 0, dropped: 0, rejected: 0, suspensions: 0, bytesSent: 0, bytesReceived: 0 },
      };
      instances.set(q.id, q);
      // The address is plain data: the other side finds the instance by it.
      return { role: 'receive', address: { id: q.id }, q };
    }
    const q = instances.get(options.address.id);
    if (!q || q.isClosed) throw error('AMIX_ERR_PEER_LOST', `no in-process queue ${String(options.address.id)}`);
    return { role: 'send', address: options.address, q };
  },

  async destroy(handle, reason) {
    const q = handle.q;
    // Only the receiving end's destroy ends the instance; a sender leaving does not.
    if (handle.role === 'send' || q.isClosed) return;
    q.isClosed = true;
    q.reason = reason;
    instances.delete(q.id);
    for (const w of [...q.receivers.splice(0), ...q.senders.splice(0)]) w.reject(closed(q));
    q.onEvent?.({ type: 'closed', ...(reason ? { reason } : {}) });
  },

  async send(handle, data, options = {}) {
    const q = handle.q;
    // amix's wrapper checks the size and the end's role before it calls us.
    while (!q.isClosed && q.messages.length >= q.maxmsg) {
      if (q.discard === 'reject') {
        q.stats.rejected++;
        throw error('AMIX_ERR_QUEUE_FULL', `in-process queue ${q.id} holds ${q.maxmsg} messages`);
      }
      if (q.discard === 'dropNewest' || q.discard === 'dropOldest') {
        // Every drop is counted and reported: none is lost silently.
        q.stats.dropped++;
        q.onEvent?.({ type: 'dropped', policy: q.discard, count: 1 });
        if (q.discard === 'dropNewest') return;
        q.messages.shift();
        break;
      }
      if (!q.suspended) {
        q.suspended = true;
        q.stats.suspensions++;
        q.onEvent?.({ type: 'suspended', pending: q.messages.length });
      }
      await wait(q.senders, options.signal, 'send');
    }
    if (q.isClosed) throw closed(q);
    // Copy: the caller may reuse its buffer as soon as send resolves.
    const message = new Uint8Array(data);
    q.stats.sent++;
    q.stats.bytesSent += message.length;
    q.messages.push(message);
    q.receivers.shift()?.resolve();
  },

  async receive(handle, options) {
    const q = handle.q;
    while (q.messages.length === 0) {
      if (q.isClosed) throw closed(q);
      await wait(q.receivers, options.signal, 'receive');
    }
    const next = q.messages[0];
    // Never truncate: refuse, and leave the message for a larger receive.
    if (next.length > options.maxBytes) {
      throw error(
        'AMIX_ERR_BUFFER_TOO_SMALL',
        `next message is ${next.length} bytes, caller accepts ${options.maxBytes}`,
      );
    }
    q.messages.shift();
    q.stats.received++;
    q.stats.bytesReceived += next.length;
    drained(q);
    return next;
  },

  stats(handle) {
    return { ...handle.q.stats, pending: handle.q.messages.length };
  },
};

export default inProcessQueue;
