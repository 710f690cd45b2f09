/**
 * Model-based randomized tests across real workers: the same operations as model.test.ts, each
 * run in a random thread — the main thread or one of three workers executing what the test sends
 * (tests/fixtures/model-worker.ts) — so that references, descriptors, attachments, mappings, vmaps,
 * fences, waiters and sync files cross threads; exporters are thread-bound (ops forwarded home) or
 * shared (ops rebuilt in each thread). Workers are also killed between steps and replaced: the
 * model says what the domain must then have done for the dead thread, and the audit checks it
 * before the thread index can be reused. A failure prints its seed and a shrunk sequence;
 * `DMABUF_SEED=n` replays case n alone.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeFailure, Env, runCase, shrink } from './_runner.js';

const fixed = process.env.DMABUF_SEED !== undefined;
const base = fixed ? Number(process.env.DMABUF_SEED) : Date.now() % 1_000_000;
const CASES = fixed ? 1 : Number(process.env.MODEL_CASES ?? 16);
const STEPS = Number(process.env.MODEL_STEPS ?? 80);
const WORKERS = 3;

describe('model-based sequences across worker threads', () => {
  it(`${CASES} seeded sequences of ${STEPS} steps over ${WORKERS} workers and the main thread, with kills`, async (t) => {
    const env = new Env(WORKERS);
    let steps = 0;
    let kills = 0;
    let checks = 0;
    try {
      for (let i = 0; i < CASES; i++) {
        const seed = base + i;
        const r = await runCase(env, seed, { steps: STEPS, kills: true });
        steps += r.steps - r.skipped;
        kills += r.kills;
        checks = r.checks;
        if (r.failure !== null) {
          const s = await shrink(env, seed, r, 30_000);
          assert.fail(describeFailure(s.failure!, s.ops));
        }
      }
    } finally {
      await env.stop();
    }
    t.diagnostic(
      `seeds ${base}..${base + CASES - 1}: ${steps} steps, ${kills} kills, ${checks} audits`,
    );
  });
});
