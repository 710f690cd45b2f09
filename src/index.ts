/**
 * dmabuf — the Linux DMA-BUF framework for JavaScript runtimes.
 *
 * Buffers shared without copies between worker threads, with dma-fences, reservation objects,
 * sync files and heaps, following the kernel's contracts. See README.md and docs/.
 */

export { nowNs } from './clock.js';
export type { WaitPolicy } from './domain/_wait.js';
export { getWaitPolicy, setWaitPolicy } from './domain/_wait.js';
export type { DomainDescriptor } from './domain/domain.js';
export { Domain, MAX_THREADS, onThreadExit } from './domain/domain.js';
export type { ErrnoCode, SerializedError } from './errors.js';
export { codeOf, DmaBufError, deserializeError, ERRNO, serializeError } from './errors.js';
export type { DmaFenceFunc, DmaFenceOps, FenceDescriptor } from './fence/fence.js';
export {
  DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
  DMA_FENCE_FLAG_SEQNO64_BIT,
  DMA_FENCE_FLAG_SIGNALED_BIT,
  DMA_FENCE_FLAG_TIMESTAMP_BIT,
  DMA_FENCE_FLAG_USER_BITS,
  DmaFence,
  DmaFenceCb,
  seqnoIsLater,
} from './fence/fence.js';
export type { DmaResvDescriptor, DmaResvEntry } from './resv/resv.js';
export { DmaResv, DmaResvIter, DmaResvUsage } from './resv/resv.js';
export type {
  WwLockInterruptibleResult,
  WwLockResult,
  WwMutexDescriptor,
} from './resv/ww-mutex.js';
export {
  EALREADY,
  EDEADLK,
  EINTR,
  reservationWwClass,
  WwAcquireCtx,
  WwClass,
  WwMutex,
} from './resv/ww-mutex.js';
export { CHANNELS } from './trace.js';
