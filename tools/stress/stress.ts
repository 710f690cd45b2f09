/**
 * The load tool: every thread — the main thread and W workers — hammers shared buffers, fences
 * and locks (hammer.ts) for a bounded time, then each undoes what it holds and the main thread
 * checks that everything is back where it started (swarm.ts). Prints operations per second per
 * kind and every invariant broken; exits 1 if any was. Stops by itself.
 *
 * ```sh
 * npm run stress -- --seconds 10 [--workers 3] [--seed 42] [--hold-ms 2]
 * ```
 *
 * `runStress` is the same run as a function (the test suite runs a short one).
 */

import { pathToFileURL } from 'node:url';
import { KINDS } from './hammer.js';
import { Swarm } from './swarm.js';

export interface StressOptions {
  seconds: number;
  workers: number;
  seed: number;
  /** Longest a lock is held on purpose (ms). */
  holdMs?: number;
  /** Called with each line of the report. */
  log?: (line: string) => void;
}

export interface StressResult {
  ok: boolean;
  seconds: number;
  totals: Record<string, number>;
  violations: string[];
  leaks: Record<string, number>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One bounded load run. Never throws for a broken invariant: it is in the result. */
export async function runStress(opts: StressOptions): Promise<StressResult> {
  const log = opts.log ?? (() => {});
  const sw = new Swarm({ workers: opts.workers, seed: opts.seed, holdMs: opts.holdMs });
  log(`stress: ${opts.workers} workers + the main thread, ${opts.seconds} s, seed ${opts.seed}`);
  await sw.start();
  const end = performance.now() + opts.seconds * 1000;
  // Watch that every worker keeps making progress (a stuck lock or lost wake-up shows here).
  let last = new Map(sw.slots().map((s) => [s, sw.progress(s)]));
  let lastAt = performance.now();
  while (performance.now() < end) {
    await sleep(Math.min(250, Math.max(1, end - performance.now())));
    if (performance.now() - lastAt >= 5000) {
      for (const s of sw.slots()) {
        if (sw.progress(s) === last.get(s))
          sw.violations.push(`worker ${s} made no progress for 5 s`);
      }
      last = new Map(sw.slots().map((s) => [s, sw.progress(s)]));
      lastAt = performance.now();
    }
  }
  await sw.stop();
  const totals = sw.totals();
  const secs = sw.elapsedMs / 1000;
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  const w = Math.max(...KINDS.map((k) => k.length));
  log(`${'kind'.padEnd(w)}  ${'ops'.padStart(10)}  ${'ops/s'.padStart(10)}`);
  for (const k of KINDS) {
    log(
      `${k.padEnd(w)}  ${String(totals[k]).padStart(10)}  ${(totals[k]! / secs).toFixed(0).padStart(10)}`,
    );
  }
  log(`${'total'.padEnd(w)}  ${String(all).padStart(10)}  ${(all / secs).toFixed(0).padStart(10)}`);
  const leaks = sw.leaks();
  log(`shared-table slots left (fence/resv: views of exited workers): ${JSON.stringify(leaks)}`);
  for (const l of sw.refLeaks) log(`leaked reference (known window, docs/reliability.md): ${l}`);
  for (const v of sw.violations) log(`BROKEN: ${v}`);
  log(
    sw.violations.length === 0
      ? 'stress: no invariant broken'
      : `stress: ${sw.violations.length} broken`,
  );
  return {
    ok: sw.violations.length === 0,
    seconds: secs,
    totals,
    violations: sw.violations,
    leaks,
  };
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`stress: --${name} needs a non-negative number`);
    process.exit(2);
  }
  return v;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seconds = arg('seconds', 5);
  const opts: StressOptions = {
    seconds,
    workers: Math.max(1, Math.floor(arg('workers', 3))),
    seed: Math.floor(arg('seed', Date.now() % 1_000_000)),
    holdMs: arg('hold-ms', 2),
    log: (l) => console.log(l),
  };
  // It stops by itself; this is the backstop should a thread never answer the stop.
  const guard = setTimeout(
    () => {
      console.error('stress: did not stop in time (a thread is stuck)');
      process.exit(1);
    },
    (seconds + 60) * 1000,
  );
  guard.unref();
  const r = await runStress(opts);
  process.exitCode = r.ok ? 0 : 1;
}
