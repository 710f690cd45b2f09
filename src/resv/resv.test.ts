// The kernel's reservation-object selftests (drivers/dma-buf/st-dma-resv.c) over all four usages,
// the contract details of contracts.md §2.8 and §4 items 16–18, and a property test of
// add/replace/copy/iterate against a model of the kernel's rules.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Domain } from '../domain/domain.js';
import { DmaBufError } from '../errors.js';
import { slotGet, slotRefs } from '../fence/_shared.js';
import { DmaFence, type DmaFenceOps } from '../fence/fence.js';
import { DmaFenceArray } from '../fence/fence-array.js';
import { lockValue, OWNER_THREAD_SHIFT, R_COUNT, R_INLINE, R_LOCK } from './_record.js';
import { _setFenceArrayFactory, DmaResv, DmaResvUsage } from './resv.js';
import { WwAcquireCtx } from './ww-mutex.js';

const ops: DmaFenceOps = { getDriverName: () => 'selftest', getTimelineName: () => 'selftest' };
/** The kernel test's alloc_fence: context 0, seqno 0, every time. */
const allocFence = (context = 0, seqno = 0): DmaFence => new DmaFence(ops, context, seqno);
const USAGES = [
  DmaResvUsage.KERNEL,
  DmaResvUsage.WRITE,
  DmaResvUsage.READ,
  DmaResvUsage.BOOKKEEP,
] as const;
const NAMES = ['KERNEL', 'WRITE', 'READ', 'BOOKKEEP'];

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

/** A reservation object locked by this thread (trylock: nobody else uses it). */
function locked(): DmaResv {
  const r = new DmaResv();
  assert.equal(r.trylock(), true);
  return r;
}

function add(r: DmaResv, f: DmaFence, usage: DmaResvUsage): void {
  r.reserveFences(1);
  r.addFence(f, usage);
}

const listed = (r: DmaResv, usage: DmaResvUsage = DmaResvUsage.BOOKKEEP) =>
  [...r.fences(usage)].map((e) => [e.fence, e.usage] as const);

describe('dma-resv selftests (st-dma-resv)', () => {
  it('sanitycheck: a reservation object can be locked, unlocked and finished', async () => {
    const f = allocFence();
    f.signal();
    const r = new DmaResv();
    assert.equal(await r.lock(null), 0);
    r.unlock();
    r.fini();
  });

  for (const usage of USAGES) {
    const u = NAMES[usage];

    it(`test_signaling(${u}): testSignaled turns true when the fence signals`, async () => {
      const f = allocFence();
      const r = new DmaResv();
      assert.equal(await r.lock(null), 0);
      r.reserveFences(1);
      r.addFence(f, usage);
      assert.equal(r.testSignaled(usage), false, 'unexpectedly signaled');
      f.signal();
      assert.equal(r.testSignaled(usage), true, 'not reporting signaled');
      r.unlock();
      r.fini();
    });

    it(`test_for_each(${u}): the locked iterator yields the fence with its usage`, async () => {
      const f = allocFence();
      const r = new DmaResv();
      assert.equal(await r.lock(null), 0);
      r.reserveFences(1);
      r.addFence(f, usage);
      const seen = [...r.fences(usage)];
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.fence, f, 'unexpected fence');
      assert.equal(seen[0]!.usage, usage, 'unexpected fence usage');
      assert.equal(seen[0]!.isRestarted, true);
      f.signal();
      r.unlock();
      r.fini();
    });

    it(`test_for_each_unlocked(${u}): restarts from the start when the list is replaced`, async () => {
      const f = allocFence();
      const r = new DmaResv();
      assert.equal(await r.lock(null), 0);
      r.reserveFences(1);
      r.addFence(f, usage);
      r.unlock();
      let state = 'first';
      const it = r.fencesUnlocked(usage);
      for (const e of it) {
        assert.equal(e.isRestarted, true, 'no restart flag');
        assert.equal(it.isRestarted, true);
        assert.equal(e.fence, f, 'unexpected fence');
        assert.equal(e.usage, usage, 'unexpected fence usage');
        if (state === 'first') {
          state = 'restarting';
          // Replace the list under the iterator: that should trigger a restart.
          assert.equal(r.trylock(), true);
          r.reserveFences(16);
          r.unlock();
        } else if (state === 'restarting') state = 'done';
        else assert.fail('more than one fence found');
      }
      assert.equal(state, 'done', 'no fence found after the restart');
      f.signal();
      r.fini();
    });

    it(`test_get_fences(${u}): getFences returns the fence`, async () => {
      const f = allocFence();
      const r = new DmaResv();
      assert.equal(await r.lock(null), 0);
      r.reserveFences(1);
      r.addFence(f, usage);
      r.unlock();
      const fences = r.getFences(usage);
      assert.equal(fences.length, 1);
      assert.equal(fences[0], f);
      f.signal();
      r.fini();
    });
  }
});

describe('DmaResv: usages', () => {
  it('asking for a usage returns the fences of that usage and every lower one', () => {
    const r = locked();
    const fs = USAGES.map((u) => {
      const f = allocFence(DmaFence.contextAlloc(), 1);
      add(r, f, u);
      return f;
    });
    for (const u of USAGES) {
      assert.deepEqual(r.getFences(u), fs.slice(0, u + 1));
      assert.deepEqual(
        [...r.fences(u)].map((e) => e.fence),
        fs.slice(0, u + 1),
      );
    }
    r.unlock();
  });

  it('usageRw: a write waits for readers and writers, a read for writers', () => {
    assert.equal(DmaResv.usageRw(true), DmaResvUsage.READ);
    assert.equal(DmaResv.usageRw(false), DmaResvUsage.WRITE);
  });

  it('bad usages are EINVAL', () => {
    const r = locked();
    r.reserveFences(1);
    for (const bad of [-1, 4, 1.5, '1', null]) {
      expectErrno(() => r.addFence(allocFence(), bad as never), 'EINVAL');
      expectErrno(() => r.getFences(bad as never), 'EINVAL');
    }
    r.unlock();
  });
});

describe('DmaResv: adding fences', () => {
  it('adding needs the lock and a reservation made since locking', async () => {
    const r = new DmaResv();
    expectErrno(() => r.reserveFences(1), 'EPERM');
    expectErrno(() => r.addFence(allocFence(), DmaResvUsage.READ), 'EPERM');
    expectErrno(() => [...r.fences(DmaResvUsage.READ)], 'EPERM');
    await r.lock(null);
    expectErrno(() => r.addFence(allocFence(), DmaResvUsage.READ), 'EINVAL');
    expectErrno(() => r.reserveFences(0), 'EINVAL');
    expectErrno(() => r.reserveFences(-1), 'EINVAL');
    r.reserveFences(2);
    r.addFence(allocFence(), DmaResvUsage.READ);
    r.addFence(allocFence(), DmaResvUsage.READ);
    expectErrno(() => r.addFence(allocFence(), DmaResvUsage.READ), 'EINVAL');
    r.reserveFences(1);
    r.unlock();
    await r.lock(null);
    expectErrno(() => r.addFence(allocFence(), DmaResvUsage.READ), 'EINVAL');
    r.unlock();
  });

  it('reservations do not add up: reserving 2 then 1 allows 2 adds', () => {
    const r = locked();
    r.reserveFences(2);
    r.reserveFences(1);
    r.addFence(allocFence(), DmaResvUsage.READ);
    r.addFence(allocFence(), DmaResvUsage.READ);
    expectErrno(() => r.addFence(allocFence(), DmaResvUsage.READ), 'EINVAL');
    r.unlock();
  });

  it('container fences are refused with EINVAL', () => {
    class Container extends DmaFence {
      override get isContainer(): boolean {
        return true;
      }
    }
    const r = locked();
    r.reserveFences(1);
    expectErrno(() => r.addFence(new Container(ops, 1, 1), DmaResvUsage.READ), 'EINVAL');
    expectErrno(() => r.addFence({} as never, DmaResvUsage.READ), 'EINVAL');
    r.unlock();
  });

  it('a later fence of the same context replaces an earlier one; an earlier one is appended', () => {
    const r = locked();
    const ctx = DmaFence.contextAlloc();
    const f1 = allocFence(ctx, 1);
    const f2 = allocFence(ctx, 2);
    add(r, f1, DmaResvUsage.READ);
    add(r, f2, DmaResvUsage.READ);
    assert.deepEqual(listed(r), [[f2, DmaResvUsage.READ]]);
    const f0 = allocFence(ctx, 0);
    add(r, f0, DmaResvUsage.READ);
    assert.deepEqual(listed(r), [
      [f2, DmaResvUsage.READ],
      [f0, DmaResvUsage.READ],
    ]);
    // An equal seqno on another fence object is not "later" than f2, but it is later than f0.
    const same = allocFence(ctx, 2);
    add(r, same, DmaResvUsage.READ);
    assert.deepEqual(listed(r), [
      [f2, DmaResvUsage.READ],
      [same, DmaResvUsage.READ],
    ]);
    r.unlock();
  });

  it('re-adding with a lower usage promotes in place; with a higher one it appends (never degrades)', () => {
    const r = locked();
    const f = allocFence(DmaFence.contextAlloc(), 1);
    add(r, f, DmaResvUsage.READ);
    add(r, f, DmaResvUsage.WRITE);
    assert.deepEqual(listed(r), [[f, DmaResvUsage.WRITE]]);
    add(r, f, DmaResvUsage.READ);
    assert.deepEqual(listed(r), [
      [f, DmaResvUsage.WRITE],
      [f, DmaResvUsage.READ],
    ]);
    const g = allocFence(f.context, 2);
    add(r, g, DmaResvUsage.BOOKKEEP);
    assert.equal(r.numFences, 3, 'BOOKKEEP does not replace a same-context WRITE or READ fence');
    r.unlock();
  });

  it("a signaled fence's entry is reused by any new fence, which takes the new usage", () => {
    const r = locked();
    const a = allocFence(DmaFence.contextAlloc(), 1);
    const b = allocFence(DmaFence.contextAlloc(), 1);
    add(r, a, DmaResvUsage.KERNEL);
    add(r, b, DmaResvUsage.READ);
    a.signal();
    const c = allocFence(DmaFence.contextAlloc(), 1);
    add(r, c, DmaResvUsage.BOOKKEEP);
    assert.deepEqual(listed(r), [
      [c, DmaResvUsage.BOOKKEEP],
      [b, DmaResvUsage.READ],
    ]);
    r.unlock();
  });

  it('the locked iterator yields signaled fences; the unlocked readers skip them', () => {
    const r = locked();
    const a = allocFence(DmaFence.contextAlloc(), 1);
    const b = allocFence(DmaFence.contextAlloc(), 1);
    add(r, a, DmaResvUsage.WRITE);
    add(r, b, DmaResvUsage.WRITE);
    a.signal();
    assert.deepEqual(
      [...r.fences(DmaResvUsage.WRITE)].map((e) => e.fence),
      [a, b],
    );
    assert.deepEqual(r.getFences(DmaResvUsage.WRITE), [b]);
    assert.equal(r.testSignaled(DmaResvUsage.WRITE), false);
    b.signal();
    assert.equal(r.testSignaled(DmaResvUsage.BOOKKEEP), true);
    r.unlock();
  });

  it('a fence signaled before it is added is stored, and seen as signaled', () => {
    const r = locked();
    const f = allocFence(DmaFence.contextAlloc(), 3);
    f.setError(-5);
    f.signal();
    add(r, f, DmaResvUsage.READ);
    const [e] = [...r.fences(DmaResvUsage.READ)];
    assert.equal(e!.fence, f);
    assert.equal(r.getFences(DmaResvUsage.READ).length, 0);
    assert.equal(r.testSignaled(DmaResvUsage.READ), true);
    r.unlock();
  });

  it('growing past the inline entries and past one chunk keeps every fence in order', () => {
    const r = locked();
    const fs: DmaFence[] = [];
    for (let i = 0; i < 100; i++) {
      const f = allocFence(DmaFence.contextAlloc(), i);
      add(r, f, (i % 4) as DmaResvUsage);
      fs.push(f);
    }
    assert.equal(r.numFences, 100);
    assert.deepEqual(
      [...r.fences(DmaResvUsage.BOOKKEEP)].map((e) => e.fence),
      fs,
    );
    assert.deepEqual(
      r.getFences(DmaResvUsage.WRITE),
      fs.filter((_, i) => i % 4 <= 1),
    );
    r.reserveFences(200);
    for (const f of fs) f.signal();
    assert.equal(r.testSignaled(DmaResvUsage.BOOKKEEP), true);
    r.unlock();
    r.fini();
  });

  it('reserveFences drops signaled fences when it grows the list', () => {
    const r = locked();
    const fs = Array.from({ length: 5 }, (_, i) => allocFence(DmaFence.contextAlloc(), i));
    r.reserveFences(5);
    for (const f of fs) r.addFence(f, DmaResvUsage.READ);
    fs[1]!.signal();
    fs[3]!.signal();
    r.reserveFences(1); // room for 5 + 1 is needed: a new list, without the signaled ones
    assert.deepEqual(
      [...r.fences(DmaResvUsage.READ)].map((e) => e.fence),
      [fs[0], fs[2], fs[4]],
    );
    r.unlock();
  });
});

describe('DmaResv: replace and copy', () => {
  it('replaceFences swaps every fence of a context for the replacement with the new usage', () => {
    const r = locked();
    const ctx = DmaFence.contextAlloc();
    const a = allocFence(ctx, 1);
    const other = allocFence(DmaFence.contextAlloc(), 1);
    const b = allocFence(ctx, 0);
    add(r, a, DmaResvUsage.BOOKKEEP);
    add(r, other, DmaResvUsage.READ);
    add(r, b, DmaResvUsage.BOOKKEEP);
    const repl = allocFence(DmaFence.contextAlloc(), 7);
    r.replaceFences(ctx, repl, DmaResvUsage.KERNEL);
    assert.deepEqual(listed(r), [
      [repl, DmaResvUsage.KERNEL],
      [other, DmaResvUsage.READ],
      [repl, DmaResvUsage.KERNEL],
    ]);
    r.replaceFences(12345678, allocFence(), DmaResvUsage.READ);
    assert.equal(r.numFences, 3, 'no fence of that context: nothing changes');
    r.unlock();
  });

  for (const n of [3, 12]) {
    it(`copyFences copies the unsignaled fences of src (${n} fences)`, () => {
      const src = locked();
      const fs = Array.from({ length: n }, (_, i) => allocFence(DmaFence.contextAlloc(), i));
      for (const [i, f] of fs.entries()) add(src, f, (i % 4) as DmaResvUsage);
      fs[0]!.signal();
      src.unlock();
      const dst = locked();
      const mine = allocFence(DmaFence.contextAlloc(), 1);
      add(dst, mine, DmaResvUsage.WRITE);
      assert.equal(dst.copyFences(src), 0);
      assert.deepEqual(
        listed(dst),
        fs.slice(1).map((f, i) => [f, ((i + 1) % 4) as DmaResvUsage]),
      );
      expectErrno(() => dst.addFence(allocFence(), DmaResvUsage.READ), 'EINVAL');
      // Copy again, now from an object whose list is inline, into one that was replaced.
      const small = locked();
      add(small, mine, DmaResvUsage.READ);
      small.unlock();
      dst.copyFences(small);
      assert.deepEqual(listed(dst), [[mine, DmaResvUsage.READ]]);
      dst.unlock();
      expectErrno(() => src.copyFences(dst), 'EPERM');
    });
  }
});

describe('DmaResv: singleton, waits, deadlines, describe', () => {
  it('getSingleton: null for none, the fence for one, a fresh array for several', () => {
    const r = locked();
    assert.equal(r.getSingleton(DmaResvUsage.BOOKKEEP), null);
    const a = allocFence(DmaFence.contextAlloc(), 1);
    add(r, a, DmaResvUsage.WRITE);
    assert.equal(r.getSingleton(DmaResvUsage.BOOKKEEP), a);
    const b = allocFence(DmaFence.contextAlloc(), 1);
    add(r, b, DmaResvUsage.READ);
    assert.equal(r.getSingleton(DmaResvUsage.WRITE), a);
    const calls: unknown[][] = [];
    const fake = allocFence(DmaFence.contextAlloc(), 1);
    const old = _setFenceArrayFactory((...args) => {
      calls.push(args);
      return fake;
    });
    try {
      const before = DmaFence.contextAlloc();
      assert.equal(r.getSingleton(DmaResvUsage.READ), fake);
      assert.equal(calls.length, 1);
      const [fences, context, seqno, signalOnAny] = calls[0]!;
      assert.deepEqual(fences, [a, b]);
      assert.ok((context as number) > before, 'a fresh context');
      assert.equal(seqno, 1);
      assert.equal(signalOnAny, false);
    } finally {
      _setFenceArrayFactory(old);
    }
    const arr = r.getSingleton(DmaResvUsage.READ)!;
    assert.ok(arr instanceof DmaFenceArray, 'the real array');
    assert.deepEqual([...(arr as DmaFenceArray).fences], [a, b]);
    assert.equal(arr.seqno, 1);
    assert.equal(arr.isSignaled(), false);
    a.signal();
    assert.equal(arr.isSignaled(), false, 'an all-array waits for every member');
    b.signal();
    assert.equal(arr.isSignaled(), true);
    r.unlock();
  });

  it('waitTimeout: 0 polls (1 or 0); signaled returns the timeout; pending times out with 0', async () => {
    const r = locked();
    const f = allocFence(DmaFence.contextAlloc(), 1);
    add(r, f, DmaResvUsage.WRITE);
    r.unlock();
    assert.equal(await r.waitTimeout(DmaResvUsage.READ, 0), 0);
    assert.equal(await r.waitTimeout(DmaResvUsage.KERNEL, 0), 1, 'nothing at KERNEL');
    assert.equal(await r.waitTimeout(DmaResvUsage.KERNEL, 50), 50);
    assert.equal(await r.waitTimeout(DmaResvUsage.READ, 20), 0);
    assert.equal(r.waitTimeoutSync(DmaResvUsage.READ, 5), 0);
    await assert.rejects(
      r.waitTimeout(DmaResvUsage.READ, -1),
      (e: DmaBufError) => e.code === 'EINVAL',
    );
    await assert.rejects(
      r.waitTimeout(DmaResvUsage.READ, Number.NaN),
      (e: DmaBufError) => e.code === 'EINVAL',
    );
    const ac = new AbortController();
    const aborted = r.waitTimeout(DmaResvUsage.READ, 10_000, { signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await assert.rejects(aborted, (e: DmaBufError) => e.code === 'ERESTARTSYS');
    setTimeout(() => f.signal(), 5);
    const left = await r.waitTimeout(DmaResvUsage.BOOKKEEP, 10_000);
    assert.ok(left >= 1 && left <= 10_000);
    assert.equal(await r.waitTimeout(DmaResvUsage.READ, 0), 1);
    assert.equal(r.waitTimeoutSync(DmaResvUsage.READ, 0), 1);
    assert.equal(r.waitTimeoutSync(DmaResvUsage.READ, 7), 7);
    assert.equal(await r.waitTimeout(DmaResvUsage.READ, Infinity), Infinity);
  });

  it('waitTimeout waits for every fence', async () => {
    const r = locked();
    const fs = Array.from({ length: 3 }, () => allocFence(DmaFence.contextAlloc(), 1));
    for (const f of fs) add(r, f, DmaResvUsage.READ);
    r.unlock();
    const w = r.waitTimeout(DmaResvUsage.READ, 10_000);
    let done = false;
    w.then(() => (done = true));
    fs[2]!.signal();
    fs[0]!.signal();
    await new Promise((res) => setTimeout(res, 5));
    assert.equal(done, false);
    fs[1]!.signal();
    assert.ok((await w) >= 1);
  });

  it('setDeadline reaches every unsignaled fence at or below the usage', () => {
    const r = locked();
    const a = allocFence(DmaFence.contextAlloc(), 1);
    const b = allocFence(DmaFence.contextAlloc(), 1);
    add(r, a, DmaResvUsage.WRITE);
    add(r, b, DmaResvUsage.BOOKKEEP);
    r.unlock();
    r.setDeadline(DmaResvUsage.READ, 12345n);
    assert.equal(a.deadline, 12345n);
    assert.equal(b.deadline, 0n);
    expectErrno(() => r.setDeadline(DmaResvUsage.READ, 1 as never), 'EINVAL');
  });

  it('describe: one line per fence up to READ, in the kernel format', () => {
    const named: DmaFenceOps = { getDriverName: () => 'drv', getTimelineName: () => 'tl' };
    const r = locked();
    const fs = USAGES.map((u, i) => {
      const f = new DmaFence(named, 40 + i, 10 + i);
      add(r, f, u);
      return f;
    });
    fs[1]!.signal();
    assert.equal(
      r.describe(),
      '\tkernel fence:40:10 tl drv unsignalled\n' +
        '\twrite fence:41:11 tl drv signalled\n' +
        '\tread fence:42:12 tl drv unsignalled\n',
    );
    r.unlock();
  });
});

describe('DmaResv: sharing and lifetime', () => {
  it('fromShared in the same thread gives back the same object; bad descriptors fail', () => {
    const r = new DmaResv();
    const desc = r.share();
    assert.equal(DmaResv.fromShared(desc), r);
    expectErrno(() => DmaResv.fromShared({} as never), 'EINVAL');
    expectErrno(() => DmaResv.fromShared({ ...desc, d: desc.d + 1 }), 'EXDEV');
    expectErrno(() => DmaResv.fromShared({ ...desc, g: desc.g + 1 }), 'EBADF');
  });

  it('fini frees the record with the last reference and puts its fences', () => {
    const d = Domain.current();
    const r = DmaResv.create();
    const f = allocFence(DmaFence.contextAlloc(), 1);
    assert.equal(r.trylock(), true);
    add(r, f, DmaResvUsage.READ);
    const slot = f._slot;
    assert.equal(slotRefs(d, slot), 2, 'the fence itself and the entry');
    expectErrno(() => r.fini(), 'EBUSY');
    r.unlock();
    const extra = r.share(); // a second reference, as a descriptor in flight
    r.fini();
    assert.equal(slotRefs(d, slot), 2, 'still referenced by the descriptor');
    const again = DmaResv.fromShared(extra);
    assert.notEqual(again, r);
    assert.deepEqual(again.getFences(DmaResvUsage.READ), [f]);
    again.fini();
    assert.equal(slotRefs(d, slot), 1, 'the entry reference was put');
    assert.equal(d.tables.resv.isAllocated(r._slot), false);
    expectErrno(() => r.isLocked(), 'EBADF');
    r.fini();
  });

  it('lock, lockSlow, lockInterruptible, lockingCtx and ownerDied go through the ww-mutex', async () => {
    const r = new DmaResv();
    const ctx = new WwAcquireCtx();
    assert.equal(await r.lock(ctx), 0);
    assert.equal(r.lockingCtx, ctx);
    assert.equal(r.isHeld(ctx), true);
    assert.equal(await r.lock(ctx), -114);
    assert.equal(r.ownerDied, false);
    r.unlock();
    assert.equal(await r.lockSlow(ctx), 0);
    r.unlock();
    assert.equal(await r.lockInterruptible(null), 0);
    expectErrno(() => r.lockSync(null), 'EDEADLK');
    r.unlock();
    assert.equal(r.lockSync(ctx), 0);
    r.unlock();
    ctx.fini();
  });

  it("a dead holder's half-done append is completed and the next locker is told", async () => {
    const d = Domain.current();
    const r = locked();
    const f = allocFence(DmaFence.contextAlloc(), 1);
    add(r, f, DmaResvUsage.READ);
    r.unlock();
    // A (simulated) thread locks it, reserves, writes an entry and dies before publishing it.
    const t = d.allocThread();
    const T = d.tables.resv;
    Atomics.store(T.i64, (r._b + R_LOCK) >> 1, lockValue((t << OWNER_THREAD_SHIFT) | 5, 3));
    const g = allocFence(DmaFence.contextAlloc(), 1);
    g.publish(d);
    slotGet(d, g._slot);
    const entry = (BigInt(g._slot) << 34n) | (BigInt(g._gen >>> 0) << 2n) | 1n;
    Atomics.store(T.i64, ((r._b + R_INLINE) >> 1) + 1, entry);
    assert.equal(Atomics.load(T.i32, r._b + R_COUNT), 1);
    d.threadExited(t);
    assert.equal(await r.lock(null), 0);
    assert.equal(r.ownerDied, true);
    assert.deepEqual(listed(r), [
      [f, DmaResvUsage.READ],
      [g, DmaResvUsage.WRITE],
    ]);
    expectErrno(() => r.addFence(allocFence(), DmaResvUsage.READ), 'EINVAL');
    r.unlock();
  });
});

// ---- property test ----------------------------------------------------------------------------

/** The kernel's rules, on plain arrays. */
interface Model {
  entries: { f: number; u: number }[];
  max: number;
  overflow: boolean;
  reserved: number;
}

type Cmd =
  | { k: 'add'; f: number; u: number }
  | { k: 'signal'; f: number }
  | { k: 'reserve'; n: number }
  | { k: 'relock' }
  | { k: 'replace'; c: number; f: number; u: number }
  | { k: 'copy'; from: number[] };

describe('DmaResv: property test against a model', () => {
  it('add / signal / reserve / replace / copy / relock agree with the kernel rules', () => {
    const NF = 12;
    const cmd = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ k: fc.constant('add' as const), f: fc.nat(NF - 1), u: fc.nat(3) }),
      },
      { weight: 2, arbitrary: fc.record({ k: fc.constant('signal' as const), f: fc.nat(NF - 1) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          k: fc.constant('reserve' as const),
          n: fc.integer({ min: 1, max: 40 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ k: fc.constant('relock' as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          k: fc.constant('replace' as const),
          c: fc.nat(2),
          f: fc.nat(NF - 1),
          u: fc.nat(3),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          k: fc.constant('copy' as const),
          from: fc.array(fc.nat(NF - 1), { maxLength: 8 }),
        }),
      },
    );
    fc.assert(
      fc.property(fc.array(cmd as fc.Arbitrary<Cmd>, { maxLength: 60 }), fc.nat(3), (cmds, q) => {
        const base = DmaFence.contextAlloc(3);
        // Fences on three contexts, with seqnos that repeat.
        const fs = Array.from({ length: NF }, (_, i) => allocFence(base + (i % 3), i % 5));
        const signaled = new Array<boolean>(NF).fill(false);
        const index = new Map(fs.map((f, i) => [f, i]));
        const r = locked();
        const m: Model = { entries: [], max: 5, overflow: false, reserved: 0 };
        const live = (e: { f: number }) => !signaled[e.f];
        const grow = (need: number): void => {
          const n = m.entries.length;
          const keep = m.entries.filter(live);
          if (m.overflow && keep.length + need <= 5) {
            m.max = 5;
            m.overflow = false;
          } else {
            m.max = Math.ceil(Math.max(n + need, m.max * 2) / 29) * 29;
            m.overflow = true;
          }
          m.entries = keep;
        };
        const reserve = (n: number): void => {
          const need = Math.max(m.reserved, n);
          if (m.entries.length + need > m.max) grow(need);
          m.reserved = need;
        };
        for (const c of cmds) {
          switch (c.k) {
            case 'add': {
              r.reserveFences(1);
              reserve(1);
              r.addFence(fs[c.f]!, c.u as DmaResvUsage);
              const nf = fs[c.f]!;
              const i = m.entries.findIndex((e) => {
                const of = fs[e.f]!;
                return (
                  (of.context === nf.context && e.u >= c.u && (e.f === c.f || nf.isLater(of))) ||
                  signaled[e.f]
                );
              });
              if (i >= 0) m.entries[i] = { f: c.f, u: c.u };
              else m.entries.push({ f: c.f, u: c.u });
              m.reserved--;
              break;
            }
            case 'signal':
              fs[c.f]!.signal();
              signaled[c.f] = true;
              break;
            case 'reserve':
              r.reserveFences(c.n);
              reserve(c.n);
              break;
            case 'relock':
              r.unlock();
              assert.equal(r.trylock(), true);
              m.reserved = 0;
              break;
            case 'replace': {
              r.replaceFences(base + c.c, fs[c.f]!, c.u as DmaResvUsage);
              m.entries = m.entries.map((e) =>
                fs[e.f]!.context === base + c.c ? { f: c.f, u: c.u } : e,
              );
              break;
            }
            case 'copy': {
              const src = locked();
              const want: { f: number; u: number }[] = [];
              for (const f of c.from) {
                src.reserveFences(1);
                src.addFence(fs[f]!, DmaResvUsage.READ);
              }
              // What src holds, by the same rules (fresh object: no reservation games).
              for (const e of src.fences(DmaResvUsage.BOOKKEEP))
                want.push({ f: index.get(e.fence)!, u: e.usage });
              src.unlock();
              r.copyFences(src);
              const copied = want.filter(live);
              if (m.overflow && copied.length <= 5) {
                m.max = 5;
                m.overflow = false;
              } else {
                m.max = Math.max(1, Math.ceil(copied.length / 29)) * 29;
                m.overflow = true;
              }
              m.entries = copied;
              m.reserved = 0;
              src.fini();
              break;
            }
          }
          const got = [...r.fences(DmaResvUsage.BOOKKEEP)].map((e) => ({
            f: index.get(e.fence)!,
            u: e.usage as number,
          }));
          assert.deepEqual(got, m.entries);
          const u = q as DmaResvUsage;
          assert.deepEqual(
            r.getFences(u).map((f) => index.get(f)),
            m.entries.filter((e) => e.u <= u && live(e)).map((e) => e.f),
          );
          assert.equal(r.testSignaled(u), !m.entries.some((e) => e.u <= u && live(e)));
        }
        r.unlock();
        r.fini();
      }),
      { numRuns: Number(process.env.DMABUF_FC_RUNS ?? 200) },
    );
  });
});
