// Worker of resv.bench.ts: tasks that lock random sets of 8 of the shared reservation objects
// under a ww acquire context, with back-off, until the time is up.
import { parentPort, workerData } from 'node:worker_threads';
import { DmaResv, type DmaResvDescriptor, EDEADLK, WwAcquireCtx } from '../src/index.js';
import { prng } from '../tests/_rpc.js';

export interface SetStats {
  sets: number;
  backoffs: number;
  seconds: number;
  worstUs: number;
  /** A sample of set waits (µs), at most a few thousand. */
  waitsUs: number[];
}

const SET = 8;

/** Locks every object of `set` under `ctx`; returns the number of back-offs it took. */
async function lockSet(set: DmaResv[], ctx: WwAcquireCtx): Promise<number> {
  let backoffs = 0;
  let contended = -1; // index held through lockSlow
  for (;;) {
    let err = 0;
    let i = 0;
    for (; i < set.length; i++) {
      if (i === contended) continue;
      err = await set[i]!.lock(ctx);
      if (err !== 0) break;
    }
    if (err === 0) return backoffs;
    if (err !== EDEADLK) throw new Error(`lock returned ${err}`);
    for (let j = 0; j < i; j++) if (j !== contended) set[j]!.unlock();
    if (contended >= 0) set[contended]!.unlock();
    backoffs++;
    contended = i;
    await set[i]!.lockSlow(ctx);
  }
}

async function task(resvs: DmaResv[], end: number, seed: number, stats: SetStats): Promise<void> {
  const rnd = prng(seed);
  const idx = Array.from({ length: resvs.length }, (_, i) => i);
  while (performance.now() < end) {
    for (let i = 0; i < SET; i++) {
      const r = i + Math.floor(rnd() * (idx.length - i));
      [idx[i], idx[r]] = [idx[r]!, idx[i]!];
    }
    const set = idx.slice(0, SET).map((i) => resvs[i]!);
    const ctx = new WwAcquireCtx();
    const t0 = performance.now();
    stats.backoffs += await lockSet(set, ctx);
    const waitUs = (performance.now() - t0) * 1000;
    for (const r of set) r.unlock();
    ctx.fini();
    stats.sets++;
    // Yield to the event loop between sets, as a task with other work would: a loop that only
    // ever awaits uncontended locks runs on microtasks and starves the thread's other tasks.
    if ((stats.sets & 7) === 0) await new Promise<void>((r) => setImmediate(r));
    if (waitUs > stats.worstUs) stats.worstUs = waitUs;
    if (stats.waitsUs.length < 4096 || rnd() < 4096 / stats.sets)
      stats.waitsUs[stats.waitsUs.length < 4096 ? stats.waitsUs.length : Math.floor(rnd() * 4096)] =
        waitUs;
  }
}

const {
  resvs: descs,
  ready: readySab,
  ms,
  tasks,
  seed,
  workers,
} = workerData as {
  resvs: DmaResvDescriptor[];
  ready: SharedArrayBuffer;
  ms: number;
  tasks: number;
  seed: number;
  workers: number;
};
const resvs = descs.map((d) => DmaResv.fromShared(d));
// Start together: every worker counts itself in, then waits for the others.
const ready = new Int32Array(readySab);
Atomics.add(ready, 0, 1);
Atomics.notify(ready, 0);
while (Atomics.load(ready, 0) < workers) Atomics.wait(ready, 0, Atomics.load(ready, 0), 50);
const stats: SetStats = { sets: 0, backoffs: 0, seconds: 0, worstUs: 0, waitsUs: [] };
const t0 = performance.now();
const end = t0 + ms;
await Promise.all(Array.from({ length: tasks }, (_, k) => task(resvs, end, seed * 100 + k, stats)));
stats.seconds = (performance.now() - t0) / 1000;
parentPort!.postMessage(stats);
