/**
 * The dmabuf pipeline: a producer, N processing stages and a consumer, each a worker of the main
 * thread's domain, passing frames that live in the system heap — never copied, never posted.
 * Used by the demo (`npm start`, examples/demo.ts) and by the `pipeline` bench.
 *
 * ```
 *  producer ──► modify ──► … ──► derive ──► consumer
 *      ▲                                        │
 *      └──────────── slot returns ──────────────┘
 * ```
 * Every arrow is a ticket queue in shared memory (queue.ts) carrying `{ slot, frame, t0, sum }`;
 * synchronization is the buffers' reservation objects (see stage-worker.ts). Messages go only to
 * the main thread (ready, progress, done, error); the stages start together once all are ready.
 */

import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { DmaBuf, DmaHeap, Domain } from '../../src/index.js';
import type { Handoff, Role, StageData, StageReport } from './protocol.js';
import { createQueue } from './queue.js';
import { checkFrameBytes } from './work.js';

export interface PipelineConfig {
  /** Bytes per frame (a multiple of 256). Default 1920×1080 RGBA. */
  frameBytes: number;
  /** Frames measured, after the warm-up. */
  frames: number;
  /** Frames pushed through first and not measured (≥ 1). */
  warmup: number;
  /** Buffers in the pool: frames in flight at most (≥ 1). */
  pool: number;
  /** Processing stages between producer and consumer (≥ 2: N-1 modify stages, then derive). */
  stages: number;
  /** When a stage hands a frame on (default 'late'): see {@link Handoff}. */
  handoff?: Handoff;
  /**
   * Spin iterations before a stage sleeps on an empty ticket queue. Default: 0 when the stage
   * threads outnumber the cores (a spinning stage would steal the core the stage it waits for
   * needs), 4096 otherwise.
   */
  spin?: number;
  /**
   * Pause between the moment every stage is ready and the start, in ms (default 0). V8 finishes
   * the stages' start-up work (compiling, collecting what loading left) on background threads,
   * which on a 2-core machine take CPU from the first frames; a benchmark can let it settle.
   */
  settleMs?: number;
  /** Called in the main thread as the consumer verifies frames. */
  onProgress?: (verified: number, failures: number) => void;
  /** Frame count (verified) at which to take a bufinfo snapshot; none when undefined. */
  bufinfoAt?: number;
}

export interface PipelineResult {
  frames: number;
  verified: number;
  failures: number;
  /** Consumer time from the last warm-up frame to the last frame, ns. */
  elapsedNs: number;
  /** Per measured frame: producer start to consumer verified, ns. */
  latencies: Float64Array;
  fencesSignaled: number;
  /** Frame bytes copied between threads (tickets carry four numbers: always 0). */
  messageBytes: number;
  /** `DmaBuf.bufinfo()` taken mid-run, if asked for. */
  bufinfo?: string;
  /** Buffers still exported after every stage and the pool were released (0 expected). */
  leakedBuffers: number;
}

export const DEFAULT_FRAME_BYTES = 1920 * 1080 * 4;

export function checkConfig(c: PipelineConfig): void {
  checkFrameBytes(c.frameBytes);
  const int = (v: number, min: number, what: string): void => {
    if (!Number.isSafeInteger(v) || v < min)
      throw new RangeError(`${what} must be an integer >= ${min}, got ${v}`);
  };
  int(c.frames, 1, 'frames');
  int(c.warmup, 1, 'warmup');
  int(c.pool, 1, 'pool');
  int(c.stages, 2, 'stages');
  if (c.stages > 16) throw new RangeError('at most 16 stages');
  if (c.pool > 1024) throw new RangeError('at most 1024 pool buffers');
  if (c.spin !== undefined) int(c.spin, 0, 'spin');
  if (c.settleMs !== undefined) int(c.settleMs, 0, 'settleMs');
  if (c.handoff !== undefined && c.handoff !== 'early' && c.handoff !== 'late') {
    throw new RangeError(`handoff must be 'early' or 'late', got ${String(c.handoff)}`);
  }
}

type DoneReport = Extract<StageReport, { type: 'done' }>;

const WORKER = new URL('./stage-worker.js', import.meta.url);

export async function runPipeline(c: PipelineConfig): Promise<PipelineResult> {
  checkConfig(c);
  const domain = Domain.current();
  const heap = DmaHeap.find('system');
  if (heap === null) throw new Error('no system heap');
  const pool: DmaBuf[] = [];
  for (let i = 0; i < c.pool; i++) {
    const buf = heap.allocateBuffer(c.frameBytes);
    buf.setName(`frame-${i}`);
    pool.push(buf);
  }
  const total = c.warmup + c.frames;
  const roles: { role: Role; name: string }[] = [{ role: 'producer', name: 'producer' }];
  for (let i = 1; i < c.stages; i++) roles.push({ role: 'modify', name: `modify-${i}` });
  roles.push({ role: 'derive', name: 'derive' }, { role: 'consumer', name: 'consumer' });
  // links[i]: roles[i] → roles[i + 1]; back: consumer → producer. At most `pool` tickets are
  // ever queued on one of them (the producer starts a frame only in a free slot).
  const links = roles.slice(1).map(() => createQueue(c.pool));
  const back = createQueue(c.pool);
  const spin = c.spin ?? (roles.length > availableParallelism() ? 0 : 4096);
  const start = new SharedArrayBuffer(4);
  let ready = 0;
  const go = (): void => {
    if (++ready < roles.length) return;
    const word = new Int32Array(start);
    setTimeout(() => {
      Atomics.store(word, 0, 1);
      Atomics.notify(word, 0);
    }, c.settleMs ?? 0);
  };
  const workers: Worker[] = [];
  const reports: Promise<DoneReport>[] = [];
  let failure: ((e: Error) => void) | null = null;
  const failed = new Promise<never>((_, reject) => (failure = reject));
  failed.catch(() => {});
  let snapshot: Promise<string> | undefined;
  for (let i = 0; i < roles.length; i++) {
    const { role, name } = roles[i]!;
    const data: StageData = {
      role,
      name,
      pool: pool.map((b) => b.share()),
      frameBytes: c.frameBytes,
      total,
      warmup: c.warmup,
      modifies: c.stages - 1,
      handoff: c.handoff ?? 'late',
      input: i > 0 ? links[i - 1] : undefined,
      output: i < roles.length - 1 ? links[i] : undefined,
      returns: role === 'producer' || role === 'consumer' ? back : undefined,
      spin,
      start,
      // A message costs the consumer a wake-up of this thread: only when somebody listens.
      progressEvery:
        c.onProgress !== undefined || c.bufinfoAt !== undefined
          ? Math.max(1, Math.floor(total / 50))
          : 0,
    };
    const w = domain.spawn(WORKER, { workerData: data as never });
    workers.push(w);
    w.on('error', (e) => failure?.(e));
    w.on('exit', (code) => {
      if (code !== 0) failure?.(new Error(`${name} exited with ${code}`));
    });
    reports.push(
      new Promise<DoneReport>((resolve) => {
        w.on('message', (m: StageReport) => {
          if (m.type === 'error') failure?.(new Error(`${name}: ${m.message}`));
          else if (m.type === 'ready') go();
          else if (m.type === 'done') resolve(m);
          else if (m.type === 'progress') {
            c.onProgress?.(m.verified, m.failures);
            if (c.bufinfoAt !== undefined && snapshot === undefined && m.verified >= c.bufinfoAt) {
              snapshot = DmaBuf.bufinfo();
            }
          }
        });
      }),
    );
  }
  try {
    const results = await Promise.race([Promise.all(reports), failed]);
    const consumer = results[results.length - 1]!;
    const bufinfo = snapshot === undefined ? undefined : await snapshot;
    for (const b of pool) b.put();
    await Promise.all(workers.map((w) => w.terminate()));
    const leakedBuffers = await settledBufferCount();
    return {
      frames: c.frames,
      verified: consumer.verified ?? 0,
      failures: consumer.failures ?? 0,
      elapsedNs: consumer.elapsedNs ?? 0,
      latencies: consumer.latencies ?? new Float64Array(),
      fencesSignaled: results.reduce((n, r) => n + r.fencesSignaled, 0),
      messageBytes: results.reduce((n, r) => n + r.messageBytes, 0),
      bufinfo,
      leakedBuffers,
    };
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
}

/** Buffers alive in the domain (the global list), once releases in flight have run (≤ 1 s). */
async function settledBufferCount(): Promise<number> {
  const count = (): number => {
    let n = 0;
    for (let b = DmaBuf.iterBegin(); b !== null; b = DmaBuf.iterNext(b)) n++;
    return n;
  };
  const deadline = performance.now() + 1000;
  let n = count();
  while (n > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    n = count();
  }
  return n;
}
