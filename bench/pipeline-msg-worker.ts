/**
 * Worker side of the message-passing `pipeline` baselines (`postMessage-clone`,
 * `postMessage-transfer`). One file for the four roles; `workerData.role` picks one.
 *
 * The workers never close their ports: the main thread terminates them after the consumer's
 * report (closing a port could drop frames still queued on it).
 *
 * Flow control is the same in both modes: at most `slots` frames are in flight, and the consumer
 * hands one unit back to the producer for every verified frame.
 * - clone: the producer fills one buffer it keeps and posts a copy; the consumer returns a credit.
 * - transfer: the producer allocates `slots` buffers once and the consumer transfers each buffer
 *   back to it after verifying (a return path). Allocating a fresh buffer per frame instead would
 *   add a zero-filled allocation of `frameBytes` per frame and garbage for the collector; real
 *   programs recycle.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { nowNs } from './_harness.js';
import type {
  FrameMsg,
  MsgWorkerData,
  PipelineWorkerMessage,
  ReturnMsg,
} from './_pipeline-protocol.js';
import { checksumFrame, fillFrame, modifyFrame, verifyFrame } from './pipeline-work.js';

const d = workerData as MsgWorkerData;
const transfer = d.mode === 'transfer';
const total = d.warmup + d.frames;
const toMain = (m: PipelineWorkerMessage, list: ArrayBuffer[] = []): void =>
  parentPort!.postMessage(m, list);

switch (d.role) {
  case 'producer':
    producer();
    break;
  case 'stage1':
    stage((m) => modifyFrame(new Uint32Array(m.bytes)));
    break;
  case 'stage2':
    stage((m) => {
      m.sum = checksumFrame(new Uint32Array(m.bytes));
    });
    break;
  case 'consumer':
    consumer();
    break;
}
toMain({ type: 'ready' });

function send(port: NonNullable<MsgWorkerData['output']>, m: FrameMsg): void {
  if (transfer) port.postMessage(m, [m.bytes]);
  else port.postMessage(m);
}

function producer(): void {
  const out = d.output!;
  const back = d.back!;
  const pool: ArrayBuffer[] = [];
  const kept = transfer ? undefined : new ArrayBuffer(d.frameBytes);
  if (transfer) for (let i = 0; i < d.slots; i++) pool.push(new ArrayBuffer(d.frameBytes));
  let credits = d.slots;
  let seq = 0;
  const pump = (): void => {
    while (seq < total && credits > 0) {
      const t0 = nowNs();
      const bytes = kept ?? pool.pop()!;
      fillFrame(new Uint32Array(bytes), seq);
      send(out, { seq, t0, bytes, sum: 0 });
      credits--;
      seq++;
    }
  };
  back.on('message', (m: ReturnMsg) => {
    if (transfer) pool.push(m.bytes!);
    credits++;
    pump();
  });
  parentPort!.once('message', pump); // 'go'
}

function stage(work: (m: FrameMsg) => void): void {
  const input = d.input!;
  const out = d.output!;
  input.on('message', (m: FrameMsg) => {
    work(m);
    send(out, m);
  });
}

function consumer(): void {
  const input = d.input!;
  const back = d.back!;
  const latencies = new Float64Array(d.frames);
  let expect = 0;
  let tStart = 0;
  input.on('message', (m: FrameMsg) => {
    if (m.seq !== expect) throw new Error(`consumer: frame ${m.seq} arrived, expected ${expect}`);
    if (!verifyFrame(new Uint32Array(m.bytes), m.seq, m.sum))
      throw new Error(`consumer: frame ${m.seq} is corrupt`);
    const t1 = nowNs();
    if (m.seq >= d.warmup) latencies[m.seq - d.warmup] = t1 - m.t0;
    if (m.seq === d.warmup - 1) tStart = t1;
    expect++;
    if (transfer) back.postMessage({ bytes: m.bytes } satisfies ReturnMsg, [m.bytes]);
    else back.postMessage({} satisfies ReturnMsg);
    if (expect === total) {
      toMain({ type: 'done', latencies, elapsedNs: t1 - tStart }, [
        latencies.buffer as ArrayBuffer,
      ]);
    }
  });
}
