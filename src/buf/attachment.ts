/**
 * DmaBufAttachment: one device's attachment to a buffer — the kernel's `struct dma_buf_attachment`
 * — and DmaBufMapping, what mapping it gives the importer.
 *
 * ## Static and dynamic importers
 * An attachment made with `buf.attach(dev)` is *static*; one made with
 * `buf.dynamicAttach(dev, importerOps, importerPriv)` is *dynamic*. Static importers of a dynamic
 * exporter (one with pin/unpin) get the buffer pinned for as long as each mapping lives, and their
 * map waits for the KERNEL fences (moves, clears) before returning. Dynamic importers pin only
 * explicitly ({@link DmaBufAttachment#pin}), must wait for the fences themselves, and are told by
 * `invalidateMappings` when their mappings go stale.
 *
 * ## Locking convention
 * `pin`, `unpin`, `mapAttachment` and `unmapAttachment` require the buffer's reservation lock
 * (EPERM otherwise); the `*Unlocked` variants take it themselves and must be called without it.
 *
 * ## What the importer gets
 * A mapping's `segments` are fresh objects on every map — `{ memory, offset, length }` in the
 * device's address space, page-granular — never the exporter's own table (which stays with the
 * core for the unmap). `mapping.valid` turns false when the exporter invalidates mappings.
 *
 * ## Threads
 * An attachment is used in the thread that made it. Its record is shared: `bufinfo` in any thread
 * lists it, the exporter (possibly in another thread) sees its flags, and when the importer's
 * thread exits its attachments are detached for it.
 */

import { SlotMap } from '../domain/_slotmap.js';
import { waitWhileEqualsAsync } from '../domain/_wait.js';
import { Domain } from '../domain/domain.js';
import { checkSignalOpts, DmaBufError, describe, fail } from '../errors.js';
import { DmaResvUsage } from '../resv/resv.js';
import { trace, warn } from '../trace.js';
import {
  BufCore,
  bufKey,
  callHome,
  coreFor,
  coreMaybeForget,
  exportedCore,
  plainSegments,
} from './_core.js';
import {
  A_BUF_GEN,
  A_BUF_SLOT,
  A_DEVNAME,
  A_EXP,
  A_EXP_WORDS,
  A_FLAGS,
  A_INVAL_SEQ,
  A_MAPS,
  A_NEXT,
  A_PINS,
  A_STAGE,
  A_THREAD,
  AF_DYNAMIC,
  AF_EXP_ATTACHED,
  AF_INVALIDATE,
  AF_LISTED,
  AF_P2P,
  B_ATT_COUNT,
  B_ATT_HEAD,
  BF_HOME_DEAD,
  STAGE_MAP_PINNED,
  STAGE_UNMAPPING,
} from './_layout.js';
import { ensureInbox, registerRpc, rpcSend } from './_rpc.js';
import { cleanupHolding, forbidHeld, isDmaBufDebug, requireHeld } from './debug.js';
import type { DmaBuf } from './dma-buf.js';
import {
  checkDevice,
  checkOpResult,
  type DmaBufAttachOps,
  type DmaBufDevice,
  type DmaBufSegment,
  type DmaBufSgTable,
  isThenable,
  validateAttachOps,
} from './ops.js';
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDataDirection,
  PAGE_SIZE,
} from './uapi.js';

/** The common part of the buffer tracepoints' messages (the kernel's `dma_buf` event class). */
export function tp(core: BufCore): { buf: DmaBuf; expName: string; size: number; ino: number } {
  return { buf: core.borrowed, expName: core.expName, size: core.size, ino: core.inode };
}

/** Checks a DMA direction (DMA_NONE and anything else: EINVAL). */
export function checkDirection(dir: unknown): asserts dir is DmaDataDirection {
  if (dir !== DMA_BIDIRECTIONAL && dir !== DMA_TO_DEVICE && dir !== DMA_FROM_DEVICE)
    fail('EINVAL', `bad DMA direction ${describe(dir)}`);
}

/** Attachments made in this thread, by record slot (for invalidation and lookups). */
const importerAtts = new SlotMap<DmaBufAttachment>();

/** Exporter-side record of one forwarded map. */
interface ExporterMap {
  table: DmaBufSgTable;
  dir: DmaDataDirection;
  pin: boolean;
}

let warnedPinBusy = false;

export class DmaBufAttachment {
  /** @internal */ readonly _core: BufCore;
  /** @internal */ readonly _slot: number;
  /** @internal */ readonly _gen: number;
  /** The attached device. For the exporter's view of a remote importer: `{ name }`. */
  readonly dev: DmaBufDevice;
  /** The importer's ops: non-null for dynamic importers (null in the exporter's remote view). */
  readonly importerOps: DmaBufAttachOps | null;
  readonly importerPriv: unknown;
  /** The exporter's private data for this attachment (`attach->priv`), set by its attach op. */
  priv: unknown = undefined;
  /** @internal true for the importer's own object, false for an exporter-side view */
  readonly _importer: boolean;
  /** @internal */ _detached = false;
  /** @internal live mappings made through this object */ readonly _maps = new Set<DmaBufMapping>();
  /** @internal exporter-side maps made for a remote importer */
  readonly _exporterMaps = new Map<number, ExporterMap>();
  /** @internal */ _mapSeq = 0;
  /** The DYNAMIC, P2P and INVALIDATE flags, fixed at attach (read once: after detach the record
   * may belong to another attachment). */
  readonly #flags: number;
  /** @internal exporter-side pins made for a remote importer (explicit ones) */ _pins = 0;

  /** @internal use DmaBuf#attach / DmaBuf#dynamicAttach. */
  constructor(
    core: BufCore,
    slot: number,
    gen: number,
    dev: DmaBufDevice,
    importerOps: DmaBufAttachOps | null,
    importerPriv: unknown,
    importer: boolean,
  ) {
    if (!(core instanceof BufCore))
      fail('EINVAL', 'an attachment is made by DmaBuf#attach or DmaBuf#dynamicAttach');
    const at = core.d.tables.attach;
    this.#flags = Atomics.load(at.i32, at.base(slot) + A_FLAGS);
    this._core = core;
    this._slot = slot;
    this._gen = gen;
    this.dev = dev;
    this.importerOps = importerOps;
    this.importerPriv = importerPriv;
    this._importer = importer;
  }

  /** @internal the exporter's view of an attachment made in another thread. */
  static _proxy(core: BufCore, slot: number, gen: number): DmaBufAttachment {
    const at = core.d.tables.attach;
    if (!at.isSlot(slot) || at.gen(slot) !== gen || !at.isAllocated(slot))
      fail('EBADF', 'stale attachment');
    const b = at.base(slot);
    if (at.i32[b + A_BUF_SLOT] !== core.slot || at.i32[b + A_BUF_GEN] !== core.gen)
      fail('EINVAL', 'attachment does not belong to this buffer');
    const dev = Object.freeze({ name: core.d.strings.get(at.i32[b + A_DEVNAME]!) });
    return new DmaBufAttachment(core, slot, gen, dev, null, undefined, false);
  }

  private get rec(): number {
    return this._core.d.tables.attach.base(this._slot);
  }

  private get flags(): number {
    return this.#flags;
  }

  /** The record's Int32 index while it is still this attachment's; EINVAL once detached. */
  private liveRec(what: string): number {
    const at = this._core.d.tables.attach;
    if (at.gen(this._slot) !== this._gen || !at.isAllocated(this._slot))
      fail('EINVAL', `${what}: the attachment was detached`);
    return this.rec;
  }

  /** The buffer (a view holding no reference: the importer holds its own). */
  get dmabuf(): DmaBuf {
    return this._core.borrowed;
  }

  /** `dma_buf_attachment_is_dynamic`: made with importer ops. */
  get isDynamic(): boolean {
    return (this.flags & AF_DYNAMIC) !== 0;
  }

  /** The importer can handle peer-to-peer memory (`importer_ops->allow_peer2peer`). */
  get peer2peer(): boolean {
    return (this.flags & AF_P2P) !== 0;
  }

  /**
   * `dma_buf_attach_revocable`: the importer implements `invalidateMappings`, so it can be
   * revoked in bounded time. Exporters that must revoke call this in their attach op.
   */
  get revocable(): boolean {
    return (this.flags & AF_INVALIDATE) !== 0;
  }

  /** Mappings made through this attachment and not yet unmapped (all threads). */
  get mapCount(): number {
    return Atomics.load(this._core.d.tables.attach.i32, this.liveRec('mapCount') + A_MAPS);
  }

  /** Four shared words for the exporter's per-attachment state (any thread sees them). */
  get exporterWords(): Int32Array {
    const t = this._core.d.tables.attach;
    return new Int32Array(t.sab, (this.liveRec('exporterWords') + A_EXP) * 4, A_EXP_WORDS);
  }

  /** @internal EINVAL once detached, EBADF once the buffer is gone. */
  _checkUsable(what: string): void {
    if (this._detached) fail('EINVAL', `${what}: the attachment was detached`);
    if (!this._importer) fail('EINVAL', `${what}: not the importer's attachment object`);
    this._core.check();
  }

  // ---- pin --------------------------------------------------------------------------------------

  /**
   * `dma_buf_pin`: keeps the buffer from moving (dynamic importers only — EINVAL otherwise — and
   * for limited uses such as scanout). Requires the reservation lock. May sleep.
   */
  async pin(): Promise<void> {
    this._checkUsable('pin');
    if (!this.isDynamic) fail('EINVAL', 'pin: only dynamic importers may pin');
    requireHeld(this._core.resv, 'pin');
    // Counted in the same turn as a synchronous pin op returns: a kill in between leaves as
    // little as possible uncounted (then the pin is leaked, never undone twice).
    const r = exporterPin(this._core, this, true);
    if (r !== undefined) await r;
    Atomics.add(this._core.d.tables.attach.i32, this.rec + A_PINS, 1);
  }

  /** `dma_buf_unpin`: undoes {@link pin}. Requires the reservation lock. */
  async unpin(): Promise<void> {
    this._checkUsable('unpin');
    if (!this.isDynamic) fail('EINVAL', 'unpin: only dynamic importers may unpin');
    requireHeld(this._core.resv, 'unpin');
    const i32 = this._core.d.tables.attach.i32;
    if (Atomics.load(i32, this.rec + A_PINS) <= 0) fail('EINVAL', 'unpin without a pin');
    Atomics.sub(i32, this.rec + A_PINS, 1);
    const r = exporterPin(this._core, this, false);
    if (r !== undefined) await r;
  }

  // ---- map ----------------------------------------------------------------------------------------

  /**
   * `dma_buf_map_attachment`: maps the buffer into the device's address space. Requires the
   * reservation lock. Static importers of a dynamic exporter pin it for the mapping's life; static
   * importers wait (interruptibly, `signal`) for KERNEL fences before this resolves. Every error
   * unwinds what was done (unmap, unpin). ENODEV once revoked; ENOMEM when the exporter returns
   * nothing; EINVAL for a bad direction.
   */
  async mapAttachment(
    direction: DmaDataDirection,
    opts: { signal?: AbortSignal } = {},
  ): Promise<DmaBufMapping> {
    this._checkUsable('mapAttachment');
    checkDirection(direction);
    checkSignalOpts(opts, 'mapAttachment');
    const core = this._core;
    requireHeld(core.resv, 'mapAttachment');
    core.checkNotRevoked('mapAttachment');
    const pinOnMap = core.dynamic && !this.isDynamic;
    // Counted in MAPS from the moment the exporter holds the mapping (the KERNEL-fence wait below
    // may be long): if this thread dies meanwhile, its exit cleanup knows there is one to undo.
    const at = core.d.tables.attach;
    let segments: DmaBufSgTable;
    let token: unknown;
    if (core.ops !== null) {
      segments = await localMapCounted(core, this, direction, pinOnMap);
      token = segments;
    } else {
      const r = await callHome(core, 'att:map', {
        b: bufKey(core),
        a: attKey(this),
        dir: direction,
        pin: pinOnMap,
      });
      segments = r.segments;
      token = r.id;
      // (The home tracks this mapping itself: its cleanup never relies on this count.)
      Atomics.add(at.i32, this.rec + A_MAPS, 1);
    }
    const unwind = async (e: unknown): Promise<never> => {
      try {
        await unmapCounted(core, this, token, direction, pinOnMap, true);
      } catch (e2) {
        warn(`dmabuf: unmap while unwinding a failed map: ${String(e2)}`);
      }
      throw e;
    };
    if (!this.isDynamic) {
      try {
        const r = await core.resv.waitTimeout(DmaResvUsage.KERNEL, Infinity, opts);
        if (typeof r === 'number' && r < 0) fail('EINTR', 'wait for kernel fences failed');
      } catch (e) {
        return unwind(e);
      }
    }
    let segs: DmaBufSgTable;
    try {
      segs = importerSegments(segments);
    } catch (e) {
      return unwind(e);
    }
    const m = new DmaBufMapping(
      this,
      direction,
      segs,
      token,
      pinOnMap,
      Atomics.load(at.i32, this.rec + A_INVAL_SEQ),
    );
    this._maps.add(m);
    return m;
  }

  /**
   * `dma_buf_unmap_attachment`: unmaps a mapping made by {@link mapAttachment} (and unpins what
   * the map pinned). Requires the reservation lock. EINVAL for a mapping of another attachment or
   * one already unmapped.
   */
  async unmapAttachment(mapping: DmaBufMapping): Promise<void> {
    if (!(mapping instanceof DmaBufMapping) || mapping.attachment !== this)
      fail('EINVAL', 'unmapAttachment: not a mapping of this attachment');
    if (mapping._unmapped) fail('EINVAL', 'unmapAttachment: already unmapped');
    if (!this._importer) fail('EINVAL', "unmapAttachment: not the importer's attachment object");
    // Its record is gone (the counters would land on another attachment's).
    if (this._detached) fail('EINVAL', 'unmapAttachment: the attachment was detached');
    const core = this._core;
    requireHeld(core.resv, 'unmapAttachment');
    mapping._unmapped = true;
    this._maps.delete(mapping);
    await unmapCounted(
      core,
      this,
      mapping._token,
      mapping.direction,
      mapping._pinOnMap,
      !core.released,
    );
  }

  /** `dma_buf_map_attachment_unlocked`: takes the reservation lock around {@link mapAttachment}. */
  async mapAttachmentUnlocked(
    direction: DmaDataDirection,
    opts: { signal?: AbortSignal } = {},
  ): Promise<DmaBufMapping> {
    this._checkUsable('mapAttachmentUnlocked');
    checkDirection(direction);
    const signal = checkSignalOpts(opts, 'mapAttachmentUnlocked');
    const resv = this._core.resv;
    forbidHeld(resv, 'mapAttachmentUnlocked');
    await lockOrThrow(resv, signal);
    try {
      return await this.mapAttachment(direction, opts);
    } finally {
      resv.unlock();
    }
  }

  /** `dma_buf_unmap_attachment_unlocked`. */
  async unmapAttachmentUnlocked(mapping: DmaBufMapping): Promise<void> {
    if (!(mapping instanceof DmaBufMapping) || mapping.attachment !== this)
      fail('EINVAL', 'unmapAttachmentUnlocked: not a mapping of this attachment');
    const resv = this._core.resv;
    forbidHeld(resv, 'unmapAttachmentUnlocked');
    await lockOrThrow(resv);
    try {
      await this.unmapAttachment(mapping);
    } finally {
      resv.unlock();
    }
  }

  /** Detaches (`await using att = await buf.attach(dev)`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this._detached) await detachImpl(this._core, this);
  }

  toString(): string {
    return `DmaBufAttachment(${this.dev.name}${this.isDynamic ? ', dynamic' : ''})`;
  }
}

/**
 * One mapping of an attachment: the segments of the buffer in the device's address space. A fresh
 * object (and fresh segment objects) for every map.
 */
export class DmaBufMapping {
  readonly attachment: DmaBufAttachment;
  readonly direction: DmaDataDirection;
  /** Frozen, page-granular segments in the device's address space. */
  readonly segments: readonly DmaBufSegment[];
  /** @internal */ readonly _token: unknown;
  /** @internal */ readonly _pinOnMap: boolean;
  /** @internal */ readonly _inval: number;
  /** @internal */ _unmapped = false;

  /** @internal */
  constructor(
    attachment: DmaBufAttachment,
    direction: DmaDataDirection,
    segments: DmaBufSgTable,
    token: unknown,
    pinOnMap: boolean,
    inval: number,
  ) {
    if (!(attachment instanceof DmaBufAttachment))
      fail('EINVAL', 'a mapping is made by DmaBufAttachment#mapAttachment');
    this.attachment = attachment;
    this.direction = direction;
    this.segments = segments;
    this._token = token;
    this._pinOnMap = pinOnMap;
    this._inval = inval;
  }

  /**
   * False once unmapped or once the exporter invalidated mappings (a move or a revoke): re-map
   * before further device access. Reads shared memory; may turn false at any moment.
   */
  get valid(): boolean {
    if (this._unmapped || this.attachment._detached) return false;
    const core = this.attachment._core;
    if (core.released) return false;
    const at = core.d.tables.attach;
    return Atomics.load(at.i32, at.base(this.attachment._slot) + A_INVAL_SEQ) === this._inval;
  }

  /** Total bytes mapped. */
  get byteLength(): number {
    let n = 0;
    for (const s of this.segments) n += s.length;
    return n;
  }

  /** Zero-copy byte views of the segments, for devices that address memory as the CPU does. */
  views(): Uint8Array[] {
    return this.segments.map((s) => new Uint8Array(s.memory, s.offset, s.length));
  }
}

function importerSegments(segments: DmaBufSgTable): DmaBufSgTable {
  const plain = plainSegments(segments, 'mapDmaBuf');
  if (isDmaBufDebug()) {
    for (const s of plain) {
      if (s.offset % PAGE_SIZE !== 0)
        fail('EINVAL', `mapDmaBuf returned a segment at offset ${s.offset}, not page aligned`);
    }
    for (let i = 0; i < plain.length - 1; i++) {
      if (plain[i]!.length % PAGE_SIZE !== 0)
        fail('EINVAL', `mapDmaBuf returned a segment of ${plain[i]!.length} bytes mid-table`);
    }
  }
  return Object.freeze(plain.map((s) => Object.freeze(s)));
}

async function lockOrThrow(
  resv: { lockInterruptible(ctx: null, o: { signal?: AbortSignal }): Promise<number> },
  signal?: AbortSignal,
): Promise<void> {
  const r = await resv.lockInterruptible(null, { signal });
  if (r === -4) fail('EINTR', 'interrupted while taking the reservation lock');
  if (r !== 0) throw new DmaBufError('EIO', `reservation lock failed (${r})`);
}

/** @internal */
export { lockOrThrow };

// ---- reaching the exporter -------------------------------------------------------------------------

function attKey(att: DmaBufAttachment): [number, number] {
  return [att._slot, att._gen];
}

function warnPinBusy(e: unknown): void {
  if (e instanceof DmaBufError && e.code === 'EBUSY' && !warnedPinBusy) {
    warnedPinBusy = true;
    warn('dmabuf: exporter refused to pin a buffer with attachments (EBUSY)');
  }
}

async function localMap(
  core: BufCore,
  att: DmaBufAttachment,
  dir: DmaDataDirection,
  pinOnMap: boolean,
): Promise<DmaBufSgTable> {
  const ops = core.ops!;
  if (pinOnMap) {
    try {
      checkOpResult(await ops.pin!(att), 'pin');
    } catch (e) {
      warnPinBusy(e);
      throw e;
    }
  }
  try {
    const table = await ops.mapDmaBuf(att, dir);
    if (table === null || table === undefined) fail('ENOMEM', 'the exporter mapped nothing');
    if (!Array.isArray(table)) fail('EINVAL', 'mapDmaBuf must return an array of segments');
    return table;
  } catch (e) {
    if (pinOnMap) await ops.unpin!(att);
    throw e;
  }
}

async function localUnmap(
  core: BufCore,
  att: DmaBufAttachment,
  table: DmaBufSgTable,
  dir: DmaDataDirection,
  pinOnMap: boolean,
): Promise<void> {
  const ops = core.ops!;
  await ops.unmapDmaBuf(att, table, dir);
  if (pinOnMap) await ops.unpin!(att);
}

/**
 * The importer's map when the exporter's ops run in this thread (a shared exporter, or the
 * home's own importer), counting as it goes so that the exit cleanup of this thread, should it be
 * terminated anywhere in between, undoes exactly what the exporter did or less — never more:
 * STAGE says "pinned for this map" from the moment pin returns, MAPS counts the mapping from the
 * moment mapDmaBuf returns. Each count is stored in the same turn as a synchronous op returns, so
 * what a kill can leave uncounted (leaked, not undone twice) is the op's own last statements.
 */
async function localMapCounted(
  core: BufCore,
  att: DmaBufAttachment,
  dir: DmaDataDirection,
  pinOnMap: boolean,
): Promise<DmaBufSgTable> {
  const ops = core.ops!;
  const at = core.d.tables.attach;
  const rec = at.base(att._slot);
  if (pinOnMap) {
    try {
      const r = ops.pin!(att);
      checkOpResult(isThenable(r) ? await r : r, 'pin');
    } catch (e) {
      warnPinBusy(e);
      throw e;
    }
    Atomics.store(at.i32, rec + A_STAGE, STAGE_MAP_PINNED);
  }
  let table: DmaBufSgTable;
  try {
    const r = ops.mapDmaBuf(att, dir);
    const t = isThenable(r) ? await r : r;
    if (t === null || t === undefined) fail('ENOMEM', 'the exporter mapped nothing');
    if (!Array.isArray(t)) fail('EINVAL', 'mapDmaBuf must return an array of segments');
    table = t;
  } catch (e) {
    if (pinOnMap) {
      Atomics.store(at.i32, rec + A_STAGE, 0);
      await ops.unpin!(att);
    }
    throw e;
  }
  // The stage first: a kill between the two stores leaks the pin rather than undoing it twice.
  if (pinOnMap) Atomics.store(at.i32, rec + A_STAGE, 0);
  Atomics.add(at.i32, rec + A_MAPS, 1);
  return table;
}

/**
 * Unmaps one counted mapping (`call`: through the exporter; false once the buffer is released)
 * and uncounts it. When the ops run in this thread, STAGE says UNMAPPING while they may have run:
 * the exit cleanup then leaves that mapping alone (leaked if the kill came before the exporter's
 * unmap, never unmapped twice).
 */
async function unmapCounted(
  core: BufCore,
  att: DmaBufAttachment,
  token: unknown,
  dir: DmaDataDirection,
  pinOnMap: boolean,
  call: boolean,
): Promise<void> {
  const at = core.d.tables.attach;
  const rec = at.base(att._slot);
  const staged = call && typeof token !== 'number';
  if (staged) Atomics.store(at.i32, rec + A_STAGE, STAGE_UNMAPPING);
  try {
    if (call) await exporterUnmap(core, att, token, dir, pinOnMap);
  } finally {
    // Uncounted before the stage is cleared: a kill between the two leaks another mapping's
    // undo at worst, never repeats this one.
    Atomics.sub(at.i32, rec + A_MAPS, 1);
    if (staged) Atomics.store(at.i32, rec + A_STAGE, 0);
    Atomics.notify(at.i32, rec + A_MAPS);
  }
}

async function exporterUnmap(
  core: BufCore,
  att: DmaBufAttachment,
  token: unknown,
  dir: DmaDataDirection,
  pinOnMap: boolean,
): Promise<void> {
  if (typeof token !== 'number') {
    await localUnmap(core, att, token as DmaBufSgTable, dir, pinOnMap);
    return;
  }
  await callHome(core, 'att:unmap', { b: bufKey(core), a: attKey(att), id: token });
}

/**
 * The exporter's pin or unpin: run here (undefined when the op finished synchronously, so that
 * the caller counts it in the same turn) or forwarded home (a Promise).
 */
function exporterPin(
  core: BufCore,
  att: DmaBufAttachment,
  pin: boolean,
): Promise<void> | undefined {
  const ops = core.ops;
  if (ops !== null) {
    if (pin) {
      if (!ops.pin) return undefined;
      const r = ops.pin(att);
      if (!isThenable(r)) {
        checkOpResult(r, 'pin');
        return undefined;
      }
      return Promise.resolve(r).then((v) => checkOpResult(v, 'pin'));
    }
    if (!ops.unpin) return undefined;
    const r = ops.unpin(att);
    return isThenable(r) ? Promise.resolve(r).then(() => {}) : undefined;
  }
  return callHome(core, pin ? 'att:pin' : 'att:unpin', { b: bufKey(core), a: attKey(att) });
}

async function exporterAttach(core: BufCore, att: DmaBufAttachment): Promise<void> {
  if (core.ops !== null) {
    // Marked in the same turn as a synchronous attach op returns (see localMapCounted).
    const r = core.ops.attach?.(core.borrowed, att);
    checkOpResult(isThenable(r) ? await r : r, 'attach');
    markExporterAttached(core, att._slot);
    return;
  }
  await callHome(core, 'att:attach', { b: bufKey(core), a: attKey(att) });
}

/** Records that the exporter's attach op ran for attachment record `slot` (its detach is owed). */
function markExporterAttached(core: BufCore, slot: number): void {
  const at = core.d.tables.attach;
  Atomics.or(at.i32, at.base(slot) + A_FLAGS, AF_EXP_ATTACHED);
}

/**
 * Takes on the exporter's detach for attachment record `slot`: true for the one caller that finds
 * it owed (the importer's detach, a forwarded detach, the exit cleanup — whichever comes first),
 * which then calls the op. Claimed where the op runs, right before it: an importer killed after
 * asking its exporter's thread to detach can neither have it done twice nor lose it.
 */
function claimExporterDetach(core: BufCore, slot: number): boolean {
  const at = core.d.tables.attach;
  return (Atomics.and(at.i32, at.base(slot) + A_FLAGS, ~AF_EXP_ATTACHED) & AF_EXP_ATTACHED) !== 0;
}

async function exporterDetach(core: BufCore, att: DmaBufAttachment): Promise<void> {
  if (core.ops !== null) {
    if (claimExporterDetach(core, att._slot)) await core.ops.detach?.(core.borrowed, att);
    return;
  }
  await callHome(core, 'att:detach', { b: bufKey(core), a: attKey(att) });
}

function proxyFor(core: BufCore, key: unknown, create: boolean): DmaBufAttachment {
  if (!Array.isArray(key)) fail('EINVAL', 'bad attachment key');
  const [slot, gen] = key as [number, number];
  const p = core.proxies.get(slot) as DmaBufAttachment | undefined;
  if (p !== undefined && p._gen === gen) return p;
  if (!create) {
    const mine = importerAtts.get(slot);
    if (mine !== undefined && mine._gen === gen && mine._core === core) return mine;
  }
  const np = DmaBufAttachment._proxy(core, slot, gen);
  core.proxies.set(slot, np);
  return np;
}

registerRpc('att:attach', async (a: { b: unknown; a: unknown }) => {
  const core = exportedCore(a.b);
  const p = proxyFor(core, a.a, true);
  // An importer that exited while its request was on the way is (being) cleaned up: attaching
  // now would leave an attachment nobody detaches.
  const at = core.d.tables.attach;
  if (!core.d.isThreadAlive(Atomics.load(at.i32, at.base(p._slot) + A_THREAD))) {
    core.proxies.delete(p._slot);
    fail('ENODEV', 'the importer exited');
  }
  try {
    if (core.ops?.attach) checkOpResult(await core.ops.attach(core.borrowed, p), 'attach');
  } catch (e) {
    core.proxies.delete(p._slot);
    throw e;
  }
  markExporterAttached(core, p._slot);
});

registerRpc('att:detach', async (a: { b: unknown; a: unknown }) => {
  const core = exportedCore(a.b);
  const p = proxyFor(core, a.a, false);
  core.proxies.delete(p._slot);
  if (claimExporterDetach(core, p._slot)) await core.ops?.detach?.(core.borrowed, p);
});

registerRpc('att:pin', async (a: { b: unknown; a: unknown }) => {
  const core = exportedCore(a.b);
  const p = proxyFor(core, a.a, false);
  if (core.ops?.pin) checkOpResult(await core.ops.pin(p), 'pin');
  p._pins++;
});

registerRpc('att:unpin', async (a: { b: unknown; a: unknown }) => {
  const core = exportedCore(a.b);
  const p = proxyFor(core, a.a, false);
  p._pins = Math.max(0, p._pins - 1);
  await core.ops?.unpin?.(p);
});

registerRpc('att:map', async (a: { b: unknown; a: unknown; dir: unknown; pin: boolean }) => {
  const core = exportedCore(a.b);
  checkDirection(a.dir);
  const p = proxyFor(core, a.a, false);
  const table = await localMap(core, p, a.dir, a.pin === true);
  const id = ++p._mapSeq;
  p._exporterMaps.set(id, { table, dir: a.dir, pin: a.pin === true });
  return { segments: plainSegments(table, 'mapDmaBuf'), id };
});

registerRpc('att:unmap', async (a: { b: unknown; a: unknown; id: number }) => {
  const core = exportedCore(a.b);
  const p = proxyFor(core, a.a, false);
  const m = p._exporterMaps.get(a.id);
  if (m === undefined) fail('EINVAL', 'unknown mapping');
  p._exporterMaps.delete(a.id);
  await localUnmap(core, p, m.table, m.dir, m.pin);
});

registerRpc('att:reap', async (a: { b: unknown; a: unknown }) => {
  const core = exportedCore(a.b);
  await reapExporterSide(core, proxyFor(core, a.a, false));
});

registerRpc('att:invalidate', (key: [number, number]) => {
  const att = importerAtts.get(key[0]);
  if (att === undefined || att._gen !== key[1] || att._detached) return;
  callInvalidate(att);
});

function callInvalidate(att: DmaBufAttachment): void {
  try {
    att.importerOps?.invalidateMappings?.(att);
  } catch (e) {
    warn(`dmabuf: invalidateMappings threw: ${String(e)}`);
  }
}

const EMPTY_TABLE: DmaBufSgTable = Object.freeze([]);

/**
 * The exporter side of detaching a dead importer's attachment (reservation lock held by the
 * caller): unmaps what the exporter mapped for it, and undoes its pins.
 */
async function reapExporterSide(core: BufCore, p: DmaBufAttachment): Promise<void> {
  const ops = core.ops;
  if (ops === null) return;
  let tracked = 0;
  for (const [id, m] of p._exporterMaps) {
    p._exporterMaps.delete(id);
    try {
      await localUnmap(core, p, m.table, m.dir, m.pin);
    } catch (e) {
      warn(`dmabuf: unmap for an exited importer failed: ${String(e)}`);
    }
    tracked++;
  }
  const at = core.d.tables.attach;
  const b = at.base(p._slot);
  const maps = Atomics.load(at.i32, b + A_MAPS);
  // Explicit pins: a thread-bound exporter pinned here and counted them exactly (PINS may lag by
  // one the dying importer was about to count); a shared exporter's were made in the dead thread.
  const pins = core.shareable ? Atomics.load(at.i32, b + A_PINS) : p._pins;
  const pinOnMap = core.dynamic && !p.isDynamic;
  // Mappings a shared exporter made inside the dead thread (its ops ran there) are not tracked
  // here: their tables died with the thread. The exporter still unmaps each, with an empty table.
  // (A thread-bound exporter made every mapping here, tracked: MAPS may lag behind by one the
  // dead thread was about to count or uncount, which must not be undone twice.) A mapping the
  // dead thread was unmapping may be unmapped already: left alone. A pin it made for a map it
  // had not counted yet is undone.
  const stage = core.shareable ? Atomics.load(at.i32, b + A_STAGE) : 0;
  const untracked = core.shareable
    ? Math.max(0, maps - tracked - (stage === STAGE_UNMAPPING ? 1 : 0))
    : 0;
  for (let i = 0; i < untracked; i++) {
    try {
      await ops.unmapDmaBuf(p, EMPTY_TABLE, DMA_BIDIRECTIONAL);
    } catch (e) {
      warn(`dmabuf: unmap for an exited importer failed: ${String(e)}`);
    }
  }
  const unpins = pins + (pinOnMap ? untracked + (stage === STAGE_MAP_PINNED ? 1 : 0) : 0);
  for (let i = 0; i < unpins && ops.unpin; i++) {
    try {
      await ops.unpin(p);
    } catch (e) {
      warn(`dmabuf: unpin for an exited importer failed: ${String(e)}`);
    }
  }
  Atomics.store(at.i32, b + A_MAPS, 0);
  Atomics.store(at.i32, b + A_PINS, 0);
  Atomics.store(at.i32, b + A_STAGE, 0);
  Atomics.notify(at.i32, b + A_MAPS);
}

// ---- the attachment list (under the reservation lock) ---------------------------------------------

// A thread can be terminated between any two of these stores (its lock is then freed by the exit
// hook and its attachments unlinked by the cleanup): LISTED is set before the record joins the
// list, so that the cleanup always looks for it, and the count is recomputed from the list on
// every unlink, so that a death between a list change and the count's cannot leave it off.

function link(core: BufCore, slot: number): void {
  const at = core.d.tables.attach;
  const i32 = core.i32;
  const b = at.base(slot);
  Atomics.or(at.i32, b + A_FLAGS, AF_LISTED);
  Atomics.store(at.i32, b + A_NEXT, Atomics.load(i32, core.b + B_ATT_HEAD));
  Atomics.store(i32, core.b + B_ATT_HEAD, slot);
  Atomics.add(i32, core.b + B_ATT_COUNT, 1);
}

function unlink(core: BufCore, slot: number): void {
  const at = core.d.tables.attach;
  const i32 = core.i32;
  at.ensure(slot);
  const b = at.base(slot);
  if ((Atomics.load(at.i32, b + A_FLAGS) & AF_LISTED) === 0) return;
  let prev = -1;
  let cur = Atomics.load(i32, core.b + B_ATT_HEAD);
  while (cur !== 0 && cur !== slot) {
    prev = cur;
    at.ensure(cur);
    cur = Atomics.load(at.i32, at.base(cur) + A_NEXT);
  }
  if (cur === slot) {
    const next = Atomics.load(at.i32, b + A_NEXT);
    if (prev < 0) Atomics.store(i32, core.b + B_ATT_HEAD, next);
    else Atomics.store(at.i32, at.base(prev) + A_NEXT, next);
  }
  Atomics.store(i32, core.b + B_ATT_COUNT, attachmentSlots(core).length);
  Atomics.and(at.i32, b + A_FLAGS, ~AF_LISTED);
}

/** The attachment records on a buffer's list, in list order (reservation lock held). */
export function attachmentSlots(core: BufCore): number[] {
  const at = core.d.tables.attach;
  const out: number[] = [];
  let cur = Atomics.load(core.i32, core.b + B_ATT_HEAD);
  while (cur !== 0 && out.length < 1 << 20) {
    out.push(cur);
    at.ensure(cur);
    cur = Atomics.load(at.i32, at.base(cur) + A_NEXT);
  }
  return out;
}

/** The device name recorded for an attachment. */
export function attachmentDevName(core: BufCore, slot: number): string {
  const at = core.d.tables.attach;
  return core.d.strings.get(at.i32[at.base(slot) + A_DEVNAME]!);
}

// ---- attach / detach / invalidate -------------------------------------------------------------------

/** dma_buf_dynamic_attach (importerOps null: dma_buf_attach). */
export async function attachImpl(
  core: BufCore,
  dev: unknown,
  importerOps: unknown,
  importerPriv: unknown,
): Promise<DmaBufAttachment> {
  core.check();
  checkDevice(dev);
  const ops = importerOps ?? null;
  if (ops !== null) validateAttachOps(ops);
  forbidHeld(core.resv, 'attach');
  core.checkNotRevoked('attach');
  if (!core.exporterReachable()) fail('ENODEV', 'attach: the exporter is gone');
  const d = core.d;
  ensureInbox(d);
  const at = d.tables.attach;
  const slot = at.alloc();
  const gen = at.gen(slot);
  const b = at.base(slot);
  let flags = 0;
  if (ops !== null) {
    flags |= AF_DYNAMIC;
    if (ops.allowPeer2peer === true) flags |= AF_P2P;
    if (typeof ops.invalidateMappings === 'function') flags |= AF_INVALIDATE;
  }
  at.i32[b + A_BUF_SLOT] = core.slot;
  at.i32[b + A_BUF_GEN] = core.gen;
  at.i32[b + A_THREAD] = d.thread;
  at.i32[b + A_DEVNAME] = d.strings.intern(dev.name);
  Atomics.store(at.i32, b + A_FLAGS, flags);
  const att = new DmaBufAttachment(core, slot, gen, dev, ops, importerPriv, true);
  importerAtts.set(slot, att);
  core.localAttachments++;
  const undo = (): void => {
    att._detached = true;
    importerAtts.delete(slot);
    at.free(slot);
    core.localAttachments--;
    coreMaybeForget(core);
  };
  try {
    await exporterAttach(core, att);
  } catch (e) {
    undo();
    throw e;
  }
  try {
    await lockOrThrow(core.resv);
  } catch (e) {
    await exporterDetach(core, att).catch(() => {});
    undo();
    throw e;
  }
  try {
    link(core, slot);
  } finally {
    core.resv.unlock();
  }
  trace('bufAttach', () => ({
    ...tp(core),
    attachment: att,
    dynamic: ops !== null,
    dev: dev.name,
  }));
  return att;
}

/** dma_buf_detach. */
export async function detachImpl(core: BufCore, att: unknown): Promise<void> {
  if (!(att instanceof DmaBufAttachment) || !att._importer)
    fail('EINVAL', 'detach needs an attachment made by attach or dynamicAttach');
  if (att._core.slot !== core.slot || att._core.gen !== core.gen)
    fail('EINVAL', 'detach: the attachment belongs to another buffer');
  if (att._detached) fail('EINVAL', 'detach: already detached');
  if (!core.released) forbidHeld(core.resv, 'detach');
  const d = core.d;
  const at = d.tables.attach;
  att._detached = true;
  importerAtts.delete(att._slot);
  const release = (): void => {
    if (at.gen(att._slot) === att._gen) at.free(att._slot);
    core.localAttachments--;
    coreMaybeForget(core);
  };
  if (core.released) {
    release();
    fail('EINVAL', 'detach: the buffer was released before its attachment was detached');
  }
  if (att._maps.size > 0) {
    warn('dmabuf: detach with mappings still mapped (unmap first)');
  }
  try {
    await lockOrThrow(core.resv);
    try {
      unlink(core, att._slot);
    } finally {
      core.resv.unlock();
    }
    if (core.exporterReachable()) {
      try {
        await exporterDetach(core, att);
      } catch (e) {
        warn(`dmabuf: exporter detach failed: ${String(e)}`);
      }
    }
    trace('bufDetach', () => ({
      ...tp(core),
      attachment: att,
      dynamic: att.isDynamic,
      dev: att.dev.name,
    }));
  } finally {
    release();
  }
}

/**
 * dma_buf_invalidate_mappings: every attachment's mappings become stale (`mapping.valid` turns
 * false at once), and importers with an `invalidateMappings` op are told — synchronously when they
 * live in this thread, by message otherwise. Requires the reservation lock.
 */
export function invalidateMappingsImpl(core: BufCore): void {
  core.check();
  requireHeld(core.resv, 'invalidateMappings');
  const d = core.d;
  const at = d.tables.attach;
  for (const slot of attachmentSlots(core)) {
    const b = at.base(slot);
    Atomics.add(at.i32, b + A_INVAL_SEQ, 1);
    if ((Atomics.load(at.i32, b + A_FLAGS) & AF_INVALIDATE) === 0) continue;
    const thread = Atomics.load(at.i32, b + A_THREAD);
    const gen = at.gen(slot);
    if (thread === d.thread) {
      const att = importerAtts.get(slot);
      if (att !== undefined && att._gen === gen) callInvalidate(att);
    } else {
      rpcSend(d, thread, 'att:invalidate', [slot, gen]);
    }
  }
}

/**
 * The second stage of a revoke: resolves when no attachment of the buffer has a mapping left.
 * Takes the reservation lock briefly to read the list.
 */
export async function waitForUnmaps(core: BufCore, signal?: AbortSignal): Promise<void> {
  const at = core.d.tables.attach;
  for (;;) {
    await lockOrThrow(core.resv, signal);
    let busy: [number, number, number] | null = null;
    try {
      for (const slot of attachmentSlots(core)) {
        const n = Atomics.load(at.i32, at.base(slot) + A_MAPS);
        if (n > 0) {
          busy = [slot, at.gen(slot), n];
          break;
        }
      }
    } finally {
      core.resv.unlock();
    }
    if (busy === null) return;
    const [slot, , n] = busy;
    await waitWhileEqualsAsync(at.i32, at.base(slot) + A_MAPS, n, 50, { signal });
  }
}

// ---- thread exit --------------------------------------------------------------------------------------

/** Attachment records owned by `thread`: [slot, gen, bufSlot, bufGen]. */
export function collectThreadAttachments(d: Domain, thread: number): number[][] {
  const at = d.tables.attach;
  const out: number[][] = [];
  for (const s of at.allocated()) {
    const b = at.base(s);
    if (Atomics.load(at.i32, b + A_THREAD) !== thread) continue;
    out.push([s, at.gen(s), at.i32[b + A_BUF_SLOT]!, at.i32[b + A_BUF_GEN]!]);
  }
  return out;
}

/**
 * Detaches the attachments of an exited thread, in the observing thread: unlinks each under the
 * reservation lock, has the exporter unmap what it mapped for it and undo its pins, then calls the
 * exporter's detach — in the exporter's home thread when it is alive, here when the ops are here.
 */
export async function reapThreadAttachments(d: Domain, list: number[][]): Promise<void> {
  const at = d.tables.attach;
  for (const [slot, gen, bslot, bgen] of list) {
    if (at.gen(slot!) !== gen) continue;
    let core: BufCore | undefined;
    try {
      core = coreFor(d, bslot!, bgen!);
    } catch {
      at.free(slot!);
      continue;
    }
    core.localAttachments++;
    try {
      const key = { b: bufKey(core), a: [slot, gen] };
      const viaHome =
        core.ops === null || (d.thread !== core.home && (core.bflags & BF_HOME_DEAD) === 0);
      let attached = false;
      cleanupHolding(core.resv, true);
      try {
        await lockOrThrow(core.resv);
        try {
          // The thread may have died before the exporter's attach ran: then no detach is owed.
          attached = (Atomics.load(at.i32, at.base(slot!) + A_FLAGS) & AF_EXP_ATTACHED) !== 0;
          unlink(core, slot!);
          if (!attached) {
            // nothing on the exporter's side
          } else if (viaHome && (core.bflags & BF_HOME_DEAD) === 0)
            await callHome(core, 'att:reap', key);
          else if (core.ops !== null) await reapExporterSide(core, proxyFor(core, key.a, false));
        } finally {
          core.resv.unlock();
        }
      } finally {
        cleanupHolding(core.resv, false);
      }
      if (!attached) {
        // nothing to detach on the exporter's side
      } else if (viaHome && (core.bflags & BF_HOME_DEAD) === 0)
        await callHome(core, 'att:detach', key);
      else if (core.ops !== null) {
        const p = proxyFor(core, key.a, false);
        core.proxies.delete(slot!);
        if (claimExporterDetach(core, slot!)) await core.ops.detach?.(core.borrowed, p);
      }
      trace('bufDetach', () => ({
        ...tp(core!),
        attachment: null,
        dynamic: false,
        dev: attachmentDevName(core!, slot!),
        exited: true,
      }));
    } catch (e) {
      warn(`dmabuf: detaching an exited thread's attachment failed: ${String(e)}`);
    } finally {
      if (at.gen(slot!) === gen) at.free(slot!);
      core.localAttachments--;
      coreMaybeForget(core);
    }
  }
}

/** @internal for tests: the attachment object of this thread for a record slot. */
export function importerAttachment(slot: number): DmaBufAttachment | undefined {
  return importerAtts.get(slot);
}

void Domain;
