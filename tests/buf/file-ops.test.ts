/**
 * CPU access and the file as userspace sees it: begin/end CPU access and DMA_BUF_IOCTL_SYNC, mmap,
 * vmap, poll, SET_NAME, llseek, the ioctl numbers, fdinfo and debugfs bufinfo.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DMA_BIDIRECTIONAL,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_VALID_FLAGS_MASK,
  DMA_BUF_SYNC_WRITE,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  DmaBuf,
  EPOLLERR,
  EPOLLIN,
  EPOLLOUT,
  IOC,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from '../../src/index.js';
import { MockExporter } from '../../src/testing/index.js';
import { addFence, DmaResvUsage, rejects, Timeline, throws, tick } from './_support.js';

describe('uAPI constants', () => {
  it('match the kernel headers', () => {
    assert.equal(DMA_BUF_SYNC_READ, 1);
    assert.equal(DMA_BUF_SYNC_WRITE, 2);
    assert.equal(DMA_BUF_SYNC_RW, 3);
    assert.equal(DMA_BUF_SYNC_START, 0);
    assert.equal(DMA_BUF_SYNC_END, 4);
    assert.equal(DMA_BUF_SYNC_VALID_FLAGS_MASK, 7);
    assert.equal(DMA_BUF_IOCTL_SYNC, 0x40086200);
    assert.equal(DMA_BUF_SET_NAME_A, 0x40046201);
    assert.equal(DMA_BUF_SET_NAME_B, 0x40086201);
    assert.equal(DMA_BUF_IOCTL_EXPORT_SYNC_FILE, 0xc0086202);
    assert.equal(DMA_BUF_IOCTL_IMPORT_SYNC_FILE, 0x40086203);
    assert.equal(IOC(1, 0x62, 0, 8), DMA_BUF_IOCTL_SYNC);
    assert.equal(IOC(3, 0x62, 2, 8), DMA_BUF_IOCTL_EXPORT_SYNC_FILE);
    assert.equal(EPOLLIN, 1);
    assert.equal(EPOLLOUT, 4);
    assert.equal(EPOLLERR, 8);
    assert.deepEqual([DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE], [0, 1, 2]);
    assert.deepEqual([O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE, O_CLOEXEC], [0, 1, 2, 3, 0o2000000]);
    assert.deepEqual([SEEK_SET, SEEK_END], [0, 2]);
    assert.equal(PAGE_SIZE, 4096);
  });
});

describe('dma_buf_begin_cpu_access / dma_buf_end_cpu_access', () => {
  it('calls the exporter hook first, then waits for the implicit fences of the direction', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.READ);
    // A reader is pending: CPU reads (FROM_DEVICE) need not wait, CPU writes must.
    assert.equal(await buf.beginCpuAccess(DMA_FROM_DEVICE), 0);
    let done = false;
    const p = buf.beginCpuAccess(DMA_TO_DEVICE).then(() => (done = true));
    await tick(3);
    assert.equal(done, false);
    assert.equal(mock.calls.at(-1), `begin:${DMA_TO_DEVICE}`, 'the hook ran before the wait');
    tl.inc(1);
    await p;
    // A writer is pending: everything waits.
    await addFence(buf.resv, tl.fence(2), DmaResvUsage.WRITE);
    done = false;
    const q = buf.beginCpuAccess(DMA_FROM_DEVICE).then(() => (done = true));
    await tick(3);
    assert.equal(done, false);
    tl.inc(1);
    await q;
    // BOOKKEEP fences are not implicit sync.
    await addFence(buf.resv, tl.fence(3), DmaResvUsage.BOOKKEEP);
    assert.equal(await buf.beginCpuAccess(DMA_BIDIRECTIONAL), 0);
    tl.inc(1);
    buf.put();
  });

  it('end calls only the hook and never waits', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.WRITE);
    assert.equal(await buf.endCpuAccess(DMA_BIDIRECTIONAL), 0);
    assert.deepEqual(mock.calls, [`end:${DMA_BIDIRECTIONAL}`]);
    tl.inc(1);
    buf.put();
  });

  it('propagates hook errors and does not wait then', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    mock.fail.beginCpuAccess = 'EINTR';
    await rejects(() => buf.beginCpuAccess(DMA_BIDIRECTIONAL), 'EINTR');
    await rejects(() => buf.beginCpuAccess(5 as any), 'EINVAL');
    buf.put();
  });

  it('is interruptible through an AbortSignal', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.WRITE);
    const ac = new AbortController();
    const p = buf.beginCpuAccess(DMA_BIDIRECTIONAL, { signal: ac.signal });
    ac.abort();
    await rejects(() => p, 'ERESTARTSYS');
    tl.inc(1);
    buf.put();
  });
});

describe('the blocking CPU-access variants (beginCpuAccessSync / endCpuAccessSync)', () => {
  it('call the exporter hook and return 0 at once when no fence of the direction is pending', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.READ);
    await addFence(buf.resv, tl.fence(2), DmaResvUsage.BOOKKEEP);
    // A pending reader does not hold up a CPU read; BOOKKEEP fences are never waited for.
    assert.equal(buf.beginCpuAccessSync(DMA_FROM_DEVICE), 0);
    assert.equal(buf.endCpuAccessSync(DMA_FROM_DEVICE), 0);
    assert.deepEqual(mock.calls, [`begin:${DMA_FROM_DEVICE}`, `end:${DMA_FROM_DEVICE}`]);
    tl.inc(1);
    // Once every fence up to READ has signaled, a CPU write goes ahead too.
    assert.equal(buf.beginCpuAccessSync(DMA_BIDIRECTIONAL), 0);
    assert.equal(buf.endCpuAccessSync(DMA_BIDIRECTIONAL), 0);
    assert.deepEqual(mock.calls.slice(2), [
      `begin:${DMA_BIDIRECTIONAL}`,
      `end:${DMA_BIDIRECTIONAL}`,
    ]);
    tl.inc(1);
    buf.put();
  });

  it('throw what the async variants reject with', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    mock.fail.beginCpuAccess = 'EINTR';
    throws(() => buf.beginCpuAccessSync(DMA_BIDIRECTIONAL), 'EINTR');
    mock.fail.endCpuAccess = 'EIO';
    throws(() => buf.endCpuAccessSync(DMA_BIDIRECTIONAL), 'EIO');
    throws(() => buf.beginCpuAccessSync(5 as any), 'EINVAL');
    throws(() => buf.endCpuAccessSync(-1 as any), 'EINVAL');
    buf.put();
    throws(() => buf.beginCpuAccessSync(DMA_BIDIRECTIONAL), 'EBADF');
    throws(() => buf.endCpuAccessSync(DMA_BIDIRECTIONAL), 'EBADF');
  });

  it('an exporter hook that answers with a Promise is EAGAIN (it needs the event loop)', async () => {
    const mock = new MockExporter();
    mock.ops.beginCpuAccess = async () => {};
    mock.ops.endCpuAccess = () => Promise.resolve(0);
    const buf = mock.export();
    throws(() => buf.beginCpuAccessSync(DMA_FROM_DEVICE), 'EAGAIN');
    throws(() => buf.endCpuAccessSync(DMA_FROM_DEVICE), 'EAGAIN');
    // The async variants serve such an exporter.
    assert.equal(await buf.beginCpuAccess(DMA_FROM_DEVICE), 0);
    assert.equal(await buf.endCpuAccess(DMA_FROM_DEVICE), 0);
    buf.put();
  });

  it('need no exporter hook', () => {
    const buf = new MockExporter({ cpu: false }).export();
    assert.equal(buf.beginCpuAccessSync(DMA_TO_DEVICE), 0);
    assert.equal(buf.endCpuAccessSync(DMA_TO_DEVICE), 0);
    buf.put();
  });
});

describe('DMA_BUF_IOCTL_SYNC', () => {
  it('validates flags: unknown bits, or neither READ nor WRITE, are EINVAL', async () => {
    const buf = new MockExporter().export();
    for (const f of [
      0,
      DMA_BUF_SYNC_END,
      8,
      0x10 | DMA_BUF_SYNC_READ,
      -1,
      1.5,
      Number.NaN,
      'x',
      2n ** 40n,
    ]) {
      await rejects(() => buf.sync(f as any), 'EINVAL');
    }
    assert.equal(await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), 0);
    assert.equal(await buf.sync(BigInt(DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW)), 0);
    buf.put();
  });

  it('maps READ, WRITE and RW to the directions, START to begin and END to end', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
    await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE);
    await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW);
    await buf.sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW);
    assert.deepEqual(mock.calls, [
      `begin:${DMA_FROM_DEVICE}`,
      `begin:${DMA_TO_DEVICE}`,
      `begin:${DMA_BIDIRECTIONAL}`,
      `end:${DMA_BIDIRECTIONAL}`,
    ]);
    buf.put();
  });

  it('START|READ waits only for writers; START|WRITE waits for readers too', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.READ);
    assert.equal(await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ), 0);
    let done = false;
    const p = buf
      .ioctl(DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE })
      .then(() => (done = true));
    await tick(3);
    assert.equal(done, false);
    tl.inc(1);
    await p;
    buf.put();
  });
});

describe('mmap', () => {
  it('is a zero-copy view of the exporter memory', async () => {
    const mock = new MockExporter({ size: 4 * PAGE_SIZE });
    const buf = mock.export();
    const v = await buf.mmap(PAGE_SIZE, 2 * PAGE_SIZE, { write: true });
    assert.equal(v.byteLength, 2 * PAGE_SIZE);
    v[0] = 0x5a;
    assert.equal(new Uint8Array(mock.memory)[PAGE_SIZE], 0x5a);
    new Uint8Array(mock.memory)[PAGE_SIZE + 1] = 0x33;
    assert.equal(v[1], 0x33);
    const whole = await buf.mmap();
    assert.equal(whole.byteLength, buf.size);
    assert.equal(mock.calls.at(-1), 'mmap:0+4');
    buf.put();
  });

  it('checks offsets and bounds as the kernel does', async () => {
    const buf = new MockExporter({ size: 4 * PAGE_SIZE + 100 }).export();
    await rejects(() => buf.mmap(1, PAGE_SIZE), 'EINVAL');
    await rejects(() => buf.mmap(0, 0), 'EINVAL');
    await rejects(() => buf.mmap(-PAGE_SIZE, PAGE_SIZE), 'EINVAL');
    await rejects(() => buf.mmap(0, Number.NaN), 'EINVAL');
    await rejects(() => buf.mmap(4 * PAGE_SIZE, 100), 'EINVAL');
    await rejects(() => buf.mmap(0, 5 * PAGE_SIZE), 'EINVAL');
    await rejects(() => buf.mmap(2 ** 52, 2 ** 52), 'EOVERFLOW');
    assert.equal((await buf.mmap(3 * PAGE_SIZE, PAGE_SIZE)).byteLength, PAGE_SIZE);
    assert.equal((await buf.mmap(0, 10)).byteLength, 10, 'a partial last page rounds up');
    buf.put();
  });

  it('EINVAL without an exporter mmap; EACCES by access mode', async () => {
    const none = new MockExporter({ mmap: false }).export();
    await rejects(() => none.mmap(0, PAGE_SIZE), 'EINVAL');
    none.put();
    const buf = new MockExporter().export();
    const ro = buf.get(O_RDONLY);
    await ro.mmap(0, PAGE_SIZE);
    await rejects(() => ro.mmap(0, PAGE_SIZE, { write: true }), 'EACCES');
    const wo = buf.get(O_WRONLY);
    await rejects(() => wo.mmap(0, PAGE_SIZE, { write: true }), 'EACCES');
    const rofd = ro.fd();
    const fromFd = DmaBuf.get(rofd);
    await rejects(() => fromFd.mmap(0, PAGE_SIZE, { write: true }), 'EACCES');
    for (const r of [ro, wo, fromFd, buf]) r.put();
    DmaBuf.close(rofd);
    const roFile = new MockExporter({ flags: O_RDONLY }).export();
    await rejects(() => roFile.mmap(0, PAGE_SIZE, { write: true }), 'EACCES');
    roFile.put();
  });

  it('a range over several segments needs mmapSegments', async () => {
    const mock = new MockExporter({ size: 4 * PAGE_SIZE, segmentSize: 2 * PAGE_SIZE });
    const buf = mock.export();
    await rejects(() => buf.mmap(PAGE_SIZE, 2 * PAGE_SIZE), 'EINVAL');
    const views = await buf.mmapSegments(PAGE_SIZE, 2 * PAGE_SIZE);
    assert.deepEqual(
      views.map((v) => v.byteLength),
      [PAGE_SIZE, PAGE_SIZE],
    );
    assert.equal((await buf.mmap(0, 2 * PAGE_SIZE)).byteLength, 2 * PAGE_SIZE);
    buf.put();
  });
});

describe('dma_buf_vmap / dma_buf_vunmap', () => {
  it('needs the lock, is refcounted, returns the same mapping, and vunmaps once at the end', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    await rejects(() => buf.vmap(), 'EPERM');
    await buf.resv.lock(null);
    const a = await buf.vmap();
    const b = await buf.vmap();
    assert.equal(a, b);
    assert.equal(buf.vmapCount, 2);
    assert.equal(mock.vmaps, 1, 'the exporter vmapped once');
    assert.ok(a.view !== null && a.view.byteLength === buf.size);
    a.view![7] = 7;
    assert.equal(new Uint8Array(mock.memory)[7], 7);
    await buf.vunmap(a);
    assert.equal(mock.vmaps, 1);
    await rejects(() => buf.vunmap({} as any), 'EINVAL');
    await buf.vunmap(b);
    assert.equal(mock.vmaps, 0);
    await rejects(() => buf.vunmap(b), 'EINVAL');
    buf.resv.unlock();
    const c = await buf.vmapUnlocked();
    assert.notEqual(c, a, 'a new mapping after the last vunmap');
    await buf.vunmapUnlocked(c);
    buf.put();
  });

  it('EINVAL without an exporter vmap; exporter failures propagate', async () => {
    const none = new MockExporter({ vmap: false }).export();
    await rejects(() => none.vmapUnlocked(), 'EINVAL');
    none.put();
    const mock = new MockExporter();
    const buf = mock.export();
    mock.fail.vmap = 'ENOMEM';
    await rejects(() => buf.vmapUnlocked(), 'ENOMEM');
    assert.equal(buf.vmapCount, 0);
    buf.put();
  });
});

describe('poll', () => {
  it('reports EPOLLIN and EPOLLOUT at once with no fences; 0 for no events', () => {
    const buf = new MockExporter().export();
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
    assert.equal(buf.poll(0), 0);
    assert.equal(buf.poll(EPOLLERR), 0);
    throws(() => buf.poll('x' as any), 'EINVAL');
    assert.equal(buf.refcount, 1, 'no callback left armed');
    buf.put();
  });

  it('EPOLLIN waits for writers, EPOLLOUT for everyone, BOOKKEEP for nobody', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.BOOKKEEP);
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
    await addFence(buf.resv, tl.fence(2), DmaResvUsage.READ);
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), EPOLLIN);
    tl.inc(2);
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
    await addFence(buf.resv, tl.fence(3), DmaResvUsage.WRITE);
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), 0);
    tl.inc(1);
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
    buf.put();
  });

  it('arms one callback per direction, holding a reference until it fires', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.WRITE);
    assert.equal(buf.poll(EPOLLOUT), 0);
    assert.equal(buf.refcount, 2);
    assert.equal(buf.poll(EPOLLOUT), 0, 'busy while armed');
    assert.equal(buf.refcount, 2, 'still one callback');
    assert.equal(buf.poll(EPOLLIN), 0);
    assert.equal(buf.refcount, 3);
    tl.inc(1);
    assert.equal(buf.refcount, 1);
    assert.equal(buf.poll(EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
    buf.put();
  });

  it('pollAsync resolves when the fences signal, or 0 on timeout', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.WRITE);
    assert.equal(await buf.pollAsync(EPOLLIN, { timeoutMs: 5 }), 0);
    const p = buf.pollAsync(EPOLLIN | EPOLLOUT);
    setTimeout(() => tl.inc(1), 5);
    assert.equal(await p, EPOLLIN | EPOLLOUT);
    await rejects(() => buf.pollAsync(EPOLLIN, { timeoutMs: -1 }), 'EINVAL');
    buf.put();
  });
});

describe('DMA_BUF_SET_NAME', () => {
  it('accepts up to 31 bytes at any time, EINVAL beyond, EFAULT for a non-string', async () => {
    const buf = new MockExporter().export();
    assert.equal(buf.name, null);
    buf.setName('a'.repeat(31));
    assert.equal(buf.name, 'a'.repeat(31));
    throws(() => buf.setName('a'.repeat(32)), 'EINVAL');
    throws(() => buf.setName('é'.repeat(16)), 'EINVAL');
    buf.setName('é'.repeat(15));
    assert.equal(buf.name, 'é'.repeat(15));
    throws(() => buf.setName(3 as any), 'EFAULT');
    const att = await buf.attach({ name: 'd' });
    buf.setName('renamed\0ignored');
    assert.equal(buf.name, 'renamed', 'renaming while attached is allowed; a NUL ends the name');
    await buf.ioctl(DMA_BUF_SET_NAME, 'via-ioctl');
    assert.equal(buf.name, 'via-ioctl');
    buf.setName('');
    assert.equal(buf.name, '');
    await buf.detach(att);
    buf.put();
  });
});

describe('llseek', () => {
  it('only discovers the size: offset 0 with SEEK_END or SEEK_SET', () => {
    const buf = new MockExporter({ size: 3 * PAGE_SIZE }).export();
    assert.equal(buf.llseek(0, SEEK_END), 3 * PAGE_SIZE);
    assert.equal(buf.llseek(0, SEEK_SET), 0);
    assert.equal(buf.llseek(0n, SEEK_END), 3 * PAGE_SIZE);
    throws(() => buf.llseek(0, SEEK_CUR), 'EINVAL');
    throws(() => buf.llseek(1, SEEK_SET), 'EINVAL');
    throws(() => buf.llseek(-1, SEEK_END), 'EINVAL');
    throws(() => buf.llseek(0, 9), 'EINVAL');
    buf.put();
  });
});

describe('ioctl', () => {
  it('is ENOTTY for unknown numbers and EFAULT without an argument struct', async () => {
    const buf = new MockExporter().export();
    await rejects(() => buf.ioctl(0x1234), 'ENOTTY');
    await rejects(() => buf.ioctl(DMA_BUF_IOCTL_SYNC), 'EFAULT');
    await rejects(() => buf.ioctl(DMA_BUF_IOCTL_EXPORT_SYNC_FILE, null), 'EFAULT');
    await rejects(
      () => buf.ioctl(DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags: 1, fd: 12345 }),
      'EINVAL',
    );
    buf.put();
  });
});

describe('fdinfo and bufinfo', () => {
  it('fdinfo shows size, count, exp_name and the name when set', () => {
    const buf = new MockExporter({ size: 2 * PAGE_SIZE, expName: 'fdi' }).export();
    const fd = buf.fd(O_CLOEXEC);
    let info = DmaBuf.fdinfo(fd);
    assert.match(info, /^pos:\t0\nflags:\t02000002\n/);
    assert.match(info, new RegExp(`\nino:\t${buf.inode}\n`));
    assert.match(info, /\nsize:\t8192\ncount:\t2\nexp_name:\tfdi\n$/);
    buf.setName('frame');
    info = buf.fdinfo();
    assert.match(info, /\nname:\tframe\n$/);
    DmaBuf.close(fd);
    buf.put();
  });

  it('bufinfo follows the kernel layout, newest first, with fences and devices', async () => {
    const a = new MockExporter({ size: PAGE_SIZE, expName: 'older' }).export();
    const b = new MockExporter({ size: 2 * PAGE_SIZE, expName: 'newer', flags: O_RDONLY }).export();
    b.setName('named');
    const att = await a.attach({ name: 'display' });
    const tl = new Timeline();
    await addFence(a.resv, tl.fence(1), DmaResvUsage.WRITE);
    const text = await DmaBuf.bufinfo();
    const lines = text.split('\n');
    assert.equal(lines[0], '');
    assert.equal(lines[1], 'Dma-buf Objects:');
    assert.equal(lines[2], 'size    \tflags   \tmode    \tcount   \texp_name\tino     \tname');
    const bLine = `00008192\t00000000\t00000001\t00000001\tnewer\t${String(b.inode).padStart(8, '0')}\tnamed`;
    const aLine = `00004096\t00000002\t00000003\t00000001\tolder\t${String(a.inode).padStart(8, '0')}\t<none>`;
    assert.ok(text.indexOf(bLine) >= 0, text);
    assert.ok(text.indexOf(aLine) > text.indexOf(bLine), 'newest first');
    assert.match(
      text,
      /\twrite fence:\d+:1 tl test_timeline unsignalled\n\tAttached Devices:\n\tdisplay\nTotal 1 devices attached\n/,
    );
    assert.match(text, /\nTotal \d+ objects, \d+ bytes\n$/);
    assert.equal(a.refcount, 1, 'bufinfo dropped the references it took');
    tl.inc(1);
    await a.detach(att);
    a.put();
    b.put();
  });
});
