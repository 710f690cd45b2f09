/**
 * Importers: dma_buf_attach / dma_buf_dynamic_attach / dma_buf_detach, pin and unpin, map and
 * unmap (and their unlocked variants), invalidation and revocation, the locking convention.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  DmaBuf,
  type DmaBufOps,
  PAGE_SIZE,
  setDmaBufDebug,
} from '../../src/index.js';
import { MockExporter, MovableExporter } from '../../src/testing/index.js';
import { addFence, DmaResvUsage, rejects, Timeline, throws, tick } from './_support.js';

describe('dma_buf_attach / dma_buf_detach', () => {
  it('calls the exporter attach unlocked, then lists the attachment under the lock', async () => {
    let lockedInAttach: boolean | undefined;
    let countInDetach = -1;
    const m = new MockExporter();
    const ops = m.ops;
    const innerAttach = ops.attach!;
    ops.attach = (b, a) => {
      lockedInAttach = b.resv.isLocked();
      return innerAttach(b, a);
    };
    const innerDetach = ops.detach!;
    ops.detach = (b, a) => {
      countInDetach = b.attachmentCount;
      return innerDetach(b, a);
    };
    const buf = m.export();
    const att = await buf.attach({ name: 'gpu0' });
    assert.equal(lockedInAttach, false);
    assert.equal(buf.attachmentCount, 1);
    assert.equal(att.isDynamic, false);
    assert.equal(att.revocable, false);
    assert.equal(att.dev.name, 'gpu0');
    assert.deepEqual(att.priv, { dev: 'gpu0' }, 'the exporter keeps its data in attach.priv');
    const info = await DmaBuf.bufinfo();
    assert.match(info, /\tAttached Devices:\n\tgpu0\nTotal 1 devices attached/);
    await buf.detach(att);
    assert.equal(countInDetach, 0, 'detach runs after the attachment left the list');
    assert.deepEqual(m.calls, ['attach:gpu0', 'detach:gpu0']);
    buf.put();
  });

  it('rejects bad devices and importer ops with EINVAL', async () => {
    const buf = new MockExporter().export();
    for (const dev of [null, undefined, 3, {}, { name: 4 }]) {
      await rejects(() => buf.attach(dev as any), 'EINVAL');
    }
    await rejects(() => buf.dynamicAttach({ name: 'd' }, null as any), 'EINVAL');
    await rejects(
      () => buf.dynamicAttach({ name: 'd' }, { invalidateMappings: 3 } as any),
      'EINVAL',
    );
    await rejects(
      () => buf.dynamicAttach({ name: 'd' }, { allowPeer2peer: 'yes' } as any),
      'EINVAL',
    );
    assert.equal(buf.attachmentCount, 0);
    buf.put();
  });

  it('propagates EBUSY from an exporter that cannot reach the device, leaving nothing attached', async () => {
    const m = new MockExporter({ unreachable: ['far'] });
    const buf = m.export();
    await rejects(() => buf.attach({ name: 'far' }), 'EBUSY');
    assert.equal(buf.attachmentCount, 0);
    const near = await buf.attach({ name: 'near' });
    await buf.detach(near);
    buf.put();
    assert.equal(m.releases, 1);
  });

  it("detach of another buffer's attachment, or twice, is EINVAL", async () => {
    const a = new MockExporter().export();
    const b = new MockExporter().export();
    const att = await a.attach({ name: 'x' });
    await rejects(() => b.detach(att), 'EINVAL');
    await rejects(() => b.detach({} as any), 'EINVAL');
    await a.detach(att);
    await rejects(() => a.detach(att), 'EINVAL');
    a.put();
    b.put();
  });

  it('dynamic attachments carry peer2peer and revocability', async () => {
    const buf = new MockExporter().export();
    const att = await buf.dynamicAttach(
      { name: 'nic' },
      { allowPeer2peer: true, invalidateMappings: () => {} },
      'mine',
    );
    assert.equal(att.isDynamic, true);
    assert.equal(att.peer2peer, true);
    assert.equal(att.revocable, true);
    assert.equal(att.importerPriv, 'mine');
    const plain = await buf.dynamicAttach({ name: 'other' }, {});
    assert.equal(plain.revocable, false, 'invalidateMappings is optional, and then not revocable');
    await buf.detach(att);
    await buf.detach(plain);
    buf.put();
  });

  it('an exporter requiring revocable importers rejects static ones (EBUSY)', async () => {
    const buf = new MockExporter({ requireRevocable: true }).export();
    await rejects(() => buf.attach({ name: 'static' }), 'EBUSY');
    const ok = await buf.dynamicAttach({ name: 'dyn' }, { invalidateMappings: () => {} });
    await buf.detach(ok);
    buf.put();
  });
});

describe('dma_buf_map_attachment / dma_buf_unmap_attachment', () => {
  it('requires the reservation lock (EPERM), the unlocked variants take it', async () => {
    const buf = new MockExporter().export();
    const att = await buf.attach({ name: 'd' });
    await rejects(() => att.mapAttachment(DMA_BIDIRECTIONAL), 'EPERM');
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    await rejects(() => att.unmapAttachment(m), 'EPERM');
    await att.unmapAttachmentUnlocked(m);
    await buf.detach(att);
    buf.put();
  });

  it('gives fresh, frozen, page-granular segments on every map', async () => {
    const mock = new MockExporter({ size: 8 * PAGE_SIZE, segmentSize: 2 * PAGE_SIZE });
    const buf = mock.export();
    const att = await buf.attach({ name: 'd' });
    await buf.resv.lock(null);
    const m1 = await att.mapAttachment(DMA_TO_DEVICE);
    const m2 = await att.mapAttachment(DMA_FROM_DEVICE);
    buf.resv.unlock();
    assert.equal(m1.segments.length, 4);
    assert.notEqual(m1.segments, m2.segments);
    assert.notEqual(m1.segments[0], m2.segments[0]);
    assert.ok(Object.isFrozen(m1.segments) && Object.isFrozen(m1.segments[0]));
    for (const s of m1.segments) {
      assert.equal(s.offset % PAGE_SIZE, 0);
      assert.equal(s.length % PAGE_SIZE, 0);
      assert.equal(s.memory, mock.memory, 'zero-copy: the memory itself');
    }
    assert.equal(m1.byteLength, 8 * PAGE_SIZE);
    m1.views()[1]![0] = 42;
    assert.equal(new Uint8Array(mock.memory)[2 * PAGE_SIZE], 42);
    assert.equal(att.mapCount, 2);
    await att.unmapAttachmentUnlocked(m1);
    await att.unmapAttachmentUnlocked(m2);
    await rejects(() => att.unmapAttachmentUnlocked(m2), 'EINVAL');
    assert.equal(mock.maps, 0);
    await buf.detach(att);
    buf.put();
  });

  it('rejects bad directions and foreign mappings with EINVAL', async () => {
    const buf = new MockExporter().export();
    const a1 = await buf.attach({ name: 'a' });
    const a2 = await buf.attach({ name: 'b' });
    for (const dir of [DMA_NONE, -1, 7, 'x', undefined]) {
      await rejects(() => a1.mapAttachmentUnlocked(dir as any), 'EINVAL');
    }
    const m = await a1.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    await rejects(() => a2.unmapAttachmentUnlocked(m), 'EINVAL');
    await a1.unmapAttachmentUnlocked(m);
    await buf.detach(a1);
    await buf.detach(a2);
    buf.put();
  });

  it('pins on map for static importers of a dynamic exporter, and unpins on unmap', async () => {
    const mock = new MockExporter({ dynamic: true });
    const buf = mock.export();
    const att = await buf.attach({ name: 's' });
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(mock.pins, 1);
    await att.unmapAttachmentUnlocked(m);
    assert.equal(mock.pins, 0);
    assert.deepEqual(mock.calls, ['attach:s', 'pin', 'map:0', 'unmap:0', 'unpin']);
    // Dynamic importers are not pinned by their mappings.
    const dyn = await buf.dynamicAttach({ name: 'd' }, { invalidateMappings: () => {} });
    const dm = await dyn.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(mock.pins, 0);
    await dyn.unmapAttachmentUnlocked(dm);
    await buf.detach(att);
    await buf.detach(dyn);
    buf.put();
  });

  it('static importers wait for KERNEL fences after mapping; dynamic importers do not', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.KERNEL);
    await addFence(buf.resv, tl.fence(2), DmaResvUsage.WRITE);
    const st = await buf.attach({ name: 'static' });
    const dyn = await buf.dynamicAttach({ name: 'dyn' }, { invalidateMappings: () => {} });
    const dm = await dyn.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    let mapped = false;
    const p = st.mapAttachmentUnlocked(DMA_BIDIRECTIONAL).then((m) => {
      mapped = true;
      return m;
    });
    await tick(5);
    assert.equal(mapped, false, 'waiting for the KERNEL fence');
    assert.equal(mock.maps, 2, 'the exporter already mapped');
    tl.inc(1);
    const sm = await p;
    assert.equal(mapped, true, 'the WRITE fence is not waited for');
    await st.unmapAttachmentUnlocked(sm);
    await dyn.unmapAttachmentUnlocked(dm);
    tl.inc(1);
    await buf.detach(st);
    await buf.detach(dyn);
    buf.put();
  });

  it('unwinds every error path: map failure unpins, interrupted wait unmaps and unpins, null is ENOMEM', async () => {
    const mock = new MockExporter({ dynamic: true });
    const buf = mock.export();
    const att = await buf.attach({ name: 's' });
    mock.fail.mapDmaBuf = 'EIO';
    await rejects(() => att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL), 'EIO');
    assert.equal(mock.pins, 0);
    mock.fail.pin = 'ENOMEM';
    await rejects(() => att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL), 'ENOMEM');
    assert.equal(mock.maps, 0);
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.KERNEL);
    const ac = new AbortController();
    const p = att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL, { signal: ac.signal });
    await tick(2);
    ac.abort();
    await rejects(() => p, 'ERESTARTSYS');
    assert.equal(mock.maps, 0);
    assert.equal(mock.pins, 0);
    assert.equal(att.mapCount, 0);
    tl.inc(1);
    const ops = mock.ops as DmaBufOps;
    const real = ops.mapDmaBuf;
    ops.mapDmaBuf = () => null;
    await rejects(() => att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL), 'ENOMEM');
    ops.mapDmaBuf = real;
    assert.equal(mock.pins, 0);
    await buf.detach(att);
    buf.put();
  });

  it('pin and unpin: dynamic importers only, with the lock held', async () => {
    const mock = new MockExporter({ dynamic: true });
    const buf = mock.export();
    const st = await buf.attach({ name: 's' });
    const dyn = await buf.dynamicAttach({ name: 'd' }, {});
    await buf.resv.lock(null);
    await rejects(() => st.pin(), 'EINVAL');
    await dyn.pin();
    assert.equal(mock.pins, 1);
    await dyn.unpin();
    await rejects(() => dyn.unpin(), 'EINVAL');
    buf.resv.unlock();
    await rejects(() => dyn.pin(), 'EPERM');
    assert.equal(mock.pins, 0);
    await buf.detach(st);
    await buf.detach(dyn);
    buf.put();
  });
});

describe('invalidation and revocation', () => {
  it('invalidateMappings needs the lock, stales every mapping and tells dynamic importers at once', async () => {
    const buf = new MockExporter().export();
    let told = 0;
    const dyn = await buf.dynamicAttach({ name: 'd' }, { invalidateMappings: () => void told++ });
    const st = await buf.attach({ name: 's' });
    const dm = await dyn.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    const sm = await st.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.ok(dm.valid && sm.valid);
    throws(() => buf.invalidateMappings(), 'EPERM');
    await buf.resv.lock(null);
    buf.invalidateMappings();
    buf.resv.unlock();
    assert.equal(told, 1);
    assert.equal(dm.valid, false);
    assert.equal(sm.valid, false);
    const again = await dyn.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(again.valid, true, 'new mappings after the call are valid');
    for (const m of [dm, again]) await dyn.unmapAttachmentUnlocked(m);
    await st.unmapAttachmentUnlocked(sm);
    await buf.detach(dyn);
    await buf.detach(st);
    buf.put();
  });

  it('revoke waits for every fence (BOOKKEEP), then for importers to unmap; then attach, map and mmap are ENODEV', async () => {
    const mock = new MockExporter();
    const buf = mock.export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.BOOKKEEP);
    let dynMap: Awaited<ReturnType<typeof dyn.mapAttachmentUnlocked>> | null = null;
    const dyn = await buf.dynamicAttach(
      { name: 'vfio-importer' },
      {
        invalidateMappings: (a) => {
          // Bounded time: once its own work is done (the fences), the importer unmaps.
          void a.dmabuf.resv.waitTimeout(DmaResvUsage.BOOKKEEP, Infinity).then(() =>
            setTimeout(() => {
              if (dynMap !== null)
                void a.unmapAttachmentUnlocked(dynMap).then(() => (dynMap = null));
            }, 1),
          );
        },
      },
    );
    dynMap = await dyn.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    let done = false;
    const p = buf.revoke().then(() => (done = true));
    await tick(10);
    assert.equal(done, false, 'stage 1: waiting for the BOOKKEEP fence');
    tl.inc(1);
    await p;
    assert.equal(dynMap, null, 'stage 2: the importer unmapped');
    assert.equal(buf.revoked, true);
    await rejects(() => buf.attach({ name: 'late' }), 'ENODEV');
    await rejects(() => dyn.mapAttachmentUnlocked(DMA_BIDIRECTIONAL), 'ENODEV');
    await rejects(() => buf.mmap(0, PAGE_SIZE), 'ENODEV');
    await buf.detach(dyn);
    buf.put();
    assert.equal(mock.releases, 1);
  });
});

describe('a movable (dynamic) exporter', () => {
  it('moves with a KERNEL fence; static importers wait for it and see the copied data', async () => {
    const mv = new MovableExporter({ initial: 'vram', copyDelayMs: 5 });
    new Uint8Array(mv.memory.vram)[0] = 9;
    const fence = await mv.move('system');
    assert.equal(mv.placement, 'system');
    assert.equal(fence.isSignaled(), false);
    const att = await mv.buf.attach({ name: 'scanout' });
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(fence.isSignaled(), true, 'the static map waited for the move');
    assert.equal(m.views()[0]![0], 9, 'and sees the copied data');
    assert.equal(mv.pinCount, 1);
    await rejects(() => mv.move('vram'), 'EBUSY');
    await att.unmapAttachmentUnlocked(m);
    assert.equal(mv.pinCount, 0);
    await mv.buf.detach(att);
    mv.buf.put();
    assert.equal(mv.releases, 1);
  });

  it('dynamic importers are told to re-map, and re-map to the new placement', async () => {
    const mv = new MovableExporter({ initial: 'vram', copyDelayMs: 1 });
    const events: string[] = [];
    const att = await mv.buf.dynamicAttach(
      { name: 'gpu' },
      { invalidateMappings: () => void events.push('invalidate') },
    );
    const m1 = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(m1.segments[0]!.memory, mv.memory.vram);
    const fence = await mv.move('system');
    assert.deepEqual(events, ['invalidate']);
    assert.equal(m1.valid, false);
    await mv.buf.resv.waitTimeout(DmaResvUsage.KERNEL, Infinity);
    assert.equal(fence.isSignaled(), true);
    const m2 = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(m2.segments[0]!.memory, mv.memory.system);
    await att.unmapAttachmentUnlocked(m1);
    await att.unmapAttachmentUnlocked(m2);
    // A dynamic importer's explicit pin stops moves.
    await mv.buf.resv.lock(null);
    await att.pin();
    mv.buf.resv.unlock();
    await rejects(() => mv.move('vram'), 'EBUSY');
    await mv.buf.resv.lock(null);
    await att.unpin();
    mv.buf.resv.unlock();
    await mv.move('vram');
    await mv.buf.detach(att);
    mv.buf.put();
  });

  it('refuses devices that can reach neither placement with EBUSY', async () => {
    const mv = new MovableExporter();
    await rejects(() => mv.buf.attach({ name: 'blind', placements: [] } as any), 'EBUSY');
    mv.buf.put();
  });
});

describe('the locking convention in debug mode', () => {
  it('flags attach, detach, mmap, CPU access and unlocked variants called with the lock held (EDEADLK)', async () => {
    const buf = new MockExporter().export();
    const att = await buf.attach({ name: 'd' });
    const old = setDmaBufDebug(true);
    await buf.resv.lock(null);
    try {
      await rejects(() => buf.attach({ name: 'x' }), 'EDEADLK');
      await rejects(() => buf.detach(att), 'EDEADLK');
      await rejects(() => buf.mmap(0, PAGE_SIZE), 'EDEADLK');
      await rejects(() => buf.beginCpuAccess(DMA_BIDIRECTIONAL), 'EDEADLK');
      throws(() => buf.beginCpuAccessSync(DMA_BIDIRECTIONAL), 'EDEADLK');
      throws(() => buf.endCpuAccessSync(DMA_BIDIRECTIONAL), 'EDEADLK');
      await rejects(() => att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL), 'EDEADLK');
      await rejects(() => buf.vmapUnlocked(), 'EDEADLK');
      throws(() => buf.fd(), 'EDEADLK');
      // What needs the lock works.
      const m = await att.mapAttachment(DMA_BIDIRECTIONAL);
      await att.unmapAttachment(m);
    } finally {
      buf.resv.unlock();
      setDmaBufDebug(old);
    }
    await buf.detach(att);
    buf.put();
  });

  it('checks that exporters return page-granular mappings', async () => {
    const mock = new MockExporter({ size: 4 * PAGE_SIZE, segmentSize: 100 });
    const buf = mock.export();
    const att = await buf.attach({ name: 'd' });
    const old = setDmaBufDebug(true);
    try {
      await rejects(() => att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL), 'EINVAL');
      assert.equal(mock.maps, 0, 'the failed map was unmapped');
    } finally {
      setDmaBufDebug(false);
    }
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    setDmaBufDebug(old);
    await att.unmapAttachmentUnlocked(m);
    await buf.detach(att);
    buf.put();
  });
});
