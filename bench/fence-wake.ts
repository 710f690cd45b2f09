/**
 * `fence-wake`: how long it takes one thread to wake another, measured as a ping-pong round trip
 * between two workers.
 *
 * Baselines (no framework):
 * - `atomics-spin-wait`: `Atomics.load` spin up to `spin` iterations, then `Atomics.wait`; the
 *   signaller stores, and notifies only when a waiters word says the other side sleeps
 *   (`_spin-wait.ts`). The practical floor.
 * - `atomics-blocking`: always `Atomics.wait` / `Atomics.notify` (the OS futex round trip).
 * - `postMessage`: a MessageChannel between the two workers.
 *
 * The dmabuf side (`fence-wake.dmabuf.ts`, exporting `dmabuf: WakeSide`) does the same ping-pong
 * with fences: one worker signals a fence the other waits on, and back. It returns the round-trip
 * samples in nanoseconds ({@link WakeRaw}), warm-up rounds excluded.
 */

import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import {
  type Bench,
  compare,
  loadDmabufSides,
  type Metric,
  percentile,
  type RunOptions,
  type Side,
} from './_harness.js';
import { openStart } from './_spin-wait.js';
import { START, WAKE_SAB_BYTES, type WakeMode, type WakeWorkerData } from './_wake-layout.js';
import { nextOrFailure, spawn, withWorkers } from './_workers.js';

export interface WakeOptions {
  /** Timed round trips. */
  rounds: number;
  /** Untimed round trips before them. */
  warmup: number;
  /** Spin iterations before sleeping, where the side spins. */
  spin: number;
}

/** Round-trip times in nanoseconds, one per timed round. */
export type WakeRaw = Float64Array;
export type WakeSide = Side<WakeOptions, WakeRaw>;

const WORKER = new URL('./fence-wake-worker.js', import.meta.url);

/** Runs one baseline ping-pong between two fresh workers and returns the round-trip samples. */
export async function pingPong(mode: WakeMode, opts: WakeOptions): Promise<WakeRaw> {
  const sab = new SharedArrayBuffer(WAKE_SAB_BYTES);
  const base = { mode, rounds: opts.rounds, warmup: opts.warmup, spin: opts.spin, sab };
  let ping: WakeWorkerData;
  let pong: WakeWorkerData;
  let pingList: TransferListItem[] = [];
  let pongList: TransferListItem[] = [];
  if (mode === 'postMessage') {
    const ch = new MessageChannel();
    ping = { ...base, role: 'ping', port: ch.port1 };
    pong = { ...base, role: 'pong', port: ch.port2 };
    pingList = [ch.port1];
    pongList = [ch.port2];
  } else {
    ping = { ...base, role: 'ping' };
    pong = { ...base, role: 'pong' };
  }
  const a = spawn(WORKER, ping, pingList);
  const b = spawn(WORKER, pong, pongList);
  return withWorkers([a, b], async () => {
    await Promise.all([a.next(), b.next()]); // both 'ready'
    if (mode === 'postMessage') a.worker.postMessage('go');
    else openStart(new Int32Array(sab), START);
    const done = await nextOrFailure<{ type: 'done'; samples: Float64Array }>(a, [a, b]);
    return done.samples;
  });
}

const side = (name: string, mode: WakeMode): WakeSide => ({
  name,
  run: (opts) => pingPong(mode, opts),
});

export const wakeBaselines: readonly WakeSide[] = [
  side('atomics-spin-wait', 'spin'),
  side('atomics-blocking', 'block'),
  side('postMessage', 'postMessage'),
];

const US = 1e-3;
export const wakeMetrics: readonly Metric<WakeRaw>[] = [
  { metric: 'rtt-p50', unit: 'us', better: 'lower', value: (s) => percentile(s, 50) * US },
  { metric: 'rtt-p99', unit: 'us', better: 'lower', value: (s) => percentile(s, 99) * US },
  // The mean counts what a side defers off the median round trip (dmabuf settles remote views'
  // timestamps and references in batches) and every fall into a futex sleep.
  {
    metric: 'rtt-mean',
    unit: 'us',
    better: 'lower',
    value: (s) => (s.reduce((a, b) => a + b, 0) / s.length) * US,
  },
  {
    metric: 'one-way-p50',
    unit: 'us',
    better: 'lower',
    value: (s) => (percentile(s, 50) * US) / 2,
  },
];

/**
 * Default options for a run: 20k timed rounds after 20k untimed ones (a tenth when quick), spin
 * 4096. The long warm-up lets every side reach optimized code: with 2k, the fence side was
 * still tiering up inside the timed rounds (p50 0.46-0.61 us against 0.32-0.34 us warm).
 */
export function wakeOptions(run: RunOptions): WakeOptions {
  return { rounds: run.scale(20_000, 200), warmup: run.scale(20_000, 500), spin: 4096 };
}

/**
 * Interleaved rounds over all sides (A B C D A B C D ...; each metric the median of its rounds):
 * 5, or 1 when quick. One fence-wake run times ~10 ms of ping-pong, and on the project's 2-vCPU VM
 * a whole run lands on one of a few levels (dmabuf p50 ~0.27, ~0.36 or ~0.46 us; the floor ~0.17
 * to ~0.45 us) that hold for the run, not per round — one run per side decided the ratio by draw.
 */
export function wakeRepeat(run: RunOptions): number {
  return run.quick ? 1 : 5;
}

export const fenceWake: Bench = {
  name: 'fence-wake',
  description: 'cross-thread wake-up: ping-pong round trip between two workers',
  async run(run) {
    return compare({
      bench: 'fence-wake',
      options: wakeOptions(run),
      metrics: wakeMetrics,
      baselines: wakeBaselines,
      dmabuf: await loadDmabufSides<WakeOptions, WakeRaw>('fence-wake'),
      repeat: wakeRepeat(run),
      run,
    });
  },
};
