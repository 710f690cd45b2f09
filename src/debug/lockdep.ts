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
 * - **Lock order.** Reservation locks taken without an acquire context are recorded in an order
 *   graph, per task (a blocking caller, or async code run in {@link lockdepTask}); taking A then
 *   B somewhere and B then A elsewhere is reported as a potential deadlock (EDEADLK) the second
 *   time, before it can deadlock for real.
 *
 * Off by default; the test suite turns it on with `DMABUF_DEBUG=1`. When off, every hook is one
 * boolean test (measured in `bench/`). Sections are tracked per thread: an `await` inside a
 * section keeps it open until `endSignalling` runs, as in the kernel where a section may not sleep.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { DmaBufError, describe } from '../errors.js';

let enabled =
  typeof process !== 'undefined' && /^(1|true|yes)$/i.test(process.env.DMABUF_DEBUG ?? '');

/** Whether the debug checks are on in this thread. */
export function isDebug(): boolean {
  return enabled;
}

/** Turns the debug checks on or off in this thread; returns the previous setting. */
export function setDebug(on: boolean): boolean {
  if (typeof on !== 'boolean')
    throw new DmaBufError('EINVAL', `setDebug takes a boolean, got ${describe(on)}`);
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

/**
 * Who holds a lock, for order tracking. The kernel's lockdep tracks tasks; JavaScript has no task
 * identity to read, and several async tasks of one thread interleave, so "this thread holds A
 * while it takes B" does not mean A is taken before B. A task is therefore:
 * - the thread itself, for blocking acquisitions (`lockSync`): the thread cannot do anything else;
 * - an async task run inside {@link lockdepTask}, identified through AsyncLocalStorage.
 * Async acquisitions outside any `lockdepTask` are checked for signalling sections only: their
 * order is not recorded (no false reports). Held locks of every task count for
 * {@link assertNotHeld}.
 */
type Task = object;
const THREAD_TASK: Task = {};
const tasks = new AsyncLocalStorage<Task>();
const held = new Map<Task, Map<LockKey, boolean>>(); // task → lock → taken without a ctx
const names = new WeakMap<LockKey, string>();
const after = new WeakMap<LockKey, Set<LockKey>>(); // A → {B taken while A held, without ctx}
let lockIds = 0;

/**
 * Runs `fn` as one task for lock-order tracking: reservation locks it takes without an acquire
 * context are checked against the order seen in other tasks. Returns what `fn` returns.
 */
export function lockdepTask<T>(fn: () => T): T {
  if (typeof fn !== 'function')
    throw new DmaBufError('EINVAL', `lockdepTask takes a function, got ${describe(fn)}`);
  return tasks.run({}, fn);
}

function nameOf(k: LockKey): string {
  let n = names.get(k);
  if (n === undefined) names.set(k, (n = `lock#${++lockIds}`));
  return n;
}

function currentTask(blocking: boolean): Task | undefined {
  return blocking ? THREAD_TASK : tasks.getStore();
}

/**
 * Called before a lock is taken. `withCtx`: taken under a ww acquire context, which has its own
 * deadlock avoidance (no order recorded). `blocking`: a blocking acquisition (the thread is the
 * task). Throws EDEADLK in debug mode inside a signalling section, or when the order contradicts
 * one seen before.
 */
export function mightLock(lock: LockKey, withCtx: boolean, what = 'lock', blocking = false): void {
  if (!enabled) return;
  if (signallingDepth > 0)
    throw violation(`${what}: taking ${nameOf(lock)} inside a fence-signalling section`);
  if (withCtx) return;
  const task = currentTask(blocking);
  const mine = task === undefined ? undefined : held.get(task);
  if (mine === undefined) return;
  for (const [h, noCtx] of mine) {
    if (h === lock || !noCtx) continue;
    if (reaches(lock, h)) {
      throw violation(
        `${what}: lock order inversion, ${nameOf(lock)} was taken before ${nameOf(h)} elsewhere`,
      );
    }
  }
  for (const [h, noCtx] of mine) {
    if (h === lock || !noCtx) continue;
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

/** Records that the current task now holds `lock` (`withCtx`: under an acquire context). */
export function acquired(lock: LockKey, withCtx = false, blocking = false): void {
  if (!enabled) return;
  const task = currentTask(blocking) ?? THREAD_TASK;
  let mine = held.get(task);
  if (mine === undefined) held.set(task, (mine = new Map()));
  mine.set(lock, !withCtx);
}

/** Records that `lock` was released (by whichever task of this thread held it). */
export function released(lock: LockKey): void {
  if (!enabled) return;
  for (const [task, mine] of held) {
    if (mine.delete(lock)) {
      if (mine.size === 0) held.delete(task);
      return;
    }
  }
}

/** Debug mode: EDEADLK if this thread holds `lock` where the convention forbids holding it. */
export function assertNotHeld(lock: LockKey, what: string): void {
  if (!enabled) return;
  for (const mine of held.values()) {
    if (mine.has(lock)) throw violation(`${what} must be called without the reservation lock held`);
  }
}

/** Names a lock in violation reports. */
export function nameLock(lock: LockKey, name: string): void {
  names.set(lock, name);
}

/** Forgets every held lock and open section of this thread (tests). Recorded orders stay. */
export function resetLockdep(): void {
  held.clear();
  signallingDepth = 0;
}

function violation(msg: string): DmaBufError {
  return new DmaBufError('EDEADLK', `lockdep-lite: ${msg}`);
}
