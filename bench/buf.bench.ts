/**
 * `buf`: the buffer core's costs, each against what a program would do without dmabuf.
 *
 * - **cycle rate**: full buffer cycles per second — allocate from the system heap (export), attach
 *   a device, map, unmap, detach, put (release) — with 1k, 10k and 100k other buffers alive, and
 *   the ratio 100k/1k (1.0 = no slowdown with many live buffers). Baseline: allocating and dropping
 *   a bare SharedArrayBuffer of the same size, with as many bare SharedArrayBuffers alive (V8's own
 *   cost per SharedArrayBuffer grows with the number alive).
 * - **memory per live buffer** beyond its bytes: JS heap plus array-buffer memory (the shared
 *   tables included) per live one-page buffer, measured over 10k buffers. Baseline: a bare
 *   SharedArrayBuffer of one page.
 * - **sharing 64 MiB with a worker**: post the handle, map there, read a byte, reply — against
 *   structured clone and transfer of the same bytes (the `buffer-share` bench's sides).
 *
 * `run()` returns plain result objects `{ bench, metric, unit, dmabuf, baseline, baselineValue }`;
 * `node --expose-gc dist/bench/buf.bench.js` prints them as JSON lines (without `--expose-gc`
 * the memory figures include garbage). `BENCH_QUICK=1` shortens everything.
 */

import {
  DMA_BIDIRECTIONAL,
  type DmaBuf,
  type DmaBufDevice,
  PAGE_SIZE,
  systemHeap,
} from '../src/index.js';
import { type Bench, percentile, type Result, round, speedup } from './_harness.js';
import { dmabufShareRoundTrips } from './buffer-share.dmabuf.js';
import { shareRoundTrips } from './buffer-share.js';

export interface BufResult {
  bench: string;
  metric: string;
  unit: string;
  dmabuf: number;
  baseline: string;
  baselineValue: number;
}

const quick =
  /^(1|true|yes)$/i.test(process.env.BENCH_QUICK ?? '') || process.argv.includes('--quick');
const dev: DmaBufDevice = { name: 'bench-dev' };

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** One full cycle: allocate (export), attach, map, unmap, detach, put (release). */
async function cycle(): Promise<void> {
  const buf = systemHeap.allocateBuffer(PAGE_SIZE);
  const att = await buf.attach(dev);
  const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
  await att.unmapAttachmentUnlocked(m);
  await buf.detach(att);
  buf.put();
}

/** Cycles per second over about `ms` milliseconds (after a warm-up). */
async function cycleRate(ms: number): Promise<number> {
  for (let i = 0; i < 3000; i++) await cycle();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 100; i++) await cycle();
    n += 100;
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

/** Bare SharedArrayBuffer allocations per second (each dropped at once). */
function sabRate(ms: number): number {
  let n = 0;
  let sink = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 100; i++) sink += new SharedArrayBuffer(PAGE_SIZE).byteLength;
    n += 100;
    t = performance.now();
  }
  if (sink === 0) throw new Error('unreachable');
  return (n * 1000) / (t - t0);
}

function liveBuffers(n: number): DmaBuf[] {
  const out: DmaBuf[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = systemHeap.allocateBuffer(PAGE_SIZE);
  return out;
}

function memoryNow(): number {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function cycleResults(): Promise<BufResult[]> {
  const ms = quick ? 200 : 1000;
  const rates = new Map<number, [number, number]>();
  for (const live of quick ? [1_000, 10_000] : [1_000, 10_000, 100_000]) {
    // The baseline with as many live SharedArrayBuffers (V8's cost of one grows with them).
    let sabs: SharedArrayBuffer[] | null = [];
    for (let i = 0; i < live; i++) sabs.push(new SharedArrayBuffer(PAGE_SIZE));
    const base = sabRate(ms);
    if (sabs.length !== live) throw new Error('unreachable');
    sabs = null;
    gc();
    const bufs = liveBuffers(live);
    rates.set(live, [await cycleRate(ms), base]);
    for (const b of bufs) b.put();
    gc();
  }
  const out: BufResult[] = [];
  for (const [live, [rate, base]] of rates) {
    out.push({
      bench: 'buf',
      metric: `cycle-rate@${live / 1000}k-live`,
      unit: 'cycles/s',
      dmabuf: rate,
      baseline: 'new SharedArrayBuffer (as many live)',
      baselineValue: base,
    });
  }
  const top = quick ? 10_000 : 100_000;
  out.push({
    bench: 'buf',
    metric: `cycle-rate ${top / 1000}k/1k`,
    unit: 'ratio',
    dmabuf: rates.get(top)![0] / rates.get(1_000)![0],
    baseline: 'new SharedArrayBuffer, same ratio',
    baselineValue: rates.get(top)![1] / rates.get(1_000)![1],
  });
  return out;
}

function memoryResults(): BufResult[] {
  const n = quick ? 2_000 : 10_000;
  const s0 = memoryNow();
  let sabs: SharedArrayBuffer[] | null = [];
  for (let i = 0; i < n; i++) sabs.push(new SharedArrayBuffer(PAGE_SIZE));
  const s1 = memoryNow();
  const perSab = (s1 - s0) / n - PAGE_SIZE;
  if (sabs.length !== n) throw new Error('unreachable');
  sabs = null;
  const b0 = memoryNow();
  const bufs = liveBuffers(n);
  const b1 = memoryNow();
  const perBuf = (b1 - b0) / n - PAGE_SIZE;
  for (const b of bufs) b.put();
  return [
    {
      bench: 'buf',
      metric: 'memory per live buffer beyond its bytes',
      unit: 'bytes',
      dmabuf: perBuf,
      baseline: 'new SharedArrayBuffer',
      baselineValue: perSab,
    },
  ];
}

async function shareResults(): Promise<BufResult[]> {
  const opts = { bytes: 64 << 20, rounds: quick ? 5 : 30, warmup: quick ? 1 : 3 };
  const mine = await dmabufShareRoundTrips(opts);
  const out: BufResult[] = [];
  for (const mode of ['clone', 'transfer'] as const) {
    const theirs = await shareRoundTrips(mode, opts);
    out.push({
      bench: 'buf',
      metric: 'share 64 MiB with a worker, read a byte (p50 round trip)',
      unit: 'ms',
      dmabuf: percentile(mine, 50) / 1e6,
      baseline: `postMessage-${mode}`,
      baselineValue: percentile(theirs, 50) / 1e6,
    });
  }
  return out;
}

/** Runs every measurement; results as plain objects. */
export async function run(): Promise<BufResult[]> {
  return [...(await cycleResults()), ...memoryResults(), ...(await shareResults())];
}

/** The same, as a bench of `bench/run.ts` (with speedups: > 1 is dmabuf better). */
export const bufBench: Bench = {
  name: 'buf',
  description: 'buffer cycle rate at 1k/10k/100k live buffers, memory per buffer, 64 MiB share',
  async run(): Promise<Result[]> {
    return (await run()).map((r) => {
      const better = r.unit === 'cycles/s' || r.unit === 'ratio' ? 'higher' : 'lower';
      return {
        ...r,
        dmabuf: round(r.dmabuf),
        baselineValue: round(r.baselineValue),
        speedup: round(speedup(better, r.dmabuf, r.baselineValue)),
      };
    });
  },
};

if (
  process.argv[1] !== undefined &&
  import.meta.url === new URL(`file://${process.argv[1]}`).href
) {
  run().then(
    (rs) => {
      for (const r of rs) process.stdout.write(`${JSON.stringify(r)}\n`);
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
