/**
 * The seed's object model, function by function: dma_buf_export, dma_buf_fd, dma_buf_get,
 * dma_buf_put, the release, the global list and its iterator, and the tracepoints.
 */

import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { bufStats } from '../../src/buf/dma-buf.js';
import { DmaFence } from '../../src/fence/fence.js';
import {
  CHANNELS,
  DmaBuf,
  type DmaBufOps,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
} from '../../src/index.js';
import { DmaResv } from '../../src/resv/resv.js';
import { SyncFile } from '../../src/sync-file.js';
import { MockExporter } from '../../src/testing/index.js';
import { addFence, rejects, throws, tick } from './_support.js';

function minimalOps(log: string[] = []): DmaBufOps {
  return {
    mapDmaBuf: () => [],
    unmapDmaBuf: () => {},
    release: () => {
      log.push('release');
    },
  };
}

describe('dma_buf_export', () => {
  it('rejects a missing or null priv with EINVAL', () => {
    throws(() => DmaBuf.export({ ops: minimalOps(), size: 4096, expName: 'x' } as any), 'EINVAL');
    throws(
      () => DmaBuf.export({ ops: minimalOps(), size: 4096, expName: 'x', priv: null }),
      'EINVAL',
    );
  });

  it('rejects missing ops and each missing mandatory op with EINVAL', () => {
    throws(() => DmaBuf.export({ size: 1, expName: 'x', priv: 1 } as any), 'EINVAL');
    for (const k of ['mapDmaBuf', 'unmapDmaBuf', 'release'] as const) {
      const ops = minimalOps() as any;
      delete ops[k];
      throws(() => DmaBuf.export({ ops, size: 1, expName: 'x', priv: 1 }), 'EINVAL');
    }
    throws(
      () =>
        DmaBuf.export({ ops: { ...minimalOps(), mmap: 3 } as any, size: 1, expName: 'x', priv: 1 }),
      'EINVAL',
    );
  });

  it('requires pin and unpin together', () => {
    throws(
      () =>
        DmaBuf.export({ ops: { ...minimalOps(), pin: () => {} }, size: 1, expName: 'x', priv: 1 }),
      'EINVAL',
    );
    throws(
      () =>
        DmaBuf.export({
          ops: { ...minimalOps(), unpin: () => {} },
          size: 1,
          expName: 'x',
          priv: 1,
        }),
      'EINVAL',
    );
    const b = DmaBuf.export({
      ops: { ...minimalOps(), pin: () => {}, unpin: () => {} },
      size: 1,
      expName: 'x',
      priv: 1,
    });
    assert.equal(b.isDynamic, true);
    b.put();
  });

  it('rejects bad sizes, flags, names and resv with EINVAL', () => {
    for (const size of [-1, Number.NaN, 1.5, '4096', 2 ** 60, undefined]) {
      throws(
        () => DmaBuf.export({ ops: minimalOps(), size: size as any, expName: 'x', priv: 1 }),
        'EINVAL',
      );
    }
    throws(() => DmaBuf.export({ ops: minimalOps(), size: 1, expName: '', priv: 1 }), 'EINVAL');
    throws(
      () => DmaBuf.export({ ops: minimalOps(), size: 1, expName: 7 as any, priv: 1 }),
      'EINVAL',
    );
    throws(
      () => DmaBuf.export({ ops: minimalOps(), size: 1, expName: 'x', priv: 1, flags: -1 }),
      'EINVAL',
    );
    throws(
      () => DmaBuf.export({ ops: minimalOps(), size: 1, expName: 'x', priv: 1, resv: {} as any }),
      'EINVAL',
    );
    throws(() => DmaBuf.export(null as any), 'EINVAL');
  });

  it('fails with ENOENT when the owner module is unavailable, and puts the owner at release', () => {
    throws(
      () =>
        DmaBuf.export({
          ops: minimalOps(),
          size: 1,
          expName: 'x',
          priv: 1,
          owner: { available: false },
        }),
      'ENOENT',
    );
    throws(
      () =>
        DmaBuf.export({
          ops: minimalOps(),
          size: 1,
          expName: 'x',
          priv: 1,
          owner: { get: () => false },
        }),
      'ENOENT',
    );
    let refs = 0;
    const owner = {
      get: () => {
        refs++;
        return true;
      },
      put: () => void refs--,
    };
    const b = DmaBuf.export({ ops: minimalOps(), size: 1, expName: 'x', priv: 1, owner });
    assert.equal(refs, 1);
    b.put();
    assert.equal(refs, 0);
  });

  it('gives unique, monotonic inodes and keeps size, flags and exporter name', () => {
    const a = new MockExporter().export();
    const b = new MockExporter({
      size: 3 * PAGE_SIZE,
      expName: 'other',
      flags: O_RDONLY | O_NONBLOCK | O_CLOEXEC,
    }).export();
    assert.ok(b.inode > a.inode);
    assert.equal(b.size, 3 * PAGE_SIZE);
    assert.equal(b.expName, 'other');
    assert.equal(b.flags, O_RDONLY | O_NONBLOCK, 'file flags are masked to O_ACCMODE | O_NONBLOCK');
    assert.equal(b.mode, O_RDONLY);
    assert.equal(a.mode, O_RDWR);
    assert.equal(a.refcount, 1);
    a.put();
    b.put();
  });

  it('embeds a reservation object unless one is given, and finalizes only its own', async () => {
    const shared = new DmaResv();
    const m1 = new MockExporter({ resv: shared });
    const b1 = m1.export();
    assert.equal(b1.resv, shared);
    const b2 = new MockExporter().export();
    const own = b2.resv;
    assert.notEqual(own, shared);
    b1.put();
    b2.put();
    assert.equal(await shared.lock(null), 0, 'a caller-provided resv survives the buffer');
    shared.unlock();
    throws(() => own.trylock(), 'EBADF');
    shared.fini();
  });
});

describe('dma_buf_fd / dma_buf_get / dma_buf_put', () => {
  it('hands out the lowest free fd from 3, each holding its own reference', () => {
    const buf = new MockExporter().export();
    const fd1 = buf.fd();
    const fd2 = buf.fd(O_CLOEXEC);
    assert.ok(fd1 >= 3);
    assert.equal(fd2, fd1 + 1);
    assert.equal(buf.refcount, 3);
    DmaBuf.close(fd1);
    assert.equal(buf.refcount, 2);
    const fd3 = buf.fd();
    assert.equal(fd3, fd1, 'the lowest free number is reused');
    DmaBuf.close(fd2);
    DmaBuf.close(fd3);
    buf.put();
  });

  it('get(fd) returns a new reference; EBADF for a bad fd, EINVAL for a non-buffer fd', async () => {
    const buf = new MockExporter().export();
    const fd = buf.fd();
    const again = DmaBuf.get(fd);
    assert.equal(again.inode, buf.inode);
    assert.equal(buf.refcount, 3);
    again.put();
    for (const bad of [-1, 1.5, Number.NaN, '3', null, 999999])
      throws(() => DmaBuf.get(bad as any), 'EBADF');
    // A sync file fd is an fd, but not a dma-buf.
    const arg: { flags: number; fd?: number } = { flags: 1 };
    await buf.ioctl(0xc0086202, arg);
    assert.equal(typeof arg.fd, 'number');
    throws(() => DmaBuf.get(arg.fd!), 'EINVAL');
    DmaBuf.close(arg.fd!);
    DmaBuf.close(fd);
    throws(() => DmaBuf.get(fd), 'EBADF');
    throws(() => DmaBuf.close(fd), 'EBADF');
    buf.put();
    void SyncFile;
  });

  it('fd flags: unknown bits and O_ACCMODE itself are EINVAL; the mode only narrows', () => {
    const buf = new MockExporter().export();
    throws(() => buf.fd(0x40), 'EINVAL');
    throws(() => buf.fd(O_RDWR | O_WRONLY), 'EINVAL');
    const ro = buf.get(O_RDONLY);
    throws(() => ro.fd(O_RDWR), 'EACCES');
    throws(() => ro.get(O_RDWR), 'EACCES');
    const fd = ro.fd();
    const fromFd = DmaBuf.get(fd);
    assert.equal(fromFd.mode, O_RDONLY);
    fromFd.put();
    DmaBuf.close(fd);
    ro.put();
    buf.put();
  });

  it('a reference is put once: a second put and any later use are EBADF', async () => {
    const m = new MockExporter();
    const buf = m.export();
    const other = buf.get();
    other.put();
    throws(() => other.put(), 'EBADF');
    throws(() => other.fd(), 'EBADF');
    throws(() => other.share(), 'EBADF');
    await rejects(() => other.attach({ name: 'd' }), 'EBADF');
    assert.equal(other.alive, false);
    assert.equal(buf.alive, true);
    buf.put();
    assert.equal(m.releases, 1);
  });

  it('using disposes the reference', () => {
    const m = new MockExporter();
    {
      using buf = m.export();
      assert.equal(buf.refcount, 1);
    }
    assert.equal(m.releases, 1);
  });

  it('a borrowed view (what exporters and attachments see) cannot be put', async () => {
    const m = new MockExporter();
    const buf = m.export();
    const att = await buf.attach({ name: 'dev' });
    throws(() => att.dmabuf.put(), 'EINVAL');
    const extra = att.dmabuf.get();
    assert.equal(buf.refcount, 2);
    extra.put();
    await buf.detach(att);
    buf.put();
  });
});

describe('release', () => {
  it('runs exactly once, on the last put, off the list, before the embedded resv is finalized', () => {
    const order: string[] = [];
    let resvUsableInRelease = false;
    let listedInRelease = true;
    const ops: DmaBufOps = {
      mapDmaBuf: () => [],
      unmapDmaBuf: () => {},
      release: (b) => {
        order.push('release');
        resvUsableInRelease = b.resv.trylock();
        if (resvUsableInRelease) b.resv.unlock();
        listedInRelease = false;
        for (let it = DmaBuf.iterBegin(); it !== null; it = DmaBuf.iterNext(it)) {
          if (it.inode === b.inode) listedInRelease = true;
        }
      },
    };
    const buf = DmaBuf.export({ ops, size: PAGE_SIZE, expName: 'order', priv: 1 });
    const resv = buf.resv;
    const fd = buf.fd();
    const r2 = DmaBuf.get(fd);
    buf.put();
    DmaBuf.close(fd);
    assert.deepEqual(order, []);
    r2.put();
    assert.deepEqual(order, ['release']);
    assert.equal(resvUsableInRelease, true);
    assert.equal(listedInRelease, false);
    throws(() => resv.trylock(), 'EBADF');
    assert.equal(bufStats().exported >= 0, true);
  });

  it('a reservation wait started before the release still waits for the fences it saw', async () => {
    // Found by the model (DMABUF_SEED=463725): the wait returned success as soon as the buffer
    // went away, while a KERNEL fence it had seen was still pending.
    const ops: DmaBufOps = { mapDmaBuf: () => [], unmapDmaBuf: () => {}, release: () => {} };
    const buf = DmaBuf.export({ ops, size: PAGE_SIZE, expName: 'wait-release', priv: 1 });
    const fops = { getDriverName: () => 't', getTimelineName: () => 't' };
    const ctx = DmaFence.contextAlloc(2);
    const kernel = new DmaFence(fops, ctx, 1);
    const write = new DmaFence(fops, ctx + 1, 1);
    // WRITE first: the wait takes it first, and it signals after the release.
    await addFence(buf.resv, write, 1);
    await addFence(buf.resv, kernel, 0);
    let done = false;
    const wait = buf.resv.waitTimeout(1, 10_000).then((r) => {
      done = true;
      return r;
    });
    buf.put(); // released while the wait is pending
    // Another buffer reuses the record: the wait must not read it.
    const other = DmaBuf.export({ ops, size: PAGE_SIZE, expName: 'reuser', priv: 2 });
    write.signal();
    await tick(20);
    assert.equal(done, false, 'still waiting for the KERNEL fence');
    kernel.signal();
    assert.ok((await wait) >= 1);
    other.put();
  });

  it('warns when released with attachments still attached', async () => {
    const m = new MockExporter();
    const buf = m.export();
    const warnings: string[] = [];
    const onWarn = (w: unknown): void => void warnings.push((w as { message: string }).message);
    diagnosticsChannel.subscribe(CHANNELS.warning, onWarn);
    const att = await buf.attach({ name: 'leaky' });
    buf.put();
    await new Promise((r) => setImmediate(r));
    diagnosticsChannel.unsubscribe(CHANNELS.warning, onWarn);
    assert.ok(
      warnings.some((w) => w.includes('attachments')),
      warnings.join('; '),
    );
    assert.equal(m.releases, 1);
    await rejects(() => att.dmabuf.detach(att), 'EINVAL');
    await rejects(() => att.dmabuf.detach(att), 'EINVAL');
  });

  it('awaits an exporter release that returns a Promise before finalizing', async () => {
    let finish!: () => void;
    const ops: DmaBufOps = {
      mapDmaBuf: () => [],
      unmapDmaBuf: () => {},
      release: () => new Promise<void>((r) => (finish = r)),
    };
    const buf = DmaBuf.export({ ops, size: 1, expName: 'slow', priv: 1 });
    const resv = buf.resv;
    buf.put();
    assert.equal(resv.trylock(), true, 'still usable while the release is pending');
    resv.unlock();
    finish();
    await new Promise((r) => setImmediate(r));
    throws(() => resv.trylock(), 'EBADF');
  });
});

describe('the global list (dma_buf_iter_begin / dma_buf_iter_next)', () => {
  it('walks every live buffer with a reference and ends with null', () => {
    const bufs = [
      new MockExporter().export(),
      new MockExporter().export(),
      new MockExporter().export(),
    ];
    const seen = new Set<number>();
    let it = DmaBuf.iterBegin();
    while (it !== null) {
      seen.add(it.inode);
      if (it.inode === bufs[1]!.inode)
        assert.equal(bufs[1]!.refcount, 2, 'the walk holds a reference');
      it = DmaBuf.iterNext(it);
    }
    for (const b of bufs) assert.ok(seen.has(b.inode));
    for (const b of bufs) assert.equal(b.refcount, 1, 'iterNext put the previous reference');
    bufs[1]!.put();
    const after = new Set<number>();
    for (let x = DmaBuf.iterBegin(); x !== null; x = DmaBuf.iterNext(x)) after.add(x.inode);
    assert.equal(after.has(bufs[1]!.inode), false);
    bufs[0]!.put();
    bufs[2]!.put();
  });

  it('a walk ended early is ended with put', () => {
    const b = new MockExporter().export();
    const first = DmaBuf.iterBegin();
    assert.ok(first !== null);
    first.put();
    assert.equal(b.refcount, 1);
    b.put();
    throws(() => DmaBuf.iterNext({} as any), 'EINVAL');
  });
});

describe('tracepoints', () => {
  it('publishes export, fd, get, put, mmap, attach and detach', async () => {
    const seen: string[] = [];
    const msgs = new Map<string, any>();
    const subs: [string, (m: unknown) => void][] = [];
    for (const [k, name] of Object.entries(CHANNELS)) {
      if (!k.startsWith('buf')) continue;
      const fn = (m: unknown): void => {
        seen.push(k);
        msgs.set(k, m);
      };
      diagnosticsChannel.subscribe(name, fn);
      subs.push([name, fn]);
    }
    try {
      const buf = new MockExporter().export();
      const fd = buf.fd();
      DmaBuf.get(fd).put();
      await buf.mmap(0, PAGE_SIZE);
      const att = await buf.attach({ name: 'd' });
      await buf.detach(att);
      DmaBuf.close(fd);
      buf.put();
    } finally {
      for (const [n, f] of subs) diagnosticsChannel.unsubscribe(n, f);
    }
    for (const k of [
      'bufExport',
      'bufFd',
      'bufGet',
      'bufPut',
      'bufMmap',
      'bufAttach',
      'bufDetach',
    ]) {
      assert.ok(seen.includes(k), `${k} missing from ${seen.join(',')}`);
      const m = msgs.get(k);
      assert.equal(m.expName, 'mock');
      assert.equal(m.size, 4 * PAGE_SIZE);
      assert.equal(typeof m.ino, 'number');
      assert.ok(m.buf instanceof DmaBuf);
    }
    assert.equal(typeof msgs.get('bufFd').fd, 'number');
    assert.deepEqual([msgs.get('bufAttach').dev, msgs.get('bufAttach').dynamic], ['d', false]);
    assert.equal(msgs.get('bufMmap').length, PAGE_SIZE);
  });
});

void DmaFence;
