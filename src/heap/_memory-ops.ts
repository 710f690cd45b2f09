/**
 * Buffer ops for heaps whose buffers are plain, CPU-coherent shared memory (the system heap, the
 * WebAssembly heap). Internal. Every mapping — device mappings, mmap, vmap — is the segments the
 * heap names for a byte range of the buffer; nothing is flushed around CPU access; the ops keep no
 * thread-local state, so they run in any thread (shared exporters). Per attachment, the first
 * exporter word counts its live mappings.
 */

import type { DmaBufAttachment } from '../buf/attachment.js';
import type { DmaBuf } from '../buf/dma-buf.js';
import type { DmaBufOps, DmaBufSegment, DmaBufVma } from '../buf/ops.js';
import { PAGE_SIZE } from '../buf/uapi.js';

/** Live mappings of an attachment, in its first exporter word. */
const W_MAPPED = 0;

/**
 * The ops of a memory heap: `span(buf, from, to)` gives fresh segments covering bytes
 * [from, to) of the buffer; `release` gives its memory back.
 */
export function memoryHeapOps(
  span: (buf: DmaBuf, from: number, to: number) => DmaBufSegment[],
  release: (buf: DmaBuf) => void,
): DmaBufOps {
  return {
    attach(_buf: DmaBuf, att: DmaBufAttachment) {
      Atomics.store(att.exporterWords, W_MAPPED, 0);
    },
    detach() {},
    mapDmaBuf(att: DmaBufAttachment) {
      Atomics.add(att.exporterWords, W_MAPPED, 1);
      return span(att.dmabuf, 0, att.dmabuf.size);
    },
    unmapDmaBuf(att: DmaBufAttachment) {
      Atomics.sub(att.exporterWords, W_MAPPED, 1);
    },
    release,
    beginCpuAccess() {},
    endCpuAccess() {},
    mmap(buf: DmaBuf, vma: DmaBufVma) {
      const from = vma.pgoff * PAGE_SIZE;
      return span(buf, from, Math.min(buf.size, from + vma.pages * PAGE_SIZE));
    },
    vmap(buf: DmaBuf) {
      return span(buf, 0, buf.size);
    },
    vunmap() {},
  };
}
