/**
 * dmabuf side of `fence-wake`: the same ping-pong as the baselines, with fences. The main thread
 * creates one fence per half round trip, shares them all with both workers before the clock
 * starts (creation is not what this bench measures), and each round the ping worker signals
 * `ping[i]` and blocks on `pong[i]`, the pong worker blocks on `ping[i]` and signals `pong[i]`.
 * Both use dmabuf's own spin-then-wait (`waitSync`) with the same spin budget as the baseline.
 */

import { DmaFence, type DmaFenceOps, Domain } from '../src/index.js';
import { openStart } from './_spin-wait.js';
import { nextOrFailure, spawn, withWorkers } from './_workers.js';
import type { WakeOptions, WakeRaw, WakeSide } from './fence-wake.js';

const WORKER = new URL('./fence-wake-dmabuf-worker.js', import.meta.url);
const ops: DmaFenceOps = { getDriverName: () => 'bench', getTimelineName: () => 'wake' };

async function fencePingPong(opts: WakeOptions): Promise<WakeRaw> {
  const domain = Domain.current();
  const total = opts.warmup + opts.rounds;
  const pingCtx = DmaFence.contextAlloc();
  const pongCtx = DmaFence.contextAlloc();
  const ping = Array.from({ length: total }, (_, i) => new DmaFence(ops, pingCtx, i + 1));
  const pong = Array.from({ length: total }, (_, i) => new DmaFence(ops, pongCtx, i + 1));
  const start = new SharedArrayBuffer(4);
  const mk = (role: string) => {
    const data = domain.threadData({
      role,
      ...opts,
      start,
      ping: ping.map((f) => f.share()),
      pong: pong.map((f) => f.share()),
    });
    const w = spawn(WORKER, data);
    domain.watch(w.worker, data);
    return w;
  };
  const a = mk('ping');
  const b = mk('pong');
  return withWorkers([a, b], async () => {
    await Promise.all([a.next(), b.next()]);
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
