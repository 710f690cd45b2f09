// Container fences across real Worker threads: arrays and chains shared by descriptor, waited on
// in workers while this thread signals their members (st-dma-fence-chain wait_forward,
// wait_backward and wait_random with the waiter in a worker), and find_race between two workers
// (scaled to two threads and a fixed time).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DmaFence, DmaFenceArray, DmaFenceChain, type DmaFenceOps, Domain } from '../src/index.js';
import { prng, type Rpc, rpc } from './_rpc.js';

const workerUrl = new URL('./fixtures/sync-worker.js', import.meta.url);
const ops: DmaFenceOps = { getDriverName: () => 'mock', getTimelineName: () => 'mock' };
const mock = (): DmaFence => new DmaFence(ops, 0, 0);

function check<T extends { err?: string }>(r: T): T {
  if (r.err !== undefined) assert.fail(`worker: ${r.err}`);
  return r;
}

function chainOf(n: number): { fences: DmaFence[]; tail: DmaFenceChain } {
  const fences: DmaFence[] = [];
  let tail: DmaFenceChain | null = null;
  for (let i = 0; i < n; i++) {
    fences.push(mock());
    tail = new DmaFenceChain(tail, fences[i]!, i + 1);
  }
  return { fences, tail: tail! };
}

describe('container fences across worker threads', () => {
  let a: Rpc;
  let b: Rpc;
  before(() => {
    const d = Domain.current();
    a = rpc(d.spawn(workerUrl));
    b = rpc(d.spawn(workerUrl));
  });
  after(async () => {
    await Promise.all([a.worker.terminate(), b.worker.terminate()]);
  });

  it('an array shared to workers signals there when this thread signals its members', async () => {
    const fs = [mock(), mock(), mock()];
    const arr = DmaFenceArray.create(fs, DmaFence.contextAlloc(), 1);
    const wa = a.stream('fence-wait', { fence: arr.share(), mode: 'sync' });
    const wb = b.stream('fence-wait', { fence: arr.share(), mode: 'async' });
    await wa(0);
    await wb(0);
    fs[0]!.signal();
    fs[1]!.setError(-110);
    fs[1]!.signal();
    fs[2]!.signal();
    for (const w of [wa, wb]) {
      const r = check(await w(1));
      assert.ok(r.r >= 1);
      assert.equal(r.kind, 'DmaFenceArray', 'rebuilt as an array in the worker');
      assert.equal(r.status, -110, 'the member error travels');
    }
  });

  it('a signal-on-any array shared to a worker signals with its first member', async () => {
    const fs = [mock(), mock()];
    const arr = DmaFenceArray.create(fs, DmaFence.contextAlloc(), 1, true);
    const w = a.stream('fence-wait', { fence: arr.share(), mode: 'sync' });
    await w(0);
    fs[1]!.signal();
    const r = check(await w(1));
    assert.ok(r.r >= 1);
    assert.equal(fs[0]!.isSignaled(), false);
  });

  for (const order of ['forward', 'backward', 'random'] as const) {
    it(`wait_${order}: a worker blocked on the tail of 1024 nodes wakes when all fences signal`, async () => {
      const { fences, tail } = chainOf(1024); // the kernel uses 4096; see fence-chain.test.ts
      const order_ = [...fences];
      if (order === 'backward') order_.reverse();
      if (order === 'random') {
        const rnd = prng(7);
        for (let n = order_.length - 1; n > 0; n--) {
          const k = Math.floor(rnd() * (n + 1));
          [order_[n], order_[k]] = [order_[k]!, order_[n]!];
        }
      }
      const w = a.stream('fence-wait', { fence: tail.share(), mode: 'sync', timeout: 10_000 });
      await w(0);
      for (const f of order_) f.signal();
      const r = check(await w(1));
      assert.ok(r.r >= 1);
      assert.equal(r.kind, 'DmaFenceChain');
      assert.equal(r.signaled, true);
    });
  }

  it('a chain waited on asynchronously in a worker wakes after the last fence', async () => {
    const { fences, tail } = chainOf(64);
    const w = b.stream('fence-wait', { fence: tail.share(), mode: 'async', timeout: 10_000 });
    await w(0);
    for (let i = 0; i < 63; i++) fences[i]!.signal();
    await new Promise((r) => setTimeout(r, 5));
    fences[63]!.signal();
    const r = check(await w(1));
    assert.ok(r.r >= 1);
    assert.equal(r.status, 1);
  });

  it('find_race: two workers find random points on their copies while signaling random fences', async () => {
    const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 100_000);
    const { fences, tail } = chainOf(1024);
    try {
      const runs = [a, b].map((w, i) =>
        w.call('find-race', {
          chain: tail.share(),
          fences: fences.map((f) => f.share()),
          seed: seed + i,
          ms: 300,
        }),
      );
      const results = await Promise.all(runs);
      for (const r of results) {
        check(r);
        assert.equal(r.err, undefined, r.err);
        assert.ok(r.cycles > 0);
      }
      const signaled = fences.filter((f) => f.isSignaled()).length;
      assert.ok(signaled > 0, 'signals in the workers are seen here');
      // Everything still consistent here: each point resolves to a covering node or null.
      for (let s = 1; s <= fences.length; s += 37) {
        const f = DmaFenceChain.findSeqno(tail, s);
        assert.ok(f === null || (f instanceof DmaFenceChain && f.prevSeqno < s));
      }
    } catch (e) {
      console.error(`find_race failed with seed ${seed} (DMABUF_SEED=${seed})`);
      throw e;
    } finally {
      for (const f of fences) f.signal();
    }
  });
});
