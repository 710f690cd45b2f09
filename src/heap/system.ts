/**
 * The system heap: buffers in SharedArrayBuffers, zeroed, page-granular, registered as 'system' in
 * every thread that loads dmabuf — the kernel's `system` heap.
 *
 * A buffer is one SharedArrayBuffer, or several when it is larger than the chunk size
 * ({@link configureSystemHeap}; 1 GiB by default, a multiple of PAGE_SIZE), so buffers larger than
 * one SharedArrayBuffer can hold are possible. Every mapping it hands out — device mappings, mmap,
 * vmap — is made of page-aligned segments over those chunks: zero-copy in every thread.
 *
 * Its ops run in any thread: the buffer's descriptor carries the chunks (a *shared exporter*,
 * kind {@link SYSTEM_HEAP_KIND}), and a thread that installs it rebuilds the ops around them. The
 * ops keep no thread-local state; per-attachment bookkeeping (how many mappings are live) is in
 * the attachment's shared exporter words. Memory is CPU-coherent, so begin/end CPU access have
 * nothing to flush; the core still waits for the implicit fences.
 */

import { DmaBuf } from '../buf/dma-buf.js';
import { type DmaBufOps, type DmaBufSegment, registerSharedExporter } from '../buf/ops.js';
import { PAGE_SIZE } from '../buf/uapi.js';
import { checkUint, describe, fail } from '../errors.js';
import { memoryHeapOps } from './_memory-ops.js';
import { DmaHeap } from './dma-heap.js';

/** The shared-exporter kind of system heap buffers. */
export const SYSTEM_HEAP_KIND = 'dmabuf:system-heap';

/** Tunables of the system heap (per thread). */
export interface SystemHeapConfig {
  /** Largest SharedArrayBuffer one buffer is made of (a PAGE_SIZE multiple). Default 1 GiB. */
  chunkSize: number;
  /** Largest buffer the heap allocates (ENOMEM beyond). Default 2^40 bytes. */
  maxBytes: number;
}

const config: SystemHeapConfig = { chunkSize: 1 << 30, maxBytes: 2 ** 40 };

/** Changes the system heap's tunables in this thread; returns the previous ones. */
export function configureSystemHeap(c: Partial<SystemHeapConfig>): SystemHeapConfig {
  if (c === null || typeof c !== 'object')
    fail('EINVAL', `configureSystemHeap takes an object, got ${describe(c)}`);
  const old = { ...config };
  // Validate everything before changing anything.
  if (c.chunkSize !== undefined) {
    checkUint(c.chunkSize, 'chunkSize');
    if (c.chunkSize === 0 || c.chunkSize % PAGE_SIZE !== 0)
      fail('EINVAL', 'chunkSize must be a positive multiple of PAGE_SIZE');
  }
  if (c.maxBytes !== undefined) checkUint(c.maxBytes, 'maxBytes');
  if (c.chunkSize !== undefined) config.chunkSize = c.chunkSize;
  if (c.maxBytes !== undefined) config.maxBytes = c.maxBytes;
  return old;
}

/** A system heap buffer's memory: what its descriptor carries. */
export interface SystemHeapBuffer {
  readonly chunks: readonly SharedArrayBuffer[];
  readonly size: number;
  readonly chunkSize: number;
}

/**
 * Checks descriptor data against the buffer's record: chunks that cover exactly `size` bytes (every
 * chunk `chunkSize` long but the last, which holds the rest), the size the record holds. EINVAL
 * otherwise: segments are computed from this data, so a chunk list that does not cover the buffer
 * would map short or loop. Each field is read once, into a fresh frozen copy, and only the copy is
 * checked and kept. It cannot tell one SharedArrayBuffer from another of the same length: chunks
 * of another buffer of the same shape pass (that buffer is then mapped; no shared state is at
 * stake, the chunks are garbage-collected memory).
 */
function checkBuffer(x: unknown, size: number): SystemHeapBuffer {
  if (x === null || typeof x !== 'object') fail('EINVAL', 'not a system heap buffer');
  const { chunks: given, size: claimed, chunkSize } = x as SystemHeapBuffer;
  const chunks = Array.isArray(given) ? [...given] : [];
  if (
    claimed !== size ||
    !Number.isSafeInteger(chunkSize) ||
    chunkSize <= 0 ||
    chunks.length !== Math.ceil(size / chunkSize) ||
    !chunks.every(
      (c, i) =>
        c instanceof SharedArrayBuffer &&
        c.byteLength === Math.min(chunkSize, size - i * chunkSize),
    )
  )
    fail('EINVAL', 'not a system heap buffer of this size');
  return Object.freeze({ chunks: Object.freeze(chunks), size, chunkSize });
}

/** Fresh segments covering bytes [from, to) of the buffer. */
function segments(b: SystemHeapBuffer, from: number, to: number): DmaBufSegment[] {
  const out: DmaBufSegment[] = [];
  let pos = from;
  while (pos < to) {
    const i = Math.floor(pos / b.chunkSize);
    const off = pos - i * b.chunkSize;
    const chunk = b.chunks[i]!;
    const n = Math.min(chunk.byteLength - off, to - pos);
    out.push({ memory: chunk, offset: off, length: n });
    pos += n;
  }
  return out;
}

function bufOf(buf: DmaBuf): SystemHeapBuffer {
  return buf.priv as SystemHeapBuffer;
}

/** The system heap's buffer ops (stateless: usable from any thread). */
export const systemHeapBufOps: DmaBufOps = memoryHeapOps(
  (buf, from, to) => segments(bufOf(buf), from, to),
  () => {
    // The chunks are garbage: they go when the last view of them does.
  },
);

registerSharedExporter(SYSTEM_HEAP_KIND, (data, buf) => ({
  ops: systemHeapBufOps,
  priv: checkBuffer(data, buf.size),
}));

/** Allocates zeroed chunks for `len` bytes; ENOMEM when memory runs out. */
function allocChunks(len: number): SharedArrayBuffer[] {
  const chunks: SharedArrayBuffer[] = [];
  try {
    for (let pos = 0; pos < len; pos += config.chunkSize) {
      chunks.push(new SharedArrayBuffer(Math.min(config.chunkSize, len - pos)));
    }
  } catch (e) {
    fail('ENOMEM', `system heap: out of memory for ${len} bytes (${String(e)})`);
  }
  return chunks;
}

/** The heap's allocate op: zeroed memory (a new SharedArrayBuffer is zeroed), exported as 'system'. */
export function systemHeapAllocate(
  _heap: DmaHeap,
  len: number,
  fdFlags: number,
  _heapFlags: number,
): DmaBuf {
  if (len > config.maxBytes) fail('ENOMEM', `system heap: ${len} bytes is above the limit`);
  const chunks = allocChunks(len);
  const priv: SystemHeapBuffer = Object.freeze({
    chunks: Object.freeze(chunks),
    size: len,
    chunkSize: config.chunkSize,
  });
  return DmaBuf.export({
    ops: systemHeapBufOps,
    size: len,
    flags: fdFlags,
    priv,
    expName: 'system',
    shared: { kind: SYSTEM_HEAP_KIND, data: { chunks, size: len, chunkSize: config.chunkSize } },
  });
}

/** The system heap of this thread. */
export const systemHeap: DmaHeap =
  DmaHeap.find('system') ?? DmaHeap.add({ name: 'system', ops: { allocate: systemHeapAllocate } });
