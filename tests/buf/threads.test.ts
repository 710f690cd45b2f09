/**
 * Buffers across real worker threads: handles passed between threads, one refcount for all of
 * them, the release exactly once in the exporter's home thread, exporters reached by message,
 * zero-copy visibility, thread-exit cleanup, and descriptors that must not install.
 */

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  DMA_BIDIRECTIONAL,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_START,
  DMA_FROM_DEVICE,
  DmaBuf,
  Domain,
  EPOLLIN,
  EPOLLOUT,
  O_RDONLY,
  PAGE_SIZE,
  systemHeap,
} from '../../src/index.js';
import { MockExporter, MovableExporter } from '../../src/testing/index.js';
import {
  addFence,
  DmaResvUsage,
  rejects,
  Timeline,
  throws,
  tick,
  until,
  WorkerClient,
} from './_support.js';

const workers: WorkerClient[] = [];
function worker(): WorkerClient {
  const w = new WorkerClient();
  workers.push(w);
  return w;
}

after(async () => {
  for (const w of workers) await w.terminate().catch(() => {});
});

describe('handles across threads', () => {
  it('a handle posted to a worker maps the same memory there (zero-copy both ways)', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(4 * PAGE_SIZE);
    const mine = await buf.mmap(0, buf.size, { write: true });
    mine[100] = 42;
    const fd = await w.call('install', { desc: buf.share() });
    assert.equal(typeof fd, 'number');
    const ref = await w.call('get', { fd });
    assert.equal(await w.call('read', { ref, at: 100 }), 42);
    await w.call('write', { ref, offset: PAGE_SIZE, value: 7, count: 16 });
    assert.equal(mine[PAGE_SIZE], 7, 'a write made in the worker is seen here');
    assert.equal(mine[PAGE_SIZE + 15], 7);
    await w.call('put', { ref });
    await w.call('close', { fd });
    assert.equal(buf.refcount, 1);
    buf.put();
  });

  it('one refcount for every thread; a thread-bound exporter releases once, in its home thread', async () => {
    const w = worker();
    const mock = new MockExporter();
    const buf = mock.export();
    const fd = buf.fd();
    const ref = await w.call('fromShared', { desc: buf.share(fd) });
    assert.equal(buf.refcount, 3);
    assert.equal(await w.call('refcount', { ref }), 3);
    DmaBuf.close(fd);
    buf.put();
    assert.equal(mock.releases, 0);
    await w.call('put', { ref });
    await until(() => mock.releases === 1);
    await tick(20);
    assert.equal(mock.releases, 1);
    assert.deepEqual(mock.calls, ['release']);
  });

  it("forwards attach, map, unmap and detach to a thread-bound exporter's home", async () => {
    const w = worker();
    const mock = new MockExporter({ dynamic: true });
    new Uint8Array(mock.memory)[5] = 55;
    const buf = mock.export();
    const ref = await w.call('fromShared', { desc: buf.share() });
    const att = await w.call('attach', { ref, dev: 'worker-gpu' });
    assert.deepEqual(mock.calls, ['attach:worker-gpu']);
    const map = await w.call('map', { att, at: 5 });
    assert.equal(map.first, 55, "the worker reads the exporter's memory through its mapping");
    assert.deepEqual(mock.calls, ['attach:worker-gpu', 'pin', 'map:0']);
    const info = await DmaBuf.bufinfo();
    assert.match(info, /\tworker-gpu\n/);
    await w.call('unmap', { map: map.id });
    await w.call('detach', { att });
    assert.deepEqual(mock.calls.slice(3), ['unmap:0', 'unpin', 'detach:worker-gpu']);
    await w.call('put', { ref });
    buf.put();
    assert.equal(mock.releases, 1);
  });

  it('an exporter in a worker: this thread imports, maps, and the release runs there', async () => {
    const w = worker();
    const { mock, ref } = await w.call('exportMock', { size: 2 * PAGE_SIZE, fill: 0x77 });
    const desc = await w.call('share', { ref });
    const buf = DmaBuf.fromShared(desc);
    assert.equal(buf.size, 2 * PAGE_SIZE);
    assert.equal(buf.priv, undefined, "the exporter's data stays home");
    assert.equal((await buf.mmap(0, PAGE_SIZE))[0], 0x77);
    const att = await buf.attach({ name: 'main-dev' });
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(m.views()[0]![0], 0x77);
    await att.unmapAttachmentUnlocked(m);
    await buf.detach(att);
    await w.call('put', { ref });
    buf.put();
    let stats: { releases: number; calls: string[] } = { releases: 0, calls: [] };
    for (let i = 0; i < 200 && stats.releases === 0; i++) {
      stats = await w.call('mockStats', { mock });
      if (stats.releases === 0) await tick(5);
    }
    assert.equal(stats.releases, 1);
    assert.deepEqual(stats.calls, [
      'mmap:0+1',
      'attach:main-dev',
      'map:0',
      'unmap:0',
      'detach:main-dev',
      'release',
    ]);
  });

  it('a read-only handle stays read-only in the other thread', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const ro = buf.get(O_RDONLY);
    const fd = await w.call('install', { desc: ro.share() });
    const ref = await w.call('get', { fd });
    await rejects(() => w.call('write', { ref, value: 1 }), 'EACCES');
    assert.equal(await w.call('read', { ref }), 0);
    await w.call('put', { ref });
    await w.call('close', { fd });
    ro.put();
    buf.put();
  });

  it("the global list and bufinfo are the domain's, seen from any thread", async () => {
    const w = worker();
    const a = new MockExporter().export();
    a.setName('from-main');
    const n = await w.call('iterCount');
    assert.ok(n >= 1);
    const info: string = await w.call('bufinfo');
    assert.match(info, /\tmock\t\d{8}\tfrom-main\n/);
    a.put();
    assert.equal(await w.call('iterCount'), n - 1);
  });

  it('a name set in one thread is read in another', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const ref = await w.call('fromShared', { desc: buf.share() });
    await w.call('setName', { ref, name: 'set-in-worker' });
    assert.equal(buf.name, 'set-in-worker');
    buf.setName('set-in-main');
    assert.equal(await w.call('name', { ref }), 'set-in-main');
    await w.call('put', { ref });
    buf.put();
  });
});

describe('seeded random stress', () => {
  it('three workers churn references and handles of one buffer; it is released once, at the end', async () => {
    const seed = Number(process.env.STRESS_SEED ?? Date.now() % 100000);
    const mock = new MockExporter();
    const buf = mock.export();
    const ws = [worker(), worker(), worker()];
    try {
      await Promise.all(
        ws.map((w, i) =>
          w.call('stress', {
            seed: seed + i,
            steps: 3000,
            descs: [buf.share(), buf.share(), buf.share()],
          }),
        ),
      );
    } catch (e) {
      throw new Error(`stress failed with STRESS_SEED=${seed}: ${String(e)}`);
    }
    assert.equal(buf.refcount, 1, `STRESS_SEED=${seed}`);
    assert.equal(mock.releases, 0);
    buf.put();
    assert.equal(mock.releases, 1, `STRESS_SEED=${seed}`);
  });
});

describe('descriptors that must not install', () => {
  it('installs once; a second install, a forged or tampered descriptor is EBADF', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const desc = buf.share();
    const fd = await w.call('install', { desc });
    await rejects(() => w.call('install', { desc }), 'EBADF');
    const d2 = buf.get(O_RDONLY).share();
    await rejects(() => w.call('install', { desc: { ...d2, mode: 2 } }), 'EBADF');
    await rejects(() => w.call('install', { desc: { ...d2, n: d2.n ^ 1 } }), 'EBADF');
    await rejects(() => w.call('install', { desc: { ...d2, t: 999999 } }), 'EBADF');
    await rejects(() => w.call('install', { desc: { ...d2, s: 'x' } }), 'EBADF');
    await rejects(() => w.call('install', { desc: { ...d2, d: d2.d + 1 } }), 'EXDEV');
    await rejects(() => w.call('install', { desc: { kind: 'other' } }), 'EINVAL');
    await rejects(() => w.call('install', { desc: null }), 'EINVAL');
    // The untouched descriptor still installs.
    const fd2 = await w.call('install', { desc: d2 });
    await w.call('close', { fd });
    await w.call('close', { fd: fd2 });
    assert.equal(buf.refcount, 2, 'the RDONLY reference made for d2 is still held here');
    buf.put();
    throws(() => DmaBuf.fromShared(desc), 'EBADF');
  });

  it('exporter data that does not match the buffer is EINVAL; the genuine descriptor still installs', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(3 * PAGE_SIZE);
    const desc = buf.share();
    const exp = desc.exp as {
      kind: string;
      data: { chunks: SharedArrayBuffer[]; size: number; chunkSize: number };
    };
    const data = exp.data;
    const tamper = (d: Record<string, unknown>) => ({
      ...desc,
      exp: { kind: exp.kind, data: { ...data, ...d } },
    });
    // Each would map short, past the buffer, or loop over a zero-length chunk.
    const forged = [
      tamper({ size: 4 * PAGE_SIZE }),
      tamper({ chunks: [] }),
      tamper({ chunks: [new SharedArrayBuffer(PAGE_SIZE)] }),
      tamper({ chunks: [new SharedArrayBuffer(0), ...data.chunks] }),
      tamper({ chunkSize: PAGE_SIZE }),
      tamper({ chunkSize: 0 }),
      tamper({ chunks: 'x' }),
    ];
    for (const f of forged) await rejects(() => w.call('fromShared', { desc: f }), 'EINVAL');
    const ref = await w.call('fromShared', { desc });
    await w.call('write', { ref, length: 3 * PAGE_SIZE, value: 9, count: 3 * PAGE_SIZE });
    const v = await buf.mmap(0, 3 * PAGE_SIZE);
    assert.equal(v[3 * PAGE_SIZE - 1], 9, "the worker wrote the buffer's own bytes");
    await w.call('put', { ref });
    assert.equal(buf.refcount, 1);
    buf.put();
  });
});

describe('thread exit', () => {
  it('puts the handles and references of a terminated worker, and detaches its attachments', async () => {
    const w = worker();
    const mock = new MockExporter({ dynamic: true });
    const buf = mock.export();
    const fd = await w.call('install', { desc: buf.share() });
    const ref = await w.call('get', { fd });
    const ref2 = await w.call('fromShared', { desc: buf.share() });
    const att = await w.call('attach', { ref, dev: 'doomed' });
    await w.call('map', { att });
    const dyn = await w.call('dynamicAttach', { ref: ref2, dev: 'doomed-dyn' });
    assert.equal(buf.refcount, 4);
    assert.equal(buf.attachmentCount, 2);
    assert.equal(mock.pins, 1);
    assert.equal(mock.maps, 1);
    void dyn;
    await w.terminate();
    await until(() => buf.refcount === 1 && buf.attachmentCount === 0);
    assert.equal(mock.maps, 0, 'the exporter unmapped what it mapped for the dead importer');
    assert.equal(mock.pins, 0, 'and its pin-on-map was undone');
    assert.equal(mock.attachments, 0, 'and detach ran');
    assert.equal(mock.releases, 0);
    buf.put();
    assert.equal(mock.releases, 1);
  });

  it('a worker exiting with the last reference releases the buffer once (system heap)', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const inode = buf.inode;
    await w.call('install', { desc: buf.share() });
    buf.put();
    const alive = (): boolean => {
      for (let it = DmaBuf.iterBegin(); it !== null; it = DmaBuf.iterNext(it)) {
        if (it.inode === inode) {
          it.put();
          return true;
        }
      }
      return false;
    };
    assert.equal(alive(), true);
    await w.terminate();
    await until(() => !alive());
  });

  it("when the exporter's thread dies, its buffers stay referenced but the exporter is unreachable", async () => {
    const w = worker();
    const { ref } = await w.call('exportMock', { size: PAGE_SIZE, fill: 3 });
    const desc = await w.call('share', { ref });
    const buf = DmaBuf.fromShared(desc);
    await w.terminate();
    await until(() => buf.refcount === 1);
    await rejects(() => buf.attach({ name: 'late' }), 'ENODEV');
    await rejects(() => buf.mmap(0, PAGE_SIZE), 'ENODEV');
    const inode = buf.inode;
    buf.put();
    for (let it = DmaBuf.iterBegin(); it !== null; it = DmaBuf.iterNext(it)) {
      assert.notEqual(it.inode, inode, 'the record was freed');
    }
  });

  it('a system-heap buffer outlives the worker that allocated it (its ops run anywhere)', async () => {
    const w = worker();
    const { desc } = await w.call('heapAlloc', { size: 2 * PAGE_SIZE, value: 0x5c });
    const buf = DmaBuf.fromShared(desc);
    const inode = buf.inode;
    await w.terminate();
    await until(() => buf.refcount === 1);
    assert.equal((await buf.mmap(PAGE_SIZE, PAGE_SIZE))[0], 0x5c);
    const att = await buf.attach({ name: 'survivor' });
    const m = await att.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    assert.equal(m.views()[0]![0], 0x5c);
    await att.unmapAttachmentUnlocked(m);
    await buf.detach(att);
    buf.put();
    for (let it = DmaBuf.iterBegin(); it !== null; it = DmaBuf.iterNext(it)) {
      assert.notEqual(it.inode, inode, 'released here, once');
    }
  });

  it('a poll callback armed by a thread that exits is disarmed and its reference put', async () => {
    const w = worker();
    const buf = new MockExporter().export();
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.WRITE);
    const ref = await w.call('fromShared', { desc: buf.share() });
    assert.equal(await w.call('poll', { ref, events: EPOLLOUT }), 0);
    assert.equal(buf.refcount, 3, 'the armed callback holds a reference');
    assert.equal(buf.poll(EPOLLOUT), 0, 'busy: armed by the worker');
    await w.terminate();
    await until(() => buf.refcount === 1);
    tl.inc(1);
    assert.equal(buf.poll(EPOLLOUT | EPOLLIN), EPOLLOUT | EPOLLIN);
    buf.put();
  });
});

describe('implicit sync between threads', () => {
  it('rendezvous: a worker writes under a WRITE fence; this thread polls, then reads', async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const ref = await w.call('fromShared', { desc: buf.share() });
    const fence = await w.call('addWriteFence', { ref });
    assert.equal(buf.poll(EPOLLIN), 0, 'the writer is busy');
    const ready = buf.pollAsync(EPOLLIN);
    let readyNow = false;
    void ready.then(() => (readyNow = true));
    await w.call('write', { ref, value: 0xcd, count: 8 });
    await tick(5);
    assert.equal(readyNow, false);
    await w.call('signal', { fence });
    assert.equal(await ready, EPOLLIN);
    assert.equal(await buf.sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ), 0);
    assert.equal((await buf.mmap(0, PAGE_SIZE))[7], 0xcd);
    await w.call('put', { ref });
    buf.put();
  });

  it("a worker's CPU access waits for a fence this thread signals", async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.WRITE);
    const ref = await w.call('fromShared', { desc: buf.share() });
    let began = false;
    const p = w
      .call('begin', { ref, flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ })
      .then(() => (began = true));
    await tick(20);
    assert.equal(began, false);
    tl.inc(1);
    await p;
    assert.equal(
      await w.call('pollAsync', { ref, events: EPOLLIN | EPOLLOUT, timeoutMs: 1000 }),
      EPOLLIN | EPOLLOUT,
    );
    await w.call('put', { ref });
    buf.put();
  });

  it("a worker's blocking CPU access (beginCpuAccessSync) waits for a fence this thread signals", async () => {
    const w = worker();
    const buf = systemHeap.allocateBuffer(PAGE_SIZE);
    const tl = new Timeline();
    await addFence(buf.resv, tl.fence(1), DmaResvUsage.READ);
    await addFence(buf.resv, tl.fence(2), DmaResvUsage.WRITE);
    const ref = await w.call('fromShared', { desc: buf.share() });
    let began = false;
    const p = w.call('beginSync', { ref, dir: DMA_FROM_DEVICE }).then((r) => {
      began = true;
      return r;
    });
    await tick(20);
    assert.equal(began, false, 'blocked on the writer');
    tl.inc(1); // the reader: a CPU read does not wait for it
    await tick(20);
    assert.equal(began, false, 'still blocked on the writer');
    tl.inc(1);
    assert.equal(await p, 0);
    assert.equal(await w.call('endSync', { ref, dir: DMA_FROM_DEVICE }), 0);
    await w.call('put', { ref });
    buf.put();
  });

  it("a thread-bound exporter's buffer refuses blocking CPU access in another thread (EAGAIN)", async () => {
    const w = worker();
    const mock = new MockExporter();
    const buf = mock.export();
    const ref = await w.call('fromShared', { desc: buf.share() });
    await rejects(() => w.call('beginSync', { ref, dir: DMA_BIDIRECTIONAL }), 'EAGAIN');
    await rejects(() => w.call('endSync', { ref, dir: DMA_BIDIRECTIONAL }), 'EAGAIN');
    // Without CPU hooks there is nothing to forward: it works there too.
    const plain = new MockExporter({ cpu: false }).export();
    const ref2 = await w.call('fromShared', { desc: plain.share() });
    assert.equal(await w.call('beginSync', { ref: ref2, dir: DMA_BIDIRECTIONAL }), 0);
    assert.equal(await w.call('endSync', { ref: ref2, dir: DMA_BIDIRECTIONAL }), 0);
    await w.call('put', { ref });
    await w.call('put', { ref: ref2 });
    buf.put();
    plain.put();
  });

  it('invalidation reaches a dynamic importer in another thread', async () => {
    const w = worker();
    const mv = new MovableExporter({ copyDelayMs: 1 });
    const ref = await w.call('fromShared', { desc: mv.buf.share() });
    const att = await w.call('dynamicAttach', { ref, dev: 'remote-gpu' });
    const map = await w.call('map', { att });
    assert.equal(await w.call('mapValid', { map: map.id }), true);
    await mv.move('system');
    assert.equal(await w.call('mapValid', { map: map.id }), false, 'stale at once (shared memory)');
    for (let i = 0; i < 100 && (await w.call('invalidations', { att })) === 0; i++) await tick(5);
    assert.equal(await w.call('invalidations', { att }), 1, "the importer's op ran in its thread");
    await w.call('unmap', { map: map.id });
    await w.call('detach', { att });
    await w.call('put', { ref });
    mv.buf.put();
    assert.equal(mv.releases, 1);
  });
});

void Domain;
