import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DmaBufError } from '../errors.js';
import { DmaFence, type DmaFenceOps } from '../fence/fence.js';
import { DmaResv } from '../resv/resv.js';
import { WwAcquireCtx } from '../resv/ww-mutex.js';
import {
  acquired,
  assertNotHeld,
  beginSignalling,
  endSignalling,
  inSignallingSection,
  lockdepTask,
  mightAlloc,
  mightLock,
  released,
  resetLockdep,
  setDebug,
} from './lockdep.js';

const ops: DmaFenceOps = { getDriverName: () => 'ld', getTimelineName: () => 'ld' };
const isDeadlk = (e: unknown): boolean =>
  e instanceof DmaBufError && e.code === 'EDEADLK' && /lockdep-lite/.test(e.message);

describe('lockdep-lite', () => {
  let prev = false;
  beforeEach(() => {
    prev = setDebug(true);
    resetLockdep();
  });
  afterEach(() => {
    setDebug(prev);
    resetLockdep();
  });

  it('a blocking fence wait inside a signalling section is flagged', () => {
    const f = new DmaFence(ops, 1, 1);
    const c = beginSignalling();
    assert.throws(() => f.waitTimeoutSync(1), isDeadlk);
    endSignalling(c);
    assert.equal(f.waitTimeoutSync(1), 0, 'outside the section the same wait is fine');
  });

  it('an async wait started inside a signalling section is flagged', async () => {
    const f = new DmaFence(ops, 1, 1);
    const c = beginSignalling();
    await assert.rejects(f.waitTimeout(5), isDeadlk);
    endSignalling(c);
  });

  it('a fence callback that waits on another fence is flagged (callbacks run in a section)', () => {
    const f = new DmaFence(ops, 1, 1);
    const g = new DmaFence(ops, 1, 2);
    f.addCallback(() => g.waitTimeoutSync(1));
    assert.throws(() => f.signal(), isDeadlk);
    assert.equal(f.isSignaled(), true, 'the fence still signaled');
    assert.equal(inSignallingSection(), false, 'the section was closed');
  });

  it('sections nest and must close in order', () => {
    const a = beginSignalling();
    const b = beginSignalling();
    assert.throws(() => endSignalling(a), isDeadlk);
    endSignalling(b);
    endSignalling(a);
    assert.equal(inSignallingSection(), false);
  });

  it('allocations and lock acquisitions inside a section are flagged', () => {
    const c = beginSignalling();
    assert.throws(() => mightAlloc('heap.allocate'), isDeadlk);
    assert.throws(() => mightLock({}, true), isDeadlk);
    endSignalling(c);
  });

  it('lock order inversions without a ctx are reported before they deadlock', () => {
    const A = {};
    const B = {};
    mightLock(A, false, 'lock', true);
    acquired(A, false, true);
    mightLock(B, false, 'lock', true);
    acquired(B, false, true);
    released(B);
    released(A);
    mightLock(B, false, 'lock', true);
    acquired(B, false, true);
    assert.throws(() => mightLock(A, false, 'lock', true), isDeadlk);
    released(B);
  });

  it('locks taken under an acquire context record no order', () => {
    const A = {};
    const B = {};
    mightLock(A, true);
    acquired(A);
    mightLock(B, true);
    acquired(B);
    released(B);
    released(A);
    mightLock(B, true);
    acquired(B);
    mightLock(A, true);
    released(B);
  });

  it('assertNotHeld flags a lock held where the convention forbids it', () => {
    const A = {};
    acquired(A);
    assert.throws(() => assertNotHeld(A, 'DmaBuf#attach'), isDeadlk);
    released(A);
    assertNotHeld(A, 'DmaBuf#attach');
  });

  it('bad input is EINVAL and leaves no section open', () => {
    const isInval = (e: unknown): boolean => e instanceof DmaBufError && e.code === 'EINVAL';
    for (const junk of [undefined, null, -1, 1.5, Number.NaN, '0', 0n, {}, Symbol('x')]) {
      assert.throws(() => endSignalling(junk as never), isInval);
      assert.throws(() => setDebug(junk as never), isInval);
      assert.throws(() => lockdepTask(junk as never), isInval);
    }
    assert.equal(inSignallingSection(), false);
    assert.equal(
      lockdepTask(() => 7),
      7,
    );
  });

  it('everything is silent when debug mode is off', () => {
    setDebug(false);
    const f = new DmaFence(ops, 1, 1);
    const c = beginSignalling();
    assert.equal(f.waitTimeoutSync(1), 0);
    mightAlloc('x');
    endSignalling(c);
  });
});

describe('lockdep-lite on reservation locks', () => {
  let prev = false;
  beforeEach(() => {
    prev = setDebug(true);
    resetLockdep();
  });
  afterEach(() => {
    setDebug(prev);
    resetLockdep();
  });

  it('an AB-BA order between two reservation objects without a ctx is reported (tasks)', async () => {
    const a = new DmaResv();
    const b = new DmaResv();
    await lockdepTask(async () => {
      await a.lock(null);
      await b.lock(null);
      b.unlock();
      a.unlock();
    });
    await lockdepTask(async () => {
      await b.lock(null);
      await assert.rejects(a.lock(null), isDeadlk);
      b.unlock();
    });
    assert.equal(a.isLocked(), false, 'the refused lock was not taken');
    a.fini();
    b.fini();
  });

  it('the same inversion with blocking locks is reported (the thread is the task)', () => {
    const a = new DmaResv();
    const b = new DmaResv();
    a.lockSync(null);
    b.lockSync(null);
    b.unlock();
    a.unlock();
    b.lockSync(null);
    assert.throws(() => a.lockSync(null), isDeadlk);
    b.unlock();
    a.fini();
    b.fini();
  });

  it('two interleaved tasks each holding one lock are not an inversion', async () => {
    const a = new DmaResv();
    const b = new DmaResv();
    const t1 = lockdepTask(async () => {
      await a.lock(null);
      await new Promise((r) => setTimeout(r, 5));
      a.unlock();
    });
    const t2 = lockdepTask(async () => {
      await b.lock(null);
      await new Promise((r) => setTimeout(r, 5));
      b.unlock();
    });
    await Promise.all([t1, t2]);
    await lockdepTask(async () => {
      await b.lock(null);
      await a.lock(null);
      a.unlock();
      b.unlock();
    });
    a.fini();
    b.fini();
  });

  it('the same order under an acquire context is fine (wait-die handles it)', async () => {
    const a = new DmaResv();
    const b = new DmaResv();
    const ctx = new WwAcquireCtx();
    assert.equal(await a.lock(ctx), 0);
    assert.equal(await b.lock(ctx), 0);
    b.unlock();
    a.unlock();
    assert.equal(await b.lock(ctx), 0);
    assert.equal(await a.lock(ctx), 0);
    a.unlock();
    b.unlock();
    ctx.fini();
    a.fini();
    b.fini();
  });

  it('taking a reservation lock inside a signalling section is reported', async () => {
    const a = new DmaResv();
    const c = beginSignalling();
    await assert.rejects(a.lock(null), isDeadlk);
    assert.throws(() => a.lockSync(null), isDeadlk);
    endSignalling(c);
    a.fini();
  });
});
