/**
 * Worker side of the `fence-wake` baselines: two of these ping-pong, one as `ping` (which times
 * each round trip), one as `pong`. See `_wake-layout.ts` for the shared words.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { nowNs } from './_harness.js';
import { publish, waitFor, waitForStart } from './_spin-wait.js';
import {
  PING,
  PING_WAITERS,
  PONG,
  PONG_WAITERS,
  START,
  type WakeWorkerData,
  type WakeWorkerMessage,
} from './_wake-layout.js';

const data = workerData as WakeWorkerData;
const post = (m: WakeWorkerMessage, transfer: ArrayBuffer[] = []): void =>
  parentPort!.postMessage(m, transfer);
const total = data.warmup + data.rounds;
const samples = new Float64Array(data.rounds);

if (data.mode === 'postMessage') runPostMessage();
else runAtomics();

/** Blocking signal: always store + notify. */
function publishAlways(i32: Int32Array, index: number, value: number): void {
  Atomics.store(i32, index, value);
  Atomics.notify(i32, index);
}

/** Blocking wait: `Atomics.wait` whenever the value is not there yet, no spinning. */
function waitAlways(i32: Int32Array, index: number, want: number): void {
  for (let v = Atomics.load(i32, index); v !== want; v = Atomics.load(i32, index)) {
    Atomics.wait(i32, index, v);
  }
}

function runAtomics(): void {
  const i32 = new Int32Array(data.sab);
  const spin = data.mode === 'spin';
  post({ type: 'ready' });
  waitForStart(i32, START);
  if (data.role === 'pong') {
    for (let i = 1; i <= total; i++) {
      if (spin) {
        waitFor(i32, PING, i, PING_WAITERS, data.spin);
        publish(i32, PONG, i, PONG_WAITERS);
      } else {
        waitAlways(i32, PING, i);
        publishAlways(i32, PONG, i);
      }
    }
    return;
  }
  let prev = nowNs();
  for (let i = 1; i <= total; i++) {
    if (spin) {
      publish(i32, PING, i, PING_WAITERS);
      waitFor(i32, PONG, i, PONG_WAITERS, data.spin);
    } else {
      publishAlways(i32, PING, i);
      waitAlways(i32, PONG, i);
    }
    const t = nowNs();
    if (i > data.warmup) samples[i - data.warmup - 1] = t - prev;
    prev = t;
  }
  post({ type: 'done', samples }, [samples.buffer as ArrayBuffer]);
}

function runPostMessage(): void {
  const port = data.port!;
  if (data.role === 'pong') {
    port.on('message', (i: number) => {
      port.postMessage(i);
      if (i === total) port.close();
    });
    post({ type: 'ready' });
    return;
  }
  let prev = 0;
  port.on('message', (i: number) => {
    const t = nowNs();
    if (i > data.warmup) samples[i - data.warmup - 1] = t - prev;
    prev = t;
    if (i < total) {
      port.postMessage(i + 1);
    } else {
      port.close();
      post({ type: 'done', samples }, [samples.buffer as ArrayBuffer]);
    }
  });
  parentPort!.once('message', () => {
    prev = nowNs();
    port.postMessage(1);
  });
  post({ type: 'ready' });
}
