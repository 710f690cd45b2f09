/**
 * `resv-lock`: an uncontended lock + unlock pair, awaited, in nanoseconds per pair.
 *
 * Baseline `async-mutex`: `const release = await mutex.acquire(); release();` on the `Mutex` of
 * the `async-mutex` package (the usual choice for an async lock in Node).
 *
 * The dmabuf side (`resv-lock.dmabuf.ts`, `dmabuf: ResvLockSide`) locks and unlocks a reservation
 * object (its wound/wait mutex) with no contention, `iterations` times per batch, timed by
 * {@link nsPerOp}.
 */

import { Mutex } from 'async-mutex';
import {
  type Bench,
  compare,
  loadDmabufSides,
  NS_PER_OP_METRICS,
  type NsPerOpRaw,
  nsPerOp,
  type RunOptions,
  type SampleOptions,
  type Side,
} from './_harness.js';

export type ResvLockSide = Side<SampleOptions, NsPerOpRaw>;

/** `iterations` uncontended acquire/release pairs of one `async-mutex` Mutex. */
export function asyncMutexBatch(mutex: Mutex): (iterations: number) => Promise<void> {
  return async (iterations) => {
    for (let i = 0; i < iterations; i++) {
      const release = await mutex.acquire();
      release();
    }
  };
}

export const resvLockBaselines: readonly ResvLockSide[] = [
  { name: 'async-mutex', run: (o) => nsPerOp(o, asyncMutexBatch(new Mutex())) },
];

/** 100k pairs per batch (10k when quick), 3 warm-up batches, 9 timed. */
export function resvLockOptions(run: RunOptions): SampleOptions {
  return { iterations: run.scale(100_000, 1000), warmup: 3, samples: 9 };
}

export const resvLock: Bench = {
  name: 'resv-lock',
  description: 'one thread: uncontended async lock + unlock (ns/pair)',
  async run(run) {
    return compare({
      bench: 'resv-lock',
      options: resvLockOptions(run),
      metrics: NS_PER_OP_METRICS,
      baselines: resvLockBaselines,
      dmabuf: await loadDmabufSides<SampleOptions, NsPerOpRaw>('resv-lock'),
      run,
    });
  },
};
