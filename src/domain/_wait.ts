/**
 * Waiting on a word of shared memory: the one place where dmabuf spins, blocks and waits
 * asynchronously. Internal.
 *
 * Policy (DESIGN principle 4): spin on `Atomics.load` for a bounded number of iterations (the
 * cross-core floor is well under a microsecond), then block with `Atomics.wait` (sync) or wait with
 * `Atomics.waitAsync` (async). An async wait holds a ref'd handle for as long as it is pending,
 * because a pending `Atomics.waitAsync` alone does not keep Node's event loop alive.
 *
 * Both fast paths can be switched off ({@link setWaitPolicy}); tests drive every combination.
 *
 * Adaptive spinning (`spinSync: 'auto'`, opt-in; the default is a fixed 4096): the kernel spins on
 * a mutex only while its
 * owner runs on a CPU, because spinning for a thread that is not running only delays it. A
 * JavaScript thread cannot see whether the thread it waits for is on a CPU, so a blocking wait
 * spins ({@link AUTO_SPIN_SYNC} iterations) only while the domain's live threads fit the cores
 * (`os.availableParallelism()`), and blocks at once when they outnumber them — then the spinner
 * would most likely hold the very core the awaited thread needs (measured: 4 busy workers on 2
 * cores ran a hand-off pipeline faster without spinning). The count is re-read at most every
 * {@link AUTO_REFRESH_MS}; a count that is stale by a spawn or an exit only picks the other
 * budget for that long. An explicit number set with {@link setWaitPolicy} always applies.
 */

import { availableParallelism } from 'node:os';
import { checkUint, DmaBufError, describe, fail } from '../errors.js';
import { Domain, MAX_THREADS } from './domain.js';

export interface WaitPolicy {
  /**
   * Iterations of `Atomics.load` before a sync wait blocks. 0 disables spinning. `'auto'` (the
   * default): 4096 spins while the domain's live threads are no more than the cores,
   * 0 when they outnumber them.
   */
  spinSync: number | 'auto';
  /** Iterations before an async wait parks. Spinning stalls the event loop, so keep it short. */
  spinAsync: number;
  /** Use `Atomics.waitAsync` when present; when false (or missing), poll with timers. */
  useWaitAsync: boolean;
}

/** What `spinSync: 'auto'` spins while the domain's threads fit the cores. */
export const AUTO_SPIN_SYNC = 4096;
/** How long `'auto'` trusts its count of the domain's live threads, in ms. */
export const AUTO_REFRESH_MS = 100;

const policy: WaitPolicy = { spinSync: 4096, spinAsync: 256, useWaitAsync: true };

/** Reads the current wait policy (a copy). */
export function getWaitPolicy(): WaitPolicy {
  return { ...policy };
}

/**
 * Changes the wait policy of this thread. Returns the previous one. EINVAL (and nothing changed)
 * for a spin count that is not a 32-bit count or a `useWaitAsync` that is not a boolean.
 */
export function setWaitPolicy(p: Partial<WaitPolicy>): WaitPolicy {
  if (p === null || typeof p !== 'object')
    fail('EINVAL', `setWaitPolicy takes an object, got ${describe(p)}`);
  for (const k of ['spinSync', 'spinAsync'] as const) {
    if (k === 'spinSync' && p[k] === 'auto') continue;
    if (p[k] !== undefined && checkUint(p[k], k) > 0xffff_ffff)
      fail('EINVAL', `${k} must be a 32-bit count${k === 'spinSync' ? " or 'auto'" : ''}`);
  }
  if (p.useWaitAsync !== undefined && typeof p.useWaitAsync !== 'boolean')
    fail('EINVAL', 'useWaitAsync must be a boolean');
  const old = { ...policy };
  if (p.spinSync !== undefined) policy.spinSync = p.spinSync;
  if (p.spinAsync !== undefined) policy.spinAsync = p.spinAsync;
  if (p.useWaitAsync !== undefined) policy.useWaitAsync = p.useWaitAsync;
  return old;
}

const hasWaitAsync = typeof (Atomics as any).waitAsync === 'function';

// ---- adaptive spinning ---------------------------------------------------------------------------

let cores = 0;
let autoSpin = AUTO_SPIN_SYNC;
let autoReadAt = Number.NEGATIVE_INFINITY;

/** The spin budget of `'auto'` for `threads` live threads on `cores` cores. */
export function autoSpinFor(threads: number, cores: number): number {
  return threads > cores ? 0 : AUTO_SPIN_SYNC;
}

/** Live threads of this thread's domain (main thread and workers). May be stale by a spawn/exit. */
export function liveThreads(): number {
  const d = Domain.current();
  let n = 0;
  for (let t = 1; t < MAX_THREADS; t++) if (d.isThreadAlive(t)) n++;
  return Math.max(n, 1);
}

/**
 * The spin budget a sync wait uses now: the policy's number, or for `'auto'` the budget for the
 * domain's thread count read at most {@link AUTO_REFRESH_MS} ago (`refresh` re-reads it now).
 */
export function syncSpinBudget(refresh = false): number {
  const p = policy.spinSync;
  if (p !== 'auto') return p;
  const now = performance.now();
  if (refresh || now - autoReadAt >= AUTO_REFRESH_MS) {
    if (cores === 0) cores = Math.max(1, availableParallelism());
    autoSpin = autoSpinFor(liveThreads(), cores);
    autoReadAt = now;
  }
  return autoSpin;
}

// ---- keep-alive ----------------------------------------------------------------------------------
// One long interval timer per thread, held while any async wait is pending.
let keepAliveCount = 0;
let keepAliveTimer: ReturnType<typeof setInterval> | undefined;

/** Holds the event loop open until the matching {@link releaseKeepAlive}. */
export function holdKeepAlive(): void {
  if (keepAliveCount++ === 0) keepAliveTimer = setInterval(noop, 0x3fffffff);
}

export function releaseKeepAlive(): void {
  if (--keepAliveCount === 0 && keepAliveTimer !== undefined) {
    clearInterval(keepAliveTimer);
    keepAliveTimer = undefined;
  }
}

function noop(): void {}

/** Spins until `arr[index] !== value` or the budget runs out. True when the word changed. */
export function spinWhileEquals(
  arr: Int32Array,
  index: number,
  value: number,
  spins: number,
): boolean {
  return spinLoad(arr, index, value, spins) !== value;
}

/**
 * Spins while `arr[index] === value`, for at most `spins` more loads, and returns the last value
 * read — so that a caller that spun need not load the word again (each `Atomics` call is a
 * builtin call in V8 11, not inlined).
 */
export function spinLoad(arr: Int32Array, index: number, value: number, spins: number): number {
  let v = Atomics.load(arr, index);
  for (let i = 0; v === value && i < spins; i++) v = Atomics.load(arr, index);
  return v;
}

/**
 * Blocks the calling thread while `arr[index] === value`, for at most `timeoutMs` (Infinity
 * allowed). Returns true when the word changed, false on timeout. Throws EDEADLK-free: where the
 * runtime forbids blocking (a browser main thread) it throws EPERM.
 *
 * `waiters`, when given, is a counter word incremented around the blocking wait so that the
 * writer can skip `Atomics.notify` when nobody sleeps.
 */
export function waitWhileEqualsSync(
  arr: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
  waiters = -1,
): boolean {
  if (spinWhileEquals(arr, index, value, syncSpinBudget())) return true;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return Atomics.load(arr, index) !== value;
    if (waiters >= 0) Atomics.add(arr, waiters, 1);
    let r: string;
    try {
      r = Atomics.wait(arr, index, value, left === Infinity ? undefined : left);
    } catch (e) {
      throw new DmaBufError(
        'EPERM',
        `blocking waits are not allowed on this thread (${String(e)})`,
      );
    } finally {
      if (waiters >= 0) Atomics.sub(arr, waiters, 1);
    }
    if (r === 'not-equal' || Atomics.load(arr, index) !== value) return true;
    if (r === 'timed-out') return false;
  }
}

/**
 * Waits asynchronously while `arr[index] === value`. Resolves true when the word changed, false
 * on timeout; rejects with ERESTARTSYS when `signal` aborts. Holds a ref'd handle while pending
 * unless `keepAlive` is false.
 */
export async function waitWhileEqualsAsync(
  arr: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
  opts: { signal?: AbortSignal; waiters?: number; keepAlive?: boolean } = {},
): Promise<boolean> {
  if (spinWhileEquals(arr, index, value, policy.spinAsync)) return true;
  const { signal, waiters = -1, keepAlive = true } = opts;
  if (signal?.aborted) throw interrupted();
  const deadline = performance.now() + timeoutMs;
  if (keepAlive) holdKeepAlive();
  if (waiters >= 0) Atomics.add(arr, waiters, 1);
  try {
    for (;;) {
      if (Atomics.load(arr, index) !== value) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      if (signal?.aborted) throw interrupted();
      if (hasWaitAsync && policy.useWaitAsync) {
        const res = (Atomics as any).waitAsync(
          arr,
          index,
          value,
          left === Infinity ? undefined : left,
        );
        if (res.async) {
          if (signal === undefined) await res.value;
          else await raceAbort(res.value, signal, arr, index);
        }
      } else {
        await sleep(Math.min(left, 1));
      }
    }
  } finally {
    if (waiters >= 0) Atomics.sub(arr, waiters, 1);
    if (keepAlive) releaseKeepAlive();
  }
}

function raceAbort(
  p: Promise<unknown>,
  signal: AbortSignal,
  arr: Int32Array,
  index: number,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      // Wake the pending waitAsync so that it does not linger; other waiters re-check and sleep.
      Atomics.notify(arr, index);
      reject(interrupted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export function interrupted(): DmaBufError {
  return new DmaBufError('ERESTARTSYS', 'wait interrupted by AbortSignal');
}

/** Node's timers hold at most 2^31 - 1 ms; a longer delay fires after 1 ms instead. */
const MAX_TIMER_MS = 0x7fff_ffff;

/**
 * `setTimeout` for any delay: delays beyond what a Node timer holds (about 24.8 days) are
 * re-armed in steps instead of firing at once. Returns the function that cancels it.
 */
export function setLongTimeout(fn: () => void, ms: number): () => void {
  const end = performance.now() + ms;
  let timer: ReturnType<typeof setTimeout>;
  const arm = (left: number): void => {
    timer = setTimeout(
      () => {
        const rest = end - performance.now();
        if (rest > 0) arm(rest);
        else fn();
      },
      Math.min(Math.max(left, 0), MAX_TIMER_MS),
    );
  };
  arm(ms);
  return () => clearTimeout(timer);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
