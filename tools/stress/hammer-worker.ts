/**
 * A hammering worker (started by Swarm with Domain#spawn): on `start` it installs the buffers and
 * mutexes it is given, exports a thread-bound counting buffer of its own (shared back to the
 * spawner, so that the exporter dies with this thread), and runs the hammer until `stop`, then
 * undoes everything and answers `stopped`. Broken invariants are posted as they are found.
 */

import { parentPort } from 'node:worker_threads';
import type { DmaBufDescriptor } from '../../src/index.js';
import { exportCounted } from './counted-exporter.js';
import { Hammer, type HammerInit } from './hammer.js';

type Msg =
  | { type: 'start'; init: HammerInit; counters: SharedArrayBuffer; exportId: number }
  | { type: 'stop' };

let hammer: Hammer | null = null;
let running: Promise<void> | null = null;

parentPort!.on('message', async (m: Msg) => {
  try {
    if (m.type === 'start') {
      const own = exportCounted(m.counters, m.exportId, 'bound', m.exportId % 2 === 0);
      const mine: DmaBufDescriptor = own.share();
      const forSpawner = own.share();
      own.put();
      hammer = new Hammer({ ...m.init, bufs: [...m.init.bufs, mine] });
      hammer.onViolation = (what) => parentPort!.postMessage({ type: 'violation', what });
      await hammer.mapViews();
      running = hammer.run();
      parentPort!.postMessage({ type: 'started', desc: forSpawner });
    } else if (m.type === 'stop') {
      hammer?.stop();
      await running;
      parentPort!.postMessage({ type: 'stopped' });
    }
  } catch (e) {
    parentPort!.postMessage({
      type: 'violation',
      what: `worker failed: ${String((e as Error)?.stack ?? e)}`,
    });
  }
});
