/**
 * sw_sync: a software timeline whose points are fences — the kernel's `drivers/dma-buf/sw_sync.c`
 * test driver (the `sync/sw_sync` debugfs file), for tests and demos. Ships from `dmabuf/testing`.
 *
 * ## Contract
 * - A timeline is a 32-bit counter, starting at 0, on its own fence context. {@link
 *   SwSyncTimeline#createPoint} makes a point (a {@link DmaFence}) at a value; the point signals
 *   once the counter has reached it, compared with 32-bit wrap-around: a point is signaled iff
 *   `(int32)(value - counter) <= 0`. So a value already passed (0 on a fresh timeline included, or
 *   one more than 2^31-1 ahead) is born signaled, and asking again for a value that is still
 *   pending returns the same fence.
 * - {@link SwSyncTimeline#inc} advances the counter (increments above 2^31-1 are applied in steps
 *   of 2^31-1) and signals, in value order, every point it passed — synchronously, in the calling
 *   thread, running their callbacks.
 * - {@link SwSyncTimeline#destroy} (closing the kernel fd) signals every pending point with
 *   -ENOENT. A destroyed timeline is closed: using it is EBADF.
 * - The timeline object belongs to the thread that made it; call its methods there. Its points
 *   are ordinary fences: share them (or their sync files) with any thread, which may wait on them
 *   or signal them. When the owning thread exits, the domain signals its published pending points
 *   with -ENOENT, as closing the timeline would.
 * - Point fences: driver name `sw_sync`, timeline name = the timeline's name, a `signaled` op
 *   implementing the compare above, and value strings for {@link SwSyncTimeline.debugInfo}.
 */

import { isMainThread, threadId } from 'node:worker_threads';
import { cString } from '../_cstring.js';
import { checkUint, describe, fail } from '../errors.js';
import {
  DMA_FENCE_FLAG_TIMESTAMP_BIT,
  DMA_FENCE_FLAG_USER_BITS,
  DmaFence,
  type DmaFenceOps,
  seqnoIsLater,
} from '../fence/fence.js';
import { SyncFile } from '../sync-file.js';
import { trace } from '../trace.js';

/** `SW_SYNC_IOC_MAGIC`: the ioctl type of the sw_sync file, `'W'`. */
export const SW_SYNC_IOC_MAGIC = 0x57;
/** `SW_SYNC_IOC_CREATE_FENCE` = `_IOWR('W', 0, struct sw_sync_create_fence_data)`. */
export const SW_SYNC_IOC_CREATE_FENCE = 0xc0285700;
/** `SW_SYNC_IOC_INC` = `_IOW('W', 1, __u32)`. */
export const SW_SYNC_IOC_INC = 0x40045701;
/** `SW_SYNC_GET_DEADLINE` = `_IOWR('W', 2, struct sw_sync_get_deadline)`. */
export const SW_SYNC_GET_DEADLINE = 0xc0105702;

const INT_MAX = 0x7fff_ffff;
const U32_MAX = 0xffff_ffff;
const ENOENT = -2;
/** `SW_SYNC_HAS_DEADLINE_BIT`: the point's `deadline` field holds a value. */
const HAS_DEADLINE = 1 << DMA_FENCE_FLAG_USER_BITS;
const TIMESTAMP = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT;

/** `struct sync_pt`: a point on a timeline. Internal; users see a DmaFence. */
class SwSyncPoint extends DmaFence {
  readonly timeline: SwSyncTimeline;
  /** Earliest deadline told to the driver (valid when HAS_DEADLINE is set). */
  deadlineNs = 0n;

  constructor(timeline: SwSyncTimeline, value: number) {
    super(pointOps, timeline.context, value);
    this.timeline = timeline;
  }
}

const pointOps: DmaFenceOps = {
  getDriverName: () => 'sw_sync',
  getTimelineName: (f) => (f as SwSyncPoint).timeline.name,
  enableSignaling: () => true,
  signaled: (f) => !seqnoIsLater(f.seqno, (f as SwSyncPoint).timeline.value, false),
  setDeadline: (f, ns) => {
    const p = f as SwSyncPoint;
    if ((p.flags & HAS_DEADLINE) === 0 || ns < p.deadlineNs) p.deadlineNs = ns;
    p.flags |= HAS_DEADLINE;
  },
  timelineValueStr: (f) => String((f as SwSyncPoint).timeline.value),
  fenceValueStr: (f) => String(f.seqno),
};

/** This thread's live timelines, in creation order (the kernel's sync_timeline_list). */
const registry = new Set<WeakRef<SwSyncTimeline>>();

function defaultName(): string {
  return isMainThread ? 'main' : `worker-${threadId}`;
}

function checkU32(v: unknown, what: string): number {
  const n = checkUint(v, what);
  if (n > U32_MAX) fail('EINVAL', `${what} must fit in 32 bits, got ${describe(v)}`);
  return n;
}

export class SwSyncTimeline {
  /** The timeline's name (at most 31 bytes); also the timeline name of its points. */
  readonly name: string;
  /** The fence context of every point of this timeline. */
  readonly context: number;
  #value = 0;
  /** Pending points in value order (`pt_list`): offsets from the counter are 1..INT_MAX. */
  readonly #pending: SwSyncPoint[] = [];
  #destroyed = false;
  readonly #ref: WeakRef<SwSyncTimeline>;

  /**
   * `open("sync/sw_sync")`: a new timeline at value 0 on a new fence context, named `name` (by
   * default after the calling thread, as the kernel names it after the opening task).
   */
  constructor(name: string = defaultName()) {
    if (typeof name !== 'string') fail('EINVAL', 'timeline name must be a string');
    this.name = cString(name, 32);
    this.context = DmaFence.contextAlloc(1);
    this.#ref = new WeakRef(this);
    registry.add(this.#ref);
  }

  /** Same as `new SwSyncTimeline(name)`. */
  static create(name?: string): SwSyncTimeline {
    return new SwSyncTimeline(name);
  }

  /** The counter (unsigned 32-bit). */
  get value(): number {
    return this.#value;
  }

  /** Whether {@link SwSyncTimeline#destroy} was called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * `sync_pt_create`: the point at `value` (u32). Already passed: a new fence, born signaled.
   * Pending with that value already: the same fence again. Otherwise a new pending point.
   * EINVAL for a bad value, EBADF once destroyed. Synchronous.
   */
  createPoint(value: number): DmaFence {
    this.#checkOpen();
    value = checkU32(value, 'point value');
    if (!seqnoIsLater(value, this.#value, false)) {
      const born = new SwSyncPoint(this, value);
      born.isSignaled(); // the signaled op says yes: signals it now
      return born;
    }
    const list = this.#pending;
    const key = (value - this.#value) >>> 0; // offset ahead of the counter: 1..INT_MAX
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((list[mid]!.seqno - this.#value) >>> 0 < key) lo = mid + 1;
      else hi = mid;
    }
    const same = list[lo];
    if (same !== undefined && same.seqno === value) {
      if (!same.testSignaledFlag()) return same;
      list.splice(lo, 1); // signaled by someone else: it no longer holds the value
    }
    const pt = new SwSyncPoint(this, value);
    list.splice(lo, 0, pt);
    return pt;
  }

  /**
   * `SW_SYNC_IOC_CREATE_FENCE`: a {@link SyncFile} over {@link SwSyncTimeline#createPoint}`(value)`.
   */
  createFence(value: number): SyncFile {
    return SyncFile.create(this.createPoint(value));
  }

  /**
   * `SW_SYNC_IOC_INC`: advances the counter by `n` (u32, default 1) and signals the points it
   * passed, in value order, running their callbacks here. If callbacks throw, every due point is
   * still signaled, then the error is rethrown. EINVAL for a bad `n`, EBADF once destroyed.
   */
  inc(n = 1): void {
    this.#checkOpen();
    n = checkU32(n, 'increment');
    const errors: unknown[] = [];
    while (n > INT_MAX) {
      this.#advance(INT_MAX, errors);
      n -= INT_MAX;
    }
    this.#advance(n, errors);
    rethrow(errors);
  }

  /**
   * `SW_SYNC_GET_DEADLINE`: the earliest deadline (ns) set on the point `syncFile` wraps, from
   * any thread. EINVAL when the sync file's fence is not a sw_sync point of this thread (a merged
   * array, say); ENOENT when no deadline was ever set; EBADF once destroyed.
   */
  getDeadline(syncFile: SyncFile): bigint {
    this.#checkOpen();
    if (!(syncFile instanceof SyncFile)) fail('EINVAL', `not a sync file: ${describe(syncFile)}`);
    const f = syncFile.fence;
    if (!(f instanceof SwSyncPoint)) fail('EINVAL', 'the sync file does not hold a sw_sync point');
    let best: bigint | null = (f.flags & HAS_DEADLINE) !== 0 ? f.deadlineNs : null;
    // Deadlines set from other threads reach the shared slot, not the driver op.
    const shared = f.deadline;
    if (shared !== 0n && (best === null || shared < best)) best = shared;
    if (best === null) fail('ENOENT', 'no deadline was set on this point');
    return best;
  }

  /**
   * Closing the timeline: every pending point signals with -ENOENT, in value order. Idempotent.
   * Callback errors are rethrown after every point has signaled. A timeline dropped without
   * this leaves its points pending until its thread exits (or forever, for points no other thread
   * holds).
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    registry.delete(this.#ref);
    const errors: unknown[] = [];
    for (const pt of this.#pending.splice(0)) {
      if (pt.testSignaledFlag()) continue;
      try {
        pt.setError(ENOENT);
      } catch {
        continue; // signaled by another thread in the meantime
      }
      try {
        pt.signal();
      } catch (e) {
        errors.push(e);
      }
    }
    rethrow(errors);
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  /**
   * The text of the kernel's `sync/info` debugfs file for this thread's live timelines: an `objs:`
   * section with a `name: value` line per timeline followed by its pending points, then an empty
   * `fences:` section (sync files are not tracked).
   */
  static debugInfo(): string {
    let s = 'objs:\n--------------\n';
    for (const ref of registry) {
      const tl = ref.deref();
      if (tl === undefined) {
        registry.delete(ref);
        continue;
      }
      s += `${tl.name}: ${tl.#value}\n`;
      for (const pt of tl.#pending) s += `${describePoint(pt)}\n`;
      s += '\n';
    }
    return `${s}fences:\n--------------\n`;
  }

  toString(): string {
    return `SwSyncTimeline(${this.name}: ${this.#value}${this.#destroyed ? ', destroyed' : ''})`;
  }

  /** `sync_timeline_signal`: counter += k, then signal the due points in order. */
  #advance(k: number, errors: unknown[]): void {
    this.#value = (this.#value + k) >>> 0;
    trace('swSyncTimeline', () => ({ name: this.name, value: this.#value }));
    const list = this.#pending;
    let due = 0;
    while (due < list.length && !seqnoIsLater(list[due]!.seqno, this.#value, false)) due++;
    if (due === 0) return;
    for (const pt of list.splice(0, due)) {
      try {
        pt.signal();
      } catch (e) {
        errors.push(e);
      }
    }
  }

  #checkOpen(): void {
    if (this.#destroyed) fail('EBADF', `sw_sync timeline ${this.name} was destroyed`);
  }
}

/** `sync_print_fence` without the timeline prefix: `  fence <status>[@s.ns]: <value> / <counter>`. */
function describePoint(pt: SwSyncPoint): string {
  const st = pt.getStatus();
  let s = `  fence ${st < 0 ? 'error' : st > 0 ? 'signaled' : 'active'}`;
  if ((pt.flags & TIMESTAMP) !== 0) {
    const ts = pt.timestamp;
    s += `@${ts / 1_000_000_000n}.${String(ts % 1_000_000_000n).padStart(9, '0')}`;
  }
  return `${s}: ${pointOps.fenceValueStr!(pt)} / ${pointOps.timelineValueStr!(pt)}`;
}

function rethrow(errors: unknown[]): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, 'fence callbacks threw');
}
