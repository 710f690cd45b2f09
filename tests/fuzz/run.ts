/**
 * The long bad-input fuzz run: `npm run fuzz -- --seconds N [--seed S] [--no-table] [--no-debug]`.
 *
 * Runs the table once (every entry point with every bad value; skip with `--no-table`), then
 * generative fast-check episodes for N seconds (default 30) from seed S (default random). Prints
 * the calls tried per entry point, the totals, and every failure with the seed that replays it;
 * exits 1 when anything failed. Debug mode (lockdep-lite) is on unless `--no-debug`.
 */

import { setDmaBufDebug } from '../../src/buf/debug.js';
import { configureSystemHeap } from '../../src/index.js';
import { runGenerative, runTable, Stats } from './_run.js';
import { ENTRIES } from './_surface.js';

function arg(name: string): string | undefined {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

function flag(name: string): boolean {
  return process.argv.slice(2).includes(`--${name}`);
}

async function main(): Promise<number> {
  const seconds = Number(arg('seconds') ?? 30);
  const seedArg = arg('seed');
  const seed = seedArg === undefined ? undefined : Number(seedArg);
  if (!(seconds > 0) || (seed !== undefined && !Number.isInteger(seed))) {
    process.stderr.write(
      'usage: npm run fuzz -- --seconds N [--seed S] [--steps K] [--no-table] [--no-debug]\n',
    );
    return 2;
  }
  setDmaBufDebug(!flag('no-debug'));
  configureSystemHeap({ maxBytes: 1 << 24 });
  const t0 = performance.now();
  let table = new Stats();
  if (!flag('no-table')) {
    process.stderr.write(`table: ${ENTRIES.length} entry points…\n`);
    table = await runTable();
  }
  const t1 = performance.now();
  process.stderr.write(`generative: ${seconds} s${seed !== undefined ? `, seed ${seed}` : ''}…\n`);
  const steps = arg('steps') === undefined ? undefined : Number(arg('steps'));
  const gen = await runGenerative({ seconds, seed, steps });
  const t2 = performance.now();

  const names = ENTRIES.map((e) => e.name);
  const width = Math.max(...names.map((n) => n.length));
  process.stdout.write(
    `\n${'entry point'.padEnd(width)}  ${'table'.padStart(7)}  ${'random'.padStart(8)}\n`,
  );
  for (const n of names) {
    const a = table.calls.get(n) ?? 0;
    const b = gen.stats.calls.get(n) ?? 0;
    process.stdout.write(
      `${n.padEnd(width)}  ${String(a).padStart(7)}  ${String(b).padStart(8)}\n`,
    );
  }
  const covered = names.filter(
    (n) => (table.calls.get(n) ?? 0) + (gen.stats.calls.get(n) ?? 0) > 0,
  );
  const failures = [...table.failures, ...gen.stats.failures];
  const summary = {
    entryPoints: names.length,
    covered: covered.length,
    tableCalls: table.total,
    tableSeconds: Number(((t1 - t0) / 1000).toFixed(1)),
    randomCalls: gen.stats.total,
    randomEpisodes: gen.episodes,
    randomSeconds: Number(((t2 - t1) / 1000).toFixed(1)),
    seeds: gen.seeds,
    failures: failures.length,
  };
  process.stdout.write(`\n${JSON.stringify(summary)}\n`);
  for (const f of failures) process.stdout.write(`\nFAIL ${f.entry} [${f.row}]\n${f.problem}\n`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Waits the fuzzer left behind (timers of aborted calls) must not keep the run alive.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
