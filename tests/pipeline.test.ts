// The demo pipeline end to end with real workers: every frame verified, nothing copied, every
// fence signaled, every buffer released; and the demo's command line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runPipeline } from '../examples/pipeline/pipeline.js';

describe('the dmabuf pipeline', () => {
  for (const handoff of ['late', 'early'] as const) {
    it(`moves every frame through three stages without a copy (${handoff} hand-off)`, async () => {
      const frames = 40;
      const warmup = 4;
      const r = await runPipeline({
        frameBytes: 64 * 1024,
        frames,
        warmup,
        pool: 3,
        stages: 3,
        handoff,
        bufinfoAt: 20,
      });
      assert.equal(r.failures, 0);
      assert.equal(r.verified, frames + warmup);
      assert.equal(r.messageBytes, 0, 'no frame bytes in messages');
      assert.equal(r.fencesSignaled, (frames + warmup) * 5, 'one fence per stage per frame');
      assert.equal(r.latencies.length, frames);
      for (const l of r.latencies) assert.ok(l > 0);
      assert.equal(r.leakedBuffers, 0, 'every buffer released');
      assert.match(r.bufinfo ?? '', /Dma-buf Objects:/);
      assert.match(r.bufinfo ?? '', /Attached Devices:\n(\t.*\n)*\tconsumer/);
    });
  }

  it('a pool of one buffer serializes the pipeline and still verifies every frame', async () => {
    const r = await runPipeline({ frameBytes: 4096, frames: 10, warmup: 1, pool: 1, stages: 2 });
    assert.equal(r.failures, 0);
    assert.equal(r.verified, 11);
  });

  it('rejects a bad configuration with a clear error', async () => {
    await assert.rejects(
      runPipeline({ frameBytes: 100, frames: 1, warmup: 1, pool: 1, stages: 2 }),
      /multiple of 256/,
    );
    await assert.rejects(
      runPipeline({ frameBytes: 4096, frames: 1, warmup: 1, pool: 0, stages: 2 }),
      /pool/,
    );
    await assert.rejects(
      runPipeline({ frameBytes: 4096, frames: 1, warmup: 1, pool: 1, stages: 1 }),
      /stages/,
    );
  });
});

describe('the demo command line', () => {
  const demo = fileURLToPath(new URL('../examples/demo.js', import.meta.url));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [demo, ...args], { encoding: 'utf8', timeout: 60_000 });

  it('runs a short pipeline and prints the summary', () => {
    const r = run(
      '--frame-size',
      '64x64',
      '--frames',
      '30',
      '--warmup',
      '2',
      '--pool',
      '2',
      '--stages',
      '3',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /frames verified +32 of 32, 0 failed/);
    assert.match(r.stdout, /bytes copied +0 /);
    assert.match(r.stdout, /fences signaled +160/);
    assert.match(r.stdout, /latency p50 \/ p99/);
    assert.match(r.stdout, /Dma-buf Objects:/);
  });

  it('explains its options and refuses bad ones', () => {
    assert.match(run('--help').stdout, /--frame-size/);
    for (const bad of [
      ['--frames', 'x'],
      ['--frame-size', '100'],
      ['--pool', '0'],
      ['--bogus'],
      ['--handoff', 'sideways'],
    ]) {
      const r = run(...bad);
      assert.equal(r.status, 2, `${bad.join(' ')} → ${r.status}`);
      assert.match(r.stderr, /^error: /);
    }
  });
});

describe('the examples', () => {
  const run = (file: string, ...args: string[]) =>
    spawnSync(
      process.execPath,
      [fileURLToPath(new URL(`../examples/${file}`, import.meta.url)), ...args],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );

  it("share-buffer: main reads the worker's bytes only after its fence (the README's example)", () => {
    const r = run('share-buffer.js');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'main reads 42, 42 (written by the worker)');
  });

  it('fences: one worker signals, another waits, main sees every status', () => {
    const r = run('fences.js', '5');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /fence 5 status -125/);
    assert.match(r.stdout, /main saw all 5 fences signal/);
  });
});
