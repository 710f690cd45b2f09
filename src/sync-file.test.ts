// SyncFile through the real core: creation, names, merge validation, FILE_INFO aggregation
// (contracts.md §3.2, §4 items 14–15), poll, waits, deadlines, closing and descriptors. The sw_sync
// selftests (tools/testing/selftests/sync) are in src/testing/sw-sync.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DmaBufError } from './errors.js';
import { DmaFence, type DmaFenceOps } from './fence/fence.js';
import { DmaFenceArray } from './fence/fence-array.js';
import { DmaFenceChain } from './fence/fence-chain.js';
import {
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MAGIC,
  SYNC_IOC_MERGE,
  SYNC_IOC_SET_DEADLINE,
  SyncFile,
} from './sync-file.js';

const ops: DmaFenceOps = { getDriverName: () => 'drv', getTimelineName: () => 'tl' };
const fence = (seqno = 1): DmaFence => new DmaFence(ops, DmaFence.contextAlloc(), seqno);

function expectErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DmaBufError && e.code === code);
}

/** _IOC(dir, type, nr, size) */
const ioc = (dir: number, type: number, nr: number, size: number): number =>
  ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;

describe('SyncFile uAPI constants', () => {
  it('have the kernel values', () => {
    assert.equal(SYNC_IOC_MAGIC, '>'.charCodeAt(0));
    assert.equal(SYNC_IOC_MERGE, ioc(3, SYNC_IOC_MAGIC, 3, 48));
    assert.equal(SYNC_IOC_MERGE, 0xc0303e03);
    assert.equal(SYNC_IOC_FILE_INFO, ioc(3, SYNC_IOC_MAGIC, 4, 56));
    assert.equal(SYNC_IOC_SET_DEADLINE, ioc(1, SYNC_IOC_MAGIC, 5, 16));
  });
});

describe('SyncFile.create and names', () => {
  it('wraps a fence; fence and getFence return it', () => {
    const f = fence();
    const s = SyncFile.create(f);
    assert.equal(s.fence, f);
    assert.equal(s.getFence(), f);
    expectErrno(() => SyncFile.create({} as DmaFence), 'EINVAL');
  });

  it('is named driver-timeline<context>-<seqno> unless merge named it', () => {
    const f = fence(7);
    assert.equal(SyncFile.create(f).name, `drv-tl${f.context}-7`);
    const g = new DmaFence(
      { getDriverName: () => 'd'.repeat(20), getTimelineName: () => 't'.repeat(20) },
      1,
      1,
    );
    assert.equal(SyncFile.create(g).name.length, 31, 'cut to the 32-byte field');
  });

  it('merge names are cut to 31 bytes at a character boundary and stop at NUL', () => {
    const a = SyncFile.create(fence());
    assert.equal(SyncFile.merge('x'.repeat(40), a, a).name, 'x'.repeat(31));
    const euro = SyncFile.merge('€'.repeat(11), a, a).name; // 3 bytes each
    assert.equal(euro, '€'.repeat(10));
    assert.equal(SyncFile.merge('ab\0cd', a, a).name, 'ab');
    assert.equal(SyncFile.merge('', a, a).name, a.name, 'empty: derived from the fence');
  });
});

describe('SyncFile.merge', () => {
  it('signals when both inputs have signaled, and leaves the inputs valid', () => {
    const f1 = fence();
    const f2 = fence();
    const a = SyncFile.create(f1);
    const b = SyncFile.create(f2);
    const m = SyncFile.merge('both', a, b);
    assert.equal(m.poll(), false);
    f1.signal();
    assert.equal(m.poll(), false);
    f2.signal();
    assert.equal(m.poll(), true);
    assert.equal(a.poll(), true);
    assert.equal(m.info().numFences, 2);
  });

  it('of a file with itself holds the one fence', () => {
    const f = fence();
    const a = SyncFile.create(f);
    assert.equal(SyncFile.merge('self', a, a).fence, f);
  });

  it('validates like the ioctl: EINVAL, ENOENT for the second file, EBADF for a closed first', () => {
    const a = SyncFile.create(fence());
    expectErrno(() => SyncFile.merge(3 as never, a, a), 'EINVAL');
    expectErrno(() => SyncFile.merge('m', {} as SyncFile, a), 'EINVAL');
    expectErrno(() => SyncFile.merge('m', a, {} as SyncFile), 'ENOENT');
    const closed = SyncFile.create(fence());
    closed.put();
    expectErrno(() => SyncFile.merge('m', a, closed), 'ENOENT');
    expectErrno(() => SyncFile.merge('m', closed, a), 'EBADF');
  });
});

describe('SyncFile#info', () => {
  it('with numFences 0 reports only the count and the status of the whole fence', () => {
    const f1 = fence();
    const f2 = fence();
    const s = SyncFile.create(DmaFenceArray.create([f1, f2], 1, 1));
    const i = s.info();
    assert.deepEqual(i, { name: s.name, status: 0, flags: 0, numFences: 2 });
    assert.equal('fences' in i, false);
    f1.signal();
    f2.setError(-5);
    f2.signal();
    assert.equal(s.info().status, -5);
  });

  it('rejects a too small numFences, non-zero flags or pad, and bad counts with EINVAL', () => {
    const s = SyncFile.create(DmaFenceArray.create([fence(), fence()], 1, 1));
    expectErrno(() => s.info({ numFences: 1 }), 'EINVAL');
    expectErrno(() => s.info({ flags: 1 }), 'EINVAL');
    expectErrno(() => s.info({ pad: 1 }), 'EINVAL');
    expectErrno(() => s.info({ numFences: -1 }), 'EINVAL');
    expectErrno(() => s.info({ numFences: 2 ** 32 }), 'EINVAL');
    expectErrno(() => s.info(null as never), 'EINVAL');
    assert.equal(s.info({ numFences: 5 }).numFences, 2, 'a larger buffer is fine');
  });

  it('fills one entry per unwrapped fence with names, status, flags and timestamp', () => {
    const f1 = fence();
    const f2 = fence();
    f1.signalTimestamp(42n);
    const s = SyncFile.create(DmaFenceArray.create([f1, f2], 1, 1));
    const i = s.info({ numFences: 2 });
    assert.equal(i.numFences, 2);
    assert.deepEqual(i.fences, [
      { objName: 'tl', driverName: 'drv', status: 1, flags: 0, timestampNs: 42n },
      { objName: 'tl', driverName: 'drv', status: 0, flags: 0, timestampNs: 0n },
    ]);
    assert.equal(i.status, 0);
  });

  it('aggregates the first non-positive member status, else 1', () => {
    const mk = (states: (0 | 1 | number)[]): SyncFile => {
      const fs = states.map(() => fence());
      states.forEach((st, k) => {
        if (st < 0) fs[k]!.setError(st);
        if (st !== 0) fs[k]!.signal();
      });
      return SyncFile.create(DmaFenceArray.create(fs, 1, 1));
    };
    const status = (s: SyncFile): number => s.info({ numFences: 8 }).status;
    assert.equal(status(mk([1, 1])), 1);
    assert.equal(status(mk([1, 0, -5])), 0, 'an active fence before an error gives 0');
    assert.equal(status(mk([1, -5, 0])), -5, 'an error before an active fence gives the error');
    assert.equal(status(mk([-5, -22])), -5);
  });

  it('a merge of signaled files holds one fence, the stub, and reports signaled', () => {
    const a = fence();
    const b = fence();
    a.signal();
    b.signal();
    const m = SyncFile.merge('done', SyncFile.create(a), SyncFile.create(b));
    const i = m.info({ numFences: 1 });
    assert.equal(i.numFences, 1);
    assert.equal(i.status, 1);
  });

  it('counts chain nodes through unwrap', () => {
    const fs = [fence(), fence(), fence()];
    let c: DmaFence | null = null;
    for (let k = 0; k < 3; k++) c = new DmaFenceChain(c, fs[k]!, k + 1);
    const s = SyncFile.create(c!);
    assert.equal(s.info().numFences, 3);
    fs[1]!.signal();
    assert.equal(s.info().numFences, 2, 'signaled older nodes are skipped');
  });
});

describe('SyncFile poll, wait and deadlines', () => {
  it('poll is ready once signaled, also with an error, and arms signaling on first use', () => {
    let enabled = 0;
    const enableSignaling = (): boolean => {
      enabled++;
      return true;
    };
    const f = new DmaFence({ ...ops, enableSignaling }, 1, 1);
    const s = SyncFile.create(f);
    assert.equal(s.poll(), false);
    assert.equal(enabled, 1);
    assert.equal(s.poll(), false);
    f.setError(-125);
    f.signal();
    assert.equal(s.poll(), true);
  });

  it('wait follows the fence wait rules', async () => {
    const f = fence();
    const s = SyncFile.create(f);
    assert.equal(await s.wait(0), 0);
    assert.equal(await s.wait(5), 0);
    const w = s.wait();
    f.signal();
    assert.equal(await w, Infinity);
    assert.equal(await s.wait(0), 1);
    assert.equal(s.waitSync(0), 1);
    assert.equal(s.waitSync(100), 100);
  });

  it('wait rejects with ERESTARTSYS when aborted', async () => {
    const s = SyncFile.create(fence());
    const ac = new AbortController();
    const w = s.wait(10_000, { signal: ac.signal });
    ac.abort();
    await assert.rejects(w, (e: unknown) => e instanceof DmaBufError && e.code === 'ERESTARTSYS');
  });

  it('setDeadline forwards to every member; a non-zero pad is EINVAL', () => {
    const f1 = fence();
    const f2 = fence();
    const s = SyncFile.create(DmaFenceArray.create([f1, f2], 1, 1));
    s.setDeadline(500n);
    assert.equal(f1.deadline, 500n);
    assert.equal(f2.deadline, 500n);
    s.setDeadline(400n, 0);
    assert.equal(f1.deadline, 400n);
    expectErrno(() => s.setDeadline(100n, 1n), 'EINVAL');
    expectErrno(() => s.setDeadline(100n, 'x' as never), 'EINVAL');
    expectErrno(() => s.setDeadline(-1n), 'EINVAL');
  });
});

describe('SyncFile lifetime and descriptors', () => {
  it('put closes it: every use is then EBADF, and put is idempotent', () => {
    const f = fence();
    const s = SyncFile.create(f);
    s.poll();
    s.put();
    s.put();
    assert.equal(s.closed, true);
    expectErrno(() => s.fence, 'EBADF');
    expectErrno(() => s.info(), 'EBADF');
    expectErrno(() => s.poll(), 'EBADF');
    expectErrno(() => s.share(), 'EBADF');
    f.signal(); // the removed poll callback does not run into a closed file
  });

  it('works with using', () => {
    let s: SyncFile;
    {
      using t = SyncFile.create(fence());
      s = t;
    }
    assert.equal(s.closed, true);
  });

  it('share and fromShared keep the fence and the merge name', () => {
    const f1 = fence();
    const f2 = fence();
    const m = SyncFile.merge('merged', SyncFile.create(f1), SyncFile.create(f2));
    const r = SyncFile.fromShared(m.share());
    assert.equal(r.name, 'merged');
    assert.deepEqual(
      r.info({ numFences: 2 }).fences!.map((x) => x.status),
      [0, 0],
    );
    f1.signal();
    f2.signal();
    assert.equal(r.poll(), true);
    const plain = SyncFile.fromShared(SyncFile.create(f1).share());
    assert.equal(plain.name, SyncFile.create(f1).name);
  });

  it('fromShared rejects malformed descriptors', () => {
    expectErrno(() => SyncFile.fromShared(null as never), 'EINVAL');
    expectErrno(() => SyncFile.fromShared({ t: 'fence' } as never), 'EINVAL');
    const good = SyncFile.create(fence()).share();
    expectErrno(() => SyncFile.fromShared({ ...good, d: good.d + 1 }), 'EXDEV');
    expectErrno(() => SyncFile.fromShared({ ...good, n: 5 as never }), 'EINVAL');
  });
});
