/**
 * DmaFenceArray: one fence standing for several — the kernel's `struct dma_fence_array`.
 *
 * ## Contract
 * - {@link DmaFenceArray.create} takes a non-empty list of fences, none of them a container (an
 *   array or a chain inside an array is EINVAL: flatten first, e.g. with `unwrapMerge`). The array
 *   signals when all members have signaled, or with `signalOnAny` when one has.
 * - The array's error is the first non-zero member error it learns of: in the order the members'
 *   callbacks ran once signaling is enabled, else in member order. Set before the array signals.
 * - {@link DmaFence#isSignaled} on an array answers from the members synchronously, even before the
 *   array's own signal: once enough members have signaled it reports true (and signals the array
 *   right there). Without it, the array signals in a microtask after its deciding member — the
 *   kernel's irq_work — so a waiter never runs inside a member's signal path.
 * - Enabling signaling (a callback, a wait) installs one callback on every member. Deadlines are
 *   passed on to every member.
 * - Synchronous methods may be called from any thread holding the array; waits may sleep.
 *
 * ## Across threads
 * An array has no shared slot of its own. {@link DmaFenceArray#share} publishes its members and
 * returns a descriptor carrying theirs (plus context, seqno and mode); {@link DmaFence.fromShared}
 * in another thread rebuilds an array over the members' views there, with the same context and
 * seqno, whose state derives from those members. Two threads' arrays over the same members agree
 * on signaled-ness; each signals on its own, with its own timestamp.
 */

import { Domain } from '../domain/domain.js';
import { describe, fail } from '../errors.js';
import { isCount, isDescriptor, waitMembersSync } from './_containers.js';
import {
  checkTimeout,
  DmaFence,
  DmaFenceCb,
  type DmaFenceOps,
  type FenceDescriptor,
  registerFenceKind,
} from './fence.js';

/** How an array travels to another thread of the domain (structured-cloneable). */
export type ArrayDescriptor = {
  t: 'array';
  d: number;
  c: number;
  q: number;
  /** signalOnAny */
  any: boolean;
  /** The members' descriptors, in order; each carries one reference. */
  f: FenceDescriptor[];
};

/** Upper bound on the members of an array rebuilt from a descriptor (bad input must not hang). */
const MAX_REVIVED_MEMBERS = 1 << 20;

export class DmaFenceArray extends DmaFence {
  /** Signals when any member signals (true) or when all have (false). */
  readonly signalOnAny: boolean;
  readonly #fences: readonly DmaFence[];
  /** Members still to signal before the array does (`num_pending`); counts down from callbacks. */
  #pending: number;
  /** First non-zero member error seen (the kernel's pending error). */
  #error = 0;
  /** One callback per member once signaling is enabled; null before. */
  #cbs: (DmaFenceCb | null)[] | null = null;
  #scheduled = false;

  static readonly #ops: DmaFenceOps = {
    getDriverName: () => 'dma_fence_array',
    getTimelineName: () => 'unbound',
    enableSignaling: (f) => (f as DmaFenceArray).#enableSignaling(),
    signaled: (f) => (f as DmaFenceArray).#signaled(),
    setDeadline: (f, ns) => {
      for (const m of (f as DmaFenceArray).#fences) m.setDeadline(ns);
    },
  };

  private constructor(fences: DmaFence[], context: number, seqno: number, signalOnAny: boolean) {
    super(DmaFenceArray.#ops, context, seqno);
    this.#fences = Object.freeze(fences);
    this.signalOnAny = signalOnAny;
    this.#pending = signalOnAny ? 1 : fences.length;
  }

  /**
   * `dma_fence_array_create`: an array over `fences` on `context` at `seqno` (32-bit ordering),
   * signaling when all members have signaled, or any when `signalOnAny`. The array keeps its own
   * copy of the list. EINVAL for an empty list, a non-fence or a container member, or a bad
   * context/seqno. Synchronous; allocates the array and, later, one callback node per member.
   */
  static create(
    fences: readonly DmaFence[],
    context: number,
    seqno: number,
    signalOnAny = false,
  ): DmaFenceArray {
    if (!Array.isArray(fences) || fences.length === 0)
      fail('EINVAL', 'a fence array needs at least one fence');
    for (const f of fences) {
      if (!(f instanceof DmaFence))
        fail('EINVAL', `fence array member is not a DmaFence: ${describe(f)}`);
      if (f.isContainer) fail('EINVAL', 'a fence array must not contain container fences');
    }
    if (typeof signalOnAny !== 'boolean') fail('EINVAL', 'signalOnAny must be a boolean');
    return new DmaFenceArray([...fences], context, seqno, signalOnAny);
  }

  /** The array itself when `fence` is an array, else null (`to_dma_fence_array`). */
  static toArray(fence: DmaFence | null | undefined): DmaFenceArray | null {
    return fence instanceof DmaFenceArray ? fence : null;
  }

  /**
   * `dma_fence_array_first`: the first member of an array, a plain fence itself, null for null.
   * With {@link DmaFenceArray.next} it walks "the fences inside" of any fence.
   */
  static first(head: DmaFence | null | undefined): DmaFence | null {
    if (head === null || head === undefined) return null;
    if (!(head instanceof DmaFence)) fail('EINVAL', `not a DmaFence: ${describe(head)}`);
    return head instanceof DmaFenceArray ? head.#fences[0]! : head;
  }

  /** `dma_fence_array_next`: member `index` of an array, or null past the end or for a non-array. */
  static next(head: DmaFence | null | undefined, index: number): DmaFence | null {
    if (head !== null && head !== undefined && !(head instanceof DmaFence))
      fail('EINVAL', `not a DmaFence: ${describe(head)}`);
    if (!Number.isSafeInteger(index) || index < 0)
      fail('EINVAL', `bad fence array index ${describe(index)}`);
    if (!(head instanceof DmaFenceArray)) return null;
    return head.#fences[index] ?? null;
  }

  override get isContainer(): boolean {
    return true;
  }

  override get isArray(): boolean {
    return true;
  }

  /** The members, in order (read-only). */
  get fences(): readonly DmaFence[] {
    return this.#fences;
  }

  /** `num_fences`. */
  get numFences(): number {
    return this.#fences.length;
  }

  /** `dma_fence_match_context`: true when every member is on `context`. */
  override matchContext(context: number): boolean {
    return this.#fences.every((f) => f.context === context);
  }

  /**
   * Blocking wait for workers. An all-signal array blocks on its members one after another (real
   * sleeps on their shared words); an any-signal array polls, like any fence without a slot.
   */
  override waitTimeoutSync(timeoutMs: number): number {
    checkTimeout(timeoutMs);
    if (!(timeoutMs > 0) || this.signalOnAny || this.isSignaled())
      return super.waitTimeoutSync(timeoutMs);
    return waitMembersSync(
      this,
      () => this.#fences.find((f) => !f.isSignaled()) ?? null,
      timeoutMs,
    );
  }

  /**
   * Publishes the members and returns a descriptor for {@link DmaFence.fromShared}, which rebuilds
   * the array in the receiving thread. Carries one reference per pending member; consume it once.
   */
  override share(): ArrayDescriptor {
    return {
      t: 'array',
      d: Domain.current().id,
      c: this.context,
      q: this.seqno,
      any: this.signalOnAny,
      f: this.#fences.map((f) => f.share()),
    };
  }

  // ---- ops ---------------------------------------------------------------------------------------

  #noteError(error: number): void {
    if (error !== 0 && this.#error === 0) this.#error = error;
  }

  /** Records the pending error on the fence, just before it signals. */
  #applyError(): void {
    if (this.#error !== 0 && !this.testSignaledFlag() && this.error === 0)
      this.setError(this.#error);
  }

  /** Unhooks the callbacks still queued on members (an any-signal array is done with them). */
  #detach(): void {
    const cbs = this.#cbs;
    if (cbs === null) return;
    for (let i = 0; i < cbs.length; i++) {
      const cb = cbs[i];
      if (cb?.pending) this.#fences[i]!.removeCallback(cb);
    }
  }

  #enableSignaling(): boolean {
    const n = this.#fences.length;
    const cbs: (DmaFenceCb | null)[] = new Array(n).fill(null);
    this.#cbs = cbs;
    for (let i = 0; i < n; i++) {
      const member = this.#fences[i]!;
      const node = new DmaFenceCb((f) => this.#memberSignaled(f));
      if (member.addCallback(node) !== null) {
        cbs[i] = node;
        continue;
      }
      // Already signaled: count it here.
      this.#noteError(member.error);
      if (--this.#pending <= 0) {
        this.#detach();
        this.#applyError();
        return false; // the core signals the array now
      }
    }
    return true;
  }

  #memberSignaled(member: DmaFence): void {
    this.#noteError(member.error);
    if (--this.#pending !== 0 || this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#detach();
      if (this.testSignaledFlag()) return;
      this.#applyError();
      this.signal();
    });
  }

  #signaled(): boolean {
    if (this.#pending <= 0) return this.#done();
    const cbs = this.#cbs;
    if (cbs !== null) {
      // Signaling is enabled: a member that has signaled elsewhere delivers its callback (and so
      // counts down) when asked.
      for (let i = 0; i < cbs.length && this.#pending > 0; i++)
        if (cbs[i]?.pending) this.#fences[i]!.isSignaled();
      return this.#pending <= 0 ? this.#done() : false;
    }
    // Not enabled yet: count the members that have signaled.
    let need = this.signalOnAny ? 1 : this.#fences.length;
    let error = 0;
    for (const f of this.#fences) {
      if (!f.isSignaled()) continue;
      if (error === 0) error = f.error;
      if (--need === 0) {
        this.#noteError(error);
        return this.#done();
      }
    }
    return false;
  }

  #done(): true {
    this.#detach();
    this.#applyError();
    return true;
  }
}

registerFenceKind('array', (_d, desc: unknown) => {
  const a = desc as Partial<ArrayDescriptor>;
  if (
    !isCount(a.c) ||
    !isCount(a.q) ||
    typeof a.any !== 'boolean' ||
    !Array.isArray(a.f) ||
    a.f.length === 0 ||
    a.f.length > MAX_REVIVED_MEMBERS
  )
    fail('EINVAL', 'bad fence array descriptor');
  for (const m of a.f)
    if (!isDescriptor(m) || m.t !== 'fence')
      fail('EINVAL', 'a fence array descriptor may only hold plain fences');
  return DmaFenceArray.create(
    a.f.map((m) => DmaFence.fromShared(m)),
    a.c,
    a.q,
    a.any,
  );
});
