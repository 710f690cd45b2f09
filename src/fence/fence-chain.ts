/**
 * DmaFenceChain: a node of a timeline of fences — the kernel's `struct dma_fence_chain`, the
 * building block of timeline syncobjs.
 *
 * ## Contract
 * - `new DmaFenceChain(prev, fence, seqno)` links a node holding `fence` (its *contained* fence,
 *   which must not be a chain; an array is fine) after `prev` (null, an older node, or any plain
 *   fence). Seqnos are 64-bit ordered (plain numbers here, exact up to 2^53). When `prev` is a
 *   chain and `seqno` is later than `prev.seqno`, the node continues `prev`'s timeline: same
 *   context, `prevSeqno = prev.seqno`. Otherwise it starts a new context and, after a chain, takes
 *   `max(prev.seqno, seqno)` so that seqnos never go backwards.
 * - A node is signaled iff its contained fence and every older node's contained fence (and a plain
 *   `prev` fence at the end) have signaled. {@link DmaFence#isSignaled} answers that synchronously;
 *   the node's own signal follows in a microtask (the kernel's irq_work). A chain's error stays 0:
 *   member errors are seen by unwrapping it.
 * - Walking ({@link DmaFenceChain#walk}, {@link DmaFenceChain.iterate}, `findSeqno`, `isSignaled`,
 *   unwrapping) garbage-collects: older nodes whose contained fence has signaled are unlinked
 *   from the node walked from. This is visible (a later `findSeqno` may land elsewhere or on null)
 *   and is the kernel's behaviour.
 * - Enabling signaling hooks one callback on the newest contained fence that has not signaled, and
 *   moves it back along the chain as fences signal. Deadlines go to every contained fence that
 *   has not signaled.
 *
 * ## Across threads
 * A chain has no shared slot. {@link DmaFenceChain#share} publishes every contained fence and
 * returns a descriptor listing the nodes newest first (context, seqno, prevSeqno, contained
 * fence) and the plain fence at the end, if any; {@link DmaFence.fromShared} rebuilds the same
 * nodes — same contexts and seqnos — over views of the contained fences. Each thread's copy walks
 * and collects on its own.
 */

import { Domain } from '../domain/domain.js';
import { describe, fail } from '../errors.js';
import { isCount, isDescriptor, waitMembersSync } from './_containers.js';
import {
  checkTimeout,
  DMA_FENCE_FLAG_SEQNO64_BIT,
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  type FenceDescriptor,
  registerFenceKind,
} from './fence.js';

/** One node of a chain descriptor. */
export type ChainLinkDescriptor = {
  c: number;
  q: number;
  /** prevSeqno */
  pq: number;
  /** The contained fence (a plain fence or an array); carries its references. */
  f: FenceDescriptor;
};

/** How a chain travels to another thread of the domain (structured-cloneable). */
export type ChainDescriptor = {
  t: 'chain';
  d: number;
  /** Nodes, newest (the shared node itself) first. */
  l: ChainLinkDescriptor[];
  /** The plain fence the oldest node points to, if any. */
  p?: FenceDescriptor;
};

const MAX_REVIVED_LINKS = 1 << 22;

interface Placement {
  context: number;
  seqno: number;
  prevSeqno: number;
}

/** Set by the descriptor reviver so that the constructor reproduces a node exactly. */
let revived: Placement | null = null;

export class DmaFenceChain extends DmaFence {
  /** The seqno of the previous node when this one was linked (0 when it started a context). */
  readonly prevSeqno: number;
  readonly #fence: DmaFence;
  #prev: DmaFence | null;
  #rearmQueued = false;

  static readonly #ops: DmaFenceOps = {
    getDriverName: () => 'dma_fence_chain',
    getTimelineName: () => 'unbound',
    enableSignaling: (f) => (f as DmaFenceChain).#arm(),
    signaled: (f) => {
      for (const node of DmaFenceChain.iterate(f)) {
        if (!DmaFenceChain.contained(node).isSignaled()) return false;
      }
      return true;
    },
    setDeadline: (f, ns) => {
      for (const node of DmaFenceChain.iterate(f)) DmaFenceChain.contained(node).setDeadline(ns);
    },
  };

  /**
   * `dma_fence_chain_init`: a node holding `fence` after `prev`, at `seqno` (see the module
   * contract for the context and seqno rules). EINVAL for a chain as `fence`, a non-fence, or a
   * bad seqno. May allocate a fence context.
   */
  constructor(prev: DmaFence | null, fence: DmaFence, seqno: number) {
    const p = revived ?? place(prev, fence, seqno);
    revived = null;
    super(DmaFenceChain.#ops, p.context, p.seqno);
    this.flags |= 1 << DMA_FENCE_FLAG_SEQNO64_BIT;
    this.prevSeqno = p.prevSeqno;
    this.#prev = prev;
    this.#fence = fence;
  }

  /** The node itself when `fence` is a chain node, else null (`to_dma_fence_chain`). */
  static toChain(fence: DmaFence | null | undefined): DmaFenceChain | null {
    return fence instanceof DmaFenceChain ? fence : null;
  }

  /** `dma_fence_chain_contained`: a node's contained fence; any other fence is returned as is. */
  static contained(fence: DmaFence): DmaFence {
    if (fence instanceof DmaFenceChain) return fence.#fence;
    if (!(fence instanceof DmaFence)) fail('EINVAL', `not a DmaFence: ${describe(fence)}`);
    return fence;
  }

  /**
   * `dma_fence_chain_for_each`: yields `head`, then each {@link DmaFenceChain#walk} result — the
   * node itself, then the older nodes (or the plain fence at the end) whose contained fence has
   * not signaled, collecting the signaled ones on the way. A plain `head` yields only itself.
   */
  static *iterate(head: DmaFence): Generator<DmaFence, void, undefined> {
    if (!(head instanceof DmaFence)) fail('EINVAL', `not a DmaFence: ${describe(head)}`);
    let it: DmaFence | null = head;
    while (it !== null) {
      yield it;
      it = it instanceof DmaFenceChain ? it.walk() : null;
    }
  }

  /**
   * `dma_fence_chain_find_seqno`: the node to wait on for point `seqno` of the chain headed by
   * `fence` — the oldest node still covering `seqno` — or null when everything up to it has
   * signaled (the walk collected the nodes). `seqno` 0 returns `fence` unchanged. EINVAL when
   * `fence` is not a chain node or `seqno` is ahead of it (a future point).
   */
  static findSeqno(fence: DmaFence, seqno: number): DmaFence | null {
    if (!(fence instanceof DmaFence)) fail('EINVAL', `not a DmaFence: ${describe(fence)}`);
    if (!Number.isSafeInteger(seqno) || seqno < 0)
      fail('EINVAL', `bad chain seqno ${describe(seqno)}`);
    if (seqno === 0) return fence;
    if (!(fence instanceof DmaFenceChain)) fail('EINVAL', 'findSeqno needs a chain node');
    if (fence.seqno < seqno)
      fail('EINVAL', `seqno ${seqno} is ahead of the chain (at ${fence.seqno})`);
    let it: DmaFence | null = fence;
    while (it instanceof DmaFenceChain && it.context === fence.context && it.prevSeqno >= seqno)
      it = it.walk();
    return it;
  }

  override get isContainer(): boolean {
    return true;
  }

  override get isChain(): boolean {
    return true;
  }

  /** The contained fence (`.fence`). */
  get fence(): DmaFence {
    return this.#fence;
  }

  /** The contained fence; same as {@link DmaFenceChain#fence}. */
  get contained(): DmaFence {
    return this.#fence;
  }

  /** The previous node or fence as currently linked (null at the start or after collection). */
  get prev(): DmaFence | null {
    return this.#prev;
  }

  /**
   * `dma_fence_chain_walk`: the previous node (or plain fence) that has not signaled, or null at
   * the end. Older nodes whose contained fence has signaled are unlinked from this node first.
   * Synchronous; allocates nothing.
   */
  walk(): DmaFence | null {
    for (;;) {
      const prev = this.#prev;
      if (prev === null) return null;
      if (prev instanceof DmaFenceChain) {
        if (!prev.#fence.isSignaled()) return prev;
        this.#prev = prev.#prev;
      } else {
        if (!prev.isSignaled()) return prev;
        this.#prev = null;
      }
    }
  }

  /** Blocking wait for workers: blocks on each pending contained fence in turn. */
  override waitTimeoutSync(timeoutMs: number): number {
    checkTimeout(timeoutMs);
    if (!(timeoutMs > 0) || this.isSignaled()) return super.waitTimeoutSync(timeoutMs);
    return waitMembersSync(this, () => firstPending(this), timeoutMs);
  }

  /**
   * Publishes every contained fence and returns a descriptor for {@link DmaFence.fromShared},
   * which rebuilds the chain (same contexts and seqnos) in the receiving thread. Carries one
   * reference per pending contained fence; consume it once.
   */
  override share(): ChainDescriptor {
    const l: ChainLinkDescriptor[] = [];
    let it: DmaFence | null = this;
    while (it instanceof DmaFenceChain) {
      l.push({ c: it.context, q: it.seqno, pq: it.prevSeqno, f: it.#fence.share() });
      it = it.#prev;
    }
    const desc: ChainDescriptor = { t: 'chain', d: Domain.current().id, l };
    if (it !== null) desc.p = it.share();
    return desc;
  }

  /** enable_signaling: hook the newest contained fence that has not signaled yet. */
  #arm(): boolean {
    for (const node of DmaFenceChain.iterate(this)) {
      const cb = new DmaFenceCb(() => this.#fired());
      if (DmaFenceChain.contained(node).addCallback(cb) !== null) return true;
    }
    return false;
  }

  #fired(): void {
    if (this.#rearmQueued) return;
    this.#rearmQueued = true;
    queueMicrotask(() => {
      this.#rearmQueued = false;
      if (!this.testSignaledFlag() && !this.#arm()) this.signal();
    });
  }
}

function firstPending(head: DmaFence): DmaFence | null {
  for (const node of DmaFenceChain.iterate(head)) {
    const f = DmaFenceChain.contained(node);
    if (!f.isSignaled()) return f;
  }
  return null;
}

function place(prev: DmaFence | null, fence: DmaFence, seqno: number): Placement {
  if (prev !== null && !(prev instanceof DmaFence))
    fail('EINVAL', `chain prev is not a DmaFence: ${describe(prev)}`);
  if (!(fence instanceof DmaFence))
    fail('EINVAL', `chain fence is not a DmaFence: ${describe(fence)}`);
  if (fence instanceof DmaFenceChain)
    fail('EINVAL', 'a chain node must not contain another chain node');
  if (!Number.isSafeInteger(seqno) || seqno < 0)
    fail('EINVAL', `bad chain seqno ${describe(seqno)}`);
  if (prev instanceof DmaFenceChain && seqno > prev.seqno)
    return { context: prev.context, seqno, prevSeqno: prev.seqno };
  return {
    context: DmaFence.contextAlloc(1),
    seqno: prev instanceof DmaFenceChain ? Math.max(prev.seqno, seqno) : seqno,
    prevSeqno: 0,
  };
}

function checkMember(m: unknown): FenceDescriptor {
  if (!isDescriptor(m) || (m.t !== 'fence' && m.t !== 'array'))
    fail('EINVAL', 'a chain descriptor may only hold plain fences and arrays');
  return m;
}

registerFenceKind('chain', (_d, desc: unknown) => {
  const c = desc as Partial<ChainDescriptor>;
  if (!Array.isArray(c.l) || c.l.length === 0 || c.l.length > MAX_REVIVED_LINKS)
    fail('EINVAL', 'bad fence chain descriptor');
  for (const link of c.l) {
    if (link === null || typeof link !== 'object') fail('EINVAL', 'bad fence chain link');
    if (!isCount(link.c) || !isCount(link.q) || !isCount(link.pq))
      fail('EINVAL', 'bad fence chain link');
    checkMember(link.f);
  }
  if (c.p !== undefined) checkMember(c.p);
  let prev: DmaFence | null = c.p === undefined ? null : DmaFence.fromShared(c.p);
  for (let i = c.l.length - 1; i >= 0; i--) {
    const link = c.l[i]!;
    const contained = DmaFence.fromShared(link.f);
    revived = { context: link.c, seqno: link.q, prevSeqno: link.pq };
    try {
      prev = new DmaFenceChain(prev, contained, link.q);
    } finally {
      revived = null;
    }
  }
  return prev!;
});
