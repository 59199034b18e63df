// A two-stage pipeline: the caller → "upper" (a thread point) → "exclaim" (a
// process point) → the caller. Both stages run examples/points/stage.js,
// unchanged; only the registrations differ. Run: node dist/examples/pipeline.js
import { Fabric } from '../lib/index.js';

const stage = new URL('./points/stage.js', import.meta.url).href;
await using fabric = new Fabric();
fabric.register({
  name: 'upper',
  location: stage,
  data: { op: 'upper' },
  characteristics: { scope: 'thread' },
  // A thread point that feeds a process point sends over the process primitive.
  sendPrimitive: 'queueConditionProcess',
});
fabric.register({ name: 'exclaim', location: stage, data: { op: 'exclaim' }, characteristics: { scope: 'process' } });

const input = await fabric.connect(null, 'upper', { direction: 'aToB' }); // caller → upper
await fabric.connect('upper', 'exclaim', { direction: 'aToB' }); // upper → exclaim
const output = await fabric.connect('exclaim', null, { direction: 'aToB' }); // exclaim → caller

for (const word of ['hello', 'from', 'amix']) await input.send(Buffer.from(word));
for (let i = 0; i < 3; i++) {
  const m = await output.receive();
  console.log(`${m.from} → caller: ${Buffer.from(m.data).toString()}`);
}
console.log(
  `upper ran as a ${fabric.instance('upper').scope} point, exclaim as a ${fabric.instance('exclaim').scope} point (pid ${fabric.instance('exclaim').pid}); the caller is pid ${process.pid}`,
);
