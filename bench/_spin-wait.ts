/**
 * Hand-written spin-then-wait signalling on a word of shared memory, for the baselines that use
 * no framework. Internal to `bench/`; runs in workers (it blocks with `Atomics.wait`).
 *
 * Protocol: a *state word* has one writer at a time; a *waiters word* beside it counts threads
 * that are (about to be) asleep in `Atomics.wait` on the state word.
 *
 * - Waiter ({@link waitFor}): spin on `Atomics.load` up to `spin` times; if the state is still not
 *   the wanted one, increment the waiters word, `Atomics.wait` while the state is unchanged,
 *   decrement, re-check.
 * - Signaller ({@link publish}): `Atomics.store` the new state, then `Atomics.notify` only if the
 *   waiters word is non-zero.
 *
 * No lost wake-up: all four operations are sequentially consistent. If the signaller reads
 * waiters = 0, the waiter's increment comes later in the total order, so the value check inside
 * the waiter's `Atomics.wait` (done under the futex lock) sees the new state and returns
 * `'not-equal'` at once.
 */

/** Spins up to `spin` times, then sleeps, until `Atomics.load(i32, index) === want`. */
export function waitFor(
  i32: Int32Array,
  index: number,
  want: number,
  waiters: number,
  spin: number,
): void {
  let v = Atomics.load(i32, index);
  for (let k = 0; v !== want && k < spin; k++) v = Atomics.load(i32, index);
  while (v !== want) {
    Atomics.add(i32, waiters, 1);
    Atomics.wait(i32, index, v);
    Atomics.sub(i32, waiters, 1);
    v = Atomics.load(i32, index);
  }
}

/** Stores `value` and wakes every sleeper on the word if the waiters word says there is one. */
export function publish(i32: Int32Array, index: number, value: number, waiters: number): void {
  Atomics.store(i32, index, value);
  if (Atomics.load(i32, waiters) !== 0) Atomics.notify(i32, index);
}

/** Blocks until `i32[index]` is non-zero (a start barrier set by the main thread). */
export function waitForStart(i32: Int32Array, index: number): void {
  while (Atomics.load(i32, index) === 0) Atomics.wait(i32, index, 0);
}

/** Opens a start barrier: may run on the main thread (it does not block). */
export function openStart(i32: Int32Array, index: number): void {
  Atomics.store(i32, index, 1);
  Atomics.notify(i32, index);
}
