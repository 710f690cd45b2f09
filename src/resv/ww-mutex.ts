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
 * contend for locks exactly as kernel threads do, and each may hold its own context. The owner of
 * a lock is recorded as (thread index, context id); a lock taken without a context (`lock(null)`,
 * a plain mutex without deadlock detection) is owned by its thread, since tasks without contexts
 * cannot be told apart (nor can the kernel's: they just deadlock if they relock). Only the owning
 * thread may unlock, and when a thread exits while holding locks the domain frees them (see
 * *Holder death*).
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
 * Waiters spin briefly, then park on the record's sequence word: `Atomics.waitAsync` with a ref'd
 * keep-alive handle (async variants) or `Atomics.wait` (the `*Sync` variants, for workers). Every
 * change a waiter may be waiting for wakes every parked waiter, which re-checks the wait-die rules
 * against the new holder, so no wake-up is lost and no waiter keeps waiting for a holder it should
 * have died for. A waiter that lost the race after a wake-up *claims* the lock; the next release
 * leaves the lock reserved for the claimant, and an older waiter (by context stamp, or by the time
 * a context-less waiter started waiting) takes a claim over. So nobody starves: a context keeps
 * its stamp across back-offs and grows older, the oldest waiter gets the lock next, and younger
 * contexts holding locks die rather than wait behind it.
 *
 * ## Holder death
 * When a thread exits while holding locks, its exit hook frees them and marks each lock. The next
 * locker still gets `0` (or `true` from trylock), and {@link WwMutex#ownerDied} is true for that
 * acquisition, until its unlock: state the dead holder protected may be half-changed. The recovery is also published on
 * the `dmabuf:resv:owner-died` channel as `{ resv: slot, thread, kind }`.
 *
 * Layout of the shared record: `_record.ts`.
 */

import {
  acquired as lockdepAcquired,
  released as lockdepReleased,
  mightLock,
} from '../debug/lockdep.js';
import { J_RECORD } from '../domain/_journal.js';
import { SlotMap } from '../domain/_slotmap.js';
import { TK_MUTEX, ticketClaim, ticketIssue } from '../domain/_tickets.js';
import { waitWhileEqualsAsync, waitWhileEqualsSync } from '../domain/_wait.js';
import { Domain } from '../domain/domain.js';
import { checkSignalOpts, DmaBufError, describe, fail } from '../errors.js';
import {
  consumeDescriptor,
  KIND_MUTEX,
  LOCK_DEAD,
  LOCK_HANDOFF,
  lockValue,
  newOwner,
  OWNER_THREAD_SHIFT,
  ownerOf,
  ownerThread,
  packHeld,
  R_CLAIM,
  R_CLAIM_OWNER,
  R_LOCK,
  R_LOCK_OWNER,
  R_SEQ,
  R_WAITERS,
  recordAlloc,
  recordCheck,
  recordGet,
  recordPut,
  recordViews,
  stampOf,
  viewRegistry,
  wakeRecord,
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
  /** The ticket its reference is claimed with (see domain/_tickets.ts). */
  k: number;
  kg: number;
  n: number;
}

/** One locking attempt that has to look at the lock more closely than one CAS. */
interface Attempt {
  ctx: WwAcquireCtx | null;
  /** Owner id: the context's, or the thread's (`thread << 23`) without context. */
  owner: number;
  /** The context's stamp, 0 without context. */
  stamp: number;
  /** LOCK value while held by this attempt. */
  value: bigint;
  /** Priority in line: the context's stamp, or a ticket taken when a context-less waiter starts. */
  age: number;
  /** CLAIM value of this attempt (context-less claims carry CLAIM_NO_CTX in the owner half). */
  claimValue: bigint;
  sync: boolean;
  /** Wake-ups after which the lock was still not ours. */
  lost: number;
  claimed: boolean;
}

/** Owner-half bit of a claim made without context (its stamp half is a ticket, not a stamp). */
const CLAIM_NO_CTX = 0x8000_0000;

const WAIT = 1;
const RESOLVED_0: Promise<0> = Promise.resolve(0);

const threadValues: bigint[] = [];
/** LOCK value of a context-less lock held by `thread` (one bigint per thread). */
function threadValue(thread: number): bigint {
  return (threadValues[thread] ??= BigInt(thread << OWNER_THREAD_SHIFT));
}

let overRecord: { d: Domain; slot: number; gen: number; owning: boolean } | null = null;
// standalone mutexes: slot → view here (array-backed: see _slotmap.ts for why not a Map)
const views = new SlotMap<WeakRef<WwMutex>>();
// Held value: the record slot and this thread's journal word for the view's reference (packed).
const collected = viewRegistry(views);

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
  /** @internal fixed-length views of the table (see recordViews) */ readonly _r32: Int32Array;
  /** @internal */ readonly _r64: BigInt64Array;
  /** i64 indexes of LOCK and CLAIM */
  private readonly lo: number;
  private readonly co: number;
  private readonly owning: boolean;
  private dead = false;
  private died = false;
  /** This thread's journal word for an owning view's reference, or -1. */
  private jw = -1;
  /** The acquisition under way is a blocking one (lockdep-lite: the thread is the task). */
  private blocking = false;
  /** The context of this thread holding the lock (one view per record and thread). */
  private heldCtx: WwAcquireCtx | null = null;
  /** LOCK value of a context-less lock of this thread. */
  private readonly threadValue: bigint;

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
    const rv = recordViews(d.tables.resv, slot);
    this._r32 = rv.i32;
    this._r64 = rv.i64;
    this.lo = (this._b + R_LOCK) >> 1;
    this.co = (this._b + R_CLAIM) >> 1;
    this.threadValue = threadValue(d.thread);
    this.owning = over === null || over.owning;
    if (this.owning) {
      this.jw = d.journalAdd(J_RECORD, slot);
      views.set(slot, new WeakRef(this));
      collected.register(this, packHeld(slot, this.jw), this);
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
    // The ticket first: if the table is full (ENOMEM) no reference has been taken yet.
    const ticket = ticketIssue(this._d, TK_MUTEX, this._slot, this._gen);
    recordGet(this._d, this._slot);
    return {
      t: 'ww-mutex',
      d: this._d.id,
      s: this._slot,
      g: this._gen,
      c: this.wwClass.name,
      ...ticket,
    };
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
    // One claim per share, whatever the number of copies posted: the ticket.
    if (!ticketClaim(d, TK_MUTEX, desc.s, desc.g, desc))
      fail('EBADF', 'stale, forged or already consumed ww-mutex descriptor');
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
    this._d.journalRemove(this.jw);
    this.jw = -1;
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
    return Atomics.load(this._r32, this._b + R_LOCK_OWNER) !== 0;
  }

  /**
   * Whether the lock is held by `ctx`, or — without `ctx` — by a task of the calling thread (tasks
   * of one thread holding context-free locks cannot be told apart).
   */
  isHeld(ctx?: WwAcquireCtx | null): boolean {
    this.check();
    if (ctx !== undefined && ctx !== null && !(ctx instanceof WwAcquireCtx))
      fail('EINVAL', `not a WwAcquireCtx: ${describe(ctx)}`);
    const owner = Atomics.load(this._r32, this._b + R_LOCK_OWNER);
    if (owner === 0) return false;
    if (ctx !== undefined && ctx !== null) return owner === ctx._owner;
    return ownerThread(owner) === this._d.thread;
  }

  /** `ww_mutex_assert_held`: throws EPERM unless {@link isHeld}`(ctx)`. */
  assertHeld(ctx?: WwAcquireCtx | null): void {
    if (!this.isHeld(ctx))
      fail('EPERM', ctx ? 'ww-mutex not held by this context' : 'ww-mutex not held by this thread');
  }

  /** The kernel's `ww_mutex.ctx`: same as {@link lockingCtx}. */
  get ctx(): WwAcquireCtx | null {
    return this.lockingCtx;
  }

  /** The context holding the lock when one of this thread's contexts does, else null. */
  get lockingCtx(): WwAcquireCtx | null {
    this.check();
    const owner = Atomics.load(this._r32, this._b + R_LOCK_OWNER);
    const ctx = this.heldCtx;
    return ctx !== null && owner === ctx._owner ? ctx : null;
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
   * May sleep (async). The uncontended path is one CAS and allocates nothing.
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
  lockSlow(ctx: WwAcquireCtx): Promise<0> {
    return this.lockCommon(ctx, true, undefined) as Promise<0>;
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
    mightLock(this, ctx !== null, 'WwMutex#lockSync', true);
    this.blocking = true;
    if (this.fastAcquire(ctx, false)) return 0;
    return this.lockSyncLoop(this.begin(ctx, true)) as WwLockResult;
  }

  /** Blocking {@link lockSlow} for workers (see {@link lockSync} for what it refuses). */
  lockSlowSync(ctx: WwAcquireCtx): 0 {
    mightLock(this, true, 'WwMutex#lockSlowSync', true);
    this.blocking = true;
    if (this.fastAcquire(ctx, true)) return 0;
    return this.lockSyncLoop(this.begin(ctx, true)) as 0;
  }

  /**
   * `ww_mutex_trylock`: takes the lock if it is free and nobody is waiting to pick it up; false
   * otherwise — also when `ctx` (or the caller) already holds it. No deadlock detection.
   */
  trylock(ctx: WwAcquireCtx | null = null): boolean {
    this.blocking = false;
    if (this.fastAcquire(ctx, false)) return true;
    const v = Atomics.load(this._r64, this.lo);
    // Held, or free behind a marker with somebody in line: no.
    if (v === 0n || ownerOf(v) !== 0 || Atomics.load(this._r32, this._b + R_CLAIM_OWNER) !== 0)
      return false;
    const value = ctx === null ? this.threadValue : ctx._value;
    if (Atomics.compareExchange(this._r64, this.lo, v, value) !== v) return false;
    this.acquired(ctx, v === LOCK_DEAD);
    return true;
  }

  /**
   * `ww_mutex_unlock`: releases the lock and wakes its waiters. EPERM when the calling thread does
   * not hold it.
   */
  unlock(): void {
    this.check();
    const owner = Atomics.load(this._r32, this._b + R_LOCK_OWNER);
    if (owner === 0) fail('EPERM', 'unlock of an unlocked ww-mutex');
    if (ownerThread(owner) !== this._d.thread)
      fail('EPERM', 'unlock of a ww-mutex held by another thread');
    this._release(owner);
  }

  /**
   * Releases a lock the caller checked this thread holds as `owner`. The next owner is whoever
   * takes it — or, when a waiter has claimed it, that waiter: the lock is left free behind the
   * HANDOFF marker, which only the claimant may take. @internal
   */
  _release(owner: number): void {
    lockdepReleased(this);
    const ctx = this.heldCtx;
    if (ctx !== null && ctx._owner === owner) {
      ctx._acquired--;
      this.heldCtx = null;
    }
    this.died = false;
    // Only the holder (this thread) changes a held lock word; the exit hook only frees words of
    // dead threads.
    const claimed = Atomics.load(this._r32, this._b + R_CLAIM_OWNER) !== 0;
    Atomics.store(this._r64, this.lo, claimed ? LOCK_HANDOFF : 0n);
    wakeRecord(this._r32, this._b);
  }

  // ---- internals -----------------------------------------------------------------------------

  /** Checks `ctx` for a lock call (EINVAL when it cannot lock now). */
  private checkCtx(ctx: WwAcquireCtx, slow: boolean): void {
    if (!(ctx instanceof WwAcquireCtx)) fail('EINVAL', 'not a WwAcquireCtx');
    if (ctx._state !== CTX_ACQUIRE)
      fail(
        'EINVAL',
        ctx._state === CTX_DONE ? 'lock after WwAcquireCtx.done()' : 'lock after fini()',
      );
    if (ctx.wwClass !== this.wwClass && ctx.wwClass.name !== this.wwClass.name)
      fail('EINVAL', `context of class ${ctx.wwClass.name} on a lock of ${this.wwClass.name}`);
    if (slow && ctx._acquired > 0)
      fail('EINVAL', 'lockSlow while the context still holds locks: drop them first');
  }

  /** The uncontended path: checks the arguments, then one CAS from free. */
  private fastAcquire(ctx: WwAcquireCtx | null, slow: boolean): boolean {
    this.check();
    let value: bigint;
    if (ctx === null || ctx === undefined) {
      if (slow) fail('EINVAL', 'lockSlow needs an acquire context');
      value = this.threadValue;
    } else {
      this.checkCtx(ctx, slow);
      value = ctx._value;
    }
    if (Atomics.compareExchange(this._r64, this.lo, 0n, value) !== 0n) return false;
    this.acquired(ctx ?? null, false);
    return true;
  }

  /** The state of a locking attempt past the fast path (arguments already checked). */
  private begin(ctx: WwAcquireCtx | null, sync: boolean): Attempt {
    if (ctx === null || ctx === undefined) {
      return {
        ctx: null,
        owner: this._d.thread << OWNER_THREAD_SHIFT,
        stamp: 0,
        value: this.threadValue,
        age: 0,
        claimValue: 0n,
        sync,
        lost: 0,
        claimed: false,
      };
    }
    return {
      ctx,
      owner: ctx._owner,
      stamp: ctx._stamp32,
      value: ctx._value,
      age: ctx._stamp32,
      claimValue: ctx._value,
      sync,
      lost: 0,
      claimed: false,
    };
  }

  /** Gives a context-less attempt its place in line, when it starts waiting. */
  private enqueue(a: Attempt): void {
    if (a.ctx !== null || a.age !== 0) return;
    let ticket: number;
    do ticket = Number(BigInt.asIntN(32, this._d.allocStamp()));
    while (ticket === 0);
    a.age = ticket;
    a.claimValue = lockValue(a.owner | CLAIM_NO_CTX, ticket);
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
      mightLock(this, ctx !== null, 'WwMutex#lock');
      this.blocking = false;
      if (this.fastAcquire(ctx, slow)) return RESOLVED_0;
      a = this.begin(ctx, false);
    } catch (e) {
      return Promise.reject(e);
    }
    const r = this.attempt(a);
    if (r !== WAIT) return r === 0 ? RESOLVED_0 : Promise.resolve(r as WwLockInterruptibleResult);
    return this.lockAsyncLoop(a, signal);
  }

  private async lockAsyncLoop(
    a: Attempt,
    signal: AbortSignal | undefined,
  ): Promise<WwLockInterruptibleResult> {
    const r32 = this._r32;
    const b = this._b;
    this.enqueue(a);
    Atomics.add(r32, b + R_WAITERS, 1);
    try {
      for (;;) {
        // Counted in WAITERS before reading SEQ: any change after this read bumps SEQ.
        const seq = Atomics.load(r32, b + R_SEQ);
        const r = this.attempt(a);
        if (r !== WAIT) return r as WwLockInterruptibleResult;
        try {
          await waitWhileEqualsAsync(r32, b + R_SEQ, seq, Infinity, { signal });
        } catch (e) {
          if (e instanceof DmaBufError && e.code === 'ERESTARTSYS') return EINTR;
          throw e;
        }
        a.lost++;
      }
    } finally {
      this.dropClaim(a);
      Atomics.sub(r32, b + R_WAITERS, 1);
    }
  }

  private lockSyncLoop(a: Attempt): number {
    const r = this.attempt(a);
    if (r !== WAIT) return r;
    const r32 = this._r32;
    const b = this._b;
    this.enqueue(a);
    Atomics.add(r32, b + R_WAITERS, 1);
    try {
      for (;;) {
        const seq = Atomics.load(r32, b + R_SEQ);
        const r = this.attempt(a);
        if (r !== WAIT) return r;
        waitWhileEqualsSync(r32, b + R_SEQ, seq, Infinity);
        a.lost++;
      }
    } finally {
      this.dropClaim(a);
      Atomics.sub(r32, b + R_WAITERS, 1);
    }
  }

  /** Whether `a` must die rather than wait behind a context with stamp `stamp` (0: none). */
  private mustDie(a: Attempt, stamp: number): boolean {
    return a.ctx !== null && a.ctx._acquired > 0 && stamp !== 0 && younger(a.stamp, stamp);
  }

  /** The context stamp of claim `c`, 0 when it was made without context. */
  private static claimStamp(c: bigint): number {
    return (ownerOf(c) & CLAIM_NO_CTX) !== 0 ? 0 : stampOf(c);
  }

  /**
   * One step: takes the lock (0), reports -EDEADLK / -EALREADY, or says that `a` must wait for a
   * change (WAIT). Never blocks.
   */
  private attempt(a: Attempt): number {
    const i64 = this._r64;
    const me = this._d.thread;
    for (;;) {
      const v = Atomics.load(i64, this.lo);
      const owner = ownerOf(v);
      if (owner === 0) {
        // Free: plain, or behind a marker (HANDOFF, DEAD) that reserves it for a claimant.
        if (v !== 0n) {
          const c = Atomics.load(i64, this.co);
          // Another claimant goes first, unless we would block our own thread for it.
          if (
            c !== 0n &&
            c !== a.claimValue &&
            !(a.sync && ownerThread(ownerOf(c) & ~CLAIM_NO_CTX) === me)
          ) {
            if (this.mustDie(a, WwMutex.claimStamp(c))) return EDEADLK;
            if (a.lost > 0) this.claim(a);
            if (Atomics.load(i64, this.co) !== c) continue;
            return WAIT;
          }
        }
        if (Atomics.compareExchange(i64, this.lo, v, a.value) === v) {
          if (a.claimed) this.dropClaim(a);
          this.acquired(a.ctx, v === LOCK_DEAD);
          return 0;
        }
        continue;
      }
      if (a.ctx !== null && owner === a.owner) return EALREADY;
      if (this.mustDie(a, stampOf(v))) return EDEADLK;
      const c = Atomics.load(i64, this.co);
      if (c !== 0n && c !== a.claimValue && this.mustDie(a, WwMutex.claimStamp(c))) return EDEADLK;
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

  /** Claims the lock for `a` if nobody has, or takes a younger waiter's claim over. */
  private claim(a: Attempt): void {
    const i64 = this._r64;
    for (;;) {
      const c = Atomics.load(i64, this.co);
      if (c === a.claimValue) return;
      if (c !== 0n && !younger(stampOf(c), a.age)) return;
      if (Atomics.compareExchange(i64, this.co, c, a.claimValue) === c) {
        a.claimed = true;
        wakeRecord(this._r32, this._b); // waiters re-check against the new claimant
        return;
      }
    }
  }

  /** Gives up `a`'s claim (if it still has it); a HANDOFF marker left for it is lifted. */
  private dropClaim(a: Attempt): void {
    if (!a.claimed) return;
    a.claimed = false;
    const i64 = this._r64;
    if (Atomics.compareExchange(i64, this.co, a.claimValue, 0n) !== a.claimValue) return;
    if (Atomics.load(i64, this.co) === 0n) Atomics.compareExchange(i64, this.lo, LOCK_HANDOFF, 0n);
    wakeRecord(this._r32, this._b);
  }

  /** Bookkeeping after this thread took the lock for `ctx` (`died`: from a dead holder). */
  private acquired(ctx: WwAcquireCtx | null, died: boolean): void {
    lockdepAcquired(this, ctx !== null, this.blocking);
    this.blocking = false;
    this.died = died;
    this.heldCtx = ctx;
    if (ctx !== null) ctx._acquired++;
  }
}
