// The kernel's dma-fence-chain selftests (drivers/dma-buf/st-dma-fence-chain.c), restated through
// the real core with a mock driver, plus the chain's construction rules (contracts.md §4 item 10).
// The cross-thread variants (a waiter in a worker, find_race between workers) live in
// tests/chain-threads.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DmaBufError } from '../errors.js';
import { DmaFence, type DmaFenceOps } from './fence.js';
import { DmaFenceArray } from './fence-array.js';
import { DmaFenceChain } from './fence-chain.js';

const CHAIN_SZ = 4 << 10;

const mockOps: DmaFenceOps = { getDriverName: () => 'mock', getTimelineName: () => 'mock' };
const mock = (): DmaFence => new DmaFence(mockOps, 0, 0);

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

interface FenceChains {
  fences: DmaFence[];
  chains: DmaFenceChain[];
  tail: DmaFenceChain;
}

/** fence_chains_init: `count` mock fences, each in a node linked after the previous one. */
function fenceChains(count: number, seqnoFn: (i: number) => number = (i) => i + 1): FenceChains {
  const fences: DmaFence[] = [];
  const chains: DmaFenceChain[] = [];
  let tail: DmaFenceChain | null = null;
  for (let i = 0; i < count; i++) {
    fences.push(mock());
    tail = new DmaFenceChain(tail, fences[i]!, seqnoFn(i));
    chains.push(tail);
  }
  return { fences, chains, tail: tail! };
}

function shuffle<T>(xs: T[], rnd: () => number): void {
  for (let n = xs.length - 1; n > 0; n--) {
    const k = Math.floor(rnd() * (n + 1));
    [xs[n], xs[k]] = [xs[k]!, xs[n]!];
  }
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('dma-fence-chain selftests (st-dma-fence-chain)', () => {
  it('sanitycheck: a node can be made around a fence, signaled and dropped', () => {
    const f = mock();
    const chain = new DmaFenceChain(null, f, 1);
    f.signal();
    assert.equal(chain.isSignaled(), true);
  });

  it('seqno: a later seqno after a chain continues its context, others start a new one', () => {
    const a = new DmaFenceChain(null, mock(), 1);
    const b = new DmaFenceChain(a, mock(), 2);
    assert.equal(b.context, a.context);
    assert.equal(b.prevSeqno, 1);
    assert.equal(b.seqno, 2);
    const c = new DmaFenceChain(b, mock(), 2);
    assert.notEqual(c.context, b.context, 'same seqno: new context');
    assert.equal(c.seqno, 2);
    assert.equal(c.prevSeqno, 0);
    const d = new DmaFenceChain(c, mock(), 1);
    assert.notEqual(d.context, c.context, 'older seqno: new context');
    assert.equal(d.seqno, 2, 'raised to the previous node');
    const p = mock();
    const e = new DmaFenceChain(p, mock(), 5);
    assert.notEqual(e.context, p.context, 'after a plain fence: always a new context');
    assert.equal(e.seqno, 5);
    assert.equal(e.prevSeqno, 0);
  });

  it('seqno: nodes compare 64-bit seqnos (no 32-bit wrap-around)', () => {
    const a = new DmaFenceChain(null, mock(), 1);
    const big = 0x8000_0002; // 32-bit compare would call it earlier than 1
    const b = new DmaFenceChain(a, mock(), big);
    assert.equal(b.context, a.context);
    assert.equal(b.prevSeqno, 1);
    const c = new DmaFenceChain(b, mock(), 2 ** 40);
    assert.equal(c.context, a.context);
    assert.equal(c.isLater(b), true);
  });

  it('find_seqno: finds every node of a 64-node chain, itself, and refuses future points', () => {
    const fc = fenceChains(64);
    assert.equal(DmaFenceChain.findSeqno(fc.tail, 0), fc.tail, 'seqno 0 is a no-op');
    for (let i = 0; i < fc.chains.length; i++) {
      const f = DmaFenceChain.findSeqno(fc.tail, i + 1);
      assert.equal(f, fc.chains[i], `find_seqno(${i + 1})`);
      assert.equal(DmaFenceChain.findSeqno(f!, i + 1), fc.chains[i], 'find self');
      expectErrno(() => DmaFenceChain.findSeqno(f!, i + 2), 'EINVAL');
      const back = DmaFenceChain.findSeqno(f!, i);
      if (i > 0) assert.equal(back, fc.chains[i - 1], 'previous fence');
    }
    for (const f of fc.fences) f.signal();
  });

  it('find_signaled: a signaled first node is collected; the answer is node 1 or null', () => {
    const fc = fenceChains(2);
    fc.fences[0]!.signal();
    const f = DmaFenceChain.findSeqno(fc.tail, 1);
    assert.ok(f === null || f === fc.chains[0], `got seqno ${f?.seqno}`);
  });

  it('find_out_of_order: with the middle fence signaled, point 2 waits on node 1', () => {
    const fc = fenceChains(3);
    fc.fences[1]!.signal();
    assert.equal(DmaFenceChain.findSeqno(fc.tail, 2), fc.chains[0]);
  });

  it('find_gap: odd points between even nodes resolve to the covering node', () => {
    const fc = fenceChains(64, (i) => 2 * i + 2);
    for (let i = 0; i < fc.chains.length; i++) {
      const f = DmaFenceChain.findSeqno(fc.tail, 2 * i + 1);
      assert.equal(f, fc.chains[i], `find_seqno(${2 * i + 1})`);
      assert.equal(DmaFenceChain.findSeqno(f!, 2 * i + 2), fc.chains[i], 'find self');
    }
  });

  it('find_race (one thread, interleaved): random finds among random signals stay consistent', () => {
    const fc = fenceChains(CHAIN_SZ);
    const rnd = lcg(0x5eed);
    for (let n = 0; n < 20_000; n++) {
      const seqno = 1 + Math.floor(rnd() * CHAIN_SZ);
      const f = DmaFenceChain.findSeqno(fc.tail, seqno);
      if (f !== null) {
        assert.ok(f instanceof DmaFenceChain);
        // The walk stops at the first node whose range starts below the point (it may be an
        // older node than the one holding the point when newer ones were collected).
        assert.ok(f.prevSeqno < seqno, 'the node covers the point');
        if (f.seqno === seqno) assert.equal(DmaFenceChain.findSeqno(f, seqno), f);
      }
      fc.fences[Math.floor(rnd() * (CHAIN_SZ - 1))]!.signal();
    }
  });

  it('signal_forward: signaling in order makes each node signaled and not the next', () => {
    const fc = fenceChains(64);
    for (let i = 0; i < fc.chains.length; i++) {
      fc.fences[i]!.signal();
      assert.equal(fc.chains[i]!.isSignaled(), true, `chain[${i}] not signaled`);
      if (i + 1 < fc.chains.length)
        assert.equal(fc.chains[i + 1]!.isSignaled(), false, `chain[${i + 1}] signaled`);
    }
  });

  it('signal_backward: no node signals until the first fence does, then all do', () => {
    const fc = fenceChains(64);
    for (let i = fc.chains.length - 1; i >= 0; i--) {
      fc.fences[i]!.signal();
      if (i > 0) assert.equal(fc.chains[i]!.isSignaled(), false, `chain[${i}] signaled`);
    }
    for (const c of fc.chains) assert.equal(c.isSignaled(), true);
  });

  for (const [name, order] of [
    ['wait_forward', 'forward'],
    ['wait_backward', 'backward'],
    ['wait_random', 'random'],
  ] as const) {
    it(`${name}: a waiter on the tail of ${CHAIN_SZ} nodes wakes once all fences signal`, async () => {
      const fc = fenceChains(CHAIN_SZ);
      const fences = [...fc.fences];
      if (order === 'backward') fences.reverse();
      if (order === 'random') shuffle(fences, lcg(42));
      const waited = fc.tail.wait();
      await new Promise((r) => setImmediate(r)); // let the waiter arm (yield_to)
      for (const f of fences) f.signal();
      assert.equal(await waited, 0);
      assert.equal(fc.tail.getStatus(), 1);
    });
  }
});

describe('DmaFenceChain details', () => {
  it('rejects a chain as the contained fence and bad arguments with EINVAL', () => {
    const c = new DmaFenceChain(null, mock(), 1);
    expectErrno(() => new DmaFenceChain(null, c, 2), 'EINVAL');
    expectErrno(() => new DmaFenceChain(null, {} as DmaFence, 1), 'EINVAL');
    expectErrno(() => new DmaFenceChain({} as DmaFence, mock(), 1), 'EINVAL');
    expectErrno(() => new DmaFenceChain(null, mock(), -1), 'EINVAL');
    expectErrno(() => new DmaFenceChain(null, mock(), 1.5), 'EINVAL');
  });

  it('findSeqno refuses non-chains and bad seqnos, but seqno 0 returns any fence', () => {
    const p = mock();
    expectErrno(() => DmaFenceChain.findSeqno(p, 1), 'EINVAL');
    assert.equal(DmaFenceChain.findSeqno(p, 0), p);
    expectErrno(() => DmaFenceChain.findSeqno(p, -1), 'EINVAL');
  });

  it('exposes its contained fence, its previous node and the container flags', () => {
    const f = mock();
    const a = new DmaFenceChain(null, mock(), 1);
    const b = new DmaFenceChain(a, f, 2);
    assert.equal(b.fence, f);
    assert.equal(b.contained, f);
    assert.equal(DmaFenceChain.contained(b), f);
    assert.equal(DmaFenceChain.contained(f), f);
    assert.equal(b.prev, a);
    assert.equal(b.isContainer, true);
    assert.equal(b.isChain, true);
    assert.equal(b.isArray, false);
    assert.equal(b.driverName, 'dma_fence_chain');
    assert.equal(b.timelineName, 'unbound');
    assert.equal(DmaFenceChain.toChain(b), b);
    assert.equal(DmaFenceChain.toChain(f), null);
  });

  it('walk unlinks older nodes whose fence signaled and returns the next pending one', () => {
    const fc = fenceChains(4);
    fc.fences[1]!.signal();
    fc.fences[2]!.signal();
    assert.equal(fc.chains[3]!.walk(), fc.chains[0]);
    assert.equal(fc.chains[3]!.prev, fc.chains[0], 'nodes 1 and 2 were unlinked');
    fc.fences[0]!.signal();
    assert.equal(fc.chains[3]!.walk(), null);
    assert.equal(fc.chains[3]!.prev, null);
  });

  it('walk ends at a plain previous fence, and collects it once signaled', () => {
    const p = mock();
    const c = new DmaFenceChain(p, mock(), 1);
    assert.equal(c.walk(), p);
    p.signal();
    assert.equal(c.walk(), null);
    assert.equal(c.prev, null);
  });

  it('iterate yields the node and then each pending older node', () => {
    const fc = fenceChains(3);
    fc.fences[1]!.signal();
    assert.deepEqual([...DmaFenceChain.iterate(fc.tail)], [fc.chains[2], fc.chains[0]]);
    const p = mock();
    assert.deepEqual([...DmaFenceChain.iterate(p)], [p]);
  });

  it('waits for a plain fence at the end of the chain too', () => {
    const p = mock();
    const f = mock();
    const c = new DmaFenceChain(p, f, 1);
    f.signal();
    assert.equal(c.isSignaled(), false);
    p.signal();
    assert.equal(c.isSignaled(), true);
  });

  it('a chain of arrays signals when every member of every array has', async () => {
    const fs = [mock(), mock(), mock()];
    const a1 = DmaFenceArray.create(fs.slice(0, 2), 1, 1);
    const c1 = new DmaFenceChain(null, a1, 1);
    const c2 = new DmaFenceChain(c1, fs[2]!, 2);
    const w = c2.waitTimeout(10_000);
    fs[2]!.signal();
    fs[0]!.signal();
    assert.equal(c2.isSignaled(), false);
    fs[1]!.signal();
    assert.ok((await w) >= 1);
  });

  it("keeps error 0 even when a contained fence failed (the kernel's rule)", () => {
    const f = mock();
    const c = new DmaFenceChain(null, f, 1);
    f.setError(-5);
    f.signal();
    assert.equal(c.getStatus(), 1);
  });

  it('forwards deadlines to every pending contained fence', () => {
    const seen: bigint[] = [];
    const ops: DmaFenceOps = { ...mockOps, setDeadline: (_f, ns) => seen.push(ns) };
    const a = new DmaFenceChain(null, new DmaFence(ops, 0, 0), 1);
    const b = new DmaFenceChain(a, new DmaFence(ops, 0, 0), 2);
    b.setDeadline(99n);
    assert.deepEqual(seen, [99n, 99n]);
  });

  it('waitTimeoutSync returns 0 on timeout and the time left once signaled', () => {
    const fc = fenceChains(3);
    assert.equal(fc.tail.waitTimeoutSync(0), 0);
    assert.equal(fc.tail.waitTimeoutSync(2), 0);
    for (const f of fc.fences) f.signal();
    assert.equal(fc.tail.waitTimeoutSync(500), 500);
  });

  it('share and fromShared rebuild the same nodes over the same fences', () => {
    const p = mock();
    const fs = [mock(), mock(), mock()];
    const a = new DmaFenceChain(p, fs[0]!, 1);
    const arr = DmaFenceArray.create([fs[1]!], 1, 1);
    const b = new DmaFenceChain(a, arr, 5);
    const c = new DmaFenceChain(b, fs[2]!, 3);
    const desc = c.share();
    assert.equal(desc.t, 'chain');
    assert.equal(desc.l.length, 3);
    const r = DmaFence.fromShared(desc);
    assert.ok(r instanceof DmaFenceChain);
    const nodes: DmaFenceChain[] = [];
    for (let it: DmaFence | null = r; it instanceof DmaFenceChain; it = it.prev) nodes.push(it);
    const orig = [c, b, a];
    assert.equal(nodes.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.equal(nodes[i]!.context, orig[i]!.context);
      assert.equal(nodes[i]!.seqno, orig[i]!.seqno);
      assert.equal(nodes[i]!.prevSeqno, orig[i]!.prevSeqno);
    }
    assert.equal(nodes[2]!.prev, p, 'the plain fence at the end comes back too');
    assert.ok(nodes[1]!.fence instanceof DmaFenceArray);
    assert.equal(nodes[0]!.fence, fs[2]);
    for (const f of [p, ...fs]) f.signal();
    assert.equal(r.isSignaled(), true);
  });

  it('rejects malformed chain descriptors with EINVAL', () => {
    const d = mock().share().d;
    expectErrno(() => DmaFence.fromShared({ t: 'chain', d, l: [] }), 'EINVAL');
    expectErrno(
      () => DmaFence.fromShared({ t: 'chain', d, l: [{ c: 1, q: 1, pq: -1, f: mock().share() }] }),
      'EINVAL',
    );
    const inner = new DmaFenceChain(null, mock(), 1).share();
    expectErrno(
      () => DmaFence.fromShared({ t: 'chain', d, l: [{ c: 1, q: 1, pq: 0, f: inner }] }),
      'EINVAL',
    );
  });
});
