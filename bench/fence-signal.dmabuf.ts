/**
 * dmabuf side of `fence-signal`: create a fence, add a callback, signal it (which runs the
 * callback synchronously), `iterations` times per batch.
 */

import { DmaFence, type DmaFenceOps } from '../src/index.js';
import { nsPerOp } from './_harness.js';
import type { FenceSignalSide } from './fence-signal.js';

const ops: DmaFenceOps = { getDriverName: () => 'bench', getTimelineName: () => 'signal' };
let ran = 0;
const onSignaled = (): void => {
  ran++;
};

async function fenceBatch(iterations: number): Promise<void> {
  const ctx = DmaFence.contextAlloc();
  const before = ran;
  for (let i = 0; i < iterations; i++) {
    const f = new DmaFence(ops, ctx, i);
    f.addCallback(onSignaled);
    f.signal();
  }
  if (ran - before !== iterations) throw new Error('fence-signal: callbacks lost');
}

export const dmabuf: FenceSignalSide = { name: 'dmabuf-fence', run: (o) => nsPerOp(o, fenceBatch) };
