// The kernel's dma-fence selftests (drivers/dma-buf/st-dma-fence.c), restated through the real core
// with a mock driver, plus the contract details of contracts.md §4 items 1, 2, 4–9.

import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { nowNs } from '../clock.js';
import { Domain } from '../domain/domain.js';
import { DmaBufError } from '../errors.js';
import { CHANNELS } from '../trace.js';
import { slotSignal } from './_shared.js';
import { DmaFence, DmaFenceCb, type DmaFenceOps, seqnoIsLater } from './fence.js';

const mockOps: DmaFenceOps = { getDriverName: () => 'mock', getTimelineName: () => 'mock' };
const mock = (context = 0, seqno = 0): DmaFence => new DmaFence(mockOps, context, seqno);

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

describe('dma-fence selftests (st-dma-fence)', () => {
  it('sanitycheck: a fence can be created, signaled and dropped', () => {
    const f = mock();
    f.enableSwSignaling();
    f.signal();
    assert.equal(f.isSignaled(), true);
  });

  it('test_signaling: signal once, report signaled, second signal is a no-op', () => {
    const f = mock();
    f.enableSwSignaling();
    assert.equal(f.isSignaled(), false);
    assert.equal(f.checkAndSignal(), false, 'first signal signals');
    assert.equal(f.isSignaled(), true);
    assert.equal(f.checkAndSignal(), true, 'second signal reports already signaled');
  });

  it('test_add_callback: a callback added before signal runs on signal', () => {
    const f = mock();
    let seen = false;
    assert.notEqual(
      f.addCallback(() => (seen = true)),
      null,
    );
    f.signal();
    assert.equal(seen, true);
  });

  it('test_late_add_callback: addCallback returns null after signal and never calls it', () => {
    const f = mock();
    f.enableSwSignaling();
    f.signal();
    let seen = false;
    const cb = new DmaFenceCb(() => (seen = true));
    assert.equal(f.addCallback(cb), null);
    assert.equal(seen, false);
    assert.equal(f.removeCallback(cb), false, 'the node is left empty');
  });

  it('test_rm_callback: a removed callback does not run', () => {
    const f = mock();
    let seen = false;
    const cb = f.addCallback(() => (seen = true))!;
    assert.equal(f.removeCallback(cb), true);
    f.signal();
    assert.equal(seen, false);
  });

  it('test_late_rm_callback: removeCallback is false after the callback ran', () => {
    const f = mock();
    let seen = false;
    const cb = f.addCallback(() => (seen = true))!;
    f.signal();
    assert.equal(seen, true);
    assert.equal(f.removeCallback(cb), false);
  });

  it('test_status: getStatus is 0 pending, 1 after signal', () => {
    const f = mock();
    f.enableSwSignaling();
    assert.equal(f.getStatus(), 0);
    f.signal();
    assert.equal(f.getStatus(), 1);
  });

  it('test_error: an error set before signal is reported by getStatus', () => {
    const f = mock();
    f.enableSwSignaling();
    f.setError(-5);
    assert.equal(f.getStatus(), 0, 'error is not reported before the signal');
    f.signal();
    assert.equal(f.getStatus(), -5);
    assert.equal(f.error, -5);
  });

  it('test_wait: a wait on an unsignaled fence times out with 0, then succeeds once signaled', async () => {
    const f = mock();
    f.enableSwSignaling();
    assert.equal(await f.waitTimeout(1), 0);
    f.signal();
    assert.ok((await f.waitTimeout(1)) >= 1);
  });

  it('test_wait_timeout: a timer that signals wakes a waiter before its timeout', async () => {
    const f = mock();
    f.enableSwSignaling();
    assert.equal(await f.waitTimeout(2), 0, 'short wait expires first');
    setTimeout(() => f.signal(), 5);
    const left = await f.waitTimeout(5000);
    assert.ok(left >= 1 && left <= 5000, `remaining ${left}`);
  });

  it('test_stub: 64 getStub calls give one signaled fence', () => {
    const stubs = Array.from({ length: 64 }, () => DmaFence.getStub());
    for (const s of stubs) {
      assert.equal(s, stubs[0]);
      assert.equal(s.isSignaled(), true);
      assert.equal(s.context, 0);
    }
  });

  it('race_signal_callback (one thread, many interleavings): every callback runs exactly once', () => {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < 500; i++) {
        const f = mock(1, i);
        let runs = 0;
        const before = (i + pass) % 2 === 0;
        if (before) f.addCallback(() => runs++);
        f.signal();
        const late = f.addCallback(() => runs++);
        assert.equal(late, null);
        assert.equal(runs, before ? 1 : 0);
      }
    }
  });
});

describe('dma-fence contracts', () => {
  it('callbacks run synchronously in registration order, seeing the fence signaled', () => {
    const f = mock();
    const order: number[] = [];
    for (let i = 0; i < 5; i++) {
      f.addCallback((fence, cb) => {
        assert.equal(fence.isSignaled(), true);
        assert.equal(
          fence.addCallback(() => order.push(99)),
          null,
          'addCallback inside a callback',
        );
        assert.equal(fence.removeCallback(cb), false, 'the running callback is no longer queued');
        order.push(i);
      });
    }
    f.signal();
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
  });

  it('a throwing callback does not stop the others; signal rethrows after finishing', () => {
    const f = mock();
    const seen: number[] = [];
    f.addCallback(() => {
      throw new Error('boom');
    });
    f.addCallback(() => seen.push(2));
    assert.throws(() => f.signal(), /boom/);
    assert.deepEqual(seen, [2]);
    assert.equal(f.isSignaled(), true);
    const g = mock();
    g.addCallback(() => {
      throw new Error('a');
    });
    g.addCallback(() => {
      throw new Error('b');
    });
    assert.throws(
      () => g.signal(),
      (e: unknown) => e instanceof AggregateError && e.errors.length === 2,
    );
  });

  it('the timestamp is recorded at signal and 0n before', () => {
    const f = mock();
    assert.equal(f.timestamp, 0n);
    const before = nowNs();
    f.signal();
    assert.ok(f.timestamp >= before && f.timestamp <= nowNs());
    const g = mock();
    g.signalTimestamp(1234n);
    assert.equal(g.timestamp, 1234n);
  });

  it('setError validates its range and refuses after signal', () => {
    const f = mock();
    expectErrno(() => f.setError(0), 'EINVAL');
    expectErrno(() => f.setError(1), 'EINVAL');
    expectErrno(() => f.setError(-4096), 'EINVAL');
    expectErrno(() => f.setError(1.5), 'EINVAL');
    f.setError(-4095);
    f.signal();
    expectErrno(() => f.setError(-5), 'EINVAL');
    assert.equal(f.getStatus(), -4095);
  });

  it('isSignaled consults ops.signaled and signals on the spot', () => {
    let done = false;
    const ops: DmaFenceOps = { ...mockOps, signaled: () => done };
    const f = new DmaFence(ops, 1, 1);
    let ran = 0;
    f.addCallback(() => ran++);
    assert.equal(f.isSignaled(), false);
    done = true;
    assert.equal(f.testSignaledFlag(), false, 'the flag alone is not set yet');
    assert.equal(f.isSignaled(), true);
    assert.equal(ran, 1, 'callbacks ran when isSignaled signaled it');
    assert.equal(f.getStatus(), 1);
  });

  it('enableSignaling runs once; returning false signals the fence', () => {
    let calls = 0;
    const f = new DmaFence({ ...mockOps, enableSignaling: () => (calls++, false) }, 1, 1);
    assert.equal(
      f.addCallback(() => {}),
      null,
      'already passed: not added',
    );
    assert.equal(f.isSignaled(), true);
    f.enableSwSignaling();
    assert.equal(calls, 1);
    let calls2 = 0;
    const g = new DmaFence({ ...mockOps, enableSignaling: () => (calls2++, true) }, 1, 2);
    g.addCallback(() => {});
    g.addCallback(() => {});
    g.enableSwSignaling();
    assert.equal(calls2, 1);
    assert.equal(g.isSignaled(), false);
  });

  it('ops are validated once: the name ops are required', () => {
    expectErrno(() => new DmaFence({} as DmaFenceOps, 1, 1), 'EINVAL');
    expectErrno(
      () => new DmaFence({ ...mockOps, signaled: 3 } as unknown as DmaFenceOps, 1, 1),
      'EINVAL',
    );
    expectErrno(() => new DmaFence(mockOps, -1, 1), 'EINVAL');
    expectErrno(() => new DmaFence(mockOps, 1, Number.NaN), 'EINVAL');
  });

  it('waitTimeout(0) polls: 1 when signaled, 0 when not; negative is EINVAL', async () => {
    const f = mock();
    assert.equal(await f.waitTimeout(0), 0);
    f.signal();
    assert.equal(await f.waitTimeout(0), 1);
    await assert.rejects(
      f.waitTimeout(-1),
      (e: unknown) => e instanceof DmaBufError && e.code === 'EINVAL',
    );
    await assert.rejects(
      f.waitTimeout(Number.NaN),
      (e: unknown) => e instanceof DmaBufError && e.code === 'EINVAL',
    );
    assert.equal(await f.waitTimeout(Infinity), Infinity);
    assert.equal(await f.wait(), 0);
  });

  it('an aborted wait rejects with ERESTARTSYS', async () => {
    const f = mock();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 5);
    await assert.rejects(
      f.waitTimeout(10_000, { signal: ac.signal }),
      (e: unknown) => e instanceof DmaBufError && e.code === 'ERESTARTSYS' && e.errno === -512,
    );
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(
      f.wait({ signal: pre.signal }),
      (e: unknown) => e instanceof DmaBufError && e.code === 'ERESTARTSYS',
    );
    f.signal();
    assert.equal(
      await f.wait({ signal: pre.signal }),
      0,
      'a signaled fence never reports interruption',
    );
  });

  it('waitTimeoutSync polls a driver whose signaled op becomes true', () => {
    const until = performance.now() + 10;
    const f = new DmaFence({ ...mockOps, signaled: () => performance.now() >= until }, 1, 1);
    const left = f.waitTimeoutSync(2000);
    assert.ok(left >= 1);
    assert.equal(mock().waitTimeoutSync(5), 0);
  });

  it('waitAnyTimeout reports the first signaled fence', async () => {
    const fs = [mock(), mock(), mock()];
    assert.deepEqual(await DmaFence.waitAnyTimeout(fs, 0), { remaining: 0, index: -1 });
    setTimeout(() => fs[1]!.signal(), 5);
    const r = await DmaFence.waitAnyTimeout(fs, 5000);
    assert.equal(r.index, 1);
    assert.ok(r.remaining >= 1);
    assert.deepEqual(await DmaFence.waitAnyTimeout(fs, 0), { remaining: 1, index: 1 });
    assert.deepEqual(await DmaFence.waitAnyTimeout([mock()], 3), { remaining: 0, index: -1 });
    await assert.rejects(
      DmaFence.waitAnyTimeout([], 1),
      (e: unknown) => e instanceof DmaBufError && e.code === 'EINVAL',
    );
  });

  it('contexts are allocated monotonically from 1', () => {
    const a = DmaFence.contextAlloc();
    const b = DmaFence.contextAlloc(3);
    const c = DmaFence.contextAlloc();
    assert.ok(a >= 1);
    assert.equal(b, a + 1);
    assert.equal(c, b + 3);
    expectErrno(() => DmaFence.contextAlloc(0), 'EINVAL');
  });

  it('isLater wraps at 32 bits unless SEQNO64', () => {
    const ctx = DmaFence.contextAlloc();
    const f = (s: number): DmaFence => new DmaFence(mockOps, ctx, s);
    assert.equal(f(1).isLater(f(0xffff_ffff)), true, '1 is after 0xffffffff');
    assert.equal(f(0xffff_ffff).isLater(f(1)), false);
    assert.equal(f(0).isLater(f(2 ** 31)), false, 'distance 2^31: neither is later');
    assert.equal(f(2 ** 31).isLater(f(0)), false);
    assert.equal(f(2 ** 32 + 5).isLater(f(4)), true, 'upper bits are ignored');
    const x = f(7);
    assert.equal(x.isLater(x), false);
    assert.equal(x.isLaterOrSame(x), true);
    assert.equal(f(3).isLater(new DmaFence(mockOps, ctx + 1, 1)), false, 'different contexts');
    const a = DmaFence.init64(mockOps, ctx, 2 ** 32 + 5);
    const b = DmaFence.init64(mockOps, ctx, 4);
    assert.equal(a.isLater(b), true);
    assert.equal(
      DmaFence.init64(mockOps, ctx, 1).isLater(DmaFence.init64(mockOps, ctx, 0xffff_ffff)),
      false,
    );
    assert.equal(seqnoIsLater(5, 4, true), true);
  });

  it('later() returns the later fence, or null when it has signaled or contexts differ', () => {
    const ctx = DmaFence.contextAlloc();
    const a = new DmaFence(mockOps, ctx, 1);
    const b = new DmaFence(mockOps, ctx, 2);
    assert.equal(DmaFence.later(a, b), b);
    assert.equal(DmaFence.later(b, a), b);
    b.signal();
    assert.equal(DmaFence.later(a, b), null);
    assert.equal(DmaFence.later(a, mock(ctx + 1, 5)), null);
  });

  it('a private stub is a new signaled fence with the given timestamp', () => {
    const s = DmaFence.allocatePrivateStub(42n);
    assert.notEqual(s, DmaFence.getStub());
    assert.equal(s.isSignaled(), true);
    assert.equal(s.timestamp, 42n);
  });

  it('deadlines: the earliest is kept, forwarded to the driver, ignored once signaled', () => {
    const seen: bigint[] = [];
    const f = new DmaFence({ ...mockOps, setDeadline: (_f, ns) => seen.push(ns) }, 1, 1);
    f.setDeadline(500n);
    f.setDeadline(900n);
    f.setDeadline(300n);
    assert.equal(f.deadline, 300n);
    assert.deepEqual(seen, [500n, 900n, 300n]);
    f.signal();
    f.setDeadline(1n);
    assert.equal(seen.length, 3);
    expectErrno(() => f.setDeadline(5 as unknown as bigint), 'EINVAL');
  });

  it('addCallback rejects a node already queued and bad arguments', () => {
    const f = mock();
    const cb = f.addCallback(() => {})!;
    expectErrno(() => f.addCallback(cb), 'EBUSY');
    expectErrno(() => f.addCallback(5 as unknown as DmaFenceCb), 'EINVAL');
    assert.equal(f.removeCallback({} as DmaFenceCb), false);
  });

  it('dispose with pending callbacks signals with -EDEADLK and warns on dmabuf:warning', () => {
    const f = mock();
    let status = 0;
    f.addCallback((fence) => (status = fence.getStatus()));
    const warnings: string[] = [];
    const onWarn = (m: unknown): void => {
      warnings.push((m as { message: string }).message);
    };
    diagnosticsChannel.subscribe(CHANNELS.warning, onWarn);
    try {
      f[Symbol.dispose]();
    } finally {
      diagnosticsChannel.unsubscribe(CHANNELS.warning, onWarn);
    }
    assert.equal(status, -35);
    assert.deepEqual(warnings, ['dmabuf: fence released with pending callbacks']);
  });

  it('describe prints timeline, driver, seqno and state', () => {
    const f = mock(3, 9);
    assert.equal(f.describe(), 'mock mock seq 9 unsignalled');
    f.signal();
    assert.equal(f.describe(), 'mock mock seq 9 signalled');
  });

  it('publishes init, signaled and wait channels only to subscribers', async () => {
    const got: string[] = [];
    const subs = [
      CHANNELS.fenceInit,
      CHANNELS.fenceSignaled,
      CHANNELS.fenceWaitStart,
      CHANNELS.fenceWaitEnd,
    ].map((name) => {
      const fn = (): void => {
        got.push(name);
      };
      diagnosticsChannel.subscribe(name, fn);
      return () => diagnosticsChannel.unsubscribe(name, fn);
    });
    try {
      const f = mock();
      setTimeout(() => f.signal(), 1);
      await f.waitTimeout(1000);
    } finally {
      for (const u of subs) u();
    }
    assert.deepEqual(got, [
      CHANNELS.fenceInit,
      CHANNELS.fenceWaitStart,
      CHANNELS.fenceSignaled,
      CHANNELS.fenceWaitEnd,
    ]);
  });
});

describe('published fences in one thread', () => {
  it('share() then fromShared() in the same thread gives the same object', () => {
    const f = mock(DmaFence.contextAlloc(), 1);
    const desc = f.share();
    assert.equal(DmaFence.fromShared(desc), f);
    f.signal();
    const g = DmaFence.fromShared(f.share());
    assert.equal(g.isSignaled(), true);
    assert.equal(g.timestamp, f.timestamp);
  });

  it('a stale or forged descriptor is EBADF; a malformed one EINVAL; a foreign domain EXDEV', () => {
    const f = mock(DmaFence.contextAlloc(), 1);
    const desc = f.share() as { s: number; g: number; d: number };
    expectErrno(() => DmaFence.fromShared({ ...desc, g: desc.g + 1 } as never), 'EBADF');
    expectErrno(() => DmaFence.fromShared({ ...desc, s: 999_999 } as never), 'EBADF');
    expectErrno(() => DmaFence.fromShared({ ...desc, d: desc.d + 1 } as never), 'EXDEV');
    expectErrno(() => DmaFence.fromShared(null as never), 'EINVAL');
    expectErrno(() => DmaFence.fromShared({ t: 'nope', d: desc.d } as never), 'EINVAL');
    DmaFence.fromShared(desc as never);
  });

  it('callbacks and waits work the same on a published fence', async () => {
    const f = mock(DmaFence.contextAlloc(), 1);
    f.share();
    const order: number[] = [];
    f.addCallback(() => order.push(1));
    f.addCallback(() => order.push(2));
    setTimeout(() => {
      f.setError(-62);
      f.signal();
    }, 2);
    assert.ok((await f.waitTimeout(1000)) >= 1);
    assert.deepEqual(order, [1, 2]);
    assert.equal(f.getStatus(), -62);
  });
});

describe('the watcher of a published fence', () => {
  it('runs the callbacks of a fence signaled between its check and its wait (no lost wake-up)', async () => {
    const f = new DmaFence(
      { getDriverName: () => 'd', getTimelineName: () => 't' },
      DmaFence.contextAlloc(1),
      1,
    );
    f.share(); // published: its state lives in the shared slot
    const slot = (f as any)._slot as number;
    // Another thread signals right after the watcher's loop found the fence pending (the other
    // calls, from addCallback's own checks, are let through).
    const orig = (f as any).syncFromSlot;
    let first = true;
    (f as any).syncFromSlot = function (this: DmaFence, ...a: unknown[]) {
      const r = orig.apply(this, a);
      if (first && /\bat loop \(/.test(new Error().stack ?? '')) {
        first = false;
        slotSignal(Domain.current(), slot, undefined);
      }
      return r;
    };
    const ran = new Promise<string>((resolve) => {
      f.addCallback(() => resolve('ran'));
      setTimeout(() => resolve('lost'), 2000).unref();
    });
    assert.equal(first, false, 'the watcher looked');
    assert.equal(await ran, 'ran');
  });
});
