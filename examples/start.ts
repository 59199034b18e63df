// `npm start`: the embedded default. An in-process amixd on a temp directory,
// this process plugged in as a container, a thread point and a process point
// linked in a ring (this process → thread point → process point → this
// process), messages flowing, a summary of rates, then a clean exit.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonClient } from '../lib/index.js';
import { Daemon } from '../lib/control/daemon.js';

const count = Number(process.env.AMIX_DEMO_COUNT ?? 200_000);
const size = Number(process.env.AMIX_DEMO_SIZE ?? 64);
const stage = new URL('./points/stage.js', import.meta.url).href;
const dir = await mkdtemp(join(tmpdir(), 'amix-start-'));
const daemon = new Daemon({ dir });
await daemon.start();
const client = await DaemonClient.connect({ dir, name: 'npm start' });
try {
  await client.request('point.register', {
    registration: {
      name: 'relayThread',
      location: stage,
      characteristics: { scope: 'thread' },
      // It runs as a worker in the daemon's process but talks to other processes
      // (this container, the process point), so both of its primitives are the process one.
      sendPrimitive: 'queueConditionProcess',
      receivePrimitive: 'queueConditionProcess',
    },
  });
  await client.request('point.register', {
    registration: { name: 'relayProcess', location: stage, characteristics: { scope: 'process' } },
  });
  const into = await client.connect(null, 'relayThread', { direction: 'aToB' });
  await client.request('connect', { a: 'relayThread', b: 'relayProcess', direction: 'aToB' });
  const back = await client.connect('relayProcess', null, { direction: 'aToB' });
  const instances = await client.request<Array<{ instance: string; scope: string; pid: number }>>('instances');
  for (const i of instances)
    console.log(
      `  ${i.instance.padEnd(13)} ${i.scope.padEnd(8)} pid ${i.pid}${i.pid === process.pid ? ' (this process, a worker thread)' : ''}`,
    );

  const payload = Buffer.alloc(size, 0x61);
  const t0 = performance.now();
  const sending = (async () => {
    for (let i = 0; i < count; i++) await into.send(payload);
  })();
  let received = 0;
  let bytes = 0;
  while (received < count) {
    const m = await back.receive();
    received++;
    bytes += m.size;
  }
  await sending;
  const secs = (performance.now() - t0) / 1000;

  // One message at a time, to show the round trip through both points.
  const rtts: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const s = performance.now();
    await into.send(payload);
    await back.receive();
    rtts.push((performance.now() - s) * 1000);
  }
  rtts.sort((a, b) => a - b);

  console.log(
    `amix: ${received.toLocaleString('en-US')} messages of ${size} B, this process → thread point → process point → this process`,
  );
  console.log(
    `  throughput ${Math.round(received / secs).toLocaleString('en-US')} msg/s (${(bytes / secs / 1e6).toFixed(1)} MB/s), ${secs.toFixed(2)} s`,
  );
  console.log(
    `  round trip through both points: p50 ${rtts[rtts.length >> 1]!.toFixed(1)} us, p99 ${rtts[Math.floor(rtts.length * 0.99)]!.toFixed(1)} us`,
  );
  console.log(
    '  the daemon carried control only: every byte went over queueConditionProcess channels between the ends',
  );
} finally {
  await client.close();
  await daemon.stop();
  await rm(dir, { recursive: true, force: true });
}
