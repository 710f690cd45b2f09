// Sync files and sw_sync timelines across real Worker threads: scripted hand-offs, the kernel's
// multi-threaded sync selftests (sync_stress_parallelism, sync_stress_consumer) scaled down, a
// seeded random stress, and thread exit signaling a dead owner's points with -ENOENT.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Domain, SyncFile, type SyncFileDescriptor } from '../src/index.js';
import { SwSyncTimeline } from '../src/testing/index.js';
import { prng, type Rpc, rpc } from './_rpc.js';

const workerUrl = new URL('./fixtures/sync-worker.js', import.meta.url);

function check<T extends { err?: string }>(r: T): T {
  if (r.err !== undefined) assert.fail(`worker: ${r.err}`);
  return r;
}

describe('sync files across worker threads', () => {
  let a: Rpc;
  let b: Rpc;
  let c: Rpc;
  before(() => {
    const d = Domain.current();
    a = rpc(d.spawn(workerUrl));
    b = rpc(d.spawn(workerUrl));
    c = rpc(d.spawn(workerUrl));
  });
  after(async () => {
    await Promise.all([a, b, c].map((w) => w.worker.terminate()));
  });

  it('a sw_sync point posted to workers wakes a blocking and an async waiter when main increments', async () => {
    using tl = new SwSyncTimeline('main-tl');
    const file = tl.createFence(5);
    const wa = a.stream('wait', { file: file.share(), mode: 'sync' });
    const wb = b.stream('wait', { file: file.share(), mode: 'async' });
    assert.equal(check(await wa(0)).before, false);
    assert.equal(check(await wb(0)).before, false);
    tl.inc(4);
    assert.equal(file.poll(), false);
    tl.inc(1);
    const [ra, rb] = [check(await wa(1)), check(await wb(1))];
    for (const r of [ra, rb]) {
      assert.ok(r.r >= 1);
      assert.equal(r.status, 1);
      assert.equal(r.info.status, 1);
      assert.equal(r.info.fences[0].driverName, 'sw_sync');
      assert.equal(r.info.fences[0].objName, 'main-tl');
      assert.equal(r.ts, file.fence.timestamp, 'one timestamp in every thread');
    }
  });

  it('a merged sync file over two workers’ timelines signals only after both advance', async () => {
    await Promise.all([a.call('timeline', { name: 'tl-a' }), b.call('timeline', { name: 'tl-b' })]);
    const fa = SyncFile.fromShared(check(await a.call('points', { values: [3] })).files[0]);
    const fb = SyncFile.fromShared(check(await b.call('points', { values: [7] })).files[0]);
    const merged = SyncFile.merge('ab', fa, fb);
    assert.equal(merged.info().numFences, 2);
    const waiter = c.stream('wait', { file: merged.share(), mode: 'sync' });
    await waiter(0);
    const here = merged.wait(10_000);
    check(await a.call('inc', { n: 3 }));
    const mid = merged.info({ numFences: 2 });
    // Members are ordered by context, and the two timelines were made concurrently.
    assert.deepEqual(mid.fences!.map((f) => [f.objName, f.status]).sort(), [
      ['tl-a', 1],
      ['tl-b', 0],
    ]);
    assert.equal(mid.status, 0);
    assert.equal(merged.poll(), false);
    check(await b.call('inc', { n: 7 }));
    assert.ok((await here) >= 1);
    const w = check(await waiter(1));
    assert.ok(w.r >= 1);
    assert.equal(w.info.status, 1);
    assert.equal(w.info.name, 'ab', 'the merge name travels with the file');
    assert.deepEqual(
      w.info.fences.map((f: { status: number }) => f.status),
      [1, 1],
    );
  });

  it('sync_stress_parallelism: two workers take turns on one timeline, counting in lock step', async () => {
    using tl = new SwSyncTimeline('shared');
    const iterations = 200; // the kernel does 1 << 16
    const counter = new SharedArrayBuffer(4);
    const files = (t: number): SyncFileDescriptor[] =>
      Array.from({ length: iterations }, (_, i) => tl.createFence(i * 2 + t).share());
    const onInc = (m: { inc?: number }): void => {
      if (m.inc !== undefined) tl.inc(m.inc);
    };
    a.worker.on('message', onInc);
    b.worker.on('message', onInc);
    try {
      const [ra, rb] = await Promise.all([
        a.call('parallel', { files: files(0), counter, t: 0 }),
        b.call('parallel', { files: files(1), counter, t: 1 }),
      ]);
      check(ra);
      check(rb);
      assert.equal(new Int32Array(counter)[0], iterations * 2);
      assert.equal(tl.value, iterations * 2);
    } finally {
      a.worker.off('message', onInc);
      b.worker.off('message', onInc);
    }
  });

  it('sync_stress_consumer: producers in workers, the consumer here waits on merged files', async () => {
    const iterations = 64; // the kernel does 1 << 12 with 5 producers
    const producers = [a, b, c];
    const n = producers.length;
    using consumer = new SwSyncTimeline('consumer');
    const counter = new SharedArrayBuffer(4);
    const count = new Int32Array(counter);
    await Promise.all(producers.map((p, i) => p.call('timeline', { name: `producer-${i}` })));
    // Every producer's points 1..iterations, made by their owners up front.
    const values = Array.from({ length: iterations }, (_, i) => i + 1);
    const points: SyncFile[][] = [];
    for (const p of producers) {
      const { files } = check(await p.call('points', { values }));
      points.push(files.map((f: SyncFileDescriptor) => SyncFile.fromShared(f)));
    }
    const runs = producers.map((p, i) =>
      p.call('producer', {
        producer: i,
        counter,
        files: Array.from({ length: iterations }, (_, k) => consumer.createFence(k).share()),
      }),
    );
    for (let it = 1; it <= iterations; it++) {
      let fence = points[0]![it - 1]!;
      for (let i = 1; i < n; i++) fence = SyncFile.merge('name', points[i]![it - 1]!, fence);
      // A producer may already have passed point `it`: signaled parts are dropped by the merge.
      assert.ok(fence.info().numFences <= n);
      if (it % 8 !== 0) {
        assert.ok((await fence.wait(10_000)) > 0, 'producers did not increment as expected');
      } else {
        const deadline = performance.now() + 10_000;
        while (!fence.poll()) {
          assert.ok(
            performance.now() < deadline,
            `iteration ${it}: the merged fence never polled ready`,
          );
          await new Promise((r) => setImmediate(r));
        }
        assert.equal(fence.info().status, 1);
      }
      assert.equal(Atomics.load(count, 0), n * it, 'counter value mismatch');
      consumer.inc(1);
    }
    for (const r of await Promise.all(runs)) check(r);
  });

  it('seeded stress: merged files over several workers’ timelines wake waiters in other workers', async () => {
    const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 100_000);
    const rnd = prng(seed);
    const ws = [a, b, c];
    try {
      await Promise.all(ws.map((w, i) => w.call('timeline', { name: `stress-${i}` })));
      const value = [0, 0, 0];
      for (let round = 0; round < 12; round++) {
        // Points ahead on every timeline, made by their owners.
        const pts: { w: number; v: number; file: SyncFile }[] = [];
        for (let w = 0; w < ws.length; w++) {
          const values = Array.from(
            { length: 1 + Math.floor(rnd() * 3) },
            () => value[w]! + 1 + Math.floor(rnd() * 20),
          );
          const { files } = check(await ws[w]!.call('points', { values }));
          files.forEach((f: SyncFileDescriptor, k: number) => {
            pts.push({ w, v: values[k]!, file: SyncFile.fromShared(f) });
          });
        }
        // Random merges, each waited on by a random worker (asynchronously: the waiter must stay
        // free to advance its own timeline) and here.
        const merges: { parts: typeof pts; file: SyncFile }[] = [];
        for (let k = 0; k < 3; k++) {
          const parts = pts.filter(() => rnd() < 0.5);
          if (parts.length === 0) parts.push(pts[0]!);
          let file = parts[0]!.file;
          for (const p of parts.slice(1)) file = SyncFile.merge(`m${round}.${k}`, p.file, file);
          merges.push({ parts, file });
        }
        const waits = merges.map((m) => {
          const w = ws[Math.floor(rnd() * ws.length)]!;
          return w.stream('wait', { file: m.file.share(), mode: 'async' });
        });
        for (const w of waits) await w(0);
        const local = merges.map((m) => m.file.wait(10_000));
        const target = pts.reduce(
          (t, p) => {
            t[p.w] = Math.max(t[p.w]!, p.v);
            return t;
          },
          [...value],
        );
        // Advance the timelines in random steps; a merge may only signal once all its parts
        // have been passed.
        while (value.some((v, w) => v < target[w]!)) {
          const w = Math.floor(rnd() * ws.length);
          if (value[w]! >= target[w]!) continue;
          const step = 1 + Math.floor(rnd() * 6);
          check(await ws[w]!.call('inc', { n: step }));
          value[w] = value[w]! + step;
          for (const m of merges) {
            const due = m.parts.every((p) => p.v <= value[p.w]!);
            if (!due) assert.equal(m.file.poll(), false, 'a merge signaled before its parts');
          }
        }
        for (const l of local) assert.ok((await l) >= 1);
        for (const w of waits) {
          const r = check(await w(1));
          assert.ok(r.r >= 1);
          assert.equal(r.info.status, 1);
        }
      }
      // Closing a timeline fails the merges holding its pending points with -ENOENT.
      const { files } = check(await a.call('points', { values: [value[0]! + 5] }));
      const { files: fb } = check(await b.call('points', { values: [value[1]! + 5] }));
      const merged = SyncFile.merge(
        'doomed',
        SyncFile.fromShared(files[0]),
        SyncFile.fromShared(fb[0]),
      );
      const waiter = c.stream('wait', { file: merged.share(), mode: 'sync' });
      await waiter(0);
      check(await a.call('destroy'));
      check(await b.call('inc', { n: 5 }));
      const r = check(await waiter(1));
      assert.equal(r.status, -2);
      assert.equal(r.info.status, -2);
      assert.equal(merged.fence.getStatus(), -2);
    } catch (e) {
      console.error(`seeded sync stress failed with seed ${seed} (DMABUF_SEED=${seed})`);
      throw e;
    }
  });
});

describe('thread exit', () => {
  it("a worker's exit signals its pending sw_sync points with -ENOENT everywhere", async () => {
    const d = Domain.current();
    const owner = rpc(d.spawn(workerUrl));
    const waiter = rpc(d.spawn(workerUrl));
    try {
      check(await owner.call('timeline', { name: 'doomed' }));
      const { files } = check(await owner.call('points', { values: [1, 5, 9] }));
      check(await owner.call('inc', { n: 1 }));
      const [done, p5, p9] = files.map((f: SyncFileDescriptor) => SyncFile.fromShared(f));
      const w = waiter.stream('wait', { file: p9.share(), mode: 'sync' });
      await w(0);
      const here = p5.wait(10_000);
      using local = new SwSyncTimeline('survivor');
      const mixed = SyncFile.merge('mixed', p9, local.createFence(1));
      const exited = new Promise((r) => owner.worker.once('exit', r));
      owner.worker.postMessage({ id: 0, op: 'exit' });
      await exited;
      assert.ok((await here) >= 1);
      assert.equal(done.info({ numFences: 1 }).fences![0]!.status, 1, 'signaled points keep 1');
      assert.equal(p5.info({ numFences: 1 }).fences![0]!.status, -2);
      assert.equal(p9.info().status, -2);
      assert.equal(p5.poll(), true);
      assert.equal(mixed.poll(), false, 'a merge with a live timeline still waits for it');
      local.inc(1);
      assert.equal(mixed.poll(), true);
      assert.equal(mixed.fence.getStatus(), -2, 'and then carries the dead point’s error');
      const r = check(await w(1));
      assert.ok(r.r >= 1);
      assert.equal(r.info.fences[0].status, -2);
    } finally {
      await waiter.worker.terminate();
      await owner.worker.terminate();
    }
  });
});
