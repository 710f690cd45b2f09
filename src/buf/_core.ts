/**
 * The per-thread view of a shared buffer record, and what every thread does to it: reference
 * counting, the per-thread bookkeeping of references (for thread-exit cleanup), reaching the
 * exporter (in this thread or in its home thread), and the release. Internal.
 *
 * A {@link BufCore} exists in a thread while the thread holds a reference, a handle or an
 * attachment on the buffer, or (in the home thread) from export to release. It caches the
 * written-once fields of the record; everything that changes is read from the record.
 *
 * ## Release
 * The thread whose put takes REFS to 0 owns the release. It takes the record off the global list
 * (STATE → DYING) and then the release runs in the exporter's home thread — there when it is the
 * home thread, otherwise forwarded there by message. When the home thread has exited, the release
 * runs where the last put happened, with the exporter's `release` op only if the ops can be rebuilt
 * there (shared exporters); a thread-bound exporter that died has nothing left to release. The
 * release itself follows the kernel's order: vmap/poll checks, the exporter's `release`, the
 * embedded reservation object's fini, the attachment check, the owner's put, the name and record
 * freed.
 */

import { SlotMap } from '../domain/_slotmap.js';
import { Domain } from '../domain/domain.js';
import { fail } from '../errors.js';
import type { DmaFenceCb } from '../fence/fence.js';
import { KIND_RESV, recordCheck, recordGet, recordPut } from '../resv/_record.js';
import { DmaResv } from '../resv/resv.js';
import { warn } from '../trace.js';
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
  B_NAME_LEN,
  B_POLL_IN,
  B_POLL_OUT,
  B_REFS,
  B_RESV_GEN,
  B_RESV_SLOT,
  B_SIZE,
  B_STATE,
  B_VMAP_COUNT,
  BF_DYNAMIC,
  BF_EMBEDDED_RESV,
  BF_HOME_DEAD,
  BF_REVOKED,
  BF_SHAREABLE,
  H_HOLD,
  H_VMAP,
  STATE_DEAD,
  STATE_DYING,
  STATE_LIVE,
} from './_layout.js';
import { registerRpc, rpcCall, rpcSend } from './_rpc.js';
import type { DmaBuf } from './dma-buf.js';
import { recordAdd, recordAlloc, recordFree } from './handles.js';
import type { DmaBufOps, DmaBufOwner, DmaBufSegment, DmaBufSgTable } from './ops.js';
import { sharedExporterReviver } from './ops.js';

/** The thread-local view of one buffer record. */
export class BufCore {
  readonly d: Domain;
  readonly slot: number;
  readonly gen: number;
  /** Int32 index of the record's first word. */
  readonly b: number;
  readonly size: number;
  readonly inode: number;
  readonly expName: string;
  readonly home: number;
  /** File flags (O_ACCMODE | O_NONBLOCK). */
  readonly fileFlags: number;
  readonly dynamic: boolean;
  readonly shareable: boolean;
  /** This thread's view of the buffer's reservation object (see {@link resv}). */
  #resv: DmaResv;
  /** Exporter ops usable in this thread (home, or rebuilt from a shared exporter), else null. */
  ops: DmaBufOps | null;
  priv: unknown;
  /** The shared exporter's descriptor data, when this thread has it. */
  sharedData: { kind: string; data: unknown } | null;
  /** The home thread's exporter state lives here (from export to release). */
  exported = false;
  owner: DmaBufOwner | undefined;
  /** A DmaBuf holding no reference, handed to exporter ops and attachments. */
  borrowed!: DmaBuf;

  /** References (DmaBuf objects, armed poll callbacks) this thread holds. */
  localRefs = 0;
  /** The handle record counting them, 0 when none. */
  holdSlot = 0;
  /** Buffer fds open in this thread. */
  localFds = 0;
  /** Attachments made in this thread and not yet detached. */
  localAttachments = 0;
  /** vmaps this thread holds (its share of VMAP_COUNT), and the handle record counting them. */
  localVmaps = 0;
  vmapSlot = 0;
  /** Set once the record was released: every use is EBADF from then on. */
  released = false;

  /** Exporter-side vmap result kept in the thread that called the exporter's vmap. */
  exporterVmap: DmaBufSgTable | null = null;
  /** This thread's mapping object for the current vmap generation. */
  vmapCache: { gen: number; map: object } | null = null;
  /** Armed poll callbacks of this thread: [EPOLLIN, EPOLLOUT]. */
  pollCbs: [DmaFenceCb | null, DmaFenceCb | null] = [null, null];
  /** Exporter-side attachment objects for forwarded calls, by attachment slot (home/ops thread). */
  readonly proxies = new Map<number, unknown>();

  constructor(
    d: Domain,
    slot: number,
    gen: number,
    resv: DmaResv,
    ops: DmaBufOps | null,
    priv: unknown,
  ) {
    const t = d.tables.buf;
    this.d = d;
    this.slot = slot;
    this.gen = gen;
    this.b = t.base(slot);
    const i32 = t.i32;
    this.size = t.f64[(this.b + B_SIZE) >> 1]!;
    this.inode = t.f64[(this.b + B_INODE) >> 1]!;
    this.expName = d.strings.get(i32[this.b + B_EXPNAME]!);
    this.home = i32[this.b + B_HOME]!;
    this.fileFlags = i32[this.b + B_FFLAGS]!;
    const bf = Atomics.load(i32, this.b + B_BFLAGS);
    this.dynamic = (bf & BF_DYNAMIC) !== 0;
    this.shareable = (bf & BF_SHAREABLE) !== 0;
    this.#resv = resv;
    this.ops = ops;
    this.priv = priv;
    this.sharedData = null;
    if (makeBorrowed !== undefined) this.borrowed = makeBorrowed(this);
  }

  /**
   * The buffer's reservation object. The view is this thread's shared one (the exporter's own
   * object, for a buffer exported with `resv`): if its holder ended it with `fini()`, a fresh view
   * is made — the buffer record keeps its own reference on the reservation record, so the record
   * outlives every view, and the buffer must not become unusable because somebody else finished
   * theirs.
   */
  get resv(): DmaResv {
    if (this.#resv._dead) {
      const t = this.d.tables.buf;
      this.#resv = resvFromRef(this.d, t.i32[this.b + B_RESV_SLOT]!, t.i32[this.b + B_RESV_GEN]!);
    }
    return this.#resv;
  }

  get i32(): Int32Array {
    return this.d.tables.buf.i32;
  }

  /** Current BFLAGS word. */
  get bflags(): number {
    return Atomics.load(this.d.tables.buf.i32, this.b + B_BFLAGS);
  }

  get refs(): number {
    return Atomics.load(this.d.tables.buf.i32, this.b + B_REFS);
  }

  get revoked(): boolean {
    return (this.bflags & BF_REVOKED) !== 0;
  }

  get embeddedResv(): boolean {
    return (this.bflags & BF_EMBEDDED_RESV) !== 0;
  }

  /** EBADF once released (a stale view). */
  check(): void {
    if (this.released || this.d.tables.buf.gen(this.slot) !== this.gen)
      fail('EBADF', 'the buffer was released');
  }

  /** ENODEV once revoked. */
  checkNotRevoked(what: string): void {
    if (this.revoked) fail('ENODEV', `${what}: the buffer was revoked`);
  }

  /** Whether exporter calls can be made here (ops local) or forwarded (home alive). */
  exporterReachable(): boolean {
    return this.ops !== null || (this.bflags & BF_HOME_DEAD) === 0;
  }

  /** Adopts a shared exporter's ops from descriptor data, if this thread has none yet. */
  adoptShared(kind: string, data: unknown): void {
    if (this.ops !== null) return;
    const revive = sharedExporterReviver(kind);
    if (revive === undefined) return; // unknown kind here: calls are forwarded home
    const exporterWords = new Int32Array(this.d.tables.buf.sab, (this.b + B_EXP) * 4, B_EXP_WORDS);
    const { ops, priv } = revive(data, { size: this.size, exporterWords });
    this.ops = ops;
    this.priv = priv;
    this.sharedData = { kind, data };
  }
}

// ---- the borrowed-view factory (set by dma-buf.ts, which imports this module) ---------------------

let makeBorrowed: ((core: BufCore) => DmaBuf) | undefined;

/** @internal */
export function setBorrowedFactory(f: (core: BufCore) => DmaBuf): void {
  makeBorrowed = f;
}

// ---- registry of this thread's cores -------------------------------------------------------------

const cores = new SlotMap<BufCore>();

/** This thread's core for `slot` if it has one of generation `gen`. */
export function coreCached(slot: number, gen: number): BufCore | undefined {
  const c = cores.get(slot);
  return c !== undefined && c.gen === gen && !c.released ? c : undefined;
}

/** Registers a core (export, or first sight of a buffer in this thread). */
export function coreRegister(core: BufCore): void {
  cores.set(core.slot, core);
}

/** This thread's core for a record, made from the record when needed. EBADF when stale. */
export function coreFor(d: Domain, slot: number, gen: number): BufCore {
  const c = coreCached(slot, gen);
  if (c !== undefined) return c;
  const t = d.tables.buf;
  if (!t.isSlot(slot) || t.gen(slot) !== gen) fail('EBADF', 'stale buffer reference');
  const st = Atomics.load(t.i32, t.base(slot) + B_STATE);
  if (st !== STATE_LIVE && st !== STATE_DYING) fail('EBADF', 'the buffer was released');
  for (let i = recent.length - 1; i >= 0; i--) {
    const r = recent[i]!;
    if (r.slot === slot && r.gen === gen && !r.released) {
      recent.splice(i, 1);
      cores.set(slot, r);
      return r;
    }
  }
  const b = t.base(slot);
  const resv = resvFromRef(d, t.i32[b + B_RESV_SLOT]!, t.i32[b + B_RESV_GEN]!);
  const core = new BufCore(d, slot, gen, resv, null, undefined);
  cores.set(slot, core);
  return core;
}

/**
 * Cores forgotten lately, kept so that a buffer handed to this thread again and again (a frame
 * posted every round) reuses its view, its reservation view and its rebuilt exporter ops.
 */
const recent: BufCore[] = [];
const RECENT_MAX = 32;

/** Drops the core from this thread's registry when nothing here uses it any more. */
export function coreMaybeForget(core: BufCore): void {
  if (
    core.exported ||
    core.localRefs > 0 ||
    core.localFds > 0 ||
    core.localAttachments > 0 ||
    core.localVmaps > 0
  )
    return;
  if (cores.get(core.slot) === core) {
    cores.delete(core.slot);
    if (!core.released) {
      recent.push(core);
      if (recent.length > RECENT_MAX) recent.shift();
    }
  }
}

/** Number of cores this thread knows (diagnostics and tests). */
export function coreCount(): number {
  return cores.size;
}

// ---- reservation objects in records (the one place that knows how a resv is referenced) -----------

// The buffer record owns one reference on its reservation record (taken at export with share(),
// dropped at release), so that the reservation object outlives the buffer whoever else drops
// theirs. Each thread's view of it holds its own reference (DmaResv's rule).

/** @internal takes the buffer's reference on `resv`; returns the [slot, gen] the record stores. */
export function resvRef(resv: DmaResv): [number, number] {
  return resv._ref();
}

/** @internal drops the buffer's reference on its reservation record. */
export function resvUnref(d: Domain, slot: number): void {
  recordPut(d, slot);
}

/**
 * @internal this thread's view of the reservation object a record names (the same object for the
 * same record within a thread). The buffer's own reference keeps the record alive meanwhile.
 */
export function resvFromRef(d: Domain, slot: number, gen: number): DmaResv {
  if (!recordCheck(d, slot, gen, KIND_RESV))
    fail('EBADF', "the buffer's reservation object is gone");
  recordGet(d, slot);
  return DmaResv._adopt(d, slot, gen);
}

// ---- reference counting ---------------------------------------------------------------------------

/** Adds a reference the caller is entitled to (it holds one already). */
export function refGet(core: BufCore): void {
  Atomics.add(core.i32, core.b + B_REFS, 1);
}

/**
 * `file_ref_get`: takes a reference if the record still has any (REFS > 0), whatever thread holds
 * them. Returns the record's generation after the reference was taken, or -1.
 */
export function refTryGet(d: Domain, slot: number): number {
  const t = d.tables.buf;
  t.ensure(slot);
  const i = t.base(slot) + B_REFS;
  for (;;) {
    const n = Atomics.load(t.i32, i);
    if (n <= 0) return -1;
    if (Atomics.compareExchange(t.i32, i, n, n + 1) === n) return t.gen(slot);
  }
}

/** Drops a reference; the last one starts the release. */
export function refPut(core: BufCore): void {
  const old = Atomics.sub(core.i32, core.b + B_REFS, 1);
  if (old === 1) startRelease(core);
  else if (old <= 0) {
    Atomics.add(core.i32, core.b + B_REFS, 1);
    warn('dmabuf: buffer reference count underflow (put without a reference)');
  }
}

/** Puts `n` references of a record by slot (thread-exit cleanup). */
export function refPutRecord(d: Domain, slot: number, gen: number, n: number): void {
  if (n <= 0) return;
  const t = d.tables.buf;
  if (!t.isSlot(slot) || t.gen(slot) !== gen) return;
  let core: BufCore;
  try {
    core = coreFor(d, slot, gen);
  } catch {
    return;
  }
  for (let i = 0; i < n; i++) refPut(core);
  coreMaybeForget(core);
}

/** Records `n` more references held by this thread (after they were taken). */
export function holdAdd(core: BufCore, n: number): void {
  if (core.holdSlot === 0) {
    core.holdSlot = recordAlloc(core.d, core.d.thread, H_HOLD, core.slot, core.gen, n, 0);
  } else {
    recordAdd(core.d, core.holdSlot, n);
  }
  core.localRefs += n;
}

/**
 * Records `n` more (or, negative, fewer) vmaps held by this thread, so that its exit can drop
 * them. Never below zero: a thread may vunmap a mapping another thread made.
 */
export function vmapHoldAdd(core: BufCore, n: number): void {
  const next = Math.max(0, core.localVmaps + n);
  const delta = next - core.localVmaps;
  if (delta === 0) return;
  core.localVmaps = next;
  if (core.vmapSlot === 0) {
    core.vmapSlot = recordAlloc(core.d, core.d.thread, H_VMAP, core.slot, core.gen, next, 0);
  } else if (next === 0) {
    recordFree(core.d, core.vmapSlot);
    core.vmapSlot = 0;
  } else {
    recordAdd(core.d, core.vmapSlot, delta);
  }
}

/** Records `n` references fewer (before they are put). */
export function holdSub(core: BufCore, n: number): void {
  core.localRefs -= n;
  if (core.localRefs <= 0) {
    core.localRefs = 0;
    if (core.holdSlot !== 0) recordFree(core.d, core.holdSlot);
    core.holdSlot = 0;
  } else {
    recordAdd(core.d, core.holdSlot, -n);
  }
}

// ---- release --------------------------------------------------------------------------------------

/** Exporter-side state that only the home thread has: ops, priv, owner (by slot). */
const exported = new SlotMap<BufCore>();

/** @internal registers a freshly exported core as this (home) thread's. */
export function exportedRegister(core: BufCore): void {
  core.exported = true;
  exported.set(core.slot, core);
  cores.set(core.slot, core);
}

/** Number of buffers this thread exported that are not released yet (diagnostics and tests). */
export function exportedCount(): number {
  return exported.size;
}

function startRelease(core: BufCore): void {
  const i32 = core.i32;
  // 1. Off the global list: iterators skip it from now on.
  Atomics.store(i32, core.b + B_STATE, STATE_DYING);
  const d = core.d;
  if (d.thread === core.home) {
    runRelease(exported.get(core.slot) ?? core, true);
    return;
  }
  if ((core.bflags & BF_HOME_DEAD) === 0 && d.isThreadAlive(core.home)) {
    rpcSend(d, core.home, 'buf:release', [core.slot, core.gen]);
    return;
  }
  runRelease(core, core.ops !== null);
}

registerRpc('buf:release', (args: [number, number]) => {
  const [slot, gen] = args;
  const core = exported.get(slot);
  if (core !== undefined && core.gen === gen) {
    runRelease(core, true);
    return;
  }
  // Not ours (any more): finish the record so that it does not leak.
  const d = Domain.current();
  const t = d.tables.buf;
  if (
    t.isSlot(slot) &&
    t.gen(slot) === gen &&
    Atomics.load(t.i32, t.base(slot) + B_STATE) === STATE_DYING
  ) {
    try {
      runRelease(coreFor(d, slot, gen), false);
    } catch {
      // the record vanished meanwhile
    }
  }
});

/**
 * The kernel's dma_buf_release, in its order. `withExporter` false skips the exporter's release
 * (its thread is gone). Synchronous unless the exporter's release returns a Promise.
 */
export function runRelease(core: BufCore, withExporter: boolean): void {
  if (core.released) return;
  const i32 = core.i32;
  if (Atomics.load(i32, core.b + B_VMAP_COUNT) !== 0)
    warn('dmabuf: buffer released while vmapped (BUG_ON(vmapping_counter))');
  if (Atomics.load(i32, core.b + B_POLL_IN) !== 0 || Atomics.load(i32, core.b + B_POLL_OUT) !== 0)
    warn('dmabuf: buffer released with an armed poll callback');
  const ops = withExporter ? core.ops : null;
  let r: unknown;
  if (ops !== null) {
    try {
      r = ops.release(core.borrowed);
    } catch (e) {
      warn(`dmabuf: exporter release threw: ${String(e)}`);
    }
  }
  if (r instanceof Promise) {
    r.then(
      () => finishRelease(core),
      (e) => {
        warn(`dmabuf: exporter release failed: ${String(e)}`);
        finishRelease(core);
      },
    );
  } else {
    finishRelease(core);
  }
}

function finishRelease(core: BufCore): void {
  if (core.released) return;
  const d = core.d;
  const t = d.tables.buf;
  const i32 = t.i32;
  // dma_resv_fini of an embedded reservation object: this thread's view goes, and the buffer's
  // own reference (a caller-provided object keeps the caller's references).
  try {
    if (core.embeddedResv) core.resv.fini();
  } catch (e) {
    warn(`dmabuf: reservation fini failed: ${String(e)}`);
  }
  resvUnref(d, i32[core.b + B_RESV_SLOT]!);
  if (Atomics.load(i32, core.b + B_ATT_COUNT) !== 0)
    warn('dmabuf: buffer released with attachments still attached');
  if (core.exported) {
    try {
      core.owner?.put?.();
    } catch (e) {
      warn(`dmabuf: owner put failed: ${String(e)}`);
    }
  }
  if (core.vmapSlot !== 0) {
    // Released while this thread still held vmaps (warned above): its record goes with it.
    recordFree(d, core.vmapSlot);
    core.vmapSlot = 0;
    core.localVmaps = 0;
  }
  core.released = true;
  core.exported = false;
  if (exported.get(core.slot) === core) exported.delete(core.slot);
  if (cores.get(core.slot) === core) cores.delete(core.slot);
  Atomics.store(i32, core.b + B_NAME_LEN, 0);
  Atomics.store(i32, core.b + B_EXPKIND, 0);
  Atomics.store(i32, core.b + B_STATE, STATE_DEAD);
  if (t.gen(core.slot) === core.gen) t.free(core.slot);
  releaseHook?.(core);
}

let releaseHook: ((core: BufCore) => void) | undefined;

/** @internal lets dma-buf.ts observe releases (trace, tests). */
export function setReleaseHook(h: (core: BufCore) => void): void {
  releaseHook = h;
}

// ---- reaching the exporter ------------------------------------------------------------------------

/** The [slot, gen] pair that names a buffer in messages. */
export function bufKey(core: BufCore): [number, number] {
  return [core.slot, core.gen];
}

/** The home thread's core for a forwarded call, EBADF when it is not (any more) exported here. */
export function exportedCore(key: unknown): BufCore {
  if (!Array.isArray(key)) fail('EINVAL', 'bad buffer key');
  const [slot, gen] = key as [number, number];
  const c = exported.get(slot);
  if (c === undefined || c.gen !== gen || c.released)
    fail('EBADF', 'the buffer is not exported by this thread');
  return c;
}

/**
 * Calls `op` in the exporter's home thread (the ops are not available in this one). ENODEV when
 * the home thread has exited.
 */
export async function callHome(core: BufCore, op: string, args: unknown): Promise<any> {
  if ((core.bflags & BF_HOME_DEAD) !== 0)
    fail('ENODEV', `the exporter of this buffer is gone (its thread ${core.home} exited)`);
  return rpcCall(core.d, core.home, op, args);
}

/** Copies segments into plain objects (what travels and what importers get). */
export function plainSegments(table: unknown, what: string): DmaBufSegment[] {
  if (!Array.isArray(table)) fail('EINVAL', `${what}: the exporter returned no segment array`);
  return table.map((s: DmaBufSegment) => {
    if (
      s === null ||
      typeof s !== 'object' ||
      !(s.memory instanceof SharedArrayBuffer) ||
      !Number.isSafeInteger(s.offset) ||
      !Number.isSafeInteger(s.length) ||
      s.offset < 0 ||
      s.length < 0 ||
      s.offset + s.length > s.memory.byteLength
    ) {
      fail('EINVAL', `${what}: the exporter returned a malformed segment`);
    }
    return { memory: s.memory, offset: s.offset, length: s.length };
  });
}

// ---- shared-record helpers --------------------------------------------------------------------------

/** Marks the buffers whose home was `thread` (exit cleanup). Returns DYING records to finish. */
export function markHomeDead(d: Domain, thread: number): [number, number][] {
  const t = d.tables.buf;
  const dying: [number, number][] = [];
  for (const s of t.allocated()) {
    const b = t.base(s);
    if (Atomics.load(t.i32, b + B_HOME) !== thread) continue;
    const st = Atomics.load(t.i32, b + B_STATE);
    if (st === STATE_LIVE) Atomics.or(t.i32, b + B_BFLAGS, BF_HOME_DEAD);
    else if (st === STATE_DYING) {
      Atomics.or(t.i32, b + B_BFLAGS, BF_HOME_DEAD);
      dying.push([s, t.gen(s)]);
    }
  }
  return dying;
}

/** Finishes the releases a dead home thread never ran. */
export function finishOrphanReleases(d: Domain, dying: [number, number][]): void {
  for (const [slot, gen] of dying) {
    try {
      runRelease(coreFor(d, slot, gen), false);
    } catch {
      // gone meanwhile
    }
  }
}
