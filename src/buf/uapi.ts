/**
 * The DMA-BUF and dma-heap uAPI constants, under the kernel's names (`include/uapi/linux/dma-buf.h`,
 * `include/uapi/linux/dma-heap.h`, `<poll.h>`, `<fcntl.h>`, `<linux/dma-direction.h>`), plus the
 * page size every size and offset is measured in.
 *
 * Numbers are the kernel's, computed from the `_IOC` encoding
 * (`dir << 30 | size << 16 | type << 8 | nr`) and written out so that a reader can compare them with
 * `strace` output. They are plain `number`s (ioctl numbers above 2^31 included).
 */

import { checkUint, describe, fail } from '../errors.js';

/** The page: the unit of mmap offsets, mapping segments and heap allocations. */
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

/** Rounds `n` up to a whole number of pages (`PAGE_ALIGN`). */
export function pageAlign(n: number): number {
  return Math.ceil(checkUint(n, 'pageAlign size') / PAGE_SIZE) * PAGE_SIZE;
}

// ---- struct dma_buf_sync flags --------------------------------------------------------------------

export const DMA_BUF_SYNC_READ = 1 << 0;
export const DMA_BUF_SYNC_WRITE = 2 << 0;
export const DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
export const DMA_BUF_SYNC_START = 0 << 2;
export const DMA_BUF_SYNC_END = 1 << 2;
export const DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END;

/** Size of a buffer's name including the terminating NUL: names hold at most 31 bytes. */
export const DMA_BUF_NAME_LEN = 32;

/** The dma-buf pseudo-filesystem's magic (`uapi/linux/magic.h`): 'DMAB'. */
export const DMA_BUF_MAGIC = 0x444d4142;

/** The ioctl type of dma-buf fds ('b'). */
export const DMA_BUF_BASE = 0x62;

/** `_IOW('b', 0, struct dma_buf_sync)`. */
export const DMA_BUF_IOCTL_SYNC = 0x40086200;
/** `_IOW('b', 1, u32)`: SET_NAME as 32-bit userspace encodes it. */
export const DMA_BUF_SET_NAME_A = 0x40046201;
/** `_IOW('b', 1, u64)`: SET_NAME as 64-bit userspace encodes it. */
export const DMA_BUF_SET_NAME_B = 0x40086201;
/** `_IOW('b', 1, const char *)` on a 64-bit system. */
export const DMA_BUF_SET_NAME = DMA_BUF_SET_NAME_B;
/** `_IOWR('b', 2, struct dma_buf_export_sync_file)`. */
export const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = 0xc0086202;
/** `_IOW('b', 3, struct dma_buf_import_sync_file)`. */
export const DMA_BUF_IOCTL_IMPORT_SYNC_FILE = 0x40086203;

// ---- poll events ------------------------------------------------------------------------------------

export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;

// ---- enum dma_data_direction ------------------------------------------------------------------------

export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;

/** A DMA direction (DMA_NONE is not a valid mapping direction). */
export type DmaDataDirection =
  | typeof DMA_BIDIRECTIONAL
  | typeof DMA_TO_DEVICE
  | typeof DMA_FROM_DEVICE;

// ---- open flags (Linux values) ----------------------------------------------------------------------

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

// ---- lseek whence -----------------------------------------------------------------------------------

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

// ---- dma-heap ---------------------------------------------------------------------------------------

/** The ioctl type of dma-heap fds ('H'). */
export const DMA_HEAP_IOC_MAGIC = 0x48;
/** `_IOWR('H', 0, struct dma_heap_allocation_data)` with the 24-byte struct. */
export const DMA_HEAP_IOCTL_ALLOC = 0xc0184800;
export const DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | O_ACCMODE;
export const DMA_HEAP_VALID_HEAP_FLAGS = 0;
/** Size of `struct dma_heap_allocation_data` { u64 len; u32 fd; u32 fd_flags; u64 heap_flags }. */
export const DMA_HEAP_ALLOCATION_DATA_SIZE = 24;

/** `_IOC(dir, type, nr, size)`. */
export function IOC(dir: number, type: number, nr: number, size: number): number {
  field(dir, 3, 'dir');
  field(type, 0xff, 'type');
  field(nr, 0xff, 'nr');
  field(size, 0x3fff, 'size');
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export function IOC_NR(cmd: number): number {
  return field(cmd, 0xffff_ffff, 'ioctl number') & 0xff;
}
export function IOC_TYPE(cmd: number): number {
  return (field(cmd, 0xffff_ffff, 'ioctl number') >>> 8) & 0xff;
}
export function IOC_SIZE(cmd: number): number {
  return (field(cmd, 0xffff_ffff, 'ioctl number') >>> 16) & 0x3fff;
}
export function IOC_DIR(cmd: number): number {
  return field(cmd, 0xffff_ffff, 'ioctl number') >>> 30;
}

/** An integer in [0, max], or EINVAL (the bit fields of an ioctl number). */
function field(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    fail('EINVAL', `${what} must be an integer in [0, ${max}], got ${describe(v)}`);
  return v;
}
