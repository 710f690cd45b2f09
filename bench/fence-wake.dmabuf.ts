/**
 * dmabuf side of `fence-wake`: the same ping-pong as the baselines, with fences. Each worker is
 * the driver of the fences it signals, as in real use: it creates one fence per round on its own
 * timeline and shares them all with the other worker (through the main thread) before the clock
 * starts — creation is not what this bench measures. Each round the ping worker signals
 * `ping[i]` and blocks on `pong[i]`; the pong worker blocks on `ping[i]` and signals `pong[i]`.
 * Both use dmabuf's own spin-then-wait (`waitSync`) with the same spin budget as the baseline.
 */

import { Domain } from '../src/index.js';
import { openStart } from './_spin-wait.js';
import { nextOrFailure, spawn, withWorkers } from './_workers.js';
import type { WakeOptions, WakeRaw, WakeSide } from './fence-wake.js';

const WORKER = new URL('./fence-wake-dmabuf-worker.js', import.meta.url);

async function fencePingPong(opts: WakeOptions): Promise<WakeRaw> {
  const domain = Domain.current();
  const start = new SharedArrayBuffer(4);
  const mk = (role: string) => {
    const data = domain.threadData({ role, ...opts, start });
    const w = spawn(WORKER, data);
    domain.watch(w.worker, data);
    return w;
  };
  const a = mk('ping');
  const b = mk('pong');
  return withWorkers([a, b], async () => {
    // Each worker's fences, handed to the other.
    const [fa, fb] = await Promise.all([a.next<unknown[]>(), b.next<unknown[]>()]);
    a.worker.postMessage(fb);
    b.worker.postMessage(fa);
    await Promise.all([a.next(), b.next()]); // 'ready'
    // Creating 2 × (warmup + rounds) fences and their views left garbage that V8 collects on
    // background threads; on a 2-core machine that work would take a core from the spinning
    // pair inside the timed rounds. Let it finish first (the baselines allocate nothing).
    await new Promise((r) => setTimeout(r, 300));
    openStart(new Int32Array(start), 0);
    const done = await nextOrFailure<{ samples: Float64Array }>(a, [a, b]);
    return done.samples;
  });
}

export const dmabuf: WakeSide = { name: 'dmabuf-fence', run: fencePingPong };
