/**
 * Protocol of the `pipeline` baselines: worker data, messages, and the shared-memory layout of
 * the hand-written ring. Internal to `bench/`; shared by `pipeline.ts` (main side) and the two
 * worker entry files.
 *
 * Four workers, one per role: producer → stage 1 → stage 2 → consumer. The consumer reports the
 * per-frame latencies to the main thread at the end ({@link PipelineDone}).
 */

import type { MessagePort } from 'node:worker_threads';

export type PipelineRole = 'producer' | 'stage1' | 'stage2' | 'consumer';

/** What every pipeline worker gets. */
export interface PipelineWorkerCommon {
  role: PipelineRole;
  frameBytes: number;
  /** Warm-up frames, then timed frames: frame numbers 0 .. warmup + frames - 1. */
  warmup: number;
  frames: number;
  /** Frames in flight at most (the pool or ring size). */
  slots: number;
}

// ---- message-passing variants (pipeline-msg-worker.ts) ----------------------------------------

/** `clone`: every hop structured-clones the frame; `transfer`: every hop transfers it. */
export type MsgMode = 'clone' | 'transfer';

export interface MsgWorkerData extends PipelineWorkerCommon {
  mode: MsgMode;
  /** Port to receive frames from (stage 1, stage 2, consumer). */
  input?: MessagePort;
  /** Port to send frames on (producer, stage 1, stage 2). */
  output?: MessagePort;
  /** Consumer → producer return path: credits (clone) or the buffers themselves (transfer). */
  back?: MessagePort;
}

/** One frame on the wire between two stages. */
export interface FrameMsg {
  seq: number;
  /** Producer start time (`nowNs()`). */
  t0: number;
  bytes: ArrayBuffer;
  /** Stage 2's checksum (0 before stage 2). */
  sum: number;
}

/** Consumer → producer: one frame is done. Carries the buffer back in transfer mode. */
export interface ReturnMsg {
  bytes?: ArrayBuffer;
}

// ---- messages to the main thread --------------------------------------------------------------

export interface PipelineReady {
  type: 'ready';
}

/** Sent by the consumer after the last frame. */
export interface PipelineDone {
  type: 'done';
  /** Latency of each timed frame, producer start → consumer verified, in ns. */
  latencies: Float64Array;
  /** From the consumer finishing the last warm-up frame to it finishing the last frame, in ns. */
  elapsedNs: number;
}

export type PipelineWorkerMessage = PipelineReady | PipelineDone;

// ---- the SharedArrayBuffer ring (pipeline-ring-worker.ts) -------------------------------------

/*
 * Control SharedArrayBuffer, viewed as Int32Array (and Float64Array for T0):
 *
 *   word 0  MAGIC    'RING'                          main, before start
 *   word 1  VERSION  1                               main, before start
 *   word 2  START    0 → 1 when all workers are ready main
 *   word 3..15       reserved (0)
 *   slot s occupies words RING_HEADER_WORDS + s * SLOT_WORDS .. + SLOT_WORDS - 1
 *   (64 bytes: one cache line per slot, no false sharing between slots):
 *     +0  STATE    FREE → FILLED → MODIFIED → CHECKED → FREE; written by whichever stage owns
 *                  the slot (the one whose input state it is), always with publish()
 *     +1  WAITERS  threads asleep on STATE (any stage; Atomics.add/sub)
 *     +2  SEQ      frame number                      producer, before FILLED
 *     +3  SUM      checksum                          stage 2, before CHECKED
 *     +4  T0       producer start time, Float64 (words 4..5)  producer, before FILLED
 *
 * Data SharedArrayBuffer: slot s's frame at bytes [s * frameBytes, (s + 1) * frameBytes).
 *
 * SEQ, SUM, T0 and the frame bytes are plain (non-atomic) accesses; a reader sees them complete
 * because it reads them only after an Atomics.load of STATE returned the value stored (by
 * Atomics.store) after they were written.
 */

export const RING_MAGIC = 0x474e4952; // 'RING' little-endian
export const RING_VERSION = 1;
export const R_MAGIC = 0;
export const R_VERSION = 1;
export const R_START = 2;
export const RING_HEADER_WORDS = 16;
export const SLOT_WORDS = 16;
export const S_STATE = 0;
export const S_WAITERS = 1;
export const S_SEQ = 2;
export const S_SUM = 3;
export const S_T0 = 4;

export const FREE = 0;
export const FILLED = 1;
export const MODIFIED = 2;
export const CHECKED = 3;

/** Bytes of the control SAB for `slots` slots. */
export function ringControlBytes(slots: number): number {
  return (RING_HEADER_WORDS + slots * SLOT_WORDS) * 4;
}

/** Int32 index of word `field` of slot `slot`. */
export function slotWord(slot: number, field: number): number {
  return RING_HEADER_WORDS + slot * SLOT_WORDS + field;
}

export interface RingWorkerData extends PipelineWorkerCommon {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
  /** Spin iterations before sleeping. */
  spin: number;
}
