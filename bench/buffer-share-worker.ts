/**
 * Worker side of the `buffer-share` baselines: receives a buffer, reads one byte, replies with
 * it. In `transfer` mode the buffer goes back to the main thread with the reply (transferred), so
 * the main thread can send it again; in `clone` mode the worker drops its copy.
 */

import { parentPort, workerData } from 'node:worker_threads';
import type { ShareReply, ShareRequest, ShareWorkerData } from './_share-protocol.js';

const { mode } = workerData as ShareWorkerData;
const port = parentPort!;

port.on('message', (m: ShareRequest) => {
  const value = m.bytes[m.index]!;
  if (mode === 'transfer') {
    port.postMessage({ value, bytes: m.bytes } satisfies ShareReply, [
      m.bytes.buffer as ArrayBuffer,
    ]);
  } else {
    port.postMessage({ value } satisfies ShareReply);
  }
});
