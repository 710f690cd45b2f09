// The kernel's sync selftests (tools/testing/selftests/sync: sync_alloc, sync_fence, sync_merge,
// sync_wait, sync_stress_merge) through the real sw_sync timeline and SyncFile, plus the sw_sync
// contract of contracts.md §3.3 and §4 item 3. The stress tests that need several threads
// (sync_stress_parallelism, sync_stress_consumer) are in tests/sync-threads.test.ts.

import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { prng } from '../../tests/_rpc.js';
import { DmaBufError } from '../errors.js';
import { DmaFence } from '../fence/fence.js';
import { DmaFenceArray } from '../fence/fence-array.js';
import { SyncFile } from '../sync-file.js';
import { CHANNELS } from '../trace.js';
import {
  SW_SYNC_GET_DEADLINE,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SW_SYNC_IOC_MAGIC,
  SwSyncTimeline,
} from './index.js';

const FENCE_STATUS_ERROR = -1;
const FENCE_STATUS_ACTIVE = 0;
const FENCE_STATUS_SIGNALED = 1;

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

/** sync_fence_count_with_status(): entries of FILE_INFO with the given status. */
function countWithStatus(s: SyncFile, status: number): number {
  const n = s.info().numFences;
  const fences = s.info({ numFences: n }).fences!;
  if (status === FENCE_STATUS_ERROR) return fences.filter((f) => f.status < 0).length;
  return fences.filter((f) => f.status === status).length;
}

/** sync_fence_size() */
const size = (s: SyncFile): number => s.info().numFences;

/** sync_wait(fd, 0): a poll that says 1 when ready, 0 when not. */
const syncWait0 = (s: SyncFile): number => s.waitSync(0);

describe('sync selftests: sync_alloc', () => {
  it('test_alloc_timeline: a timeline can be created and destroyed', () => {
    const tl = new SwSyncTimeline();
    assert.equal(tl.destroyed, false);
    tl.destroy();
    assert.equal(tl.destroyed, true);
  });

  it('test_alloc_fence: a fence can be created on a timeline', () => {
    using tl = SwSyncTimeline.create('alloc');
    const f = tl.createFence(1);
    assert.ok(f instanceof SyncFile);
    f.put();
  });

  it('test_alloc_fence_negative: creating a fence without a valid timeline fails', () => {
    const tl = new SwSyncTimeline();
    tl.destroy();
    expectErrno(() => tl.createFence(1), 'EBADF');
    using live = new SwSyncTimeline();
    expectErrno(() => live.createFence(-1), 'EINVAL');
    expectErrno(() => live.createFence(2 ** 32), 'EINVAL');
    expectErrno(() => live.createFence(1.5), 'EINVAL');
  });
});

describe('sync selftests: sync_fence', () => {
  it('test_fence_one_timeline_wait: a fence waits until the timeline reaches it', () => {
    using tl = new SwSyncTimeline();
    const fence = tl.createFence(5);
    assert.equal(syncWait0(fence), 0, 'times out');
    tl.inc(1);
    assert.equal(syncWait0(fence), 0, 'still times out at 1');
    tl.inc(4);
    assert.ok(syncWait0(fence) > 0, 'signaled at 5');
    tl.inc(10);
    assert.ok(syncWait0(fence) > 0, 'and stays signaled');
  });

  it('test_fence_one_timeline_merge: a merge on one timeline keeps one point, the last', () => {
    using tl = new SwSyncTimeline();
    const a = tl.createFence(1);
    const b = tl.createFence(2);
    const c = tl.createFence(3);
    let d = SyncFile.merge('mergeFence', b, a);
    d = SyncFile.merge('mergeFence', c, d);
    for (const s of [a, b, c, d]) assert.equal(countWithStatus(s, FENCE_STATUS_ACTIVE), 1);
    tl.inc(1);
    assert.equal(countWithStatus(a, FENCE_STATUS_SIGNALED), 1);
    assert.equal(countWithStatus(d, FENCE_STATUS_ACTIVE), 1, 'd signaled too early');
    tl.inc(1);
    assert.equal(countWithStatus(b, FENCE_STATUS_SIGNALED), 1);
    assert.equal(countWithStatus(d, FENCE_STATUS_ACTIVE), 1, 'd signaled too early');
    tl.inc(1);
    assert.equal(countWithStatus(c, FENCE_STATUS_SIGNALED), 1);
    assert.equal(countWithStatus(d, FENCE_STATUS_ACTIVE), 0);
    assert.equal(countWithStatus(d, FENCE_STATUS_SIGNALED), 1);
  });
});

describe('sync selftests: sync_merge', () => {
  it('test_fence_merge_same_fence: merging a fence with itself signals with it', () => {
    using tl = new SwSyncTimeline();
    const fence = tl.createFence(5);
    const merged = SyncFile.merge('mergeFence', fence, fence);
    assert.equal(countWithStatus(merged, FENCE_STATUS_SIGNALED), 0);
    tl.inc(5);
    assert.equal(countWithStatus(merged, FENCE_STATUS_SIGNALED), 1);
  });
});

describe('sync selftests: sync_wait', () => {
  it('test_fence_multi_timeline_wait: a merge over three timelines signals point by point', () => {
    using ta = new SwSyncTimeline('A');
    using tb = new SwSyncTimeline('B');
    using tc = new SwSyncTimeline('C');
    const fa = ta.createFence(5);
    const fb = tb.createFence(5);
    const fcc = tc.createFence(5);
    let merged = SyncFile.merge('mergeFence', fb, fa);
    merged = SyncFile.merge('mergeFence', fcc, merged);
    assert.equal(countWithStatus(merged, FENCE_STATUS_ACTIVE), 3);
    assert.equal(syncWait0(merged), 0);
    const step = (tl: SwSyncTimeline, active: number, signaled: number): void => {
      tl.inc(5);
      assert.equal(countWithStatus(merged, FENCE_STATUS_ACTIVE), active);
      assert.equal(countWithStatus(merged, FENCE_STATUS_SIGNALED), signaled);
    };
    step(ta, 2, 1);
    step(tb, 1, 2);
    step(tc, 0, 3);
    assert.ok(merged.waitSync(100) > 0);
  });
});

describe('sync selftests: sync_stress_merge', () => {
  it('test_merge_stress_random_merge: random merges over 32 timelines keep one point each', () => {
    const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 100_000);
    const rnd = prng(seed);
    try {
      const timelineCount = 32;
      const mergeCount = 1024; // the kernel does 32K; the shape is the same
      const timelines = Array.from({ length: timelineCount }, () => new SwSyncTimeline());
      const fenceMap = new Array<number>(timelineCount).fill(-1);
      let fence = timelines[0]!.createFence(0);
      fenceMap[0] = 0;
      for (let i = 0; i < mergeCount; i++) {
        const k = Math.floor(rnd() * timelineCount);
        const syncPoint = Math.floor(rnd() * 0x7fff_ffff); // rand()
        if (fenceMap[k] === -1 || fenceMap[k]! < syncPoint) fenceMap[k] = syncPoint;
        const tmp = timelines[k]!.createFence(syncPoint);
        const merged = SyncFile.merge('merge', tmp, fence);
        tmp.put();
        fence.put();
        fence = merged;
      }
      // A timeline left at its born-signaled point 0 has nothing pending in the merge.
      const expected = fenceMap.filter((v) => v > 0).length;
      assert.equal(size(fence), expected, 'quantity of elements');
      for (let k = 0; k < timelineCount; k++) {
        if (fenceMap[k]! > 0) {
          assert.equal(syncWait0(fence), 0, 'signaled too early');
          timelines[k]!.inc(fenceMap[k]!);
        }
      }
      assert.ok(syncWait0(fence) > 0, 'the merge triggers');
      for (const tl of timelines) tl.destroy();
    } catch (e) {
      console.error(`test_merge_stress_random_merge seed ${seed} (DMABUF_SEED=${seed})`);
      throw e;
    }
  });
});

describe('SwSyncTimeline', () => {
  it('has the kernel ioctl numbers', () => {
    assert.equal(SW_SYNC_IOC_MAGIC, 'W'.charCodeAt(0));
    assert.equal(SW_SYNC_IOC_CREATE_FENCE, 0xc0285700);
    assert.equal(SW_SYNC_IOC_INC, 0x40045701);
    assert.equal(SW_SYNC_GET_DEADLINE, 0xc0105702);
  });

  it('starts at 0 on a fresh context, named after the thread by default, names cut to 31 bytes', () => {
    using a = new SwSyncTimeline();
    using b = new SwSyncTimeline('n'.repeat(40));
    assert.equal(a.value, 0);
    assert.equal(a.name, 'main');
    assert.equal(b.name.length, 31);
    assert.notEqual(a.context, b.context);
    expectErrno(() => new SwSyncTimeline(7 as never), 'EINVAL');
  });

  it('points are sw_sync fences on the timeline context with the timeline name', () => {
    using tl = new SwSyncTimeline('frames');
    const p = tl.createPoint(3);
    assert.ok(p instanceof DmaFence);
    assert.equal(p.driverName, 'sw_sync');
    assert.equal(p.timelineName, 'frames');
    assert.equal(p.context, tl.context);
    assert.equal(p.seqno, 3);
    assert.equal(p.ops.fenceValueStr!(p), '3');
    assert.equal(p.ops.timelineValueStr!(p), '0');
  });

  it('value 0 on a fresh timeline, and any passed value, is born signaled', () => {
    using tl = new SwSyncTimeline();
    assert.equal(tl.createPoint(0).isSignaled(), true);
    assert.equal(tl.createFence(0).poll(), true);
    tl.inc(10);
    assert.equal(tl.createPoint(7).testSignaledFlag(), true);
    assert.equal(tl.createPoint(10).getStatus(), 1);
    assert.equal(tl.createPoint(11).getStatus(), 0);
  });

  it('compares with 32-bit wrap-around: more than INT_MAX ahead counts as passed', () => {
    using tl = new SwSyncTimeline();
    assert.equal(tl.createPoint(0x7fff_ffff).isSignaled(), false, 'INT_MAX ahead is pending');
    assert.equal(tl.createPoint(0x8000_0000).isSignaled(), true, 'INT_MAX + 1 ahead has passed');
    assert.equal(tl.createPoint(0xffff_ffff).isSignaled(), true);
  });

  it('the same pending value gives the same fence; a new file wraps it', () => {
    using tl = new SwSyncTimeline();
    const a = tl.createFence(4);
    const b = tl.createFence(4);
    assert.notEqual(a, b);
    assert.equal(a.fence, b.fence);
    assert.equal(tl.createPoint(4), a.fence);
    tl.inc(4);
    assert.notEqual(tl.createPoint(4), a.fence, 'once signaled, a new (born-signaled) fence');
  });

  it('inc signals the passed points in value order, whatever the creation order', () => {
    using tl = new SwSyncTimeline();
    const order: number[] = [];
    for (const v of [5, 2, 9, 1, 7, 3]) tl.createPoint(v).addCallback((f) => order.push(f.seqno));
    tl.inc(6);
    assert.deepEqual(order, [1, 2, 3, 5]);
    tl.inc(10);
    assert.deepEqual(order, [1, 2, 3, 5, 7, 9]);
    assert.equal(tl.value, 16);
  });

  it('inc splits increments above INT_MAX into INT_MAX steps and wraps at 2^32', () => {
    using tl = new SwSyncTimeline();
    const values: number[] = [];
    const sub = (m: unknown): void => {
      values.push((m as { value: number }).value);
    };
    diagnosticsChannel.subscribe(CHANNELS.swSyncTimeline, sub);
    try {
      const p = tl.createPoint(0x7fff_fffe);
      tl.inc(0xffff_ffff);
      assert.deepEqual(values, [0x7fff_ffff, 0xffff_fffe, 0xffff_ffff]);
      assert.equal(tl.value, 0xffff_ffff);
      assert.equal(p.isSignaled(), true);
      tl.inc(2);
      assert.equal(tl.value, 1);
    } finally {
      diagnosticsChannel.unsubscribe(CHANNELS.swSyncTimeline, sub);
    }
  });

  it('inc rejects non-u32 increments with EINVAL', () => {
    using tl = new SwSyncTimeline();
    expectErrno(() => tl.inc(-1), 'EINVAL');
    expectErrno(() => tl.inc(2 ** 32), 'EINVAL');
    expectErrno(() => tl.inc(Number.NaN), 'EINVAL');
    tl.inc(0);
    assert.equal(tl.value, 0);
  });

  it('inc signals every due point even when a callback throws, then rethrows', () => {
    using tl = new SwSyncTimeline();
    const a = tl.createPoint(1);
    const b = tl.createPoint(2);
    a.addCallback(() => {
      throw new Error('boom');
    });
    assert.throws(() => tl.inc(2), /boom/);
    assert.equal(b.testSignaledFlag(), true);
  });

  it('destroy signals pending points with -ENOENT and closes the timeline', () => {
    const tl = new SwSyncTimeline();
    const done = tl.createFence(1);
    tl.inc(1);
    const pending = tl.createFence(5);
    tl.destroy();
    assert.equal(pending.poll(), true);
    assert.equal(pending.info({ numFences: 1 }).fences![0]!.status, -2);
    assert.equal(pending.info().status, -2);
    assert.equal(done.info().status, 1);
    tl.destroy();
    expectErrno(() => tl.inc(1), 'EBADF');
    expectErrno(() => tl.createPoint(9), 'EBADF');
    expectErrno(() => tl.getDeadline(done), 'EBADF');
  });

  it('getDeadline reports the earliest deadline; ENOENT without one; EINVAL for other fences', () => {
    using tl = new SwSyncTimeline();
    const f = tl.createFence(3);
    expectErrno(() => tl.getDeadline(f), 'ENOENT');
    f.setDeadline(2000n);
    f.setDeadline(3000n);
    assert.equal(tl.getDeadline(f), 2000n);
    f.setDeadline(1000n);
    assert.equal(tl.getDeadline(f), 1000n);
    f.setDeadline(0n);
    assert.equal(tl.getDeadline(f), 0n, 'a deadline of 0 is kept as 0');
    using otherTl = new SwSyncTimeline();
    const merged = SyncFile.merge('m', f, otherTl.createFence(4));
    expectErrno(() => tl.getDeadline(merged), 'EINVAL');
    const sameTl = SyncFile.merge('m', f, tl.createFence(4));
    assert.equal(sameTl.fence.seqno, 4, 'one timeline: the merge is the later point itself');
    expectErrno(() => tl.getDeadline(sameTl), 'ENOENT');
    const other = SyncFile.create(DmaFenceArray.create([tl.createPoint(9)], 1, 1));
    expectErrno(() => tl.getDeadline(other), 'EINVAL');
    expectErrno(() => tl.getDeadline({} as SyncFile), 'EINVAL');
  });

  it('deadlines set on a merge reach each sw_sync point', () => {
    using ta = new SwSyncTimeline();
    using tb = new SwSyncTimeline();
    const a = ta.createFence(1);
    const b = tb.createFence(1);
    SyncFile.merge('m', a, b).setDeadline(777n);
    assert.equal(ta.getDeadline(a), 777n);
    assert.equal(tb.getDeadline(b), 777n);
  });

  it('debugInfo prints objs (name: value and active points) then an empty fences section', () => {
    using tl = new SwSyncTimeline('dbg-tl');
    tl.createPoint(3);
    tl.createPoint(8);
    tl.inc(1);
    const text = SwSyncTimeline.debugInfo();
    assert.ok(text.startsWith('objs:\n--------------\n'));
    assert.ok(text.includes('dbg-tl: 1\n  fence active: 3 / 1\n  fence active: 8 / 1\n\n'), text);
    assert.ok(text.endsWith('fences:\n--------------\n'));
    tl.destroy();
    assert.ok(!SwSyncTimeline.debugInfo().includes('dbg-tl'), 'destroyed timelines are gone');
  });
});
