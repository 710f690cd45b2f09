/**
 * The fence example: one worker signals fences, another waits on them (blocking), and the main
 * thread waits too (asynchronously). Everything goes through shared memory; messages carry only
 * fence descriptors. Prints what happened.
 *
 *   npm run build && node dist/examples/fences.js [count]
 */

import { DmaFence, type DmaFenceOps, Domain } from '../src/index.js';

const count = Number(process.argv[2] ?? 8);
if (!Number.isInteger(count) || count < 1 || count > 10_000) {
  console.error('usage: fences.js [count 1..10000]');
  process.exit(2);
}

const ops: DmaFenceOps = { getDriverName: () => 'example', getTimelineName: () => 'frames' };
const domain = Domain.current();
const context = DmaFence.contextAlloc();
const fences = Array.from({ length: count }, (_, i) => new DmaFence(ops, context, i + 1));

const worker = new URL('./fences-worker.js', import.meta.url);
const signaler = domain.spawn(worker, { workerData: { role: 'signaler' } });
const waiter = domain.spawn(worker, { workerData: { role: 'waiter' } });

const [signalerId, waiterId] = [signaler.threadId, waiter.threadId];
const waiterDone = new Promise<{ lines: string[] }>((resolve) => waiter.once('message', resolve));
waiter.postMessage(fences.map((f) => f.share()));
signaler.postMessage(fences.map((f) => f.share()));

const t0 = performance.now();
const seen: string[] = [];
await Promise.all(
  fences.map(async (f) => {
    await f.wait();
    seen.push(`${f.seqno}`);
  }),
);
const { lines } = await waiterDone;
console.log(
  `dmabuf fences: ${count} fences on context ${context}, signaled in worker ${signalerId}`,
);
for (const l of lines) console.log(`  waiter (worker ${waiterId}): ${l}`);
for (const f of fences) {
  console.log(
    `  main: fence ${f.seqno} status ${f.getStatus()} at ${f.timestamp} ns (${f.describe()})`,
  );
}
console.log(
  `main saw all ${seen.length} fences signal in ${(performance.now() - t0).toFixed(1)} ms`,
);
await Promise.all([signaler.terminate(), waiter.terminate()]);
