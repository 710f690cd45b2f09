/**
 * The contract between the buffer core and the drivers on either side of it: the exporter's
 * {@link DmaBufOps} (`struct dma_buf_ops`), the importer's {@link DmaBufAttachOps}
 * (`struct dma_buf_attach_ops`), the export info, and the shapes that cross between them.
 *
 * ## Exporter ops
 * `mapDmaBuf`, `unmapDmaBuf` and `release` are required; `pin` and `unpin` come together or not at
 * all (having them makes the exporter *dynamic*: its buffer may move while not pinned). Every other
 * op is optional and the core supplies the default (nothing to do, or EINVAL for `mmap`/`vmap`).
 * An op reports an error by throwing a {@link DmaBufError} (or, kernel style, by returning a
 * negative errno); it may return a Promise.
 *
 * Lock state when the core calls an op (the kernel's locking convention):
 * - called with the reservation lock **not** held (the op may take it): `attach`, `detach`,
 *   `release`, `beginCpuAccess`, `endCpuAccess`, `mmap`;
 * - called with the reservation lock **held** (the op must not take it): `pin`, `unpin`,
 *   `mapDmaBuf`, `unmapDmaBuf`, `vmap`, `vunmap`.
 *
 * Where ops run: in the exporter's home thread — the thread that exported the buffer — unless the
 * export info names a *shared exporter kind* ({@link DmaBufExportInfo.shared}), in which case any
 * thread that received the buffer's descriptor rebuilds the ops with the kind's reviver
 * ({@link registerSharedExporter}) and calls them itself. Calls made in other threads are forwarded
 * to the home thread by message (so the results — segments — must be structured-cloneable).
 */

import { codeOf, DmaBufError, describe, fail } from '../errors.js';
import type { DmaResv } from '../resv/resv.js';
import type { DmaBufAttachment } from './attachment.js';
import type { DmaBuf } from './dma-buf.js';
import type { DmaDataDirection } from './uapi.js';

/**
 * One piece of a mapping in a device's address space: `length` bytes at `offset` in `memory`.
 * The kernel's scatterlist entry. Offsets and lengths are page multiples (PAGE_SIZE), except that
 * the last segment of a buffer whose size is not a page multiple may end early.
 */
export interface DmaBufSegment {
  readonly memory: SharedArrayBuffer;
  readonly offset: number;
  readonly length: number;
}

/** The exporter's answer to a map request: the kernel's `sg_table`. */
export type DmaBufSgTable = readonly DmaBufSegment[];

/** What `mmap` asks the exporter for: `pages` pages from page `pgoff`, writable or not. */
export interface DmaBufVma {
  readonly pgoff: number;
  readonly pages: number;
  readonly write: boolean;
}

/**
 * A device: anything that imports buffers — a worker, a GPUDevice, a WebAssembly instance, a file
 * or socket, the CPU. The core needs only its `name` (shown in `bufinfo`); exporters may look at
 * anything else it carries (constraints, placements it can reach, …).
 */
export interface DmaBufDevice {
  readonly name: string;
}

/** What an op may return: nothing, a negative errno, or a Promise of either. */
export type DmaBufOpResult = void | number | Promise<void | number>;

/** The exporter's operations (`struct dma_buf_ops`). See the module comment for lock states. */
export interface DmaBufOps {
  /** Checks that `attachment.dev` can reach the buffer; EBUSY when it cannot and cannot move. */
  attach?(buf: DmaBuf, attachment: DmaBufAttachment): DmaBufOpResult;
  /** Undoes `attach` (called after the attachment left the buffer's list). */
  detach?(buf: DmaBuf, attachment: DmaBufAttachment): void | Promise<void>;
  /** The buffer may no longer move (dynamic exporters; resv held). */
  pin?(attachment: DmaBufAttachment): DmaBufOpResult;
  /** The buffer may move again (resv held). */
  unpin?(attachment: DmaBufAttachment): void | Promise<void>;
  /**
   * Maps the buffer into `attachment.dev`'s address space (resv held). Returns a new table each
   * time (the core never reuses one); `null` means ENOMEM.
   */
  mapDmaBuf(
    attachment: DmaBufAttachment,
    direction: DmaDataDirection,
  ): DmaBufSgTable | null | Promise<DmaBufSgTable | null>;
  /**
   * Unmaps a table returned by `mapDmaBuf` (resv held). When the importer's thread exited with a
   * mapping that a shared exporter made in that thread, the table died with it: the core then
   * passes an empty table and `DMA_BIDIRECTIONAL` (keep what must survive in shared memory, e.g.
   * `attachment.exporterWords`).
   */
  unmapDmaBuf(
    attachment: DmaBufAttachment,
    table: DmaBufSgTable,
    direction: DmaDataDirection,
  ): void | Promise<void>;
  /** The last reference is gone: free the backing storage. Runs exactly once. */
  release(buf: DmaBuf): void | Promise<void>;
  /** Makes the memory coherent for CPU access in `direction`. */
  beginCpuAccess?(buf: DmaBuf, direction: DmaDataDirection): DmaBufOpResult;
  /** Ends CPU access in `direction`. */
  endCpuAccess?(buf: DmaBuf, direction: DmaDataDirection): DmaBufOpResult;
  /** The memory backing `vma` (bounds already checked), for zero-copy views. */
  mmap?(buf: DmaBuf, vma: DmaBufVma): DmaBufSgTable | Promise<DmaBufSgTable>;
  /** A linear mapping of the whole buffer (resv held; refcounted by the core). */
  vmap?(buf: DmaBuf): DmaBufSgTable | Promise<DmaBufSgTable>;
  /** Undoes `vmap` when the last user is gone (resv held). */
  vunmap?(buf: DmaBuf, map: DmaBufSgTable): void | Promise<void>;
}

/** The importer's operations (`struct dma_buf_attach_ops`). */
export interface DmaBufAttachOps {
  /** The importer can handle memory that is not CPU-visible (peer to peer). */
  readonly allowPeer2peer?: boolean;
  /**
   * The exporter is moving or revoking the buffer (called with the resv held, in the importer's
   * thread: synchronously when the exporter runs there, soon after otherwise). Mappings must be
   * re-created before further device access; the importer must unmap within bounded time.
   */
  invalidateMappings?(attachment: DmaBufAttachment): void;
}

/** The exporter's module, in the kernel's sense: `get` is try_module_get, `put` module_put. */
export interface DmaBufOwner {
  /** false: the module is going away (export fails with ENOENT). */
  readonly available?: boolean;
  /** Takes a reference on the module; false means unavailable (ENOENT). */
  get?(): boolean;
  /** Drops the reference taken at export, after release. */
  put?(): void;
}

/** How a shareable exporter rebuilds its ops in another thread: a registered kind and its data. */
export interface DmaBufSharedExporter {
  /** A kind registered with {@link registerSharedExporter} in every thread that may import. */
  readonly kind: string;
  /** Structured-cloneable state, typically the SharedArrayBuffers of the memory. */
  readonly data: unknown;
}

/** `struct dma_buf_export_info`. */
export interface DmaBufExportInfo {
  ops: DmaBufOps;
  /** Bytes; fixed for the buffer's lifetime. */
  size: number;
  /** File flags; only O_ACCMODE | O_NONBLOCK are kept. Default O_RDWR (the kernel's is 0). */
  flags?: number;
  /** A reservation object to share; without one the buffer embeds its own. */
  resv?: DmaResv;
  /** The exporter's private data (required, as in the kernel). */
  priv: unknown;
  /** The exporter's name, shown in bufinfo and fdinfo. */
  expName: string;
  owner?: DmaBufOwner;
  /** Makes the ops runnable in any thread that gets the buffer's descriptor. */
  shared?: DmaBufSharedExporter;
}

/**
 * What a reviver is told of the buffer itself, from the domain's shared record: the truth against
 * which the descriptor's data is checked.
 */
export interface SharedExporterBuffer {
  /** The buffer's size in bytes. */
  readonly size: number;
  /**
   * The buffer's six exporter words (`DmaBuf#exporterWords`), as the exporting thread wrote them
   * after the export.
   */
  readonly exporterWords: Int32Array;
}

/**
 * Rebuilds a shared exporter's ops and priv in the calling thread. A descriptor is a plain object
 * that any code on the way can alter, so the reviver should check `data` against `buf` (the size,
 * and whatever the exporter wrote in the exporter words at export) and throw EINVAL when they
 * disagree. The import then fails with EINVAL, and the exporter's shared state (an allocator, say)
 * is never handed a place that is not the buffer's. What the words cannot tell apart (one
 * SharedArrayBuffer from another of the same length) stays unchecked. Any other error leaves this
 * thread without the ops (calls are forwarded to the home thread).
 */
export type SharedExporterReviver = (
  data: unknown,
  buf: SharedExporterBuffer,
) => { ops: DmaBufOps; priv: unknown };

const revivers = new Map<string, SharedExporterReviver>();

/**
 * Registers how to rebuild a shared exporter's ops from its descriptor data. Each thread that may
 * receive such buffers must register the kind (do it at module load). Re-registering replaces.
 */
export function registerSharedExporter(kind: string, revive: SharedExporterReviver): void {
  if (typeof kind !== 'string' || kind === '') fail('EINVAL', 'exporter kind must be a string');
  if (typeof revive !== 'function') fail('EINVAL', 'reviver must be a function');
  revivers.set(kind, revive);
}

/** @internal */
export function sharedExporterReviver(kind: string): SharedExporterReviver | undefined {
  return revivers.get(kind);
}

const REQUIRED = ['mapDmaBuf', 'unmapDmaBuf', 'release'] as const;
const OPTIONAL = [
  'attach',
  'detach',
  'pin',
  'unpin',
  'beginCpuAccess',
  'endCpuAccess',
  'mmap',
  'vmap',
  'vunmap',
] as const;

const validated = new WeakSet<object>();

/** Checks an exporter ops table as dma_buf_export does. EINVAL on a missing or mistyped op. */
export function validateDmaBufOps(ops: unknown): asserts ops is DmaBufOps {
  if (ops !== null && typeof ops === 'object' && validated.has(ops)) return;
  if (ops === null || typeof ops !== 'object') fail('EINVAL', 'export needs an ops object');
  const o = ops as Record<string, unknown>;
  for (const k of REQUIRED) {
    if (typeof o[k] !== 'function') fail('EINVAL', `exporter ops.${k} is required`);
  }
  for (const k of OPTIONAL) {
    if (o[k] !== undefined && typeof o[k] !== 'function')
      fail('EINVAL', `exporter ops.${k} must be a function, got ${describe(o[k])}`);
  }
  if ((o.pin === undefined) !== (o.unpin === undefined))
    fail('EINVAL', 'exporter ops need both pin and unpin, or neither');
  validated.add(ops);
}

/** Checks importer ops (dma_buf_dynamic_attach). */
export function validateAttachOps(ops: unknown): asserts ops is DmaBufAttachOps {
  if (ops === null || typeof ops !== 'object') fail('EINVAL', 'importer ops must be an object');
  const o = ops as Record<string, unknown>;
  if (o.invalidateMappings !== undefined && typeof o.invalidateMappings !== 'function')
    fail('EINVAL', 'importer ops.invalidateMappings must be a function');
  if (o.allowPeer2peer !== undefined && typeof o.allowPeer2peer !== 'boolean')
    fail('EINVAL', 'importer ops.allowPeer2peer must be a boolean');
}

/** Turns an op's kernel-style negative return into a thrown error. */
export function checkOpResult(r: unknown, op: string): void {
  if (typeof r === 'number' && r < 0) {
    throw new DmaBufError(codeOf(r) ?? 'EIO', `exporter ${op} failed (${r})`);
  }
}

/**
 * @internal Whether an op's result is a Promise (or thenable) to await; a plain result is used in
 * the same turn, so that what the op did is recorded before anything else can run.
 */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as PromiseLike<unknown>).then === 'function'
  );
}

/** Checks that a device is an object with a string name. */
export function checkDevice(dev: unknown): asserts dev is DmaBufDevice {
  if (dev === null || (typeof dev !== 'object' && typeof dev !== 'function'))
    fail('EINVAL', `a device must be an object with a name, got ${describe(dev)}`);
  if (typeof (dev as { name?: unknown }).name !== 'string')
    fail('EINVAL', 'a device needs a string name');
}
