/**
 * The WebAssembly heap (src/heap/wasm.ts): buffers carved out of a shared WebAssembly.Memory, read
 * and written in place by WebAssembly code in any worker, under implicit sync.
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import {
  createWasmHeap,
  DMA_FROM_DEVICE,
  DmaBuf,
  type DmaBufDescriptor,
  DmaHeap,
  Domain,
  PAGE_SIZE,
  WASM_PAGE_SIZE,
  wasmHeapBuffer,
  wasmHeapDescriptor,
} from '../src/index.js';
import { kernels } from './_wasm-kernels.js';

const workerUrl = new URL('./fixtures/wasm-worker.js', import.meta.url);
let names = 0;
const fresh = (): string => `wasm-test-${++names}`;

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('WebAssembly heap', () => {
  it('refuses bad options with EINVAL', () => {
    assert.equal(
      code(() => createWasmHeap(null as never)),
      'EINVAL',
    );
    assert.equal(
      code(() => createWasmHeap({ name: '', maximumPages: 4 })),
      'EINVAL',
    );
    assert.equal(
      code(() => createWasmHeap({ name: fresh(), maximumPages: 0 })),
      'EINVAL',
    );
    assert.equal(
      code(() => createWasmHeap({ name: fresh(), maximumPages: 65537 })),
      'EINVAL',
    );
    assert.equal(
      code(() => createWasmHeap({ name: 'system', maximumPages: 4 })),
      'EINVAL',
    );
    assert.equal(
      code(() => createWasmHeap({ name: fresh(), maximumPages: 2, initialPages: 3 })),
      'EINVAL',
    );
    const unshared = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    assert.equal(
      code(() => createWasmHeap({ name: fresh(), maximumPages: 4, memory: unshared })),
      'EINVAL',
    );
    assert.equal(
      code(() => createWasmHeap({ name: fresh(), maximumPages: 4, reservedBytes: 100 })),
      'EINVAL',
    );
    assert.equal(
      code(() => wasmHeapBuffer(DmaHeap.find('system')!.allocateBuffer(4096))),
      'EINVAL',
    );
    assert.equal(
      code(() => wasmHeapDescriptor(DmaHeap.find('system')!)),
      'EINVAL',
    );
  });

  it('allocates zeroed, page-aligned, non-overlapping buffers; reuses freed pages; grows; ENOMEM at the maximum', () => {
    const heap = createWasmHeap({ name: fresh(), maximumPages: 4, reservedBytes: PAGE_SIZE });
    const a = heap.allocateBuffer(10_000); // 3 pages
    const b = heap.allocateBuffer(PAGE_SIZE);
    const pa = wasmHeapBuffer(a);
    const pb = wasmHeapBuffer(b);
    assert.equal(pa.offset, PAGE_SIZE, 'the reserved page is skipped');
    assert.equal(pa.size, 3 * PAGE_SIZE);
    assert.equal(pb.offset, 4 * PAGE_SIZE);
    assert.equal(pa.memory, pb.memory);
    const bytes = new Uint8Array(pa.memory.buffer, pa.offset, pa.size);
    bytes.fill(0xee);
    a.put();
    // The freed pages come back, zeroed.
    const c = heap.allocateBuffer(2 * PAGE_SIZE);
    const pc = wasmHeapBuffer(c);
    assert.equal(pc.offset, PAGE_SIZE);
    assert.ok(new Uint8Array(pc.memory.buffer, pc.offset, pc.size).every((x) => x === 0));
    // More than the first WebAssembly page: the memory grows.
    const before = pc.memory.buffer.byteLength;
    const big = heap.allocateBuffer(2 * WASM_PAGE_SIZE);
    assert.ok(pc.memory.buffer.byteLength > before, 'grown');
    const pbig = wasmHeapBuffer(big);
    assert.ok(pbig.offset + pbig.size <= pc.memory.buffer.byteLength);
    // 4 WebAssembly pages in all: nothing of that size is left.
    assert.equal(
      code(() => heap.allocateBuffer(2 * WASM_PAGE_SIZE)),
      'ENOMEM',
    );
    for (const x of [b, c, big]) x.put();
    // Everything free again: the big run fits now.
    heap.allocateBuffer(3 * WASM_PAGE_SIZE).put();
  });

  it("takes over the allocator's lock from a dead holder, also when its thread index was reused", () => {
    const heap = createWasmHeap({ name: fresh(), maximumPages: 2 });
    const a32 = new Int32Array(wasmHeapDescriptor(heap).alloc);
    const d = Domain.current();
    // A thread index that is alive but whose incarnation is not the one that took the lock: the
    // holder died and its index went to another thread.
    const t = d.allocThread();
    Atomics.store(a32, 0, (t << 23) | 0x7abcd);
    heap.allocateBuffer(PAGE_SIZE).put(); // spins forever without the takeover
    assert.equal(Atomics.load(a32, 0), 0, 'released after the allocation');
    d.threadExited(t);
    // A free index.
    Atomics.store(a32, 0, (200 << 23) | 1);
    heap.allocateBuffer(PAGE_SIZE).put();
    // This thread itself: EDEADLK rather than waiting for itself.
    Atomics.store(a32, 0, d.ownerId);
    assert.equal(
      code(() => heap.allocateBuffer(PAGE_SIZE)),
      'EDEADLK',
    );
    Atomics.store(a32, 0, 0);
  });

  it('maps the same bytes WebAssembly code writes, zero-copy', async () => {
    const heap = createWasmHeap({ name: fresh(), maximumPages: 8 });
    const buf = heap.allocateBuffer(3 * PAGE_SIZE);
    const { memory, offset, size } = wasmHeapBuffer(buf);
    kernels(memory).fill(offset, size, 9);
    const [view] = await buf.mmapSegments();
    assert.equal(view!.buffer, memory.buffer);
    assert.equal(view!.byteOffset, offset);
    assert.ok(view!.every((x) => x === 9));
    buf.put();
  });

  describe('across workers', () => {
    let w: Worker;
    before(() => {
      w = Domain.current().spawn(workerUrl);
    });
    after(async () => {
      await w.terminate();
    });

    it('a worker fills a buffer from WebAssembly under a WRITE fence; this thread waits for it, not for a message', async () => {
      const heap = createWasmHeap({ name: fresh(), maximumPages: 16 });
      const buf = heap.allocateBuffer(64 * 1024);
      const { memory, offset, size } = wasmHeapBuffer(buf);
      w.postMessage({ op: 'fill', buf: buf.share(), value: 0x5a });
      await once(w, 'message'); // started: its fence is in the buffer's reservation object
      await buf.beginCpuAccess(DMA_FROM_DEVICE); // waits for the writer's fence
      assert.equal(kernels(memory).sum(offset, size), 0x5a * size, 'this thread sees every byte');
      await buf.endCpuAccess(DMA_FROM_DEVICE);
      const [done] = (await once(w, 'message')) as [{ sum: number }];
      assert.equal(done.sum, 0x5a * size);
      buf.put();
    });

    it('another thread allocates from the same heap; pages freed here are free there', async () => {
      const heap = createWasmHeap({ name: fresh(), maximumPages: 16 });
      const mine = heap.allocateBuffer(PAGE_SIZE);
      w.postMessage({ op: 'alloc', heap: wasmHeapDescriptor(heap), size: 2 * PAGE_SIZE });
      const [m] = (await once(w, 'message')) as [{ buf: unknown; offset: number }];
      const theirs = DmaBuf.fromShared(m.buf as never);
      const t = wasmHeapBuffer(theirs);
      assert.equal(t.offset, m.offset);
      assert.notEqual(t.offset, wasmHeapBuffer(mine).offset, 'one allocator for both threads');
      assert.equal(kernels(t.memory).sum(t.offset, t.size), 7 * t.size);
      // The last reference goes here; the release runs in the buffer's home thread (the worker),
      // soon after, and gives its pages back to the allocator both threads share.
      theirs.put();
      let offset = -1;
      for (let i = 0; i < 200 && offset !== m.offset; i++) {
        const again = heap.allocateBuffer(2 * PAGE_SIZE);
        offset = wasmHeapBuffer(again).offset;
        again.put();
        if (offset !== m.offset) await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(offset, m.offset, "the worker's pages were freed");
      mine.put();
    });

    it("a descriptor altered on the way (another buffer's pages, size, or heap) is EINVAL; the genuine one imports", async () => {
      const heap = createWasmHeap({ name: fresh(), maximumPages: 16 });
      const other = createWasmHeap({ name: fresh(), maximumPages: 16 });
      const a = heap.allocateBuffer(PAGE_SIZE);
      const b = heap.allocateBuffer(PAGE_SIZE);
      const desc = a.share();
      const exp = desc.exp as { kind: string; data: Record<string, unknown> };
      const od = wasmHeapDescriptor(other);
      const tamper = (d: Record<string, unknown>) => ({
        ...desc,
        exp: { kind: exp.kind, data: { ...exp.data, ...d } },
      });
      const forged = [
        tamper({ offset: wasmHeapBuffer(b).offset }),
        tamper({ size: 2 * PAGE_SIZE }),
        tamper({ memory: od.memory, alloc: od.alloc }),
      ];
      for (const f of forged) {
        w.postMessage({ op: 'import', buf: f });
        const [r] = (await once(w, 'message')) as [{ code?: string }];
        assert.equal(r.code, 'EINVAL');
      }
      w.postMessage({ op: 'import', buf: desc });
      const [r] = (await once(w, 'message')) as [{ offset?: number }];
      assert.equal(r.offset, wasmHeapBuffer(a).offset);
      a.put();
      b.put();
    });

    it('once the exporting thread is gone, an importer releases with the place its checked descriptor gave', async () => {
      // A forged place matters where the release runs with the importer's ops: in a thread that
      // imported the buffer, after its home thread died.
      const heap = createWasmHeap({ name: fresh(), maximumPages: 16 });
      const home = Domain.current().spawn(workerUrl);
      home.postMessage({ op: 'allocKeep', heap: wasmHeapDescriptor(heap), count: 2 });
      const [m] = (await once(home, 'message')) as [
        { bufs: DmaBufDescriptor[]; offsets: number[] },
      ];
      const [da, db] = m.bufs as [DmaBufDescriptor, DmaBufDescriptor];
      const [oa, ob] = m.offsets as [number, number];
      const exp = da.exp as { kind: string; data: Record<string, unknown> };
      const forged = { ...da, exp: { kind: exp.kind, data: { ...exp.data, offset: ob } } };
      assert.equal(
        code(() => DmaBuf.fromShared(forged)),
        'EINVAL',
      );
      const a = DmaBuf.fromShared(da);
      const b = DmaBuf.fromShared(db);
      await home.terminate(); // its references go at its exit; its ops with it
      for (let i = 0; i < 200 && (a.refcount !== 1 || b.refcount !== 1); i++)
        await new Promise((res) => setTimeout(res, 10));
      assert.equal(a.refcount, 1);
      a.put(); // the release runs here, with the ops and place this thread rebuilt
      const again = heap.allocateBuffer(PAGE_SIZE);
      assert.equal(wasmHeapBuffer(again).offset, oa, "a's page was freed");
      const more = heap.allocateBuffer(PAGE_SIZE);
      assert.notEqual(wasmHeapBuffer(more).offset, ob, "b's page is still taken");
      for (const x of [again, more, b]) x.put();
      const last = heap.allocateBuffer(2 * PAGE_SIZE);
      assert.equal(wasmHeapBuffer(last).offset, Math.min(oa, ob), 'both pages free at the end');
      last.put();
    });
  });
});
