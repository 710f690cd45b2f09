/**
 * Shared state of published fences: one slot of the domain's fence table per fence that another
 * thread can see. Internal.
 *
 * A fence starts thread-local (a plain JS object, cheap). It is *published* the first time it
 * crosses a thread — posted in a descriptor, or stored in a shared reservation object — and from
 * then on its state lives here and every thread's view of it reads and writes this slot.
 *
 * Slot layout (Int32 word offsets from the slot base; 32 words = 128 bytes, two cache lines):
 * ```
 *  line 1: what a waiter reads when the fence signals, written once per signal
 *  0 (pad)    1 GEN        (SlotTable's)
 *  2 STATE    0 pending │ (tid << 2) | 1 claimed by tid (slow path) │ (tid << 2) | 2 signaled,
 *             tid writes the timestamp │ 2 signaled by a thread that is gone (exit hook, resv)
 *             — any value with (STATE & 3) == 2 is signaled. Waiters wait here.
 *  3 WAITERS  number of threads blocked or parked on STATE (signaler skips notify when 0)
 *  4 ERROR    0 or a negative errno (written before STATE becomes signaled)
 *  5 HOME     thread that created the fence; its exit signals the fence with -ENOENT
 *  6 FLAGS    F_SEQNO64 | F_SW_SYNC …
 *  7 DRIVER   string id of the driver name        8 TIMELINE  string id of the timeline name
 *  9..11      (pad)
 * 12 CONTEXT  f64      14 SEQNO  f64   (written once before publication)
 *  line 2: bookkeeping written around the signal
 * 16 REFS     references held by views, descriptors in flight and reservation entries. The
 *             last put frees the slot. tryGet raises a non-zero count by CAS, then checks GEN
 *             (word 1, bumped before an allocation stores REFS = 1) and undoes on a mismatch.
 * 17 TSVALID  1 once TSTAMP holds the signal time (the kernel's TIMESTAMP bit)
 * 18 TSTAMP   i64: signal time, ns (valid once TSVALID is 1)
 * 20 DEADLINE i64: earliest deadline requested, ns, 0 = none (CAS-min by any thread)
 * 22..25      user words (U0..U3), e.g. sw_sync's timeline
 * 26 LINK     (SlotTable's: -1 while allocated; here, so that a free touches only this line)
 * 27..31      (pad)
 * ```
 * Signal protocol (as the kernel's: the SIGNALED bit first, the timestamp after it): whichever
 * thread signals first moves STATE from 0 to `(tid << 2) | 2` with one CAS — waiters are released
 * by that single store — then reads the clock, writes TSTAMP and sets TSVALID. A view that sees
 * the fence signaled takes ERROR at once and reads the timestamp later, when asked or when its
 * thread next settles its signaled views. The exit hook finishes what a dead thread left: a
 * timestamp it never wrote, or a slow-path claim (used only to set an error and signal as one
 * step, e.g. -ENOENT for the fences of an exited thread).
 *
 * The two cache lines keep the signal's store and the reference counting apart: the waiter reads
 * line 1 once, right after the signal, and nobody writes line 1 again until the slot is freed.
 */

import { nowNs } from '../clock.js';
import type { SlotTable } from '../domain/_slots.js';
import type { Domain } from '../domain/domain.js';
import { trace } from '../trace.js';

export const F_STATE = 2;
export const F_WAITERS = 3;
export const F_ERROR = 4;
export const F_HOME = 5;
export const F_FLAGS = 6;
export const F_DRIVER = 7;
export const F_TIMELINE = 8;
export const F_CONTEXT = 12;
export const F_SEQNO = 14;
export const F_REFS = 16;
export const F_TSVALID = 17;
export const F_TSTAMP = 18;
export const F_DEADLINE = 20;
export const F_U0 = 22;
/** Words per fence slot (two 64-byte cache lines). */
export const FENCE_SLOT_WORDS = 32;

export const STATE_PENDING = 0;
/** Signaled, timestamp written (by a thread that may be gone). */
export const STATE_SIGNALED = 2;

/** True for every signaled STATE value: `(tid << 2) | 2`, including {@link STATE_SIGNALED}. */
export function isSignaledState(st: number): boolean {
  return (st & 3) === 2;
}

/** True while a slow-path claim is in progress (`(tid << 2) | 1`). */
export function isClaimState(st: number): boolean {
  return (st & 3) === 1;
}

export const SF_SEQNO64 = 1;

/** i64 index of a word offset in a slot. */
export function i64At(t: SlotTable, slot: number, word: number): number {
  return (t.base(slot) + word) >> 1;
}

/** Allocates a slot with one reference; returns [slot, gen]. */
export function slotAlloc(d: Domain): [number, number] {
  const t = d.tables.fence;
  const slot = t.alloc(); // bumps GEN before anything else is written
  Atomics.store(t.i32, t.base(slot) + F_REFS, 1);
  return [slot, t.gen(slot)];
}

/** Takes a reference if the slot still holds generation `gen` and is referenced. */
export function slotTryGet(d: Domain, slot: number, gen: number): boolean {
  const t = d.tables.fence;
  if (!t.isSlot(slot)) return false;
  const i = t.base(slot) + F_REFS;
  for (;;) {
    const r = Atomics.load(t.i32, i);
    if (r <= 0) return false;
    if (Atomics.compareExchange(t.i32, i, r, r + 1) === r) break;
  }
  // The slot may have been freed and handed out again between our read and our CAS: then GEN
  // differs, and our reference on the new fence is given back (freeing it if it was the last).
  if (t.gen(slot) !== gen) {
    slotPut(d, slot);
    return false;
  }
  return true;
}

/** Adds a reference to a slot the caller already holds one on. */
export function slotGet(d: Domain, slot: number): void {
  const t = d.tables.fence;
  t.ensure(slot);
  Atomics.add(t.i32, t.base(slot) + F_REFS, 1);
}

/** Drops a reference; the last one frees the slot. */
export function slotPut(d: Domain, slot: number): void {
  const t = d.tables.fence;
  t.ensure(slot);
  const b = t.base(slot);
  const prev = Atomics.sub(t.i32, b + F_REFS, 1);
  if (prev === 1) {
    trace('fenceDestroy', () => ({
      context: t.f64[(b + F_CONTEXT) >> 1],
      seqno: t.f64[(b + F_SEQNO) >> 1],
    }));
    t.free(slot);
  } else if (prev <= 0) {
    Atomics.add(t.i32, b + F_REFS, 1); // a put too many (already free): ignored
  }
}

export function slotRefs(d: Domain, slot: number): number {
  const t = d.tables.fence;
  t.ensure(slot);
  return Atomics.load(t.i32, t.base(slot) + F_REFS);
}

/**
 * Signals a slot from the calling thread: moves STATE from pending to signaled-by-this-thread in
 * one CAS (releasing every waiter), wakes sleepers, then records the timestamp (`ts`, or the clock
 * read right after the CAS, as the kernel does) and marks it valid. The error, if any, is already
 * in the slot (`setError` and publication write it). Returns the timestamp written, or undefined
 * when another thread signaled (or is signaling) it first.
 */
export function slotSignal(d: Domain, slot: number, ts: bigint | undefined): bigint | undefined {
  const t = d.tables.fence;
  t.ensure(slot);
  const b = t.base(slot);
  const i32 = t.i32;
  if (Atomics.compareExchange(i32, b + F_STATE, STATE_PENDING, (d.thread << 2) | 2) !== 0) {
    return undefined;
  }
  if (Atomics.load(i32, b + F_WAITERS) > 0) Atomics.notify(i32, b + F_STATE);
  const when = ts ?? nowNs();
  // A plain store: the seq-cst store of TSVALID below orders it before any reader's load of 1.
  t.i64[(b + F_TSTAMP) >> 1] = when;
  Atomics.store(i32, b + F_TSVALID, 1);
  return when;
}

/**
 * Signals a slot with an error as one step (the slow path, for a thread signaling on another's
 * behalf): claims it, writes ERROR, the timestamp, then STATE. Returns false when it had already
 * signaled or was being signaled.
 */
export function slotSignalError(d: Domain, slot: number, error: number, ts: bigint): boolean {
  const t = d.tables.fence;
  t.ensure(slot);
  const b = t.base(slot);
  if (Atomics.compareExchange(t.i32, b + F_STATE, STATE_PENDING, (d.thread << 2) | 1) !== 0) {
    return false;
  }
  Atomics.store(t.i32, b + F_ERROR, error);
  finishSlotSignal(t, b, ts);
  return true;
}

/** Completes a claim or a signal left without timestamp: TSTAMP, TSVALID, STATE, wake-up. */
export function finishSlotSignal(t: SlotTable, b: number, ts: bigint): void {
  t.i64[(b + F_TSTAMP) >> 1] = ts;
  Atomics.store(t.i32, b + F_TSVALID, 1);
  Atomics.store(t.i32, b + F_STATE, STATE_SIGNALED);
  Atomics.notify(t.i32, b + F_STATE);
}

/**
 * Reads the slot's timestamp once it is valid. Spins a bounded while for a signaler that is
 * between its CAS and its timestamp store (a few instructions); returns undefined if the
 * timestamp is still missing then (its thread died there: the exit hook will write one).
 */
export function slotTimestamp(t: SlotTable, b: number, spin: number): bigint | undefined {
  for (let i = 0; Atomics.load(t.i32, b + F_TSVALID) !== 1; i++) {
    if (i >= spin) return undefined;
  }
  return t.i64[(b + F_TSTAMP) >> 1]!;
}

/** Lowers the slot's recorded deadline to `ns` if it is earlier (or none was set). */
export function slotSetDeadline(d: Domain, slot: number, ns: bigint): void {
  const t = d.tables.fence;
  t.ensure(slot);
  const i = i64At(t, slot, F_DEADLINE);
  for (;;) {
    const v = Atomics.load(t.i64, i);
    if (v !== 0n && v <= ns) return;
    if (Atomics.compareExchange(t.i64, i, v, ns) === v) return;
  }
}
