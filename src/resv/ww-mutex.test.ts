// Contract details of the wound/wait mutex (contracts.md §3.5 and §4 item 22) beyond the kernel's
// selftests (tests/ww-selftests.test.ts): wait-die decisions, context lifecycle, blocking variants,
// interruption, fairness, and recovery from a holder's death.

import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { Domain } from '../domain/domain.js';
import { DmaBufError } from '../errors.js';
import { CHANNELS } from '../trace.js';
import { lockValue, OWNER_THREAD_SHIFT, R_LOCK } from './_record.js';
import {
  EALREADY,
  EDEADLK,
  EINTR,
  reservationWwClass,
  WwAcquireCtx,
  WwClass,
  WwMutex,
} from './ww-mutex.js';

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether `p` is still pending after the event loop turned a few times. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await tick(5);
  return !settled;
}

describe('WwMutex: wait-die', () => {
  it('a younger context holding a lock gets -EDEADLK on a lock an older context holds', async () => {
    const [a, b] = [new WwMutex(), new WwMutex()];
    const old = new WwAcquireCtx();
    const young = new WwAcquireCtx();
    assert.ok(old.stamp < young.stamp);
    assert.equal(await a.lock(old), 0);
    assert.equal(await b.lock(young), 0);
    assert.equal(await a.lock(young), EDEADLK);
    assert.equal(young.acquired, 1, 'dying takes nothing');
    b.unlock();
    a.unlock();
    old.fini();
    young.fini();
  });

  it('an older context waits for a younger holder and gets the lock on release', async () => {
    const [a, b] = [new WwMutex(), new WwMutex()];
    const old = new WwAcquireCtx();
    const young = new WwAcquireCtx();
    await b.lock(old);
    await a.lock(young);
    const p = a.lock(old);
    assert.equal(await pending(p), true, 'the older context waits');
    a.unlock();
    assert.equal(await p, 0);
    assert.equal(a.lockingCtx, old);
    assert.equal(old.acquired, 2);
    a.unlock();
    b.unlock();
  });

  it('a context that holds nothing waits instead of dying; lockSlow never fails', async () => {
    const a = new WwMutex();
    const old = new WwAcquireCtx();
    const young = new WwAcquireCtx();
    await a.lock(old);
    const p = a.lock(young);
    assert.equal(await pending(p), true, 'acquired == 0: no deadlock possible, so it waits');
    const s = a.lockSlow(new WwAcquireCtx());
    a.unlock();
    assert.equal(await p, 0);
    a.unlock();
    assert.equal(await s, 0);
    a.unlock();
  });

  it('-EDEADLK, back off, lockSlow the contended lock, retry: both contexts finish', async () => {
    const [a, b] = [new WwMutex(), new WwMutex()];
    const old = new WwAcquireCtx();
    const young = new WwAcquireCtx();
    await a.lock(old);
    await b.lock(young);
    const oldGetsB = b.lock(old); // waits for the younger holder
    assert.equal(await a.lock(young), EDEADLK);
    b.unlock(); // young backs off
    assert.equal(await oldGetsB, 0);
    const slow = a.lockSlow(young);
    assert.equal(await pending(slow), true);
    a.unlock();
    b.unlock();
    old.fini();
    assert.equal(await slow, 0);
    assert.equal(await b.lock(young), 0);
    a.unlock();
    b.unlock();
    young.fini();
  });

  it('a lock taken without context never dies and never reports -EALREADY', async () => {
    const a = new WwMutex();
    const old = new WwAcquireCtx();
    await a.lock(old);
    const p = a.lock(null);
    assert.equal(await pending(p), true);
    a.unlock();
    assert.equal(await p, 0);
    assert.equal(a.lockingCtx, null);
    a.unlock();
  });

  it('an older context is not starved by tasks that keep relocking', {
    timeout: 5000,
  }, async () => {
    const a = new WwMutex();
    let stop = false;
    let rounds = 0;
    const hammer = async (): Promise<void> => {
      while (!stop) {
        await a.lock(null);
        rounds++;
        await new Promise(setImmediate);
        a.unlock();
        await Promise.resolve(); // relock at once, ahead of any woken waiter
      }
    };
    const hammers = [hammer(), hammer(), hammer()];
    await tick(2);
    const ctx = new WwAcquireCtx();
    const t0 = performance.now();
    assert.equal(await a.lock(ctx), 0);
    const waited = performance.now() - t0;
    a.unlock();
    stop = true;
    await Promise.all(hammers);
    assert.ok(rounds > 0);
    assert.ok(waited < 1000, `waited ${waited} ms`);
  });
});

describe('WwMutex: kernel return values', () => {
  it('relocking with the same context is -EALREADY; trylock fails even for the holder', async () => {
    const a = new WwMutex();
    const ctx = new WwAcquireCtx();
    assert.equal(await a.lock(ctx), 0);
    assert.equal(await a.lock(ctx), EALREADY);
    assert.equal(a.trylock(ctx), false);
    assert.equal(a.trylock(), false);
    assert.equal(a.lockSync(ctx), EALREADY);
    a.unlock();
    assert.equal(a.trylock(ctx), true, 'trylock with a context counts as acquired');
    assert.equal(ctx.acquired, 1);
    a.unlock();
    assert.equal(ctx.acquired, 0);
    ctx.fini();
  });

  it('isLocked, isHeld and assertHeld', async () => {
    const a = new WwMutex();
    const ctx = new WwAcquireCtx();
    const other = new WwAcquireCtx();
    assert.equal(a.isLocked(), false);
    expectErrno(() => a.assertHeld(), 'EPERM');
    await a.lock(ctx);
    assert.equal(a.isLocked(), true);
    assert.equal(a.isHeld(), true);
    assert.equal(a.isHeld(ctx), true);
    assert.equal(a.isHeld(other), false);
    a.assertHeld(ctx);
    expectErrno(() => a.assertHeld(other), 'EPERM');
    a.unlock();
    assert.equal(a.isHeld(), false);
  });

  it('lockInterruptible resolves -EINTR when aborted while waiting, and takes nothing', async () => {
    const a = new WwMutex();
    await a.lock(null);
    const ac = new AbortController();
    const p = a.lockInterruptible(new WwAcquireCtx(), { signal: ac.signal });
    assert.equal(await pending(p), true);
    ac.abort();
    assert.equal(await p, EINTR);
    a.unlock();
    assert.equal(a.isLocked(), false);
    assert.equal(a.trylock(), true, 'no claim is left behind');
    a.unlock();
    const ac2 = new AbortController();
    ac2.abort();
    assert.equal(
      await a.lockInterruptible(null, { signal: ac2.signal }),
      0,
      'a free lock is taken even with a pending abort, as in the kernel fast path',
    );
    a.unlock();
    await a.lock(null);
    const ac3 = new AbortController();
    const slow = a.lockSlowInterruptible(new WwAcquireCtx(), { signal: ac3.signal });
    ac3.abort();
    assert.equal(await slow, EINTR);
    a.unlock();
  });

  it('lockSync takes a free lock and refuses to block on a lock its own thread holds', async () => {
    const a = new WwMutex();
    const ctx = new WwAcquireCtx();
    assert.equal(a.lockSync(ctx), 0);
    expectErrno(() => a.lockSync(null), 'EDEADLK');
    expectErrno(() => a.lockSlowSync(new WwAcquireCtx()), 'EDEADLK');
    const young = new WwAcquireCtx();
    const b = new WwMutex();
    b.lockSync(young);
    assert.equal(a.lockSync(young), EDEADLK, 'wait-die is answered before the thread check');
    b.unlock();
    a.unlock();
  });
});

describe('WwMutex: contexts and classes', () => {
  it('stamps grow with creation; a context counts its locks', async () => {
    const c1 = new WwAcquireCtx();
    const c2 = new WwAcquireCtx();
    assert.ok(c1.stamp < c2.stamp);
    assert.equal(c1.wwClass, reservationWwClass);
    const ms = [new WwMutex(), new WwMutex(), new WwMutex()];
    for (const m of ms) await m.lock(c1);
    assert.equal(c1.acquired, 3);
    for (const m of ms) assert.equal(m.lockingCtx, c1);
    expectErrno(() => c1.fini(), 'EBUSY');
    for (const m of ms) m.unlock();
    assert.equal(c1.acquired, 0);
    c1.fini();
    c1.fini();
  });

  it('locking after done() or fini() is EINVAL; lockSlow needs a context holding nothing', async () => {
    const a = new WwMutex();
    const b = new WwMutex();
    const ctx = new WwAcquireCtx();
    await a.lock(ctx);
    await assert.rejects(b.lockSlow(ctx), (e: DmaBufError) => e.code === 'EINVAL');
    await assert.rejects(a.lockSlow(null as never), (e: DmaBufError) => e.code === 'EINVAL');
    ctx.done();
    await assert.rejects(b.lock(ctx), (e: DmaBufError) => e.code === 'EINVAL');
    expectErrno(() => b.trylock(ctx), 'EINVAL');
    a.unlock();
    ctx.fini();
    await assert.rejects(b.lock(ctx), (e: DmaBufError) => e.code === 'EINVAL');
    await assert.rejects(b.lock({} as never), (e: DmaBufError) => e.code === 'EINVAL');
  });

  it('classes: wait-die only; a context of another class is EINVAL', async () => {
    expectErrno(() => new WwClass('ww_class', { waitDie: false }), 'EINVAL');
    expectErrno(() => new WwClass(''), 'EINVAL');
    const mine = new WwClass('test_wd_class');
    assert.equal(mine.isWaitDie, true);
    const m = new WwMutex(mine);
    await assert.rejects(m.lock(new WwAcquireCtx()), (e: DmaBufError) => e.code === 'EINVAL');
    assert.equal(await m.lock(new WwAcquireCtx(mine)), 0);
    m.unlock();
  });

  it('unlocking a lock this thread does not hold is EPERM', () => {
    const a = new WwMutex();
    expectErrno(() => a.unlock(), 'EPERM');
  });
});

describe('WwMutex: sharing and lifetime', () => {
  it('fromShared in the same thread gives back the same object', () => {
    const a = new WwMutex();
    assert.equal(WwMutex.fromShared(a.share()), a);
  });

  it('bad descriptors: EINVAL, EXDEV, EBADF', () => {
    const a = new WwMutex();
    const desc = a.share();
    expectErrno(() => WwMutex.fromShared({} as never), 'EINVAL');
    expectErrno(() => WwMutex.fromShared({ ...desc, d: desc.d + 1 }), 'EXDEV');
    expectErrno(() => WwMutex.fromShared({ ...desc, g: desc.g + 1 }), 'EBADF');
    expectErrno(() => WwMutex.fromShared({ ...desc, s: 1e9 }), 'EBADF');
    WwMutex.fromShared(desc);
  });

  it('destroy drops the reference; a held lock cannot be destroyed; use after destroy is EBADF', async () => {
    const d = Domain.current();
    const a = new WwMutex();
    await a.lock(null);
    expectErrno(() => a.destroy(), 'EBUSY');
    a.unlock();
    const slot = a._slot;
    a.destroy();
    assert.equal(d.tables.resv.isAllocated(slot), false, 'the record is freed with the last ref');
    await assert.rejects(a.lock(null), (e: DmaBufError) => e.code === 'EBADF');
    a.destroy();
  });
});

describe('WwMutex: holder death', () => {
  /** Makes a (simulated) thread hold `m`, as if it had locked it. */
  function holdAsDeadThread(m: WwMutex, d: Domain): number {
    const t = d.allocThread();
    const T = d.tables.resv;
    const owner = (t << OWNER_THREAD_SHIFT) | 1;
    assert.equal(Atomics.compareExchange(T.i64, (m._b + R_LOCK) >> 1, 0n, lockValue(owner, 7)), 0n);
    return t;
  }

  it('the next locker gets the lock of a dead holder and learns that it died, once', async () => {
    const d = Domain.current();
    const m = new WwMutex();
    const t = holdAsDeadThread(m, d);
    const seen: unknown[] = [];
    const onMsg = (msg: unknown): void => {
      seen.push(msg);
    };
    diagnosticsChannel.subscribe(CHANNELS.resvOwnerDied, onMsg);
    try {
      const waiting = m.lock(new WwAcquireCtx());
      assert.equal(await pending(waiting), true);
      d.threadExited(t);
      assert.equal(await waiting, 0);
    } finally {
      diagnosticsChannel.unsubscribe(CHANNELS.resvOwnerDied, onMsg);
    }
    assert.equal(m.ownerDied, true);
    assert.deepEqual(seen, [{ resv: m._slot, thread: t, kind: 'ww-mutex' }]);
    m.unlock();
    assert.equal(m.ownerDied, false);
    assert.equal(await m.lock(null), 0);
    assert.equal(m.ownerDied, false, 'only the first acquisition after the death is told');
    m.unlock();
  });

  it('trylock also reports a dead holder; locks of live threads are untouched', async () => {
    const d = Domain.current();
    const m = new WwMutex();
    const mine = new WwMutex();
    await mine.lock(null);
    const t = holdAsDeadThread(m, d);
    d.threadExited(t);
    assert.equal(mine.isHeld(), true);
    assert.equal(m.trylock(), true);
    assert.equal(m.ownerDied, true);
    m.unlock();
    mine.unlock();
  });
});
