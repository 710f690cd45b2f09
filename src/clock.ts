/**
 * The monotonic clock of dmabuf: nanoseconds as `bigint`, like the kernel's CLOCK_MONOTONIC
 * `ktime_t`. In Node every thread reads the same process clock, so timestamps written by one
 * worker compare correctly with those read in another.
 */

const hr: (() => bigint) | undefined =
  typeof process !== 'undefined' && typeof process.hrtime?.bigint === 'function'
    ? process.hrtime.bigint
    : undefined;

/** Current monotonic time in nanoseconds. Does not allocate beyond the bigint itself. */
export function nowNs(): bigint {
  if (hr !== undefined) return hr();
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/** Current monotonic time in milliseconds (a double), for timeouts. */
export function nowMs(): number {
  return performance.now();
}
