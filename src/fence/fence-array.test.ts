// DmaFenceArray through the real core with a mock driver: creation rules, all/any signaling,
// synchronous isSignaled from members, error propagation, callbacks, waits, deadlines, the
// first/next helpers, and the descriptor round trip.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { beginSignalling, endSignalling, setDebug } from '../debug/lockdep.js';
import { DmaBufError } from '../errors.js';
import { DmaFence, type DmaFenceOps } from './fence.js';
import { DmaFenceArray } from './fence-array.js';
import { DmaFenceChain } from './fence-chain.js';

const mockOps: DmaFenceOps = { getDriverName: () => 'mock', getTimelineName: () => 'mock' };
const mock = (context = 0, seqno = 0): DmaFence => new DmaFence(mockOps, context, seqno);
const mocks = (n: number): DmaFence[] => Array.from({ length: n }, () => mock());
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

describe('DmaFenceArray.create', () => {
  it('makes a container fence with the given context and seqno and the kernel names', () => {
    const fs = mocks(3);
    const ctx = DmaFence.contextAlloc();
    const a = DmaFenceArray.create(fs, ctx, 7, false);
    assert.equal(a.context, ctx);
    assert.equal(a.seqno, 7);
    assert.equal(a.isContainer, true);
    assert.equal(a.isArray, true);
    assert.equal(a.isChain, false);
    assert.equal(a.driverName, 'dma_fence_array');
    assert.equal(a.timelineName, 'unbound');
    assert.equal(a.numFences, 3);
    assert.deepEqual([...a.fences], fs);
    assert.equal(a.signalOnAny, false);
  });

  it('keeps its own copy of the member list, read-only', () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    fs.push(mock());
    assert.equal(a.numFences, 2);
    assert.throws(() => (a.fences as DmaFence[]).push(mock()), TypeError);
  });

  it('rejects an empty list, a non-fence and container members with EINVAL', () => {
    expectErrno(() => DmaFenceArray.create([], 1, 1), 'EINVAL');
    expectErrno(() => DmaFenceArray.create([{} as DmaFence], 1, 1), 'EINVAL');
    const inner = DmaFenceArray.create(mocks(1), 1, 1);
    expectErrno(() => DmaFenceArray.create([mock(), inner], 1, 1), 'EINVAL');
    const chain = new DmaFenceChain(null, mock(), 1);
    expectErrno(() => DmaFenceArray.create([chain], 1, 1), 'EINVAL');
    expectErrno(() => DmaFenceArray.create(mocks(1), -1, 1), 'EINVAL');
    expectErrno(() => DmaFenceArray.create(mocks(1), 1, 1, 'yes' as never), 'EINVAL');
  });

  it('plain fences report isArray and isChain false', () => {
    assert.equal(mock().isArray, false);
    assert.equal(mock().isChain, false);
  });
});

describe('DmaFenceArray signaling', () => {
  it('signals only when all members have signaled', async () => {
    const fs = mocks(3);
    const a = DmaFenceArray.create(fs, 1, 1);
    let ran = 0;
    assert.notEqual(
      a.addCallback(() => ran++),
      null,
    );
    fs[0]!.signal();
    fs[2]!.signal();
    await tick();
    assert.equal(a.isSignaled(), false);
    assert.equal(a.getStatus(), 0);
    fs[1]!.signal();
    await tick();
    assert.equal(ran, 1);
    assert.equal(a.getStatus(), 1);
  });

  it('isSignaled answers from the members synchronously, before the deferred signal', () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    a.enableSwSignaling();
    fs[0]!.signal();
    fs[1]!.signal();
    assert.equal(a.testSignaledFlag(), false, 'the array itself signals in a microtask');
    assert.equal(a.isSignaled(), true, 'but isSignaled sees the members');
    assert.equal(a.testSignaledFlag(), true, 'and signals it right there');
  });

  it('isSignaled counts members before signaling is enabled', () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    fs[0]!.signal();
    assert.equal(a.isSignaled(), false);
    fs[1]!.signal();
    assert.equal(a.isSignaled(), true);
  });

  it('signalOnAny signals with the first member, before or after enabling', async () => {
    const fs = mocks(3);
    const a = DmaFenceArray.create(fs, 1, 1, true);
    fs[1]!.signal();
    assert.equal(a.isSignaled(), true);

    const gs = mocks(3);
    const b = DmaFenceArray.create(gs, 1, 2, true);
    const done = b.wait();
    gs[2]!.signal();
    await done;
    assert.equal(b.getStatus(), 1);
    assert.equal(gs[0]!.isSignaled(), false, 'the other members are untouched');
  });

  it('enabling signaling when enough members have signaled signals the array at once', () => {
    const fs = mocks(2);
    for (const f of fs) f.signal();
    const a = DmaFenceArray.create(fs, 1, 1);
    assert.equal(
      a.addCallback(() => {}),
      null,
      'addCallback finds it signaled',
    );
    assert.equal(a.testSignaledFlag(), true);
  });

  it('takes the first non-zero member error, in callback order once enabled', async () => {
    const fs = mocks(3);
    const a = DmaFenceArray.create(fs, 1, 1);
    a.enableSwSignaling();
    fs[2]!.setError(-5);
    fs[2]!.signal();
    fs[0]!.setError(-22);
    fs[0]!.signal();
    fs[1]!.signal();
    await tick();
    assert.equal(a.getStatus(), -5);
    assert.equal(a.error, -5);
  });

  it('takes the first non-zero member error, in member order before enabling', () => {
    const fs = mocks(3);
    fs[2]!.setError(-5);
    fs[2]!.signal();
    fs[1]!.setError(-22);
    fs[1]!.signal();
    fs[0]!.signal();
    const a = DmaFenceArray.create(fs, 1, 1);
    assert.equal(a.getStatus(), -22);
  });

  it('reports status 1 when no member failed', () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    a.enableSwSignaling();
    for (const f of fs) f.signal();
    assert.equal(a.getStatus(), 1);
  });

  it('waitTimeout resolves after the last member and times out with 0 before', async () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    assert.equal(await a.waitTimeout(0), 0);
    assert.equal(await a.waitTimeout(5), 0);
    fs[0]!.signal();
    const w = a.waitTimeout(10_000);
    setTimeout(() => fs[1]!.signal(), 5);
    assert.ok((await w) >= 1);
    assert.equal(await a.waitTimeout(0), 1);
  });

  it('waitTimeoutSync blocks on the members and returns the time left', () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    assert.equal(a.waitTimeoutSync(0), 0);
    assert.equal(a.waitTimeoutSync(3), 0, 'times out: nobody can signal while this thread blocks');
    for (const f of fs) f.signal();
    assert.equal(a.waitTimeoutSync(1000), 1000);
    assert.equal(a.waitSync(), 0);
  });

  it('a blocking wait on an array inside a signalling section is flagged (lockdep-lite)', () => {
    const prev = setDebug(true);
    const c = beginSignalling();
    try {
      const a = DmaFenceArray.create(mocks(2), 1, 1);
      expectErrno(() => a.waitTimeoutSync(1), 'EDEADLK');
      const chain = new DmaFenceChain(null, mock(), 1);
      expectErrno(() => chain.waitTimeoutSync(1), 'EDEADLK');
    } finally {
      endSignalling(c);
      setDebug(prev);
    }
  });

  it('forwards deadlines to every member', () => {
    const seen: bigint[] = [];
    const ops: DmaFenceOps = { ...mockOps, setDeadline: (_f, ns) => seen.push(ns) };
    const fs = [new DmaFence(ops, 1, 1), new DmaFence(ops, 2, 1)];
    const a = DmaFenceArray.create(fs, 3, 1);
    a.setDeadline(1234n);
    assert.deepEqual(seen, [1234n, 1234n]);
    assert.equal(fs[0]!.deadline, 1234n);
  });
});

describe('DmaFenceArray helpers', () => {
  it('matchContext requires every member on the context; plain fences compare their own', () => {
    const a = DmaFenceArray.create([mock(5, 1), mock(5, 2)], 9, 1);
    assert.equal(a.matchContext(5), true);
    assert.equal(a.matchContext(9), false);
    const b = DmaFenceArray.create([mock(5, 1), mock(6, 2)], 9, 1);
    assert.equal(b.matchContext(5), false);
    assert.equal(mock(4, 1).matchContext(4), true);
  });

  it('first/next walk an array, a plain fence and null like dma_fence_array_first/next', () => {
    const fs = mocks(2);
    const a = DmaFenceArray.create(fs, 1, 1);
    assert.equal(DmaFenceArray.first(a), fs[0]);
    assert.equal(DmaFenceArray.next(a, 1), fs[1]);
    assert.equal(DmaFenceArray.next(a, 2), null);
    const p = mock();
    assert.equal(DmaFenceArray.first(p), p);
    assert.equal(DmaFenceArray.next(p, 1), null);
    assert.equal(DmaFenceArray.first(null), null);
    assert.equal(DmaFenceArray.toArray(a), a);
    assert.equal(DmaFenceArray.toArray(p), null);
  });
});

describe('DmaFenceArray descriptors', () => {
  it('share and fromShared rebuild the array over the same members', () => {
    const fs = [mock(0, 1), mock(0, 2)];
    fs[1]!.signal();
    const a = DmaFenceArray.create(fs, DmaFence.contextAlloc(), 3, true);
    const desc = a.share();
    assert.equal(desc.t, 'array');
    const b = DmaFence.fromShared(desc);
    assert.ok(b instanceof DmaFenceArray);
    assert.notEqual(b, a);
    assert.equal(b.context, a.context);
    assert.equal(b.seqno, 3);
    assert.equal(b.signalOnAny, true);
    assert.equal(b.fences[0], fs[0], 'a pending member comes back as the same object');
    assert.equal(b.fences[1]!.isSignaled(), true, 'a signaled member comes back signaled');
    assert.equal(b.isSignaled(), true);
  });

  it('a revived array follows its members', async () => {
    const fs = mocks(2);
    const b = DmaFence.fromShared(DmaFenceArray.create(fs, 1, 1).share());
    const w = b.waitTimeout(10_000);
    fs[0]!.setError(-71);
    fs[0]!.signal();
    fs[1]!.signal();
    assert.ok((await w) >= 1);
    assert.equal(b.getStatus(), -71);
  });

  it('rejects malformed array descriptors with EINVAL', () => {
    const d = mock().share().d;
    expectErrno(
      () => DmaFence.fromShared({ t: 'array', d, c: 1, q: 1, any: false, f: [] }),
      'EINVAL',
    );
    expectErrno(
      () => DmaFence.fromShared({ t: 'array', d, c: -1, q: 1, any: false, f: [] }),
      'EINVAL',
    );
    const nested = DmaFenceArray.create(mocks(1), 1, 1).share();
    expectErrno(
      () => DmaFence.fromShared({ t: 'array', d, c: 1, q: 1, any: false, f: [nested] }),
      'EINVAL',
    );
  });

  it('an array cannot be published as a plain fence', () => {
    const a = DmaFenceArray.create(mocks(1), 1, 1);
    expectErrno(() => a.publish(), 'EINVAL');
  });
});
