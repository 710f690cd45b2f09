// Sharing a buffer with a worker under implicit sync (the README's example).
import { DMA_FROM_DEVICE, DmaHeap, Domain } from '../src/index.js';

const buf = DmaHeap.find('system')!.allocateBuffer(1 << 20); // 1 MiB, zeroed, shared memory
const worker = Domain.current().spawn(new URL('./share-buffer-worker.js', import.meta.url));
worker.postMessage(buf.share()); // a handle, not the bytes
await new Promise((r) => worker.once('message', r)); // the worker has added its WRITE fence

await buf.beginCpuAccess(DMA_FROM_DEVICE); // waits for the worker's fence: implicit sync
const bytes = await buf.mmap(); // zero-copy view of the same memory
console.log(`main reads ${bytes[0]}, ${bytes[bytes.length - 1]} (written by the worker)`);
await buf.endCpuAccess(DMA_FROM_DEVICE);
buf.put();
await worker.terminate();
