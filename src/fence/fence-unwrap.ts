// STAND-IN: replaced by the resv/containers branch
/**
 * Stand-in for `dma_fence_unwrap`: yields the leaves of a (possibly container) fence. Containers
 * are recognised by `isContainer` and a `fences` array.
 */

import type { DmaFence } from './fence.js';

export function* unwrapFences(fence: DmaFence): Generator<DmaFence> {
  const members = (fence as unknown as { fences?: readonly DmaFence[] }).fences;
  if (fence.isContainer && Array.isArray(members)) {
    for (const f of members) yield* unwrapFences(f);
    return;
  }
  yield fence;
}
