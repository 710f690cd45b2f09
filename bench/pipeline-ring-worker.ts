/**
 * Worker side of the `sab-ring` pipeline baseline: a hand-written ring of `slots` frame slots in
 * SharedArrayBuffers, each slot's state word handed from stage to stage with spin-then-wait
 * signalling (`_spin-wait.ts`). No framework; this is the floor the dmabuf variant is held to.
 * Layout: `_pipeline-protocol.ts`. Every role walks frames 0, 1, 2, ... through slots
 * 0, 1, .., slots-1, 0, ...; a slot's state says which role owns it.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { nowNs } from './_harness.js';
import {
  CHECKED,
  FILLED,
  FREE,
  MODIFIED,
  type PipelineWorkerMessage,
  R_START,
  type RingWorkerData,
  S_SEQ,
  S_STATE,
  S_SUM,
  S_T0,
  S_WAITERS,
  slotWord,
} from './_pipeline-protocol.js';
import { publish, waitFor, waitForStart } from './_spin-wait.js';
import { checksumFrame, fillFrame, modifyFrame, verifyFrame } from './pipeline-work.js';

const d = workerData as RingWorkerData;
const i32 = new Int32Array(d.control);
const f64 = new Float64Array(d.control);
const total = d.warmup + d.frames;
const frames: Uint32Array[] = [];
for (let s = 0; s < d.slots; s++)
  frames.push(new Uint32Array(d.data, s * d.frameBytes, d.frameBytes / 4));

const IN: Record<typeof d.role, number> = {
  producer: FREE,
  stage1: FILLED,
  stage2: MODIFIED,
  consumer: CHECKED,
};
const OUT: Record<typeof d.role, number> = {
  producer: FILLED,
  stage1: MODIFIED,
  stage2: CHECKED,
  consumer: FREE,
};
const want = IN[d.role];
const next = OUT[d.role];
const latencies = new Float64Array(d.role === 'consumer' ? d.frames : 0);
let tStart = 0;
let tEnd = 0;

parentPort!.postMessage({ type: 'ready' } satisfies PipelineWorkerMessage);
waitForStart(i32, R_START);

for (let seq = 0; seq < total; seq++) {
  const slot = seq % d.slots;
  const state = slotWord(slot, S_STATE);
  const waiters = slotWord(slot, S_WAITERS);
  waitFor(i32, state, want, waiters, d.spin);
  const words = frames[slot]!;
  switch (d.role) {
    case 'producer':
      f64[slotWord(slot, S_T0) / 2] = nowNs();
      i32[slotWord(slot, S_SEQ)] = seq;
      fillFrame(words, seq);
      break;
    case 'stage1':
      modifyFrame(words);
      break;
    case 'stage2':
      i32[slotWord(slot, S_SUM)] = checksumFrame(words);
      break;
    case 'consumer': {
      const got = i32[slotWord(slot, S_SEQ)]!;
      if (got !== seq)
        throw new Error(`consumer: slot ${slot} holds frame ${got}, expected ${seq}`);
      if (!verifyFrame(words, seq, i32[slotWord(slot, S_SUM)]!))
        throw new Error(`consumer: frame ${seq} is corrupt`);
      const t1 = nowNs();
      if (seq >= d.warmup) latencies[seq - d.warmup] = t1 - f64[slotWord(slot, S_T0) / 2]!;
      if (seq === d.warmup - 1) tStart = t1;
      tEnd = t1;
      break;
    }
  }
  publish(i32, state, next, waiters);
}

if (d.role === 'consumer') {
  parentPort!.postMessage(
    { type: 'done', latencies, elapsedNs: tEnd - tStart } satisfies PipelineWorkerMessage,
    [latencies.buffer as ArrayBuffer],
  );
}
