/**
 * Shared state of published fences: one slot of the domain's fence table per fence that another
 * thread can see. Internal.
 *
 * A fence starts thread-local (a plain JS object, cheap). It is *published* the first time it
 * crosses a thread — posted in a descriptor, or stored in a shared reservation object — and from
 * then on its state lives here and every thread's view of it reads and writes this slot.
 *
 * Slot layout (Int32 word offsets from the slot base; 24 words = 96 bytes):
 * ```
 *  0 LINK     1 GEN        (SlotTable's)
 *  2 STATE    0 pending │ (tid << 2) | 1 claimed by thread tid │ 2 signaled    waiters wait here
 *  3 WAITERS  number of threads blocked or parked on STATE (signaler skips notify when 0)
 *  4 ERROR    0 or a negative errno (written before STATE becomes 2)
 *  5 HOME     thread that created the fence; its exit signals the fence with -ENOENT
 *  6 FLAGS    F_SEQNO64 | F_SW_SYNC …
 *  7 DRIVER   string id of the driver name        8 TIMELINE  string id of the timeline name
 *  9 REFS     references held by views, descriptors in flight and reservation entries. The
 *             last put frees the slot. tryGet raises a non-zero count by CAS, then checks GEN
 *             (word 1, bumped before an allocation stores REFS = 1) and undoes on a mismatch.
 * 10 (pad)
 * 12 TSTAMP   i64: signal time, ns (valid once STATE is 2)
 * 14 DEADLINE i64: earliest deadline requested, ns, 0 = none (CAS-min by any thread)
 * 16 CONTEXT  f64      18 SEQNO  f64   (written once before publication)
 * 20..23      user words (U0..U3), e.g. sw_sync's timeline
 * ```
 * Writers: STATE moves 0 → claimed → 2 by CAS/store from whichever thread signals first; the
 * claimer alone writes TSTAMP. A concurrent reader that sees STATE == 2 sees ERROR and TSTAMP.
 * A thread that dies holding a claim is finished by the exit hook.
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
export const F_REFS = 9;
export const F_TSTAMP = 12;
export const F_DEADLINE = 14;
export const F_CONTEXT = 16;
export const F_SEQNO = 18;
export const F_U0 = 20;

export const STATE_PENDING = 0;
export const STATE_SIGNALED = 2;

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
 * Signals a slot from the calling thread: claims it, writes the timestamp (`ts`, or the clock read
 * right after the claim), publishes STATE = 2 and wakes sleepers. Returns the timestamp written,
 * or undefined when another thread signaled (or is signaling) it first.
 */
export function slotSignal(
  d: Domain,
  slot: number,
  ts: bigint | undefined,
  error: number,
): bigint | undefined {
  const t = d.tables.fence;
  t.ensure(slot);
  const b = t.base(slot);
  const claim = (d.thread << 2) | 1;
  if (Atomics.compareExchange(t.i32, b + F_STATE, STATE_PENDING, claim) !== STATE_PENDING) {
    return undefined;
  }
  // Spinning waiters leave their loop on the claim; the clock is read after it, off their path.
  if (error !== 0) Atomics.store(t.i32, b + F_ERROR, error);
  const when = ts ?? nowNs();
  Atomics.store(t.i64, (b + F_TSTAMP) >> 1, when);
  Atomics.store(t.i32, b + F_STATE, STATE_SIGNALED);
  if (Atomics.load(t.i32, b + F_WAITERS) > 0) Atomics.notify(t.i32, b + F_STATE);
  return when;
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
