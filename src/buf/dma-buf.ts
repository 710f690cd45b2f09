/**
 * DmaBuf: a buffer shared without copies between the threads and devices of a domain — the
 * kernel's `struct dma_buf` and its file, restated for JavaScript runtimes.
 *
 * ## Life of a buffer
 * An exporter wraps its memory with {@link DmaBuf.export}. The buffer lives in a shared record
 * (size, inode, exporter name, flags, name, refcount, attachment list) that every thread of the
 * domain can see. Importers get a reference — from a handle ({@link DmaBuf.get}), from another
 * thread ({@link DmaBuf.fromShared}), or from the global list ({@link DmaBuf.iterBegin}) — attach
 * their device, map, unmap, detach and put. When the last reference anywhere is gone the exporter's
 * `release` runs exactly once, in its home thread.
 *
 * ## References are objects
 * Each `DmaBuf` object *is* one reference (the kernel's `get_dma_buf`/`dma_buf_put` pair): `put()`
 * ends it (a second `put()` is EBADF, and so is any use after it), `using` disposes it, and one
 * that is garbage-collected without `put()` is put then, with a warning. `buf.get()` makes another.
 * Objects handed to exporter ops and reached through `attachment.dmabuf` are *borrowed* views:
 * they hold no reference and cannot be put.
 *
 * ## Handles
 * `buf.fd(flags)` installs a handle — a small integer in this thread's fd table — holding its own
 * reference (unlike the kernel's `dma_buf_fd`, it does not take over the caller's: the caller still
 * puts its own). `DmaBuf.close(fd)` closes it. Handles carry an access mode: a reference made from
 * a read-only handle, or `buf.get(O_RDONLY)`, refuses writable mmap (EACCES).
 *
 * ## Across threads
 * `buf.share()` makes a structured-cloneable descriptor carrying one reference (and, for shared
 * exporters such as the system heap, the SharedArrayBuffers of the memory); post it to a worker of
 * the same domain, which calls `DmaBuf.fromShared(desc)` (a reference) or `DmaBuf.install(desc)`
 * (a handle). A descriptor installs once: a second install, a forged or a stale one is EBADF;
 * another domain's is EXDEV. When a thread exits, its handles and references are put and its
 * attachments detached for it.
 *
 * ## Locking convention and sleeping
 * Methods that may sleep return Promises (attach, detach, map, CPU access, vmap, sync, …).
 * `vmap`/`vunmap` and the attachment's `pin`/`unpin`/`mapAttachment`/`unmapAttachment` require the
 * reservation lock (EPERM otherwise); the rest must be called without it (checked in debug mode,
 * see `setDmaBufDebug`).
 */

import { mightAlloc } from '../debug/lockdep.js';
import { claimRecord } from '../domain/_tickets.js';
import { waitWhileEqualsAsync } from '../domain/_wait.js';
import { Domain, MAX_THREADS, onThreadExit, THREAD_EXITING } from '../domain/domain.js';
import {
  checkFlags,
  checkSignalOpts,
  checkUint,
  codeOf,
  DmaBufError,
  describe,
  fail,
} from '../errors.js';
import { DmaFence, DmaFenceCb } from '../fence/fence.js';
import { unwrapFences } from '../fence/fence-unwrap.js';
import { DmaResv, DmaResvUsage } from '../resv/resv.js';
import { SyncFile } from '../sync-file.js';
import { trace, warn } from '../trace.js';
import {
  BufCore,
  bufKey,
  callHome,
  coreCached,
  coreCount,
  coreFor,
  coreMaybeForget,
  exportedCore,
  exportedCount,
  exportedRegister,
  finishOrphanReleases,
  holdAdd,
  holdSub,
  markHomeDead,
  plainSegments,
  refGet,
  refPut,
  refPutRecord,
  refTryGet,
  resvRef,
  resvUnref,
  setBorrowedFactory,
  vmapHoldAdd,
} from './_core.js';
import {
  B_ATT_COUNT,
  B_BFLAGS,
  B_EXP,
  B_EXP_WORDS,
  B_EXPKIND,
  B_EXPNAME,
  B_FFLAGS,
  B_HOME,
  B_INODE,
  B_NAME,
  B_NAME_LEN,
  B_NAME_SEQ,
  B_POLL_IN,
  B_POLL_OUT,
  B_POLL_SEQ,
  B_REFS,
  B_RESV_GEN,
  B_RESV_SLOT,
  B_SIZE,
  B_STATE,
  B_VMAP_COUNT,
  B_VMAP_GEN,
  B_VMAP_LIVE,
  B_VMAP_OWNER,
  BF_DYNAMIC,
  BF_EMBEDDED_RESV,
  BF_HAS_CPU,
  BF_HAS_MMAP,
  BF_HAS_VMAP,
  BF_HOME_DEAD,
  BF_REVOKED,
  BF_SHAREABLE,
  H_BUF_GEN,
  H_BUF_SLOT,
  H_FD,
  H_FLAGS,
  H_HOLD,
  H_KIND,
  H_THREAD,
  H_TICKET,
  H_VALUE,
  H_VMAP,
  STATE_LIVE,
} from './_layout.js';
import { ensureInbox, registerRpc, rpcCall } from './_rpc.js';
import {
  attachImpl,
  attachmentDevName,
  attachmentSlots,
  checkDirection,
  collectThreadAttachments,
  type DmaBufAttachment,
  detachImpl,
  invalidateMappingsImpl,
  lockOrThrow,
  reapThreadAttachments,
  tp,
  waitForUnmaps,
} from './attachment.js';
import { cleanupHolding, forbidHeld, requireHeld } from './debug.js';
import {
  type FileLike,
  fdClose,
  fdCount,
  fdInstall,
  fdLookup,
  recordAlloc,
  recordFree,
} from './handles.js';
import {
  checkOpResult,
  type DmaBufAttachOps,
  type DmaBufDevice,
  type DmaBufExportInfo,
  type DmaBufSegment,
  type DmaBufSgTable,
  type DmaBufVma,
  isThenable,
  sharedExporterReviver,
  validateDmaBufOps,
} from './ops.js';
import {
  DMA_BIDIRECTIONAL,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_NAME_LEN,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_VALID_FLAGS_MASK,
  DMA_BUF_SYNC_WRITE,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
  EPOLLIN,
  EPOLLOUT,
  O_ACCMODE,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  SEEK_END,
  SEEK_SET,
} from './uapi.js';

/** How a buffer reference travels to another thread (structured-cloneable; installs once). */
export interface DmaBufDescriptor {
  kind: 'dmabuf';
  /** Domain id. */
  d: number;
  /** Buffer record slot and generation. */
  s: number;
  g: number;
  /** The ticket carrying the reference: handle-record slot, generation and nonce. */
  t: number;
  tg: number;
  n: number;
  /** Access mode of the reference (O_RDONLY, O_WRONLY, O_RDWR). */
  mode: number;
  /** A shared exporter's kind and data (its SharedArrayBuffers), when it has one. */
  exp?: { kind: string; data: unknown };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

const REF_LIVE = 0;
const REF_PUT = 1;
const REF_BORROWED = 2;

function readable(mode: number): boolean {
  return mode !== O_WRONLY;
}
function writable(mode: number): boolean {
  return mode !== O_RDONLY;
}

/** The access mode a narrowing request yields; EINVAL/EACCES as open(2) would. */
function narrowMode(from: number, want: number | undefined): number {
  if (want === undefined) return from;
  if (want !== O_RDONLY && want !== O_WRONLY && want !== O_RDWR)
    fail('EINVAL', `bad access mode ${describe(want)}`);
  if ((readable(want) && !readable(from)) || (writable(want) && !writable(from)))
    fail('EACCES', 'cannot widen the access mode of a buffer reference');
  return want;
}

let leakWarned = false;
const leaked = new FinalizationRegistry<BufCore>((core) => {
  if (!leakWarned) {
    leakWarned = true;
    warn(
      'dmabuf: a DmaBuf reference was garbage-collected without put() (reported once per thread)',
    );
  }
  if (core.released) return;
  holdSub(core, 1);
  refPut(core);
  coreMaybeForget(core);
});

/** A buffer handle's file (one per fd). */
interface DmaBufFile extends FileLike {
  readonly fileKind: 'dmabuf';
  readonly core: BufCore;
  readonly mode: number;
  rec: number;
}

/** A sync file's file, for the ioctl path. */
interface SyncFileFile extends FileLike {
  readonly fileKind: 'sync_file';
  readonly syncFile: SyncFile;
}

/** The mapping `vmap` returns (the kernel's `iosys_map`): the same object while mapped. */
export class DmaBufMap {
  /** Zero-copy segments of the whole buffer. */
  readonly segments: readonly DmaBufSegment[];
  /** One byte view over the whole mapping when it is a single segment, else null. */
  readonly view: Uint8Array | null;
  /** Always false here: mappings are memory (the kernel's is_iomem). */
  readonly isIomem = false;
  /** @internal */ readonly _slot: number;
  /** @internal */ readonly _bgen: number;
  /** @internal */ readonly _gen: number;

  /** @internal */
  constructor(core: BufCore, gen: number, segments: DmaBufSegment[]) {
    if (!(core instanceof BufCore)) fail('EINVAL', 'DmaBufMap is made by DmaBuf#vmap');
    this.segments = Object.freeze(segments.map((s) => Object.freeze(s)));
    this.view =
      segments.length === 1
        ? new Uint8Array(segments[0]!.memory, segments[0]!.offset, segments[0]!.length)
        : null;
    this._slot = core.slot;
    this._bgen = core.gen;
    this._gen = gen;
  }
}

export class DmaBuf {
  /** @internal */ readonly _core: BufCore;
  /** @internal access mode of this reference */ readonly _mode: number;
  /** @internal */ _state: number;

  private constructor(core: BufCore, mode: number, state: number) {
    this._core = core;
    this._mode = mode;
    this._state = state;
    if (state === REF_LIVE) leaked.register(this, core, this);
  }

  /** @internal a new reference object for a reference already taken and recorded. */
  static _adopt(core: BufCore, mode: number): DmaBuf {
    return new DmaBuf(core, mode, REF_LIVE);
  }

  private live(what: string): BufCore {
    if (this._state === REF_PUT) fail('EBADF', `${what}: this DmaBuf reference was put`);
    this._core.check();
    return this._core;
  }

  // ---- export ----------------------------------------------------------------------------------------

  /**
   * `dma_buf_export`: wraps an exporter's memory in a new buffer and returns the first reference.
   * EINVAL when priv, ops or a required op is missing, when only one of pin/unpin is given, or on a
   * malformed field; ENOENT when the owner is unavailable. Without `resv` the buffer embeds its own
   * reservation object. The inode is unique and monotonic in the domain. Synchronous; call without
   * the reservation lock.
   */
  static export(info: DmaBufExportInfo): DmaBuf {
    if (info === null || typeof info !== 'object') fail('EINVAL', 'export needs an info object');
    mightAlloc('dma_buf_export');
    const { ops, priv, expName, owner, shared } = info;
    if (priv === undefined || priv === null) fail('EINVAL', 'export needs priv');
    validateDmaBufOps(ops);
    const size = checkUint(info.size, 'size');
    const flags = info.flags === undefined ? O_RDWR : checkFlags(info.flags, 0xffff_ffff, 'flags');
    if (typeof expName !== 'string' || expName === '')
      fail('EINVAL', 'export needs an exporter name (expName)');
    if (info.resv !== undefined && !(info.resv instanceof DmaResv))
      fail('EINVAL', 'resv must be a DmaResv');
    if (info.resv !== undefined && info.resv._d !== Domain.current())
      fail('EXDEV', 'resv belongs to another dmabuf domain');
    if (shared !== undefined) {
      if (shared === null || typeof shared !== 'object' || typeof shared.kind !== 'string')
        fail('EINVAL', 'shared must be { kind, data }');
      if (sharedExporterReviver(shared.kind) === undefined)
        fail('EINVAL', `shared exporter kind ${describe(shared.kind)} is not registered`);
    }
    if (owner !== undefined) {
      if (owner === null || typeof owner !== 'object') fail('EINVAL', 'owner must be an object');
      if (owner.available === false) fail('ENOENT', 'the exporter module is unavailable');
      if (typeof owner.get === 'function' && owner.get() === false)
        fail('ENOENT', 'the exporter module is unavailable');
    }
    forbidHeld(info.resv ?? null, 'export');
    const d = Domain.current();
    ensureInbox(d);
    const embedded = info.resv === undefined;
    let resv: DmaResv | undefined;
    let slot = 0;
    let rs = 0;
    let rg = 0;
    const t = d.tables.buf;
    try {
      resv = info.resv ?? new DmaResv();
      // The buffer's reference on the reservation record: EBADF for a finished object, before
      // any buffer record is taken.
      [rs, rg] = resvRef(resv);
      slot = t.alloc();
    } catch (e) {
      if (rs !== 0) resvUnref(d, rs);
      if (embedded) resv?.fini();
      owner?.put?.();
      throw e;
    }
    const gen = t.gen(slot);
    const b = t.base(slot);
    const i32 = t.i32;
    let bf = 0;
    if (ops.pin !== undefined) bf |= BF_DYNAMIC;
    if (embedded) bf |= BF_EMBEDDED_RESV;
    if (shared !== undefined) bf |= BF_SHAREABLE;
    if (ops.mmap !== undefined) bf |= BF_HAS_MMAP;
    if (ops.vmap !== undefined) bf |= BF_HAS_VMAP;
    if (ops.beginCpuAccess !== undefined || ops.endCpuAccess !== undefined) bf |= BF_HAS_CPU;
    i32[b + B_HOME] = d.thread;
    i32[b + B_FFLAGS] = flags & (O_ACCMODE | O_NONBLOCK);
    i32[b + B_EXPNAME] = d.strings.intern(expName);
    t.f64[(b + B_SIZE) >> 1] = size;
    t.f64[(b + B_INODE) >> 1] = d.allocInode();
    i32[b + B_RESV_SLOT] = rs;
    i32[b + B_RESV_GEN] = rg;
    i32[b + B_EXPKIND] = shared !== undefined ? d.strings.intern(shared.kind) : 0;
    Atomics.store(i32, b + B_BFLAGS, bf);
    const core = new BufCore(d, slot, gen, resv!, ops, priv);
    core.owner = owner;
    core.sharedData = shared !== undefined ? { kind: shared.kind, data: shared.data } : null;
    exportedRegister(core);
    holdAdd(core, 1);
    Atomics.store(i32, b + B_STATE, STATE_LIVE);
    Atomics.store(i32, b + B_REFS, 1);
    const buf = new DmaBuf(core, i32[b + B_FFLAGS]! & O_ACCMODE, REF_LIVE);
    trace('bufExport', () => ({ ...tp(core), buf }));
    return buf;
  }

  // ---- identity ----------------------------------------------------------------------------------------

  /** Size in bytes (fixed forever). */
  get size(): number {
    return this._core.size;
  }

  /** The unique, monotonic inode number (what tools key buffers by). */
  get inode(): number {
    return this._core.inode;
  }

  /** The exporter's name (`exp_name`). */
  get expName(): string {
    return this._core.expName;
  }

  /** File flags set at export (O_ACCMODE | O_NONBLOCK). */
  get flags(): number {
    return this._core.fileFlags;
  }

  /** This reference's access mode (O_RDONLY, O_WRONLY or O_RDWR). */
  get mode(): number {
    return this._mode;
  }

  /** The exporter's private data: in the home thread, or where a shared exporter's ops were rebuilt. */
  get priv(): unknown {
    return this._core.priv;
  }

  /** The reservation object (implicit fences and the lock of the locking convention). */
  get resv(): DmaResv {
    return this._core.resv;
  }

  /** The exporter's home thread. */
  get homeThread(): number {
    return this._core.home;
  }

  /** `dma_buf_is_dynamic`: the exporter can move the buffer (it has pin/unpin). */
  get isDynamic(): boolean {
    return this._core.dynamic;
  }

  /** Whether the exporter revoked the buffer (attach, map and mmap then fail with ENODEV). */
  get revoked(): boolean {
    return this.live('revoked').revoked;
  }

  /** Whether this object is still a usable reference (false after put or release). */
  get alive(): boolean {
    return this._state !== REF_PUT && !this._core.released;
  }

  /** The file refcount: handles, references and armed poll callbacks in every thread. May be stale. */
  get refcount(): number {
    return this.live('refcount').refs;
  }

  /** Attachments currently on the buffer's list (any thread). May be stale. */
  get attachmentCount(): number {
    const core = this.live('attachmentCount');
    return Atomics.load(core.i32, core.b + B_ATT_COUNT);
  }

  /** The vmap counter. */
  get vmapCount(): number {
    const core = this.live('vmapCount');
    return Atomics.load(core.i32, core.b + B_VMAP_COUNT);
  }

  /** Six shared words for the exporter's buffer-wide state (any thread sees them). */
  get exporterWords(): Int32Array {
    // After the release the record may belong to another buffer: no view of it.
    const core = this.live('exporterWords');
    return new Int32Array(core.d.tables.buf.sab, (core.b + B_EXP) * 4, B_EXP_WORDS);
  }

  /** The name set with {@link setName}, or null. Read without tearing; may be stale. */
  get name(): string | null {
    return readName(this.live('name'));
  }

  toString(): string {
    const name = this.alive ? readName(this._core) : null;
    return `DmaBuf(ino ${this.inode}, ${this.size} bytes, ${this.expName}${name !== null ? `, ${name}` : ''})`;
  }

  // ---- references and handles --------------------------------------------------------------------------

  /**
   * `get_dma_buf`: another reference to the same buffer. `mode` (O_RDONLY, …) narrows its access;
   * widening is EACCES. On a borrowed view the buffer must still have references (EBADF).
   */
  get(mode?: number): DmaBuf {
    const core = this.live('get');
    const m = narrowMode(this._mode, mode);
    takeRef(core, this._state === REF_BORROWED);
    holdAdd(core, 1);
    return new DmaBuf(core, m, REF_LIVE);
  }

  /** `dma_buf_put`: ends this reference. EBADF when already put; EINVAL on a borrowed view. */
  put(): void {
    if (this._state === REF_BORROWED) fail('EINVAL', 'put: a borrowed view holds no reference');
    if (this._state === REF_PUT) fail('EBADF', 'put: this DmaBuf reference was already put');
    const core = this._core;
    forbidHeld(core.resv, 'put');
    this._state = REF_PUT;
    leaked.unregister(this);
    if (core.released) return;
    trace('bufPut', () => ({ ...tp(core), buf: this }));
    holdSub(core, 1);
    refPut(core);
    coreMaybeForget(core);
  }

  [Symbol.dispose](): void {
    if (this._state === REF_LIVE) this.put();
  }

  /**
   * `dma_buf_fd`: installs a handle in this thread's fd table and returns the fd. `flags` may hold
   * O_CLOEXEC and an access mode (which may only narrow this reference's; 0 keeps it). The handle
   * holds its own reference. EINVAL on unknown flags.
   */
  fd(flags: number = O_CLOEXEC): number {
    const core = this.live('fd');
    const f = checkFlags(flags, O_CLOEXEC | O_ACCMODE, 'fd flags');
    const acc = f & O_ACCMODE;
    const mode = acc === 0 ? this._mode : narrowMode(this._mode, acc);
    forbidHeld(core.resv, 'fd');
    takeRef(core, this._state === REF_BORROWED);
    return installHandle(core, mode, f & O_CLOEXEC);
  }

  /**
   * `dma_buf_get`: a new reference from a handle. EBADF for an fd that is not open in this thread,
   * EINVAL for an fd that is not a buffer.
   */
  static get(fd: number): DmaBuf {
    const e = fdLookup(fd);
    if (e.file.fileKind !== 'dmabuf') fail('EINVAL', `fd ${fd} is not a dma-buf`);
    const file = e.file as DmaBufFile;
    const core = file.core;
    core.check();
    forbidHeld(core.resv, 'get');
    refGet(core);
    holdAdd(core, 1);
    const buf = new DmaBuf(core, file.mode, REF_LIVE);
    trace('bufGet', () => ({ ...tp(core), buf, fd }));
    return buf;
  }

  /** `close(fd)` for any handle of this thread (a buffer's puts its reference). EBADF if not open. */
  static close(fd: number): void {
    fdClose(fd);
  }

  // ---- across threads ------------------------------------------------------------------------------------

  /**
   * A descriptor carrying one new reference, for another thread of this domain (post it; it
   * installs once). With `fd`, the reference has that handle's access mode. Synchronous.
   */
  share(fd?: number): DmaBufDescriptor {
    const core = this.live('share');
    let mode = this._mode;
    if (fd !== undefined) {
      const e = fdLookup(fd);
      if (e.file.fileKind !== 'dmabuf' || (e.file as DmaBufFile).core !== core)
        fail('EINVAL', `fd ${fd} is not a handle of this buffer`);
      mode = (e.file as DmaBufFile).mode;
    }
    const d = core.d;
    takeRef(core, this._state === REF_BORROWED);
    const nonce = ((Math.random() * 0x7fff_fffe) | 0) + 1;
    const t = recordAlloc(d, 0, H_TICKET, core.slot, core.gen, nonce, mode);
    const desc: DmaBufDescriptor = {
      kind: 'dmabuf',
      d: d.id,
      s: core.slot,
      g: core.gen,
      t,
      tg: d.tables.handle.gen(t),
      n: nonce,
      mode,
    };
    if (core.sharedData !== null) desc.exp = core.sharedData;
    return desc;
  }

  /** A reference from a descriptor made by {@link share} in any thread of this domain. */
  static fromShared(desc: DmaBufDescriptor): DmaBuf {
    const { core, mode } = claimTicket(desc);
    holdAdd(core, 1);
    return new DmaBuf(core, mode, REF_LIVE);
  }

  /** A handle (fd) from a descriptor; `flags` as for {@link fd}. */
  static install(desc: DmaBufDescriptor, flags: number = O_CLOEXEC): number {
    const f = checkFlags(flags, O_CLOEXEC | O_ACCMODE, 'fd flags');
    const { core, mode } = claimTicket(desc);
    let m = mode;
    try {
      if ((f & O_ACCMODE) !== 0) m = narrowMode(mode, f & O_ACCMODE);
    } catch (e) {
      refPut(core);
      coreMaybeForget(core);
      throw e;
    }
    return installHandle(core, m, f & O_CLOEXEC);
  }

  // ---- the global list ----------------------------------------------------------------------------------

  /**
   * `dma_buf_iter_begin`: the first buffer of the global list that is not being destroyed, with a
   * reference (put it, or pass it to {@link iterNext}). Null when there is none. The walk is in
   * record order, lock-free; buffers exported during the walk may or may not be seen.
   */
  static iterBegin(): DmaBuf | null {
    return iterFrom(Domain.current(), 1);
  }

  /** `dma_buf_iter_next`: puts `prev` and returns the next live buffer with a reference, or null. */
  static iterNext(prev: DmaBuf): DmaBuf | null {
    if (!(prev instanceof DmaBuf)) fail('EINVAL', 'iterNext needs the previous DmaBuf');
    const start = prev._core.slot + 1;
    const d = prev._core.d;
    prev.put();
    return iterFrom(d, start);
  }

  // ---- importers -------------------------------------------------------------------------------------------

  /** `dma_buf_attach`: a static attachment of `dev`. Call without the reservation lock. */
  attach(dev: DmaBufDevice): Promise<DmaBufAttachment> {
    return attachImpl(this.live('attach'), dev, null, undefined);
  }

  /**
   * `dma_buf_dynamic_attach`: an attachment of `dev` by a dynamic importer. The exporter's attach
   * op runs without the lock; the attachment joins the list under it. EBUSY from an exporter that
   * cannot make the buffer reachable; ENODEV once revoked.
   */
  dynamicAttach(
    dev: DmaBufDevice,
    importerOps: DmaBufAttachOps,
    importerPriv?: unknown,
  ): Promise<DmaBufAttachment> {
    if (importerOps === null || importerOps === undefined)
      fail('EINVAL', 'dynamicAttach needs importer ops');
    return attachImpl(this.live('dynamicAttach'), dev, importerOps, importerPriv);
  }

  /** `dma_buf_detach` (after unmapping). EINVAL for an attachment of another buffer. */
  detach(attachment: DmaBufAttachment): Promise<void> {
    if (this._state === REF_PUT) fail('EBADF', 'detach: this DmaBuf reference was put');
    // A buffer released before its attachment was detached is a contract violation (EINVAL),
    // but the attachment is still cleaned up.
    return detachImpl(this._core, attachment);
  }

  /**
   * `dma_buf_invalidate_mappings` (exporters, reservation lock held): every mapping of every
   * attachment goes stale and dynamic importers are told. Importers may keep accessing the memory
   * until their fences signal and they unmap.
   */
  invalidateMappings(): void {
    invalidateMappingsImpl(this.live('invalidateMappings'));
  }

  /**
   * Revokes the buffer (exporters; call without the lock): the two-stage sequence of the kernel's
   * revocation series — under the lock, mark revoked, invalidate mappings and wait for every fence
   * (BOOKKEEP); then, unlocked, wait until every importer has unmapped. From then on attach, map
   * and mmap fail with ENODEV. Interruptible through `signal`.
   */
  async revoke(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const core = this.live('revoke');
    const signal = checkSignalOpts(opts, 'revoke');
    forbidHeld(core.resv, 'revoke');
    await lockOrThrow(core.resv, signal);
    try {
      Atomics.or(core.i32, core.b + B_BFLAGS, BF_REVOKED);
      invalidateMappingsImpl(core);
      await core.resv.waitTimeout(DmaResvUsage.BOOKKEEP, Infinity, opts);
    } finally {
      core.resv.unlock();
    }
    await waitForUnmaps(core, signal);
  }

  // ---- CPU access -------------------------------------------------------------------------------------------

  /**
   * `dma_buf_begin_cpu_access`: the exporter's hook first, then a wait (interruptible, no timeout)
   * for the implicit fences of the direction — DMA_BIDIRECTIONAL and DMA_TO_DEVICE wait for every
   * fence up to READ, DMA_FROM_DEVICE only for writers. Resolves 0. Call without the lock.
   */
  async beginCpuAccess(
    direction: DmaDataDirection,
    opts: { signal?: AbortSignal } = {},
  ): Promise<number> {
    const core = this.live('beginCpuAccess');
    checkDirection(direction);
    checkSignalOpts(opts, 'beginCpuAccess');
    forbidHeld(core.resv, 'beginCpuAccess');
    await exporterCpu(core, false, direction);
    const write = direction === DMA_BIDIRECTIONAL || direction === DMA_TO_DEVICE;
    const r = await core.resv.waitTimeout(DmaResv.usageRw(write), Infinity, opts);
    if (typeof r === 'number' && r < 0) throw new DmaBufError(codeOf(r) ?? 'EINTR', 'wait failed');
    return 0;
  }

  /** `dma_buf_end_cpu_access`: the exporter's hook only (no fence wait). Resolves 0. */
  async endCpuAccess(direction: DmaDataDirection): Promise<number> {
    const core = this.live('endCpuAccess');
    checkDirection(direction);
    forbidHeld(core.resv, 'endCpuAccess');
    await exporterCpu(core, true, direction);
    return 0;
  }

  /**
   * Blocking {@link beginCpuAccess} for workers: the same hook, the same wait (no timeout) and the
   * same errors, without the event loop — a worker's synchronous frame loop calls it between two
   * pieces of work. Returns 0. Call without the lock (EDEADLK in debug mode otherwise). Where it has to
   * wait: EPERM where the runtime forbids blocking, EDEADLK in debug mode inside a
   * fence-signalling section. EAGAIN when the exporter's hook cannot run without
   * the event loop: the exporter's ops live in another thread (a thread-bound exporter), or its
   * hook returned a Promise (the hook has then run: pair it with {@link endCpuAccess} as usual).
   * Allocates nothing when no fence is pending.
   */
  beginCpuAccessSync(direction: DmaDataDirection): number {
    const core = this.live('beginCpuAccessSync');
    checkDirection(direction);
    forbidHeld(core.resv, 'beginCpuAccessSync');
    exporterCpuSync(core, false, direction);
    const write = direction === DMA_BIDIRECTIONAL || direction === DMA_TO_DEVICE;
    const r = core.resv.waitTimeoutSync(DmaResv.usageRw(write), Infinity);
    if (r < 0) throw new DmaBufError(codeOf(r) ?? 'EINTR', 'wait failed');
    return 0;
  }

  /**
   * Blocking {@link endCpuAccess} for workers: the exporter's hook only (no fence wait), run
   * without the event loop. Returns 0. EAGAIN as for {@link beginCpuAccessSync}.
   */
  endCpuAccessSync(direction: DmaDataDirection): number {
    const core = this.live('endCpuAccessSync');
    checkDirection(direction);
    forbidHeld(core.resv, 'endCpuAccessSync');
    exporterCpuSync(core, true, direction);
    return 0;
  }

  /**
   * mmap: a zero-copy `Uint8Array` over `length` bytes of the buffer from byte `offset` (a page
   * multiple). The bound check is the kernel's: page offset plus pages must fit in the buffer's
   * whole pages (EINVAL), with EOVERFLOW on overflow. EACCES when this reference is write-only, or
   * for `write` on a read-only one; EINVAL without an exporter mmap; ENODEV once revoked. A range
   * the exporter backs with more than one memory segment is EINVAL here: use
   * {@link mmapSegments}. The view keeps the memory alive, not the buffer. Call without the lock.
   */
  async mmap(offset = 0, length?: number, opts: { write?: boolean } = {}): Promise<Uint8Array> {
    const views = await this.mmapSegments(offset, length, opts, 'mmap');
    if (views.length !== 1)
      fail('EINVAL', `mmap: the range spans ${views.length} memory segments; use mmapSegments`);
    return views[0]!;
  }

  /** Like {@link mmap}, for ranges backed by several segments: one view per segment, in order. */
  async mmapSegments(
    offset = 0,
    length?: number,
    opts: { write?: boolean } = {},
    what = 'mmapSegments',
  ): Promise<Uint8Array[]> {
    if (typeof what !== 'string') fail('EINVAL', 'mmapSegments: the name of the call is a string');
    const core = this.live(what);
    forbidHeld(core.resv, what);
    checkUint(offset, `${what} offset`);
    if (offset % PAGE_SIZE !== 0) fail('EINVAL', `${what}: offset must be a multiple of PAGE_SIZE`);
    const len = length === undefined ? core.size - offset : checkUint(length, `${what} length`);
    if (len <= 0) fail('EINVAL', `${what}: length must be positive`);
    if (!Number.isSafeInteger(offset + len + PAGE_SIZE))
      fail('EOVERFLOW', `${what}: range overflows`);
    if (opts === null || typeof opts !== 'object') fail('EINVAL', `${what}: bad options`);
    const write = opts.write === true;
    if (!readable(this._mode)) fail('EACCES', `${what}: the reference is write-only`);
    if (write && !writable(this._mode)) fail('EACCES', `${what}: the reference is read-only`);
    core.checkNotRevoked(what);
    if ((core.bflags & BF_HAS_MMAP) === 0) fail('EINVAL', `${what}: the exporter has no mmap`);
    const pgoff = offset / PAGE_SIZE;
    const pages = Math.ceil(len / PAGE_SIZE);
    if (pgoff + pages > Math.floor(core.size / PAGE_SIZE))
      fail('EINVAL', `${what}: the range is beyond the buffer`);
    trace('bufMmap', () => ({ ...tp(core), buf: this, offset, length: len }));
    const segs = plainSegments(await exporterMmap(core, { pgoff, pages, write }), 'mmap');
    const views: Uint8Array[] = [];
    let left = len;
    for (const s of segs) {
      if (left <= 0) break;
      const n = Math.min(s.length, left);
      views.push(new Uint8Array(s.memory, s.offset, n));
      left -= n;
    }
    if (left > 0) fail('EINVAL', `${what}: the exporter mapped less than asked`);
    return views;
  }

  /**
   * `dma_buf_vmap`: a linear mapping of the whole buffer (reservation lock held). Refcounted: the
   * exporter's vmap runs only for the first user, later calls get the same mapping. EINVAL
   * without an exporter vmap.
   *
   * A thread that has no copy of the current mapping asks the thread that made it, by message,
   * holding the lock: if that thread is blocked waiting for the same lock (`lockSync`), both wait
   * forever. {@link vmapUnlocked} asks before taking the lock and does not have this problem.
   */
  async vmap(): Promise<DmaBufMap> {
    const core = this.live('vmap');
    requireHeld(core.resv, 'vmap');
    if ((core.bflags & BF_HAS_VMAP) === 0) fail('EINVAL', 'vmap: the exporter has no vmap');
    const i32 = core.i32;
    if (Atomics.load(i32, core.b + B_VMAP_COUNT) > 0) {
      const g = Atomics.load(i32, core.b + B_VMAP_GEN);
      let map = core.vmapCache?.gen === g ? (core.vmapCache.map as DmaBufMap) : null;
      if (map === null) map = await peekVmap(core, g);
      if (map !== null) {
        core.vmapCache = { gen: g, map };
        Atomics.add(i32, core.b + B_VMAP_COUNT, 1);
        vmapHoldAdd(core, 1);
        return map;
      }
      // Only exited threads held the mapping (their exit cleanup waits for this lock): retire it
      // as their last vunmap would have, and map afresh. The new generation tells that cleanup
      // that their share went with the old mapping.
      Atomics.store(i32, core.b + B_VMAP_COUNT, 0);
      Atomics.store(i32, core.b + B_VMAP_OWNER, 0);
      core.vmapCache = null;
      try {
        await exporterVunmapOnce(core, null);
      } catch (e) {
        warn(`dmabuf: vunmap of a mapping left by exited threads failed: ${String(e)}`);
      }
    }
    // A mapping nobody counts (its maker died before counting it) is the exporter's to drop first.
    await exporterVunmapOnce(core, null);
    let segs: DmaBufSegment[];
    try {
      segs = plainSegments(await exporterVmap(core, core.d.thread), 'vmap');
    } catch (e) {
      if (!warnedVmap) {
        warnedVmap = true;
        warn(`dmabuf: exporter vmap failed: ${String(e)}`);
      }
      throw e;
    }
    const g = Atomics.add(i32, core.b + B_VMAP_GEN, 1) + 1;
    const map = new DmaBufMap(core, g, segs);
    core.vmapCache = { gen: g, map };
    Atomics.store(i32, core.b + B_VMAP_OWNER, core.d.thread);
    Atomics.store(i32, core.b + B_VMAP_COUNT, 1);
    Atomics.store(i32, core.b + B_VMAP_LIVE, 1);
    vmapHoldAdd(core, 1);
    return map;
  }

  /**
   * `dma_buf_vunmap` (reservation lock held): `map` must be the current mapping (EINVAL
   * otherwise); the exporter's vunmap runs when the last user is gone.
   */
  async vunmap(map: DmaBufMap): Promise<void> {
    const core = this.live('vunmap');
    requireHeld(core.resv, 'vunmap');
    const i32 = core.i32;
    const count = Atomics.load(i32, core.b + B_VMAP_COUNT);
    if (count === 0) fail('EINVAL', 'vunmap: the buffer is not vmapped');
    if (
      !(map instanceof DmaBufMap) ||
      map._slot !== core.slot ||
      map._bgen !== core.gen ||
      map._gen !== Atomics.load(i32, core.b + B_VMAP_GEN)
    )
      fail('EINVAL', 'vunmap: not the current mapping of this buffer');
    if (count > 1) {
      // The share first: a kill between the two leaves the count too high (a leak), never low.
      vmapHoldAdd(core, -1);
      Atomics.sub(i32, core.b + B_VMAP_COUNT, 1);
      return;
    }
    try {
      await exporterVunmapOnce(core, map);
    } finally {
      // The kernel's vunmap cannot fail: the mapping is gone even if the exporter complained.
      // This thread's share goes last: killed before, its exit cleanup still finds the share and
      // uncounts it (the exporter's vunmap is not repeated: VMAP_LIVE is already 0).
      Atomics.store(i32, core.b + B_VMAP_OWNER, 0);
      Atomics.store(i32, core.b + B_VMAP_COUNT, 0);
      core.vmapCache = null;
      vmapHoldAdd(core, -1);
    }
  }

  /** `dma_buf_vmap_unlocked`: takes the reservation lock around {@link vmap}. */
  async vmapUnlocked(): Promise<DmaBufMap> {
    const core = this.live('vmapUnlocked');
    forbidHeld(core.resv, 'vmapUnlocked');
    // Ask the mapping's owner for this thread's copy before taking the lock: under it, the owner
    // might be a thread blocked waiting for that very lock (lockSync), and never answer. The
    // mapping may change hands while this waits for the lock (another thread vmaps first, or
    // retires it and maps afresh, or the owner exits and another holder has to answer): then let
    // go of the lock and ask again. After a few rounds, vmap() asks under the lock, as the locked
    // variant always does.
    for (let tries = 0; ; tries++) {
      await prefetchVmap(core);
      await lockOrThrow(core.resv);
      try {
        if (tries < 8 && vmapNeedsCopy(core)) continue;
        return await this.vmap();
      } finally {
        core.resv.unlock();
      }
    }
  }

  /** `dma_buf_vunmap_unlocked`. */
  async vunmapUnlocked(map: DmaBufMap): Promise<void> {
    const core = this.live('vunmapUnlocked');
    forbidHeld(core.resv, 'vunmapUnlocked');
    await lockOrThrow(core.resv);
    try {
      await this.vunmap(map);
    } finally {
      core.resv.unlock();
    }
  }

  // ---- the file operations ---------------------------------------------------------------------------------

  /**
   * poll: which of EPOLLIN (the last writers are done) and EPOLLOUT (every reader and writer is
   * done) are ready. BOOKKEEP fences are never waited for. A direction with no unsignaled fence is
   * ready at once; otherwise one callback per direction is armed (holding a reference) and the
   * direction reports not ready until it fires. Synchronous, never blocks; see {@link pollAsync}.
   */
  poll(events: number): number {
    const core = this.live('poll');
    if (typeof events !== 'number' || !Number.isInteger(events))
      fail('EINVAL', `poll events must be an integer, got ${describe(events)}`);
    let ev = events & (EPOLLIN | EPOLLOUT);
    if (ev === 0) return 0;
    if ((ev & EPOLLOUT) !== 0 && !pollArm(core, 1)) ev &= ~EPOLLOUT;
    if ((ev & EPOLLIN) !== 0 && !pollArm(core, 0)) ev &= ~EPOLLIN;
    return ev;
  }

  /**
   * Waits until {@link poll} reports one of `events` ready (resolves with the ready mask) or
   * `timeoutMs` passes (resolves 0). Rejects ERESTARTSYS when `signal` aborts.
   */
  async pollAsync(
    events: number,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<number> {
    const core = this.live('pollAsync');
    const signal = checkSignalOpts(opts, 'pollAsync');
    const timeout = opts?.timeoutMs === undefined ? Infinity : opts.timeoutMs;
    if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0)
      fail('EINVAL', 'pollAsync timeout must be >= 0');
    const start = performance.now();
    const i32 = core.i32;
    for (;;) {
      const seq = Atomics.load(i32, core.b + B_POLL_SEQ);
      const r = this.poll(events);
      if (r !== 0 || (events & (EPOLLIN | EPOLLOUT)) === 0) return r;
      const left = timeout - (performance.now() - start);
      if (left <= 0) return 0;
      await waitWhileEqualsAsync(i32, core.b + B_POLL_SEQ, seq, left, { signal });
    }
  }

  /**
   * DMA_BUF_IOCTL_SYNC: `flags` within READ | WRITE | END (number or bigint), READ and/or WRITE
   * set (EINVAL otherwise). START (no END) begins CPU access — waiting for the fences of the
   * direction — and END ends it. Resolves 0.
   */
  async sync(flags: number | bigint, opts: { signal?: AbortSignal } = {}): Promise<number> {
    this.live('sync');
    const f = checkFlags(flags, DMA_BUF_SYNC_VALID_FLAGS_MASK, 'sync flags');
    checkSignalOpts(opts, 'sync');
    let dir: DmaDataDirection;
    switch (f & DMA_BUF_SYNC_RW) {
      case DMA_BUF_SYNC_READ:
        dir = DMA_FROM_DEVICE;
        break;
      case DMA_BUF_SYNC_WRITE:
        dir = DMA_TO_DEVICE;
        break;
      case DMA_BUF_SYNC_RW:
        dir = DMA_BIDIRECTIONAL;
        break;
      default:
        return fail('EINVAL', 'sync flags need DMA_BUF_SYNC_READ and/or DMA_BUF_SYNC_WRITE');
    }
    return (f & DMA_BUF_SYNC_END) !== 0 ? this.endCpuAccess(dir) : this.beginCpuAccess(dir, opts);
  }

  /**
   * DMA_BUF_SET_NAME: names the buffer (any time; shown in fdinfo and bufinfo). At most 31 UTF-8
   * bytes (EINVAL beyond), cut at a NUL as the kernel's string copy does; EFAULT for a non-string.
   */
  setName(name: string): void {
    const core = this.live('setName');
    if (typeof name !== 'string') fail('EFAULT', `setName needs a string, got ${describe(name)}`);
    const nul = name.indexOf('\0');
    const bytes = enc.encode(nul >= 0 ? name.slice(0, nul) : name);
    if (bytes.length > DMA_BUF_NAME_LEN - 1)
      fail('EINVAL', `a buffer name holds at most ${DMA_BUF_NAME_LEN - 1} bytes`);
    writeName(core, bytes);
  }

  /**
   * DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a sync file with a snapshot of the implicit fences — READ:
   * the writers (what EPOLLIN waits for); WRITE or both: everything up to READ usage. No pending
   * fence gives the signaled stub. EINVAL for flags outside READ | WRITE or with neither.
   */
  exportSyncFile(flags: number): SyncFile {
    const core = this.live('exportSyncFile');
    const f = checkFlags(flags, DMA_BUF_SYNC_RW, 'export sync file flags');
    if ((f & DMA_BUF_SYNC_RW) === 0) fail('EINVAL', 'export sync file needs READ and/or WRITE');
    const usage = DmaResv.usageRw((f & DMA_BUF_SYNC_WRITE) !== 0);
    const fence = core.resv.getSingleton(usage) ?? DmaFence.getStub();
    return SyncFile.create(fence);
  }

  /**
   * DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds each fence of `syncFile` (unwrapped) to the implicit
   * fences, as WRITE usage when WRITE is set, else READ. `syncFile` is a SyncFile or an fd of one;
   * anything else is EINVAL, as are bad flags. Takes the reservation lock.
   */
  async importSyncFile(flags: number, syncFile: SyncFile | number): Promise<number> {
    const core = this.live('importSyncFile');
    const f = checkFlags(flags, DMA_BUF_SYNC_RW, 'import sync file flags');
    if ((f & DMA_BUF_SYNC_RW) === 0) fail('EINVAL', 'import sync file needs READ and/or WRITE');
    const sf = syncFileOf(syncFile);
    const usage = (f & DMA_BUF_SYNC_WRITE) !== 0 ? DmaResvUsage.WRITE : DmaResvUsage.READ;
    const fences = [...unwrapFences(sf.fence)];
    if (fences.length === 0) return 0;
    forbidHeld(core.resv, 'importSyncFile');
    await lockOrThrow(core.resv);
    try {
      const r = core.resv.reserveFences(fences.length);
      if (typeof r === 'number' && r < 0) return r;
      for (const fence of fences) core.resv.addFence(fence, usage);
    } finally {
      core.resv.unlock();
    }
    return 0;
  }

  /**
   * The dma-buf ioctls by number: DMA_BUF_IOCTL_SYNC (`arg.flags`), DMA_BUF_SET_NAME_A/B (`arg`
   * the name), DMA_BUF_IOCTL_EXPORT_SYNC_FILE (`arg.flags`; sets `arg.fd` to a new sync-file fd),
   * DMA_BUF_IOCTL_IMPORT_SYNC_FILE (`arg.flags`, `arg.fd`). Any other number is ENOTTY; a missing
   * argument struct is EFAULT. Resolves 0.
   */
  async ioctl(cmd: number, arg?: unknown): Promise<number> {
    this.live('ioctl');
    const obj = (): Record<string, any> => {
      if (arg === null || typeof arg !== 'object') fail('EFAULT', 'ioctl argument is not a struct');
      return arg as Record<string, any>;
    };
    switch (cmd) {
      case DMA_BUF_IOCTL_SYNC:
        return this.sync(obj().flags);
      case DMA_BUF_SET_NAME_A:
      case DMA_BUF_SET_NAME_B:
        this.setName(arg as string);
        return 0;
      case DMA_BUF_IOCTL_EXPORT_SYNC_FILE: {
        const a = obj();
        const sf = this.exportSyncFile(a.flags);
        const file: SyncFileFile = {
          fileKind: 'sync_file',
          syncFile: sf,
          release() {
            sf.put();
          },
        };
        a.fd = fdInstall(file, O_CLOEXEC);
        return 0;
      }
      case DMA_BUF_IOCTL_IMPORT_SYNC_FILE: {
        const a = obj();
        return this.importSyncFile(a.flags, a.fd);
      }
      default:
        return fail('ENOTTY', `unknown dma-buf ioctl ${describe(cmd)}`);
    }
  }

  /**
   * llseek: only offset 0 with SEEK_END (the size) or SEEK_SET (0); anything else is EINVAL —
   * the idiom for learning a buffer's size.
   */
  llseek(offset: number | bigint, whence: number): number {
    const core = this.live('llseek');
    let base: number;
    if (whence === SEEK_END) base = core.size;
    else if (whence === SEEK_SET) base = 0;
    else return fail('EINVAL', `llseek: unsupported whence ${describe(whence)}`);
    if (offset !== 0 && offset !== 0n) fail('EINVAL', 'llseek: only offset 0 is supported');
    return base;
  }

  /**
   * `/proc/<pid>/fdinfo/<fd>` of a handle of this buffer (`fd`), or of this reference: the generic
   * lines then `size`, `count`, `exp_name` and, when set, `name`.
   */
  fdinfo(fd?: number): string {
    const core = this.live('fdinfo');
    let flags = core.fileFlags;
    if (fd !== undefined) {
      const e = fdLookup(fd);
      if (e.file.fileKind !== 'dmabuf' || (e.file as DmaBufFile).core !== core)
        fail('EINVAL', `fd ${fd} is not a handle of this buffer`);
      flags = (core.fileFlags & O_NONBLOCK) | e.flags;
    }
    const name = readName(core);
    return (
      `pos:\t0\nflags:\t0${flags.toString(8)}\nmnt_id:\t0\nino:\t${core.inode}\n` +
      `size:\t${core.size}\ncount:\t${core.refs}\nexp_name:\t${core.expName}\n` +
      (name !== null ? `name:\t${name}\n` : '')
    );
  }

  /** fdinfo of a handle of this thread. EBADF / EINVAL as {@link DmaBuf.get}. */
  static fdinfo(fd: number): string {
    const e = fdLookup(fd);
    if (e.file.fileKind !== 'dmabuf') fail('EINVAL', `fd ${fd} is not a dma-buf`);
    const core = (e.file as DmaBufFile).core;
    return core.borrowed.fdinfo(fd);
  }

  /**
   * debugfs `dma_buf/bufinfo`: every live buffer of the domain, newest first, in the kernel's
   * layout — a line of size, flags, mode, count, exporter, inode and name, its fences, its attached
   * devices — then the totals. Each buffer is read under its reservation lock (taken
   * interruptibly: `signal`). Call without holding any buffer's lock.
   */
  static async bufinfo(opts: { signal?: AbortSignal } = {}): Promise<string> {
    const signal = checkSignalOpts(opts, 'bufinfo');
    const d = Domain.current();
    const t = d.tables.buf;
    const found: { slot: number; gen: number; inode: number }[] = [];
    for (const s of t.allocated()) {
      const gen = refTryGet(d, s);
      if (gen < 0) continue;
      found.push({ slot: s, gen, inode: t.f64[(t.base(s) + B_INODE) >> 1]! });
    }
    found.sort((a, b) => b.inode - a.inode);
    const pad8 = (s: string): string => s.padEnd(8, ' ');
    let out = '\nDma-buf Objects:\n';
    out += `${pad8('size')}\t${pad8('flags')}\t${pad8('mode')}\t${pad8('count')}\texp_name\t${pad8('ino')}\tname\n`;
    let count = 0;
    let bytes = 0;
    let i = 0;
    try {
      for (; i < found.length; i++) {
        const { slot, gen } = found[i]!;
        const core = coreFor(d, slot, gen);
        await lockOrThrow(core.resv, signal);
        let devs: string[];
        let line: string;
        try {
          const mode = core.fileFlags & O_ACCMODE;
          const fmode = (readable(mode) ? 1 : 0) | (writable(mode) ? 2 : 0);
          const name = readName(core) ?? '<none>';
          line =
            `${zpad(core.size)}\t${hex8(core.fileFlags)}\t${hex8(fmode)}\t${zpad(core.refs - 1)}\t` +
            `${core.expName}\t${zpad(core.inode)}\t${name}\n`;
          let desc = core.resv.describe();
          if (desc !== '' && !desc.endsWith('\n')) desc += '\n';
          line += desc;
          devs = attachmentSlots(core).map((a) => attachmentDevName(core, a));
        } finally {
          core.resv.unlock();
        }
        out += `${line}\tAttached Devices:\n`;
        for (const n of devs) out += `\t${n}\n`;
        out += `Total ${devs.length} devices attached\n\n`;
        count++;
        bytes += core.size;
        refPut(core);
        coreMaybeForget(core);
      }
    } catch (e) {
      for (; i < found.length; i++) {
        const { slot, gen } = found[i]!;
        try {
          const core = coreFor(d, slot, gen);
          refPut(core);
          coreMaybeForget(core);
        } catch {
          // gone
        }
      }
      throw e;
    }
    out += `\nTotal ${count} objects, ${bytes} bytes\n`;
    return out;
  }
}

let warnedVmap = false;

function zpad(n: number): string {
  return String(Math.max(0, n)).padStart(8, '0');
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

setBorrowedFactory((core) => new (DmaBuf as any)(core, core.fileFlags & O_ACCMODE, REF_BORROWED));

/** Takes a reference for a new object or handle; from a borrowed view only while the buffer lives. */
function takeRef(core: BufCore, borrowed: boolean): void {
  if (!borrowed) {
    refGet(core);
    return;
  }
  const gen = refTryGet(core.d, core.slot);
  if (gen !== core.gen) {
    if (gen >= 0) refPut(coreFor(core.d, core.slot, gen));
    fail('EBADF', 'the buffer has no references left');
  }
}

function installHandle(core: BufCore, mode: number, cloexec: number): number {
  const d = core.d;
  const file: DmaBufFile = {
    fileKind: 'dmabuf',
    core,
    mode,
    rec: 0,
    release() {
      recordFree(d, this.rec);
      core.localFds--;
      if (!core.released) refPut(core);
      coreMaybeForget(core);
    },
  };
  const fd = fdInstall(file, cloexec | mode);
  file.rec = recordAlloc(d, d.thread, H_FD, core.slot, core.gen, fd, cloexec | mode);
  core.localFds++;
  trace('bufFd', () => ({ ...tp(core), fd }));
  return fd;
}

function claimTicket(desc: unknown): { core: BufCore; mode: number } {
  if (desc === null || typeof desc !== 'object' || (desc as { kind?: unknown }).kind !== 'dmabuf')
    fail('EINVAL', 'not a dma-buf descriptor');
  const x = desc as DmaBufDescriptor;
  const d = Domain.current();
  d.checkId(x.d);
  const ints = [x.s, x.g, x.t, x.tg, x.n, x.mode];
  if (!ints.every((v) => typeof v === 'number' && Number.isInteger(v)))
    fail('EBADF', 'malformed dma-buf descriptor');
  const ht = d.tables.handle;
  if (!ht.isSlot(x.t) || ht.gen(x.t) !== x.tg) fail('EBADF', 'stale or forged dma-buf descriptor');
  const b = ht.base(x.t);
  if (
    Atomics.load(ht.i32, b + H_KIND) !== H_TICKET ||
    ht.i32[b + H_BUF_SLOT] !== x.s ||
    ht.i32[b + H_BUF_GEN] !== x.g ||
    ht.i32[b + H_VALUE] !== x.n ||
    ht.i32[b + H_FLAGS] !== x.mode ||
    ht.i32[b + H_THREAD] !== 0
  )
    fail('EBADF', 'stale or forged dma-buf descriptor');
  // Everything that can take a while comes before the claim (the ticket's reference keeps the
  // record alive meanwhile): from the claim until the caller records the reference as this
  // thread's, a death of this thread loses it, so that window is kept to a few statements.
  ensureInbox(d);
  const core = coreFor(d, x.s, x.g);
  const exp = x.exp;
  if (
    exp !== undefined &&
    exp !== null &&
    typeof exp === 'object' &&
    typeof exp.kind === 'string'
  ) {
    try {
      core.adoptShared(exp.kind, exp.data);
    } catch (e) {
      // EINVAL: the exporter's data disagrees with the buffer (an altered descriptor). Refused
      // before the claim, so the ticket stays for the genuine copy.
      if (e instanceof DmaBufError && e.code === 'EINVAL') {
        coreMaybeForget(core);
        fail(
          'EINVAL',
          `dma-buf descriptor: exporter data does not match the buffer (${String(e)})`,
        );
      }
      warn(`dmabuf: could not rebuild the exporter here: ${String(e)}`);
    }
  }
  // The nonce's CAS, as for every ticket (domain/_tickets.ts); the record is freed by the winner.
  if (!claimRecord(d, ht, x.t, x.tg, H_KIND, H_VALUE, x.n)) {
    coreMaybeForget(core);
    fail('EBADF', 'the dma-buf descriptor was already installed');
  }
  return { core, mode: x.mode };
}

function iterFrom(d: Domain, start: number): DmaBuf | null {
  const t = d.tables.buf;
  for (const s of t.allocated(start)) {
    const gen = refTryGet(d, s);
    if (gen < 0) continue;
    const core = coreFor(d, s, gen);
    holdAdd(core, 1);
    return DmaBuf._adopt(core, core.fileFlags & O_ACCMODE);
  }
  return null;
}

function syncFileOf(x: unknown): SyncFile {
  if (x instanceof SyncFile) {
    if (x.closed) fail('EINVAL', 'the sync file was closed');
    return x;
  }
  if (typeof x === 'number') {
    let e: ReturnType<typeof fdLookup>;
    try {
      e = fdLookup(x);
    } catch {
      return fail('EINVAL', `fd ${x} is not a sync file`);
    }
    if (e.file.fileKind === 'sync_file') return (e.file as SyncFileFile).syncFile;
  }
  return fail('EINVAL', 'import needs a SyncFile (or the fd of one)');
}

// ---- names (seqlock, see _layout.ts) ------------------------------------------------------------------

function writeName(core: BufCore, bytes: Uint8Array): void {
  const t = core.d.tables.buf;
  const i32 = t.i32;
  const seq = core.b + B_NAME_SEQ;
  let s: number;
  for (;;) {
    s = Atomics.load(i32, seq);
    if ((s & 1) === 0 && Atomics.compareExchange(i32, seq, s, s + 1) === s) break;
  }
  const words = new Int32Array(B_NAME_WORDS_CONST);
  new Uint8Array(words.buffer).set(bytes);
  for (let i = 0; i < B_NAME_WORDS_CONST; i++) Atomics.store(i32, core.b + B_NAME + i, words[i]!);
  Atomics.store(i32, core.b + B_NAME_LEN, bytes.length + 1);
  Atomics.store(i32, seq, s + 2);
}

const B_NAME_WORDS_CONST = 8;

function readName(core: BufCore): string | null {
  const i32 = core.d.tables.buf.i32;
  const seq = core.b + B_NAME_SEQ;
  const words = new Int32Array(B_NAME_WORDS_CONST);
  for (;;) {
    const s1 = Atomics.load(i32, seq);
    if ((s1 & 1) !== 0) continue;
    const len = Atomics.load(i32, core.b + B_NAME_LEN);
    for (let i = 0; i < B_NAME_WORDS_CONST; i++) words[i] = Atomics.load(i32, core.b + B_NAME + i);
    if (Atomics.load(i32, seq) !== s1) continue;
    if (len <= 0 || len > DMA_BUF_NAME_LEN) return null;
    return dec.decode(new Uint8Array(words.buffer, 0, len - 1));
  }
}

// ---- poll (one armed callback per direction, shared by every thread) ------------------------------------

function pollArm(core: BufCore, dir: 0 | 1): boolean {
  const i32 = core.i32;
  const word = core.b + (dir === 0 ? B_POLL_IN : B_POLL_OUT);
  if (Atomics.compareExchange(i32, word, 0, core.d.thread) !== 0) return false;
  // The armed callback holds a reference, as the kernel's poll holds the file.
  refGet(core);
  holdAdd(core, 1);
  const usage = DmaResv.usageRw(dir === 1);
  const it = core.resv.fencesUnlocked(usage);
  for (const { fence } of it) {
    const cb = new DmaFenceCb(() => pollFire(core, dir));
    if (fence.addCallback(cb) !== null) {
      it.return();
      core.pollCbs[dir] = cb;
      return false;
    }
  }
  pollFire(core, dir);
  return true;
}

function pollFire(core: BufCore, dir: 0 | 1): void {
  const i32 = core.i32;
  core.pollCbs[dir] = null;
  Atomics.store(i32, core.b + (dir === 0 ? B_POLL_IN : B_POLL_OUT), 0);
  Atomics.add(i32, core.b + B_POLL_SEQ, 1);
  Atomics.notify(i32, core.b + B_POLL_SEQ);
  holdSub(core, 1);
  refPut(core);
  coreMaybeForget(core);
}

// ---- exporter calls for the buffer-wide ops (local, or forwarded home) -----------------------------------

async function exporterCpu(core: BufCore, end: boolean, dir: DmaDataDirection): Promise<void> {
  if (core.ops !== null) {
    const op = end ? core.ops.endCpuAccess : core.ops.beginCpuAccess;
    if (op !== undefined)
      checkOpResult(
        await op.call(core.ops, core.borrowed, dir),
        end ? 'endCpuAccess' : 'beginCpuAccess',
      );
    return;
  }
  if ((core.bflags & BF_HAS_CPU) === 0) return;
  await callHome(core, 'buf:cpu', { b: bufKey(core), end, dir });
}

/**
 * The exporter's CPU-access hook without the event loop: EAGAIN when it lives in another thread or
 * answers with a Promise (whose rejection is then left to the caller's later endCpuAccess).
 */
function exporterCpuSync(core: BufCore, end: boolean, dir: DmaDataDirection): void {
  const what = end ? 'endCpuAccess' : 'beginCpuAccess';
  if (core.ops !== null) {
    const op = end ? core.ops.endCpuAccess : core.ops.beginCpuAccess;
    if (op === undefined) return;
    const r = op.call(core.ops, core.borrowed, dir);
    if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
      (r as Promise<unknown>).then(undefined, () => {});
      fail('EAGAIN', `${what}Sync: the exporter's ${what} hook is asynchronous; use ${what}`);
    }
    checkOpResult(r, what);
    return;
  }
  if ((core.bflags & BF_HAS_CPU) === 0) return;
  fail('EAGAIN', `${what}Sync: the exporter's ops run in another thread; use ${what}`);
}

async function exporterMmap(core: BufCore, vma: DmaBufVma): Promise<DmaBufSgTable> {
  if (core.ops !== null) {
    if (core.ops.mmap === undefined) fail('EINVAL', 'the exporter has no mmap');
    return core.ops.mmap(core.borrowed, Object.freeze({ ...vma }));
  }
  return callHome(core, 'buf:mmap', { b: bufKey(core), vma });
}

/**
 * The exporter's vmap, for thread `owner` (the caller, or the thread that asked by message). Run
 * here, the mapping is recorded (its owner, VMAP_LIVE) in the same turn as a synchronous op
 * returns, so that the owner's exit cleanup has it vunmapped should the owner be killed before
 * it counts it; what a kill can leave unrecorded is the op's own last statements.
 */
async function exporterVmap(core: BufCore, owner: number): Promise<DmaBufSgTable> {
  if (core.ops !== null) {
    if (core.ops.vmap === undefined) fail('EINVAL', 'the exporter has no vmap');
    const r = core.ops.vmap(core.borrowed);
    const segs = isThenable(r) ? await r : r;
    Atomics.store(core.i32, core.b + B_VMAP_OWNER, owner);
    Atomics.store(core.i32, core.b + B_VMAP_LIVE, 1);
    core.exporterVmap = segs;
    return segs;
  }
  return callHome(core, 'buf:vmap', { b: bufKey(core) });
}

/**
 * The exporter's vunmap of the current vmap, unless somebody else (a last vunmap, a retire, an
 * exit cleanup, racing or after a death half-way) has already taken it on: once per vmap.
 */
async function exporterVunmapOnce(core: BufCore, map: DmaBufMap | null): Promise<void> {
  if (Atomics.compareExchange(core.i32, core.b + B_VMAP_LIVE, 1, 0) !== 1) return;
  await exporterVunmap(core, map);
}

async function exporterVunmap(core: BufCore, map: DmaBufMap | null): Promise<void> {
  if (core.ops !== null) {
    const segs = core.exporterVmap ?? map?.segments ?? [];
    core.exporterVmap = null;
    await core.ops.vunmap?.(core.borrowed, segs);
    return;
  }
  // A thread-bound exporter whose thread exited has nothing left to undo (as for detach).
  if ((core.bflags & BF_HOME_DEAD) !== 0) return;
  await callHome(core, 'buf:vunmap', { b: bufKey(core) });
}

registerRpc('buf:cpu', async (a: { b: unknown; end: boolean; dir: unknown }) => {
  const core = exportedCore(a.b);
  checkDirection(a.dir);
  await exporterCpu(core, a.end === true, a.dir);
});

registerRpc('buf:mmap', async (a: { b: unknown; vma: DmaBufVma }) => {
  const core = exportedCore(a.b);
  const v = a.vma;
  if (v === null || typeof v !== 'object') fail('EINVAL', 'bad vma');
  const vma = {
    pgoff: checkUint(v.pgoff, 'pgoff'),
    pages: checkUint(v.pages, 'pages'),
    write: v.write === true,
  };
  if (vma.pgoff + vma.pages > Math.floor(core.size / PAGE_SIZE))
    fail('EINVAL', 'range beyond the buffer');
  return plainSegments(await exporterMmap(core, vma), 'mmap');
});

registerRpc('buf:vmap', async (a: { b: unknown }, from: number) => {
  const core = exportedCore(a.b);
  // Recorded here too (by exporterVmap): should the asking thread die before its answer
  // arrives, its exit cleanup finds the mapping it owned and has it vunmapped.
  const segs = plainSegments(await exporterVmap(core, from), 'vmap');
  if (!core.d.isThreadAlive(from)) {
    // It died while this was on the way, and its exit cleanup may have run already.
    await exporterVunmapOnce(core, null);
    fail('ENODEV', 'the thread that asked for the vmap exited');
  }
  return segs;
});

registerRpc('buf:vunmap', async (a: { b: unknown }) => {
  const core = exportedCore(a.b);
  const segs = core.exporterVmap ?? [];
  core.exporterVmap = null;
  await core.ops?.vunmap?.(core.borrowed, segs);
});

registerRpc('buf:vmapPeek', (key: [number, number]) => {
  const core = coreCached(key[0], key[1]);
  const map = core?.vmapCache?.map as DmaBufMap | undefined;
  if (map === undefined) fail('EIO', 'this thread holds no vmap of the buffer');
  return map.segments.map((s) => ({ memory: s.memory, offset: s.offset, length: s.length }));
});

// ---- thread exit ------------------------------------------------------------------------------------------

// When a thread exits, the domain does for it what process exit does: its attachments are
// detached, then its handles and references put; the buffers it exported are marked so that
// nobody waits on it, and releases forwarded to it but never run are finished here.
onThreadExit(20, (d, thread) => {
  const atts = collectThreadAttachments(d, thread);
  const dying = markHomeDead(d, thread);
  /**
   * Buffers whose vmaps it held or whose mapping it owned: slot → [gen, vmaps held, vmap gen,
   * whether it owned the mapping].
   */
  const vmaps = new Map<number, [number, number, number, boolean]>();
  const bt = d.tables.buf;
  for (const s of bt.allocated()) {
    const b = bt.base(s);
    let fired = false;
    for (const w of [B_POLL_IN, B_POLL_OUT]) {
      // Its armed poll callbacks will never run: disarm them (their references are in its hold).
      if (Atomics.compareExchange(bt.i32, b + w, thread, 0) === thread) fired = true;
    }
    if (fired) {
      Atomics.add(bt.i32, b + B_POLL_SEQ, 1);
      Atomics.notify(bt.i32, b + B_POLL_SEQ);
    }
    // The mapping it made for everybody: handed over (or undone) below, under the lock. Its
    // thread index is freed when the hooks return and may be given to a new worker before that
    // cleanup runs: the owner word must not name it meanwhile (a vmap would ask the newcomer,
    // which has no copy, or no inbox yet to hear the question). Owner 0: a vmap that needs a
    // copy first looks for a live holder.
    if (Atomics.compareExchange(bt.i32, b + B_VMAP_OWNER, thread, 0) === thread)
      vmaps.set(s, [bt.gen(s), 0, Atomics.load(bt.i32, b + B_VMAP_GEN), true]);
  }
  const ht = d.tables.handle;
  const puts: [number, number, number][] = [];
  for (const s of ht.allocated()) {
    const b = ht.base(s);
    // A ticket it claimed (nonce replaced by -thread) but was killed before freeing.
    if (
      Atomics.load(ht.i32, b + H_KIND) === H_TICKET &&
      Atomics.load(ht.i32, b + H_VALUE) === -thread
    ) {
      recordFree(d, s);
      continue;
    }
    if (Atomics.load(ht.i32, b + H_THREAD) !== thread) continue;
    const kind = Atomics.load(ht.i32, b + H_KIND);
    if (kind === H_VMAP) {
      const bs = ht.i32[b + H_BUF_SLOT]!;
      const prev = vmaps.get(bs);
      bt.ensure(bs);
      const vgen = Atomics.load(bt.i32, bt.base(bs) + B_VMAP_GEN);
      vmaps.set(bs, [
        ht.i32[b + H_BUF_GEN]!,
        (prev?.[1] ?? 0) + Atomics.load(ht.i32, b + H_VALUE),
        vgen,
        prev?.[3] ?? false,
      ]);
      recordFree(d, s);
      continue;
    }
    if (kind !== H_FD && kind !== H_HOLD) continue;
    const n = kind === H_FD ? 1 : Atomics.load(ht.i32, b + H_VALUE);
    puts.push([ht.i32[b + H_BUF_SLOT]!, ht.i32[b + H_BUF_GEN]!, n]);
    recordFree(d, s);
  }
  void (async () => {
    await reapThreadAttachments(d, atts);
    await dropThreadVmaps(d, vmaps);
    for (const [slot, gen, n] of puts) refPutRecord(d, slot, gen, n);
    finishOrphanReleases(d, dying);
  })().catch((e) => warn(`dmabuf: thread-exit cleanup failed: ${String(e)}`));
});

/**
 * The vmaps of an exited thread: its share of each buffer's vmap counter is dropped (the last one
 * has the exporter vunmap, as the thread's own vunmap would have), and a mapping it made for the
 * other users is handed to one of them, so that later vmaps can still be answered. Under each
 * buffer's reservation lock, in the observing thread.
 */
async function dropThreadVmaps(
  d: Domain,
  list: Map<number, [number, number, number, boolean]>,
): Promise<void> {
  for (const [slot, [gen, n, vgen, owned]] of list) {
    let core: BufCore;
    try {
      core = coreFor(d, slot, gen);
    } catch {
      continue; // released meanwhile
    }
    core.localAttachments++; // keep this view while we work on it
    try {
      cleanupHolding(core.resv, true);
      await lockOrThrow(core.resv).catch((e) => {
        cleanupHolding(core.resv, false);
        throw e;
      });
      try {
        const i32 = core.i32;
        // A survivor retired the mapping meanwhile (it was held by exited threads only).
        if (Atomics.load(i32, core.b + B_VMAP_GEN) !== vgen) continue;
        const left = Math.max(0, Atomics.load(i32, core.b + B_VMAP_COUNT) - n);
        Atomics.store(i32, core.b + B_VMAP_COUNT, left);
        if (left === 0) {
          Atomics.store(i32, core.b + B_VMAP_OWNER, 0);
          core.vmapCache = null;
          try {
            await exporterVunmapOnce(core, null);
          } catch (e) {
            warn(`dmabuf: vunmap for an exited thread failed: ${String(e)}`);
          }
        } else if (owned && Atomics.load(i32, core.b + B_VMAP_OWNER) === 0) {
          // Nobody has taken the mapping over since the exit hook cleared the owner.
          const heir = vmapHolder(d, slot, gen);
          Atomics.store(i32, core.b + B_VMAP_OWNER, heir);
          if (heir === 0 && left > 0) {
            // Counted but held by nobody alive (the dead thread was half-way through its last
            // vunmap, or other exited threads' cleanups are behind): retire the mapping.
            Atomics.store(i32, core.b + B_VMAP_COUNT, 0);
            core.vmapCache = null;
            try {
              await exporterVunmapOnce(core, null);
            } catch (e) {
              warn(`dmabuf: vunmap for an exited thread failed: ${String(e)}`);
            }
          }
        }
      } finally {
        core.resv.unlock();
        cleanupHolding(core.resv, false);
      }
    } catch (e) {
      warn(`dmabuf: dropping an exited thread's vmaps failed: ${String(e)}`);
    } finally {
      core.localAttachments--;
      coreMaybeForget(core);
    }
  }
}

/**
 * This thread's copy of the current vmap (reservation lock held), asked of the thread that made
 * it. When that thread has exited — before its exit cleanup could hand the mapping over, or while
 * the question was on its way — another live holder answers and becomes the owner. EIO when no
 * live thread holds the mapping any more.
 */
async function peekVmap(core: BufCore, g: number): Promise<DmaBufMap | null> {
  const d = core.d;
  const i32 = core.i32;
  for (let tries = 0; tries < 8; tries++) {
    let owner = Atomics.load(i32, core.b + B_VMAP_OWNER);
    if (owner === 0 || !d.isThreadAlive(owner)) {
      owner = vmapHolder(d, core.slot, core.gen, d.thread);
      if (owner === 0) {
        // Nobody alive holds it. Once no thread is half-way through its exit (whose records may
        // not be read yet), the mapping is known to be held by exited threads only.
        if (await noThreadExiting(d)) return null;
        continue;
      }
      Atomics.store(i32, core.b + B_VMAP_OWNER, owner);
    }
    try {
      const segs = await rpcCall(d, owner, 'buf:vmapPeek', bufKey(core));
      return new DmaBufMap(core, g, plainSegments(segs, 'vmap'));
    } catch (e) {
      if (e instanceof DmaBufError && e.code === 'ENODEV' && !d.isThreadAlive(owner)) continue;
      throw e;
    }
  }
  return fail('EIO', 'vmap: the threads holding the mapping keep exiting');
}

/**
 * Without the lock: when the buffer is vmapped and this thread has no copy of the mapping, asks
 * the owner for one and caches it under the generation read first (a stale answer is caught by
 * the generation check under the lock). Best effort: any failure is left for {@link DmaBuf#vmap}.
 */
async function prefetchVmap(core: BufCore): Promise<void> {
  const i32 = core.i32;
  if ((core.bflags & BF_HAS_VMAP) === 0 || Atomics.load(i32, core.b + B_VMAP_COUNT) === 0) return;
  const g = Atomics.load(i32, core.b + B_VMAP_GEN);
  if (core.vmapCache?.gen === g) return;
  const owner = vmapSource(core);
  if (owner === 0) return;
  try {
    const segs = await rpcCall(core.d, owner, 'buf:vmapPeek', bufKey(core));
    if (core.vmapCache?.gen !== g)
      core.vmapCache = { gen: g, map: new DmaBufMap(core, g, plainSegments(segs, 'vmap')) };
  } catch {
    // the owner is gone or has none: vmap() sorts it out
  }
}

/**
 * The thread {@link peekVmap} would ask for a copy of the mapping: the owner when it is another
 * live thread; when the owner has exited (or its exit hook cleared the word), another live
 * holder; 0 when nobody (then nothing is asked). May be stale.
 */
function vmapSource(core: BufCore): number {
  const d = core.d;
  const owner = Atomics.load(core.i32, core.b + B_VMAP_OWNER);
  if (owner === d.thread) return 0;
  if (owner !== 0 && d.isThreadAlive(owner)) return owner;
  return vmapHolder(d, core.slot, core.gen, d.thread);
}

/**
 * Whether a vmap now (reservation lock held) would have to ask another thread for this thread's
 * copy of the mapping: it is counted, this thread's copy is missing or stale, and somebody holds
 * it.
 */
function vmapNeedsCopy(core: BufCore): boolean {
  const i32 = core.i32;
  if ((core.bflags & BF_HAS_VMAP) === 0 || Atomics.load(i32, core.b + B_VMAP_COUNT) === 0)
    return false;
  if (core.vmapCache?.gen === Atomics.load(i32, core.b + B_VMAP_GEN)) return false;
  return vmapSource(core) !== 0;
}

/** Waits (briefly: exit hooks are synchronous) until no thread of the domain is exiting. */
async function noThreadExiting(d: Domain): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    let exiting = false;
    for (let t = 1; t < MAX_THREADS && !exiting; t++) exiting = d.threadState(t) === THREAD_EXITING;
    if (!exiting) return true;
    await new Promise((r) => setTimeout(r, 1));
  }
  return false;
}

/** A live thread (not `exclude`) that holds a vmap of the buffer, so has its mapping; or 0. */
function vmapHolder(d: Domain, slot: number, gen: number, exclude = 0): number {
  const ht = d.tables.handle;
  for (const s of ht.allocated()) {
    const b = ht.base(s);
    if (Atomics.load(ht.i32, b + H_KIND) !== H_VMAP) continue;
    if (ht.i32[b + H_BUF_SLOT] !== slot || ht.i32[b + H_BUF_GEN] !== gen) continue;
    const t = Atomics.load(ht.i32, b + H_THREAD);
    if (t !== exclude && d.isThreadAlive(t)) return t;
  }
  return 0;
}

/** @internal counters for tests: this thread's cores, exported buffers and open fds. */
export function bufStats(): { cores: number; exported: number; fds: number } {
  return { cores: coreCount(), exported: exportedCount(), fds: fdCount() };
}
