// A pipeline whose stage is replaced live by CAPS: caller → in → stage → out
// → caller. While the caller streams numbered messages, the thread stage
// "lower" is replaced by the process stage "upper" (its count carried over
// by DUMP_MAP/LOAD_MAP), and every message arrives once, in order.
// Run: node dist/examples/caps-pipeline.js
import { Caps, Fabric } from '../lib/index.js';

const here = (p: string) => new URL(p, import.meta.url).href;
// Every link on the process primitive, so thread and process stages link alike.
const prim = { sendPrimitive: 'queueConditionProcess', receivePrimitive: 'queueConditionProcess' };
await using fabric = new Fabric();
fabric.register({ name: 'in', location: here('./points/relay.js'), ...prim });
fabric.register({ name: 'out', location: here('./points/relay.js'), ...prim });
const input = await fabric.connect(null, 'in', { direction: 'aToB' });
const output = await fabric.connect('out', null, { direction: 'aToB' });

const caps = new Caps(fabric);
caps.comprims(prim);
caps.on('event', (e) => {
  if (e.type === 'replaced')
    console.log(`replaced ${e.old} by ${e.new}: ${e.handedOver} handed over, ${e.pauseMs.toFixed(1)} ms`);
});
await caps.load({ name: 'lower', location: here('./points/caps-stage.js'), data: { tag: 'lower' } });
await caps.execute('lower', { upstream: ['in'], downstream: ['out'] });
await caps.load({ name: 'upper', location: here('./points/caps-stage.js'), data: { tag: 'UPPER' }, scope: 'process' });

const N = 2000;
let replacing: Promise<unknown> | undefined;
const sending = (async () => {
  for (let i = 0; i < N; i++) {
    await input.send(Buffer.from(String(i)));
    if (i === N / 2) replacing = caps.replace('lower', 'upper', { state: true }); // mid-stream: traffic goes on
  }
})();
let next = 0;
let last = '';
for (let k = 0; k < N; k++) {
  last = Buffer.from((await output.receive()).data).toString();
  const seq = Number(last.split(': ')[1]);
  if (seq !== next++) throw new Error(`expected ${next - 1}, got ${last}`);
}
await sending;
await replacing;
console.log(`all ${N} messages arrived once and in order; the last: "${last}"`);
console.log(`ACTIVE: ${caps.query().active.join(', ')}; "upper" runs in pid ${fabric.instance('upper').pid}`);
caps.close();
