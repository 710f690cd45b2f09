/**
 * A short run of the load tool (tools/stress/stress.ts): the main thread and two workers hammer
 * shared buffers, fences and locks for two seconds, then every invariant the tool checks must
 * hold. `npm run stress -- --seconds N` runs the same code for longer.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runStress } from '../../tools/stress/stress.js';

const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 1_000_000);

describe('load', () => {
  it('two seconds of every thread hammering shared buffers, fences and locks break nothing', async (t) => {
    const lines: string[] = [];
    const r = await runStress({ seconds: 2, workers: 2, seed, log: (l) => lines.push(l) });
    const all = Object.values(r.totals).reduce((a, b) => a + b, 0);
    t.diagnostic(
      `seed ${seed}: ${all} operations in ${r.seconds.toFixed(1)} s (${(all / r.seconds).toFixed(0)}/s)`,
    );
    assert.deepEqual(r.violations, [], `seed ${seed}:\n${lines.join('\n')}`);
    for (const k of ['lock', 'fence', 'signal', 'map', 'vmap', 'ref'])
      assert.ok(r.totals[k]! > 0, `no ${k} operation ran`);
  });
});
