// Two trunk points in one process, each over a ring pair standing for its switch link, so the test
// decides when each switch's table arrives. The order that once hung a suite run: both points have
// greeted each other (hellos crossed, the answering side has dialled back) before either switch has
// said what it reaches. A trunk counts as up on the first frame after a hello, and a greeting carries
// the table only when one is known, so each side must send its table when it learns it, or neither
// side ever hears a frame and the trunk never comes up.
import t from 'tap';
import { EventEmitter } from 'node:events';
import {
  PrimitiveRegistry,
  TrunkPoint,
  decodeSwitchFrame,
  encodeSwitchRoutes,
  generateKeyPair,
  trunkOptions,
} from '../dist/lib/internal.js';
import type { Channel, TrunkSnapshot } from '../dist/lib/index.js';
import { freePort, until } from './helpers/daemon.js';

const P = 'queueConditionThread';
const RING = { maxmsg: 256, minmsg: 128, maxMessageBytes: 1 << 18, capacityBytes: 1 << 20 };

/** A trunk point's end as its host would give it: one link, to switch `sw`, over rings the test holds. */
async function trunkEnd(reg: PrimitiveRegistry, instance: string, sw: string, data: unknown) {
  // ttp reads `fromSw`, the test writes `swTx`; the test reads `swRx`, ttp writes `toSw`.
  const fromSw = await reg.open(P, RING);
  const swTx = await reg.open(P, { ...RING, address: fromSw.address });
  const swRx = await reg.open(P, RING);
  const toSw = await reg.open(P, { ...RING, address: swRx.address });
  const abort = new AbortController();
  const entry = { link: 'L1', peer: sw };
  const end = Object.assign(new EventEmitter(), {
    name: instance,
    instance,
    data,
    signal: abort.signal,
    senderList: [entry],
    receiverList: [entry],
    channels: () => ({ tx: [toSw], rx: [fromSw] }),
    services: new Map(),
    closed: new Promise<Error | undefined>(() => {}),
  });
  const tp = new TrunkPoint(end as never, await trunkOptions(data));
  const running = tp.run();
  // The test stops it before it closes the registry (a registry waits for its channels).
  const stop = async () => {
    abort.abort();
    await running.catch(() => {});
    await Promise.all([fromSw, swTx, swRx, toSw].map((c) => c.destroy().catch(() => {})));
  };
  return { tp, swTx, swRx, end, stop };
}

/** Poll `check` (the trunk's state has no event outside a fabric); fail after 10 s. */
const poll = (what: string, check: () => boolean) => until(what, 10_000, async () => check());

/** Routes frames the trunk point handed its switch so far. */
function routesFrom(rx: Channel): Array<{ add?: Array<[string, string[]]>; trunk?: string }> {
  const out = [];
  for (let m = rx.tryReceive(); m !== undefined; m = rx.tryReceive()) {
    const f = decodeSwitchFrame(m);
    if (f?.kind === 'routes') out.push(f);
  }
  return out;
}

t.test('greetings before either switch table: each side sends its table when it learns it', async (t) => {
  const reg = new PrimitiveRegistry();
  const ends: Array<{ stop(): Promise<void> }> = [];
  t.teardown(async () => {
    for (const e of ends) await e.stop();
    await reg.close();
  });
  const [k1, k2] = [generateKeyPair(), generateKeyPair()];
  const listen = `tcp://127.0.0.1:${await freePort()}`;
  const b = await trunkEnd(reg, 'TTP-2', 'TCS-2', { trunk: { ...k2, peerKey: k1.publicKey, listen } });
  const a = await trunkEnd(reg, 'TTP-1', 'TCS-1', {
    trunk: { ...k1, peerKey: k2.publicKey, connect: listen },
  });
  ends.push(a, b);
  // Its `trunk` service is set once its receiving end is bound: the snapshot needs that.
  await poll('both bound', () => a.end.services.has('trunk') && b.end.services.has('trunk'));
  const snap = (x: { tp: TrunkPoint }): TrunkSnapshot => x.tp.snapshot();
  // TTP-2 names a peer once TTP-1's hello has reached it and it has dialled back (and greeted).
  await poll('TTP-2 heard the hello', () => snap(b).peer !== undefined);
  t.equal(snap(a).state, 'connecting', 'no table yet: TTP-1 is not up');
  t.equal(snap(b).state, 'connecting', 'no table yet: TTP-2 is not up');

  // Now the switches speak, each once.
  a.swTx.trySend(encodeSwitchRoutes({ switch: 'TCS-1', full: true, add: [['TCP-1', ['TCS-1']]] }));
  b.swTx.trySend(encodeSwitchRoutes({ switch: 'TCS-2', full: true, add: [['TCP-5', ['TCS-2']]] }));
  await poll('both trunk points up', () => snap(a).state === 'up' && snap(b).state === 'up');
  t.pass('the trunk came up');
  t.match(snap(a), { localSwitch: 'TCS-1', remoteSwitch: 'TCS-2' });
  t.match(snap(b), { localSwitch: 'TCS-2', remoteSwitch: 'TCS-1' });

  // Each switch hears the other's table, relayed as through its trunk point.
  const heard = async (x: { swRx: Channel }, dest: string, via: string) => {
    const got: Array<{ add?: Array<[string, string[]]>; trunk?: string }> = [];
    await poll(`a relayed route to ${dest}`, () => {
      got.push(...routesFrom(x.swRx));
      return got.some((f) => f.add?.some(([d]) => d === dest));
    });
    const f = got.find((r) => r.add?.some(([d]) => d === dest))!;
    t.equal(f.trunk, via, `${dest} is reached through ${via}`);
  };
  await heard(a, 'TCP-5', 'TTP-1');
  await heard(b, 'TCP-1', 'TTP-2');
});
