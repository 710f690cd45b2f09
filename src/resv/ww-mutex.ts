/**
 * Wound/wait mutexes in shared memory — the kernel's `struct ww_mutex`, `struct ww_class` and
 * `struct ww_acquire_ctx`, shared by every thread of a domain.
 *
 * ## What they are for
 * Taking several locks in no fixed order (the buffers of one submission) deadlocks with plain
 * mutexes. A {@link WwAcquireCtx} gives the locker an age (its *stamp*); when two contexts want
 * each other's locks the younger one is told to back off with `-EDEADLK`: it drops every lock it
 * holds, waits for the contended one with {@link WwMutex#lockSlow}, and tries the rest again.
 * Its stamp is kept across back-offs, so it grows older and eventually wins. This is the
 * **wait-die** algorithm of the kernel's `reservation_ww_class` ({@link reservationWwClass}): an
 * older context waits for a younger holder; a younger context that already holds locks dies when
 * it meets an older holder (or an older context waiting first). A context holding nothing never
 * dies — that is why `lockSlow` cannot fail. Wound-wait classes are not implemented.
 *
 * ## Who owns a lock
 * An acquire context belongs to one **async task**, not to a thread: several tasks of one thread
 * contend for locks exactly as kernel threads do, and each may hold its own context. A lock taken
 * without a context (`lock(null)`, a plain mutex without deadlock detection) is owned by that call.
 * The owner is recorded as (thread index, owner id): only the owning thread may unlock, and when a
 * thread exits while holding locks the domain frees them (see *Holder death*).
 *
 * ## Results, not exceptions
 * As in the kernel, the lock calls report the expected outcomes as negative errno **values**:
 * they resolve `0` (locked), `-EDEADLK` (`-35`, back off), `-EALREADY` (`-114`, this context holds
 * it already) and, for the interruptible variants, `-EINTR` (`-4`, the `AbortSignal` fired before
 * the lock was taken). Broken contracts throw {@link DmaBufError}: a finished or foreign context
 * (EINVAL), unlocking a lock this thread does not hold (EPERM), a blocking lock that could only
 * deadlock its own thread (EDEADLK, see {@link WwMutex#lockSync}).
 *
 * ## Waiting
 * Waiters spin briefly, then park on the lock word: `Atomics.waitAsync` with a ref'd keep-alive
 * handle (async variants) or `Atomics.wait` (the `*Sync` variants, for workers). Every release
 * wakes every parked waiter, which re-checks the wait-die rules against the new holder, so no
 * wake-up is lost and no waiter keeps waiting for a holder it should have died for. A waiter that
 * lost the race after a wake-up *claims* the lock; while it is free, other lockers let the
 * claimant take it first (an older context may take a claim over). No context starves: it keeps
 * its stamp across back-offs, the oldest claimant gets the lock next, and younger contexts die
 * rather than wait behind it.
 *
 * ## Holder death
 * When a thread exits while holding locks, its exit hook frees them and marks each lock. The next
 * locker still gets `0`, and {@link WwMutex#ownerDied} is true for that acquisition (until its
 * unlock): state the dead holder protected may be half-changed. The recovery is also published on
 * the `dmabuf:resv:owner-died` channel as `{ resv: slot, thread, kind }`.
 *
 * Layout of the shared record: `_record.ts`.
 */

import { SlotMap } from '../domain/_slotmap.js';
import { waitWhileEqualsAsync, waitWhileEqualsSync } from '../domain/_wait.js';
import { Domain } from '../domain/domain.js';
import { checkSignalOpts, DmaBufError, describe, fail } from '../errors.js';
import {
  consumeDescriptor,
  FLAG_OWNER_DIED,
  KIND_MUTEX,
  lockValue,
  newOwner,
  ownerOf,
  ownerThread,
  R_CLAIM,
  R_CLAIM_OWNER,
  R_FLAGS,
  R_LOCK,
  R_LOCK_OWNER,
  R_SEQ,
  R_WAITERS,
  recordAlloc,
  recordCheck,
  recordGet,
  recordPut,
  stampOf,
  wakeAll,
  younger,
} from './_record.js';

/** `-EDEADLK`: a younger context met an older one; drop every lock and `lockSlow` this one. */
export const EDEADLK = -35;
/** `-EALREADY`: the context already holds this lock. */
export const EALREADY = -114;
/** `-EINTR`: an interruptible lock was aborted before the lock was taken. */
export const EINTR = -4;

/** What {@link WwMutex#lock} resolves with. */
export type WwLockResult = 0 | -35 | -114;
/** What {@link WwMutex#lockInterruptible} resolves with. */
export type WwLockInterruptibleResult = 0 | -35 | -114 | -4;

// ---- classes ------------------------------------------------------------------------------------

const classes = new Map<string, WwClass>();

/**
 * A lock class (`struct ww_class`): locks taken under one acquire context must all belong to the
 * context's class. Classes are told apart by name across threads. Only wait-die is implemented:
 * `{ waitDie: false }` (the kernel's `DEFINE_WW_CLASS`, wound-wait) is EINVAL.
 */
export class WwClass {
  readonly name: string;
  /** Always true: the wait-die algorithm. */
  readonly isWaitDie: boolean;

  constructor(name: string, opts: { waitDie?: boolean } = {}) {
    if (typeof name !== 'string' || name.length === 0 || name.length > 64)
      fail('EINVAL', `ww class name must be a string of 1..64 characters, got ${describe(name)}`);
    if (opts !== undefined && (opts === null || typeof opts !== 'object'))
      fail('EINVAL', `ww class options must be an object, got ${describe(opts)}`);
    if ((opts?.waitDie ?? true) !== true)
      fail('EINVAL', 'wound-wait ww classes are not implemented; use a wait-die class');
    this.name = name;
    this.isWaitDie = true;
    if (!classes.has(name)) classes.set(name, this);
  }

  /** The class called `name` in this thread (created on first use). @internal */
  static named(name: string): WwClass {
    return classes.get(name) ?? new WwClass(name);
  }
}

/** `reservation_ww_class`: the wait-die class of every reservation object's lock. */
export const reservationWwClass: WwClass = new WwClass('reservation_ww_class');

// ---- acquire contexts ---------------------------------------------------------------------------

/** Contexts of this thread that hold at least one lock, by owner id (for unlock bookkeeping). */
const holding = new Map<number, WwAcquireCtx>();

const CTX_ACQUIRE = 0;
const CTX_DONE = 1;
const CTX_FINI = 2;

/**
 * An acquire context (`ww_acquire_init`): the identity and age under which one async task takes
 * several locks. Create it when the task starts locking, pass it to every lock call, call
 * {@link done} once everything is locked (optional), unlock everything, then {@link fini}.
 * Not shareable: a context lives in the thread that made it.
 */
export class WwAcquireCtx {
  readonly wwClass: WwClass;
  /** Wait-die age, unique in the domain: a smaller stamp is older, and older contexts win. */
  readonly stamp: bigint;
  /** @internal owner id of this context's locks */ readonly _owner: number;
  /** @internal low 32 bits of the stamp, as stored in lock words */ readonly _stamp32: number;
  /** @internal the lock word value of a lock held by this context */ readonly _value: bigint;
  /** @internal */ _acquired = 0;
  /** @internal */ _state = CTX_ACQUIRE;

  constructor(wwClass: WwClass = reservationWwClass) {
    if (!(wwClass instanceof WwClass)) fail('EINVAL', 'WwAcquireCtx needs a WwClass');
    const d = Domain.current();
    let stamp: bigint;
    do stamp = d.allocStamp();
    while (BigInt.asIntN(32, stamp) === 0n); // stamp 0 in a lock word means "no context"
    this.wwClass = wwClass;
    this.stamp = stamp;
    this._stamp32 = Number(BigInt.asIntN(32, stamp));
    this._owner = newOwner(d);
    this._value = lockValue(this._owner, this._stamp32);
  }

  /** Number of locks this context holds. */
  get acquired(): number {
    return this._acquired;
  }

  /** `ww_acquire_done`: no more locks will be taken with this context (locking after is EINVAL). */
  done(): void {
    if (this._state === CTX_FINI) fail('EINVAL', 'WwAcquireCtx used after fini()');
    this._state = CTX_DONE;
  }

  /** `ww_acquire_fini`: ends the context. EBUSY while it still holds locks. Idempotent. */
  fini(): void {
    if (this._acquired > 0)
      fail('EBUSY', `WwAcquireCtx.fini() with ${this._acquired} lock(s) still held`);
    this._state = CTX_FINI;
  }

  [Symbol.dispose](): void {
    this.fini();
  }
}

// ---- the mutex ----------------------------------------------------------------------------------

/** How a {@link WwMutex} travels to another thread of its domain (structured-cloneable). */
export interface WwMutexDescriptor {
  t: 'ww-mutex';
  /** Domain id. */
  d: number;
  s: number;
  g: number;
  /** Class name. */
  c: string;
}

/** One locking attempt in progress. */
interface Attempt {
  ctx: WwAcquireCtx | null;
  owner: number;
  stamp: number;
  value: bigint;
  sync: boolean;
  /** Wake-ups after which the lock was still not ours. */
  lost: number;
  claimed: boolean;
}

const WAIT = 1;
const RESOLVED_0: Promise<0> = Promise.resolve(0);

let overRecord: { d: Domain; slot: number; gen: number; owning: boolean } | null = null;
// standalone mutexes: slot → view here (array-backed: see _slotmap.ts for why not a Map)
const views = new SlotMap<WeakRef<WwMutex>>();
const collected = new FinalizationRegistry<number>((slot) => {
  const ref = views.get(slot);
  if (ref !== undefined && ref.deref() === undefined) views.delete(slot);
  recordPut(Domain.current(), slot);
});

/**
 * A wound/wait mutex (`struct ww_mutex`) whose state lives in a record of the domain's shared
 * reservation table. Every thread that has it (see {@link share}) locks the same lock.
 */
export class WwMutex {
  readonly wwClass: WwClass;
  /** @internal */ readonly _d: Domain;
  /** @internal */ readonly _slot: number;
  /** @internal */ readonly _gen: number;
  /** @internal Int32 index of the record's first word */ readonly _b: number;
  private readonly li: number;
  private readonly ci: number;
  private readonly owning: boolean;
  private dead = false;
  private died = false;

  /** `ww_mutex_init`: a new unlocked mutex of `wwClass` (default: the reservation class). */
  constructor(wwClass: WwClass = reservationWwClass) {
    if (!(wwClass instanceof WwClass)) fail('EINVAL', 'WwMutex needs a WwClass');
    const over = overRecord;
    overRecord = null;
    const d = over?.d ?? Domain.current();
    let slot: number;
    let gen: number;
    if (over === null) [slot, gen] = recordAlloc(d, KIND_MUTEX);
    else ({ slot, gen } = over);
    this.wwClass = wwClass;
    this._d = d;
    this._slot = slot;
    this._gen = gen;
    this._b = d.tables.resv.base(slot);
    this.li = (this._b + R_LOCK) >> 1;
    this.ci = (this._b + R_CLAIM) >> 1;
    this.owning = over === null || over.owning;
    if (this.owning) {
      views.set(slot, new WeakRef(this));
      collected.register(this, slot, this);
    }
  }

  /**
   * A view of the lock embedded in another record (a reservation object's), sharing that
   * record's lifetime. @internal
   */
  static _over(d: Domain, slot: number, gen: number, wwClass: WwClass): WwMutex {
    overRecord = { d, slot, gen, owning: false };
    try {
      return new WwMutex(wwClass);
    } finally {
      overRecord = null;
    }
  }

  // ---- sharing -------------------------------------------------------------------------------

  /** A descriptor for {@link fromShared} in another thread; it carries one reference. */
  share(): WwMutexDescriptor {
    this.check();
    if (!this.owning) fail('EINVAL', 'share the reservation object, not its lock');
    recordGet(this._d, this._slot);
    return { t: 'ww-mutex', d: this._d.id, s: this._slot, g: this._gen, c: this.wwClass.name };
  }

  /**
   * This thread's view of a mutex shared with {@link share}, consuming the descriptor's reference.
   * The same object for the same mutex within a thread. EINVAL for a malformed descriptor, EXDEV
   * for another domain's, EBADF for a stale one.
   */
  static fromShared(desc: WwMutexDescriptor): WwMutex {
    const d = Domain.current();
    if (desc === null || typeof desc !== 'object' || desc.t !== 'ww-mutex')
      fail('EINVAL', 'not a ww-mutex descriptor');
    d.checkId(desc.d);
    if (typeof desc.c !== 'string' || desc.c.length === 0 || desc.c.length > 64)
      fail('EINVAL', 'ww-mutex descriptor has no valid class name');
    if (!recordCheck(d, desc.s, desc.g, KIND_MUTEX)) fail('EBADF', 'stale ww-mutex descriptor');
    if (!consumeDescriptor(desc)) fail('EBADF', 'the ww-mutex descriptor was already consumed');
    const existing = views.get(desc.s)?.deref();
    if (existing !== undefined && existing._gen === desc.g && !existing.dead) {
      recordPut(d, desc.s);
      return existing;
    }
    overRecord = { d, slot: desc.s, gen: desc.g, owning: true };
    try {
      return new WwMutex(WwClass.named(desc.c));
    } finally {
      overRecord = null;
    }
  }

  /**
   * `ww_mutex_destroy`: drops this thread's reference (the record is freed with the last one).
   * EBUSY while this thread holds the lock. Idempotent.
   */
  destroy(): void {
    if (this.dead || !this.owning) return;
    if (this.isHeld()) fail('EBUSY', 'destroying a ww-mutex this thread holds');
    this.dead = true;
    collected.unregister(this);
    const ref = views.get(this._slot);
    if (ref !== undefined && ref.deref() === this) views.delete(this._slot);
    recordPut(this._d, this._slot);
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  private check(): void {
    if (this.dead) fail('EBADF', 'ww-mutex used after destroy()');
  }

  // ---- state ---------------------------------------------------------------------------------

  /** `ww_mutex_is_locked`: whether anybody holds it. May be stale by the time it is read. */
  isLocked(): boolean {
    this.check();
    return Atomics.load(this._d.tables.resv.i64, this.li) !== 0n;
  }

  /**
   * Whether the lock is held by `ctx`, or — without `ctx` — by a task of the calling thread (tasks
   * of one thread holding context-free locks cannot be told apart).
   */
  isHeld(ctx?: WwAcquireCtx | null): boolean {
    this.check();
    if (ctx !== undefined && ctx !== null && !(ctx instanceof WwAcquireCtx))
      fail('EINVAL', `not a WwAcquireCtx: ${describe(ctx)}`);
    const owner = Atomics.load(this._d.tables.resv.i32, this._b + R_LOCK_OWNER);
    if (owner === 0) return false;
    if (ctx !== undefined && ctx !== null) return owner === ctx._owner;
    return ownerThread(owner) === this._d.thread;
  }

  /** `ww_mutex_assert_held`: throws EPERM unless {@link isHeld}`(ctx)`. */
  assertHeld(ctx?: WwAcquireCtx | null): void {
    if (!this.isHeld(ctx))
      fail('EPERM', ctx ? 'ww-mutex not held by this context' : 'ww-mutex not held by this thread');
  }

  /** The context holding the lock when one of this thread's contexts does, else null. */
  get lockingCtx(): WwAcquireCtx | null {
    this.check();
    const owner = Atomics.load(this._d.tables.resv.i32, this._b + R_LOCK_OWNER);
    return owner === 0 ? null : (holding.get(owner) ?? null);
  }

  /**
   * True when the current acquisition (made through this thread) recovered the lock from a thread
   * that died holding it; false again after {@link unlock}. What the lock protected may be in a
   * half-changed state.
   */
  get ownerDied(): boolean {
    this.check();
    return this.died;
  }

  // ---- locking -------------------------------------------------------------------------------

  /**
   * `ww_mutex_lock`: takes the lock, waiting if needed. Resolves 0 when locked, `-EDEADLK` when
   * `ctx` must back off (it holds other locks and met an older context), `-EALREADY` when `ctx`
   * holds it already. `ctx = null` takes it as a plain mutex (no deadlock detection, resolves 0).
   * May sleep (async); does not allocate beyond its promise on the uncontended path.
   */
  lock(ctx: WwAcquireCtx | null): Promise<WwLockResult> {
    return this.lockCommon(ctx, false, undefined) as Promise<WwLockResult>;
  }

  /**
   * `ww_mutex_lock_interruptible`: like {@link lock}; resolves `-EINTR` when `signal` aborts
   * before the lock is taken.
   */
  lockInterruptible(
    ctx: WwAcquireCtx | null,
    opts: { signal?: AbortSignal } = {},
  ): Promise<WwLockInterruptibleResult> {
    return this.lockCommon(ctx, false, opts);
  }

  /**
   * `ww_mutex_lock_slow`: after `-EDEADLK`, once every other lock of `ctx` is dropped, waits for
   * this lock; never fails. EINVAL if `ctx` still holds locks.
   */
  async lockSlow(ctx: WwAcquireCtx): Promise<0> {
    const r = await this.lockCommon(ctx, true, undefined);
    return r as 0;
  }

  /** `ww_mutex_lock_slow_interruptible`: {@link lockSlow} that resolves `-EINTR` on abort. */
  lockSlowInterruptible(ctx: WwAcquireCtx, opts: { signal?: AbortSignal } = {}): Promise<0 | -4> {
    return this.lockCommon(ctx, true, opts) as Promise<0 | -4>;
  }

  /**
   * Blocking {@link lock} for workers: same results. Throws EDEADLK (instead of blocking forever)
   * when it would have to wait for a lock held by the calling thread itself, whose tasks cannot
   * run while it blocks; EPERM where the runtime forbids blocking.
   */
  lockSync(ctx: WwAcquireCtx | null): WwLockResult {
    const a = this.begin(ctx, false, true);
    return this.lockSyncLoop(a) as WwLockResult;
  }

  /** Blocking {@link lockSlow} for workers (see {@link lockSync} for what it refuses). */
  lockSlowSync(ctx: WwAcquireCtx): 0 {
    const a = this.begin(ctx, true, true);
    return this.lockSyncLoop(a) as 0;
  }

  /**
   * `ww_mutex_trylock`: takes the lock if it is free and nobody is waiting to pick it up; false
   * otherwise — also when `ctx` (or the caller) already holds it. No deadlock detection.
   */
  trylock(ctx: WwAcquireCtx | null = null): boolean {
    const a = this.begin(ctx, false, false);
    const t = this._d.tables.resv;
    const c = Atomics.load(t.i32, this._b + R_CLAIM_OWNER);
    if (c !== 0 && c !== a.owner) return false;
    if (Atomics.compareExchange(t.i64, this.li, 0n, a.value) !== 0n) return false;
    this.acquired(a);
    return true;
  }

  /**
   * `ww_mutex_unlock`: releases the lock and wakes its waiters. EPERM when the calling thread does
   * not hold it.
   */
  unlock(): void {
    this.check();
    const t = this._d.tables.resv;
    const owner = Atomics.load(t.i32, this._b + R_LOCK_OWNER);
    if (owner === 0) fail('EPERM', 'unlock of an unlocked ww-mutex');
    if (ownerThread(owner) !== this._d.thread)
      fail('EPERM', 'unlock of a ww-mutex held by another thread');
    const ctx = holding.get(owner);
    if (ctx !== undefined && --ctx._acquired === 0) holding.delete(owner);
    this.died = false;
    // Only the holder (this thread) changes a held lock word; the exit hook only frees words of
    // dead threads.
    Atomics.store(t.i64, this.li, 0n);
    wakeAll(t, this._b);
  }

  // ---- internals -----------------------------------------------------------------------------

  private begin(ctx: WwAcquireCtx | null, slow: boolean, sync: boolean): Attempt {
    this.check();
    if (ctx === null || ctx === undefined) {
      if (slow) fail('EINVAL', 'lockSlow needs an acquire context');
      const owner = newOwner(this._d);
      return {
        ctx: null,
        owner,
        stamp: 0,
        value: BigInt(owner),
        sync,
        lost: 0,
        claimed: false,
      };
    }
    if (!(ctx instanceof WwAcquireCtx)) fail('EINVAL', 'not a WwAcquireCtx');
    if (ctx._state !== CTX_ACQUIRE)
      fail(
        'EINVAL',
        ctx._state === CTX_DONE ? 'lock after WwAcquireCtx.done()' : 'lock after fini()',
      );
    if (ctx.wwClass.name !== this.wwClass.name)
      fail('EINVAL', `context of class ${ctx.wwClass.name} on a lock of ${this.wwClass.name}`);
    if (slow && ctx._acquired > 0)
      fail('EINVAL', 'lockSlow while the context still holds locks: drop them first');
    return {
      ctx,
      owner: ctx._owner,
      stamp: ctx._stamp32,
      value: ctx._value,
      sync,
      lost: 0,
      claimed: false,
    };
  }

  private lockCommon(
    ctx: WwAcquireCtx | null,
    slow: boolean,
    opts: { signal?: AbortSignal } | undefined,
  ): Promise<WwLockInterruptibleResult> {
    let a: Attempt;
    let signal: AbortSignal | undefined;
    try {
      signal = checkSignalOpts(opts, 'lockInterruptible');
      a = this.begin(ctx, slow, false);
    } catch (e) {
      return Promise.reject(e);
    }
    const r = this.attempt(a);
    if (r === 0) return RESOLVED_0;
    if (r !== WAIT) {
      this.dropClaim(a);
      return Promise.resolve(r as WwLockInterruptibleResult);
    }
    return this.lockAsyncLoop(a, signal);
  }

  private async lockAsyncLoop(
    a: Attempt,
    signal: AbortSignal | undefined,
  ): Promise<WwLockInterruptibleResult> {
    const t = this._d.tables.resv;
    const si = this._b + R_SEQ;
    Atomics.add(t.i32, this._b + R_WAITERS, 1);
    try {
      for (;;) {
        // Counted in WAITERS before reading SEQ: any change after this read bumps SEQ.
        const seq = Atomics.load(t.i32, si);
        const r = this.attempt(a);
        if (r !== WAIT) return r as WwLockInterruptibleResult;
        try {
          await waitWhileEqualsAsync(t.i32, si, seq, Infinity, { signal });
        } catch (e) {
          if (e instanceof DmaBufError && e.code === 'ERESTARTSYS') return EINTR;
          throw e;
        }
        a.lost++;
      }
    } finally {
      this.dropClaim(a);
      Atomics.sub(t.i32, this._b + R_WAITERS, 1);
    }
  }

  private lockSyncLoop(a: Attempt): number {
    const r = this.attempt(a);
    if (r !== WAIT) return r;
    const t = this._d.tables.resv;
    const si = this._b + R_SEQ;
    Atomics.add(t.i32, this._b + R_WAITERS, 1);
    try {
      for (;;) {
        const seq = Atomics.load(t.i32, si);
        const r = this.attempt(a);
        if (r !== WAIT) return r;
        waitWhileEqualsSync(t.i32, si, seq, Infinity);
        a.lost++;
      }
    } finally {
      this.dropClaim(a);
      Atomics.sub(t.i32, this._b + R_WAITERS, 1);
    }
  }

  /** Whether `a` must die rather than wait behind a holder or claimant of stamp `stamp`. */
  private mustDie(a: Attempt, stamp: number): boolean {
    return a.ctx !== null && a.ctx._acquired > 0 && stamp !== 0 && younger(a.stamp, stamp);
  }

  /**
   * One step: takes the lock (0), reports -EDEADLK / -EALREADY, or says that `a` must wait for a
   * change (WAIT). Never blocks.
   */
  private attempt(a: Attempt): number {
    const t = this._d.tables.resv;
    const { i64 } = t;
    const me = this._d.thread;
    for (;;) {
      const v = Atomics.load(i64, this.li);
      if (v === 0n) {
        const c = Atomics.load(i64, this.ci);
        // A claimant other than us goes first, unless we would block our own thread for it.
        if (c !== 0n && c !== a.value && !(a.sync && ownerThread(ownerOf(c)) === me)) {
          if (this.mustDie(a, stampOf(c))) return EDEADLK;
          if (a.lost > 0) this.claim(a);
          const c2 = Atomics.load(i64, this.ci);
          if (c2 === a.value || c2 === 0n) continue;
          return WAIT;
        }
        if (Atomics.compareExchange(i64, this.li, 0n, a.value) === 0n) {
          this.acquired(a);
          return 0;
        }
        continue;
      }
      const owner = ownerOf(v);
      if (a.ctx !== null && owner === a.owner) return EALREADY;
      if (this.mustDie(a, stampOf(v))) return EDEADLK;
      const c = Atomics.load(i64, this.ci);
      if (c !== 0n && c !== a.value && this.mustDie(a, stampOf(c))) return EDEADLK;
      if (a.sync && ownerThread(owner) === me) {
        throw new DmaBufError(
          'EDEADLK',
          'blocking lock of a ww-mutex held by the calling thread: its holder cannot run while this thread blocks',
        );
      }
      if (a.lost > 0) this.claim(a);
      return WAIT;
    }
  }

  /** Claims the lock for `a` if nobody has, or takes over a younger context's claim. */
  private claim(a: Attempt): void {
    const t = this._d.tables.resv;
    for (;;) {
      const c = Atomics.load(t.i64, this.ci);
      if (c === a.value) return;
      if (c !== 0n) {
        const cs = stampOf(c);
        if (a.stamp === 0 || cs === 0 || !younger(cs, a.stamp)) return;
      }
      if (Atomics.compareExchange(t.i64, this.ci, c, a.value) === c) {
        a.claimed = true;
        if (c !== 0n) wakeAll(t, this._b); // lockers barred by the old claim re-check
        return;
      }
    }
  }

  private dropClaim(a: Attempt): void {
    if (!a.claimed) return;
    a.claimed = false;
    const t = this._d.tables.resv;
    if (Atomics.compareExchange(t.i64, this.ci, a.value, 0n) === a.value) wakeAll(t, this._b);
  }

  /** Bookkeeping after `a` took the lock. */
  private acquired(a: Attempt): void {
    this.dropClaim(a);
    const t = this._d.tables.resv;
    // Lockers barred by a pending claim wait for the lock to be taken: tell them.
    if (Atomics.load(t.i32, this._b + R_CLAIM_OWNER) !== 0) wakeAll(t, this._b);
    const fi = this._b + R_FLAGS;
    this.died =
      (Atomics.load(t.i32, fi) & FLAG_OWNER_DIED) !== 0 &&
      (Atomics.and(t.i32, fi, ~FLAG_OWNER_DIED) & FLAG_OWNER_DIED) !== 0;
    const ctx = a.ctx;
    if (ctx !== null && ctx._acquired++ === 0) holding.set(a.owner, ctx);
  }
}
