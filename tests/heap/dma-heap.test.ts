/**
 * dma-heap: the registry, the allocation uAPI (the kernel selftest dmabuf-heap.c, restated:
 * allocate and import, compat struct sizes, expected errors, zeroed memory) and the system heap.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  configureSystemHeap,
  DMA_BIDIRECTIONAL,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_HEAP_IOCTL_ALLOC,
  DmaBuf,
  DmaHeap,
  IOC,
  NUM_HEAP_MINORS,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  SEEK_END,
  systemHeap,
} from '../../src/index.js';
import { rejects, throws } from '../buf/_support.js';

const ONE_MEG = 1024 * 1024;

function heap(): DmaHeap {
  const h = DmaHeap.find('system');
  assert.ok(h !== null);
  return h;
}

/** `struct dma_heap_allocation_data` (or a compat variant) in little-endian bytes. */
function allocData(
  size: number,
  fields: { len: number; fd?: number; fdFlags?: number; heapFlags?: bigint; garbage?: boolean },
): DataView {
  const v = new DataView(new ArrayBuffer(size));
  v.setBigUint64(0, BigInt(fields.len), true);
  v.setUint32(8, fields.fd ?? 0, true);
  v.setUint32(12, fields.fdFlags ?? O_RDWR | O_CLOEXEC, true);
  if (size >= 24) v.setBigUint64(16, fields.heapFlags ?? 0n, true);
  if (fields.garbage && size >= 48) {
    v.setBigUint64(24, 0xffffffffn, true);
    v.setBigUint64(32, 0x88888888n, true);
    v.setBigUint64(40, 0x11111111n, true);
  }
  return v;
}

describe('the heap registry', () => {
  it('has the system heap, found by name', () => {
    assert.ok(DmaHeap.list().includes('system'));
    assert.equal(heap(), systemHeap);
    assert.equal(heap().name, 'system');
    assert.equal(DmaHeap.find('no-such-heap'), null);
  });

  it('requires a unique non-empty name and an allocate op (EINVAL)', () => {
    const ops = { allocate: () => systemHeap.allocateBuffer(PAGE_SIZE) };
    throws(() => DmaHeap.add({ name: '', ops }), 'EINVAL');
    throws(() => DmaHeap.add({ name: 5 as any, ops }), 'EINVAL');
    throws(() => DmaHeap.add({ name: 'noops' } as any), 'EINVAL');
    throws(() => DmaHeap.add({ name: 'noalloc', ops: {} as any }), 'EINVAL');
    throws(() => DmaHeap.add({ name: 'system', ops }), 'EINVAL');
    const h = DmaHeap.add({ name: 'wrapper', ops, priv: { tag: 1 } });
    assert.deepEqual(h.priv, { tag: 1 });
    const fd = h.allocate(1);
    DmaBuf.close(fd);
  });

  it('holds at most 128 heaps (EBUSY beyond)', () => {
    const ops = { allocate: () => systemHeap.allocateBuffer(PAGE_SIZE) };
    let i = 0;
    while (DmaHeap.list().length < NUM_HEAP_MINORS) DmaHeap.add({ name: `filler-${i++}`, ops });
    throws(() => DmaHeap.add({ name: 'one-too-many', ops }), 'EBUSY');
  });
});

describe('dmabuf-heap selftest', () => {
  it('allocation and importing', async () => {
    const fd = heap().allocate(ONE_MEG, O_RDWR | O_CLOEXEC, 0);
    const buf = DmaBuf.get(fd);
    const p = await buf.mmap(0, ONE_MEG, { write: true });
    await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW);
    p.fill(1, 0, ONE_MEG / 2);
    p.fill(0, ONE_MEG / 2);
    await buf.sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW);
    // The importer ("vgem"): attach and map; it sees the same memory.
    const att = await buf.attach({ name: 'vgem' });
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(m.views()[0]![0], 1);
    assert.equal(m.views()[0]![ONE_MEG / 2], 0);
    assert.equal(await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), 0);
    p.fill(0xff);
    assert.equal(await buf.sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW), 0);
    assert.equal(m.views()[0]![ONE_MEG - 1], 0xff);
    await att.unmapAttachmentUnlocked(m);
    await buf.detach(att);
    buf.put();
    DmaBuf.close(fd);
  });

  it('memory is zeroed, also when reused after a free', async () => {
    for (let round = 0; round < 3; round++) {
      const fd = heap().allocate(ONE_MEG);
      const buf = DmaBuf.get(fd);
      const p = await buf.mmap(0, ONE_MEG, { write: true });
      assert.equal(
        p.every((b) => b === 0),
        true,
        `round ${round}: zeroed`,
      );
      p.fill(0xa5);
      buf.put();
      DmaBuf.close(fd);
    }
  });

  it('(theoretical) older and newer alloc compat: 16- and 48-byte structs', () => {
    const older = IOC(3, 0x48, 0, 16);
    const newer = IOC(3, 0x48, 0, 48);
    assert.equal(DMA_HEAP_IOCTL_ALLOC, IOC(3, 0x48, 0, 24));
    const small = allocData(16, { len: ONE_MEG });
    assert.equal(heap().ioctl(older, small), 0);
    const fd1 = small.getUint32(8, true);
    const b1 = DmaBuf.get(fd1);
    assert.equal(b1.size, ONE_MEG);
    b1.put();
    const big = allocData(48, { len: ONE_MEG, garbage: true });
    assert.equal(heap().ioctl(newer, big), 0, 'garbage beyond the known struct is ignored');
    const fd2 = big.getUint32(8, true);
    assert.notEqual(fd2, 0);
    const normal = allocData(24, { len: 100 });
    assert.equal(heap().ioctl(DMA_HEAP_IOCTL_ALLOC, normal), 0);
    const b3 = DmaBuf.get(normal.getUint32(8, true));
    assert.equal(b3.size, PAGE_SIZE);
    b3.put();
    for (const fd of [fd1, fd2, normal.getUint32(8, true)]) DmaBuf.close(fd);
  });

  it('expected error cases', () => {
    const h = heap();
    // invalid heap flags
    throws(() => h.allocate(ONE_MEG, O_RDWR | O_CLOEXEC, 0x111111), 'EINVAL');
    throws(() => h.allocate(ONE_MEG, O_RDWR | O_CLOEXEC, 1n), 'EINVAL');
    // invalid fd flags
    throws(() => h.allocate(ONE_MEG, ~(O_RDWR | O_CLOEXEC) >>> 0, 0), 'EINVAL');
    throws(() => h.allocate(ONE_MEG, 0x40, 0), 'EINVAL');
    // zero, negative, NaN, fractional, huge and mistyped lengths
    for (const len of [
      0,
      -1,
      -4096,
      Number.NaN,
      1.5,
      Number.POSITIVE_INFINITY,
      2 ** 60,
      '4096',
      null,
      -1n,
      2n ** 64n,
    ]) {
      throws(() => h.allocate(len as any), 'EINVAL');
    }
    // through the ioctl: fd must be 0, nr must be 0, the struct must be as big as claimed
    throws(() => h.ioctl(DMA_HEAP_IOCTL_ALLOC, allocData(24, { len: ONE_MEG, fd: 3 })), 'EINVAL');
    throws(() => h.ioctl(DMA_HEAP_IOCTL_ALLOC, allocData(24, { len: 0 })), 'EINVAL');
    throws(
      () => h.ioctl(DMA_HEAP_IOCTL_ALLOC, allocData(24, { len: 4096, heapFlags: 0x111111n })),
      'EINVAL',
    );
    throws(() => h.ioctl(IOC(3, 0x48, 1, 24), allocData(24, { len: 4096 })), 'EINVAL');
    throws(() => h.ioctl(DMA_HEAP_IOCTL_ALLOC, allocData(16, { len: 4096 })), 'EFAULT');
    throws(() => h.ioctl(DMA_HEAP_IOCTL_ALLOC, 'x' as any), 'EFAULT');
  });

  it('rounds lengths up to a page', () => {
    for (const [len, want] of [
      [1, PAGE_SIZE],
      [PAGE_SIZE, PAGE_SIZE],
      [PAGE_SIZE + 1, 2 * PAGE_SIZE],
      [3n * 4096n, 3 * PAGE_SIZE],
    ] as const) {
      const fd = heap().allocate(len);
      const buf = DmaBuf.get(fd);
      assert.equal(buf.size, want);
      assert.equal(buf.llseek(0, SEEK_END), want);
      buf.put();
      DmaBuf.close(fd);
    }
  });
});

describe('the system heap', () => {
  it('exports as "system" with the fd flags as file flags', async () => {
    const buf = heap().allocateBuffer(PAGE_SIZE, O_RDONLY | O_CLOEXEC);
    assert.equal(buf.expName, 'system');
    assert.equal(buf.flags, O_RDONLY);
    await rejects(() => buf.mmap(0, PAGE_SIZE, { write: true }), 'EACCES');
    const fd = heap().allocate(PAGE_SIZE, O_RDONLY | O_CLOEXEC);
    const viaFd = DmaBuf.get(fd);
    await rejects(() => viaFd.mmap(0, PAGE_SIZE, { write: true }), 'EACCES');
    viaFd.put();
    DmaBuf.close(fd);
    buf.put();
  });

  it('builds buffers larger than one chunk from several SharedArrayBuffers', async () => {
    const old = configureSystemHeap({ chunkSize: 16 * PAGE_SIZE });
    try {
      const buf = heap().allocateBuffer(40 * PAGE_SIZE);
      assert.equal(buf.size, 40 * PAGE_SIZE);
      const att = await buf.attach({ name: 'dev' });
      const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
      assert.deepEqual(
        m.segments.map((s) => s.length),
        [16 * PAGE_SIZE, 16 * PAGE_SIZE, 8 * PAGE_SIZE],
      );
      assert.equal(new Set(m.segments.map((s) => s.memory)).size, 3);
      const views = await buf.mmapSegments(15 * PAGE_SIZE, 2 * PAGE_SIZE, { write: true });
      assert.equal(views.length, 2);
      views[1]![0] = 77;
      assert.equal(m.views()[1]![0], 77, 'the second chunk, zero-copy');
      await rejects(() => buf.mmap(15 * PAGE_SIZE, 2 * PAGE_SIZE), 'EINVAL');
      assert.equal((await buf.mmap(16 * PAGE_SIZE, 16 * PAGE_SIZE))[0], 77);
      await buf.resv.lock(null);
      const vm = await buf.vmap();
      assert.equal(vm.view, null, 'several segments: no single view');
      assert.equal(vm.segments.length, 3);
      await buf.vunmap(vm);
      buf.resv.unlock();
      await att.unmapAttachmentUnlocked(m);
      await buf.detach(att);
      buf.put();
    } finally {
      configureSystemHeap(old);
    }
    throws(() => configureSystemHeap({ chunkSize: 1000 }), 'EINVAL');
  });

  it('fails with ENOMEM above its limit', () => {
    const old = configureSystemHeap({ maxBytes: 64 * PAGE_SIZE });
    try {
      throws(() => heap().allocate(65 * PAGE_SIZE), 'ENOMEM');
    } finally {
      configureSystemHeap(old);
    }
  });
});
