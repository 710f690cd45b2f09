/**
 * `fence-signal`: the one-thread cost of "make a completion object, attach a callback, complete
 * it", in nanoseconds per operation.
 *
 * Baselines:
 * - `promise-await`: `new Promise` (capturing `resolve`), `resolve()`, `await` it.
 * - `promise-then`: `new Promise`, `.then(cb)`, `resolve()`; the batch ends when every callback
 *   has run (they run as microtasks, so the batch drains the queue once at its end).
 *
 * The dmabuf side (`fence-signal.dmabuf.ts`, `dmabuf: FenceSignalSide`) creates a fence, adds a
 * callback and signals it, `iterations` times per batch, and returns ns/op per batch (use
 * {@link nsPerOp} from the harness so that the timing is identical).
 */

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

export type FenceSignalSide = Side<SampleOptions, NsPerOpRaw>;

/** Create, resolve, await: `iterations` times. */
export async function promiseAwaitBatch(iterations: number): Promise<void> {
  for (let i = 0; i < iterations; i++) {
    let resolve!: () => void;
    const p = new Promise<void>((r) => {
      resolve = r;
    });
    resolve();
    await p;
  }
}

let callbacks = 0;
function onResolved(): void {
  callbacks++;
}

/** Create, `.then(cb)`, resolve: `iterations` times, then wait until every callback ran. */
export async function promiseThenBatch(iterations: number): Promise<void> {
  const before = callbacks;
  for (let i = 0; i < iterations; i++) {
    let resolve!: () => void;
    const p = new Promise<void>((r) => {
      resolve = r;
    });
    p.then(onResolved);
    resolve();
  }
  await new Promise<void>((r) => setImmediate(r)); // after the microtask queue drained
  if (callbacks - before !== iterations) throw new Error('promise-then: callbacks lost');
}

export const fenceSignalBaselines: readonly FenceSignalSide[] = [
  { name: 'promise-await', run: (o) => nsPerOp(o, promiseAwaitBatch) },
  { name: 'promise-then', run: (o) => nsPerOp(o, promiseThenBatch) },
];

/** 200k operations per batch (20k when quick), 3 warm-up batches, 9 timed. */
export function fenceSignalOptions(run: RunOptions): SampleOptions {
  return { iterations: run.scale(200_000, 1000), warmup: 3, samples: 9 };
}

export const fenceSignal: Bench = {
  name: 'fence-signal',
  description: 'one thread: create a completion, attach a callback, complete it (ns/op)',
  async run(run) {
    return compare({
      bench: 'fence-signal',
      options: fenceSignalOptions(run),
      metrics: NS_PER_OP_METRICS,
      baselines: fenceSignalBaselines,
      dmabuf: await loadDmabufSides<SampleOptions, NsPerOpRaw>('fence-signal'),
      run,
    });
  },
};
