/**
 * Reads the domain's shared records directly — what the tests check the library against, from
 * whichever thread is checking (the main thread, usually). Test-only: it knows the layouts.
 */

import {
  A_THREAD,
  B_ATT_COUNT,
  B_BFLAGS,
  B_HOME,
  B_POLL_IN,
  B_POLL_OUT,
  B_REFS,
  B_RESV_SLOT,
  B_STATE,
  B_VMAP_COUNT,
  B_VMAP_OWNER,
  H_FD,
  H_HOLD,
  H_KIND,
  H_THREAD,
  H_TICKET,
  H_VALUE,
  STATE_DYING,
  STATE_LIVE,
} from '../../src/buf/_layout.js';
import type { Domain } from '../../src/domain/domain.js';
import { F_ERROR, F_HOME, F_REFS, F_STATE, isSignaledState } from '../../src/fence/_shared.js';
import { DmaBuf } from '../../src/index.js';
import { ownerOf, ownerThread, R_CLAIM, R_LOCK } from '../../src/resv/_record.js';

export interface BufView {
  /** The record still holds this generation and is LIVE or DYING. */
  live: boolean;
  refs: number;
  state: number;
  attachments: number;
  vmapCount: number;
  vmapOwner: number;
  pollIn: number;
  pollOut: number;
  bflags: number;
  resvSlot: number;
  home: number;
}

export function bufView(d: Domain, slot: number, gen: number): BufView {
  const t = d.tables.buf;
  t.ensure(slot);
  const b = t.base(slot);
  const i = t.i32;
  const st = Atomics.load(i, b + B_STATE);
  const live =
    t.isAllocated(slot) && t.gen(slot) === gen && (st === STATE_LIVE || st === STATE_DYING);
  return {
    live,
    refs: live ? Atomics.load(i, b + B_REFS) : 0,
    state: st,
    attachments: live ? Atomics.load(i, b + B_ATT_COUNT) : 0,
    vmapCount: live ? Atomics.load(i, b + B_VMAP_COUNT) : 0,
    vmapOwner: live ? Atomics.load(i, b + B_VMAP_OWNER) : 0,
    pollIn: live ? Atomics.load(i, b + B_POLL_IN) : 0,
    pollOut: live ? Atomics.load(i, b + B_POLL_OUT) : 0,
    bflags: live ? Atomics.load(i, b + B_BFLAGS) : 0,
    resvSlot: live ? i[b + B_RESV_SLOT]! : 0,
    home: live ? i[b + B_HOME]! : 0,
  };
}

/** What the handle table records for `thread`: fds, references held, and (thread 0) tickets. */
export function handleCounts(
  d: Domain,
  thread: number,
): { fds: number; holds: number; tickets: number } {
  const t = d.tables.handle;
  let fds = 0;
  let holds = 0;
  let tickets = 0;
  for (const s of t.allocated()) {
    const b = t.base(s);
    if (Atomics.load(t.i32, b + H_THREAD) !== thread) continue;
    const k = Atomics.load(t.i32, b + H_KIND);
    if (k === H_FD) fds++;
    else if (k === H_HOLD) holds += Atomics.load(t.i32, b + H_VALUE);
    else if (k === H_TICKET) tickets++;
  }
  return { fds, holds, tickets };
}

/** Attachment records owned by `thread`. */
export function attachmentRecords(d: Domain, thread: number): number {
  const t = d.tables.attach;
  let n = 0;
  for (const s of t.allocated()) {
    if (Atomics.load(t.i32, t.base(s) + A_THREAD) === thread) n++;
  }
  return n;
}

/** Thread holding the lock of reservation record `slot` (0 = free), and of its claim. */
export function lockState(d: Domain, slot: number): { holder: number; claimant: number } {
  const t = d.tables.resv;
  t.ensure(slot);
  const b = t.base(slot);
  const v = Atomics.load(t.i64, (b + R_LOCK) >> 1);
  const c = Atomics.load(t.i64, (b + R_CLAIM) >> 1);
  return {
    holder: v === 0n ? 0 : ownerThread(ownerOf(v)),
    claimant: c === 0n ? 0 : ownerThread(ownerOf(c)),
  };
}

/** Reservation records whose lock or claim belongs to `thread`. */
export function locksOf(d: Domain, thread: number): number[] {
  const t = d.tables.resv;
  const out: number[] = [];
  for (const s of t.allocated()) {
    const l = lockState(d, s);
    if (l.holder === thread || l.claimant === thread) out.push(s);
  }
  return out;
}

export type FenceView = { state: 'pending' | 'signaled' | 'gone'; error: number; home: number };

/** A published fence's shared state; 'gone' once its slot was freed (it had signaled). */
export function fenceView(d: Domain, slot: number, gen: number): FenceView {
  const t = d.tables.fence;
  t.ensure(slot);
  const b = t.base(slot);
  const refs = Atomics.load(t.i32, b + F_REFS);
  if (!t.isAllocated(slot) || t.gen(slot) !== gen || refs <= 0)
    return { state: 'gone', error: 0, home: 0 };
  const st = Atomics.load(t.i32, b + F_STATE);
  return {
    state: isSignaledState(st) ? 'signaled' : 'pending',
    error: Atomics.load(t.i32, b + F_ERROR),
    home: Atomics.load(t.i32, b + F_HOME),
  };
}

/** Published fences homed in `thread` that are still pending. */
export function pendingFencesOf(d: Domain, thread: number): number {
  const t = d.tables.fence;
  let n = 0;
  for (const s of t.allocated()) {
    const b = t.base(s);
    if (Atomics.load(t.i32, b + F_HOME) !== thread) continue;
    if (Atomics.load(t.i32, b + F_REFS) <= 0) continue;
    if (!isSignaledState(Atomics.load(t.i32, b + F_STATE))) n++;
  }
  return n;
}

/** Allocated slots per shared table (leak accounting). */
export function tableUse(d: Domain): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, t] of Object.entries(d.tables)) {
    let n = 0;
    for (const _ of t.allocated()) n++;
    out[name] = n;
  }
  return out;
}

/** Inodes of the buffers on the global list, walked with the public iterator. */
export function liveInodes(): Set<number> {
  const out = new Set<number>();
  for (let b = DmaBuf.iterBegin(); b !== null; b = DmaBuf.iterNext(b)) out.add(b.inode);
  return out;
}

/** What the domain must have done for a thread that died. Null when done. */
export function deadThreadFacts(d: Domain, T: number): string | null {
  const h = handleCounts(d, T);
  if (h.fds + h.holds > 0)
    return `dead thread ${T} still holds ${h.fds} fds and ${h.holds} references`;
  if (attachmentRecords(d, T) > 0) return `dead thread ${T} still has attachments`;
  const l = locksOf(d, T);
  if (l.length > 0) return `dead thread ${T} still holds or claims locks ${l}`;
  if (pendingFencesOf(d, T) > 0) return `dead thread ${T} left pending fences`;
  return null;
}
