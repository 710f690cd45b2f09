// Worker side of examples/fences.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { DmaFence, type FenceDescriptor, nowNs } from '../src/index.js';

parentPort!.once('message', (descs: FenceDescriptor[]) => {
  const fences = descs.map((d) => DmaFence.fromShared(d));
  if (workerData.role === 'signaler') {
    let i = 0;
    const tick = (): void => {
      const f = fences[i++]!;
      if (f.seqno % 5 === 0) f.setError(-125); // every fifth frame is "cancelled"
      f.signal();
      if (i < fences.length) setTimeout(tick, 2);
    };
    tick();
  } else {
    const lines: string[] = [];
    for (const f of fences) {
      f.waitSync(); // blocking: this worker sleeps in Atomics.wait until the signaler's store
      const latencyUs = Number(nowNs() - f.timestamp) / 1000;
      lines.push(
        `fence ${f.seqno} signaled (status ${f.getStatus()}), woke ${latencyUs.toFixed(1)} µs after the signal`,
      );
    }
    parentPort!.postMessage({ lines });
  }
});
