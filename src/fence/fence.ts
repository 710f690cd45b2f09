/**
 * DmaFence: a one-shot completion signal with a context and a sequence number — the kernel's
 * `struct dma_fence`, shared across the threads of a domain.
 *
 * ## Contract
 * - A fence is created unsignaled by its driver (`new DmaFence(ops, context, seqno)`) and signaled
 *   exactly once ({@link DmaFence#signal}). The first signal records the timestamp and runs the
 *   callbacks synchronously, in the order they were added, in the signaling thread; later signals
 *   do nothing. An error may be set before the signal only.
 * - `(context, seqno)` orders fences of one timeline. It is metadata: two fences with the same pair
 *   are still independent objects.
 * - Synchronous methods (`signal`, `addCallback`, `isSignaled`, `setError`, `setDeadline`) may be
 *   called anywhere, like the kernel's atomic-context calls. Waits return Promises;
 *   `waitTimeoutSync` blocks and is meant for workers.
 *
 * ## Across threads
 * A fence is thread-local until it crosses a thread ({@link DmaFence#share}, or when a shared
 * reservation object stores it). It is then *published*: its state moves to a slot of the domain's
 * fence table and every thread's view reads and writes that slot. Any thread may signal, set the
 * error, set deadlines, wait or add callbacks. Callbacks added in a thread run in that thread:
 * synchronously when that thread signals, otherwise soon after the signal, from its event loop.
 * Publishing enables signaling (the driver's `enableSignaling` runs in the fence's home thread).
 * The driver's `signaled` op is consulted only in the home thread. When the home thread exits,
 * its still-pending fences are signaled with -ENOENT.
 *
 * Time is in nanoseconds (`bigint`) for timestamps and deadlines, and in milliseconds (`number`,
 * `Infinity` allowed) for wait timeouts.
 */

import { nowNs } from '../clock.js';
import { beginSignalling, endSignalling, mightWait } from '../debug/lockdep.js';
import { dropJournaled, J_FENCE } from '../domain/_journal.js';
import { SlotMap } from '../domain/_slotmap.js';
import { TK_FENCE, ticketClaim, ticketIssue } from '../domain/_tickets.js';
import {
  getWaitPolicy,
  holdKeepAlive,
  interrupted,
  releaseKeepAlive,
  setLongTimeout,
  spinLoad,
  syncSpinBudget,
  waitWhileEqualsAsync,
  waitWhileEqualsSync,
} from '../domain/_wait.js';
import { Domain, onThreadExit } from '../domain/domain.js';
import { checkNs, checkSignalOpts, type DmaBufError, describe, fail } from '../errors.js';
import { channels, trace, warn } from '../trace.js';
import {
  F_CONTEXT,
  F_DEADLINE,
  F_DRIVER,
  F_ERROR,
  F_FLAGS,
  F_HOME,
  F_SEQNO,
  F_STATE,
  F_TIMELINE,
  F_TSTAMP,
  F_TSVALID,
  F_WAITERS,
  finishSlotSignal,
  isClaimState,
  isSignaledState,
  SF_SEQNO64,
  STATE_PENDING,
  slotAlloc,
  slotGet,
  slotPut,
  slotSetDeadline,
  slotSignal,
  slotSignalError,
  slotTimestamp,
  slotTryGet,
} from './_shared.js';

// ---- flags (struct dma_fence.flags) -------------------------------------------------------------

/** The fence compares seqnos as 64-bit numbers (dma_fence_init64). */
export const DMA_FENCE_FLAG_SEQNO64_BIT = 0;
/** The fence has signaled. */
export const DMA_FENCE_FLAG_SIGNALED_BIT = 1;
/** The timestamp has been recorded. */
export const DMA_FENCE_FLAG_TIMESTAMP_BIT = 2;
/** Signaling was enabled (enableSignaling ran or was not needed). */
export const DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT = 3;
/** First bit free for drivers. */
export const DMA_FENCE_FLAG_USER_BITS = 8;

const SEQNO64 = 1 << DMA_FENCE_FLAG_SEQNO64_BIT;
const SIGNALED = 1 << DMA_FENCE_FLAG_SIGNALED_BIT;
const TIMESTAMP = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT;
const ENABLE_SIGNAL = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT;

/** Largest error magnitude a fence may carry (the kernel's MAX_ERRNO). */
export const MAX_ERRNO = 4095;

// ---- ops ---------------------------------------------------------------------------------------

/**
 * What a fence driver provides (`struct dma_fence_ops`). `getDriverName` and `getTimelineName`
 * are required; the rest are optional and the core supplies the default behaviour.
 */
export interface DmaFenceOps {
  /** Name of the driver that created the fence. Required. */
  getDriverName(fence: DmaFence): string;
  /** Name of the fence's timeline. Required. */
  getTimelineName(fence: DmaFence): string;
  /**
   * Called once, the first time somebody needs the fence to signal (a callback, a wait, a
   * publication). Return false if the fence has already passed; the core then signals it.
   */
  enableSignaling?(fence: DmaFence): boolean;
  /** Fast peek at completion. Once it returns true it must keep returning true. May set an error. */
  signaled?(fence: DmaFence): boolean;
  /**
   * Custom wait (deprecated in the kernel). Resolves like {@link DmaFence#waitTimeout}.
   */
  wait?(fence: DmaFence, timeoutMs: number, signal?: AbortSignal): Promise<number>;
  /** Called when the fence is disposed in its home thread. */
  release?(fence: DmaFence): void;
  /** A deadline hint (absolute, monotonic ns). May be called many times; track the earliest. */
  setDeadline?(fence: DmaFence, deadlineNs: bigint): void;
  /** Text of the timeline's current value, for debug output. */
  timelineValueStr?(fence: DmaFence): string;
  /** Text of the fence's value, for debug output. */
  fenceValueStr?(fence: DmaFence): string;
}

const validatedOps = new WeakSet<object>();

/** Checks an ops table once (required members present, optional ones functions). EINVAL if not. */
export function validateFenceOps(ops: unknown): asserts ops is DmaFenceOps {
  if (ops !== null && typeof ops === 'object' && validatedOps.has(ops)) return;
  if (ops === null || typeof ops !== 'object') fail('EINVAL', 'fence ops must be an object');
  const o = ops as Record<string, unknown>;
  for (const k of ['getDriverName', 'getTimelineName']) {
    if (typeof o[k] !== 'function') fail('EINVAL', `fence ops.${k} is required`);
  }
  for (const k of [
    'enableSignaling',
    'signaled',
    'wait',
    'release',
    'setDeadline',
    'timelineValueStr',
    'fenceValueStr',
  ]) {
    if (o[k] !== undefined && typeof o[k] !== 'function')
      fail('EINVAL', `fence ops.${k} must be a function`);
  }
  validatedOps.add(ops);
}

// ---- callbacks ----------------------------------------------------------------------------------

export type DmaFenceFunc = (fence: DmaFence, cb: DmaFenceCb) => void;

/**
 * A callback node (`struct dma_fence_cb`). It sits on at most one fence at a time. After it ran or
 * was removed, or when adding it found the fence signaled, it is "empty": removing it returns false.
 */
export class DmaFenceCb {
  func: DmaFenceFunc;
  /** @internal */ _fence: DmaFence | null = null;
  /** @internal */ _next: DmaFenceCb | null = null;
  /** @internal */ _prev: DmaFenceCb | null = null;

  constructor(func: DmaFenceFunc) {
    if (typeof func !== 'function') fail('EINVAL', 'callback must be a function');
    this.func = func;
  }

  /** Whether the node is currently queued on a fence. */
  get pending(): boolean {
    return this._fence !== null;
  }
}

// ---- descriptors --------------------------------------------------------------------------------

/** How a fence travels to another thread of the domain (structured-cloneable). */
export type FenceDescriptor = LeafDescriptor | { t: string; d: number; [k: string]: unknown };

/**
 * The descriptor of a plain fence: its wire format, read only by {@link DmaFence.fromShared}.
 * @internal
 */
export interface LeafDescriptor {
  t: 'fence';
  /** Domain id. */
  d: number;
  c: number;
  q: number;
  /** Flags: SEQNO64. */
  f: number;
  /** Slot and generation while pending (one reference travels with the descriptor). */
  s?: number;
  g?: number;
  /** The ticket that reference is claimed with, exactly once (see domain/_tickets.ts). */
  k?: number;
  kg?: number;
  n?: number;
  /** Final state when the fence was already signaled: error, timestamp, names. */
  e?: number;
  ts?: bigint;
  dn?: string;
  tn?: string;
  /** The global stub. */
  stub?: boolean;
}

/**
 * Descriptors (the objects themselves) already consumed in this thread. A descriptor carries one
 * reference: consuming the same object twice would take a reference somebody else holds. Only
 * the same object is caught; a structured clone of a used descriptor is not.
 */
const consumedDescs = new WeakSet<object>();

type Revive = (d: Domain, desc: any) => DmaFence;
const revivers = new Map<string, Revive>();

/** Lets a container module rebuild its descriptors (internal). */
export function registerFenceKind(t: string, revive: Revive): void {
  revivers.set(t, revive);
}

// ---- per-thread views of published fences ------------------------------------------------------
// slot → this thread's view, for as long as the view holds a reference on the slot (until it has
// seen the fence signal). Held strongly: a published fence stays reachable until it signals, as a
// kernel fence stays alive on its timeline; the kernel contract is that every fence signals, and
// the domain signals the fences of a thread that exits. Views that nobody looked at after their
// fence signaled are collected by an amortized sweep, so the map stays proportional to the
// number of pending fences. (WeakRef and FinalizationRegistry cost ~1 µs per fence here, too much
// for a per-frame path; a Map keyed by reused slots degrades, see _slotmap.ts.)
const pending = new SlotMap<DmaFence>();
let sweepAt = 1024;

function sweep(): void {
  for (const f of pending.values()) if (f._head === null) f.syncFromSlot();
  sweepAt = Math.max(1024, pending.size * 2);
}

// ---- timestamps read after the signal -----------------------------------------------------------
// A view that sees its fence signaled by another thread adopts the signal and the error at once
// but leaves the timestamp in the slot, keeping its reference: the signaler writes it right after
// releasing the waiters, and reading it (and dropping the reference, an atomic write) on the
// wake-up path would pull the slot's second cache line across cores while the signaler is still
// writing it. Views are *settled* (timestamp read, reference dropped) when asked for their
// timestamp, from a microtask, and in batches of SETTLE_BATCH — so a thread blocked in a loop of
// waits, whose microtasks never run, settles them too. A settle reads a cache line the signaler
// wrote and often frees the slot (into the thread's private free chain): 50-100 ns, so a batch
// costs 3-6 µs, well inside the ~28 µs spin budget of a peer waiting on this thread. (When a
// free cost a shared-list CAS and several BigInts, a batch of 64 took ~30 µs and the peer fell
// asleep once per batch.) The kernel defers its fence frees to RCU for the same reason.
const SETTLE_BATCH = 64;
/** Spin bound while a signaler is between its CAS and its timestamp store. */
const SETTLE_SPIN = 1_000_000;
const unsettled: DmaFence[] = [];
let settleQueued = false;
let settleRetry: ReturnType<typeof setTimeout> | undefined;

function deferTimestamp(f: DmaFence): void {
  unsettled.push(f);
  if (unsettled.length >= SETTLE_BATCH) settleAll();
  else if (!settleQueued) {
    settleQueued = true;
    queueMicrotask(settleLater);
  }
}

/** Settles every view whose timestamp is there; returns how many remain. */
function settleAll(): number {
  let keep = 0;
  for (const f of unsettled) if (!f._settleTimestamp(0)) unsettled[keep++] = f;
  unsettled.length = keep;
  return keep;
}

function settleLater(): void {
  settleQueued = false;
  // What remains belongs to a signaler that died between its signal and its timestamp: the exit
  // hook writes one soon. Retry from a timer that does not hold the thread alive.
  if (settleAll() > 0 && settleRetry === undefined) {
    settleRetry = setTimeout(() => {
      settleRetry = undefined;
      settleLater();
    }, 1);
    settleRetry.unref?.();
  }
}

/** Settles this thread's views waiting for a timestamp now (tests and inspection). @internal */
export function settleFenceTimestamps(): number {
  return settleAll();
}

// Remote views answer names from the strings recorded at publication.
const remoteOps: DmaFenceOps = {
  getDriverName: (f) => f._names?.[0] ?? 'unknown',
  getTimelineName: (f) => f._names?.[1] ?? 'unknown',
};
validateFenceOps(remoteOps);

const stubOps: DmaFenceOps = {
  getDriverName: () => 'stub',
  getTimelineName: () => 'stub',
};

// ---- the fence ----------------------------------------------------------------------------------

let stub: DmaFence | undefined;

export class DmaFence {
  readonly ops: DmaFenceOps;
  /** Timeline the fence belongs to (from {@link DmaFence.contextAlloc}; 0 only for stubs). */
  readonly context: number;
  /** Position on the timeline. */
  readonly seqno: number;
  /** Flag bits (DMA_FENCE_FLAG_*); drivers may use bits from DMA_FENCE_FLAG_USER_BITS up. */
  flags: number;

  /** @internal */ _error = 0;
  /** @internal */ _timestamp = 0n;
  /** @internal slot still referenced to read the timestamp from (signaled by another thread) */
  _tsSlot = 0;
  /** @internal */ _deadline = 0n;
  /** @internal */ _head: DmaFenceCb | null = null;
  /** @internal */ _tail: DmaFenceCb | null = null;
  /** @internal shared slot, or 0 while thread-local / after the final state was adopted */
  _slot = 0;
  /** @internal */ _gen = 0;
  /** @internal this thread's journal word for the slot reference (_slot or _tsSlot), or -1 */
  _jw = -1;
  /** @internal the domain of the slot */ _domain: Domain | null = null;
  /** @internal true for a view of a fence created in another thread */ _remote = false;
  /** @internal names recorded for remote views */ _names: [string, string] | null = null;
  /** @internal a watcher is parked on the slot for this view's callbacks */ _watching = false;

  /**
   * `dma_fence_init`: a new unsignaled fence of `ops` on `context` at `seqno`. The seqno is
   * compared with 32-bit wrap-around unless the fence is made with {@link DmaFence.init64}.
   */
  constructor(ops: DmaFenceOps, context: number, seqno: number) {
    validateFenceOps(ops);
    if (!Number.isSafeInteger(context) || context < 0)
      fail('EINVAL', `bad fence context ${describe(context)}`);
    if (!Number.isSafeInteger(seqno) || seqno < 0)
      fail('EINVAL', `bad fence seqno ${describe(seqno)}`);
    this.ops = ops;
    this.context = context;
    this.seqno = seqno;
    this.flags = 0;
    if (channels.fenceInit.hasSubscribers) channels.fenceInit.publish({ fence: this });
  }

  /** `dma_fence_init64`: like the constructor, with 64-bit seqno ordering. */
  static init64<T extends DmaFence>(
    this: new (
      ops: DmaFenceOps,
      c: number,
      s: number,
    ) => T,
    ops: DmaFenceOps,
    context: number,
    seqno: number,
  ): T {
    const f = new this(ops, context, seqno);
    f.flags |= SEQNO64;
    return f;
  }

  /** `dma_fence_context_alloc`: the first of `num` new, never reused fence contexts. */
  static contextAlloc(num = 1): number {
    // The kernel's count is an unsigned int: a larger one would exhaust the safe-integer space.
    if (!Number.isSafeInteger(num) || num <= 0 || num > 0xffff_ffff)
      fail('EINVAL', `contextAlloc needs a positive 32-bit count, got ${describe(num)}`);
    return Domain.current().allocContexts(num);
  }

  /** `dma_fence_get_stub`: the one global, already signaled fence (context 0, seqno 0). */
  static getStub(): DmaFence {
    if (stub === undefined) {
      stub = new DmaFence(stubOps, 0, 0);
      stub.flags |= ENABLE_SIGNAL;
      stub.signal();
    }
    return stub;
  }

  /** `dma_fence_allocate_private_stub`: a new fence, already signaled at `timestamp` (ns). */
  static allocatePrivateStub(timestamp: bigint = nowNs()): DmaFence {
    checkNs(timestamp, 'timestamp');
    const f = new DmaFence(stubOps, 0, 0);
    f.flags |= ENABLE_SIGNAL;
    f.signalTimestamp(timestamp);
    return f;
  }

  // ---- identity and order --------------------------------------------------------------------

  get driverName(): string {
    return this.ops.getDriverName(this);
  }

  get timelineName(): string {
    return this.ops.getTimelineName(this);
  }

  /** Whether this fence is a container (array or chain). Containers override this. */
  get isContainer(): boolean {
    return false;
  }

  /** `dma_fence_is_array`: whether this fence is a `DmaFenceArray` (which overrides this). */
  get isArray(): boolean {
    return false;
  }

  /** `dma_fence_is_chain`: whether this fence is a `DmaFenceChain` (which overrides this). */
  get isChain(): boolean {
    return false;
  }

  /**
   * `dma_fence_match_context`: whether the fence is on `context`. `DmaFenceArray` overrides it to
   * require every member to be on `context`.
   */
  matchContext(context: number): boolean {
    return this.context === context;
  }

  /**
   * `dma_fence_is_later`: whether this fence comes after `other` on their common timeline.
   * Different contexts: false. 32-bit wrap-around unless SEQNO64.
   */
  isLater(other: DmaFence): boolean {
    if (!(other instanceof DmaFence))
      fail('EINVAL', `isLater needs a DmaFence, got ${describe(other)}`);
    if (this.context !== other.context) return false;
    return seqnoIsLater(this.seqno, other.seqno, (this.flags & SEQNO64) !== 0);
  }

  /** `dma_fence_is_later_or_same`. */
  isLaterOrSame(other: DmaFence): boolean {
    if (!(other instanceof DmaFence))
      fail('EINVAL', `isLaterOrSame needs a DmaFence, got ${describe(other)}`);
    return this === other || this.isLater(other);
  }

  /**
   * `dma_fence_later`: the later of two fences of one context, or null when that one has already
   * signaled (or the contexts differ).
   */
  static later(a: DmaFence, b: DmaFence): DmaFence | null {
    if (!(a instanceof DmaFence) || !(b instanceof DmaFence))
      fail('EINVAL', 'DmaFence.later needs two fences');
    if (a.context !== b.context) return null;
    const l = a.isLater(b) ? a : b;
    return l.isSignaled() ? null : l;
  }

  // ---- state ---------------------------------------------------------------------------------

  /** The error the fence signaled with (0 for none, or while pending unless already set). */
  get error(): number {
    if (this._slot !== 0 && (this.flags & SIGNALED) === 0) this.syncFromSlot();
    return this._error;
  }

  /** `dma_fence_timestamp`: signal time in ns; 0n while pending. */
  get timestamp(): bigint {
    if ((this.flags & SIGNALED) === 0) this.syncFromSlot();
    if ((this.flags & TIMESTAMP) !== 0) return this._timestamp;
    if (this._tsSlot === 0) return 0n;
    // Signaled by another thread that writes the time right after its signal (the kernel spins
    // on the TIMESTAMP bit the same way). If that thread died in between, the time of this call
    // stands in until the exit hook records one.
    return this._settleTimestamp(SETTLE_SPIN) ? this._timestamp : nowNs();
  }

  /**
   * Reads the timestamp of a fence signaled by another thread from the slot and drops the
   * reference kept for it. False when the signaler has not written it within `spin` loads.
   * @internal
   */
  _settleTimestamp(spin: number): boolean {
    const slot = this._tsSlot;
    if (slot === 0) return true;
    const d = this._domain!;
    const t = d.tables.fence;
    t.ensure(slot);
    const ts = slotTimestamp(t, t.base(slot), spin);
    if (ts === undefined) return false;
    this._timestamp = ts;
    this.flags |= TIMESTAMP;
    this._tsSlot = 0;
    this.putSlotRef(d, slot);
    return true;
  }

  /** The earliest deadline requested so far (ns), or 0n for none. */
  get deadline(): bigint {
    if (this._slot !== 0 && this._domain !== null) {
      const t = this._domain.tables.fence;
      const d = Atomics.load(t.i64, (t.base(this._slot) + F_DEADLINE) >> 1);
      if (d !== 0n && (this._deadline === 0n || d < this._deadline)) this._deadline = d;
    }
    return this._deadline;
  }

  /**
   * `dma_fence_set_error`: records an error to report when the fence signals. Only before the
   * signal (EINVAL after), and only `-4095 <= error < 0` (EINVAL otherwise).
   */
  setError(error: number): void {
    if (!Number.isInteger(error) || error >= 0 || error < -MAX_ERRNO) {
      fail('EINVAL', `fence error must be in [-${MAX_ERRNO}, -1], got ${describe(error)}`);
    }
    if (this.testSignaledFlag()) fail('EINVAL', 'setError after the fence signaled');
    this._error = error;
    if (this._slot !== 0) {
      const t = this._domain!.tables.fence;
      Atomics.store(t.i32, t.base(this._slot) + F_ERROR, error);
    }
  }

  /**
   * Whether the SIGNALED flag is set (here or, for a published fence, in shared memory), without
   * asking the driver. Does not allocate.
   */
  testSignaledFlag(): boolean {
    if ((this.flags & SIGNALED) !== 0) return true;
    return this._slot !== 0 && this.syncFromSlot();
  }

  /**
   * `dma_fence_is_signaled`: whether the fence has signaled, asking the driver's `signaled` op
   * when the flag is not set yet — if the driver says yes, the fence signals right here (its
   * callbacks run) before true is returned.
   */
  isSignaled(): boolean {
    if (this.testSignaledFlag()) return true;
    if (!this._remote && this.ops.signaled !== undefined && this.ops.signaled(this)) {
      this.signal();
      return true;
    }
    return false;
  }

  /** `dma_fence_get_status`: 0 pending, 1 signaled, or the (negative) error it signaled with. */
  getStatus(): number {
    if (!this.isSignaled()) return 0;
    return this._error < 0 ? this._error : 1;
  }

  // ---- signaling -----------------------------------------------------------------------------

  /**
   * `dma_fence_signal`: signals now. A fence signals once; later calls do nothing. Callbacks must
   * not throw; if one does, the others still run, the fence is fully signaled, and then `signal`
   * rethrows (the error, or an AggregateError for several).
   */
  signal(): void {
    this.doSignal(undefined);
  }

  /** `dma_fence_signal_timestamp`: signals with the given timestamp (ns). */
  signalTimestamp(timestamp: bigint): void {
    this.doSignal(checkNs(timestamp, 'timestamp'));
  }

  /**
   * `dma_fence_check_and_signal`: signals and returns false, or returns true when the fence had
   * already signaled.
   */
  checkAndSignal(): boolean {
    return !this.doSignal(undefined);
  }

  /**
   * Returns true when this call signaled the fence. `ts` undefined means now — for a published
   * fence read right after the claim, so that waiters in other threads are released first.
   */
  private doSignal(ts: bigint | undefined): boolean {
    if ((this.flags & SIGNALED) !== 0) return false;
    let error = this._error;
    if (this._slot !== 0) {
      const d = this._domain!;
      // The error, if set, is in the slot already (setError and publish write it).
      ts = slotSignal(d, this._slot, ts);
      if (ts === undefined) {
        this.syncFromSlot(true);
        return false;
      }
      // Another thread may have set the error in shared memory.
      const t = d.tables.fence;
      // A plain read: our CAS ordered every earlier setError (an Atomics.store) before it, and
      // each Atomics call is a builtin call in V8 11 (this one sat on the signal path).
      error = t.i32[t.base(this._slot) + F_ERROR]!;
    }
    const errors = this.finishSignal(ts ?? nowNs(), error);
    if (errors !== null)
      throw errors.length === 1 ? errors[0] : new AggregateError(errors, 'fence callbacks threw');
    return true;
  }

  /**
   * Marks the fence signaled here, drops the slot, and runs this thread's callbacks in order.
   * `ts` undefined: signaled by another thread, the timestamp is read from the slot later (the
   * slot is kept until then). Returns what callbacks threw (null when none did): a throwing
   * callback never stops the others nor leaves the fence half-signaled.
   */
  private finishSignal(ts: bigint | undefined, error: number): unknown[] | null {
    this._error = error;
    if (ts !== undefined) {
      this._timestamp = ts;
      this.flags |= SIGNALED | TIMESTAMP;
      this.dropSlot();
    } else {
      this.flags |= SIGNALED;
      const slot = this._slot;
      this._slot = 0;
      if (pending.get(slot) === this) pending.delete(slot);
      this._tsSlot = slot;
      deferTimestamp(this);
    }
    if (channels.fenceSignaled.hasSubscribers) {
      channels.fenceSignaled.publish({ fence: this, error, timestamp: this.timestamp });
    }
    let errors: unknown[] | null = null;
    let cb: DmaFenceCb | null = this._head;
    this._head = this._tail = null;
    if (cb === null) return null;
    // Callbacks run on the signalling path: lockdep-lite flags waits and locks inside them.
    const cookie = beginSignalling();
    while (cb !== null) {
      const next: DmaFenceCb | null = cb._next;
      cb._fence = cb._next = cb._prev = null;
      try {
        cb.func(this, cb);
      } catch (e) {
        (errors ??= []).push(e);
      }
      cb = next;
    }
    endSignalling(cookie);
    return errors;
  }

  /**
   * For a published fence, adopts the shared final state when the slot says signaled. Returns
   * whether the fence is signaled. `wait` spins over a claim in progress.
   * @internal
   */
  syncFromSlot(wait = false): boolean {
    if ((this.flags & SIGNALED) !== 0) return true;
    if (this._slot === 0) return false;
    const t = this._domain!.tables.fence;
    const b = t.base(this._slot);
    let st = Atomics.load(t.i32, b + F_STATE);
    // A slow-path claim is finished within a few stores; bound the spin in case its thread died
    // there (the exit hook then finishes it).
    for (let i = 0; wait && i < 1_000_000 && isClaimState(st); i++) {
      st = Atomics.load(t.i32, b + F_STATE);
    }
    if (!isSignaledState(st)) return false;
    return this._adoptSignal(t.i32, b);
  }

  /** Adopts the signal of the slot at `b`, seen signaled by this thread. Returns true. @internal */
  _adoptSignal(i32: Int32Array, b: number): true {
    // A plain read: the Atomics load that saw the signal ordered the signaler's writes before it,
    // and each Atomics call is a builtin call in V8 11 (this one sat on the wake-up path).
    const err = i32[b + F_ERROR]!;
    // Signaled by another thread: nobody here called signal() to receive callback errors, so
    // they are reported as uncaught exceptions, after the state is consistent.
    const errors = this.finishSignal(undefined, err);
    if (errors !== null)
      for (const e of errors)
        queueMicrotask(() => {
          throw e;
        });
    return true;
  }

  /** `dma_fence_enable_sw_signaling`: makes sure the driver will signal this fence. */
  enableSwSignaling(): void {
    this.enableSignaling();
  }

  /** Returns false when the fence is (now) signaled. */
  private enableSignaling(): boolean {
    if ((this.flags & ENABLE_SIGNAL) === 0) {
      this.flags |= ENABLE_SIGNAL;
      if (!this.testSignaledFlag() && !this._remote && this.ops.enableSignaling !== undefined) {
        if (!this.ops.enableSignaling(this)) {
          this.signal();
          return false;
        }
      }
    }
    return !this.testSignaledFlag();
  }

  // ---- callbacks -----------------------------------------------------------------------------

  /**
   * `dma_fence_add_callback`: queues `cb` (a node or a function) to run when the fence signals,
   * and enables signaling. Returns the queued node, or null — without calling it — when the fence
   * has already signaled (the kernel's -ENOENT); the node is then left empty.
   */
  addCallback(cb: DmaFenceCb | DmaFenceFunc): DmaFenceCb | null {
    const node = typeof cb === 'function' ? new DmaFenceCb(cb) : cb;
    if (!(node instanceof DmaFenceCb))
      fail('EINVAL', 'addCallback needs a function or a DmaFenceCb');
    if (node._fence !== null) fail('EBUSY', 'callback node is already queued on a fence');
    if (!this.enableSignaling()) return null;
    node._fence = this;
    node._prev = this._tail;
    node._next = null;
    if (this._tail === null) this._head = node;
    else this._tail._next = node;
    this._tail = node;
    if (this._slot !== 0 && !this._watching) this.watch();
    return node;
  }

  /**
   * `dma_fence_remove_callback`: unqueues `cb`. True when it was still pending on this fence; false
   * when it already ran, was removed, or was never added.
   */
  removeCallback(cb: DmaFenceCb): boolean {
    if (!(cb instanceof DmaFenceCb) || cb._fence !== this) return false;
    if (cb._prev === null) this._head = cb._next;
    else cb._prev._next = cb._next;
    if (cb._next === null) this._tail = cb._prev;
    else cb._next._prev = cb._prev;
    cb._fence = cb._next = cb._prev = null;
    return true;
  }

  /** Parks one async watcher on the slot so that this thread's callbacks run after a remote signal. */
  private watch(): void {
    const d = this._domain!;
    const t = d.tables.fence;
    const b = t.base(this._slot);
    this._watching = true;
    const loop = (): void => {
      if (this._slot === 0 || this.syncFromSlot()) {
        this._watching = false;
        return;
      }
      const st = Atomics.load(t.i32, b + F_STATE);
      // Signaled since syncFromSlot looked: waiting for the state to leave that value would wait
      // for good (a signaled state never changes again while the slot is referenced).
      if (isSignaledState(st)) {
        loop();
        return;
      }
      waitWhileEqualsAsync(t.i32, b + F_STATE, st, Infinity, {
        waiters: b + F_WAITERS,
        keepAlive: false,
      }).then(loop, loop);
    };
    loop();
  }

  // ---- waiting -------------------------------------------------------------------------------

  /**
   * `dma_fence_wait_timeout`: waits until the fence signals or `timeoutMs` passes.
   * Resolves with the time left in ms (at least 1; `Infinity` for an unbounded wait), 0 on timeout,
   * and — for `timeoutMs === 0` — 1 if signaled else 0. A negative or NaN timeout is EINVAL. An
   * aborted `signal` rejects with ERESTARTSYS (the interruptible wait).
   */
  async waitTimeout(timeoutMs: number, opts: { signal?: AbortSignal } = {}): Promise<number> {
    checkTimeout(timeoutMs);
    const signal = checkSignalOpts(opts, 'waitTimeout');
    if (this.isSignaled()) return timeoutMs === 0 ? 1 : timeoutMs;
    if (timeoutMs === 0) return 0;
    mightWait('DmaFence#waitTimeout');
    if (signal?.aborted) throw interrupted();
    if (channels.fenceWaitStart.hasSubscribers)
      channels.fenceWaitStart.publish({ fence: this, timeoutMs });
    let result: number;
    try {
      if (this.ops.wait !== undefined && !this._remote)
        result = await this.ops.wait(this, timeoutMs, signal);
      else result = await this.defaultWait(timeoutMs, signal);
    } finally {
      trace('fenceWaitEnd', () => ({ fence: this, result }));
    }
    return result;
  }

  /** `dma_fence_wait`: waits without timeout; resolves 0. Rejects ERESTARTSYS when aborted. */
  async wait(opts: { signal?: AbortSignal } = {}): Promise<0> {
    checkSignalOpts(opts, 'wait');
    await this.waitTimeout(Infinity, opts);
    return 0;
  }

  private async defaultWait(timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const start = performance.now();
    if (!this.enableSignaling()) return remaining(start, timeoutMs);
    if (this._slot !== 0) {
      const d = this._domain!;
      const t = d.tables.fence;
      const b = t.base(this._slot);
      // Keep the slot alive across the wait even if another path drops this view's reference.
      const slot = this._slot;
      slotGet(d, slot);
      const jw = d.journalAdd(J_FENCE, slot);
      try {
        for (;;) {
          const st = Atomics.load(t.i32, b + F_STATE);
          if (isSignaledState(st)) break;
          const left = timeoutMs - (performance.now() - start);
          if (left <= 0) return this.syncFromSlot() ? 1 : 0;
          await waitWhileEqualsAsync(t.i32, b + F_STATE, st, left, {
            signal,
            waiters: b + F_WAITERS,
          });
        }
      } finally {
        this.syncFromSlot(true);
        d.journalRemove(jw);
        slotPut(d, slot);
      }
      return remaining(start, timeoutMs);
    }
    // Thread-local fence: only this thread can signal it, through a callback.
    return new Promise<number>((resolve, reject) => {
      let cancel: (() => void) | undefined;
      const done = (v: number | DmaBufError): void => {
        if (cancel !== undefined) cancel();
        else releaseKeepAlive();
        signal?.removeEventListener('abort', onAbort);
        this.removeCallback(node);
        if (typeof v === 'number') resolve(v);
        else reject(v);
      };
      const onAbort = (): void => done(interrupted());
      const node = new DmaFenceCb(() => done(remaining(start, timeoutMs)));
      if (this.addCallback(node) === null) {
        resolve(remaining(start, timeoutMs));
        return;
      }
      if (timeoutMs === Infinity) holdKeepAlive();
      else cancel = setLongTimeout(() => done(this.isSignaled() ? 1 : 0), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Blocking `dma_fence_wait_timeout` for workers: same results as {@link waitTimeout}. A
   * thread-local fence can only be signaled by its driver's `signaled` op here, which is polled.
   * Throws EPERM where the runtime forbids blocking.
   */
  waitTimeoutSync(timeoutMs: number): number {
    checkTimeout(timeoutMs);
    if (this.isSignaled()) return timeoutMs === 0 ? 1 : timeoutMs;
    if (timeoutMs === 0) return 0;
    mightWait('DmaFence#waitTimeoutSync');
    const start = timeoutMs === Infinity ? 0 : performance.now();
    // Already enabled: nothing to do that the wait below does not (isSignaled just looked).
    if ((this.flags & ENABLE_SIGNAL) === 0 && !this.enableSignaling())
      return remaining(start, timeoutMs);
    if (channels.fenceWaitStart.hasSubscribers)
      channels.fenceWaitStart.publish({ fence: this, timeoutMs });
    let result = 0;
    if (this._slot !== 0) {
      // No extra reference: while this thread blocks, nothing else here can drop the view's.
      const t = this._domain!.tables.fence;
      const i32 = t.i32;
      const b = t.base(this._slot);
      // Spin first, keeping what the spin saw: the wake-up path loads the state word once.
      let st = Atomics.load(i32, b + F_STATE);
      if (!isSignaledState(st)) st = spinLoad(i32, b + F_STATE, st, syncSpinBudget());
      while (!isSignaledState(st)) {
        const left = timeoutMs === Infinity ? Infinity : timeoutMs - (performance.now() - start);
        if (left <= 0) break;
        waitWhileEqualsSync(i32, b + F_STATE, st, left, b + F_WAITERS);
        st = Atomics.load(i32, b + F_STATE);
      }
      const signaled = isSignaledState(st) ? this._adoptSignal(i32, b) : this.syncFromSlot(true);
      result = signaled ? remaining(start, timeoutMs) : 0;
    } else {
      let nap = 0.02;
      for (;;) {
        if (this.isSignaled()) {
          result = remaining(start, timeoutMs);
          break;
        }
        const left = timeoutMs - (performance.now() - start);
        if (left <= 0) break;
        Atomics.wait(napWord, 0, 0, Math.min(nap, left));
        nap = Math.min(nap * 2, 2);
      }
    }
    if (channels.fenceWaitEnd.hasSubscribers)
      channels.fenceWaitEnd.publish({ fence: this, result });
    return result;
  }

  /** Blocking `dma_fence_wait` for workers. */
  waitSync(): 0 {
    this.waitTimeoutSync(Infinity);
    return 0;
  }

  /**
   * `dma_fence_wait_any_timeout`: waits until any of `fences` signals. Resolves `{ remaining,
   * index }` with the first signaled fence's index (-1 on timeout). Empty list or bad timeout:
   * EINVAL. With `timeoutMs === 0`: remaining is 1 when one is signaled, else 0.
   */
  static async waitAnyTimeout(
    fences: readonly DmaFence[],
    timeoutMs: number,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ remaining: number; index: number }> {
    if (!Array.isArray(fences) || fences.length === 0)
      fail('EINVAL', 'waitAnyTimeout needs fences');
    checkTimeout(timeoutMs);
    const signal = checkSignalOpts(opts, 'waitAnyTimeout');
    for (const f of fences)
      if (!(f instanceof DmaFence)) fail('EINVAL', 'waitAnyTimeout: not a DmaFence');
    const first = (): number => fences.findIndex((f) => f.isSignaled());
    let idx = first();
    if (idx >= 0) return { remaining: timeoutMs === 0 ? 1 : timeoutMs, index: idx };
    if (timeoutMs === 0) return { remaining: 0, index: -1 };
    mightWait('DmaFence.waitAnyTimeout');
    if (signal?.aborted) throw interrupted();
    const start = performance.now();
    await new Promise<void>((resolve, reject) => {
      const nodes: DmaFenceCb[] = [];
      let cancel: (() => void) | undefined;
      const done = (e?: DmaBufError): void => {
        for (let i = 0; i < nodes.length; i++) fences[i]!.removeCallback(nodes[i]!);
        if (cancel !== undefined) cancel();
        else releaseKeepAlive();
        signal?.removeEventListener('abort', onAbort);
        if (e) reject(e);
        else resolve();
      };
      const onAbort = (): void => done(interrupted());
      let fired = false;
      for (const f of fences) {
        const n = new DmaFenceCb(() => {
          if (!fired) {
            fired = true;
            queueMicrotask(() => done());
          }
        });
        nodes.push(n);
        if (f.addCallback(n) === null) fired = true;
      }
      if (timeoutMs === Infinity) holdKeepAlive();
      else cancel = setLongTimeout(() => done(), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (fired) queueMicrotask(() => done());
    });
    idx = first();
    return idx >= 0
      ? { remaining: remaining(start, timeoutMs), index: idx }
      : { remaining: 0, index: -1 };
  }

  // ---- deadlines and text --------------------------------------------------------------------

  /**
   * `dma_fence_set_deadline`: hints that the fence should signal by `deadlineNs` (absolute,
   * monotonic ns; a past value means "as soon as possible"). Ignored once signaled. The earliest
   * deadline is recorded (shared when published) and the driver's op is told in the home thread.
   */
  setDeadline(deadlineNs: bigint): void {
    checkNs(deadlineNs, 'deadline');
    if (this.testSignaledFlag()) return;
    const ns = deadlineNs === 0n ? 1n : deadlineNs;
    if (this._deadline === 0n || ns < this._deadline) this._deadline = ns;
    if (this._slot !== 0) slotSetDeadline(this._domain!, this._slot, ns);
    if (!this._remote) this.ops.setDeadline?.(this, deadlineNs);
  }

  /** `dma_fence_describe`: one line of text about the fence. */
  describe(): string {
    const signaled = this.isSignaled();
    const value = this.ops.fenceValueStr ? ` ${this.ops.fenceValueStr(this)}` : '';
    return `${this.timelineName} ${this.driverName} seq ${this.seqno}${value} ${signaled ? '' : 'un'}signalled`;
  }

  toString(): string {
    return `DmaFence(${this.driverName}:${this.timelineName} ${this.context}:${this.seqno} ${this.testSignaledFlag() ? 'signaled' : 'pending'})`;
  }

  // ---- lifetime ------------------------------------------------------------------------------

  /**
   * Releases this thread's hold on the fence now rather than at garbage collection: drops the
   * shared reference and calls the driver's `release` op (home thread). A fence disposed while
   * callbacks are still queued is signaled with -EDEADLK so that they are not left dangling.
   */
  [Symbol.dispose](): void {
    if (this._head !== null && !this.testSignaledFlag()) {
      warn('dmabuf: fence released with pending callbacks');
      if (this._error === 0) this.setError(-35);
      this.signal();
    }
    const shared = this._slot !== 0;
    // The home view of a published fence that has not signaled keeps its slot: other threads
    // hold references and wait on it, and only a signal through this object (or the home
    // thread's exit) can reach them. Dropping it left them waiting and the slot leaked; it is
    // dropped when the fence signals, as garbage collection would never have dropped it earlier.
    if (this._remote || !shared || this.testSignaledFlag()) this.dropSlot();
    if (this._tsSlot !== 0 && !this._settleTimestamp(SETTLE_SPIN)) {
      // Its signaler died before writing the time: keep none, drop the reference.
      const slot = this._tsSlot;
      this._tsSlot = 0;
      this.putSlotRef(this._domain!, slot);
    }
    if (!this._remote) this.ops.release?.(this);
    // A published fence reports its destruction when its shared slot is freed (slotPut).
    if (!shared) trace('fenceDestroy', () => ({ context: this.context, seqno: this.seqno }));
  }

  // ---- publication -----------------------------------------------------------------------------

  /**
   * Makes the fence visible to other threads (idempotent) and returns its descriptor; the
   * descriptor carries one reference, to be consumed by exactly one {@link DmaFence.fromShared}.
   */
  share(): FenceDescriptor {
    const d = Domain.current();
    // A fence published in another domain has its slot there: a descriptor for this one would
    // name a slot of the wrong table.
    if (this._slot !== 0 && this._domain !== d)
      fail('EXDEV', 'the fence belongs to another dmabuf domain');
    if (this.testSignaledFlag()) {
      return {
        t: 'fence',
        d: d.id,
        c: this.context,
        q: this.seqno,
        f: this.flags & SEQNO64,
        e: this._error,
        ts: this.timestamp,
        dn: this.driverName,
        tn: this.timelineName,
        stub: this === stub ? true : undefined,
      };
    }
    this.publish(d);
    // The ticket first: if the table is full (ENOMEM) no reference has been taken yet.
    const ticket = ticketIssue(d, TK_FENCE, this._slot, this._gen);
    slotGet(d, this._slot);
    return {
      t: 'fence',
      d: d.id,
      c: this.context,
      q: this.seqno,
      f: this.flags & SEQNO64,
      s: this._slot,
      g: this._gen,
      ...ticket,
    };
  }

  /**
   * Publishes the fence into the domain's fence table if it is not already, returning the slot
   * (0 when the fence has signaled: its state no longer needs shared memory).
   * @internal
   */
  publish(d: Domain = Domain.current()): number {
    if (this._slot !== 0 || (this.flags & SIGNALED) !== 0) return this._slot;
    if (this._remote) return 0;
    if (this.isContainer) fail('EINVAL', 'container fences are shared through their members');
    const [slot, gen] = slotAlloc(d);
    const t = d.tables.fence;
    const b = t.base(slot);
    t.f64[(b + F_CONTEXT) >> 1] = this.context;
    t.f64[(b + F_SEQNO) >> 1] = this.seqno;
    t.i32[b + F_FLAGS] = this.flags & SEQNO64 ? SF_SEQNO64 : 0;
    t.i32[b + F_HOME] = d.thread;
    t.i32[b + F_ERROR] = this._error;
    t.i32[b + F_DRIVER] = d.strings.intern(this.driverName);
    t.i32[b + F_TIMELINE] = d.strings.intern(this.timelineName);
    if (this._deadline !== 0n) t.i64[(b + F_DEADLINE) >> 1] = this._deadline;
    Atomics.store(t.i32, b + F_STATE, STATE_PENDING);
    this._bindSlot(d, slot, gen);
    // Remote parties may wait on it: make sure the driver will signal it.
    this.enableSignaling();
    if ((this.flags & SIGNALED) === 0 && this._head !== null && !this._watching) this.watch();
    return this._slot;
  }

  /**
   * Binds this view to a shared slot (holding one reference on it) and lists it among the
   * thread's pending views, sweeping those that saw their fence signal when the list has grown.
   * @internal
   */
  _bindSlot(d: Domain, slot: number, gen: number): void {
    this._domain = d;
    this._slot = slot;
    this._gen = gen;
    this._jw = d.journalAdd(J_FENCE, slot);
    pending.set(slot, this);
    if (pending.size >= sweepAt) sweep();
  }

  /** Drops this view's reference on its slot (after the final state was adopted, or on dispose). */
  private dropSlot(): void {
    if (this._slot === 0) return;
    const slot = this._slot;
    this._slot = 0;
    if (pending.get(slot) === this) pending.delete(slot);
    this.putSlotRef(this._domain!, slot);
  }

  /**
   * Drops this view's reference on `slot` (its `_slot` or `_tsSlot`): clears its journal word
   * first, so that a thread killed in between leaks the reference rather than dropping it twice.
   */
  private putSlotRef(d: Domain, slot: number): void {
    d.journalRemove(this._jw);
    this._jw = -1;
    slotPut(d, slot);
  }

  /**
   * Rebuilds a fence from a descriptor made by {@link share} in any thread of this domain,
   * consuming the reference it carries. Returns the same object for the same pending fence within
   * a thread. A malformed descriptor is EINVAL; a foreign domain's is EXDEV; a stale one is EBADF.
   */
  static fromShared(desc: FenceDescriptor): DmaFence {
    const d = Domain.current();
    if (desc === null || typeof desc !== 'object' || typeof desc.t !== 'string')
      fail('EINVAL', 'not a fence descriptor');
    d.checkId(desc.d);
    if (desc.t !== 'fence') {
      const revive = revivers.get(desc.t);
      if (revive === undefined) fail('EINVAL', `unknown fence descriptor kind ${describe(desc.t)}`);
      return revive(d, desc);
    }
    const l = desc as LeafDescriptor;
    if (!Number.isSafeInteger(l.c) || !Number.isSafeInteger(l.q) || l.c < 0 || l.q < 0) {
      fail('EINVAL', 'fence descriptor has a bad context or seqno');
    }
    if (l.s === undefined) {
      if (l.stub === true) return DmaFence.getStub();
      if (
        typeof l.ts !== 'bigint' ||
        l.ts < 0n ||
        l.ts >= 2n ** 63n ||
        !Number.isInteger(l.e) ||
        (l.e as number) > 0 ||
        (l.e as number) < -MAX_ERRNO ||
        typeof l.f !== 'number' ||
        (l.dn !== undefined && typeof l.dn !== 'string') ||
        (l.tn !== undefined && typeof l.tn !== 'string')
      )
        fail('EINVAL', 'bad signaled fence descriptor');
      const f = new DmaFence(remoteOps, l.c, l.q);
      f._remote = true;
      f._names = [l.dn ?? '', l.tn ?? ''];
      f.flags |= (l.f & SEQNO64) | ENABLE_SIGNAL;
      f.finishSignal(l.ts, l.e as number); // no callbacks yet: nothing can throw
      return f;
    }
    const slot = l.s;
    const gen = l.g as number;
    const t = d.tables.fence;
    if (!t.isSlot(slot) || !Number.isInteger(gen)) fail('EBADF', 'fence descriptor names no fence');
    if (consumedDescs.has(l)) fail('EBADF', 'the fence descriptor was already consumed');
    // One claim per share, whatever the number of copies posted: the ticket.
    if (!ticketClaim(d, TK_FENCE, slot, gen, l))
      fail('EBADF', 'stale, forged or already consumed fence descriptor');
    // The descriptor carries a reference: prove it is still the same fence by taking another,
    // then drop the descriptor's.
    if (!slotTryGet(d, slot, gen)) fail('EBADF', 'stale fence descriptor');
    slotPut(d, slot);
    consumedDescs.add(l);
    return viewOf(d, slot, gen, true);
  }

  /**
   * A view of the fence in `slot` (generation `gen`), for modules that store fences in shared
   * memory (reservation objects). The caller holds a reference on the slot; `adopt` hands it to
   * the view (true) or makes the view take its own (false).
   * @internal
   */
  static fromSlot(d: Domain, slot: number, gen: number, adopt: boolean): DmaFence {
    return viewOf(d, slot, gen, adopt);
  }
}

/** The per-thread view of a slot; consumes one reference when `adopt`. */
function viewOf(d: Domain, slot: number, gen: number, adopt: boolean): DmaFence {
  const existing = pending.get(slot);
  if (existing !== undefined && existing._gen === gen) {
    if (adopt) slotPut(d, slot);
    return existing;
  }
  const t = d.tables.fence;
  t.ensure(slot);
  if (!adopt) slotGet(d, slot);
  const b = t.base(slot);
  const f = new DmaFence(remoteOps, t.f64[(b + F_CONTEXT) >> 1]!, t.f64[(b + F_SEQNO) >> 1]!);
  f._remote = true;
  f._names = [d.strings.get(t.i32[b + F_DRIVER]!), d.strings.get(t.i32[b + F_TIMELINE]!)];
  if ((t.i32[b + F_FLAGS]! & SF_SEQNO64) !== 0) f.flags |= SEQNO64;
  f.flags |= ENABLE_SIGNAL;
  f._bindSlot(d, slot, gen);
  f.syncFromSlot();
  return f;
}

const napWord = new Int32Array(new SharedArrayBuffer(4));

/** A wait timeout in ms: a number >= 0 (Infinity allowed), or EINVAL. @internal */
export function checkTimeout(t: unknown): asserts t is number {
  if (typeof t !== 'number' || Number.isNaN(t) || t < 0)
    fail('EINVAL', `timeout must be >= 0 ms, got ${describe(t)}`);
}

function remaining(start: number, timeoutMs: number): number {
  if (timeoutMs === Infinity) return Infinity;
  return Math.max(1, Math.ceil(timeoutMs - (performance.now() - start)));
}

/** The kernel's seqno order: `(int32)(a - b) > 0`, or plain `a > b` for 64-bit timelines. */
export function seqnoIsLater(a: number, b: number, seqno64: boolean): boolean {
  if (typeof a !== 'number' || typeof b !== 'number')
    fail('EINVAL', `seqnoIsLater compares numbers, got ${describe(a)} and ${describe(b)}`);
  if (seqno64) return a > b;
  return ((a - b) | 0) > 0;
}

// When a thread exits, fences it created that are still pending can never be signaled by their
// driver: signal them with -ENOENT, as closing a sw_sync timeline does. Claims it left half-done
// are finished.
onThreadExit(10, (d, thread) => {
  const t = d.tables.fence;
  const claim = (thread << 2) | 1;
  const signaledBy = (thread << 2) | 2;
  const ts = nowNs();
  for (const slot of t.allocated()) {
    const b = t.base(slot);
    const st = Atomics.load(t.i32, b + F_STATE);
    if (st === claim) {
      finishSlotSignal(t, b, ts);
    } else if (st === signaledBy) {
      // Signaled, then died before writing the time — or before waking the sleepers, who would
      // then sleep forever: write a time for it, and wake them (a spurious wake-up is harmless).
      if (Atomics.load(t.i32, b + F_TSVALID) !== 1) {
        t.i64[(b + F_TSTAMP) >> 1] = ts;
        Atomics.store(t.i32, b + F_TSVALID, 1);
      }
      Atomics.notify(t.i32, b + F_STATE);
    } else if (st === STATE_PENDING && Atomics.load(t.i32, b + F_HOME) === thread) {
      slotSignalError(d, slot, -2, ts);
    }
  }
});

// References the exited thread's views held on fence slots (its own published fences, its views of
// other threads' fences, its pending async waits) are dropped. After the hook above, so that a
// pending fence it created is signaled before its last reference can go.
onThreadExit(30, (d, thread) =>
  dropJournaled(d.journalOf(thread), J_FENCE, d.tables.fence, (slot) => slotPut(d, slot)),
);

/** The wait policy knobs, re-exported for tests and benchmarks. */
export { getWaitPolicy };
