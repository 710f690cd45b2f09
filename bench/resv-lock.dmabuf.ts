/**
 * dmabuf side of `resv-lock`: uncontended `await resv.lock(null)` + `unlock()` of a reservation
 * object (whose lock lives in shared memory), and the same under a ww acquire context.
 */

import { DmaResv, WwAcquireCtx } from '../src/index.js';
import { nsPerOp } from './_harness.js';
import type { ResvLockSide } from './resv-lock.js';

function plainBatch(resv: DmaResv): (iterations: number) => Promise<void> {
  return async (iterations) => {
    for (let i = 0; i < iterations; i++) {
      await resv.lock(null);
      resv.unlock();
    }
  };
}

function ctxBatch(resv: DmaResv): (iterations: number) => Promise<void> {
  return async (iterations) => {
    const ctx = new WwAcquireCtx();
    for (let i = 0; i < iterations; i++) {
      await resv.lock(ctx);
      resv.unlock();
    }
    ctx.fini();
  };
}

async function measure(
  make: (r: DmaResv) => (n: number) => Promise<void>,
  o: Parameters<typeof nsPerOp>[0],
) {
  const resv = new DmaResv();
  try {
    return await nsPerOp(o, make(resv));
  } finally {
    resv.fini();
  }
}

export const dmabuf: ResvLockSide[] = [
  { name: 'lock(null)', run: (o) => measure(plainBatch, o) },
  { name: 'lock(ctx)', run: (o) => measure(ctxBatch, o) },
];
