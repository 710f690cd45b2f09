/**
 * Reservation-lock benchmarks, self-contained (the shared harness may wrap `run()`):
 *
 * - `resv-lock-uncontended`: an awaited `lock()` + `unlock()` pair on one reservation object in one
 *   thread, in ns per pair — without a context and with one. Reference: a minimal promise-queue
 *   mutex (what an async-mutex package does), which is thread-local and cannot be shared.
 * - `resv-ww-contended`: tasks in two workers each lock random sets of 8 of 64 shared reservation
 *   objects under a ww acquire context, backing off on -EDEADLK (drop everything, `lockSlow` the
 *   contended one, retry), then unlock, yielding to the event loop every 8 sets. Reports complete
 *   sets per second, back-offs per set and the wait for a set (worst and p99). The reference is
 *   the same run by one task in one worker, where nothing contends.
 *
 * `run({ quick: true })` (or `BENCH_QUICK=1`) shortens every phase for a smoke run.
 */

import type { Worker } from 'node:worker_threads';
import { DmaResv, Domain, WwAcquireCtx } from '../src/index.js';
import { type Bench, type Result, speedup } from './_harness.js';
import type { SetStats } from './resv-bench-worker.js';

export interface BenchResult {
  bench: string;
  metric: string;
  unit: string;
  dmabuf: number;
  baseline: string;
  baselineValue: number;
}

/** A minimal FIFO async mutex made of a promise chain (the usual shape of async-mutex). */
class PromiseQueueMutex {
  private tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => next);
    return prev.then(() => release);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median ns per iteration of `batch(n)` over `samples` timed batches (after 2 warm-up ones). */
async function nsPerOp(
  n: number,
  samples: number,
  batch: (n: number) => Promise<void>,
): Promise<number> {
  await batch(n);
  await batch(n);
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    await batch(n);
    out.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return median(out);
}

async function uncontended(quick: boolean): Promise<BenchResult[]> {
  const n = quick ? 10_000 : 100_000;
  const samples = quick ? 3 : 9;
  const r = new DmaResv();
  const ctx = new WwAcquireCtx();
  const pq = new PromiseQueueMutex();
  const plain = await nsPerOp(n, samples, async (k) => {
    for (let i = 0; i < k; i++) {
      await r.lock(null);
      r.unlock();
    }
  });
  const withCtx = await nsPerOp(n, samples, async (k) => {
    for (let i = 0; i < k; i++) {
      await r.lock(ctx);
      r.unlock();
    }
  });
  const tryl = await nsPerOp(n, samples, async (k) => {
    for (let i = 0; i < k; i++) {
      r.trylock();
      r.unlock();
    }
  });
  const base = await nsPerOp(n, samples, async (k) => {
    for (let i = 0; i < k; i++) {
      const release = await pq.lock();
      release();
    }
  });
  ctx.fini();
  r.fini();
  const baseline = 'promise-queue mutex (thread-local)';
  const row = (metric: string, v: number): BenchResult => ({
    bench: 'resv-lock-uncontended',
    metric,
    unit: 'ns/op',
    dmabuf: round(v),
    baseline,
    baselineValue: round(base),
  });
  return [
    row('await lock(null) + unlock()', plain),
    row('await lock(ctx) + unlock()', withCtx),
    row('trylock() + unlock() (sync)', tryl),
  ];
}

interface Totals {
  sets: number;
  backoffs: number;
  seconds: number;
  worstMs: number;
  p99Ms: number;
}

async function setRun(workers: number, tasks: number, ms: number, seed: number): Promise<Totals> {
  const d = Domain.current();
  const resvs = Array.from({ length: 64 }, () => new DmaResv());
  const url = new URL('./resv-bench-worker.js', import.meta.url);
  const ws: Worker[] = [];
  const ready = new Int32Array(new SharedArrayBuffer(8));
  const results: Promise<SetStats>[] = [];
  for (let k = 0; k < workers; k++) {
    const w = d.spawn(url, {
      workerData: {
        resvs: resvs.map((r) => r.share()),
        ready: ready.buffer,
        ms,
        tasks,
        seed: seed + k,
        workers,
      },
    });
    ws.push(w);
    results.push(
      new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
    );
  }
  const rs = await Promise.all(results);
  await Promise.all(ws.map((w) => w.terminate()));
  for (const r of resvs) r.fini();
  const seconds = Math.max(...rs.map((r) => r.seconds));
  const waits = rs.flatMap((r) => r.waitsUs);
  waits.sort((a, b) => a - b);
  return {
    sets: rs.reduce((s, r) => s + r.sets, 0),
    backoffs: rs.reduce((s, r) => s + r.backoffs, 0),
    seconds,
    worstMs: Math.max(...rs.map((r) => r.worstUs)) / 1000,
    p99Ms: (waits[Math.floor(0.99 * (waits.length - 1))] ?? 0) / 1000,
  };
}

export async function contended(quick: boolean): Promise<BenchResult[]> {
  const ms = quick ? 300 : 1500;
  const seed = 12345;
  const one = await setRun(1, 1, ms, seed);
  const two = await setRun(2, 2, ms, seed);
  const baseline = 'same run, 1 task in 1 worker (uncontended)';
  const row = (metric: string, unit: string, v: number, b: number): BenchResult => ({
    bench: 'resv-ww-contended',
    metric,
    unit,
    dmabuf: round(v),
    baseline,
    baselineValue: round(b),
  });
  return [
    row(
      'sets of 8/64 locked per second, 2 workers x 2 tasks',
      '1/s',
      two.sets / two.seconds,
      one.sets / one.seconds,
    ),
    row(
      'back-offs per set',
      'ratio',
      two.backoffs / two.sets,
      one.backoffs / Math.max(1, one.sets),
    ),
    row('worst wait for a set', 'ms', two.worstMs, one.worstMs),
    row('p99 wait for a set', 'ms', two.p99Ms, one.p99Ms),
  ];
}

function round(v: number): number {
  return Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 1000) / 1000;
}

/** Runs every reservation benchmark and returns one plain object per (bench, metric). */
export async function run(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick ?? /^(1|true|yes)$/i.test(process.env.BENCH_QUICK ?? '');
  return [...(await uncontended(quick)), ...(await contended(quick))];
}

// `node dist/bench/resv.bench.js [--quick]` prints the results, one JSON line each.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run({ quick: process.argv.includes('--quick') }))
    console.log(JSON.stringify(r));
}

/** The contended run as a bench of `bench/run.ts` (speedup > 1: dmabuf better than uncontended). */
export const resvContended: Bench = {
  name: 'resv-contended',
  description: 'two workers x two tasks locking random sets of 8 of 64 reservation objects',
  async run(opts): Promise<Result[]> {
    return (await contended(opts.quick)).map((r) => {
      const better = r.unit === '1/s' ? 'higher' : 'lower';
      const sp =
        r.dmabuf === 0 && r.baselineValue === 0 ? 1 : speedup(better, r.dmabuf, r.baselineValue);
      return { ...r, speedup: Math.round(sp * 1000) / 1000 };
    });
  },
};
