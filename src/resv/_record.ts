/**
 * Shared records of the reservation table: one slot per {@link WwMutex} or {@link DmaResv}, and the
 * overflow fence lists in the `resvList` table. Internal.
 *
 * ## Record (a slot of the `resv` table, 24 Int32 words = 96 bytes)
 * ```
 *  word  0 LINK         1 GEN                      SlotTable's
 *        2 LOCK_OWNER   3 LOCK_STAMP               i64 LOCK   0 = free, else (stamp << 32) | owner
 *        4 CLAIM_OWNER  5 CLAIM_STAMP              i64 CLAIM  0 = none, else the waiter next in line
 *        6 WAITERS      lockers inside their wait loop (changers skip the wake-up when 0)
 *        7 SEQ          bumped after a change of LOCK or CLAIM that a waiter may wait for
 *        8 FLAGS        KIND (bits 0..3)
 *        9 REFS         views and descriptors in flight; the last put frees the record
 *       10 LIST_SLOT   11 LIST_VER                 i64 LIST: (version << 32) | overflow slot (0 = inline)
 *       12 RESERVED     adds allowed by the last reserveFences (lock holder only; 0 after unlock)
 *       13 COUNT        entries of the inline list (its capacity is fixed: 5)
 *       14..23          five inline entries (i64 each)
 * ```
 * `owner` is `(thread << 23) | n`: `n` is 0 for a lock taken without context (owned by the thread)
 * and a per-thread context id otherwise (23 bits). The thread is what the exit hook needs. A CLAIM
 * made without context has bit 31 of its owner half set and a ticket (taken from the stamp counter
 * when the waiter started) in its stamp half, so that claims compare by age either way. `stamp` is the low 32 bits of the
 * holder's acquire-context stamp (0 for a lock taken without context); stamps compare with
 * wrap-around, so a context may live across 2^31 later stamps before order breaks down.
 * Taking the lock is one 64-bit CAS 0 → (stamp, owner): a contender always reads the holder's
 * owner and stamp together. Owner 0 means free: LOCK is 0, or a marker with the owner half 0 —
 * HANDOFF (released while a waiter had claimed it: only the claimant may take it) or DEAD (freed
 * by the exit hook of a thread that died holding it: whoever takes it next is told). Only the
 * holder releases a held lock (a store); the exit hook frees a dead holder's lock with a CAS.
 *
 * Waiting: a locker that must wait first counts itself in WAITERS, then loops: read SEQ, evaluate
 * LOCK and CLAIM, and if it still must wait, sleep while SEQ is unchanged. Whoever changes what a
 * waiter may be waiting for — a release, a claim made, taken over or dropped, an acquisition while
 * a claim is pending, the exit hook — bumps SEQ and wakes every sleeper when WAITERS is non-zero.
 * A waiter therefore re-evaluates after every relevant change, whatever value the words went back
 * to (no ABA on the lock words), and the uncontended paths pay one load of WAITERS.
 *
 * CLAIM is a fairness hint: a waiter that lost the race after a wake-up claims the lock (an older
 * context may take the claim over), and while the lock is free other lockers wait for the claimant
 * to pick it up, instead of barging. Claims only ever order acquisitions; they never hand a lock
 * to anybody, so a claimant that gives up (abort, death) leaves nothing held.

 * ## Fence entries
 * An entry is one 64-bit word: `(fence slot << 34) | (fence generation << 2) | usage`, 0 = empty.
 * It holds one reference on the fence's slot in the fence table. A lock-free reader loads an entry
 * in one access (never torn), then takes its own reference with `slotTryGet(slot, gen)`, which
 * fails if the fence was freed since.
 *
 * The list is either inline (five entries in the record) or an overflow list: a chain of
 * `resvList` slots (below). LIST names the current one, with a version bumped whenever the list is
 * replaced (growth, compaction, copy). Writers (the lock holder) change the current list only by
 * writing an empty entry past COUNT and then publishing COUNT + 1 (append), or by storing a whole
 * entry in place (replace). A new list is built aside and published with one 64-bit store of LIST;
 * the old storage is freed afterwards. A reader validates LIST after reading any word of a list:
 * if LIST changed, what it read may belong to freed or reused storage and it restarts.
 *
 * ## Overflow list chunk (a slot of the `resvList` table, 64 words = 256 bytes)
 * ```
 *  word 0 LINK  1 GEN   (SlotTable's)
 *       2 COUNT 3 MAX   (first chunk only: the list's header)
 *       4 NEXT          next chunk, 0 = last
 *       5 pad
 *       6..63           29 entries (i64 each)
 * ```
 */

import { dropJournaled, J_RECORD } from '../domain/_journal.js';
import type { SlotMap } from '../domain/_slotmap.js';
import { HEADER_WORDS, type SlotTable } from '../domain/_slots.js';
import { Domain, onThreadExit } from '../domain/domain.js';
import { trace } from '../trace.js';

export const R_LOCK = 2;
export const R_LOCK_OWNER = 2;
export const R_LOCK_STAMP = 3;
export const R_CLAIM = 4;
export const R_CLAIM_OWNER = 4;
export const R_WAITERS = 6;
export const R_SEQ = 7;
export const R_FLAGS = 8;
export const R_REFS = 9;
export const R_LIST = 10;
export const R_RESERVED = 12;
export const R_COUNT = 13;
export const R_INLINE = 14;
export const INLINE_ENTRIES = 5;

export const KIND_MASK = 0xf;
export const KIND_MUTEX = 1;
export const KIND_RESV = 2;

/** LOCK markers: free (owner 0), but reserved for the claimant if there is one. */
export const LOCK_HANDOFF = BigInt.asIntN(64, 1n << 32n);
/** Free after its holder died; the next acquisition is told (and takes it like HANDOFF). */
export const LOCK_DEAD = BigInt.asIntN(64, 2n << 32n);

export const C_COUNT = 2;
export const C_MAX = 3;
export const C_NEXT = 4;
export const C_ENTRIES = 6;
export const CHUNK_ENTRIES = 29;

/** Owner ids: the thread in the top 8 bits of 31. */
export const OWNER_THREAD_SHIFT = 23;
const OWNER_SEQ_MASK = (1 << OWNER_THREAD_SHIFT) - 1;

let ownerSeq = (Math.random() * OWNER_SEQ_MASK) | 0;

/** A fresh context owner id of the calling thread: `(thread << 23) | n`, `n` never 0. */
export function newOwner(d: Domain): number {
  ownerSeq = (ownerSeq + 1) & OWNER_SEQ_MASK;
  if (ownerSeq === 0) ownerSeq = 1;
  return (d.thread << OWNER_THREAD_SHIFT) | ownerSeq;
}

export function ownerThread(owner: number): number {
  return owner >>> OWNER_THREAD_SHIFT;
}

/** The 64-bit lock value of an owner holding with (32-bit) stamp `stamp`, 0 for none. */
export function lockValue(owner: number, stamp: number): bigint {
  return BigInt.asIntN(64, (BigInt(stamp >>> 0) << 32n) | BigInt(owner >>> 0));
}

export function ownerOf(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

export function stampOf(v: bigint): number {
  return Number(BigInt.asIntN(32, v >> 32n));
}

/** Wait-die order: whether stamp `a` is younger (later) than stamp `b`, with wrap-around. */
export function younger(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

const viewCache = new WeakMap<SlotTable, { i32: Int32Array; i64: BigInt64Array }>();

/**
 * Fixed-length views of a table that cover `slot` (indexes as in the table). Atomics on them cost
 * a third of those on the table's own length-tracking views; they are shared by every record and
 * made again only after the table grew past the cached ones (which stay valid for older slots).
 */
export function recordViews(t: SlotTable, slot: number): { i32: Int32Array; i64: BigInt64Array } {
  let v = viewCache.get(t);
  if (v === undefined || v.i32.length < t.base(slot) + t.slotWords) {
    const bytes = t.sab.byteLength - (t.sab.byteLength % 8);
    v = { i32: new Int32Array(t.sab, 0, bytes >> 2), i64: new BigInt64Array(t.sab, 0, bytes >> 3) };
    viewCache.set(t, v);
  }
  return v;
}

/** i64 index of word `w` of `slot` (w even). */
export function i64Index(t: SlotTable, slot: number, w: number): number {
  return (t.base(slot) + w) >> 1;
}

// ---- lifetime -------------------------------------------------------------------------------

/** What a record kind does when its last reference goes (free its fence list). */
const destructors = new Map<number, (d: Domain, slot: number) => void>();
/** What a record kind repairs when the thread holding its lock died in the middle of a change. */
const repairers = new Map<number, (d: Domain, slot: number) => void>();

export function registerKind(
  kind: number,
  destroy: (d: Domain, slot: number) => void,
  repair: (d: Domain, slot: number) => void,
): void {
  destructors.set(kind, destroy);
  repairers.set(kind, repair);
}

/** Allocates a record of `kind` holding one reference. Returns [slot, gen]. */
export function recordAlloc(d: Domain, kind: number): [number, number] {
  const t = d.tables.resv;
  const slot = t.alloc();
  const b = t.base(slot);
  Atomics.store(t.i32, b + R_REFS, 1);
  Atomics.store(t.i32, b + R_FLAGS, kind);
  return [slot, t.gen(slot)];
}

/** Takes a reference on a record the caller already holds one on. */
export function recordGet(d: Domain, slot: number): void {
  const t = d.tables.resv;
  Atomics.add(t.i32, t.base(slot) + R_REFS, 1);
}

/**
 * Takes a reference if `slot` still holds generation `gen` of a live record of `kind`. For
 * descriptors: the caller owns a reference carried by the descriptor, so the record cannot be
 * freed meanwhile; the checks catch forged or stale descriptors.
 */
export function recordCheck(d: Domain, slot: unknown, gen: unknown, kind: number): boolean {
  const t = d.tables.resv;
  if (!t.isSlot(slot) || !Number.isInteger(gen) || !t.isAllocated(slot)) return false;
  const b = t.base(slot);
  return (
    t.gen(slot) === gen &&
    (Atomics.load(t.i32, b + R_FLAGS) & KIND_MASK) === kind &&
    Atomics.load(t.i32, b + R_REFS) > 0
  );
}

/**
 * Descriptor objects already consumed in this thread. A descriptor carries one reference; the same
 * object consumed twice would take a reference somebody else holds (a structured clone of a used
 * descriptor is not caught).
 */
const consumed = new WeakSet<object>();

/** Marks `desc` consumed; false when this very object was consumed before in this thread. */
export function consumeDescriptor(desc: object): boolean {
  if (consumed.has(desc)) return false;
  consumed.add(desc);
  return true;
}

/** Drops a reference; the last one destroys the record (kind destructor) and frees the slot. */
export function recordPut(d: Domain, slot: number): void {
  const t = d.tables.resv;
  const b = t.base(slot);
  for (;;) {
    const r = Atomics.load(t.i32, b + R_REFS);
    if (r <= 0) return; // double put: ignored
    if (Atomics.compareExchange(t.i32, b + R_REFS, r, r - 1) !== r) continue;
    if (r === 1) {
      const kind = Atomics.load(t.i32, b + R_FLAGS) & KIND_MASK;
      destructors.get(kind)?.(d, slot);
      Atomics.store(t.i32, b + R_FLAGS, 0);
      t.free(slot);
    }
    return;
  }
}

/** After a change of LOCK or CLAIM: bumps SEQ and wakes every waiter, if there are any. */
export function wakeRecord(i32: Int32Array, b: number): void {
  if (Atomics.load(i32, b + R_WAITERS) > 0) {
    Atomics.add(i32, b + R_SEQ, 1);
    Atomics.notify(i32, b + R_SEQ);
  }
}

// ---- thread exit ----------------------------------------------------------------------------

// A thread that dies holding locks cannot release them: free them here, after letting the record's
// kind repair a change the thread left half-done (a torn append), behind the DEAD marker so that
// the next locker learns the holder died; and forget the claims of the thread's waiters. Runs after the fence
// hook (order 10), so that the dead thread's fences are already signaled with -ENOENT.
onThreadExit(20, (d, thread) => {
  const t = d.tables.resv;
  const hwm = t.highWater;
  if (hwm <= 1) return;
  const { i32, i64 } = recordViews(t, hwm - 1);
  for (let slot = 1; slot < hwm; slot++) {
    const b = t.base(slot);
    if (b < HEADER_WORDS || Atomics.load(i32, b + t.linkWord) !== -1) continue; // free
    const kind = Atomics.load(i32, b + R_FLAGS) & KIND_MASK;
    if (kind === 0) continue;
    const li = (b + R_LOCK) >> 1;
    const v = Atomics.load(i64, li);
    if (ownerOf(v) !== 0 && ownerThread(ownerOf(v)) === thread) {
      repairers.get(kind)?.(d, slot);
      if (Atomics.compareExchange(i64, li, v, LOCK_DEAD) === v) {
        trace('resvOwnerDied', () => ({
          resv: slot,
          thread,
          kind: kind === KIND_RESV ? 'resv' : 'ww-mutex',
        }));
      }
    }
    const ci = (b + R_CLAIM) >> 1;
    const c = Atomics.load(i64, ci);
    if (c !== 0n && ownerThread(ownerOf(c) & 0x7fff_ffff) === thread) {
      if (Atomics.compareExchange(i64, ci, c, 0n) === c && Atomics.load(i64, ci) === 0n)
        Atomics.compareExchange(i64, li, LOCK_HANDOFF, 0n);
    }
    wakeRecord(i32, b);
  }
});

// The record references the exited thread's DmaResv and WwMutex views held (its journal, see
// _journal.ts) are dropped — after the hook above, so that a lock it held is released first, and
// the last reference can destroy the record.
onThreadExit(30, (d, thread) =>
  dropJournaled(d.journalOf(thread), J_RECORD, d.tables.resv, (slot) => recordPut(d, slot)),
);

const HELD_SHIFT = 2 ** 22;

/**
 * A view's record slot and journal word packed into one number, the held value of a
 * FinalizationRegistry (no object per view). The word is below 2^21 (journal capacity) or -1.
 */
export function packHeld(slot: number, jw: number): number {
  return slot * HELD_SHIFT + (jw + 1);
}

/** The slot and journal word of {@link packHeld}. */
export function unpackHeld(held: number): [number, number] {
  return [Math.floor(held / HELD_SHIFT), (held % HELD_SHIFT) - 1];
}

/**
 * The FinalizationRegistry of a module's record views (DmaResv, WwMutex): when a view is
 * collected, its entry in `views` goes (unless a newer view took the slot), then its journal word
 * and its record reference, in that order. Held value: {@link packHeld}.
 */
export function viewRegistry<T extends object>(
  views: SlotMap<WeakRef<T>>,
): FinalizationRegistry<number> {
  return new FinalizationRegistry<number>((held) => {
    const [slot, jw] = unpackHeld(held);
    const ref = views.get(slot);
    if (ref !== undefined && ref.deref() === undefined) views.delete(slot);
    const d = Domain.current();
    d.journalRemove(jw);
    recordPut(d, slot);
  });
}
