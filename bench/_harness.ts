/**
 * The benchmark harness. Internal to `bench/`; no dependencies beyond Node.
 *
 * A benchmark compares **sides**: the dmabuf side and one or more **baselines** (what a program
 * would do without dmabuf). Each side is a {@link Side}: a name and an async `run(options)` that
 * returns raw measurements of one type `R` (samples in nanoseconds, a frame count and latencies,
 * ...). The bench turns raw measurements into numbers through its {@link Metric} list, so that
 * every side is summarised by the same code. {@link compare} runs the sides in sequence and
 * returns one {@link Result} per (metric, baseline) pair; {@link report} prints it as one JSON line,
 * {@link printTable} as a table.
 *
 * Plugging in the dmabuf side: a bench named `foo` looks for an optional module
 * `bench/foo.dmabuf.ts` (compiled to `dist/bench/foo.dmabuf.js`) exporting
 * `dmabuf: Side<FooOptions, FooRaw> | readonly Side<FooOptions, FooRaw>[]`
 * ({@link loadDmabufSides}). Until that file exists, results carry `dmabuf: null`.
 *
 * Scaling: every iteration count goes through {@link RunOptions.scale}; `BENCH_QUICK=1` (or
 * `--quick`) divides counts by about 10 for a smoke run. `BENCH_REPEAT=n` runs every bench's sides
 * n times, interleaved, and reports per-metric medians.
 *
 * Clocks: {@link nowNs} reads `process.hrtime` (CLOCK_MONOTONIC), which every thread of the process
 * shares, so a timestamp taken in one worker may be subtracted from one taken in another.
 * `performance.now()` does not have that property (each worker has its own time origin).
 */

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// ---- clock and statistics --------------------------------------------------------------------

/**
 * Monotonic time in nanoseconds as a double. Exact while the monotonic clock is below 2^53 ns
 * (104 days of uptime), within a few ns after that. Allocates one bigint.
 */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Runs `fn` once and returns its duration in nanoseconds. */
export function timeNs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Awaits `fn()` once and returns its duration in nanoseconds. */
export async function timeNsAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Ascending sorted copy; does not modify its argument. */
export function sorted(samples: ArrayLike<number>): Float64Array {
  return Float64Array.from(samples).sort();
}

/**
 * The `p`-th percentile (0..100) of `samples`, linearly interpolated between closest ranks (the
 * definition numpy uses by default). NaN for an empty sample.
 */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile out of range: ${p}`);
  const s = samples instanceof Float64Array && isSorted(samples) ? samples : sorted(samples);
  if (s.length === 0) return Number.NaN;
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

/** The median (50th percentile). */
export function median(samples: ArrayLike<number>): number {
  return percentile(samples, 50);
}

export function mean(samples: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i]!;
  return sum / samples.length;
}

function isSorted(a: Float64Array): boolean {
  for (let i = 1; i < a.length; i++) if (a[i - 1]! > a[i]!) return false;
  return true;
}

// ---- repeated sampling -----------------------------------------------------------------------

export interface SampleOptions {
  /** Calls of the batch that are timed and thrown away first. */
  warmup: number;
  /** Timed calls of the batch. */
  samples: number;
  /** Operations per batch: the batch's time is divided by this. */
  iterations: number;
}

/**
 * Times `batch(iterations)` `warmup + samples` times and returns the `samples` timed ones as
 * nanoseconds per operation. `batch` must perform `iterations` operations.
 */
export async function nsPerOp(
  opts: SampleOptions,
  batch: (iterations: number) => void | Promise<void>,
): Promise<Float64Array> {
  const out = new Float64Array(opts.samples);
  for (let i = 0; i < opts.warmup + opts.samples; i++) {
    const t0 = process.hrtime.bigint();
    await batch(opts.iterations);
    const dt = Number(process.hrtime.bigint() - t0);
    if (i >= opts.warmup) out[i - opts.warmup] = dt / opts.iterations;
  }
  return out;
}

// ---- run options -----------------------------------------------------------------------------

export interface RunOptions {
  /** True under `BENCH_QUICK=1` or `--quick`: counts are divided by about 10. */
  readonly quick: boolean;
  /** Scales an iteration count for this run: `n` normally, about `n / 10` when quick, at least `min`. */
  scale(n: number, min?: number): number;
  /** `BENCH_REPEAT` when set: overrides a bench's number of interleaved rounds
   * ({@link CompareSpec.repeat}). */
  readonly repeat: number | undefined;
  /** Progress lines go here (stderr by default), so that stdout holds only the results. */
  log(line: string): void;
}

/** Builds {@link RunOptions} from the environment (`BENCH_QUICK`, `BENCH_REPEAT`) and explicit
 * overrides. */
export function runOptions(
  over: { quick?: boolean; repeat?: number; log?: (line: string) => void } = {},
): RunOptions {
  const env = process.env['BENCH_QUICK'];
  const quick = over.quick ?? (env !== undefined && env !== '' && env !== '0');
  const rep = Number(process.env['BENCH_REPEAT'] ?? '');
  return {
    quick,
    repeat: over.repeat ?? (Number.isInteger(rep) && rep > 0 ? rep : undefined),
    scale: (n, min = 1) => Math.max(min, Math.round(quick ? n / 10 : n)),
    log:
      over.log ??
      ((line) =>
        process.stderr.write(`${line}
`)),
  };
}

// ---- sides, metrics, results -----------------------------------------------------------------

/** One way of doing the thing a bench measures: the dmabuf way or a baseline. */
export interface Side<O, R> {
  /** Short stable name used in reports: `'dmabuf'`, `'postMessage-clone'`, `'sab-ring'`. */
  readonly name: string;
  /** Performs the measurement with `options` and returns the raw numbers. May spawn workers; must
   * terminate them before resolving. Rejects when the run failed (wrong data, a worker crash). */
  run(options: O): Promise<R>;
}

/** Whether smaller or larger values of a metric are better. */
export type Better = 'lower' | 'higher';

/** One number derived from a side's raw result. */
export interface Metric<R> {
  /** `'rtt-p50'`, `'frames/s'`, ... */
  readonly metric: string;
  /** `'us'`, `'ns/op'`, `'ms'`, `'frames/s'`, ... */
  readonly unit: string;
  readonly better: Better;
  value(raw: R): number;
}

/**
 * One comparison line: `dmabuf` against one baseline on one metric. `dmabuf` and `speedup` are
 * null until the dmabuf side is plugged in. `speedup > 1` means dmabuf did better: for metrics
 * where lower is better it is `baselineValue / dmabuf`, otherwise `dmabuf / baselineValue`.
 */
export interface Result {
  bench: string;
  metric: string;
  unit: string;
  dmabuf: number | null;
  baseline: string;
  baselineValue: number;
  speedup: number | null;
}

/** The speedup of dmabuf over a baseline (> 1: dmabuf better). */
export function speedup(better: Better, dmabuf: number, baseline: number): number {
  return better === 'lower' ? baseline / dmabuf : dmabuf / baseline;
}

/** Rounds to 4 significant digits for printing; keeps non-finite values as they are. */
export function round(x: number, digits = 4): number {
  return Number.isFinite(x) && x !== 0 ? Number(x.toPrecision(digits)) : x;
}

export interface CompareSpec<O, R> {
  /** Name in results, e.g. `'fence-wake'` or `'pipeline/1080p'`. */
  bench: string;
  options: O;
  metrics: readonly Metric<R>[];
  baselines: readonly Side<O, R>[];
  /** The dmabuf sides (usually zero or one). With several, each one's results are named
   * `bench:sideName`. */
  dmabuf: readonly Side<O, R>[];
  /** Rounds over all sides (default 1). With more, the sides run interleaved (A B C A B C ...),
   * so that a slow phase of a noisy machine hits them alike, and each metric is the median of
   * its per-round values. */
  repeat?: number;
  run: RunOptions;
}

/**
 * Runs every baseline, then every dmabuf side, one after another with the same options,
 * `repeat` times over, and returns one {@link Result} per (dmabuf side, metric, baseline). With
 * no dmabuf side the results carry `dmabuf: null`, so baselines are reported on their own.
 */
export async function compare<O, R>(spec: CompareSpec<O, R>): Promise<Result[]> {
  const sides = [...spec.baselines, ...spec.dmabuf];
  const repeat = Math.max(1, spec.run.repeat ?? spec.repeat ?? 1);
  // values[side][metric] = one value per round
  const values = sides.map(() => spec.metrics.map((): number[] => []));
  for (let r = 0; r < repeat; r++) {
    for (const [i, side] of sides.entries()) {
      spec.run.log(`  ${spec.bench}: ${side.name}${repeat > 1 ? ` (${r + 1}/${repeat})` : ''}`);
      const raw = await side.run(spec.options);
      for (const [j, m] of spec.metrics.entries()) values[i]![j]!.push(m.value(raw));
    }
  }
  const value = (i: number, j: number): number => median(values[i]![j]!);
  const nb = spec.baselines.length;
  const ours: (number | null)[] =
    spec.dmabuf.length === 0 ? [null] : spec.dmabuf.map((_, k) => nb + k);
  const out: Result[] = [];
  for (const d of ours) {
    const bench = spec.dmabuf.length > 1 ? `${spec.bench}:${sides[d!]!.name}` : spec.bench;
    for (const [j, m] of spec.metrics.entries()) {
      const dv = d === null ? null : value(d, j);
      for (const [i, b] of spec.baselines.entries()) {
        const bv = value(i, j);
        out.push({
          bench,
          metric: m.metric,
          unit: m.unit,
          dmabuf: dv === null ? null : round(dv),
          baseline: b.name,
          baselineValue: round(bv),
          speedup: dv === null ? null : round(speedup(m.better, dv, bv), 3),
        });
      }
    }
  }
  return out;
}

/**
 * Loads the optional dmabuf side(s) of bench `name` from `./<name>.dmabuf.js` beside this file.
 * Returns `[]` when that file does not exist; any failure to load an existing one (a missing
 * import inside it, an exception at its top level) propagates. The module exports `dmabuf`: one {@link Side} or an array of them.
 */
export async function loadDmabufSides<O, R>(name: string): Promise<Side<O, R>[]> {
  const url = new URL(`./${name}.dmabuf.js`, import.meta.url);
  if (!existsSync(url)) return [];
  const mod = (await import(url.href)) as { dmabuf?: Side<O, R> | readonly Side<O, R>[] };
  const d = mod.dmabuf;
  if (d === undefined) throw new Error(`${fileURLToPath(url)} does not export 'dmabuf'`);
  const sides: Side<O, R>[] = Array.isArray(d) ? [...d] : [d as Side<O, R>];
  for (const side of sides) {
    if (typeof side?.name !== 'string' || typeof side.run !== 'function') {
      throw new Error(
        `${fileURLToPath(url)}: 'dmabuf' must be a Side ({ name, run }) or an array of them`,
      );
    }
  }
  return sides;
}

// ---- benches ---------------------------------------------------------------------------------

/** A benchmark module, registered in `bench/run.ts`. */
export interface Bench {
  /** Name used to select it on the command line (`node dist/bench/run.js fence-wake`). */
  readonly name: string;
  /** One line saying what it measures. */
  readonly description: string;
  run(opts: RunOptions): Promise<Result[]>;
}

// ---- output ----------------------------------------------------------------------------------

/** The JSON line of one result, keys in the documented order. */
export function formatResult(r: Result): string {
  return JSON.stringify({
    bench: r.bench,
    metric: r.metric,
    unit: r.unit,
    dmabuf: r.dmabuf,
    baseline: r.baseline,
    baselineValue: r.baselineValue,
    speedup: r.speedup,
  });
}

/** Prints one result as one JSON line on stdout. */
export function report(
  r: Result,
  write: (s: string) => void = (s) => process.stdout.write(s),
): void {
  write(`${formatResult(r)}\n`);
}

/** The results as an aligned text table (one row per result). */
export function formatTable(results: readonly Result[]): string {
  const head = ['bench', 'metric', 'unit', 'dmabuf', 'baseline', 'baseline value', 'speedup'];
  const rows = results.map((r) => [
    r.bench,
    r.metric,
    r.unit,
    r.dmabuf === null ? '-' : fmt(r.dmabuf),
    r.baseline,
    fmt(r.baselineValue),
    r.speedup === null ? '-' : `${fmt(r.speedup)}x`,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const numeric = [false, false, false, true, false, true, true];
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(width[i]!) : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(width.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Prints {@link formatTable} on stdout. */
export function printTable(results: readonly Result[], title?: string): void {
  if (title !== undefined) process.stdout.write(`\n## ${title}\n`);
  process.stdout.write(`${formatTable(results)}\n`);
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e5) return x.toFixed(0);
  if (a >= 100) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

// ---- single-thread ns/op benches -------------------------------------------------------------

/** Raw result of an ns/op side: one nanoseconds-per-operation figure per timed batch. */
export type NsPerOpRaw = Float64Array;

/** The metrics of an ns/op bench: the median batch, and the best one (least disturbed). */
export const NS_PER_OP_METRICS: readonly Metric<NsPerOpRaw>[] = [
  { metric: 'p50', unit: 'ns/op', better: 'lower', value: (s) => median(s) },
  { metric: 'min', unit: 'ns/op', better: 'lower', value: (s) => percentile(s, 0) },
];
