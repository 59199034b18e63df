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

// Stream numbers; halfway through the first thousand, REPLACE "lower" by "upper" (not awaited: traffic goes
// on while the process stage starts and takes over), then 500 more once it is done, then "end".
let replaced = false;
let sent = 0;
const sending = (async () => {
  let replacing: Promise<unknown> | undefined;
  for (let after = 0; after < 500; sent++) {
    await input.send(Buffer.from(String(sent)));
    if (sent === 500) replacing = caps.replace('lower', 'upper', { state: true }).then(() => (replaced = true));
    if (sent % 10 === 9) await new Promise((r) => setTimeout(r, 1));
    if (replaced) after++;
  }
  await replacing;
  await input.send(Buffer.from('end'));
})();
let next = 0;
let last = '';
for (;;) {
  const text = Buffer.from((await output.receive()).data).toString();
  if (text.endsWith(': end')) break;
  const seq = Number(text.split(': ')[1]);
  if (seq !== next++) throw new Error(`expected ${next - 1}, got ${text}`);
  last = text;
}
await sending;
console.log(`all ${sent} messages arrived once and in order; the last: "${last}"`);
console.log(`ACTIVE: ${caps.query().active.join(', ')}; "upper" runs in pid ${fabric.instance('upper').pid}`);
caps.close();
