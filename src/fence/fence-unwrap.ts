/**
 * Unwrapping and merging container fences — the kernel's `dma-fence-unwrap.c`.
 *
 * - {@link unwrapFences} walks the plain fences inside any fence: an array's members in order; a
 *   chain's nodes from newest to oldest, each node's contained fence (or its array's members),
 *   skipping — and collecting — older nodes that have signaled; a plain fence is itself.
 *   Containers never nest deeper than a chain of arrays.
 * - {@link unwrapMerge} flattens several fences into one that signals when all of them have:
 *   signaled members are dropped, at most one fence per context is kept (the later one), and the
 *   result is a private stub, a single fence itself, or a new {@link DmaFenceArray} ordered by
 *   context. Sync-file merge and resv singletons are built on it.
 *
 * All of it is synchronous and may be called from any thread; the answers reflect the members'
 * state at the moment each one is looked at (a member may signal right after it was kept).
 */

import { describe, fail } from '../errors.js';
import { DmaFence } from './fence.js';
import { DmaFenceArray } from './fence-array.js';
import { DmaFenceChain } from './fence-chain.js';

/**
 * `dma_fence_unwrap_for_each`: yields the plain fences inside `head` (see the module overview).
 * Lazy: each chain step happens when the next fence is asked for. Allocates the generator only.
 */
export function* unwrapFences(head: DmaFence): Generator<DmaFence, void, undefined> {
  if (!(head instanceof DmaFence)) fail('EINVAL', `cannot unwrap ${describe(head)}`);
  let cursor: DmaFence | null = head;
  while (cursor !== null) {
    const inner = DmaFenceChain.contained(cursor);
    if (inner instanceof DmaFenceArray) yield* inner.fences;
    else yield inner;
    cursor = cursor instanceof DmaFenceChain ? cursor.walk() : null;
  }
}

/** Sort order of {@link dedupArray}: context ascending, the later fence first within one. */
function fenceCmp(a: DmaFence, b: DmaFence): number {
  if (a.context !== b.context) return a.context < b.context ? -1 : 1;
  if (b.isLater(a)) return 1;
  if (a.isLater(b)) return -1;
  return 0;
}

/**
 * `dma_fence_dedup_array`: sorts `fences` in place by context and keeps only the latest fence of
 * each context (the same object given twice collapses; of two equally late fences the first one
 * given stays). Truncates the array and returns its new length — 0 for an empty input.
 */
export function dedupArray(fences: DmaFence[]): number {
  if (!Array.isArray(fences)) fail('EINVAL', 'dedupArray needs an array of fences');
  for (const f of fences)
    if (!(f instanceof DmaFence)) fail('EINVAL', `not a DmaFence: ${describe(f)}`);
  if (fences.length === 0) return 0;
  fences.sort(fenceCmp);
  let j = 0;
  for (let i = 1; i < fences.length; i++) {
    if (fences[i]!.context !== fences[j]!.context) fences[++j] = fences[i]!;
  }
  fences.length = j + 1;
  return j + 1;
}

function merge(context: number | null, fences: readonly DmaFence[]): DmaFence {
  if (fences.length === 0) fail('EINVAL', 'unwrapMerge needs at least one fence');
  for (const f of fences)
    if (!(f instanceof DmaFence)) fail('EINVAL', `cannot merge ${describe(f)}`);
  let timestamp = 0n;
  const pending: DmaFence[] = [];
  for (const f of fences) {
    for (const g of unwrapFences(f)) {
      if (!g.isSignaled()) {
        pending.push(g);
      } else {
        const t = g.timestamp;
        if (t > timestamp) timestamp = t;
      }
    }
  }
  if (pending.length === 0) return DmaFence.allocatePrivateStub(timestamp);
  if (pending.length === 1) return pending[0]!;
  if (dedupArray(pending) === 1) return pending[0]!;
  return DmaFenceArray.create(pending, context ?? DmaFence.contextAlloc(1), 1, false);
}

/**
 * `dma_fence_unwrap_merge`: one fence that signals when all of `fences` have.
 *
 * Unwraps every input and drops the members that have signaled. Nothing left: a new private stub,
 * already signaled, carrying the latest timestamp of the dropped members (0 if none had one). One
 * member left, or one after keeping the latest per context: that fence itself. Otherwise a new
 * all-signal {@link DmaFenceArray} on a fresh context, seqno 1, members in ascending context
 * order. EINVAL for no input or a non-fence.
 */
export function unwrapMerge(...fences: DmaFence[]): DmaFence {
  return merge(null, fences);
}

/**
 * Like {@link unwrapMerge}, but a resulting array takes `context` (which the caller allocated)
 * instead of a fresh one. From a posted kernel series (`dma_fence_unwrap_merge_context`).
 */
export function unwrapMergeContext(context: number, ...fences: DmaFence[]): DmaFence {
  if (!Number.isSafeInteger(context) || context < 0)
    fail('EINVAL', `bad fence context ${describe(context)}`);
  return merge(context, fences);
}
