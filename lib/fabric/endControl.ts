/**
 * {@link EndControl}, as `fabric.ends`: requests to one link end's agent that
 * services moving a link's traffic need (CAPS, `lib/services/caps/`): hold
 * or release an end's sending side of a link, and ask a point's own code for
 * a service it offers on its endpoint (`Endpoint.services`). Nothing here
 * changes the fabric's tables; each request is one agent command.
 *
 * @module
 */
import { invalidArg } from '../core/errors.js';
import { endOf, instOf, linkOf, type FabricCore } from './records.js';

/** Link-end requests of one fabric. */
export class EndControl {
  readonly #core: FabricCore;

  /** @internal */
  constructor(core: FabricCore) {
    this.#core = core;
  }

  /** End `end`'s agent of `link`: `AMIX_ERR_UNKNOWN_LINK`, or `AMIX_ERR_INVALID_ARG` when it is no end of it. */
  #end(link: string, end: string) {
    const rec = linkOf(this.#core, link);
    const e = endOf(this.#core, rec, end);
    if (!e || (rec.a !== end && !rec.b.includes(end))) throw invalidArg('end', `is not an end of link ${link}`, end);
    return e;
  }

  /**
   * Hold (true) or release (false) end `end`'s sending side of `link`
   * (`Endpoint.hold`): while held, the end's plain sends skip that entry and,
   * with no other entry to go to, are kept in order in its endpoint (up to
   * its `maxUnlinked`, then its discard policy) until a link is added or the
   * hold released. Sends already in the entry's channel are not touched.
   * `AMIX_ERR_UNKNOWN_LINK` for no such link, `AMIX_ERR_INVALID_ARG` when
   * `end` is not one of its ends.
   */
  async holdSender(link: string, end: string, held: boolean): Promise<void> {
    const e = this.#end(link, end);
    await e.target.request('hold', { link, held }, this.#core.timeoutMs);
  }

  /**
   * At end `end`, hold `link` and release `release` in one step, so that its
   * sends move from the one to the other with none in between. Same errors
   * as {@link holdSender}.
   */
  async swapSender(link: string, release: string, end: string): Promise<void> {
    const e = this.#end(link, end);
    await e.target.request('hold', { link, held: true, release }, this.#core.timeoutMs);
  }

  /**
   * Resolves once everything end `end` has accepted for `link` is in the
   * receiving ends' channels (a cycle through each of its sending channels
   * there, as a graceful disconnect's flush). Same errors as {@link holdSender}.
   */
  async flushSender(link: string, end: string, timeoutMs?: number): Promise<void> {
    const e = this.#end(link, end);
    await e.target.request('cycle', { link }, timeoutMs ?? this.#core.timeoutMs);
  }

  /** How many messages end `end`'s receiving side of `link` holds that its point has not taken. */
  async untaken(link: string, end: string, timeoutMs?: number): Promise<number> {
    const e = this.#end(link, end);
    return (await e.target.request('untaken', { link }, timeoutMs ?? this.#core.timeoutMs)).held;
  }

  /**
   * At end `end`, take nothing from `link` until the links `behind` (that
   * deliver to the same end) are gone from it: a downstream then gets all a
   * replaced point sent before anything of its replacement's.
   */
  async fence(link: string, end: string, behind: string[], timeoutMs?: number): Promise<void> {
    const e = this.#end(link, end);
    await e.target.request('fence', { link, behind }, timeoutMs ?? this.#core.timeoutMs);
  }

  /**
   * At end `end`, nothing more comes on `link` (the caller flushed and
   * stopped its senders): once `end` has taken what it holds, the link
   * fences nothing there (see {@link fence}).
   */
  async seal(link: string, end: string): Promise<void> {
    const e = this.#end(link, end);
    await e.target.request('seal', { link }, this.#core.timeoutMs);
  }

  /**
   * Ask instance `instance`'s own code for service `name` (what the point put
   * in `point.services`), with a JSON-like request (structured clone: byte
   * arrays pass as they are). `AMIX_ERR_UNKNOWN_POINT` when the instance
   * does not run or offers no such service.
   */
  service<T = unknown>(
    instance: string,
    name: string,
    request: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<T> {
    const inst = instOf(this.#core, instance);
    return inst.target.request<T>('service', { name, request }, timeoutMs ?? this.#core.timeoutMs);
  }
}
