/**
 * Generative bad-input fuzzing: a bounded fast-check run (`_run.ts`) of random calls, receivers
 * and arguments on one world per episode. `FUZZ_SECONDS` (default 3) bounds it; `FUZZ_SEED`
 * replays a seed. The longer run is `npm run fuzz -- --seconds N [--seed S]`.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configureSystemHeap } from '../../src/index.js';
import { runGenerative } from './_run.js';

const seconds = Number(process.env['FUZZ_SECONDS'] ?? 3);
const seed = process.env['FUZZ_SEED'] === undefined ? undefined : Number(process.env['FUZZ_SEED']);

describe('fuzz: generative', () => {
  it(`random calls with random bad arguments for ${seconds} s stay DmaBufErrors and healthy`, async () => {
    const old = configureSystemHeap({ maxBytes: 1 << 24 });
    try {
      const r = await runGenerative({ seconds, seed });
      const report = r.stats.failures.map((f) => `${f.row}: ${f.problem}`);
      assert.deepEqual(
        report,
        [],
        `seeds ${r.seeds.join(', ')} (replay: FUZZ_SEED=<seed> or npm run fuzz -- --seed <seed>)`,
      );
      assert.ok(r.stats.total > 1000, `only ${r.stats.total} calls`);
    } finally {
      configureSystemHeap(old);
    }
  });
});
