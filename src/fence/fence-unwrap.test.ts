// The kernel's dma-fence-unwrap selftests (drivers/dma-buf/st-dma-fence-unwrap.c) through the real
// code, the merge rules of contracts.md §4 items 11–13, and property tests (fast-check) of
// unwrapFences and unwrapMerge.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DmaBufError } from '../errors.js';
import { DmaFence, type DmaFenceOps } from './fence.js';
import { DmaFenceArray } from './fence-array.js';
import { DmaFenceChain } from './fence-chain.js';
import { dedupArray, unwrapFences, unwrapMerge, unwrapMergeContext } from './fence-unwrap.js';

const mockOps: DmaFenceOps = { getDriverName: () => 'mock', getTimelineName: () => 'mock' };
/** __mock_fence(context, seqno) */
const mockAt = (context: number, seqno: number): DmaFence => new DmaFence(mockOps, context, seqno);
/** mock_fence(): a fence on a fresh context at seqno 1, signaling enabled. */
const mock = (): DmaFence => {
  const f = mockAt(DmaFence.contextAlloc(), 1);
  f.enableSwSignaling();
  return f;
};
const mockArray = (...fs: DmaFence[]): DmaFence =>
  DmaFenceArray.create(fs, DmaFence.contextAlloc(), 1, false);
const mockChain = (prev: DmaFence | null, f: DmaFence): DmaFence => new DmaFenceChain(prev, f, 1);

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

describe('dma-fence-unwrap selftests (st-dma-fence-unwrap)', () => {
  it('sanitycheck: an array in a chain can be built and dropped', () => {
    const f = mock();
    const chain = mockChain(null, mockArray(f));
    f.signal();
    assert.equal(chain.isSignaled(), true);
  });

  it('unwrap_array: yields both members of an array', () => {
    const f1 = mock();
    const f2 = mock();
    assert.deepEqual([...unwrapFences(mockArray(f1, f2))], [f1, f2]);
  });

  it('unwrap_chain: yields the contained fence, then the plain previous fence', () => {
    const f1 = mock();
    const f2 = mock();
    assert.deepEqual([...unwrapFences(mockChain(f1, f2))], [f2, f1]);
  });

  it('unwrap_chain_array: yields the members of an array held by a chain node', () => {
    const f1 = mock();
    const f2 = mock();
    assert.deepEqual([...unwrapFences(mockChain(null, mockArray(f1, f2)))], [f1, f2]);
  });

  it('unwrap_merge: merging two fences yields both', () => {
    const f1 = mock();
    const f2 = mock();
    const f3 = unwrapMerge(f1, f2);
    assert.deepEqual(new Set(unwrapFences(f3)), new Set([f1, f2]));
    assert.equal([...unwrapFences(f3)].length, 2);
  });

  it('unwrap_merge_duplicate: merging a fence with itself yields it once (the fence itself)', () => {
    const f1 = mock();
    const f2 = unwrapMerge(f1, f1);
    assert.equal(f2, f1);
    assert.deepEqual([...unwrapFences(f2)], [f1]);
  });

  it('unwrap_merge_seqno: one fence per context, the later one, in context order', () => {
    const ctx0 = DmaFence.contextAlloc();
    const ctx1 = DmaFence.contextAlloc();
    const f1 = mockAt(ctx1, 1);
    const f2 = mockAt(ctx1, 2);
    const f3 = mockAt(ctx0, 1);
    assert.deepEqual([...unwrapFences(unwrapMerge(f1, f2, f3))], [f3, f2]);
  });

  it('unwrap_merge_order: an array and a chain of the same fences merge in context order', () => {
    const f1 = mock();
    const f2 = mock();
    const a1 = mockArray(f1, f2);
    const c1 = mockChain(null, f1);
    const c2 = mockChain(c1, f2);
    assert.deepEqual([...unwrapFences(unwrapMerge(a1, c2))], [f1, f2]);
  });

  it('unwrap_merge_complex: arrays merge flat; signaled fences (the stub) are dropped', () => {
    const f1 = mock();
    const f2 = mock();
    const f3 = unwrapMerge(f1, f2);
    const f4 = mockArray(f2, f1);
    const f5 = unwrapMerge(f3, f4, DmaFence.getStub());
    assert.deepEqual([...unwrapFences(f5)], [f1, f2]);
  });

  it('unwrap_merge_complex_seqno: two arrays over two contexts keep the later of each', () => {
    const ctx0 = DmaFence.contextAlloc();
    const ctx1 = DmaFence.contextAlloc();
    const f1 = mockAt(ctx0, 2);
    const f2 = mockAt(ctx1, 1);
    const f3 = mockAt(ctx0, 1);
    const f4 = mockAt(ctx1, 2);
    const f7 = unwrapMerge(mockArray(f1, f2), mockArray(f3, f4));
    assert.deepEqual([...unwrapFences(f7)], [f1, f4]);
  });
});

describe('unwrapFences', () => {
  it('yields a plain fence by itself', () => {
    const f = mock();
    assert.deepEqual([...unwrapFences(f)], [f]);
  });

  it("skips older chain nodes whose fence signaled, but always yields the head's", () => {
    const fs = [mock(), mock(), mock(), mock()];
    let c: DmaFence | null = null;
    for (let i = 0; i < 4; i++) c = new DmaFenceChain(c, fs[i]!, i + 1);
    fs[3]!.signal();
    fs[1]!.signal();
    assert.deepEqual([...unwrapFences(c!)], [fs[3], fs[2], fs[0]]);
  });

  it('walks lazily: a node collected after the walk started is not visited', () => {
    const fs = [mock(), mock(), mock()];
    let c: DmaFence | null = null;
    for (let i = 0; i < 3; i++) c = new DmaFenceChain(c, fs[i]!, i + 1);
    const seen: DmaFence[] = [];
    for (const f of unwrapFences(c!)) {
      seen.push(f);
      if (f === fs[2]) fs[1]!.signal();
    }
    assert.deepEqual(seen, [fs[2], fs[0]]);
  });

  it('rejects a non-fence with EINVAL', () => {
    expectErrno(() => [...unwrapFences({} as DmaFence)], 'EINVAL');
  });
});

describe('unwrapMerge', () => {
  it('returns a new signaled private stub with the latest timestamp when all signaled', () => {
    const a = mock();
    const b = mock();
    a.signalTimestamp(100n);
    b.signalTimestamp(300n);
    const m = unwrapMerge(a, mockArray(b));
    assert.notEqual(m, DmaFence.getStub());
    assert.equal(m.isSignaled(), true);
    assert.equal(m.timestamp, 300n);
    assert.equal(m.context, 0);
  });

  it('returns the single pending fence itself', () => {
    const a = mock();
    const b = mock();
    b.signal();
    assert.equal(unwrapMerge(a, b), a);
    assert.equal(unwrapMerge(a), a);
  });

  it('makes a new all-signal array on a fresh context at seqno 1 for several contexts', () => {
    const a = mock();
    const b = mock();
    const m = unwrapMerge(b, a);
    assert.ok(m instanceof DmaFenceArray);
    assert.equal(m.seqno, 1);
    assert.equal(m.signalOnAny, false);
    assert.ok(m.context > b.context);
    assert.deepEqual([...m.fences], [a, b]);
    const n = unwrapMerge(b, a);
    assert.notEqual(n.context, m.context, 'each merge takes a fresh context');
  });

  it('keeps the later fence of a context with 32-bit wrap-around', () => {
    const ctx = DmaFence.contextAlloc();
    const old = mockAt(ctx, 0xffff_ffff);
    const newer = mockAt(ctx, 1);
    assert.equal(unwrapMerge(old, newer), newer);
  });

  it('unwrapMergeContext puts a resulting array on the given context', () => {
    const m = unwrapMergeContext(1234, mock(), mock());
    assert.equal(m.context, 1234);
    expectErrno(() => unwrapMergeContext(-1, mock()), 'EINVAL');
  });

  it('rejects no input and non-fences with EINVAL', () => {
    expectErrno(() => unwrapMerge(), 'EINVAL');
    expectErrno(() => unwrapMerge(mock(), {} as DmaFence), 'EINVAL');
  });
});

describe('dedupArray', () => {
  it('returns 0 for an empty input (not the v6.17 kernel 1)', () => {
    assert.equal(dedupArray([]), 0);
  });

  it('sorts by context, keeps the latest per context, truncates and returns the count', () => {
    const c1 = DmaFence.contextAlloc();
    const c2 = DmaFence.contextAlloc();
    const a = mockAt(c2, 5);
    const b = mockAt(c1, 3);
    const c = mockAt(c1, 9);
    const xs = [a, b, c, a, b];
    assert.equal(dedupArray(xs), 2);
    assert.deepEqual(xs, [c, a]);
  });

  it('rejects a non-array and non-fences with EINVAL', () => {
    expectErrno(() => dedupArray(null as never), 'EINVAL');
    expectErrno(() => dedupArray([mock(), 3 as never]), 'EINVAL');
  });
});

// ---- properties ------------------------------------------------------------------------------

/** A leaf spec: context index, seqno, signaled at build time. */
type Leaf = { ctx: number; seqno: number; signaled: boolean };
/** An input spec: a plain fence, an array of leaves, or a chain of nodes (each a leaf or array). */
type Input =
  | { kind: 'plain'; leaf: number }
  | { kind: 'array'; leaves: number[] }
  | { kind: 'chain'; nodes: number[][]; seqnos: number[] };

const leafArb = fc.record({
  ctx: fc.integer({ min: 0, max: 3 }),
  seqno: fc.oneof(
    fc.integer({ min: 0, max: 8 }),
    fc.integer({ min: 0xffff_fff0, max: 0xffff_ffff }),
  ),
  signaled: fc.boolean(),
});

const scenarioArb = fc.array(leafArb, { minLength: 1, maxLength: 10 }).chain((leaves) => {
  const idx = fc.integer({ min: 0, max: leaves.length - 1 });
  const inputArb: fc.Arbitrary<Input> = fc.oneof(
    fc.record({ kind: fc.constant('plain' as const), leaf: idx }),
    fc.record({
      kind: fc.constant('array' as const),
      leaves: fc.array(idx, { minLength: 1, maxLength: 4 }),
    }),
    fc.record({
      kind: fc.constant('chain' as const),
      nodes: fc.array(fc.array(idx, { minLength: 1, maxLength: 3 }), {
        minLength: 1,
        maxLength: 4,
      }),
      seqnos: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 4, maxLength: 4 }),
    }),
  );
  return fc.record({
    leaves: fc.constant(leaves),
    inputs: fc.array(inputArb, { minLength: 1, maxLength: 4 }),
  });
});

interface Built {
  leaves: DmaFence[];
  inputs: DmaFence[];
  /** What unwrapFences must yield for each input, computed from the specs. */
  expected: DmaFence[][];
}

function build(s: { leaves: Leaf[]; inputs: Input[] }): Built {
  const ctxs = [0, 1, 2, 3].map(() => DmaFence.contextAlloc());
  const leaves = s.leaves.map((l) => mockAt(ctxs[l.ctx]!, l.seqno));
  s.leaves.forEach((l, i) => {
    if (l.signaled) leaves[i]!.signal();
  });
  const inputs: DmaFence[] = [];
  const expected: DmaFence[][] = [];
  for (const inp of s.inputs) {
    if (inp.kind === 'plain') {
      inputs.push(leaves[inp.leaf]!);
      expected.push([leaves[inp.leaf]!]);
    } else if (inp.kind === 'array') {
      const ms = inp.leaves.map((i) => leaves[i]!);
      inputs.push(DmaFenceArray.create(ms, DmaFence.contextAlloc(), 1));
      expected.push(ms);
    } else {
      let prev: DmaFence | null = null;
      const contents: DmaFence[][] = [];
      inp.nodes.forEach((n, k) => {
        const ms = n.map((i) => leaves[i]!);
        const contained = ms.length === 1 ? ms[0]! : DmaFenceArray.create(ms, 1, 1);
        prev = new DmaFenceChain(prev, contained, inp.seqnos[k]!);
        contents.push(ms);
      });
      inputs.push(prev!);
      // Head's contents always; older nodes only while some member is pending.
      const exp = [...contents[contents.length - 1]!];
      for (let k = contents.length - 2; k >= 0; k--)
        if (contents[k]!.some((f) => !f.isSignaled())) exp.push(...contents[k]!);
      expected.push(exp);
    }
  }
  return { leaves, inputs, expected };
}

describe('properties (fast-check)', () => {
  it('unwrapFences yields array members in order and chain nodes newest first, skipping signaled older nodes', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const b = build(s);
        b.inputs.forEach((inp, i) => {
          assert.deepEqual([...unwrapFences(inp)], b.expected[i]);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('unwrapMerge: signaled iff all inputs are; one fence per context, the later one, in context order', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const b = build(s);
        const reachable = b.expected.flat();
        const pending = reachable.filter((f) => !f.isSignaled());
        const m = unwrapMerge(...b.inputs);
        assert.equal(m.isSignaled(), pending.length === 0);
        if (pending.length === 0) {
          assert.equal(m.context, 0, 'a private stub');
          return;
        }
        const members = [...unwrapFences(m)];
        for (const f of members) assert.ok(pending.includes(f), 'only pending inputs survive');
        const ctxs = members.map((f) => f.context);
        assert.deepEqual(
          ctxs,
          [...new Set(pending.map((f) => f.context))].sort((x, y) => x - y),
          'exactly one fence per context, ascending',
        );
        for (const f of members) {
          for (const g of pending)
            if (g.context === f.context) assert.ok(!g.isLater(f), 'the later fence survives');
        }
        if (members.length === 1) assert.equal(m, members[0], 'a single survivor is returned');
        // Signaling every leaf signals the merge.
        for (const f of b.leaves) f.signal();
        assert.equal(m.isSignaled(), true);
      }),
      { numRuns: 300 },
    );
  });

  it('dedupArray keeps exactly the latest fence per context, sorted', () => {
    fc.assert(
      fc.property(fc.array(leafArb, { maxLength: 12 }), (ls) => {
        const ctxs = [0, 1, 2, 3].map(() => DmaFence.contextAlloc());
        const fs = ls.map((l) => mockAt(ctxs[l.ctx]!, l.seqno));
        const copy = [...fs];
        const n = dedupArray(copy);
        assert.equal(n, new Set(ls.map((l) => l.ctx)).size);
        assert.equal(copy.length, n);
        for (let i = 1; i < n; i++) assert.ok(copy[i - 1]!.context < copy[i]!.context);
        for (const f of copy)
          for (const g of fs) if (g.context === f.context) assert.ok(!g.isLater(f));
      }),
      { numRuns: 300 },
    );
  });
});
