/**
 * Messages of the dmabuf pipeline. Frames never travel in a message: a message names a pool slot
 * (the pool's buffers were installed in every worker once, at start) plus a few numbers. The
 * bytes stay in the system heap's shared memory; order between stages comes from the fences each
 * stage adds to the buffer's reservation object (implicit sync).
 */

import type { MessagePort } from 'node:worker_threads';
import type { DmaBufDescriptor } from '../../src/index.js';

/**
 * When a stage tells the next one about a frame:
 * - `early`: as soon as its fence is in the buffer's reservation object, before its work — the
 *   next stage's wait on that fence orders them (maximum overlap, two wake-ups per hop);
 * - `late`: after its fence has signaled — the next stage's implicit-sync wait finds it signaled
 *   (one wake-up per hop; the faster choice when there are more stages than cores).
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
  /** Port to receive frames from the previous stage (none for the producer). */
  input?: MessagePort;
  /** Port to pass frames to the next stage (none for the consumer). */
  output?: MessagePort;
  /** Producer: returns from the consumer. Consumer: the port back to the producer. */
  returns?: MessagePort;
  /** When a stage hands a frame on: see {@link Handoff}. */
  handoff: Handoff;
  /** Consumer: report progress every this many frames. */
  progressEvery: number;
}

/** A frame handed to the next stage: pool slot, frame number, producer's start time, checksum. */
export interface FrameMsg {
  k: number;
  slot: number;
  t0: number;
  sum?: number;
}

/** Consumer → producer: the slot may be reused (its readers' fences are in its resv). */
export interface ReturnMsg {
  slot: number;
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
