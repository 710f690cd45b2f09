/**
 * Helpers shared by the container fences (array, chain). Internal.
 */

import { mightWait } from '../debug/lockdep.js';
import { trace } from '../trace.js';
import type { DmaFence } from './fence.js';

/**
 * Blocking wait of a container whose completion is "every member signaled": blocks on one pending
 * member at a time (each a real `Atomics.wait` on a published member's word, rather than the
 * polling a fence without shared state of its own would get), then asks the container itself.
 * `nextPending` returns a member that has not signaled, or null when none is left. Same results
 * as {@link DmaFence#waitTimeoutSync}; the caller has already handled a zero or invalid timeout.
 */
export function waitMembersSync(
  container: DmaFence,
  nextPending: () => DmaFence | null,
  timeoutMs: number,
): number {
  mightWait(container.isChain ? 'DmaFenceChain#waitTimeoutSync' : 'DmaFenceArray#waitTimeoutSync');
  const start = performance.now();
  trace('fenceWaitStart', () => ({ fence: container, timeoutMs }));
  for (;;) {
    const member = nextPending();
    if (member === null) break;
    const left = timeoutMs - (performance.now() - start);
    if (left <= 0 || member.waitTimeoutSync(left) === 0) break;
  }
  let result = 0;
  if (container.isSignaled()) {
    result =
      timeoutMs === Infinity
        ? Infinity
        : Math.max(1, Math.ceil(timeoutMs - (performance.now() - start)));
  }
  trace('fenceWaitEnd', () => ({ fence: container, result }));
  return result;
}

/** Whether `v` is a structured-clone of a descriptor object with a string kind `t`. */
export function isDescriptor(v: unknown): v is { t: string; d: number; [k: string]: unknown } {
  return v !== null && typeof v === 'object' && typeof (v as { t?: unknown }).t === 'string';
}

/** A non-negative safe integer field of a descriptor. */
export function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
