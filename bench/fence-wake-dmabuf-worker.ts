// Worker side of bench/fence-wake.dmabuf.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { DmaFence, setWaitPolicy } from '../src/index.js';
import { nowNs } from './_harness.js';
import { waitForStart } from './_spin-wait.js';

const { role, rounds, warmup, spin, start, ping: pingD, pong: pongD } = workerData;
setWaitPolicy({ spinSync: spin });
const ping: DmaFence[] = pingD.map((d: never) => DmaFence.fromShared(d));
const pong: DmaFence[] = pongD.map((d: never) => DmaFence.fromShared(d));
const total = warmup + rounds;
parentPort!.postMessage({ type: 'ready' });
waitForStart(new Int32Array(start), 0);
// One function per half round, called for every round: V8 optimizes it as a normal function
// (warm by the end of the warm-up) instead of on-stack-replacing a module-level loop, which gave
// run-to-run different code (p50 0.32-0.75 us between identical runs).
const pongRound = (i: number): void => {
  ping[i]!.waitSync();
  pong[i]!.signal();
};
const pingRound = (i: number): void => {
  ping[i]!.signal();
  pong[i]!.waitSync();
};
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
