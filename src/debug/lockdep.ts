/**
 * Lockdep-lite: an opt-in debug mode that checks the rules the kernel checks with lockdep.
 *
 * - **Fence-signalling sections.** Code between {@link beginSignalling} and {@link endSignalling}
 *   is on the path to a `signal()`: it must not wait on fences, take reservation locks or
 *   allocate buffers, because whoever waits for that signal may hold what it needs
 *   (contracts §2.9, "cross-driver contract"). In debug mode such a call throws EDEADLK.
 * - **Locking convention of the seed.** Functions that require a reservation lock assert it
 *   always; in debug mode, functions that must be called *without* it also check that the calling
 *   thread does not hold it.
 * - **Lock order.** Reservation locks taken without an acquire context are recorded in a
 *   per-thread order graph; taking A then B somewhere and B then A elsewhere is reported as a
 *   potential deadlock (EDEADLK) the second time, before it can deadlock for real.
 *
 * Off by default; the test suite turns it on with `DMABUF_DEBUG=1`. When off, every hook is one
 * boolean test (measured in `bench/`). Sections are tracked per thread: an `await` inside a
 * section keeps it open until `endSignalling` runs, as in the kernel where a section may not sleep.
 */

import { DmaBufError } from '../errors.js';

let enabled =
  typeof process !== 'undefined' && /^(1|true|yes)$/i.test(process.env.DMABUF_DEBUG ?? '');

/** Whether the debug checks are on in this thread. */
export function isDebug(): boolean {
  return enabled;
}

/** Turns the debug checks on or off in this thread; returns the previous setting. */
export function setDebug(on: boolean): boolean {
  const old = enabled;
  enabled = on;
  return old;
}

// ---- signalling sections ------------------------------------------------------------------------

let signallingDepth = 0;

/** `dma_fence_begin_signalling`: opens a section; returns the cookie for {@link endSignalling}. */
export function beginSignalling(): number {
  return signallingDepth++;
}

/** `dma_fence_end_signalling`: closes the section opened with `cookie`. Sections nest. */
export function endSignalling(cookie: number): void {
  if (!Number.isInteger(cookie) || cookie < 0)
    throw new DmaBufError('EINVAL', 'bad signalling cookie');
  if (enabled && cookie !== signallingDepth - 1) {
    throw violation(
      `signalling sections closed out of order (cookie ${cookie}, depth ${signallingDepth})`,
    );
  }
  signallingDepth = cookie;
}

/** Whether the calling thread is inside a signalling section. */
export function inSignallingSection(): boolean {
  return signallingDepth > 0;
}

/** `__dma_fence_might_wait`: called by every fence or reservation wait. */
export function mightWait(what: string): void {
  if (enabled && signallingDepth > 0)
    throw violation(`${what}: waiting inside a fence-signalling section`);
}

/** Called by buffer allocation paths. */
export function mightAlloc(what: string): void {
  if (enabled && signallingDepth > 0)
    throw violation(`${what}: allocating inside a fence-signalling section`);
}

// ---- locks --------------------------------------------------------------------------------------

/** Anything lockdep can name: a reservation object or a ww-mutex. */
export type LockKey = object;

const held = new Map<LockKey, number>(); // lock → acquisitions by this thread
const names = new WeakMap<LockKey, string>();
const after = new WeakMap<LockKey, Set<LockKey>>(); // A → {B taken while A held, without ctx}
let lockIds = 0;

function nameOf(k: LockKey): string {
  let n = names.get(k);
  if (n === undefined) names.set(k, (n = `lock#${++lockIds}`));
  return n;
}

/**
 * Called before a lock is taken. `withCtx`: the lock is taken under a ww acquire context, which
 * has its own deadlock avoidance, so no order is recorded. Throws EDEADLK in debug mode inside a
 * signalling section, or when the order contradicts one seen before.
 */
export function mightLock(lock: LockKey, withCtx: boolean, what = 'lock'): void {
  if (!enabled) return;
  if (signallingDepth > 0)
    throw violation(`${what}: taking ${nameOf(lock)} inside a fence-signalling section`);
  if (withCtx) return;
  for (const h of held.keys()) {
    if (h === lock) continue;
    if (reaches(lock, h)) {
      throw violation(
        `${what}: lock order inversion, ${nameOf(lock)} was taken before ${nameOf(h)} elsewhere`,
      );
    }
  }
  for (const h of held.keys()) {
    if (h === lock) continue;
    let s = after.get(h);
    if (s === undefined) after.set(h, (s = new Set()));
    s.add(lock);
  }
}

function reaches(from: LockKey, to: LockKey): boolean {
  const seen = new Set<LockKey>();
  const stack = [from];
  while (stack.length > 0) {
    const k = stack.pop()!;
    if (k === to) return true;
    if (seen.has(k)) continue;
    seen.add(k);
    for (const n of after.get(k) ?? []) stack.push(n);
  }
  return false;
}

/** Records that this thread now holds `lock`. */
export function acquired(lock: LockKey): void {
  if (!enabled) return;
  held.set(lock, (held.get(lock) ?? 0) + 1);
}

/** Records that this thread released `lock`. */
export function released(lock: LockKey): void {
  if (!enabled) return;
  const n = held.get(lock);
  if (n === undefined) return;
  if (n <= 1) held.delete(lock);
  else held.set(lock, n - 1);
}

/** Debug mode: EDEADLK if this thread holds `lock` where the convention forbids holding it. */
export function assertNotHeld(lock: LockKey, what: string): void {
  if (enabled && held.has(lock))
    throw violation(`${what} must be called without the reservation lock held`);
}

/** Names a lock in violation reports. */
export function nameLock(lock: LockKey, name: string): void {
  names.set(lock, name);
}

/** Forgets every recorded order and held lock of this thread (tests). */
export function resetLockdep(): void {
  held.clear();
  signallingDepth = 0;
}

function violation(msg: string): DmaBufError {
  return new DmaBufError('EDEADLK', `lockdep-lite: ${msg}`);
}
