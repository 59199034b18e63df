/**
 * Small parts of {@link Endpoint} in a file of their own: keeping the event
 * loop alive while a wait on shared memory is pending, and the error of a
 * receive whose buffer is too small.
 *
 * @module
 */
import { YIELD_EVERY, type Channel } from '../core/channel.js';
import { AmixError, ErrorCode } from '../core/errors.js';
import type * as sw from './switchFrame.js';

let keepers = 0;
let keeper: NodeJS.Timeout | undefined;

/**
 * Keep the event loop alive while `p` is pending. A wait on shared memory
 * (`Atomics.waitAsync`) holds no handle, so without this an application
 * awaiting a message from a thread point could simply exit. One ref'd timer
 * serves every pending wait.
 */
export function keepAlive<T>(p: Promise<T>): Promise<T> {
  if (keepers++ === 0) keeper = setInterval(() => {}, 1 << 30);
  const done = () => {
    if (--keepers === 0) {
      clearInterval(keeper);
      keeper = undefined;
    }
  };
  p.then(done, done);
  return p;
}

/** The `AMIX_ERR_BUFFER_TOO_SMALL` of a receive that accepts `maxBytes` when the next message is `size`. */
export function tooSmall(size: number, maxBytes: number): AmixError {
  return new AmixError(
    ErrorCode.AMIX_ERR_BUFFER_TOO_SMALL,
    `next message is ${size} bytes; the caller accepts ${maxBytes}`,
    { details: { size, maxBytes } },
  );
}

/**
 * Counts messages handed over without the event loop turning, whichever way
 * they came: a receive that waited need not have let the loop turn (a thread
 * ring's receive that spun is settled in the same task), and a point that
 * sends as it receives would otherwise starve whatever waits for a turn,
 * such as a process link's packed frames. {@link due} is true every
 * {@link YIELD_EVERY} of them: the caller hands the next one over after a turn.
 */
export class TurnYield {
  /** Messages handed over in a row without the event loop turning. */
  #run = 0;
  /** False from the first message of a run until a setImmediate queued then has run: the loop turned. */
  #turned = true;
  readonly #mark = (): void => {
    this.#turned = true;
  };

  /** One more message is being handed over: true when it should come after a turn of the loop. */
  due(): boolean {
    if (this.#turned) {
      this.#turned = false;
      this.#run = 0;
      setImmediate(this.#mark);
    }
    if (++this.#run < YIELD_EVERY) return false;
    this.#run = 0;
    return true;
  }
}

/** `v`, handed over after a turn of the event loop (when {@link TurnYield.due} says so). */
export function afterTurn<V>(v: V): Promise<V> {
  return new Promise((resolve) => setImmediate(resolve, v));
}

/**
 * The iterator behind `Endpoint.messages()`: `take` hands over a message
 * that is ready now (or undefined), `receive` waits for one; it ends at
 * `AMIX_ERR_LINK_CLOSED`. Hand-written rather than an async generator: when a
 * message is ready, `next()` hands it over in one settled promise, where a
 * generator costs about three times as much per message (measured, Node 20).
 * Every {@link YIELD_EVERY} messages in a row handed over without the event
 * loop turning (ready ones, or ones a receive got without a turn), one is
 * handed over after a turn of the event loop instead (see there, in core/channel.ts).
 */
export function messageIterator<M>(
  take: () => M | undefined,
  receive: () => Promise<M>,
): AsyncGenerator<M, void, undefined> {
  let finished = false;
  const turns = new TurnYield();
  const end = (): IteratorResult<M, void> => {
    finished = true;
    return { value: undefined, done: true };
  };
  const it = {
    next: (): Promise<IteratorResult<M, void>> => {
      if (finished) return Promise.resolve(end());
      try {
        const m = take();
        if (m !== undefined) {
          const r = { value: m, done: false as const };
          return turns.due() ? afterTurn(r) : Promise.resolve(r);
        }
      } catch (err) {
        finished = true;
        return Promise.reject(err);
      }
      return receive().then(
        (value) => {
          const r = { value, done: false as const };
          return turns.due() ? afterTurn(r) : r;
        },
        (err: unknown) => {
          if ((err as AmixError).code === ErrorCode.AMIX_ERR_LINK_CLOSED) return end();
          finished = true;
          throw err;
        },
      );
    },
    return: (): Promise<IteratorResult<M, void>> => Promise.resolve(end()),
    throw: (err?: unknown): Promise<IteratorResult<M, void>> => {
      finished = true;
      return Promise.reject(err);
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it as unknown as AsyncGenerator<M, void, undefined>;
}

/** One entry of a sender or receiver list. */
export interface ListEntry {
  readonly link: string;
  readonly peer: string;
  /** True when the peer is a switch: messages on the entry carry the switch header. */
  readonly switched?: boolean;
}

/** @internal A sender-list entry. */
export interface TxEntry extends ListEntry {
  ch: Channel;
  held: boolean;
  /** Taken off the list by a graceful disconnect: a send it had not accepted goes out again (see send). */
  removed?: boolean;
  /** Aborted when the entry is taken off the list: sends waiting for room on it stop waiting. */
  gone: AbortController;
  /** A switch entry: what its routes frames (on the same link's receiving entry) taught. */
  routes?: sw.LearnedRoutes;
}
/** @internal A receiver-list entry. */
export interface RxEntry extends ListEntry {
  ch: Channel;
  slot?: Uint8Array;
  pumping: boolean;
  ended: boolean;
  rearm?: boolean;
  /** Fenced: nothing is taken from the entry while a link named here is still on the receiver list. */
  behind?: string[];
  /** Nothing more comes on the entry (Endpoint.seal): once empty it no longer fences another. */
  sealed?: boolean;
}

/** @internal Messages an entry holds that the point has not taken: its lookahead slot and what its channel still queues. */
export function held(e: RxEntry): number {
  return (e.slot !== undefined ? 1 : 0) + (e.ch.isOpen && !e.ended ? e.ch.stats().pending : 0);
}

/**
 * @internal A graceful disconnect takes `e` off its list (`removed`), or a
 * hold takes it out of plain sends: a send waiting for room on it stops
 * (Endpoint.send sends it again on the list as it is then, ahead of what
 * was kept). Left waiting, it would hold the channel's close until the
 * receiving end, gone already, granted room; or land on a held link after
 * sends that went on to another link.
 */
export function retire(e: TxEntry, removed = true): void {
  if (removed) e.removed = true;
  e.gone.abort();
  // A held entry stays on the list: sends that name its link may wait on it again.
  if (!removed) e.gone = new AbortController();
}

/** @internal The signal of a send that waits on `e`: the caller's, and the entry's removal. */
export function withGone(e: TxEntry, signal: AbortSignal | undefined): AbortSignal {
  return signal ? AbortSignal.any([signal, e.gone.signal]) : e.gone.signal;
}

/** @internal Hold or release entry `e`; a hold moves a plain send waiting on it on (see {@link retire}). */
export function setHeld(e: TxEntry, held: boolean): void {
  e.held = held;
  if (held) retire(e, false);
}

/**
 * @internal True while `e` is fenced behind a link still on `rx` (and not
 * sealed and empty). The fence lifts for good the first time none is left:
 * a link taken off the list never comes back under the same id, and a
 * sealed one gets nothing more.
 */
export function fenced(e: RxEntry, rx: readonly RxEntry[]): boolean {
  if (e.behind!.some((b) => rx.some((x) => x.link === b && !(x.sealed && held(x) === 0)))) return true;
  e.behind = undefined;
  return false;
}

/**
 * @internal Fence the entries of `link` on point `point`'s `rx` behind
 * `behind` (Endpoint.fence): nothing is taken from them until no link of
 * `behind` is on the receiver list, or each is sealed and empty (CAPS's
 * overlapping REPLACE: the new AMS's outputs wait behind the old one's).
 * `AMIX_ERR_UNKNOWN_LINK` when `link` has no receiving entry there.
 */
export function setFence(rx: readonly RxEntry[], point: string, link: string, behind: readonly string[]): void {
  const es = rx.filter((e) => e.link === link);
  if (es.length === 0)
    throw new AmixError(ErrorCode.AMIX_ERR_UNKNOWN_LINK, `point "${point}" receives nothing on link "${link}"`, {
      details: { link },
    });
  const live = behind.filter((b) => b !== link && rx.some((x) => x.link === b));
  for (const e of es) e.behind = live.length > 0 ? live : undefined;
}

/**
 * @internal Wait until the entries of `link` on `rx` hold nothing the point
 * has not taken, or `ms` pass, or `open()` turns false.
 */
export async function drainRx(rx: readonly RxEntry[], open: () => boolean, link: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  // Polled: consumption happens in the point's own receive calls, which
  // signal nothing; this runs once per disconnect, not per message.
  while (open() && Date.now() < deadline && rx.some((e) => e.link === link && held(e) > 0)) {
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** @internal What the switch entries of a sender list reach (Endpoint.switchRoutes). */
export function routesOf(tx: readonly TxEntry[]): Array<{ link: string; peer: string; destinations: string[] }> {
  return tx
    .filter((e) => e.routes)
    .map((e) => ({ link: e.link, peer: e.peer, destinations: e.routes!.destinations() }));
}
