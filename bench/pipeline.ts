/**
 * `pipeline`: a four-thread frame pipeline — producer → stage 1 → stage 2 → consumer, each a
 * worker — built several ways, at several frame sizes. The stage work is the same for every
 * variant (`pipeline-work.ts`); only the way frames travel differs.
 *
 * Baselines:
 * - `postMessage-clone`: every hop structured-clones the frame (3 copies per frame); the consumer
 *   returns a credit to the producer.
 * - `postMessage-transfer`: every hop transfers the ArrayBuffer; the consumer transfers it back to
 *   the producer, which recycles a pool of `slots` buffers.
 * - `sab-ring`: a hand-written SharedArrayBuffer ring of `slots` frame slots with a state word per
 *   slot and spin-then-wait signalling (`spin` iterations). No copies, no framework: the floor.
 * - `sab-ring-nospin`: the same ring with `spin = 0` (sleep at once, notify only sleepers). With
 *   more busy threads than cores (4 stages on a 2-core machine) spinning steals the core the
 *   awaited stage needs, and this one is the faster floor; with enough cores, `sab-ring` is.
 * All keep at most `slots` frames in flight.
 *
 * Metrics: frames/s over the timed frames; latency p50/p99 (producer starts a frame → consumer
 * has verified it).
 *
 * The dmabuf side (`pipeline.dmabuf.ts`, `dmabuf: PipelineSide`): the same four roles in workers,
 * frames in `slots` dma-bufs from a heap, handed along with fences (or reservation objects), the
 * stage work done by calling `fillFrame`, `modifyFrame`, `checksumFrame`, `verifyFrame` on a
 * `Uint32Array` view of each mapped buffer. It must produce a {@link PipelineRaw} measured the
 * same way: t0 taken by the producer just before `fillFrame`, t1 by the consumer just after
 * `verifyFrame`, both with `nowNs()`; `elapsedNs` from the consumer's t1 of the last warm-up frame
 * to its t1 of the last frame.
 */

import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import { checkFrameBytes } from '../examples/pipeline/work.js';
import {
  type Bench,
  compare,
  loadDmabufSides,
  type Metric,
  percentile,
  type RunOptions,
  type Side,
} from './_harness.js';
import {
  type MsgMode,
  type MsgWorkerData,
  type PipelineDone,
  type PipelineRole,
  type PipelineWorkerCommon,
  R_MAGIC,
  R_START,
  R_VERSION,
  RING_MAGIC,
  RING_VERSION,
  type RingWorkerData,
  ringControlBytes,
} from './_pipeline-protocol.js';
import { openStart } from './_spin-wait.js';
import { type BenchWorker, nextOrFailure, spawn, withWorkers } from './_workers.js';

export interface PipelineOptions {
  /** Bytes per frame, a multiple of 256 (`FRAME_ALIGN`). */
  frameBytes: number;
  /** Timed frames. */
  frames: number;
  /** Frames pushed through first and left out of every figure (at least 1). */
  warmup: number;
  /** Frames in flight at most: ring slots, buffer pool size, credits. Default 4. */
  slots: number;
  /** Spin iterations before sleeping, where a variant spins. Default 4096. */
  spin: number;
}

/** What one run of a variant measured. */
export interface PipelineRaw {
  /** Per timed frame: producer start → consumer verified, in ns. */
  latencies: Float64Array;
  /** Consumer time from the last warm-up frame verified to the last frame verified, in ns. */
  elapsedNs: number;
  /** Frames verified in `elapsedNs` (= `options.frames`). */
  frames: number;
}

export type PipelineSide = Side<PipelineOptions, PipelineRaw>;

const MSG_WORKER = new URL('./pipeline-msg-worker.js', import.meta.url);
const RING_WORKER = new URL('./pipeline-ring-worker.js', import.meta.url);
const ROLES: readonly PipelineRole[] = ['producer', 'stage1', 'stage2', 'consumer'];

function common(role: PipelineRole, o: PipelineOptions): PipelineWorkerCommon {
  checkFrameBytes(o.frameBytes);
  if (o.warmup < 1) throw new RangeError('pipeline: warmup must be at least 1 frame');
  return { role, frameBytes: o.frameBytes, warmup: o.warmup, frames: o.frames, slots: o.slots };
}

/** Starts the workers, waits until all are ready, starts them, returns the consumer's report. */
async function drive(workers: BenchWorker[], start: () => void): Promise<PipelineRaw> {
  return withWorkers(workers, async () => {
    await Promise.all(workers.map((w) => w.next()));
    start();
    const done = await nextOrFailure<PipelineDone>(workers[3]!, workers, 120_000);
    return { latencies: done.latencies, elapsedNs: done.elapsedNs, frames: done.latencies.length };
  });
}

/** The message-passing baselines. */
export async function runMessagePipeline(mode: MsgMode, o: PipelineOptions): Promise<PipelineRaw> {
  const a = new MessageChannel(); // producer → stage 1
  const b = new MessageChannel(); // stage 1 → stage 2
  const c = new MessageChannel(); // stage 2 → consumer
  const r = new MessageChannel(); // consumer → producer (return path)
  const ports: Record<PipelineRole, Partial<MsgWorkerData>> = {
    producer: { output: a.port1, back: r.port2 },
    stage1: { input: a.port2, output: b.port1 },
    stage2: { input: b.port2, output: c.port1 },
    consumer: { input: c.port2, back: r.port1 },
  };
  const workers = ROLES.map((role) => {
    const p = ports[role];
    const list = [p.input, p.output, p.back].filter((x) => x !== undefined) as TransferListItem[];
    return spawn(MSG_WORKER, { ...common(role, o), mode, ...p } satisfies MsgWorkerData, list);
  });
  return drive(workers, () => workers[0]!.worker.postMessage('go'));
}

/** The SharedArrayBuffer ring baseline. */
export async function runRingPipeline(o: PipelineOptions): Promise<PipelineRaw> {
  const control = new SharedArrayBuffer(ringControlBytes(o.slots));
  const data = new SharedArrayBuffer(o.slots * o.frameBytes);
  const i32 = new Int32Array(control);
  i32[R_MAGIC] = RING_MAGIC;
  i32[R_VERSION] = RING_VERSION;
  const workers = ROLES.map((role) =>
    spawn(RING_WORKER, {
      ...common(role, o),
      control,
      data,
      spin: o.spin,
    } satisfies RingWorkerData),
  );
  return drive(workers, () => openStart(i32, R_START));
}

export const pipelineBaselines: readonly PipelineSide[] = [
  { name: 'postMessage-clone', run: (o) => runMessagePipeline('clone', o) },
  { name: 'postMessage-transfer', run: (o) => runMessagePipeline('transfer', o) },
  { name: 'sab-ring', run: (o) => runRingPipeline(o) },
  { name: 'sab-ring-nospin', run: (o) => runRingPipeline({ ...o, spin: 0 }) },
];

const MS = 1e-6;
export const pipelineMetrics: readonly Metric<PipelineRaw>[] = [
  {
    metric: 'throughput',
    unit: 'frames/s',
    better: 'higher',
    value: (r) => r.frames / (r.elapsedNs * 1e-9),
  },
  {
    metric: 'latency-p50',
    unit: 'ms',
    better: 'lower',
    value: (r) => percentile(r.latencies, 50) * MS,
  },
  {
    metric: 'latency-p99',
    unit: 'ms',
    better: 'lower',
    value: (r) => percentile(r.latencies, 99) * MS,
  },
];

/** One frame size of the bench, with its default frame count per round (the slowest baseline,
 * `postMessage-clone`, takes about 0.5-1.5 s per round on a 2-core machine). */
export interface FrameSize {
  label: string;
  bytes: number;
  frames: number;
  /** Untimed frames before them, for every side (default: as many as `frames`, at most 2000). */
  warmup?: number;
}

export const FRAME_SIZES: readonly FrameSize[] = [
  { label: '64KiB', bytes: 64 << 10, frames: 8_000, warmup: 8_000 },
  { label: '1MiB', bytes: 1 << 20, frames: 800, warmup: 2000 },
  // RGBA, 7.9 MiB: the default frame. 2000 warm-up frames: with 400, V8 was still optimizing the
  // dmabuf stages' library code in the timed frames (measured per stage-frame: the implicit-sync
  // steps took ~50 us after 400 warm-up frames and ~25 us after 3000, and dmabuf's throughput
  // against sab-ring-nospin went from 0.78-0.86x to 0.97x in the same A/B).
  { label: '1080p', bytes: 1920 * 1080 * 4, frames: 400, warmup: 2000 },
  { label: '32MiB', bytes: 32 << 20, frames: 40 },
];

/** Rounds over all variants (interleaved, median per metric): 3, or 1 when quick. */
export function pipelineRepeat(run: RunOptions): number {
  return run.quick ? 1 : 3;
}

/**
 * Options for one frame size. Environment overrides: `BENCH_FRAMES` (timed frames, every size),
 * `BENCH_WARMUP` (warm-up frames, every size and every side; default the size's `warmup`, else as
 * many as the timed frames, at most 2000 — when quick, always the latter: the dmabuf side runs a
 * library that V8 tiers up in four workers, ~1 s of compile CPU on two cores, and a tenth of the
 * frames left that inside the timed part),
 * `BENCH_SLOTS` (default 4), `BENCH_SPIN` (default 4096).
 */
export function pipelineOptions(run: RunOptions, size: FrameSize): PipelineOptions {
  const env = (k: string): number | undefined => {
    const v = process.env[k];
    return v === undefined || v === '' ? undefined : Number(v);
  };
  const frames = env('BENCH_FRAMES') ?? run.scale(size.frames, 8);
  return {
    frameBytes: size.bytes,
    frames,
    warmup:
      env('BENCH_WARMUP') ??
      (run.quick ? undefined : size.warmup) ??
      Math.max(2, Math.min(2000, frames)),
    slots: env('BENCH_SLOTS') ?? 4,
    spin: env('BENCH_SPIN') ?? 4096,
  };
}

/** One bench per frame size: `pipeline/64KiB`, `pipeline/1MiB`, `pipeline/1080p`, `pipeline/32MiB`. */
export const pipelineBenches: readonly Bench[] = FRAME_SIZES.map((size) => ({
  name: `pipeline/${size.label}`,
  description: `producer → stage 1 → stage 2 → consumer workers, ${size.label} frames`,
  async run(run: RunOptions) {
    return compare({
      bench: `pipeline/${size.label}`,
      options: pipelineOptions(run, size),
      metrics: pipelineMetrics,
      baselines: pipelineBaselines,
      dmabuf: await loadDmabufSides<PipelineOptions, PipelineRaw>('pipeline'),
      repeat: pipelineRepeat(run),
      run,
    });
  },
}));
