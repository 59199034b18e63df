// `npm start`: the embedded demo. Until the daemon lands this runs a channel
// on the first primitive this build can open, sends messages through it and
// prints a summary.
import { PrimitiveRegistry } from '../lib/index.js';

const count = Number(process.env.AMIX_DEMO_COUNT ?? 100_000);
const reg = new PrimitiveRegistry();
let name = '';
let rx;
for (const p of reg.list({ scope: 'thread' })) {
  try { rx = await reg.open(p.name); name = p.name; break; } catch { /* not built yet */ }
}
if (!rx) { console.error('amix demo: no thread primitive could be opened'); process.exit(1); }
const tx = await reg.open(name, { address: rx.address });
const started = performance.now();
const payload = new Uint8Array(64);
const sending = (async () => { for (let i = 0; i < count; i++) await tx.send(payload); })();
let received = 0;
while (received < count) { await rx.receive(); received++; }
await sending;
const secs = (performance.now() - started) / 1000;
console.log(`amix demo: ${received} messages of 64 B over ${name} in ${secs.toFixed(2)} s (${Math.round(received / secs)} msg/s)`);
await tx.close(); await rx.close(); await reg.close();
