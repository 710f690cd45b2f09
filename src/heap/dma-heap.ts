/**
 * DmaHeap: named allocators of buffers — the kernel's dma-heap framework (`/dev/dma_heap/<name>`).
 *
 * A heap driver registers with {@link DmaHeap.add} (a unique, non-empty name; at most
 * {@link NUM_HEAP_MINORS} heaps) and supplies one op, `allocate`, that exports a buffer through
 * the core. Users look heaps up by name and allocate through the uAPI's validation:
 * {@link DmaHeap#allocate} returns a handle (an fd of this thread, as DMA_HEAP_IOCTL_ALLOC does),
 * {@link DmaHeap#allocateBuffer} the DmaBuf reference itself, and {@link DmaHeap#ioctl} takes the
 * ioctl's struct bytes, compat sizes included.
 *
 * The registry is per thread, as heap drivers are code: a heap's ops are JS functions of the thread
 * that added it. The system heap registers itself as 'system' in every thread that loads dmabuf.
 * Buffers, once allocated, are shared across threads like any other.
 */

import { DmaBuf } from '../buf/dma-buf.js';
import {
  DMA_HEAP_ALLOCATION_DATA_SIZE,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_VALID_FD_FLAGS,
  IOC_NR,
  IOC_SIZE,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
} from '../buf/uapi.js';
import { mightAlloc } from '../debug/lockdep.js';
import { checkFlags, describe, fail } from '../errors.js';

/** At most this many heaps (the kernel's minor numbers). */
export const NUM_HEAP_MINORS = 128;

/** A heap driver's operations (`struct dma_heap_ops`). */
export interface DmaHeapOps {
  /**
   * Exports a buffer of `len` bytes (already page-aligned and validated) with file flags
   * `fdFlags`. Throws (ENOMEM, …) on failure. Synchronous.
   */
  allocate(heap: DmaHeap, len: number, fdFlags: number, heapFlags: number): DmaBuf;
}

/** `struct dma_heap_export_info`. */
export interface DmaHeapExportInfo {
  name: string;
  ops: DmaHeapOps;
  priv?: unknown;
}

const heaps = new Map<string, DmaHeap>();

/** Validates the allocation arguments as DMA_HEAP_IOCTL_ALLOC does; returns the page-aligned len. */
function checkAllocation(len: unknown, fdFlags: unknown, heapFlags: unknown): number {
  checkFlags(fdFlags, DMA_HEAP_VALID_FD_FLAGS, 'fd_flags');
  if (heapFlags !== 0 && heapFlags !== 0n) {
    if (typeof heapFlags !== 'number' && typeof heapFlags !== 'bigint')
      fail('EINVAL', `heap_flags must be a number, got ${describe(heapFlags)}`);
    fail('EINVAL', 'heap_flags must be 0 (no heap flags are defined)');
  }
  let n: number;
  if (typeof len === 'bigint') {
    if (len < 0n || len > BigInt(Number.MAX_SAFE_INTEGER))
      fail('EINVAL', `len out of range: ${len}`);
    n = Number(len);
  } else if (typeof len === 'number' && Number.isSafeInteger(len) && len >= 0) {
    n = len;
  } else {
    return fail('EINVAL', `len must be a non-negative integer, got ${describe(len)}`);
  }
  const aligned = Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
  if (aligned === 0) fail('EINVAL', 'len is 0');
  if (!Number.isSafeInteger(aligned)) fail('EINVAL', 'len overflows when page-aligned');
  return aligned;
}

export class DmaHeap {
  readonly name: string;
  readonly ops: DmaHeapOps;
  /** The driver's private data (`dma_heap_get_drvdata`). */
  readonly priv: unknown;
  /** The heap's minor number (its index in the registry). */
  readonly minor: number;

  private constructor(info: DmaHeapExportInfo, minor: number) {
    this.name = info.name;
    this.ops = info.ops;
    this.priv = info.priv;
    this.minor = minor;
  }

  /**
   * `dma_heap_add`: registers a heap in this thread. EINVAL for a missing or empty name, missing
   * ops or allocate, or a name already registered; EBUSY when {@link NUM_HEAP_MINORS} heaps exist.
   */
  static add(info: DmaHeapExportInfo): DmaHeap {
    if (info === null || typeof info !== 'object') fail('EINVAL', 'heap info must be an object');
    if (typeof info.name !== 'string' || info.name === '')
      fail('EINVAL', 'cannot add a heap without a name');
    if (
      info.ops === null ||
      typeof info.ops !== 'object' ||
      typeof (info.ops as { allocate?: unknown }).allocate !== 'function'
    )
      fail('EINVAL', 'cannot add a heap without an allocate op');
    if (heaps.size >= NUM_HEAP_MINORS) fail('EBUSY', 'no free heap minor number');
    if (heaps.has(info.name)) fail('EINVAL', `a heap named ${info.name} is already registered`);
    let minor = 0;
    const used = new Set([...heaps.values()].map((h) => h.minor));
    while (used.has(minor)) minor++;
    const heap = new DmaHeap(info, minor);
    heaps.set(info.name, heap);
    return heap;
  }

  /** The names of the registered heaps (`ls /dev/dma_heap`), in registration order. */
  static list(): string[] {
    return [...heaps.keys()];
  }

  /** The heap named `name`, or null. */
  static find(name: string): DmaHeap | null {
    return heaps.get(name) ?? null;
  }

  /**
   * Allocates a buffer and returns a new handle (fd) in this thread, as DMA_HEAP_IOCTL_ALLOC does;
   * {@link DmaBuf.get} turns it into a reference. `len` is rounded up to a page (0, negative, NaN,
   * fractional or beyond 2^53: EINVAL); `fdFlags` within O_CLOEXEC | O_ACCMODE (the access mode is
   * the buffer's); `heapFlags` must be 0. Heap errors (ENOMEM) propagate.
   */
  allocate(
    len: number | bigint,
    fdFlags: number = O_RDWR | O_CLOEXEC,
    heapFlags: number | bigint = 0,
  ): number {
    const buf = this.allocateBuffer(len, fdFlags, heapFlags);
    try {
      // fdFlags may be a bigint (checked by allocateBuffer); the fd takes the number.
      return buf.fd(Number(fdFlags) & (O_CLOEXEC | O_ACCMODE));
    } finally {
      buf.put();
    }
  }

  /**
   * Like {@link allocate}, returning the DmaBuf reference instead of a handle (the kernel's
   * in-kernel allocation path). Put it when done.
   */
  allocateBuffer(
    len: number | bigint,
    fdFlags: number = O_RDWR | O_CLOEXEC,
    heapFlags: number | bigint = 0,
  ): DmaBuf {
    const aligned = checkAllocation(len, fdFlags, heapFlags);
    mightAlloc('dma_heap_buffer_alloc');
    const buf = this.ops.allocate(this, aligned, Number(fdFlags), 0);
    if (!(buf instanceof DmaBuf)) fail('EIO', `heap ${this.name} returned no buffer`);
    return buf;
  }

  /**
   * The heap's ioctl on a struct in memory: `cmd` DMA_HEAP_IOCTL_ALLOC (any struct size: the
   * kernel copies `_IOC_SIZE(cmd)` bytes in, zero-fills up to its own 24, and copies the same size
   * back), `arg` the user struct `{ u64 len; u32 fd; u32 fd_flags; u64 heap_flags }`
   * (little-endian). An unknown command number is EINVAL; a struct smaller than the size the
   * command claims is EFAULT; `fd` must be 0 on input. Returns 0 and writes the new fd.
   */
  ioctl(cmd: number, arg: ArrayBufferView): number {
    if (typeof cmd !== 'number' || !Number.isInteger(cmd)) fail('EINVAL', 'bad ioctl number');
    const nr = IOC_NR(cmd);
    if (nr >= 1) fail('EINVAL', `unknown dma-heap ioctl nr ${nr}`);
    const kcmd = DMA_HEAP_IOCTL_ALLOC;
    const IOC_IN = 1 << 30;
    const IOC_OUT = 2 << 30;
    let outSize = IOC_SIZE(cmd);
    let inSize = outSize;
    if ((cmd & kcmd & IOC_IN) === 0) inSize = 0;
    if ((cmd & kcmd & IOC_OUT) === 0) outSize = 0;
    if (!ArrayBuffer.isView(arg))
      fail('EFAULT', 'ioctl argument must be a typed array or DataView');
    const user = new Uint8Array(arg.buffer, arg.byteOffset, arg.byteLength);
    if (user.length < Math.max(inSize, outSize)) fail('EFAULT', 'ioctl argument is too small');
    const ksize = Math.max(inSize, outSize, DMA_HEAP_ALLOCATION_DATA_SIZE);
    const kdata = new Uint8Array(ksize);
    kdata.set(user.subarray(0, inSize));
    const v = new DataView(kdata.buffer);
    const len = v.getBigUint64(0, true);
    const fdIn = v.getUint32(8, true);
    const fdFlags = v.getUint32(12, true);
    const heapFlags = v.getBigUint64(16, true);
    if (fdIn !== 0) fail('EINVAL', 'fd must be 0 on input');
    if ((fdFlags & ~DMA_HEAP_VALID_FD_FLAGS) !== 0) fail('EINVAL', 'unknown fd_flags bits');
    if (heapFlags !== 0n) fail('EINVAL', 'heap_flags must be 0');
    if (len > BigInt(Number.MAX_SAFE_INTEGER)) fail('EINVAL', 'len out of range');
    const fd = this.allocate(Number(len), fdFlags, 0);
    v.setUint32(8, fd, true);
    user.set(kdata.subarray(0, outSize));
    return 0;
  }
}
