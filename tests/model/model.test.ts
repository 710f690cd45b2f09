/**
 * Model-based randomized tests, one thread: seeded random sequences of buffer, attachment,
 * mapping, CPU-access, vmap, poll, fence, reservation and sync-file operations, each answer and
 * the shared state after each step checked against a reference model (tests/model/_model.ts).
 * A failure prints its seed and a shrunk sequence; `DMABUF_SEED=n` replays case n alone.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeFailure, Env, runCase, shrink } from './_runner.js';

const fixed = process.env.DMABUF_SEED !== undefined;
const base = fixed ? Number(process.env.DMABUF_SEED) : Date.now() % 1_000_000;
const CASES = fixed ? 1 : Number(process.env.MODEL_CASES ?? 40);
const STEPS = Number(process.env.MODEL_STEPS ?? 60);

describe('model-based sequences in one thread', () => {
  it(`${CASES} seeded sequences of ${STEPS} steps agree with the reference model`, async (t) => {
    const env = new Env(0);
    let steps = 0;
    let checks = 0;
    try {
      for (let i = 0; i < CASES; i++) {
        const seed = base + i;
        const r = await runCase(env, seed, { steps: STEPS, kills: false });
        steps += r.steps - r.skipped;
        checks = r.checks;
        if (r.failure !== null) {
          const s = await shrink(env, seed, r, 20_000);
          assert.fail(describeFailure(s.failure!, s.ops));
        }
      }
    } finally {
      await env.stop();
    }
    t.diagnostic(`seeds ${base}..${base + CASES - 1}: ${steps} steps, ${checks} audits`);
  });
});
