// Worker side of examples/share-buffer.ts: writes the buffer, fenced.
import { parentPort } from 'node:worker_threads';
import { DMA_BIDIRECTIONAL, DmaBuf, DmaFence, DmaResvUsage } from '../src/index.js';

parentPort!.once('message', async (desc) => {
  const buf = DmaBuf.fromShared(desc);
  const ops = { getDriverName: () => 'worker', getTimelineName: () => 'writes' };
  const fence = new DmaFence(ops, DmaFence.contextAlloc(), 1);
  await buf.beginCpuAccess(DMA_BIDIRECTIONAL); // a writer waits for every earlier user
  await buf.resv.lock(null);
  buf.resv.reserveFences(1);
  buf.resv.addFence(fence, DmaResvUsage.WRITE); // readers will wait for this
  buf.resv.unlock();
  parentPort!.postMessage('fenced');
  const bytes = await buf.mmap(0, buf.size, { write: true });
  await new Promise((r) => setTimeout(r, 50)); // "device work"
  bytes.fill(42);
  await buf.endCpuAccess(DMA_BIDIRECTIONAL);
  fence.signal(); // main's beginCpuAccess returns now
  buf.put();
});
