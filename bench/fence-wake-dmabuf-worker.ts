// Worker side of bench/fence-wake.dmabuf.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { DmaFence, type DmaFenceOps, type FenceDescriptor, setWaitPolicy } from '../src/index.js';
import { nowNs } from './_harness.js';
import { waitForStart } from './_spin-wait.js';

const { role, rounds, warmup, spin, start } = workerData;
setWaitPolicy({ spinSync: spin });
const total = warmup + rounds;
const ops: DmaFenceOps = { getDriverName: () => 'bench', getTimelineName: () => role };
const context = DmaFence.contextAlloc();
// The fences this worker signals, on its own timeline.
const mine = Array.from({ length: total }, (_, i) => new DmaFence(ops, context, i + 1));
parentPort!.postMessage(mine.map((f) => f.share()));
const theirs: DmaFence[] = await new Promise((resolve) =>
  parentPort!.once('message', (d: FenceDescriptor[]) => resolve(d.map(DmaFence.fromShared))),
);

// One function per half round, called for every round: V8 optimizes it as a normal function
// (warm by the end of the warm-up) instead of on-stack-replacing a module-level loop, which gave
// run-to-run different code (p50 0.32-0.75 us between identical runs).
const pongRound = (i: number): void => {
  theirs[i]!.waitSync();
  mine[i]!.signal();
};
const pingRound = (i: number): void => {
  mine[i]!.signal();
  theirs[i]!.waitSync();
};

parentPort!.postMessage({ type: 'ready' });
waitForStart(new Int32Array(start), 0);
if (role === 'pong') {
  for (let i = 0; i < total; i++) pongRound(i);
} else {
  const samples = new Float64Array(rounds);
  let prev = nowNs();
  for (let i = 0; i < total; i++) {
    pingRound(i);
    const t = nowNs();
    if (i >= warmup) samples[i - warmup] = t - prev;
    prev = t;
  }
  parentPort!.postMessage({ type: 'done', samples }, [samples.buffer as ArrayBuffer]);
}
