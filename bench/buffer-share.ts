/**
 * `buffer-share`: handing a 64 MiB buffer to a worker that reads one byte and replies, in
 * milliseconds per round trip.
 *
 * Baselines:
 * - `postMessage-clone`: the bytes are structured-cloned to the worker (a full copy each time);
 *   the worker replies with the byte only.
 * - `postMessage-transfer`: the ArrayBuffer is transferred to the worker (zero-copy, ownership
 *   moves) and transferred back with the reply, so the main thread can send it again — the only
 *   way to keep using one buffer with transfer.
 *
 * The dmabuf side (`buffer-share.dmabuf.ts`, `dmabuf: ShareSide`) exports a dma-buf of
 * `options.bytes` once, then per round posts its handle's transfer descriptor to a worker that
 * imports it, maps it, reads one byte, replies and drops it. It returns the round-trip times in
 * nanoseconds ({@link ShareRaw}), warm-up rounds excluded.
 */

import {
  type Bench,
  compare,
  loadDmabufSides,
  type Metric,
  nowNs,
  percentile,
  type RunOptions,
  type Side,
} from './_harness.js';
import type { ShareMode, ShareReply, ShareRequest, ShareWorkerData } from './_share-protocol.js';
import { spawn, withWorkers } from './_workers.js';

export interface ShareOptions {
  /** Buffer size in bytes (default 64 MiB). */
  bytes: number;
  rounds: number;
  warmup: number;
}

/** Round-trip times in nanoseconds. */
export type ShareRaw = Float64Array;
export type ShareSide = Side<ShareOptions, ShareRaw>;

const WORKER = new URL('./buffer-share-worker.js', import.meta.url);
const PAGE = 4096;

/** A buffer whose every page starts with its page number (mod 256): the reader can be checked. */
export function makeShareBuffer(bytes: number): Uint8Array {
  const u8 = new Uint8Array(bytes);
  u8.fill(0xee); // commit every page
  for (let i = 0; i < bytes; i += PAGE) u8[i] = (i / PAGE) & 0xff;
  return u8;
}

/** Runs one baseline with a fresh worker and returns the round-trip samples. */
export async function shareRoundTrips(mode: ShareMode, opts: ShareOptions): Promise<ShareRaw> {
  const w = spawn(WORKER, { mode } satisfies ShareWorkerData);
  return withWorkers([w], async () => {
    let bytes = makeShareBuffer(opts.bytes);
    const pages = Math.ceil(opts.bytes / PAGE);
    const out = new Float64Array(opts.rounds);
    for (let i = 0; i < opts.warmup + opts.rounds; i++) {
      const page = (i * 7919) % pages;
      const req: ShareRequest = { bytes, index: page * PAGE };
      const t0 = nowNs();
      if (mode === 'transfer') w.worker.postMessage(req, [bytes.buffer as ArrayBuffer]);
      else w.worker.postMessage(req);
      const reply = await w.next<ShareReply>();
      const dt = nowNs() - t0;
      if (reply.value !== (page & 0xff))
        throw new Error(`buffer-share ${mode}: read ${reply.value}`);
      if (mode === 'transfer') bytes = reply.bytes!;
      if (i >= opts.warmup) out[i - opts.warmup] = dt;
    }
    return out;
  });
}

export const shareBaselines: readonly ShareSide[] = [
  { name: 'postMessage-clone', run: (o) => shareRoundTrips('clone', o) },
  { name: 'postMessage-transfer', run: (o) => shareRoundTrips('transfer', o) },
];

const MS = 1e-6;
export const shareMetrics: readonly Metric<ShareRaw>[] = [
  { metric: 'rtt-p50', unit: 'ms', better: 'lower', value: (s) => percentile(s, 50) * MS },
  { metric: 'rtt-p99', unit: 'ms', better: 'lower', value: (s) => percentile(s, 99) * MS },
];

/** 64 MiB, 30 timed rounds (5 when quick) after 3 warm-up rounds. */
export function shareOptions(run: RunOptions): ShareOptions {
  return { bytes: 64 << 20, rounds: run.scale(30, 5), warmup: run.quick ? 1 : 3 };
}

export const bufferShare: Bench = {
  name: 'buffer-share',
  description: 'hand 64 MiB to a worker that reads one byte and replies (ms per round trip)',
  async run(run) {
    return compare({
      bench: 'buffer-share',
      options: shareOptions(run),
      metrics: shareMetrics,
      baselines: shareBaselines,
      dmabuf: await loadDmabufSides<ShareOptions, ShareRaw>('buffer-share'),
      run,
    });
  },
};
