/**
 * One stage of the dmabuf pipeline, in a worker of the main thread's domain.
 *
 * Per frame, every stage does what a kernel driver does with implicit sync:
 * 1. wait for the fences of its direction (CPU-access bracketing: `beginCpuAccessSync` waits for
 *    writers before a read, for everybody before a write);
 * 2. add its own fence to the buffer's reservation object (WRITE for the producer and the modify
 *    stages, READ for the deriving stage and the consumer);
 * 3. tell the next stage, which will wait for that fence in step 1 — a ticket naming the slot;
 * 4. do its work on the zero-copy mapping, end CPU access, and signal its fence.
 * With the `late` hand-off, step 3 comes after step 4. The consumer returns the slot to the
 * producer (right after adding its READ fence when early): the producer's next write to that
 * buffer waits for it implicitly.
 *
 * The frame loop is synchronous — a worker has nothing else to do — and uses the blocking
 * variants of the same calls (`beginCpuAccessSync`, `DmaResv#lockSync`, `endCpuAccessSync`): no
 * event-loop turn, no Promise, no message per frame. Setting up (attach, map) and tearing down
 * (unmap, detach, put) stay asynchronous.
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
  DmaResvUsage,
  setWaitPolicy,
} from '../../src/index.js';
import type { StageData, StageReport } from './protocol.js';

// Stages outnumber the cores on small machines: blocking waits (fences, locks) spin only while
// the domain's threads fit the cores.
setWaitPolicy({ spinSync: 'auto' });

import { newTicket, TicketQueue } from './queue.js';
import { checksumFrame, fillFrame, modifyFrame, verifyFrame } from './work.js';

const data = workerData as StageData;
/** Monotonic ns as a double (process-wide: comparable across workers). */
const now = (): number => Number(process.hrtime.bigint());
const report = (m: StageReport, transfer: ArrayBuffer[] = []): void =>
  parentPort!.postMessage(m, transfer);
const early = data.handoff === 'early';
const writes = data.role === 'producer' || data.role === 'modify';
const direction = writes ? DMA_BIDIRECTIONAL : DMA_FROM_DEVICE;
const usage = writes ? DmaResvUsage.WRITE : DmaResvUsage.READ;
const ops: DmaFenceOps = { getDriverName: () => 'pipeline', getTimelineName: () => data.name };
const context = DmaFence.contextAlloc();
let fencesSignaled = 0;

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

/** Steps 1 and 2: waits for the fences of this stage's direction, then adds this stage's fence. */
function begin(slot: Slot, k: number): DmaFence {
  slot.buf.beginCpuAccessSync(direction);
  const fence = new DmaFence(ops, context, k + 1);
  const resv = slot.buf.resv;
  resv.lockSync(null);
  try {
    resv.reserveFences(1);
    resv.addFence(fence, usage);
  } finally {
    resv.unlock();
  }
  return fence;
}

/** Step 4's end: CPU access ends, the fence signals (waking whoever waits for it). */
function finish(slot: Slot, fence: DmaFence): void {
  slot.buf.endCpuAccessSync(direction);
  fence.signal();
  fencesSignaled++;
}

async function main(): Promise<void> {
  const pool = await openPool();
  report({ type: 'ready' });
  const start = new Int32Array(data.start);
  while (Atomics.load(start, 0) === 0) Atomics.wait(start, 0, 0);
  if (data.role === 'producer') producer(pool);
  else if (data.role === 'consumer') consumer(pool);
  else processor(pool);
}

function producer(pool: Slot[]): void {
  const out = new TicketQueue(data.output!, data.spin);
  const returns = new TicketQueue(data.returns!, data.spin);
  const t = newTicket();
  for (let k = 0; k < data.total; k++) {
    // The first frames take the pool's slots in order; later ones the slots the consumer returned.
    const s = k < pool.length ? k : returns.pop(t).slot;
    const slot = pool[s]!;
    const fence = begin(slot, k); // waits for the last readers of this buffer
    const t0 = now();
    if (early) out.push(s, k, t0, 0);
    fillFrame(slot.words, k);
    finish(slot, fence);
    if (!early) out.push(s, k, t0, 0);
  }
  done(pool, {});
}

function processor(pool: Slot[]): void {
  const input = new TicketQueue(data.input!, data.spin);
  const out = new TicketQueue(data.output!, data.spin);
  const derive = data.role === 'derive';
  const t = newTicket();
  for (let k = 0; k < data.total; k++) {
    input.pop(t);
    const slot = pool[t.slot]!;
    const fence = begin(slot, t.frame);
    if (derive) {
      const sum = checksumFrame(slot.words);
      if (early) out.push(t.slot, t.frame, t.t0, sum);
      finish(slot, fence);
      if (!early) out.push(t.slot, t.frame, t.t0, sum);
    } else {
      if (early) out.push(t.slot, t.frame, t.t0, t.sum);
      modifyFrame(slot.words);
      finish(slot, fence);
      if (!early) out.push(t.slot, t.frame, t.t0, t.sum);
    }
  }
  done(pool, {});
}

function consumer(pool: Slot[]): void {
  const input = new TicketQueue(data.input!, data.spin);
  const returns = new TicketQueue(data.returns!, data.spin);
  const latencies = new Float64Array(Math.max(0, data.total - data.warmup));
  let verified = 0;
  let failures = 0;
  let tWarm = 0;
  let tEnd = 0;
  const t = newTicket();
  for (let k = 0; k < data.total; k++) {
    input.pop(t);
    if (t.frame !== k) throw new Error(`frame ${t.frame} arrived, expected ${k}`);
    const slot = pool[t.slot]!;
    const fence = begin(slot, k);
    if (early) returns.push(t.slot, k, 0, 0);
    const ok = verifyFrame(slot.words, k, t.sum, data.modifies);
    const t1 = now();
    finish(slot, fence);
    if (!early) returns.push(t.slot, k, 0, 0);
    if (ok) verified++;
    else failures++;
    if (k >= data.warmup) latencies[k - data.warmup] = t1 - t.t0;
    if (k === data.warmup - 1) tWarm = t1;
    tEnd = t1;
    if (data.progressEvery !== 0 && (k + 1) % data.progressEvery === 0)
      report({ type: 'progress', verified, failures });
  }
  done(pool, { latencies, elapsedNs: tEnd - tWarm, verified, failures });
}

function done(
  pool: Slot[],
  consumer: { latencies?: Float64Array; elapsedNs?: number; verified?: number; failures?: number },
): void {
  close(pool)
    .then(() => {
      const transfer = consumer.latencies ? [consumer.latencies.buffer as ArrayBuffer] : [];
      // Tickets carry four numbers and messages go only to the main thread: no frame byte is
      // ever copied between threads.
      report({ type: 'done', fencesSignaled, messageBytes: 0, ...consumer }, transfer);
    })
    .catch(fail);
}

async function close(pool: Slot[]): Promise<void> {
  for (const s of pool) {
    await s.attachment.unmapAttachmentUnlocked(s.mapping);
    await s.buf.detach(s.attachment);
    s.buf.put();
  }
}

function fail(e: unknown): void {
  report({ type: 'error', message: String((e as Error)?.stack ?? e) });
}

main().catch(fail);
