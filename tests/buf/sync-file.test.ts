/**
 * IGT's dmabuf_sync_file, restated: DMA_BUF_IOCTL_EXPORT_SYNC_FILE and IMPORT_SYNC_FILE against
 * poll. `vgemFenceAttach` stands for vgem's fence ioctl (a READ or WRITE fence on the buffer's
 * reservation object), a Timeline for sw_sync.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DmaFence } from '../../src/fence/fence.js';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_WRITE,
  type DmaBuf,
  EPOLLIN,
  EPOLLOUT,
} from '../../src/index.js';
import { SyncFile } from '../../src/sync-file.js';
import { MockExporter } from '../../src/testing/index.js';
import { addFence, DmaResvUsage, rejects, Timeline, throws } from './_support.js';

/** IGT's dmabuf_busy: a zero-timeout poll for POLLOUT (WRITE) or POLLIN (READ). */
function dmabufBusy(buf: DmaBuf, flags: number): boolean {
  const ev = (flags & DMA_BUF_SYNC_WRITE) !== 0 ? EPOLLOUT : EPOLLIN;
  return buf.poll(ev) === 0;
}

function syncFileBusy(sf: SyncFile): boolean {
  return !sf.fence.isSignaled();
}

function dmabufSyncFileBusy(buf: DmaBuf, flags: number): boolean {
  return syncFileBusy(buf.exportSyncFile(flags));
}

/** vgem_fence_attach: a new fence on the buffer, WRITE or READ usage; returns its signal. */
async function vgemFenceAttach(buf: DmaBuf, write: boolean): Promise<() => void> {
  const tl = new Timeline();
  await addFence(buf.resv, tl.fence(1), write ? DmaResvUsage.WRITE : DmaResvUsage.READ);
  return () => tl.inc(1);
}

async function importTimelineFence(
  buf: DmaBuf,
  flags: number,
  tl: Timeline,
  seqno: number,
): Promise<void> {
  await buf.importSyncFile(flags, SyncFile.create(tl.fence(seqno)));
}

function allIdle(buf: DmaBuf): void {
  for (const f of [DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW]) {
    assert.equal(dmabufBusy(buf, f), false);
    assert.equal(dmabufSyncFileBusy(buf, f), false);
  }
}

function allBusy(buf: DmaBuf): void {
  for (const f of [DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW]) {
    assert.equal(dmabufBusy(buf, f), true);
    assert.equal(dmabufSyncFileBusy(buf, f), true);
  }
}

/** Readers pending: reads are free, writes must wait. */
function readersBusy(buf: DmaBuf): void {
  assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_READ), false);
  assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_WRITE), true);
  assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_RW), true);
  assert.equal(dmabufSyncFileBusy(buf, DMA_BUF_SYNC_READ), false);
  assert.equal(dmabufSyncFileBusy(buf, DMA_BUF_SYNC_WRITE), true);
  assert.equal(dmabufSyncFileBusy(buf, DMA_BUF_SYNC_RW), true);
}

describe('dmabuf_sync_file (IGT)', () => {
  it('export-basic', async () => {
    const buf = new MockExporter().export();
    allIdle(buf);
    let signal = await vgemFenceAttach(buf, false);
    readersBusy(buf);
    signal();
    allIdle(buf);
    signal = await vgemFenceAttach(buf, true);
    allBusy(buf);
    signal();
    allIdle(buf);
    buf.put();
  });

  it('export-before-signal', async () => {
    const buf = new MockExporter().export();
    let signal = await vgemFenceAttach(buf, false);
    let readFile = buf.exportSyncFile(DMA_BUF_SYNC_READ);
    let writeFile = buf.exportSyncFile(DMA_BUF_SYNC_WRITE);
    assert.equal(syncFileBusy(readFile), false);
    assert.equal(syncFileBusy(writeFile), true);
    signal();
    assert.equal(syncFileBusy(readFile), false);
    assert.equal(syncFileBusy(writeFile), false);
    signal = await vgemFenceAttach(buf, true);
    readFile = buf.exportSyncFile(DMA_BUF_SYNC_READ);
    writeFile = buf.exportSyncFile(DMA_BUF_SYNC_WRITE);
    assert.equal(syncFileBusy(readFile), true);
    assert.equal(syncFileBusy(writeFile), true);
    signal();
    assert.equal(syncFileBusy(readFile), false);
    assert.equal(syncFileBusy(writeFile), false);
    buf.put();
  });

  it('export-multiwait', async () => {
    const buf = new MockExporter().export();
    const s1 = await vgemFenceAttach(buf, false);
    const s2 = await vgemFenceAttach(buf, false);
    const file = buf.exportSyncFile(DMA_BUF_SYNC_WRITE);
    const s3 = await vgemFenceAttach(buf, false);
    assert.equal(syncFileBusy(file), true);
    s1();
    assert.equal(syncFileBusy(file), true);
    s2();
    assert.equal(syncFileBusy(file), false, 'fence 3 came after the snapshot');
    s3();
    buf.put();
  });

  it('export-wait-after-attach', async () => {
    const buf = new MockExporter().export();
    let readFile = buf.exportSyncFile(DMA_BUF_SYNC_READ);
    let writeFile = buf.exportSyncFile(DMA_BUF_SYNC_WRITE);
    const s1 = await vgemFenceAttach(buf, true);
    assert.equal(syncFileBusy(readFile), false);
    assert.equal(syncFileBusy(writeFile), false);
    readFile = buf.exportSyncFile(DMA_BUF_SYNC_READ);
    writeFile = buf.exportSyncFile(DMA_BUF_SYNC_WRITE);
    assert.equal(syncFileBusy(readFile), true);
    assert.equal(syncFileBusy(writeFile), true);
    s1();
    const s2 = await vgemFenceAttach(buf, true);
    assert.equal(syncFileBusy(readFile), false);
    assert.equal(syncFileBusy(writeFile), false);
    assert.equal(dmabufSyncFileBusy(buf, DMA_BUF_SYNC_READ), true);
    assert.equal(dmabufSyncFileBusy(buf, DMA_BUF_SYNC_WRITE), true);
    s2();
    buf.put();
  });

  it('import-basic', async () => {
    const buf = new MockExporter().export();
    allIdle(buf);
    const tl = new Timeline();
    await importTimelineFence(buf, DMA_BUF_SYNC_READ, tl, 1);
    readersBusy(buf);
    tl.inc(1);
    allIdle(buf);
    await importTimelineFence(buf, DMA_BUF_SYNC_WRITE, tl, 2);
    allBusy(buf);
    tl.inc(1);
    allIdle(buf);
    await importTimelineFence(buf, DMA_BUF_SYNC_RW, tl, 3);
    allBusy(buf);
    tl.inc(1);
    allIdle(buf);
    buf.put();
  });

  for (const write of [false, true]) {
    it(`import-multiple-read-${write ? 'write' : 'only'}`, async () => {
      const buf = new MockExporter().export();
      assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_READ), false);
      assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_WRITE), false);
      const readers: Timeline[] = [];
      for (let i = 0; i < 32; i++) {
        const tl = new Timeline();
        readers.push(tl);
        await importTimelineFence(buf, DMA_BUF_SYNC_READ, tl, 1);
      }
      const writer = new Timeline();
      if (write) await importTimelineFence(buf, DMA_BUF_SYNC_WRITE, writer, 1);
      const readFile = buf.exportSyncFile(DMA_BUF_SYNC_READ);
      const writeFile = buf.exportSyncFile(DMA_BUF_SYNC_WRITE);
      for (let i = readers.length - 1; i >= 0; i--) {
        assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_READ), write);
        assert.equal(syncFileBusy(readFile), write);
        assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_WRITE), true);
        assert.equal(syncFileBusy(writeFile), true);
        readers[i]!.inc(1);
      }
      assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_READ), write);
      assert.equal(syncFileBusy(readFile), write);
      assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_WRITE), write);
      assert.equal(syncFileBusy(writeFile), write);
      if (write) writer.inc(1);
      assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_READ), false);
      assert.equal(syncFileBusy(readFile), false);
      assert.equal(dmabufBusy(buf, DMA_BUF_SYNC_WRITE), false);
      assert.equal(syncFileBusy(writeFile), false);
      buf.put();
    });
  }
});

describe('export and import validation', () => {
  it('export of an idle buffer is the signaled stub', () => {
    const buf = new MockExporter().export();
    assert.equal(buf.exportSyncFile(DMA_BUF_SYNC_RW).fence, DmaFence.getStub());
    buf.put();
  });

  it('one pending fence is exported itself; several become one container', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    const f1 = tl.fence(1);
    await addFence(buf.resv, f1, DmaResvUsage.WRITE);
    assert.equal(buf.exportSyncFile(DMA_BUF_SYNC_READ).fence, f1);
    const other = new Timeline();
    await addFence(buf.resv, other.fence(1), DmaResvUsage.READ);
    const both = buf.exportSyncFile(DMA_BUF_SYNC_WRITE).fence;
    assert.equal(both.isContainer, true);
    tl.inc(1);
    other.inc(1);
    assert.equal(both.isSignaled(), true);
    buf.put();
  });

  it('flags outside READ|WRITE, or neither, are EINVAL for both directions', async () => {
    const buf = new MockExporter().export();
    const sf = SyncFile.create(DmaFence.getStub());
    for (const f of [0, 4, 8, 0x10 | 1, -1, 'x']) {
      throws(() => buf.exportSyncFile(f as any), 'EINVAL');
      await rejects(() => buf.importSyncFile(f as any, sf), 'EINVAL');
    }
    await rejects(() => buf.importSyncFile(DMA_BUF_SYNC_READ, 'nope' as any), 'EINVAL');
    await rejects(() => buf.importSyncFile(DMA_BUF_SYNC_READ, 9999), 'EINVAL');
    assert.equal(
      await buf.importSyncFile(DMA_BUF_SYNC_WRITE, sf),
      0,
      'a signaled fence imports fine',
    );
    buf.put();
  });

  it('the ioctl path passes sync files as fds', async () => {
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await importTimelineFence(buf, DMA_BUF_SYNC_WRITE, tl, 1);
    const arg: { flags: number; fd?: number } = { flags: DMA_BUF_SYNC_READ };
    assert.equal(await buf.ioctl(DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg), 0);
    const other = new MockExporter().export();
    assert.equal(
      await other.ioctl(DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags: DMA_BUF_SYNC_WRITE, fd: arg.fd }),
      0,
    );
    assert.equal(
      dmabufBusy(other, DMA_BUF_SYNC_READ),
      true,
      'the writer moved along with the file',
    );
    tl.inc(1);
    assert.equal(dmabufBusy(other, DMA_BUF_SYNC_READ), false);
    buf.put();
    other.put();
  });
});
