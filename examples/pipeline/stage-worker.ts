/**
 * One stage of the dmabuf pipeline, in a worker of the main thread's domain.
 *
 * Per frame, every stage does what a kernel driver does with implicit sync:
 * 1. wait for the fences of its direction (CPU-access bracketing: `beginCpuAccess` waits for
 *    writers before a read, for everybody before a write);
 * 2. add its own fence to the buffer's reservation object (WRITE for the producer and the modify
 *    stages, READ for the deriving stage and the consumer);
 * 3. tell the next stage, which will wait for that fence in step 1 — the message names the slot;
 * 4. do its work on the zero-copy mapping, end CPU access, and signal its fence.
 * The consumer returns the slot to the producer right after adding its READ fence: the producer's
 * next write to that buffer waits for it implicitly.
 */

import { parentPort, workerData } from 'node:worker_threads';
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DmaBuf,
  type DmaBufAttachment,
  type DmaBufMapping,
  DmaFence,
  type DmaFenceOps,
  type DmaResv,
  DmaResvUsage,
} from '../../src/index.js';
import type { FrameMsg, ReturnMsg, StageData, StageReport } from './protocol.js';
import { checksumFrame, fillFrame, modifyFrame, verifyFrame } from './work.js';

const data = workerData as StageData;
/** Monotonic ns as a double (process-wide: comparable across workers). */
const nowNs = (): number => Number(process.hrtime.bigint());
const report = (m: StageReport, transfer: ArrayBuffer[] = []): void =>
  parentPort!.postMessage(m, transfer);
const early = data.handoff === 'early';
const writes = data.role === 'producer' || data.role === 'modify';
const direction = writes ? DMA_BIDIRECTIONAL : DMA_FROM_DEVICE;
const usage = writes ? DmaResvUsage.WRITE : DmaResvUsage.READ;
const ops: DmaFenceOps = { getDriverName: () => 'pipeline', getTimelineName: () => data.name };
const context = DmaFence.contextAlloc();
let fencesSignaled = 0;
let messageBytes = 0;

/** Counts the binary bytes a message would copy (there should be none). */
function send(port: { postMessage(m: unknown): void }, m: FrameMsg | ReturnMsg): void {
  for (const v of Object.values(m)) if (ArrayBuffer.isView(v)) messageBytes += v.byteLength;
  port.postMessage(m);
}

interface Slot {
  buf: DmaBuf;
  attachment: DmaBufAttachment;
  mapping: DmaBufMapping;
  words: Uint32Array;
}

async function openPool(): Promise<Slot[]> {
  const slots: Slot[] = [];
  for (const desc of data.pool) {
    const buf = DmaBuf.fromShared(desc);
    const attachment = await buf.attach({ name: data.name });
    // A static importer's mapping: segments of the buffer in this device's address space.
    const mapping = await attachment.mapAttachmentUnlocked(direction);
    const [view] = mapping.views();
    const words =
      mapping.views().length === 1 && view !== undefined
        ? new Uint32Array(view.buffer, view.byteOffset, data.frameBytes >> 2)
        : new Uint32Array((await buf.mmap(0, data.frameBytes)).buffer, 0, data.frameBytes >> 2);
    slots.push({ buf, attachment, mapping, words });
  }
  return slots;
}

async function stage(slot: Slot, k: number): Promise<DmaFence> {
  await slot.buf.beginCpuAccess(direction);
  const fence = new DmaFence(ops, context, k + 1);
  const resv: DmaResv = slot.buf.resv;
  await resv.lock(null);
  try {
    resv.reserveFences(1);
    resv.addFence(fence, usage);
  } finally {
    resv.unlock();
  }
  return fence;
}

async function finish(slot: Slot, fence: DmaFence): Promise<void> {
  await slot.buf.endCpuAccess(direction);
  fence.signal();
  fencesSignaled++;
}

async function main(): Promise<void> {
  const pool = await openPool();
  report({ type: 'ready' });
  if (data.role === 'producer') return producer(pool);
  const latencies = new Float64Array(Math.max(0, data.total - data.warmup));
  let verified = 0;
  let failures = 0;
  let tWarm = 0;
  let tEnd = 0;
  let chain: Promise<void> = Promise.resolve();
  const input = data.input!;
  await new Promise<void>((resolve, reject) => {
    input.on('message', (m: FrameMsg) => {
      chain = chain
        .then(async () => {
          const slot = pool[m.slot]!;
          const fence = await stage(slot, m.k);
          if (data.role === 'consumer') {
            if (early) send(data.returns!, { slot: m.slot });
            const ok = verifyFrame(slot.words, m.k, m.sum!, data.modifies);
            const t1 = nowNs();
            await finish(slot, fence);
            if (!early) send(data.returns!, { slot: m.slot });
            if (ok) verified++;
            else failures++;
            if (m.k >= data.warmup) latencies[m.k - data.warmup] = t1 - m.t0;
            if (m.k === data.warmup - 1) tWarm = t1;
            tEnd = t1;
            if ((m.k + 1) % data.progressEvery === 0)
              report({ type: 'progress', verified, failures });
          } else if (data.role === 'modify') {
            if (early) send(data.output!, m);
            modifyFrame(slot.words);
            await finish(slot, fence);
            if (!early) send(data.output!, m);
          } else {
            const sum = checksumFrame(slot.words);
            if (early) send(data.output!, { ...m, sum });
            await finish(slot, fence);
            if (!early) send(data.output!, { ...m, sum });
          }
          if (m.k === data.total - 1) resolve();
        })
        .catch(reject);
    });
  });
  input.close();
  await close(pool);
  report(
    {
      type: 'done',
      fencesSignaled,
      messageBytes,
      ...(data.role === 'consumer'
        ? { latencies, elapsedNs: tEnd - tWarm, verified, failures }
        : {}),
    },
    data.role === 'consumer' ? [latencies.buffer as ArrayBuffer] : [],
  );
}

async function producer(pool: Slot[]): Promise<void> {
  const free: number[] = pool.map((_, i) => i);
  let wake: (() => void) | null = null;
  data.returns!.on('message', (m: ReturnMsg) => {
    free.push(m.slot);
    wake?.();
  });
  for (let k = 0; k < data.total; k++) {
    while (free.length === 0) await new Promise<void>((r) => (wake = r));
    wake = null;
    const s = free.shift()!;
    const slot = pool[s]!;
    const fence = await stage(slot, k); // waits for the last readers of this buffer
    const t0 = nowNs();
    if (early) send(data.output!, { k, slot: s, t0 });
    fillFrame(slot.words, k);
    await finish(slot, fence);
    if (!early) send(data.output!, { k, slot: s, t0 });
  }
  data.returns!.close();
  await close(pool);
  report({ type: 'done', fencesSignaled, messageBytes });
}

async function close(pool: Slot[]): Promise<void> {
  for (const s of pool) {
    await s.attachment.unmapAttachmentUnlocked(s.mapping);
    await s.buf.detach(s.attachment);
    s.buf.put();
  }
}

main().catch((e) => report({ type: 'error', message: String(e?.stack ?? e) }));
