/**
 * dmabuf — the Linux DMA-BUF framework for JavaScript runtimes.
 *
 * Buffers shared without copies between worker threads, with dma-fences, reservation objects,
 * sync files and heaps, following the kernel's contracts. See README.md and docs/.
 *
 * @module dmabuf
 */

export { DmaBufAttachment, DmaBufMapping } from './buf/attachment.js';
export { isDmaBufDebug, setDmaBufDebug } from './buf/debug.js';
export type { DmaBufDescriptor } from './buf/dma-buf.js';
export { DmaBuf, DmaBufMap } from './buf/dma-buf.js';
export type { FdEntry, FileLike } from './buf/handles.js';
export { FD_BASE, fdClose, fdInstall, fdLookup } from './buf/handles.js';
export type {
  DmaBufAttachOps,
  DmaBufDevice,
  DmaBufExportInfo,
  DmaBufOpResult,
  DmaBufOps,
  DmaBufOwner,
  DmaBufSegment,
  DmaBufSgTable,
  DmaBufSharedExporter,
  DmaBufVma,
  SharedExporterBuffer,
  SharedExporterReviver,
} from './buf/ops.js';
export { registerSharedExporter } from './buf/ops.js';
export * from './buf/uapi.js';
export { nowNs } from './clock.js';
export {
  beginSignalling,
  endSignalling,
  inSignallingSection,
  isDebug,
  lockdepTask,
  setDebug,
} from './debug/lockdep.js';
export type { WaitPolicy } from './domain/_wait.js';
export { getWaitPolicy, setWaitPolicy } from './domain/_wait.js';
export type { DomainDescriptor, ThreadExitHook } from './domain/domain.js';
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
export type { ArrayDescriptor } from './fence/fence-array.js';
export { DmaFenceArray } from './fence/fence-array.js';
export type { ChainDescriptor, ChainLinkDescriptor } from './fence/fence-chain.js';
export { DmaFenceChain } from './fence/fence-chain.js';
export {
  dedupArray,
  unwrapFences,
  unwrapMerge,
  unwrapMergeContext,
} from './fence/fence-unwrap.js';
export type { DmaHeapExportInfo, DmaHeapOps } from './heap/dma-heap.js';
export { DmaHeap, NUM_HEAP_MINORS } from './heap/dma-heap.js';
export type { SystemHeapBuffer, SystemHeapConfig } from './heap/system.js';
export {
  configureSystemHeap,
  SYSTEM_HEAP_KIND,
  systemHeap,
  systemHeapBufOps,
} from './heap/system.js';
export type { WasmHeapBuffer, WasmHeapDescriptor, WasmHeapOptions } from './heap/wasm.js';
export {
  createWasmHeap,
  openWasmHeap,
  WASM_HEAP_KIND,
  WASM_PAGE_SIZE,
  wasmHeapBuffer,
  wasmHeapBufOps,
  wasmHeapDescriptor,
} from './heap/wasm.js';
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
export type {
  SyncFenceInfo,
  SyncFileDescriptor,
  SyncFileInfo,
  SyncFileInfoRequest,
} from './sync-file.js';
export {
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MAGIC,
  SYNC_IOC_MERGE,
  SYNC_IOC_SET_DEADLINE,
  SyncFile,
} from './sync-file.js';
export { CHANNELS } from './trace.js';
