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
 *   "Holds" is judged per thread: a lock held by another task of the same thread counts;
 * - mappings returned by exporters are checked to be page-granular (EINVAL otherwise).
 *
 * Call from any thread; the flag is per thread.
 */

import { Domain } from '../domain/domain.js';
import { DmaBufError, fail } from '../errors.js';
import type { DmaResv } from '../resv/resv.js';

let debug = false;

/** Turns debug mode on or off in this thread; returns the previous setting. */
export function setDmaBufDebug(on: boolean): boolean {
  const old = debug;
  debug = on === true;
  return old;
}

/** Whether debug mode is on in this thread. */
export function isDmaBufDebug(): boolean {
  return debug;
}

/** Whether this thread holds `resv`'s lock (as far as the reservation object can tell). */
export function heldByThisThread(resv: DmaResv): boolean {
  if (!resv.isLocked()) return false;
  const owner = (resv as unknown as { ownerThread?: unknown }).ownerThread;
  if (typeof owner === 'number') return owner === Domain.current().thread;
  return true;
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

/** The locking convention: `what` must not be called holding the lock (checked in debug mode). */
export function forbidHeld(resv: DmaResv | null, what: string): void {
  if (!debug || resv === null) return;
  if (heldByThisThread(resv))
    fail('EDEADLK', `${what} must not be called with the reservation lock held (debug mode)`);
}
