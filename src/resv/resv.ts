/**
 * DmaResv: reservation objects — the kernel's `struct dma_resv`, a wound/wait lock plus a list of
 * fences with usages, in shared memory, so that every thread of a domain sees the same lock and
 * the same fences.
 *
 * ## Overview
 * A reservation object tracks the operations that use a resource (a buffer): each operation adds a
 * fence, tagged with how it uses the resource ({@link DmaResvUsage}). Whoever wants to use the
 * resource next collects the fences it must wait for — a writer waits for readers and writers, a
 * reader only for writers ({@link DmaResv.usageRw}). Asking for a usage returns every fence of that
 * usage **or a lower one**: KERNEL < WRITE < READ < BOOKKEEP.
 *
 * ## Locking
 * The lock is a {@link WwMutex} of {@link reservationWwClass} (wait-die). Changing the fence list
 * ({@link reserveFences}, {@link addFence}, {@link replaceFences}, {@link copyFences}) and the
 * locked iterator {@link fences} need the lock held by the calling thread (EPERM otherwise). Adding
 * a fence needs a slot reserved since the lock was taken: unlocking forgets reservations, and
 * adding without one throws EINVAL (the kernel BUGs), as does adding a container fence (add its
 * members). Once reserved, adding cannot fail.
 *
 * Readers need no lock: {@link fencesUnlocked}, {@link getFences}, {@link getSingleton},
 * {@link testSignaled}, {@link waitTimeout} and {@link setDeadline} read the list lock-free. They
 * skip signaled fences, hold a reference to each fence they hand out, and **restart** from the
 * first fence when the list was replaced meanwhile (reservation growth, {@link copyFences}): the
 * entry then has `isRestarted` set, and callers that accumulate must start over. Their answer may
 * be stale in one direction only: a fence added or signaled after the read began may be missed or
 * still reported; a fence is never reported that was not in the list at some point of the read.
 *
 * ## Sharing and lifetime
 * The record (96 bytes) lives in the domain's shared reservation table; lists longer than five
 * fences move to chained 256-byte chunks of the `resvList` table. {@link share} gives a descriptor
 * for another worker ({@link DmaResv.fromShared}); every thread sees the same record. Each view
 * holds a reference: {@link fini} (or `using`, or garbage collection) drops it and the last one
 * frees the record and its fence references. When a thread dies holding the lock, the domain frees
 * the lock, completes a fence append the thread left half-done, and the next locker sees
 * {@link ownerDied}.
 *
 * Layouts: `_record.ts`.
 */

import { J_RECORD } from '../domain/_journal.js';
import { SlotMap } from '../domain/_slotmap.js';
import { TK_RESV, ticketClaim, ticketIssue } from '../domain/_tickets.js';
import { Domain } from '../domain/domain.js';
import { checkNs, checkSignalOpts, describe, fail } from '../errors.js';
import {
  F_CONTEXT,
  F_DRIVER,
  F_ERROR,
  F_FLAGS,
  F_HOME,
  F_SEQNO,
  F_STATE,
  F_TIMELINE,
  F_TSTAMP,
  F_TSVALID,
  isSignaledState,
  SF_SEQNO64,
  STATE_SIGNALED,
  slotAlloc,
  slotGet,
  slotPut,
  slotTryGet,
} from '../fence/_shared.js';
import { DMA_FENCE_FLAG_SEQNO64_BIT, DmaFence, seqnoIsLater } from '../fence/fence.js';
import { DmaFenceArray } from '../fence/fence-array.js';
import {
  C_COUNT,
  C_ENTRIES,
  C_MAX,
  C_NEXT,
  CHUNK_ENTRIES,
  consumeDescriptor,
  INLINE_ENTRIES,
  KIND_RESV,
  ownerThread,
  packHeld,
  R_COUNT,
  R_INLINE,
  R_LIST,
  R_LOCK_OWNER,
  R_RESERVED,
  recordAlloc,
  recordCheck,
  recordGet,
  recordPut,
  recordViews,
  registerKind,
  viewRegistry,
} from './_record.js';
import {
  reservationWwClass,
  type WwAcquireCtx,
  type WwLockInterruptibleResult,
  type WwLockResult,
  WwMutex,
} from './ww-mutex.js';

// ---- usages -------------------------------------------------------------------------------------

/**
 * How an operation uses the resource (`enum dma_resv_usage`). Ordered: asking for a usage returns
 * the fences of that usage and of every lower one.
 */
export const DmaResvUsage = Object.freeze({
  /** In-kernel memory management (moves, clears). Everybody always waits for these. */
  KERNEL: 0,
  /** An implicit write. */
  WRITE: 1,
  /** An implicit read. */
  READ: 2,
  /** Outside implicit sync: preemption, page-table updates, explicitly synced work. */
  BOOKKEEP: 3,
} as const);
export type DmaResvUsage = (typeof DmaResvUsage)[keyof typeof DmaResvUsage];

const USAGE_NAMES = ['kernel', 'write', 'read', 'bookkeep'] as const;

function checkUsage(u: unknown): asserts u is DmaResvUsage {
  if (u !== 0 && u !== 1 && u !== 2 && u !== 3)
    fail('EINVAL', `usage must be a DmaResvUsage (0..3), got ${describe(u)}`);
}

function checkFence(f: unknown, what: string): asserts f is DmaFence {
  if (!(f instanceof DmaFence)) fail('EINVAL', `${what}: not a DmaFence`);
  if (f.isContainer)
    fail('EINVAL', `${what}: container fences cannot be stored in a reservation object`);
}

/** Most fences one list may hold. */
const MAX_FENCES = 1 << 20;

// ---- entries ------------------------------------------------------------------------------------

function entryOf(slot: number, gen: number, usage: number): bigint {
  return (BigInt(slot) << 34n) | (BigInt(gen >>> 0) << 2n) | BigInt(usage);
}
function entrySlot(e: bigint): number {
  return Number(e >> 34n);
}
function entryGen(e: bigint): number {
  return Number(BigInt.asIntN(32, e >> 2n));
}
function entryUsage(e: bigint): number {
  return Number(e & 3n);
}
function listSlot(ref: bigint): number {
  return Number(ref & 0xffff_ffffn);
}

// ---- optional fence arrays ------------------------------------------------------------------------

type ArrayFactory = (
  fences: DmaFence[],
  context: number,
  seqno: number,
  signalOnAny: boolean,
) => DmaFence;

// getSingleton's array constructor: DmaFenceArray, replaceable by tests to observe its arguments.
let arrayFactory: ArrayFactory = (fences, context, seqno, signalOnAny) =>
  DmaFenceArray.create(fences, context, seqno, signalOnAny);

/** Installs the fence-array constructor {@link DmaResv#getSingleton} uses. @internal (tests) */
export function _setFenceArrayFactory(f: ArrayFactory): ArrayFactory {
  const old = arrayFactory;
  arrayFactory = f;
  return old;
}

// ---- iteration ----------------------------------------------------------------------------------

/** One fence of a reservation object, as the iterators yield it. */
export interface DmaResvEntry {
  readonly fence: DmaFence;
  readonly usage: DmaResvUsage;
  /**
   * True on the first entry of an iteration and, for {@link DmaResv#fencesUnlocked}, on the first
   * entry after a restart: whatever was accumulated from earlier entries must be dropped.
   */
  readonly isRestarted: boolean;
}

const FOUND = 1;
const END = 0;
const RESTART = -1;

/**
 * The lock-free cursor (`struct dma_resv_iter` with `dma_resv_for_each_fence_unlocked`). Returned
 * by {@link DmaResv#fencesUnlocked}; iterate it with `for…of`. Its `isRestarted` and `fence`
 * describe the current entry; `numFences` is the list length at the last (re)start.
 */
export class DmaResvIter implements IterableIterator<DmaResvEntry> {
  readonly usage: DmaResvUsage;
  /** Whether the current entry is the first after a (re)start. */
  isRestarted = false;
  /** Entries in the list at the last (re)start: an upper bound for what this pass yields. */
  numFences = 0;
  /** The current fence (null before the first and after the last). */
  fence: DmaFence | null = null;
  /** The current fence's usage. */
  fenceUsage: DmaResvUsage = 0;
  /** @internal raw current entry, referenced when `keepRefs` */ _slot = 0;
  /** @internal */ _gen = 0;

  private readonly resv: DmaResv;
  private readonly keepRefs: boolean;
  private readonly withSignaled: boolean;
  private ref = 0n;
  private index = 0;
  private count = 0;
  private chunk = 0;
  private off = 0;
  private started = false;
  private ended = false;

  /** @internal use {@link DmaResv#fencesUnlocked} */
  constructor(resv: DmaResv, usage: DmaResvUsage, keepRefs = false, withSignaled = false) {
    if (!(resv instanceof DmaResv)) fail('EINVAL', `not a reservation object: ${describe(resv)}`);
    checkUsage(usage);
    this.resv = resv;
    this.usage = usage;
    this.keepRefs = keepRefs;
    this.withSignaled = withSignaled;
  }

  [Symbol.iterator](): this {
    return this;
  }

  next(): IteratorResult<DmaResvEntry> {
    if (this.ended || !this._advance()) return this.return();
    if (!this.keepRefs) slotPut(this.resv._d, this._slot);
    return {
      done: false,
      value: { fence: this.fence!, usage: this.fenceUsage, isRestarted: this.isRestarted },
    };
  }

  /** `dma_resv_iter_end`: stops the iteration. */
  return(): IteratorResult<DmaResvEntry> {
    this.ended = true;
    this.fence = null;
    return { done: true, value: undefined };
  }

  /**
   * Moves to the next unsignaled fence (every fence with `withSignaled`), restarting when the list
   * was replaced. True with a reference held on (`_slot`, `_gen`); false at the end. @internal
   */
  _advance(): boolean {
    const resv = this.resv;
    // After fini the record may belong to another object: never read it.
    if (resv._dead) fail('EBADF', 'reservation object used after fini()');
    let restart = !this.started || resv._listRef() !== this.ref;
    this.started = true;
    this.isRestarted = false;
    for (;;) {
      if (restart) {
        this.ref = resv._listRef();
        this.count = resv._count(this.ref);
        this.index = 0;
        this.chunk = listSlot(this.ref);
        this.off = 0;
        this.numFences = this.count;
        this.isRestarted = true;
        restart = false;
      }
      const r = this.walk();
      if (r !== RESTART && resv._listRef() === this.ref) {
        if (r === END) this.fence = null;
        return r === FOUND;
      }
      if (r === FOUND) slotPut(resv._d, this._slot);
      restart = true;
    }
  }

  private walk(): number {
    const resv = this.resv;
    const d = resv._d;
    const r64 = resv._r64();
    const L = d.tables.resvList;
    const F = d.tables.fence;
    if (this.count < 0 || this.count > MAX_FENCES) return RESTART; // read from freed storage
    while (this.index < this.count) {
      let e: bigint;
      if (this.chunk === 0) {
        if (this.index >= INLINE_ENTRIES) return RESTART;
        e = Atomics.load(r64, ((resv._b + R_INLINE) >> 1) + this.index);
      } else {
        if (this.off === CHUNK_ENTRIES) {
          const next = Atomics.load(L.i32, L.base(this.chunk) + C_NEXT);
          if (!L.isSlot(next) || resv._listRef() !== this.ref) return RESTART;
          this.chunk = next;
          this.off = 0;
        }
        e = Atomics.load(L.i64, ((L.base(this.chunk) + C_ENTRIES) >> 1) + this.off);
        this.off++;
      }
      this.index++;
      // Validate before trusting the word: if the list was replaced, its storage may be reused.
      if (resv._listRef() !== this.ref) return RESTART;
      const u = entryUsage(e);
      if (u > this.usage) continue;
      const slot = entrySlot(e);
      const gen = entryGen(e);
      if (!slotTryGet(d, slot, gen)) return RESTART; // replaced in place and freed meanwhile
      if (!this.withSignaled && isSignaledState(Atomics.load(F.i32, F.base(slot) + F_STATE))) {
        slotPut(d, slot);
        continue;
      }
      const f = resv._view(slot, gen);
      if (!this.withSignaled && f.isSignaled()) {
        slotPut(d, slot);
        continue;
      }
      this._slot = slot;
      this._gen = gen;
      this.fence = f;
      this.fenceUsage = u as DmaResvUsage;
      return FOUND;
    }
    return END;
  }
}

// ---- the reservation object ---------------------------------------------------------------------

/** How a {@link DmaResv} travels to another thread of its domain (structured-cloneable). */
export interface DmaResvDescriptor {
  t: 'resv';
  /** Domain id. */
  d: number;
  s: number;
  g: number;
  /** The ticket its reference is claimed with (see domain/_tickets.ts). */
  k: number;
  kg: number;
  n: number;
}

let adoptRecord: { d: Domain; slot: number; gen: number } | null = null;
// shared records: slot → this thread's view (an array-backed map: see _slotmap.ts for why not a Map)
const views = new SlotMap<WeakRef<DmaResv>>();
// Held value: the record slot and this thread's journal word for the view's reference (packed).
const collected = viewRegistry(views);

export class DmaResv {
  /** @internal */ readonly _d: Domain;
  /** @internal */ readonly _slot: number;
  /** @internal */ readonly _gen: number;
  /** @internal Int32 index of the record */ readonly _b: number;
  private mutex: WwMutex | null = null;
  private readonly r32: Int32Array;
  private readonly r64: BigInt64Array;
  /** This thread's fence objects for entries (slot → gen, fence): keeps identity stable. */
  private objs: Map<number, { gen: number; fence: DmaFence }> | null = null;
  /** @internal set by fini() */ _dead = false;
  /** This thread's journal word for the view's reference, or -1. */
  private _jw: number;

  /** `dma_resv_init`: a new, unlocked reservation object without fences. */
  constructor() {
    const a = adoptRecord;
    adoptRecord = null;
    const d = a?.d ?? Domain.current();
    const [slot, gen] = a === null ? recordAlloc(d, KIND_RESV) : [a.slot, a.gen];
    this._d = d;
    this._slot = slot;
    this._gen = gen;
    this._b = d.tables.resv.base(slot);
    const views = recordViews(d.tables.resv, slot);
    this.r32 = views.i32;
    this.r64 = views.i64;
    this._jw = d.journalAdd(J_RECORD, slot);
    collected.register(this, packHeld(slot, this._jw), this);
  }

  /** Same as `new DmaResv()`. */
  static create(): DmaResv {
    return new DmaResv();
  }

  /**
   * `dma_resv_usage_rw`: the usage to wait for before an access — a write waits for READ (readers
   * and writers), a read for WRITE (writers only).
   */
  static usageRw(write: boolean): DmaResvUsage {
    if (typeof write !== 'boolean')
      fail('EINVAL', `usageRw takes a boolean, got ${describe(write)}`);
    return write ? DmaResvUsage.READ : DmaResvUsage.WRITE;
  }

  // ---- sharing and lifetime ------------------------------------------------------------------

  /** A descriptor for {@link DmaResv.fromShared} in another thread; it carries one reference. */
  share(): DmaResvDescriptor {
    this.check();
    // The ticket first: if the table is full (ENOMEM) no reference has been taken yet.
    const ticket = ticketIssue(this._d, TK_RESV, this._slot, this._gen);
    this._ref();
    return { t: 'resv', d: this._d.id, s: this._slot, g: this._gen, ...ticket };
  }

  /**
   * This thread's view of a reservation object shared with {@link share}, consuming the
   * descriptor's reference; the same object for the same record within a thread. EINVAL for a
   * malformed descriptor, EXDEV for another domain's, EBADF for a stale one.
   */
  static fromShared(desc: DmaResvDescriptor): DmaResv {
    const d = Domain.current();
    if (desc === null || typeof desc !== 'object' || desc.t !== 'resv')
      fail('EINVAL', 'not a reservation object descriptor');
    d.checkId(desc.d);
    if (!recordCheck(d, desc.s, desc.g, KIND_RESV))
      fail('EBADF', 'stale reservation object descriptor');
    if (!consumeDescriptor(desc)) fail('EBADF', 'the reservation descriptor was already consumed');
    // One claim per share, whatever the number of copies posted: the ticket.
    if (!ticketClaim(d, TK_RESV, desc.s, desc.g, desc))
      fail('EBADF', 'stale, forged or already consumed reservation descriptor');
    return DmaResv._adopt(d, desc.s, desc.g);
  }

  /**
   * This thread's view of the record `slot`/`gen`, handed a reference the caller holds (the view
   * keeps it, or drops it when this thread already has a view). For modules that keep record
   * references in shared memory (a buffer record's). @internal
   */
  static _adopt(d: Domain, slot: number, gen: number): DmaResv {
    const existing = views.get(slot)?.deref();
    if (existing !== undefined && existing._gen === gen && !existing._dead) {
      recordPut(d, slot);
      return existing;
    }
    adoptRecord = { d, slot, gen };
    let r: DmaResv;
    try {
      r = new DmaResv();
    } finally {
      adoptRecord = null;
    }
    views.set(slot, new WeakRef(r));
    return r;
  }

  /** Takes a reference on the record for a module that keeps it in shared memory. @internal */
  _ref(): [number, number] {
    this.check();
    recordGet(this._d, this._slot);
    if (views.get(this._slot)?.deref() !== this) views.set(this._slot, new WeakRef(this));
    return [this._slot, this._gen];
  }

  /**
   * `dma_resv_fini`: drops this view's reference; the last reference frees the record and puts its
   * fences. EBUSY while this thread holds the lock. Idempotent; the view is unusable afterwards
   * (EBADF).
   */
  fini(): void {
    if (this._dead) return;
    if (this.mutex?.isHeld()) fail('EBUSY', 'fini of a reservation object this thread holds');
    this._dead = true;
    this.objs = null;
    collected.unregister(this);
    const ref = views.get(this._slot);
    if (ref !== undefined && ref.deref() === this) views.delete(this._slot);
    this._d.journalRemove(this._jw);
    this._jw = -1;
    recordPut(this._d, this._slot);
  }

  [Symbol.dispose](): void {
    this.fini();
  }

  private check(): void {
    if (this._dead) fail('EBADF', 'reservation object used after fini()');
  }

  // ---- locking -------------------------------------------------------------------------------

  /** The lock itself. @internal */
  get _lock(): WwMutex {
    this.check();
    this.mutex ??= WwMutex._over(this._d, this._slot, this._gen, reservationWwClass);
    return this.mutex;
  }

  /** @internal fixed-length views of the reservation table (see recordViews) */
  _r32(): Int32Array {
    return this.r32;
  }

  /** @internal */
  _r64(): BigInt64Array {
    return this.r64;
  }

  /**
   * `dma_resv_lock`: resolves 0 (locked), `-EDEADLK` (back off: drop every lock of `ctx`, then
   * {@link lockSlow} this one) or `-EALREADY` (`ctx` holds it). `ctx = null` locks this object
   * alone. See {@link WwMutex#lock}.
   */
  lock(ctx: WwAcquireCtx | null): Promise<WwLockResult> {
    return this._lock.lock(ctx);
  }

  /** `dma_resv_lock_interruptible`: also resolves `-EINTR` when `signal` aborts first. */
  lockInterruptible(
    ctx: WwAcquireCtx | null,
    opts: { signal?: AbortSignal } = {},
  ): Promise<WwLockInterruptibleResult> {
    return this._lock.lockInterruptible(ctx, opts);
  }

  /** `dma_resv_lock_slow`: after `-EDEADLK`, with nothing else held by `ctx`; never fails. */
  lockSlow(ctx: WwAcquireCtx): Promise<0> {
    return this._lock.lockSlow(ctx);
  }

  /** `dma_resv_lock_slow_interruptible`. */
  lockSlowInterruptible(ctx: WwAcquireCtx, opts: { signal?: AbortSignal } = {}): Promise<0 | -4> {
    return this._lock.lockSlowInterruptible(ctx, opts);
  }

  /** Blocking {@link lock} for workers (see {@link WwMutex#lockSync}). */
  lockSync(ctx: WwAcquireCtx | null): WwLockResult {
    return this._lock.lockSync(ctx);
  }

  /** Blocking {@link lockSlow} for workers. */
  lockSlowSync(ctx: WwAcquireCtx): 0 {
    return this._lock.lockSlowSync(ctx);
  }

  /** `dma_resv_trylock`: false when held, even by the caller. No deadlock detection. */
  trylock(ctx: WwAcquireCtx | null = null): boolean {
    return this._lock.trylock(ctx);
  }

  /** `dma_resv_unlock`: forgets the reservation, releases the lock. EPERM if not held here. */
  unlock(): void {
    const m = this._lock;
    const r32 = this.r32;
    const owner = Atomics.load(r32, this._b + R_LOCK_OWNER);
    if (owner === 0 || ownerThread(owner) !== this._d.thread)
      fail('EPERM', 'unlock of a reservation object this thread does not hold');
    // The holder's own word: a plain store, published to the next holder by the release.
    if (r32[this._b + R_RESERVED] !== 0) r32[this._b + R_RESERVED] = 0;
    m._release(owner);
  }

  /** `dma_resv_is_locked`: whether anybody holds the lock (may be stale when read). */
  isLocked(): boolean {
    return this._lock.isLocked();
  }

  /** `dma_resv_held`: whether `ctx` (or, without it, this thread) holds the lock. */
  isHeld(ctx?: WwAcquireCtx | null): boolean {
    return this._lock.isHeld(ctx);
  }

  /** `dma_resv_assert_held`: EPERM unless {@link isHeld}`(ctx)`. Always on. */
  assertHeld(ctx?: WwAcquireCtx | null): void {
    this._lock.assertHeld(ctx);
  }

  /** `dma_resv_locking_ctx`: the holder's context when it is one of this thread's, else null. */
  get lockingCtx(): WwAcquireCtx | null {
    return this._lock.lockingCtx;
  }

  /** True while this thread's current acquisition recovered the lock from a dead holder. */
  get ownerDied(): boolean {
    return this._lock.ownerDied;
  }

  // ---- list access (internal) ----------------------------------------------------------------

  /** @internal the LIST word: (version << 32) | overflow slot */
  _listRef(): bigint {
    return Atomics.load(this.r64, (this._b + R_LIST) >> 1);
  }

  /** @internal number of entries of list `ref` */
  _count(ref: bigint): number {
    const ls = listSlot(ref);
    if (ls === 0) return Atomics.load(this.r32, this._b + R_COUNT);
    const L = this._d.tables.resvList;
    return Atomics.load(L.i32, L.base(ls) + C_COUNT);
  }

  private maxOf(ls: number): number {
    if (ls === 0) return INLINE_ENTRIES;
    const L = this._d.tables.resvList;
    return Atomics.load(L.i32, L.base(ls) + C_MAX);
  }

  private arrOf(ls: number): BigInt64Array {
    return ls === 0 ? this.r64 : this._d.tables.resvList.i64;
  }

  /** i64 index of entry `i` of list `ls` (lock held, or a list not yet published). */
  private entryIdx(ls: number, i: number): number {
    if (ls === 0) return ((this._b + R_INLINE) >> 1) + i;
    const L = this._d.tables.resvList;
    let s = ls;
    while (i >= CHUNK_ENTRIES) {
      s = Atomics.load(L.i32, L.base(s) + C_NEXT);
      i -= CHUNK_ENTRIES;
    }
    return ((L.base(s) + C_ENTRIES) >> 1) + i;
  }

  private readEntry(ls: number, i: number): bigint {
    return Atomics.load(this.arrOf(ls), this.entryIdx(ls, i));
  }

  private writeEntry(ls: number, i: number, e: bigint): void {
    Atomics.store(this.arrOf(ls), this.entryIdx(ls, i), e);
  }

  private setCount(ls: number, n: number): void {
    if (ls === 0) Atomics.store(this.r32, this._b + R_COUNT, n);
    else {
      const L = this._d.tables.resvList;
      Atomics.store(L.i32, L.base(ls) + C_COUNT, n);
    }
  }

  /** A new, unpublished overflow list for at least `capacity` entries. Returns its first chunk. */
  private newList(capacity: number): number {
    const L = this._d.tables.resvList;
    const chunks = Math.max(1, Math.ceil(capacity / CHUNK_ENTRIES));
    const slots: number[] = [];
    try {
      for (let i = 0; i < chunks; i++) slots.push(L.alloc());
    } catch (e) {
      for (const s of slots) L.free(s);
      throw e;
    }
    for (let i = 0; i + 1 < chunks; i++)
      Atomics.store(L.i32, L.base(slots[i]!) + C_NEXT, slots[i + 1]!);
    Atomics.store(L.i32, L.base(slots[0]!) + C_MAX, chunks * CHUNK_ENTRIES);
    return slots[0]!;
  }

  /** Publishes list `ls` as the current one (one 64-bit store; the version moves on). */
  private publish(ls: number): void {
    const ver = Number((this._listRef() >> 32n) & 0xffff_ffffn) + 1;
    Atomics.store(
      this.r64,
      (this._b + R_LIST) >> 1,
      BigInt.asIntN(64, (BigInt(ver >>> 0) << 32n) | BigInt(ls)),
    );
  }

  /** @internal this thread's fence object for entry (slot, gen); the caller holds a reference. */
  _view(slot: number, gen: number): DmaFence {
    const c = this.objs?.get(slot);
    if (c !== undefined && c.gen === gen) return c.fence;
    const f = DmaFence.fromSlot(this._d, slot, gen, false);
    this.remember(slot, gen, f);
    return f;
  }

  private remember(slot: number, gen: number, fence: DmaFence): void {
    const objs = (this.objs ??= new Map());
    objs.set(slot, { gen, fence });
    if (objs.size > 16 && objs.size > 2 * this._count(this._listRef())) this.prune();
  }

  /** Drops cached fence objects whose entries left the list (best effort, lock-free). */
  private prune(): void {
    const objs = this.objs;
    if (objs === null) return;
    const keep = new Set<number>();
    const ls = listSlot(this._listRef());
    const n = Math.min(this._count(this._listRef()), this.maxOf(ls));
    for (let i = 0; i < n; i++) keep.add(entrySlot(this.readEntry(ls, i)));
    for (const s of objs.keys()) if (!keep.has(s)) objs.delete(s);
  }

  /** Drops the cached object of fence `slot` unless another entry still holds it (lock held). */
  private forget(slot: number): void {
    const objs = this.objs;
    if (objs === null || !objs.has(slot)) return;
    const ref = this._listRef();
    const ls = listSlot(ref);
    const n = this._count(ref);
    for (let i = 0; i < n; i++) if (entrySlot(this.readEntry(ls, i)) === slot) return;
    objs.delete(slot);
  }

  /** Whether the fence of entry (slot, gen) has signaled (lock held: the entry's reference). */
  private entrySignaled(slot: number, gen: number): boolean {
    const F = this._d.tables.fence;
    F.ensure(slot); // another thread may have grown the table since this thread last looked
    if (isSignaledState(Atomics.load(F.i32, F.base(slot) + F_STATE))) return true;
    const c = this.objs?.get(slot);
    return c !== undefined && c.gen === gen && c.fence.isSignaled();
  }

  /**
   * One reference on the shared state of `fence`, publishing it if needed; a fence that has
   * already signaled gets a new record of its final state. Returns [slot, gen].
   */
  private fenceRef(fence: DmaFence): [number, number] {
    const d = this._d;
    if (fence._slot !== 0 && fence._domain !== d)
      fail('EXDEV', 'fence belongs to another dmabuf domain');
    const s = fence._slot !== 0 ? fence._slot : fence.publish(d);
    if (s !== 0) {
      slotGet(d, s);
      return [s, fence._gen];
    }
    const [slot, gen] = slotAlloc(d);
    const F = d.tables.fence;
    const b = F.base(slot);
    F.f64[(b + F_CONTEXT) >> 1] = fence.context;
    F.f64[(b + F_SEQNO) >> 1] = fence.seqno;
    F.i32[b + F_FLAGS] = (fence.flags & (1 << DMA_FENCE_FLAG_SEQNO64_BIT)) !== 0 ? SF_SEQNO64 : 0;
    F.i32[b + F_HOME] = d.thread;
    F.i32[b + F_ERROR] = fence.error;
    F.i32[b + F_DRIVER] = d.strings.intern(fence.driverName);
    F.i32[b + F_TIMELINE] = d.strings.intern(fence.timelineName);
    F.i64[(b + F_TSTAMP) >> 1] = fence.timestamp;
    Atomics.store(F.i32, b + F_TSVALID, 1);
    Atomics.store(F.i32, b + F_STATE, STATE_SIGNALED);
    return [slot, gen];
  }

  // ---- changing the list (lock held) ---------------------------------------------------------

  /**
   * `dma_resv_reserve_fences`: makes sure `n` more fences can be added before the lock is dropped.
   * Lock held. Grows the list (at least doubling) when needed, dropping signaled fences on the
   * way. Returns 0. EINVAL for `n` not a positive integer, ENOMEM when the shared tables are full.
   */
  reserveFences(n: number): 0 {
    this.check();
    this.assertHeld();
    if (!Number.isSafeInteger(n) || n <= 0)
      fail('EINVAL', `reserveFences needs a positive count, got ${describe(n)}`);
    const d = this._d;
    const r32 = this.r32;
    const res = this._b + R_RESERVED;
    const need = Math.max(Atomics.load(r32, res), n);
    const ref = this._listRef();
    const ls = listSlot(ref);
    const count = this._count(ref);
    const max = this.maxOf(ls);
    if (count + need <= max) {
      Atomics.store(r32, res, need);
      return 0;
    }
    if (count + need > MAX_FENCES)
      fail('ENOMEM', `a reservation object holds at most ${MAX_FENCES} fences`);
    let live = 0;
    for (let i = 0; i < count; i++) {
      const e = this.readEntry(ls, i);
      if (!this.entrySignaled(entrySlot(e), entryGen(e))) live++;
    }
    const target =
      ls !== 0 && live + need <= INLINE_ENTRIES ? 0 : this.newList(Math.max(count + need, max * 2));
    const dropped: bigint[] = [];
    let j = 0;
    for (let i = 0; i < count; i++) {
      const e = this.readEntry(ls, i);
      // References move to the new list; signaled fences are put after the switch.
      if (this.entrySignaled(entrySlot(e), entryGen(e))) dropped.push(e);
      else this.writeEntry(target, j++, e);
    }
    if (target === 0) for (let i = j; i < INLINE_ENTRIES; i++) this.writeEntry(0, i, 0n);
    this.setCount(target, j);
    this.publish(target);
    Atomics.store(r32, res, need);
    for (const e of dropped) {
      this.forget(entrySlot(e));
      slotPut(d, entrySlot(e));
    }
    if (ls !== 0) freeList(d, ls);
    return 0;
  }

  /**
   * `dma_resv_add_fence`: adds `fence` with `usage`. Lock held and a slot reserved (EINVAL
   * otherwise, as for a container fence or a bad usage); then it cannot fail. It overwrites the
   * entry of a fence of the same context whose usage is the same or higher and which `fence` is
   * later than or equal to — so a usage is raised in place, never lowered — or the entry of any
   * signaled fence; the entry takes `usage`. Otherwise it appends. Does not allocate JS objects
   * beyond publishing the fence.
   */
  addFence(fence: DmaFence, usage: DmaResvUsage): void {
    this.check();
    this.assertHeld();
    checkFence(fence, 'addFence');
    checkUsage(usage);
    const d = this._d;
    const r32 = this.r32;
    const res = this._b + R_RESERVED;
    const F = d.tables.fence;
    if (Atomics.load(r32, res) <= 0)
      fail('EINVAL', 'addFence without a reserved slot: call reserveFences() after locking');
    const [slot, gen] = this.fenceRef(fence);
    const e = entryOf(slot, gen, usage);
    const ref = this._listRef();
    const ls = listSlot(ref);
    const count = this._count(ref);
    const seqno64 = (fence.flags & (1 << DMA_FENCE_FLAG_SEQNO64_BIT)) !== 0;
    for (let i = 0; i < count; i++) {
      const old = this.readEntry(ls, i);
      const os = entrySlot(old);
      const og = entryGen(old);
      F.ensure(os);
      const ob = F.base(os);
      const replace =
        (F.f64[(ob + F_CONTEXT) >> 1] === fence.context &&
          entryUsage(old) >= usage &&
          ((os === slot && og === gen) ||
            seqnoIsLater(fence.seqno, F.f64[(ob + F_SEQNO) >> 1]!, seqno64))) ||
        this.entrySignaled(os, og);
      if (replace) {
        this.writeEntry(ls, i, e);
        Atomics.sub(r32, res, 1);
        if (os !== slot) this.forget(os);
        slotPut(d, os);
        this.remember(slot, gen, fence);
        return;
      }
    }
    // count + reserved <= max holds, and reserved >= 1: there is room.
    this.writeEntry(ls, count, e);
    this.setCount(ls, count + 1);
    Atomics.sub(r32, res, 1);
    this.remember(slot, gen, fence);
  }

  /**
   * `dma_resv_replace_fences`: every fence of `context` is replaced by `replacement` with `usage`.
   * Lock held. Only valid when the replaced operations no longer touch the resource once
   * `replacement` signals (a preemption fence replaced by a page-table update, for instance).
   */
  replaceFences(context: number, replacement: DmaFence, usage: DmaResvUsage): void {
    this.check();
    this.assertHeld();
    if (!Number.isSafeInteger(context) || context < 0)
      fail('EINVAL', `bad fence context ${describe(context)}`);
    checkFence(replacement, 'replaceFences');
    checkUsage(usage);
    const d = this._d;
    const F = d.tables.fence;
    const ref = this._listRef();
    const ls = listSlot(ref);
    const count = this._count(ref);
    let r: [number, number] | null = null;
    for (let i = 0; i < count; i++) {
      const old = this.readEntry(ls, i);
      const os = entrySlot(old);
      F.ensure(os);
      if (F.f64[(F.base(os) + F_CONTEXT) >> 1] !== context) continue;
      if (r === null) r = this.fenceRef(replacement);
      else slotGet(d, r[0]);
      this.writeEntry(ls, i, entryOf(r[0], r[1], usage));
      if (os !== r[0]) this.forget(os);
      slotPut(d, os);
    }
    if (r !== null) this.remember(r[0], r[1], replacement);
  }

  /**
   * `dma_resv_copy_fences`: replaces this object's fences with the unsignaled fences of `src`
   * (read lock-free). Lock of this object held. Reservations are forgotten. Returns 0.
   */
  copyFences(src: DmaResv): 0 {
    this.check();
    this.assertHeld();
    if (!(src instanceof DmaResv)) fail('EINVAL', 'copyFences needs a DmaResv');
    src.check();
    if (src._d !== this._d) fail('EXDEV', 'reservation objects of different domains');
    const d = this._d;
    const it = new DmaResvIter(src, DmaResvUsage.BOOKKEEP, true);
    let got: bigint[] = [];
    let fences: DmaFence[] = [];
    while (it._advance()) {
      if (it.isRestarted && got.length > 0) {
        for (const e of got) slotPut(d, entrySlot(e));
        got = [];
        fences = [];
      }
      got.push(entryOf(it._slot, it._gen, it.fenceUsage));
      fences.push(it.fence!);
    }
    const ref = this._listRef();
    const ls = listSlot(ref);
    const count = this._count(ref);
    let target: number;
    try {
      target = ls !== 0 && got.length <= INLINE_ENTRIES ? 0 : this.newList(got.length);
    } catch (e) {
      for (const x of got) slotPut(d, entrySlot(x));
      throw e;
    }
    for (let i = 0; i < got.length; i++) this.writeEntry(target, i, got[i]!);
    if (target === 0) for (let i = got.length; i < INLINE_ENTRIES; i++) this.writeEntry(0, i, 0n);
    this.setCount(target, got.length);
    const old: bigint[] = [];
    for (let i = 0; i < count; i++) old.push(this.readEntry(ls, i));
    this.publish(target);
    Atomics.store(this.r32, this._b + R_RESERVED, 0);
    for (const e of old) {
      this.forget(entrySlot(e));
      slotPut(d, entrySlot(e));
    }
    if (ls !== 0) freeList(d, ls);
    for (let i = 0; i < got.length; i++)
      this.remember(entrySlot(got[i]!), entryGen(got[i]!), fences[i]!);
    return 0;
  }

  // ---- reading -------------------------------------------------------------------------------

  /**
   * `dma_resv_for_each_fence`: every stored fence with a usage at or below `usage`, signaled ones
   * included, in list order. Lock held (checked at every step). The first entry has
   * `isRestarted`. The fences are this thread's objects (the ones added here, when they were).
   */
  *fences(usage: DmaResvUsage): Generator<DmaResvEntry, void, undefined> {
    this.check();
    checkUsage(usage);
    this.assertHeld();
    let first = true;
    for (let i = 0; ; i++) {
      this.assertHeld();
      const ref = this._listRef();
      const ls = listSlot(ref);
      if (i >= this._count(ref)) return;
      const e = this.readEntry(ls, i);
      const u = entryUsage(e);
      if (u > usage) continue;
      const fence = this._view(entrySlot(e), entryGen(e));
      yield { fence, usage: u as DmaResvUsage, isRestarted: first };
      first = false;
    }
  }

  /**
   * `dma_resv_for_each_fence_unlocked`: the unsignaled fences with a usage at or below `usage`,
   * without the lock. Restarts (entry `isRestarted`) when the list is replaced meanwhile. See the
   * module overview for what a concurrent reader may see.
   */
  fencesUnlocked(usage: DmaResvUsage): DmaResvIter {
    this.check();
    checkUsage(usage);
    return new DmaResvIter(this, usage);
  }

  /** `dma_resv_get_fences`: the unsignaled fences at or below `usage`. No lock needed. */
  getFences(usage: DmaResvUsage): DmaFence[] {
    let out: DmaFence[] = [];
    for (const { fence, isRestarted } of this.fencesUnlocked(usage)) {
      if (isRestarted) out = [];
      out.push(fence);
    }
    return out;
  }

  /**
   * `dma_resv_get_singleton`: one fence standing for every unsignaled fence at or below `usage` —
   * null for none, the fence itself for one, a new fence array (fresh context, seqno 1, signals
   * when all do) for more. Never add the result back to this object. No lock needed.
   */
  getSingleton(usage: DmaResvUsage): DmaFence | null {
    const fences = this.getFences(usage);
    if (fences.length === 0) return null;
    if (fences.length === 1) return fences[0]!;
    return arrayFactory(fences, DmaFence.contextAlloc(1), 1, false);
  }

  /** `dma_resv_test_signaled`: true iff no unsignaled fence at or below `usage`. No lock needed. */
  testSignaled(usage: DmaResvUsage): boolean {
    const it = this.fencesUnlocked(usage);
    const r = it.next();
    it.return();
    return r.done === true;
  }

  /**
   * `dma_resv_wait_timeout`: waits until every fence at or below `usage` has signaled. Resolves
   * the time left in ms (`Infinity` for an unbounded wait; `timeoutMs` itself when nothing was
   * pending), 0 on timeout, and — for `timeoutMs === 0` — 1 if everything has signaled, else 0.
   * Rejects ERESTARTSYS when `signal` aborts; a negative or NaN timeout is EINVAL. No lock needed.
   */
  async waitTimeout(
    usage: DmaResvUsage,
    timeoutMs: number,
    opts: { signal?: AbortSignal } = {},
  ): Promise<number> {
    checkUsage(usage);
    checkTimeout(timeoutMs);
    checkSignalOpts(opts, 'waitTimeout');
    if (timeoutMs === 0) return this.testSignaled(usage) ? 1 : 0;
    let left = timeoutMs;
    // The fences pending now, each view holding its own reference: if the object is finished
    // while this task waits (its buffer released), they are still waited for — the kernel's
    // waiter holds the buffer's file, so the object cannot go away under it. Its record may
    // then belong to another object: it is never read again.
    const pending: DmaFence[] = [];
    for (const { fence } of this.fencesUnlocked(usage)) pending.push(fence);
    for (const fence of pending) {
      const r = await fence.waitTimeout(left, opts);
      if (r <= 0) return 0;
      left = r;
    }
    // Then one walk of the list as it is now, as the kernel's walk sees fences added before it
    // ends (one walk: a wait must not chase fences that keep coming).
    if (this._dead) return left;
    for (const { fence } of this.fencesUnlocked(usage)) {
      if (fence.isSignaled()) continue;
      const r = await fence.waitTimeout(left, opts);
      if (r <= 0) return 0;
      left = r;
      if (this._dead) break;
    }
    return left;
  }

  /** Blocking {@link waitTimeout} for workers (EPERM where blocking is forbidden). */
  waitTimeoutSync(usage: DmaResvUsage, timeoutMs: number): number {
    checkUsage(usage);
    checkTimeout(timeoutMs);
    if (timeoutMs === 0) return this.testSignaled(usage) ? 1 : 0;
    let left = timeoutMs;
    for (const { fence } of this.fencesUnlocked(usage)) {
      const r = fence.waitTimeoutSync(left);
      if (r <= 0) return 0;
      left = r;
    }
    return left;
  }

  /**
   * `dma_resv_set_deadline`: asks every unsignaled fence at or below `usage` to signal by
   * `deadlineNs` (absolute, monotonic ns). No lock needed.
   */
  setDeadline(usage: DmaResvUsage, deadlineNs: bigint): void {
    checkUsage(usage);
    checkNs(deadlineNs, 'deadline');
    for (const { fence } of this.fencesUnlocked(usage)) fence.setDeadline(deadlineNs);
  }

  /**
   * `dma_resv_describe`: one line per fence up to READ, signaled ones included:
   * `\t<kernel|write|read> fence:<context>:<seqno> <timeline> <driver> [un]signalled\n`. Needs no
   * lock: a consistent snapshot of the list.
   */
  describe(): string {
    this.check();
    const it = new DmaResvIter(this, DmaResvUsage.READ, false, true);
    let lines: string[] = [];
    for (const { fence, usage, isRestarted } of it) {
      if (isRestarted) lines = [];
      lines.push(
        `\t${USAGE_NAMES[usage]} fence:${fence.context}:${fence.seqno} ${fence.timelineName} ${fence.driverName} ${fence.isSignaled() ? '' : 'un'}signalled\n`,
      );
    }
    return lines.join('');
  }

  /** Number of entries in the list, signaled ones included (a debugging aid; may be stale). */
  get numFences(): number {
    this.check();
    return this._count(this._listRef());
  }
}

function checkTimeout(t: unknown): asserts t is number {
  if (typeof t !== 'number' || Number.isNaN(t) || t < 0)
    fail('EINVAL', `timeout must be >= 0 ms, got ${describe(t)}`);
}

/** Frees every chunk of overflow list `ls` (no longer published). */
function freeList(d: Domain, ls: number): void {
  const L = d.tables.resvList;
  let s = ls;
  while (s !== 0) {
    const next = Atomics.load(L.i32, L.base(s) + C_NEXT);
    L.free(s);
    s = next;
  }
}

/** The current list of record `slot` as [list slot, count, max]. */
function currentList(d: Domain, slot: number): [number, number, number] {
  const R = d.tables.resv;
  const b = R.base(slot);
  const ls = listSlot(Atomics.load(R.i64, (b + R_LIST) >> 1));
  if (ls === 0) return [0, Atomics.load(R.i32, b + R_COUNT), INLINE_ENTRIES];
  const L = d.tables.resvList;
  return [ls, Atomics.load(L.i32, L.base(ls) + C_COUNT), Atomics.load(L.i32, L.base(ls) + C_MAX)];
}

function entryAt(d: Domain, slot: number, ls: number, i: number): bigint {
  if (ls === 0) {
    const R = d.tables.resv;
    return Atomics.load(R.i64, ((R.base(slot) + R_INLINE) >> 1) + i);
  }
  const L = d.tables.resvList;
  let s = ls;
  while (i >= CHUNK_ENTRIES) {
    s = Atomics.load(L.i32, L.base(s) + C_NEXT);
    i -= CHUNK_ENTRIES;
  }
  return Atomics.load(L.i64, ((L.base(s) + C_ENTRIES) >> 1) + i);
}

registerKind(
  KIND_RESV,
  // Last reference gone: put every fence and free the overflow list.
  (d, slot) => {
    const [ls, count] = currentList(d, slot);
    for (let i = 0; i < count; i++) slotPut(d, entrySlot(entryAt(d, slot, ls, i)));
    if (ls !== 0) freeList(d, ls);
  },
  // The lock holder died: an append it left between writing the entry and publishing the count
  // is completed (the fence was past its point of no return); the reservation is forgotten.
  (d, slot) => {
    const R = d.tables.resv;
    const b = R.base(slot);
    const [ls, count, max] = currentList(d, slot);
    if (count < max && entryAt(d, slot, ls, count) !== 0n) {
      if (ls === 0) Atomics.store(R.i32, b + R_COUNT, count + 1);
      else {
        const L = d.tables.resvList;
        Atomics.store(L.i32, L.base(ls) + C_COUNT, count + 1);
      }
    }
    Atomics.store(R.i32, b + R_RESERVED, 0);
  },
);
