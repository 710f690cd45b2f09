/**
 * The buffer core's debug mode: an opt-in check of the kernel's locking convention (what lockdep
 * does there) and of the importer-facing mapping format (what CONFIG_DMABUF_DEBUG and
 * CONFIG_DMA_API_DEBUG do).
 *
 * Always on, debug mode or not: calls that **require** the reservation lock (pin, unpin,
 * mapAttachment, unmapAttachment, vmap, vunmap, invalidateMappings) fail with EPERM when it is not
 * held.
 *
 * In debug mode, additionally:
 * - calls that must **not** be made with the lock held (attach, dynamicAttach, detach, export, fd,
 *   get, put, mmap, beginCpuAccess, endCpuAccess, the `*Unlocked` variants, poll's lock-taking
 *   helpers) fail with EDEADLK when the calling thread holds the buffer's reservation lock.
 *   "Holds" is judged per thread, by lockdep-lite: a lock held by another task of the same thread
 *   counts (lockdep-lite's sections and lock records are per thread);
 * - mappings returned by exporters are checked to be page-granular (EINVAL otherwise).
 *
 * Debug mode is lockdep-lite's (`src/debug/lockdep.ts`): one switch per thread, on with
 * `DMABUF_DEBUG=1`.
 */

import { assertNotHeld, isDebug, setDebug } from '../debug/lockdep.js';
import { DmaBufError, describe, fail } from '../errors.js';
import type { DmaResv } from '../resv/resv.js';

/**
 * Turns debug mode on or off in this thread; returns the previous setting. The same switch as
 * lockdep-lite's `setDebug` (and `DMABUF_DEBUG=1`).
 */
export function setDmaBufDebug(on: boolean): boolean {
  if (typeof on !== 'boolean')
    fail('EINVAL', `setDmaBufDebug takes a boolean, got ${describe(on)}`);
  return setDebug(on);
}

/** Whether debug mode is on in this thread. */
export function isDmaBufDebug(): boolean {
  return isDebug();
}

/** The locking convention: `what` requires the reservation lock. EPERM if it is not held. */
export function requireHeld(resv: DmaResv, what: string): void {
  if (!resv.isLocked())
    fail('EPERM', `${what} requires the reservation lock to be held (locking convention)`);
  try {
    resv.assertHeld();
  } catch (e) {
    if (e instanceof DmaBufError) throw e;
    throw new DmaBufError('EPERM', `${what}: ${String(e)}`);
  }
}

/**
 * The locking convention: `what` must not be called holding the lock. Checked in debug mode
 * (EDEADLK): the reservation object knows whether this thread holds it, and lockdep-lite's record
 * of held locks is consulted too.
 */
export function forbidHeld(resv: DmaResv | null, what: string): void {
  if (resv === null || !isDebug() || cleanupHolds.has(resv)) return;
  assertNotHeld(resv, what);
  if (resv.isHeld())
    fail('EDEADLK', `${what} must not be called with the reservation lock held (debug mode)`);
}

/**
 * Reservation objects whose lock this thread's thread-exit cleanup (a background task: detaching
 * a dead thread's attachments, dropping its vmaps) holds or is taking right now, with how many
 * cleanup tasks do. The locking convention is judged per thread, but the cleanup is not the
 * caller's task: while it holds a buffer's lock, another task of the same thread calling `put` or
 * `attach` on that buffer is not breaking the convention and must not get a spurious EDEADLK. (The
 * mark is set before the lock is taken: the acquisition completes a few microtasks before the
 * cleanup resumes, and other tasks may run in between.)
 */
const cleanupHolds = new Map<DmaResv, number>();

/** @internal the exit cleanup is taking (`on`) or has dropped `resv`'s lock. */
export function cleanupHolding(resv: DmaResv, on: boolean): void {
  const n = (cleanupHolds.get(resv) ?? 0) + (on ? 1 : -1);
  if (n > 0) cleanupHolds.set(resv, n);
  else cleanupHolds.delete(resv);
}
