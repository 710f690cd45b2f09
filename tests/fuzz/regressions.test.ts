/**
 * Regression rows for the bugs the fuzzer found: each names the bug, replays the bad input and
 * checks both the answer (a DmaBufError with the right code, or the documented value) and the
 * state afterwards. The table (`table.test.ts`) covers the same inputs among thousands of others;
 * these spell out the consequence each fix prevents.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  codeOf,
  configureSystemHeap,
  DMA_BIDIRECTIONAL,
  DmaBuf,
  DmaBufAttachment,
  DmaBufError,
  DmaFence,
  DmaFenceArray,
  DmaFenceChain,
  DmaResv,
  DmaResvIter,
  Domain,
  deserializeError,
  ERRNO,
  fdClose,
  fdInstall,
  getWaitPolicy,
  IOC_NR,
  isDmaBufDebug,
  onThreadExit,
  SyncFile,
  seqnoIsLater,
  serializeError,
  setDmaBufDebug,
  setWaitPolicy,
  systemHeap,
  WwAcquireCtx,
  WwClass,
  WwMutex,
} from '../../src/index.js';
import { MockExporter, MovableExporter } from '../../src/testing/index.js';
import { rejects, throws } from '../buf/_support.js';
import { fuzzOps, inForeign } from './_world.js';

const fence = (seqno = 1): DmaFence => new DmaFence(fuzzOps, DmaFence.contextAlloc(1), seqno);

/** Collects uncaught exceptions while `fn` runs and `ms` after. */
async function uncaught(fn: () => Promise<void>, ms = 30): Promise<unknown[]> {
  const seen: unknown[] = [];
  const on = (e: unknown): void => {
    seen.push(e);
  };
  process.on('uncaughtException', on);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    process.off('uncaughtException', on);
  }
  return seen;
}

describe('fuzz regressions: fences', () => {
  it('a wait with a bad signal option is EINVAL, not a later uncaught TypeError from its timer', async () => {
    const f = fence();
    const seen = await uncaught(async () => {
      await rejects(() => f.waitTimeout(5, { signal: 'x' as never }), 'EINVAL');
      await rejects(() => f.waitTimeout(5, null as never), 'EINVAL');
      await rejects(() => f.wait({ signal: {} as never }), 'EINVAL');
      await rejects(() => DmaFence.waitAnyTimeout([f], 5, { signal: 5 as never }), 'EINVAL');
      await rejects(() => SyncFile.create(f).wait(5, 'x' as never), 'EINVAL');
    });
    assert.deepEqual(seen, []);
    f.signal();
  });

  it('a timeout beyond 2^31-1 ms waits instead of timing out after 1 ms', async () => {
    const f = fence();
    const g = fence();
    setTimeout(() => {
      f.signal();
      g.signal();
    }, 20);
    const [a, b] = await Promise.all([
      f.waitTimeout(2 ** 40),
      DmaFence.waitAnyTimeout([g], 2 ** 33),
    ]);
    assert.ok(a > 0, `waitTimeout(2**40) resolved ${a}`);
    assert.equal(b.index, 0);
    assert.ok(b.remaining > 0);
  });

  it('contextAlloc and allocContexts refuse counts that would exhaust or corrupt the counter', () => {
    throws(() => DmaFence.contextAlloc(2 ** 32), 'EINVAL');
    throws(() => DmaFence.contextAlloc(2 ** 53 - 1), 'EINVAL');
    const d = Domain.current();
    for (const bad of [true, 0.5, 'x', null, undefined, 2 ** 53, Symbol('n')])
      throws(() => d.allocContexts(bad as never), 'EINVAL');
    const c = DmaFence.contextAlloc(1);
    assert.ok(Number.isSafeInteger(c) && c > 0 && c < 2 ** 40, `context counter at ${c}`);
    new DmaFence(fuzzOps, c, 1).signal();
  });

  it('timestamps and deadlines outside [0, 2^63) are EINVAL instead of wrapping in shared memory', () => {
    const f = fence();
    f.share();
    throws(() => f.setDeadline(2n ** 64n), 'EINVAL');
    throws(() => f.setDeadline(2n ** 63n), 'EINVAL');
    f.setDeadline(1000n);
    assert.equal(f.deadline, 1000n);
    throws(() => f.signalTimestamp('x' as never), 'EINVAL');
    throws(() => f.signalTimestamp(-1n), 'EINVAL');
    assert.equal(f.isSignaled(), false);
    throws(() => DmaFence.allocatePrivateStub(-1n), 'EINVAL');
    f.signalTimestamp(5n);
    assert.equal(f.timestamp, 5n);
  });

  it('fence comparisons and container walks reject non-fences with EINVAL', () => {
    const f = fence();
    for (const bad of [undefined, null, 'x', {}, 3]) {
      throws(() => f.isLater(bad as never), 'EINVAL');
      throws(() => f.isLaterOrSame(bad as never), 'EINVAL');
      throws(() => DmaFence.later(f, bad as never), 'EINVAL');
      throws(() => DmaFenceChain.contained(bad as never), 'EINVAL');
      throws(() => [...DmaFenceChain.iterate(bad as never)], 'EINVAL');
      throws(() => DmaFenceChain.findSeqno(bad as never, 0), 'EINVAL');
    }
    for (const bad of ['x', 5, {}]) throws(() => DmaFenceArray.first(bad as never), 'EINVAL');
    throws(() => DmaFenceArray.next(f, -1), 'EINVAL');
    throws(() => DmaFenceArray.next(f, Symbol('i') as never), 'EINVAL');
    throws(() => seqnoIsLater(1n as never, 2, false), 'EINVAL');
    const a = DmaFenceArray.create([fence()], DmaFence.contextAlloc(1), 1);
    throws(() => a.waitTimeoutSync(Symbol('t') as never), 'EINVAL');
    throws(
      () => new DmaFenceChain(null, fence(), 1).waitTimeoutSync(Object.create(null)),
      'EINVAL',
    );
    assert.equal(DmaFenceArray.first(null), null);
    f.signal();
  });

  it('forged signaled fence descriptors are EINVAL (no TypeError, no impossible error values)', () => {
    const d = Domain.current().id;
    const base = { t: 'fence', d, c: 1, q: 1, f: 0, e: 0, ts: 1n };
    for (const forged of [
      { ...base, f: Symbol('f') },
      { ...base, f: 1n },
      { ...base, e: -1e20 },
      { ...base, ts: -1n },
      { ...base, dn: Symbol('n') },
    ])
      throws(() => DmaFence.fromShared(forged as never), 'EINVAL');
    assert.equal(DmaFence.fromShared(base as never).getStatus(), 1);
  });

  it('sharing a fence published in another domain is EXDEV (it named a slot of the wrong table)', () => {
    const f = inForeign(() => {
      const g = new DmaFence(fuzzOps, DmaFence.contextAlloc(1), 1);
      g.share();
      return g;
    });
    throws(() => f.share(), 'EXDEV');
    throws(() => SyncFile.create(f).share(), 'EXDEV');
    inForeign(() => f.signal());
  });

  it('a consumed descriptor object is EBADF the second time instead of stealing a reference', () => {
    const f = fence();
    const fd = f.share();
    assert.equal(DmaFence.fromShared(fd), f);
    throws(() => DmaFence.fromShared(fd), 'EBADF');
    const r = new DmaResv();
    const rd = r.share();
    assert.equal(DmaResv.fromShared(rd), r);
    throws(() => DmaResv.fromShared(rd), 'EBADF');
    r.fini();
    // The record was still referenced by the descriptor: one fini per reference was enough.
    const m = new WwMutex();
    const md = m.share();
    assert.equal(WwMutex.fromShared(md), m);
    throws(() => WwMutex.fromShared(md), 'EBADF');
    m.destroy();
    f.signal();
  });
});

describe('fuzz regressions: fence lifetime', () => {
  it('a published fence disposed in its home thread still reaches other holders when signaled', () => {
    const f = fence();
    const desc = f.share(); // what another thread would hold
    f[Symbol.dispose]();
    f.signal();
    const view = DmaFence.fromShared(desc);
    assert.equal(view.getStatus(), 1, 'the holder of the descriptor sees the signal');
  });
});

describe('fuzz regressions: reservation objects and ww-mutexes', () => {
  it('iterating a finished reservation object is EBADF instead of reading a freed record', () => {
    const r = new DmaResv();
    const it = r.fencesUnlocked(3);
    r.fini();
    // The record is free: another object may take it.
    const other = new DmaResv();
    throws(() => it.next(), 'EBADF');
    throws(() => new DmaResvIter(null as never, 0), 'EINVAL');
    throws(() => new DmaResvIter(other, 7 as never), 'EINVAL');
    other.fini();
  });

  it('a destroyed ww-mutex is EBADF, and cannot unlock the mutex that reused its record', async () => {
    const m = new WwMutex();
    m.destroy();
    const n = new WwMutex();
    assert.equal(await n.lock(null), 0);
    throws(() => m.unlock(), 'EBADF');
    throws(() => m.isLocked(), 'EBADF');
    throws(() => m.isHeld(), 'EBADF');
    throws(() => m.lockingCtx, 'EBADF');
    assert.ok(n.isLocked(), 'the other mutex is still locked');
    n.unlock();
    n.destroy();
  });

  it('ww contexts, classes and descriptors: junk is EINVAL', () => {
    const r = new DmaResv();
    throws(() => r.isHeld('x' as never), 'EINVAL');
    throws(() => r.assertHeld({} as never), 'EINVAL');
    throws(() => new WwClass('c', 5 as never), 'EINVAL');
    const m = new WwMutex();
    throws(() => WwMutex.fromShared({ ...m.share(), c: '' }), 'EINVAL');
    throws(() => DmaResv.usageRw('yes' as never), 'EINVAL');
    m.destroy();
    r.fini();
  });

  it('lockInterruptible with a bad signal is EINVAL and leaves the lock free', async () => {
    const r = new DmaResv();
    const ctx = new WwAcquireCtx();
    await rejects(() => r.lockInterruptible(null, { signal: 'x' as never }), 'EINVAL');
    await rejects(() => r.lockSlowInterruptible(ctx, null as never), 'EINVAL');
    assert.equal(r.isLocked(), false);
    ctx.fini();
    r.fini();
  });
});

describe('fuzz regressions: buffers', () => {
  it('getters of a released buffer are EBADF: no view into a record another buffer reuses', () => {
    const a = systemHeap.allocateBuffer(4096);
    a.put();
    const b = systemHeap.allocateBuffer(4096);
    b.setName('other');
    throws(() => a.exporterWords, 'EBADF');
    throws(() => a.name, 'EBADF');
    throws(() => a.refcount, 'EBADF');
    assert.equal(a.alive, false);
    assert.equal(a.size, 4096);
    assert.match(a.toString(), /4096 bytes/);
    assert.equal(b.name, 'other');
    b.put();
  });

  it('a detached attachment cannot touch the record another attachment reuses', async () => {
    const buf = systemHeap.allocateBuffer(4096);
    const att = await buf.attach({ name: 'a' });
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    await buf.detach(att); // warns: a mapping was left mapped
    const other = await buf.attach({ name: 'b' });
    const m2 = await other.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(other.mapCount, 1);
    await rejects(() => att.unmapAttachmentUnlocked(m), 'EINVAL');
    throws(() => att.exporterWords, 'EINVAL');
    throws(() => att.mapCount, 'EINVAL');
    assert.equal(att.isDynamic, false);
    assert.equal(other.mapCount, 1, "the other attachment's map count is intact");
    await other.unmapAttachmentUnlocked(m2);
    await buf.detach(other);
    buf.put();
  });

  it("a buffer stays usable after its reservation object's holder called fini()", async () => {
    const r = new DmaResv();
    const buf = new MockExporter({ size: 4096, resv: r }).export();
    r.fini();
    const att = await buf.attach({ name: 'dev' });
    await buf.detach(att);
    await buf.beginCpuAccess(DMA_BIDIRECTIONAL);
    const own = systemHeap.allocateBuffer(4096);
    own.resv.fini();
    await own.beginCpuAccess(DMA_BIDIRECTIONAL);
    own.put(); // in debug mode this used to fail (EBADF) forever: the buffer leaked
    buf.put();
    assert.equal(DmaBuf.iterBegin(), null);
  });

  it('export with a finished reservation object is EBADF and takes no buffer record (debug off)', () => {
    const debug = setDmaBufDebug(false); // debug mode refused it earlier, in forbidHeld
    try {
      const before = Domain.current().tables.buf.highWater;
      const used = (): number => {
        const t = Domain.current().tables.buf;
        let n = 0;
        for (let s = 1; s < t.highWater; s++) if (t.isAllocated(s)) n++;
        return n;
      };
      const n = used();
      const r = new DmaResv();
      r.fini();
      throws(() => new MockExporter({ size: 4096, resv: r }).export(), 'EBADF');
      assert.equal(used(), n, 'no buffer record leaked');
      assert.ok(Domain.current().tables.buf.highWater >= before);
    } finally {
      setDmaBufDebug(debug);
    }
  });

  it('export with a reservation object of another domain is EXDEV', () => {
    const r = inForeign(() => new DmaResv());
    throws(() => new MockExporter({ size: 4096, resv: r }).export(), 'EXDEV');
    inForeign(() => r.fini());
  });

  it('options, opts.signal and timeoutMs of the waiting buffer calls are checked', async () => {
    const buf = systemHeap.allocateBuffer(4096);
    await rejects(() => buf.pollAsync(1, null as never), 'EINVAL');
    await rejects(() => buf.pollAsync(1, { timeoutMs: null as never }), 'EINVAL');
    await rejects(() => buf.revoke(null as never), 'EINVAL');
    await rejects(() => buf.beginCpuAccess(DMA_BIDIRECTIONAL, 'x' as never), 'EINVAL');
    await rejects(() => buf.sync(3, null as never), 'EINVAL');
    await rejects(() => DmaBuf.bufinfo(null as never), 'EINVAL');
    await rejects(() => buf.mmapSegments(0, 4096, {}, Symbol('w') as never), 'EINVAL');
    const att = await buf.attach({ name: 'dev' });
    await rejects(() => att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL, null as never), 'EINVAL');
    await buf.detach(att);
    assert.equal(buf.resv.isLocked(), false);
    buf.put();
  });

  it('internal constructors of exported classes reject junk', () => {
    throws(
      () => new (DmaBufAttachment as any)({}, 1, 1, { name: 'x' }, null, null, true),
      'EINVAL',
    );
  });

  it('heap: a bigint fd_flags works; configureSystemHeap checks before it changes', () => {
    const fd = systemHeap.allocate(4096, 2n as never);
    DmaBuf.close(fd);
    throws(() => configureSystemHeap(null as never), 'EINVAL');
    const old = configureSystemHeap({});
    throws(() => configureSystemHeap({ chunkSize: 8192, maxBytes: -1 }), 'EINVAL');
    assert.deepEqual(configureSystemHeap({}), old, 'nothing changed');
  });
});

describe('fuzz regressions: domain, errors, handles, knobs and test drivers', () => {
  it('Domain: bad arguments are EINVAL and the current domain stays', () => {
    const d = Domain.current();
    throws(() => Domain.setCurrent(null as never), 'EINVAL');
    assert.equal(Domain.current(), d);
    throws(() => d.threadExited(1e9), 'EINVAL');
    throws(() => d.threadExited(-15), 'EINVAL');
    throws(() => d.descriptor('x' as never), 'EINVAL');
    throws(() => d.watch(null as never, {}), 'EINVAL');
    throws(() => d.spawn(5 as never), 'EINVAL');
    throws(() => d.spawn('not-a-relative-path.js'), 'EINVAL');
    throws(() => onThreadExit('x' as never, () => {}), 'EINVAL');
    throws(() => onThreadExit(1, 5 as never), 'EINVAL');
  });

  it('errors: junk on the wire, unknown codes and odd values never throw a TypeError', () => {
    for (const junk of [
      null,
      undefined,
      5,
      { code: 'toString', message: 'x' },
      { code: 'EIO', message: Symbol('m') },
    ]) {
      const e = deserializeError(junk as never);
      assert.ok(e instanceof DmaBufError);
      assert.equal(e.errno, -ERRNO[e.code]);
    }
    const u = new DmaBufError('NOPE' as never, 'x');
    assert.equal(u.code, 'EIO');
    assert.equal(u.errno, -5);
    assert.equal(codeOf(Symbol('e') as never), undefined);
    assert.equal(serializeError(Object.create(null)).code, 'EIO');
    throws(() => IOC_NR(Symbol('c') as never), 'EINVAL');
  });

  it('fdInstall refuses what is not a file, so that close and get cannot TypeError later', () => {
    throws(() => fdInstall(null as never, 0), 'EINVAL');
    throws(() => fdInstall({ fileKind: 'x' } as never, 0), 'EINVAL');
    const fd = fdInstall({ fileKind: 'x', release() {} }, 1n as never);
    throws(() => DmaBuf.get(fd), 'EINVAL');
    fdClose(fd);
  });

  it('setWaitPolicy and setDmaBufDebug refuse junk instead of changing behaviour', () => {
    const before = getWaitPolicy();
    throws(() => setWaitPolicy({ spinSync: 'x' as never }), 'EINVAL');
    throws(() => setWaitPolicy({ spinSync: 2 ** 53 }), 'EINVAL');
    throws(() => setWaitPolicy(null as never), 'EINVAL');
    assert.deepEqual(getWaitPolicy(), before);
    const debug = isDmaBufDebug();
    throws(() => setDmaBufDebug('yes' as never), 'EINVAL');
    assert.equal(isDmaBufDebug(), debug);
  });

  it('test exporters: bad options are EINVAL (a negative segment size looped forever)', () => {
    throws(() => new MockExporter({ size: -1 }), 'EINVAL');
    throws(() => new MockExporter({ segmentSize: -4096 }), 'EINVAL');
    throws(() => new MockExporter(null as never), 'EINVAL');
    throws(() => new MockExporter({ size: 8192 }).segments(-(2 ** 53), 8192), 'EINVAL');
    throws(() => new MovableExporter({ initial: 'gpu' as never }), 'EINVAL');
    const m = new MovableExporter({ copyDelayMs: 0 });
    return rejects(() => m.move(Object.create(null)), 'EINVAL').finally(() => m.buf.put());
  });
});
