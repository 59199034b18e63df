/**
 * The link surgery of CAPS: REPLACE (seed 002 ¶539-543, ¶579-583), INSERT
 * (¶567) and EXTRACT (¶570). Each moves live links from one AMS to another
 * through the fabric's public operations (connect, disconnect, and
 * `fabric.ends`: hold an upstream's sending side, ask an AMS loop to stop,
 * hand off or take messages), in an order chosen so that no message is lost,
 * duplicated or reordered. docs/caps.md states the guarantee and its limits.
 *
 * @module
 */
import { amixError, invalidArg } from '../../core/errors.js';
import type { Fabric } from '../../fabric/fabric.js';
import type { LinkInfo } from '../../fabric/types.js';
import { isSwitchPoint } from '../../fabric/switchFrame.js';
import type { AmsRec, CapsCore as Caps } from './records.js';
import type { BetweenOptions, CapsEvent, Disposition, ReplaceOptions } from './types.js';

/** @internal What the surgery needs of its CAPS. */
export interface SurgeryHost {
  caps: Caps;
  fabric: Fabric;
  emit(e: CapsEvent): void;
  scopeDefault: 'thread' | 'process';
}

/** @internal Whether `id` is a running instance of `fabric`. */
export function hasInstance(fabric: Fabric, id: string): boolean {
  return fabric.instances().some((i) => i.instance === id);
}

/** One link of the AMS being moved, and what flows on it. */
interface Moved {
  link: LinkInfo;
  peer: string;
  /** The AMS is end A of the link. */
  amsIsA: boolean;
  /** The peer sends to the AMS on it. */
  input: boolean;
  /** The AMS sends to the peer on it. */
  output: boolean;
}

const now = (): number => performance.now();

function movedLinks(fabric: Fabric, inst: string, what: string): Moved[] {
  const out: Moved[] = [];
  for (const id of fabric.instance(inst).links) {
    const link = fabric.link(id);
    if (link.b.length !== 1)
      throw invalidArg(what, `has conference link ${id}: CAPS moves two-ended links only`, link.b.length);
    const amsIsA = link.a === inst;
    const peer = amsIsA ? link.b[0]! : link.a;
    if (!hasInstance(fabric, peer))
      throw invalidArg(what, `has link ${id} to ${peer}, which is not a point (a caller's link cannot be moved)`);
    // A switch routes by destination name and pulls from its links itself: holding its entry would not stop it.
    if (isSwitchPoint(fabric.point(fabric.instance(peer).point)))
      throw invalidArg(what, `is attached to switch ${peer}: CAPS does not move a switch's routes yet`);
    const d = link.direction;
    const aSends = d === 'aToB' || d === 'both';
    const bSends = d === 'bToA' || d === 'both';
    out.push({ link, peer, amsIsA, input: amsIsA ? bSends : aSends, output: amsIsA ? aSends : bSends });
  }
  return out;
}

async function requireLoop(h: SurgeryHost, inst: string, what: string): Promise<void> {
  try {
    await h.caps.amsRequest(inst, 'stats');
  } catch (err) {
    throw invalidArg(what, `(${inst}) must run the CAPS AMS loop (runAms) for this operation`, undefined, err);
  }
}

function oneInstance(rec: AmsRec, what: string): string {
  if (rec.instances.length !== 1)
    throw invalidArg(what, `must have exactly one instance (it has ${rec.instances.length})`, rec.name);
  return rec.instances[0]!;
}

/** Link `inst` to `m`'s peer as the moved link was (same ends, same direction); `heldAt`: see ConnectOptions. */
const relink = (fabric: Fabric, m: Moved, inst: string, heldAt?: string) => {
  const o = { direction: m.link.direction, ...(heldAt !== undefined ? { heldAt } : {}) };
  return m.amsIsA ? fabric.connect(inst, m.peer, o) : fabric.connect(m.peer, inst, o);
};

/**
 * Flush each upstream's old link (a hold moved its waiting sends on; the
 * flush lands what the old link had accepted), then wait until the old AMS
 * has taken all of it, or `deadline` passes; true when it has.
 */
async function workedOff(fabric: Fabric, inputs: Moved[], oldInst: string, deadline: number): Promise<boolean> {
  await Promise.all(inputs.map((m) => fabric.ends.flushSender(m.link.id, m.peer)));
  return untilZero(
    () =>
      untakenOn(
        fabric,
        inputs.map((m) => [m.link.id, oldInst]),
      ),
    deadline,
  );
}

/**
 * REPLACE, in the seed's order (¶583): suspend the old AMS's input from its
 * upstreams; start the new one; open each upstream's channel to the new one
 * in place of the old; carry state if asked; apply the disposition.
 *
 * What is queued for the old AMS and not taken is handed to the new one,
 * ahead of anything sent after: (1) the new AMS is started and gated (it
 * takes nothing), and its output links are opened (it sends nothing yet);
 * (2) each upstream's sending entry to the old AMS is held, so its next
 * sends are kept in order in the upstream's own endpoint until (2b) it is
 * linked to the new AMS, where they wait in the gated AMS's channel;
 * meanwhile (3) the old AMS is told to hand off: it finishes the message in
 * hand and from then keeps every message it receives, unprocessed; (4) every
 * link of the old AMS is disconnected, which flushes each sending end and
 * lets each receiving end take all its channel holds (the old AMS's input
 * into its hand-off list, its last outputs into the downstream points);
 * (5) the hand-off list is taken and injected into the new AMS ahead of its
 * links; (6) the new AMS is released: it handles the injected messages, then
 * its links.
 */
export async function replaceAms(
  h: SurgeryHost,
  oldName: string,
  newName: string,
  options: ReplaceOptions,
): Promise<{ handedOver: number; pauseMs: number; stateError?: string }> {
  const { caps, fabric } = h;
  const disposition = checkDisposition(options.disposition);
  const oldRec = caps.rec(oldName);
  const newRec = caps.rec(newName);
  if (oldName === newName) throw invalidArg('new', 'must differ from the AMS it replaces', newName);
  if (oldRec.state !== 'active')
    throw amixError(
      'AMIX_ERR_BAD_TRANSITION',
      `replace ${oldName}: REPLACE needs it on ACTIVE (it is ${oldRec.state})`,
      {
        module: oldName,
        state: oldRec.state,
        request: 'replace',
      },
    );
  if (!(newRec.state === 'loaded' || (newRec.state === 'active' && newRec.standby)))
    throw amixError(
      'AMIX_ERR_BAD_TRANSITION',
      `replace ${oldName} by ${newName}: the new AMS must be LOADED and not executing (it is ${newRec.state})`,
      { module: newName, state: newRec.state, request: 'replace' },
    );
  const oldInst = oneInstance(oldRec, 'old');
  await requireLoop(h, oldInst, 'old');
  const moved = movedLinks(fabric, oldInst, 'old');
  const overlap = options.overlap === true;
  if (options.overlap !== undefined && typeof options.overlap !== 'boolean')
    throw invalidArg('overlap', 'must be a boolean', options.overlap);
  if (overlap && options.state)
    throw invalidArg('overlap', 'cannot carry state: the new AMS starts before the old one stops', true);
  const drainMs = options.drainMs ?? (overlap ? OVERLAP_DRAIN_MS : 0);
  if (!Number.isFinite(drainMs) || drainMs < 0) throw invalidArg('drainMs', 'must be a number of ms >= 0', drainMs);
  // (1) The new AMS runs, gated, with its output links: nothing flows through it yet.
  if (!hasInstance(fabric, newName)) await fabric.execute(newName);
  const newInst = newName;
  await requireLoop(h, newInst, 'new');
  await caps.amsRequest(newInst, 'gate');
  const early: Array<[Moved, string]> = [];
  for (const m of moved) if (!m.input) early.push([m, (await relink(fabric, m, newInst)).id]);
  let t0 = now();
  const trace: Array<[string, number]> = [];
  const mark = (what: string) => process.env.AMIX_CAPS_TRACE && trace.push([what, now() - t0]);
  if (overlap) {
    const r = await replaceOverlapped(h, oldInst, newInst, moved, early, drainMs, mark);
    return finishReplace(h, oldRec, newRec, newInst, options, disposition, r.messages, now(), trace, mark);
  }
  if (drainMs > 0) {
    const r = await replaceDrained(h, oldInst, newInst, moved, drainMs, mark);
    if (r) {
      const after = () => Promise.all(moved.map((m) => fabric.disconnect(m.link.id))).then(() => {});
      return finishReplace(h, oldRec, newRec, newInst, options, disposition, r.messages, r.t0, trace, mark, after);
    }
    t0 = now(); // the old AMS did not get through in time: hand over the rest as without drainMs
  }
  // (2) Upstreams keep their next sends, and are linked to the new AMS at once: the new AMS is gated, so
  // what they send from now on waits in its channel behind what step 5 injects. Meanwhile (3) the old AMS
  // stops processing and keeps what arrives, and (4) every old link is flushed and drained: inputs into
  // the hand-off list, last outputs into the downstreams.
  const inputsMoved = drainMs > 0; // replaceDrained held the upstreams and linked them to the new AMS
  if (!inputsMoved)
    await Promise.all(moved.filter((m) => m.input).map((m) => fabric.ends.holdSender(m.link.id, m.peer, true)));
  mark('hold');
  await Promise.all([
    (async () => {
      await caps.amsRequest(oldInst, 'handoff');
      mark('handoff');
      await Promise.all(moved.map((m) => fabric.disconnect(m.link.id)));
      mark('disconnect');
    })(),
    inputsMoved
      ? undefined
      : Promise.all(moved.filter((m) => m.input).map((m) => relink(fabric, m, newInst))).then(() => mark('connect')),
  ]);
  // (5) What the old AMS had not taken goes to the new one first; state too if asked.
  const { messages } = await caps.amsRequest<{ messages: Uint8Array[] }>(oldInst, 'take');
  mark('take');
  return finishReplace(h, oldRec, newRec, newInst, options, disposition, messages, t0, trace, mark);
}

/** What the receiving ends (link, end) hold that their points have not taken, summed. */
async function untakenOn(fabric: Fabric, ends: Array<[string, string]>): Promise<number> {
  const xs = await Promise.all(ends.map(([link, end]) => fabric.ends.untaken(link, end)));
  return xs.reduce((a, b) => a + b, 0);
}

/** Poll `left()` every ms until it is 0 or `deadline` (performance.now) passes; true when it reached 0. */
async function untilZero(left: () => Promise<number>, deadline: number): Promise<boolean> {
  for (;;) {
    if ((await left()) === 0) return true;
    if (now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * REPLACE with `drainMs`: the upstreams are held and linked to the new AMS
 * (gated) at once, and the old AMS works off what they had sent it. Once
 * the upstreams' old links are flushed and the old AMS has taken all of it
 * (within `drainMs`), it is handed off (it had nothing left), its last
 * outputs are waited for at its downstreams (so nothing of the new AMS's
 * can overtake them there), and what its hand-off collector caught is
 * taken. Undefined when the old AMS did not get through in time: the
 * caller then hands over the rest the usual way (the inputs are moved).
 */
async function replaceDrained(
  h: SurgeryHost,
  oldInst: string,
  newInst: string,
  moved: Moved[],
  drainMs: number,
  mark: (what: string) => unknown,
): Promise<{ messages: Uint8Array[]; t0: number } | undefined> {
  const { caps, fabric } = h;
  const inputs = moved.filter((m) => m.input);
  await Promise.all(inputs.map((m) => fabric.ends.holdSender(m.link.id, m.peer, true)));
  await Promise.all(inputs.map((m) => relink(fabric, m, newInst)));
  mark('hold+connect');
  if (!(await workedOff(fabric, inputs, oldInst, now() + drainMs))) return undefined;
  mark('drained');
  const t0 = now();
  await caps.amsRequest(oldInst, 'handoff');
  const outputs = moved.filter((m) => m.output);
  await Promise.all(outputs.map((m) => fabric.ends.flushSender(m.link.id, oldInst)));
  const late = () =>
    untakenOn(
      fabric,
      outputs.map((m) => [m.link.id, m.peer]),
    );
  // Bounded like the disconnect's own drain: a downstream that takes nothing does not hold the REPLACE.
  await untilZero(late, now() + 2000);
  mark('outputs taken');
  const { messages } = await caps.amsRequest<{ messages: Uint8Array[] }>(oldInst, 'take');
  mark('take');
  return { messages, t0 };
}

/** REPLACE with `overlap` waits this long by default for the old AMS to work off its queue. */
const OVERLAP_DRAIN_MS = 5000;

/**
 * REPLACE with `overlap`: the new AMS runs from the start. Its input links
 * open held at each upstream; each downstream fences the new AMS's link
 * behind the old AMS's link to it, so the old AMS's last outputs still come
 * first there; the new AMS is released, and each upstream swaps its old
 * link for the new one in one step. The old AMS works off what it had (up
 * to `drainMs`), is handed off (it holds nothing by then), its outputs are
 * flushed and sealed at each downstream (whose fence lifts once it has
 * taken them), and its links are disconnected.
 *
 * What the old AMS has not taken when `drainMs` runs out is handed to the
 * new AMS, which has already handled later messages by then: those come
 * out of order, and the result's `handedOver` says how many.
 */
async function replaceOverlapped(
  h: SurgeryHost,
  oldInst: string,
  newInst: string,
  moved: Moved[],
  early: Array<[Moved, string]>,
  drainMs: number,
  mark: (what: string) => unknown,
): Promise<{ messages: Uint8Array[] }> {
  const { caps, fabric } = h;
  const inputs = moved.filter((m) => m.input);
  // Each upstream's link to the new AMS opens held at the upstream: it carries nothing until the swap below.
  const late = await Promise.all(
    inputs.map(async (m): Promise<[Moved, string]> => [m, (await relink(fabric, m, newInst, m.peer)).id]),
  );
  // Fence before release: the new AMS is gated, so nothing of it can have reached a downstream yet.
  const behind = (peer: string) => moved.filter((o) => o.output && o.peer === peer).map((o) => o.link.id);
  await Promise.all(
    [...early, ...late].filter(([m]) => m.output).map(([m, id]) => fabric.ends.fence(id, m.peer, behind(m.peer))),
  );
  await caps.amsRequest(newInst, 'release');
  mark('connect+fence+release');
  // The switch-over: one step at each upstream, its sends go from the old link to the new one.
  await Promise.all(late.map(([m, id]) => fabric.ends.swapSender(m.link.id, id, m.peer)));
  mark('swap');
  await workedOff(fabric, inputs, oldInst, now() + drainMs);
  mark('drained');
  // The hand-off waits for the message in hand; nothing arrives any more, so the collector keeps nothing
  // unless drainMs ran out.
  await caps.amsRequest(oldInst, 'handoff');
  mark('handoff');
  // The old AMS sends nothing more. Its outputs are flushed into each downstream and sealed there: once
  // the downstream has taken them, its fence lifts, without waiting for the links to go.
  const outputs = moved.filter((m) => m.output);
  await Promise.all(
    outputs.map((m) => fabric.ends.flushSender(m.link.id, oldInst).then(() => fabric.ends.seal(m.link.id, m.peer))),
  );
  mark('sealed');
  // Its input links go before the take, so that the collector gets what they still held when drainMs ran out.
  const gone = (ms: Moved[]) => Promise.all(ms.map((m) => fabric.disconnect(m.link.id)));
  const [, messages] = await Promise.all([
    gone(moved.filter((m) => !m.input)),
    gone(inputs).then(async () => (await caps.amsRequest<{ messages: Uint8Array[] }>(oldInst, 'take')).messages),
  ]);
  mark('disconnected+take');
  return { messages };
}

/**
 * The end of a REPLACE, once the old AMS's links are moved and `messages`
 * (what it had not taken) taken from it: state if asked, the messages
 * injected into the new AMS ahead of its links, the new AMS released, the
 * disposition (after `afterRelease`). The pause is counted from `t0`.
 */
async function finishReplace(
  h: SurgeryHost,
  oldRec: AmsRec,
  newRec: AmsRec,
  newInst: string,
  options: ReplaceOptions,
  disposition: Disposition,
  messages: Uint8Array[],
  t0: number,
  trace: Array<[string, number]>,
  mark: (what: string) => unknown,
  afterRelease?: () => Promise<void>,
): Promise<{ handedOver: number; pauseMs: number; stateError?: string }> {
  const { caps } = h;
  const oldName = oldRec.name;
  const newName = newRec.name;
  newRec.state = 'active';
  newRec.standby = false;
  newRec.instances = [newInst];
  // A state that cannot be carried does not leave the links half moved: the REPLACE completes and says so.
  let stateError: string | undefined;
  if (options.state) {
    try {
      const area = await caps.dumpMap(oldName, { persistence: 'load' });
      await caps.loadMap(newName, { id: area.id });
    } catch (err) {
      stateError = `${(err as { code?: string }).code ?? 'AMIX_ERR_INTERNAL'}: ${(err as Error).message}`;
    }
  }
  if (messages.length > 0) await caps.amsRequest(newInst, 'inject', { messages });
  mark('inject');
  // (6) Only now does the new AMS take messages: the handed-over ones first, then its links.
  await caps.amsRequest(newInst, 'release');
  const pauseMs = now() - t0;
  // With drainMs the old links go only now: nothing is left on them, and the new AMS already runs.
  await afterRelease?.();
  if (process.env.AMIX_CAPS_TRACE) process.stderr.write(`replace ${oldName}: ${JSON.stringify(trace)}\n`);
  caps.counters.handedOver += messages.length;
  newRec.refs = Math.max(1, oldRec.refs);
  newRec.scope = 'public';
  h.emit({ type: 'list', ams: newName, from: 'loaded', to: 'active' });
  await dispose(h, oldRec, disposition);
  h.emit({
    type: 'replaced',
    old: oldName,
    new: newName,
    handedOver: messages.length,
    pauseMs,
    disposition,
    ...(stateError ? { stateError } : {}),
  });
  return { handedOver: messages.length, pauseMs, ...(stateError ? { stateError } : {}) };
}

/** The link `from` → `to` that carries only `from`'s sends to `to`. */
function oneWay(fabric: Fabric, from: string, to: string): LinkInfo {
  for (const l of fabric.links()) {
    if (l.b.length !== 1) continue;
    if (
      (l.a === from && l.b[0] === to && l.direction === 'aToB') ||
      (l.a === to && l.b[0] === from && l.direction === 'bToA')
    )
      return l;
  }
  throw amixError('AMIX_ERR_UNKNOWN_LINK', `no one-way link ${from} → ${to}`, { link: `${from}->${to}` });
}

function endsOf(fabric: Fabric, opts: BetweenOptions): void {
  for (const k of ['from', 'to'] as const) {
    if (typeof opts[k] !== 'string') throw invalidArg(k, 'must be a point name', opts[k]);
    if (!hasInstance(fabric, opts[k]))
      throw amixError('AMIX_ERR_UNKNOWN_POINT', `${opts[k]} does not execute`, { name: opts[k] });
  }
}

/**
 * INSERT: `from` → `to` becomes `from` → ams → `to`. The AMS is gated and
 * linked to `to` first; `from`'s sending entry is held (its next sends kept
 * in order) and `from` is linked to the AMS (the kept sends go first, into
 * the gated AMS's channel) while the old link is disconnected (flushed, and
 * drained by `to`); then the AMS is released. An AMS without the CAPS loop
 * cannot be gated: it is linked to `from` only after the old link is gone.
 */
export async function insertAms(h: SurgeryHost, ams: string, opts: BetweenOptions): Promise<{ pauseMs: number }> {
  const { caps, fabric } = h;
  const rec = caps.rec(ams);
  requireActive(rec, 'insert');
  endsOf(fabric, opts);
  const inst = oneInstance(rec, 'ams');
  const l = oneWay(fabric, opts.from, opts.to);
  const loop = await caps.amsRequest(inst, 'gate').then(
    () => true,
    () => false,
  );
  await fabric.connect(inst, opts.to, { direction: 'aToB' });
  const t0 = now();
  await fabric.ends.holdSender(l.id, opts.from, true);
  // A gated AMS sends nothing: `from` may be linked to it while the old link drains into `to`.
  if (loop) await Promise.all([fabric.connect(opts.from, inst, { direction: 'aToB' }), fabric.disconnect(l.id)]);
  else {
    await fabric.disconnect(l.id);
    await fabric.connect(opts.from, inst, { direction: 'aToB' });
  }
  if (loop) await caps.amsRequest(inst, 'release');
  const pauseMs = now() - t0;
  rec.standby = false;
  h.emit({ type: 'inserted', ams, from: opts.from, to: opts.to, pauseMs });
  return { pauseMs };
}

/**
 * EXTRACT: `from` → ams → `to` becomes `from` → `to`. `from`'s entry is
 * held, its link to the AMS disconnected (the AMS takes and processes all it
 * holds), the AMS gated (its last output sent), its link to `to`
 * disconnected (drained by `to`), and `from` linked to `to` (its kept sends
 * first). Then the disposition.
 */
export async function extractAms(h: SurgeryHost, ams: string, opts: BetweenOptions): Promise<{ pauseMs: number }> {
  const { caps, fabric } = h;
  const rec = caps.rec(ams);
  const disposition = checkDisposition(opts.disposition);
  requireActive(rec, 'extract');
  endsOf(fabric, opts);
  const inst = oneInstance(rec, 'ams');
  const l1 = oneWay(fabric, opts.from, inst);
  const l2 = oneWay(fabric, inst, opts.to);
  const t0 = now();
  await fabric.ends.holdSender(l1.id, opts.from, true);
  await fabric.disconnect(l1.id);
  // The AMS has taken everything; the gate waits for the message in hand, so its last output is on l2.
  await caps.amsRequest(inst, 'gate').catch(() => undefined);
  await fabric.disconnect(l2.id);
  await fabric.connect(opts.from, opts.to, { direction: 'aToB' });
  const pauseMs = now() - t0;
  await dispose(h, rec, disposition);
  h.emit({ type: 'extracted', ams, from: opts.from, to: opts.to, pauseMs, disposition });
  return { pauseMs };
}

/** `AMIX_ERR_BAD_TRANSITION` unless `rec` is on ACTIVE (INSERT and EXTRACT act on an executing AMS). */
function requireActive(rec: AmsRec, request: 'insert' | 'extract'): void {
  if (rec.state !== 'active')
    throw amixError(
      'AMIX_ERR_BAD_TRANSITION',
      `${request} ${rec.name}: ${request.toUpperCase()} needs it on ACTIVE (it is ${rec.state})`,
      { module: rec.name, state: rec.state, request },
    );
}

function checkDisposition(d: unknown): Disposition {
  const v = d ?? 'terminate';
  if (v !== 'terminate' && v !== 'suspend' && v !== 'standby')
    throw invalidArg('disposition', 'must be terminate, suspend or standby', d);
  return v;
}

/** The disposition of an AMS taken out of its links (¶541): it is gated when this runs. */
async function dispose(h: SurgeryHost, rec: AmsRec, d: Disposition): Promise<void> {
  if (d === 'terminate') {
    // Its references went to the replacement: one TERMINATE ends it.
    rec.refs = 1;
    await h.caps.terminate(rec.name);
    return;
  }
  if (d === 'suspend') {
    for (const inst of rec.instances)
      for (const l of h.fabric.instance(inst).links) await h.fabric.suspend(l).catch(() => {});
    rec.refs = 1;
    rec.state = 'suspended';
    h.emit({ type: 'list', ams: rec.name, from: 'active', to: 'suspended' });
    h.emit({ type: 'suspended', ams: rec.name });
    return;
  }
  // Standby: it runs on, unlinked, ready to be brought back by a REPLACE.
  for (const inst of rec.instances) await h.caps.amsRequest(inst, 'release').catch(() => undefined);
  rec.refs = 1;
  rec.standby = true;
}
