/**
 * Protocol of the dmabuf pipeline. Frames never travel between threads: a ticket in a shared
 * queue (queue.ts) names a pool slot (the pool's buffers were installed in every worker once, at
 * start) plus a few numbers. The bytes stay in the system heap's shared memory; order between
 * stages comes from the fences each stage adds to the buffer's reservation object (implicit sync).
 * Messages go only to the main thread: ready, progress, done, error.
 */

import type { DmaBufDescriptor } from '../../src/index.js';

/**
 * When a stage tells the next one about a frame:
 * - `early`: as soon as its fence is in the buffer's reservation object, before its work — the
 *   next stage's implicit-sync wait (`beginCpuAccessSync`) blocks on that fence until the work is
 *   done (maximum overlap, two wake-ups per hop when the next stage sleeps);
 * - `late`: after its fence has signaled — the next stage's implicit-sync wait finds it signaled
 *   (one wake-up per hop at most; the faster choice when there are more stages than cores).
 * Both run the same implicit-sync code in every stage.
 */
export type Handoff = 'early' | 'late';

export type Role = 'producer' | 'modify' | 'derive' | 'consumer';

export interface StageData {
  role: Role;
  /** Name of this stage (device name in bufinfo). */
  name: string;
  /** One descriptor per pool buffer (each carries a reference for this worker). */
  pool: DmaBufDescriptor[];
  frameBytes: number;
  /** Frames to push through, warm-up included. */
  total: number;
  warmup: number;
  /** Number of modify stages (the consumer's verification depends on it). */
  modifies: number;
  /** Ticket queue from the previous stage (none for the producer): see queue.ts. */
  input?: SharedArrayBuffer;
  /** Ticket queue to the next stage (none for the consumer). */
  output?: SharedArrayBuffer;
  /** Producer: pops the slots the consumer is done with. Consumer: pushes them. */
  returns?: SharedArrayBuffer;
  /** Spin iterations before a stage sleeps on an empty queue (0: sleep at once). */
  spin: number;
  /** When a stage hands a frame on: see {@link Handoff}. */
  handoff: Handoff;
  /**
   * Start barrier: one Int32 word, 0 until every stage has opened its pool, then 1 (main thread).
   * Every stage reports `ready` and blocks on it, so that none starts while another is still
   * loading.
   */
  start: SharedArrayBuffer;
  /** Consumer: report progress every this many frames (0: never). */
  progressEvery: number;
}

/** Worker → main. */
export type StageReport =
  | { type: 'ready' }
  | { type: 'progress'; verified: number; failures: number }
  | {
      type: 'done';
      fencesSignaled: number;
      messageBytes: number;
      /** Consumer only. */
      latencies?: Float64Array;
      elapsedNs?: number;
      verified?: number;
      failures?: number;
    }
  | { type: 'error'; message: string };
