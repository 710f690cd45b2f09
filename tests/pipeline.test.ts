// The demo pipeline end to end with real workers: every frame verified, nothing copied, every
// fence signaled, every buffer released; and the demo's command line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runPipeline } from '../examples/pipeline/pipeline.js';
import { createQueue, newTicket, TicketQueue } from '../examples/pipeline/queue.js';

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

  for (const spin of [0, 4096]) {
    it(`verifies every frame whether the stages spin on their queues or not (spin ${spin})`, async () => {
      const r = await runPipeline({
        frameBytes: 4096,
        frames: 30,
        warmup: 2,
        pool: 2,
        stages: 2,
        spin,
        settleMs: spin === 0 ? 0 : 10,
      });
      assert.equal(r.failures, 0);
      assert.equal(r.verified, 32);
      assert.equal(r.fencesSignaled, 32 * 4);
      assert.equal(r.leakedBuffers, 0);
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
    await assert.rejects(
      runPipeline({ frameBytes: 4096, frames: 1, warmup: 1, pool: 1, stages: 2, spin: -1 }),
      /spin/,
    );
    await assert.rejects(
      runPipeline({ frameBytes: 4096, frames: 1, warmup: 1, pool: 1, stages: 2, settleMs: 0.5 }),
      /settleMs/,
    );
  });
});

describe('the ticket queue between stages', () => {
  const WORKER = new URL('./fixtures/ticket-worker.js', import.meta.url);

  it('hands tickets over in order, whole, through a queue smaller than the stream', async () => {
    for (const spin of [0, 4096]) {
      const queue = createQueue(3);
      const count = 2000;
      const w = new Worker(WORKER, { workerData: { queue, count, spin } });
      const q = new TicketQueue(queue, spin);
      const t = newTicket();
      for (let k = 0; k < count; k++) {
        q.pop(t); // blocks this thread until the worker has pushed ticket k
        assert.deepEqual({ ...t }, { slot: k % 7, frame: k, t0: k * 1.5, sum: -k | 0 });
      }
      await once(w, 'exit');
    }
  });

  it('a worker pops and pushes back: nothing is lost or reordered when both ends block', async () => {
    const there = createQueue(2);
    const back = createQueue(2);
    const count = 1000;
    const w = new Worker(WORKER, { workerData: { queue: there, back, count, spin: 0 } });
    const out = new TicketQueue(there, 0);
    const input = new TicketQueue(back, 0);
    const t = newTicket();
    // Keep at most two tickets in flight each way: the queues are never overfilled.
    let popped = 0;
    for (let k = 0; k < count; k++) {
      out.push(1, k, k, k);
      if (k >= 1) {
        input.pop(t);
        assert.equal(t.frame, popped);
        assert.equal(t.sum, popped + 1);
        popped++;
      }
    }
    while (popped < count) {
      input.pop(t);
      assert.equal(t.frame, popped++);
    }
    await once(w, 'exit');
  });

  it('keeps order across the wrap of its 32-bit counters', () => {
    const queue = createQueue(3);
    const words = new Int32Array(queue);
    // TAIL (word 16) and HEAD (word 32) a few tickets before 2^32, as after ~4 billion tickets.
    words[16] = -2;
    words[32] = -2;
    const push = new TicketQueue(queue, 0);
    const pop = new TicketQueue(queue, 0);
    const t = newTicket();
    for (let k = 0; k < 20; k++) {
      push.push(k, k, k, k);
      if (k % 2 === 1) {
        assert.equal(pop.pop(t).frame, k - 1);
        assert.equal(pop.pop(t).frame, k);
      }
    }
    assert.equal(words[16], 18, 'the counters wrapped');
  });

  it('refuses memory that is not a queue and bad capacities', () => {
    assert.throws(() => new TicketQueue(new SharedArrayBuffer(1024), 0), /not a ticket queue/);
    assert.throws(() => createQueue(0), RangeError);
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
