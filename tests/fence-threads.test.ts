// Fences across real Worker threads: scripted scenarios, races, seeded stress, thread exit, and
// event-loop liveness of async waits.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { F_STATE, F_TSTAMP, F_TSVALID } from '../src/fence/_shared.js';
import { DmaFence, type DmaFenceOps, Domain } from '../src/index.js';
import { prng, type Rpc, rpc } from './_rpc.js';

const ops: DmaFenceOps = { getDriverName: () => 'main', getTimelineName: () => 'main-tl' };
const workerUrl = new URL('./fixtures/fence-worker.js', import.meta.url);

describe('fences across worker threads', () => {
  let a: Rpc;
  let b: Rpc;
  before(() => {
    const d = Domain.current();
    a = rpc(d.spawn(workerUrl));
    b = rpc(d.spawn(workerUrl));
  });
  after(async () => {
    await a.worker.terminate();
    await b.worker.terminate();
  });

  it('a fence signaled in one worker wakes a blocking waiter in another and an async waiter here', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const waitB = b.stream('wait-sync', { fence: f.share(), timeout: 10_000 });
    await waitB(0);
    const mainWait = f.waitTimeout(10_000);
    const s = await a.call('signal', { fence: f.share(), error: -5 });
    assert.equal(s.already, false);
    const wb = await waitB(1);
    assert.ok(wb.r >= 1);
    assert.equal(wb.error, -5, 'error seen in the waiting worker');
    assert.equal(wb.status, -5);
    assert.ok((await mainWait) >= 1);
    assert.equal(f.getStatus(), -5, 'error seen in the creating thread');
    assert.equal(f.timestamp, s.ts, 'one timestamp everywhere');
    assert.equal(wb.ts, s.ts);
  });

  it('main signals, workers wait asynchronously and blocking', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const wa = a.stream('wait-async', { fence: f.share(), timeout: 10_000 });
    const wb = b.stream('wait-sync', { fence: f.share(), timeout: 10_000 });
    await wa(0);
    await wb(0);
    f.signal();
    assert.ok((await wa(1)).r >= 1);
    assert.ok((await wb(1)).r >= 1);
  });

  it('waits time out with 0 in a worker when nobody signals', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const wb = b.stream('wait-sync', { fence: f.share(), timeout: 20 });
    assert.equal((await wb(1)).r, 0);
    const wa = a.stream('wait-async', { fence: f.share(), timeout: 20 });
    assert.equal((await wa(1)).r, 0);
    f.signal();
  });

  it('callbacks registered in a worker run in that worker soon after a signal elsewhere', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const cb = a.stream('callback', { fence: f.share() });
    assert.equal((await cb(0)).added, true);
    f.setError(-125);
    f.signal();
    const ran = await cb(1);
    assert.equal(ran.ran, true);
    assert.equal(ran.thread, a.worker.threadId);
    assert.equal(ran.status, -125);
    const late = a.stream('callback', { fence: f.share() });
    assert.equal((await late(0)).added, false, 'a signaled fence does not take callbacks');
  });

  it('callbacks registered here run here when a worker signals', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const ran = new Promise<number>((resolve) =>
      f.addCallback((fence) => resolve(fence.getStatus())),
    );
    f.share(); // publish after adding: the watcher must still be armed
    await a.call('signal', { fence: f.share() });
    assert.equal(await ran, 1);
  });

  it('two workers racing to signal the same fences: each fence is won exactly once', async () => {
    const n = 200;
    const fs = Array.from({ length: n }, (_, i) => new DmaFence(ops, DmaFence.contextAlloc(), i));
    const [ra, rb] = await Promise.all([
      a.call('race', { fences: fs.map((f) => f.share()) }),
      b.call('race', { fences: fs.map((f) => f.share()).reverse() }),
    ]);
    assert.equal(ra.won + rb.won, n);
    for (const f of fs) assert.equal(f.isSignaled(), true);
  });

  it('seeded stress: random fences signaled by random threads, every waiter wakes', async () => {
    const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 100000);
    const rnd = prng(seed);
    try {
      for (let round = 0; round < 5; round++) {
        const n = 50;
        const fs = Array.from(
          { length: n },
          (_, i) => new DmaFence(ops, DmaFence.contextAlloc(), i),
        );
        const waiter = rnd() < 0.5 ? a : b;
        const other = waiter === a ? b : a;
        const w = waiter.stream('wait-all-sync', { fences: fs.map((f) => f.share()) });
        await w(0);
        const mine: DmaFence[] = [];
        const theirs: DmaFence[] = [];
        for (const f of fs) (rnd() < 0.5 ? mine : theirs).push(f);
        const s = other.call('race', { fences: theirs.map((f) => f.share()) });
        for (const f of mine) f.signal();
        await s;
        assert.equal((await w(1)).ok, n);
      }
    } catch (e) {
      console.error(`seed ${seed}`);
      throw e;
    }
  });

  it('fences created in a worker signal with -ENOENT when it exits', async () => {
    const d = Domain.current();
    const c = rpc(d.spawn(workerUrl));
    const { fences } = await c.call('create', { count: 3 });
    const fs = fences.map((x: never) => DmaFence.fromShared(x));
    const waits = fs.map((f: DmaFence) => f.waitTimeout(10_000));
    const cbStatus = new Promise<number>((resolve) =>
      fs[0].addCallback((f: DmaFence) => resolve(f.getStatus())),
    );
    await c.worker.terminate();
    for (const r of await Promise.all(waits)) assert.ok(r >= 1);
    for (const f of fs) assert.equal(f.getStatus(), -2);
    assert.equal(await cbStatus, -2);
  });
});

describe('timestamps read after the signal', () => {
  /** Fence slots in use in the domain's table. */
  const slotsInUse = (): number => [...Domain.current().tables.fence.allocated()].length;

  async function until(cond: () => boolean, what: string): Promise<void> {
    const end = performance.now() + 5000;
    while (!cond()) {
      if (performance.now() > end) assert.fail(what);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('views that saw a signal from another thread give their slot references back', async () => {
    const d = Domain.current();
    const w = rpc(d.spawn(workerUrl));
    try {
      const before = slotsInUse();
      const ctx = DmaFence.contextAlloc();
      // 300: four full settle batches of 64 in the worker's blocking loop, and a remainder
      // settled from a microtask once its handler returns.
      const fs = Array.from({ length: 300 }, (_, i) => new DmaFence(ops, ctx, i + 1));
      const wait = w.stream('wait-all-sync', { fences: fs.map((f) => f.share()) });
      await wait(0);
      for (const f of fs) f.signal();
      assert.equal((await wait(1)).ok, 300);
      await until(() => slotsInUse() === before, 'fence slots still referenced by settled views');
      // And the views here, signaled by a worker: their timestamps are the worker's.
      const gs = Array.from({ length: 100 }, (_, i) => new DmaFence(ops, ctx, 301 + i));
      const views = gs.map((f) => DmaFence.fromShared(f.share()));
      const remote = await w.call('race', { fences: gs.map((f) => f.share()) });
      assert.equal(remote.won, 100);
      for (const f of gs) f[Symbol.dispose]();
      await until(() => slotsInUse() === before, 'slots kept after the worker signaled');
      for (const v of views) assert.ok(v.timestamp > 0n);
    } finally {
      await w.worker.terminate();
    }
  });

  it('a thread that dies between its signal and its timestamp has one written by the exit hook', async () => {
    const d = Domain.current();
    const w = rpc(d.spawn(workerUrl));
    const { thread } = await w.call('thread', {});
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const desc = f.share();
    const view = DmaFence.fromShared(desc);
    const t = d.tables.fence;
    const b = t.base(view._slot);
    // What a signal by `thread` leaves when that thread is stopped right after its CAS.
    assert.equal(Atomics.compareExchange(t.i32, b + F_STATE, 0, (thread << 2) | 2), 0);
    assert.equal(view.isSignaled(), true, 'signaled as soon as the state word says so');
    assert.equal(view.getStatus(), 1);
    const standIn = view.timestamp;
    assert.ok(standIn > 0n, 'a stand-in time while the real one is missing');
    assert.equal(Atomics.load(t.i32, b + F_TSVALID), 0);
    await w.worker.terminate();
    await until(() => Atomics.load(t.i32, b + F_TSVALID) === 1, 'exit hook wrote no timestamp');
    const ts = view.timestamp;
    assert.equal(ts, t.i64[(b + F_TSTAMP) >> 1], "the exit hook's time, read from the slot");
    assert.equal(view.timestamp, ts, 'and kept');
  });
});

describe('event-loop liveness', () => {
  const script = fileURLToPath(new URL('./fixtures/keepalive-main.js', import.meta.url));

  it('an async wait keeps Node alive until the fence signals, then lets it exit', () => {
    const r = spawnSync(process.execPath, [script, 'async'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /waited 0 status 1/);
  });

  it('a callback alone does not keep Node alive', () => {
    const r = spawnSync(process.execPath, [script, 'callback-only'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /callback ran/);
  });
});
