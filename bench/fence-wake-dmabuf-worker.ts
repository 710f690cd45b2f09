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
if (role === 'pong') {
  for (let i = 0; i < total; i++) {
    ping[i]!.waitSync();
    pong[i]!.signal();
  }
} else {
  const samples = new Float64Array(rounds);
  let prev = nowNs();
  for (let i = 0; i < total; i++) {
    ping[i]!.signal();
    pong[i]!.waitSync();
    const t = nowNs();
    if (i >= warmup) samples[i - warmup] = t - prev;
    prev = t;
  }
  parentPort!.postMessage({ type: 'done', samples }, [samples.buffer as ArrayBuffer]);
}
