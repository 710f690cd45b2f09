import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runOptions } from './_harness.js';
import { wakeRepeat } from './fence-wake.js';
import { FRAME_SIZES, pipelineOptions } from './pipeline.js';

const size = (label: string) => FRAME_SIZES.find((s) => s.label === label)!;

test('pipeline warm-up: the size default, the frame-count rule when quick, BENCH_WARMUP over both', () => {
  const saved = { warmup: process.env['BENCH_WARMUP'], frames: process.env['BENCH_FRAMES'] };
  delete process.env['BENCH_WARMUP'];
  delete process.env['BENCH_FRAMES'];
  try {
    const full = runOptions({ quick: false, log: () => {} });
    const quick = runOptions({ quick: true, log: () => {} });
    assert.equal(pipelineOptions(full, size('1080p')).warmup, 2000);
    assert.equal(pipelineOptions(full, size('1080p')).frames, 400);
    // 32 MiB has no size default: as many as the timed frames.
    assert.equal(pipelineOptions(full, size('32MiB')).warmup, 40);
    // Quick: a tenth of the frames, and as many warm-up frames (at least 2).
    assert.equal(pipelineOptions(quick, size('1080p')).frames, 40);
    assert.equal(pipelineOptions(quick, size('1080p')).warmup, 40);
    assert.equal(pipelineOptions(quick, size('32MiB')).warmup, 8);
    process.env['BENCH_WARMUP'] = '7';
    assert.equal(pipelineOptions(full, size('1080p')).warmup, 7);
    assert.equal(pipelineOptions(quick, size('64KiB')).warmup, 7);
  } finally {
    for (const [k, v] of [
      ['BENCH_WARMUP', saved.warmup],
      ['BENCH_FRAMES', saved.frames],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('fence-wake repeats 5 interleaved rounds, 1 when quick', () => {
  assert.equal(wakeRepeat(runOptions({ quick: false, log: () => {} })), 5);
  assert.equal(wakeRepeat(runOptions({ quick: true, log: () => {} })), 1);
});
