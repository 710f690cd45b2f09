// STAND-IN: replaced by the resv/containers branch
/**
 * Minimal stand-in for the reservation object, so that the buffer core compiles and its tests run
 * before the real `DmaResv` lands. Behaviourally honest within its limits: the lock is a word in
 * the domain's `resv` table (any thread can take it; async waits in any thread, blocking waits in
 * workers), and the fence list lives in a `resvList` slot so that every thread sees the same
 * fences. No wound/wait deadlock detection (a context only reports EALREADY), at most
 * {@link MAX_FENCES} fences (in chained `resvList` slots), signaled fences are not stored.
 */

import { acquired, mightLock, mightWait, released } from '../debug/lockdep.js';
import { interrupted, waitWhileEqualsAsync, waitWhileEqualsSync } from '../domain/_wait.js';
import { Domain, onThreadExit } from '../domain/domain.js';
import { DmaBufError, fail } from '../errors.js';
import { slotGet, slotPut, slotTryGet } from '../fence/_shared.js';
import { DmaFence, type DmaFenceOps } from '../fence/fence.js';

const R_LOCK = 2;
const R_WAITERS = 3;
const R_LIST = 4;
const R_LIVE = 5;

const L_COUNT = 2;
const L_RESERVED = 3;
const L_NEXT = 4;
const L_ENTRIES = 5;
const ENTRY = 3;
const PER_SLOT = 19;
const MAX_FENCES = 1024;

export const DmaResvUsage = { KERNEL: 0, WRITE: 1, READ: 2, BOOKKEEP: 3 } as const;
export type DmaResvUsage = (typeof DmaResvUsage)[keyof typeof DmaResvUsage];

const USAGE_NAMES = ['kernel', 'write', 'read', 'bookkeep'];

/** Acquire context (stand-in: remembers what it holds, for EALREADY). */
export class WwAcquireCtx {
  readonly held = new Set<DmaResv>();
}

export interface ResvDescriptor {
  t: 'resv';
  d: number;
  s: number;
  g: number;
}

const views: (WeakRef<DmaResv> | undefined)[] = [];

function checkUsage(u: unknown): asserts u is DmaResvUsage {
  if (u !== 0 && u !== 1 && u !== 2 && u !== 3)
    fail('EINVAL', `bad reservation usage ${String(u)}`);
}

export class DmaResv {
  /** @internal */ readonly _d: Domain;
  /** @internal */ readonly _slot: number;
  /** @internal */ readonly _gen: number;
  private ctx: WwAcquireCtx | null = null;

  constructor(_slotRef?: { d: Domain; slot: number; gen: number }) {
    if (_slotRef !== undefined) {
      this._d = _slotRef.d;
      this._slot = _slotRef.slot;
      this._gen = _slotRef.gen;
      return;
    }
    const d = Domain.current();
    const t = d.tables.resv;
    this._d = d;
    this._slot = t.alloc();
    this._gen = t.gen(this._slot);
    Atomics.store(t.i32, t.base(this._slot) + R_LIVE, 1);
    views[this._slot] = new WeakRef(this);
  }

  static create(): DmaResv {
    return new DmaResv();
  }

  /** `dma_resv_usage_rw`: READ for a writer (waits for everything), WRITE for a reader. */
  static usageRw(write: boolean): DmaResvUsage {
    return write ? DmaResvUsage.READ : DmaResvUsage.WRITE;
  }

  private get i32(): Int32Array {
    return this._d.tables.resv.i32;
  }
  private get base(): number {
    return this._d.tables.resv.base(this._slot);
  }

  private checkLive(): void {
    const t = this._d.tables.resv;
    if (t.gen(this._slot) !== this._gen || Atomics.load(t.i32, this.base + R_LIVE) !== 1)
      fail('EINVAL', 'reservation object was finalized');
  }

  // ---- lock ---------------------------------------------------------------------------------------

  lock(ctx: WwAcquireCtx | null = null): Promise<number> {
    return this.lockInterruptible(ctx, {});
  }

  async lockInterruptible(
    ctx: WwAcquireCtx | null,
    opts: { signal?: AbortSignal } = {},
  ): Promise<number> {
    this.checkLive();
    if (ctx?.held.has(this)) return -114;
    mightLock(this, ctx !== null, 'dma_resv_lock');
    const me = this._d.thread;
    const idx = this.base + R_LOCK;
    for (;;) {
      const cur = Atomics.compareExchange(this.i32, idx, 0, me);
      if (cur === 0) break;
      try {
        await waitWhileEqualsAsync(this.i32, idx, cur, Infinity, {
          signal: opts.signal,
          waiters: this.base + R_WAITERS,
        });
      } catch (e) {
        if (e instanceof DmaBufError && e.code === 'ERESTARTSYS') return -4;
        throw e;
      }
    }
    this.ctx = ctx;
    ctx?.held.add(this);
    acquired(this);
    return 0;
  }

  lockSync(ctx: WwAcquireCtx | null = null): number {
    this.checkLive();
    if (ctx?.held.has(this)) return -114;
    mightLock(this, ctx !== null, 'dma_resv_lock');
    const me = this._d.thread;
    const idx = this.base + R_LOCK;
    for (;;) {
      const cur = Atomics.compareExchange(this.i32, idx, 0, me);
      if (cur === 0) break;
      waitWhileEqualsSync(this.i32, idx, cur, Infinity, this.base + R_WAITERS);
    }
    this.ctx = ctx;
    ctx?.held.add(this);
    acquired(this);
    return 0;
  }

  trylock(): boolean {
    this.checkLive();
    if (Atomics.compareExchange(this.i32, this.base + R_LOCK, 0, this._d.thread) !== 0)
      return false;
    this.ctx = null;
    acquired(this);
    return true;
  }

  unlock(): void {
    const idx = this.base + R_LOCK;
    if (Atomics.load(this.i32, idx) === 0) fail('EPERM', 'unlock of an unlocked reservation');
    this.ctx?.held.delete(this);
    this.ctx = null;
    released(this);
    // Reservations are reset on unlock (as debug kernels do), to catch add without reserve.
    const l = this.listBase();
    if (l >= 0) {
      const lt = this._d.tables.resvList;
      Atomics.store(lt.i32, l + L_RESERVED, Atomics.load(lt.i32, l + L_COUNT));
    }
    Atomics.store(this.i32, idx, 0);
    Atomics.notify(this.i32, idx);
  }

  isLocked(): boolean {
    return Atomics.load(this.i32, this.base + R_LOCK) !== 0;
  }

  /** The thread holding the lock (0 when unlocked). Stand-in only. */
  get ownerThread(): number {
    return Atomics.load(this.i32, this.base + R_LOCK);
  }

  assertHeld(): void {
    if (!this.isLocked()) fail('EPERM', 'the reservation lock must be held');
  }

  // ---- fences -------------------------------------------------------------------------------------

  /** Int32 index of entry `i` of the list starting at `l` (walks the chain). */
  private ea(l: number, i: number): number {
    const lt = this._d.tables.resvList;
    let b = l;
    for (let k = Math.floor(i / PER_SLOT); k > 0; k--)
      b = lt.base(Atomics.load(lt.i32, b + L_NEXT));
    return b + L_ENTRIES + (i % PER_SLOT) * ENTRY;
  }

  private ensureSlots(l: number, n: number): void {
    const lt = this._d.tables.resvList;
    let b = l;
    for (let k = Math.ceil(n / PER_SLOT) - 1; k > 0; k--) {
      let next = Atomics.load(lt.i32, b + L_NEXT);
      if (next === 0) {
        next = lt.alloc();
        Atomics.store(lt.i32, b + L_NEXT, next);
      }
      lt.ensure(next);
      b = lt.base(next);
    }
  }

  private listBase(): number {
    const s = Atomics.load(this.i32, this.base + R_LIST);
    if (s === 0) return -1;
    this._d.tables.resvList.ensure(s);
    return this._d.tables.resvList.base(s);
  }

  reserveFences(n: number): number {
    this.assertHeld();
    if (!Number.isInteger(n) || n <= 0) fail('EINVAL', 'reserveFences needs n >= 1');
    let l = this.listBase();
    const lt = this._d.tables.resvList;
    if (l < 0) {
      const s = lt.alloc();
      Atomics.store(this.i32, this.base + R_LIST, s);
      l = lt.base(s);
    }
    this.compact(l);
    const count = Atomics.load(lt.i32, l + L_COUNT);
    if (count + n > MAX_FENCES) fail('ENOMEM', 'stand-in reservation holds at most 1024 fences');
    this.ensureSlots(l, count + n);
    Atomics.store(
      lt.i32,
      l + L_RESERVED,
      Math.max(Atomics.load(lt.i32, l + L_RESERVED), count + n),
    );
    return 0;
  }

  private compact(l: number): void {
    const lt = this._d.tables.resvList;
    const count = Atomics.load(lt.i32, l + L_COUNT);
    let w = 0;
    for (let i = 0; i < count; i++) {
      const e = this.ea(l, i);
      const fs = lt.i32[e]!;
      const f = this.entryFence(fs, lt.i32[e + 1]!);
      if (f === null || f.isSignaled()) {
        slotPut(this._d, fs);
        continue;
      }
      if (w !== i) {
        const o = this.ea(l, w);
        Atomics.store(lt.i32, o, fs);
        Atomics.store(lt.i32, o + 1, lt.i32[e + 1]!);
        Atomics.store(lt.i32, o + 2, lt.i32[e + 2]!);
      }
      w++;
    }
    Atomics.store(lt.i32, l + L_COUNT, w);
  }

  private entryFence(fslot: number, fgen: number): DmaFence | null {
    if (!slotTryGet(this._d, fslot, fgen)) return null;
    return DmaFence.fromSlot(this._d, fslot, fgen, true);
  }

  addFence(fence: DmaFence, usage: DmaResvUsage): void {
    this.assertHeld();
    checkUsage(usage);
    if (!(fence instanceof DmaFence)) fail('EINVAL', 'addFence needs a DmaFence');
    if (fence.isContainer) fail('EINVAL', 'container fences must not be added to a reservation');
    if (fence.isSignaled()) return;
    const fslot = fence.publish(this._d);
    if (fslot === 0) return;
    const fgen = fence._gen;
    const lt = this._d.tables.resvList;
    const l = this.listBase();
    if (l < 0) fail('EINVAL', 'addFence without reserveFences');
    const count = Atomics.load(lt.i32, l + L_COUNT);
    for (let i = 0; i < count; i++) {
      const e = this.ea(l, i);
      const os = lt.i32[e]!;
      const og = lt.i32[e + 1]!;
      const ou = lt.i32[e + 2]!;
      const old = this.entryFence(os, og);
      if (
        old === null ||
        old.isSignaled() ||
        (old.context === fence.context && ou >= usage && fence.isLaterOrSame(old))
      ) {
        slotGet(this._d, fslot);
        Atomics.store(lt.i32, e, fslot);
        Atomics.store(lt.i32, e + 1, fgen);
        Atomics.store(lt.i32, e + 2, usage);
        slotPut(this._d, os);
        return;
      }
    }
    if (count >= Atomics.load(lt.i32, l + L_RESERVED))
      fail('EINVAL', 'addFence without a reserved slot');
    const e = this.ea(l, count);
    slotGet(this._d, fslot);
    Atomics.store(lt.i32, e, fslot);
    Atomics.store(lt.i32, e + 1, fgen);
    Atomics.store(lt.i32, e + 2, usage);
    Atomics.store(lt.i32, l + L_COUNT, count + 1);
  }

  /** Unsignaled fences with usage ≤ `usage`, without the lock. */
  *fencesUnlocked(usage: DmaResvUsage): Generator<DmaFence> {
    checkUsage(usage);
    const l = this.listBase();
    if (l < 0) return;
    const lt = this._d.tables.resvList;
    const count = Atomics.load(lt.i32, l + L_COUNT);
    for (let i = 0; i < count; i++) {
      const e = this.ea(l, i);
      if (Atomics.load(lt.i32, e + 2) > usage) continue;
      const f = this.entryFence(Atomics.load(lt.i32, e), Atomics.load(lt.i32, e + 1));
      if (f !== null && !f.isSignaled()) yield f;
    }
  }

  /** Every stored fence with usage ≤ `usage` and its usage (lock held). */
  *fencesLocked(usage: DmaResvUsage): Generator<[DmaFence, DmaResvUsage]> {
    const l = this.listBase();
    if (l < 0) return;
    const lt = this._d.tables.resvList;
    const count = Atomics.load(lt.i32, l + L_COUNT);
    for (let i = 0; i < count; i++) {
      const e = this.ea(l, i);
      const u = Atomics.load(lt.i32, e + 2) as DmaResvUsage;
      if (u > usage) continue;
      const f = this.entryFence(Atomics.load(lt.i32, e), Atomics.load(lt.i32, e + 1));
      if (f !== null) yield [f, u];
    }
  }

  getFences(usage: DmaResvUsage): DmaFence[] {
    return [...this.fencesUnlocked(usage)];
  }

  getSingleton(usage: DmaResvUsage): DmaFence | null {
    const fences = this.getFences(usage);
    if (fences.length === 0) return null;
    if (fences.length === 1) return fences[0]!;
    return new StandInFenceArray(fences);
  }

  testSignaled(usage: DmaResvUsage): boolean {
    for (const _ of this.fencesUnlocked(usage)) return false;
    return true;
  }

  async waitTimeout(
    usage: DmaResvUsage,
    timeoutMs: number,
    opts: { signal?: AbortSignal } = {},
  ): Promise<number> {
    checkUsage(usage);
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0)
      fail('EINVAL', 'bad timeout');
    if (timeoutMs !== 0) mightWait('dma_resv_wait_timeout');
    const start = performance.now();
    for (;;) {
      const fences = this.getFences(usage);
      if (fences.length === 0) break;
      if (timeoutMs === 0) return 0;
      if (opts.signal?.aborted) throw interrupted();
      const left = timeoutMs - (performance.now() - start);
      if (left <= 0) return 0;
      const r = await fences[0]!.waitTimeout(left, opts);
      if (r === 0) return 0;
    }
    if (timeoutMs === 0) return 1;
    if (timeoutMs === Infinity) return Infinity;
    return Math.max(1, Math.ceil(timeoutMs - (performance.now() - start)));
  }

  waitTimeoutSync(usage: DmaResvUsage, timeoutMs: number): number {
    checkUsage(usage);
    const start = performance.now();
    for (;;) {
      const fences = this.getFences(usage);
      if (fences.length === 0) break;
      if (timeoutMs === 0) return 0;
      const left = timeoutMs - (performance.now() - start);
      if (left <= 0) return 0;
      if (fences[0]!.waitTimeoutSync(left) === 0) return 0;
    }
    if (timeoutMs === 0) return 1;
    if (timeoutMs === Infinity) return Infinity;
    return Math.max(1, Math.ceil(timeoutMs - (performance.now() - start)));
  }

  /** `dma_resv_describe`: one line per fence up to READ usage. */
  describe(): string {
    let s = '';
    for (const [f, u] of this.fencesLocked(DmaResvUsage.READ)) {
      s += `\t${USAGE_NAMES[u]} fence: ${f.describe()}\n`;
    }
    return s;
  }

  // ---- sharing and lifetime -----------------------------------------------------------------------

  share(): ResvDescriptor {
    this.checkLive();
    return { t: 'resv', d: this._d.id, s: this._slot, g: this._gen };
  }

  static fromShared(desc: ResvDescriptor): DmaResv {
    const d = Domain.current();
    if (desc === null || typeof desc !== 'object' || desc.t !== 'resv')
      fail('EINVAL', 'not a reservation descriptor');
    d.checkId(desc.d);
    return DmaResv._fromSlot(d, desc.s, desc.g);
  }

  /** @internal a view of the reservation in `slot` (stand-in helper for the buffer core). */
  static _fromSlot(d: Domain, slot: number, gen: number): DmaResv {
    const t = d.tables.resv;
    if (!t.isSlot(slot) || t.gen(slot) !== gen || Atomics.load(t.i32, t.base(slot) + R_LIVE) !== 1)
      fail('EBADF', 'stale reservation descriptor');
    const v = views[slot]?.deref();
    if (v !== undefined && v._gen === gen) return v;
    const r = new DmaResv({ d, slot, gen });
    views[slot] = new WeakRef(r);
    return r;
  }

  fini(): void {
    const t = this._d.tables.resv;
    if (t.gen(this._slot) !== this._gen) return;
    if (Atomics.compareExchange(t.i32, this.base + R_LIVE, 1, 0) !== 1) return;
    const l = this.listBase();
    if (l >= 0) {
      const lt = this._d.tables.resvList;
      const count = Atomics.load(lt.i32, l + L_COUNT);
      for (let i = 0; i < count; i++) slotPut(this._d, lt.i32[this.ea(l, i)]!);
      Atomics.store(lt.i32, l + L_COUNT, 0);
      let next = Atomics.load(lt.i32, l + L_NEXT);
      while (next !== 0) {
        lt.ensure(next);
        const nb = lt.base(next);
        const after = Atomics.load(lt.i32, nb + L_NEXT);
        lt.free(next);
        next = after;
      }
      lt.free(Atomics.load(this.i32, this.base + R_LIST));
      Atomics.store(this.i32, this.base + R_LIST, 0);
    }
    views[this._slot] = undefined;
    t.free(this._slot);
  }

  [Symbol.dispose](): void {
    this.fini();
  }
}

// A thread that dies holding a reservation lock releases it.
onThreadExit(5, (d, thread) => {
  const t = d.tables.resv;
  t.ensure(t.highWater - 1);
  for (let s = 1; s < t.highWater; s++) {
    if (!t.isAllocated(s)) continue;
    const idx = t.base(s) + R_LOCK;
    if (Atomics.compareExchange(t.i32, idx, thread, 0) === thread) Atomics.notify(t.i32, idx);
  }
});

// ---- a minimal all-signaled fence array for getSingleton ------------------------------------------

const arrayOps: DmaFenceOps = {
  getDriverName: () => 'dma_fence_array',
  getTimelineName: () => 'unbound',
};

class StandInFenceArray extends DmaFence {
  readonly fences: readonly DmaFence[];
  constructor(fences: DmaFence[]) {
    super(arrayOps, DmaFence.contextAlloc(1), 1);
    this.fences = fences;
    let pending = fences.length;
    for (const f of fences) {
      if (f.addCallback(() => --pending === 0 && this.signal()) === null) pending--;
    }
    if (pending === 0) this.signal();
  }
  override get isContainer(): boolean {
    return true;
  }
}
