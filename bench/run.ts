/**
 * Runs the benchmarks: `node dist/bench/run.js [--quick] [name ...]`.
 *
 * With names, only the benches whose name starts with one of them run (`fence-wake`, `pipeline`).
 * Progress goes to stderr; stdout gets one table per bench, then every result as one JSON line
 * (`{"bench",…,"speedup"}`, see `_harness.ts`). `BENCH_QUICK=1` or `--quick` scales every count
 * down about 10x for a smoke run.
 */

import { type Bench, printTable, type Result, report, runOptions } from './_harness.js';
import { bufBench } from './buf.bench.js';
import { bufferShare } from './buffer-share.js';
import { debugCost } from './debug-cost.js';
import { fenceSignal } from './fence-signal.js';
import { fenceWake } from './fence-wake.js';
import { pipelineBenches } from './pipeline.js';
import { resvContended } from './resv.bench.js';
import { resvLock } from './resv-lock.js';

/** Every bench, in the order they run. */
export const BENCHES: readonly Bench[] = [
  fenceWake,
  fenceSignal,
  resvLock,
  resvContended,
  bufferShare,
  bufBench,
  ...pipelineBenches,
  debugCost,
];

async function main(argv: readonly string[]): Promise<void> {
  const quick = argv.includes('--quick') ? true : undefined;
  const names = argv.filter((a) => !a.startsWith('--'));
  const selected =
    names.length === 0 ? BENCHES : BENCHES.filter((b) => names.some((n) => b.name.startsWith(n)));
  if (selected.length === 0) {
    throw new Error(
      `no bench matches ${names.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}`,
    );
  }
  const opts = runOptions({ quick });
  const all: Result[] = [];
  for (const b of selected) {
    opts.log(`${b.name}: ${b.description}${opts.quick ? ' (quick)' : ''}`);
    const t0 = performance.now();
    const results = await b.run(opts);
    opts.log(`${b.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    printTable(results, b.name);
    all.push(...results);
  }
  process.stdout.write('\n');
  for (const r of all) report(r);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
