/**
 * dmabuf side of `buffer-share`: the main thread allocates one system-heap buffer of
 * `options.bytes` (filled like the baselines' buffer), and each round posts a transfer descriptor
 * of it (`buf.share()`, one reference) to a worker that installs it as a handle, maps the page to
 * read, reads one byte, replies, and puts and closes what it got. Nothing is copied: the worker
 * maps the very SharedArrayBuffer the main thread wrote.
 */

import { DmaBuf, Domain, PAGE_SIZE, systemHeap } from '../src/index.js';
import { nowNs } from './_harness.js';
import { spawn, withWorkers } from './_workers.js';
import type { ShareOptions, ShareRaw, ShareSide } from './buffer-share.js';

const WORKER = new URL('./buffer-share-dmabuf-worker.js', import.meta.url);

/** Round trips of a handle to a worker that maps the buffer and reads one byte there. */
export async function dmabufShareRoundTrips(opts: ShareOptions): Promise<ShareRaw> {
  const domain = Domain.current();
  const buf = systemHeap.allocateBuffer(opts.bytes);
  try {
    const view = await buf.mmap(0, opts.bytes, { write: true });
    view.fill(0xee);
    for (let i = 0; i < opts.bytes; i += PAGE_SIZE) view[i] = (i / PAGE_SIZE) & 0xff;
    const data = domain.threadData({});
    const w = spawn(WORKER, data);
    domain.watch(w.worker, data);
    return await withWorkers([w], async () => {
      await w.next();
      const pages = Math.ceil(opts.bytes / PAGE_SIZE);
      const out = new Float64Array(opts.rounds);
      for (let i = 0; i < opts.warmup + opts.rounds; i++) {
        const page = (i * 7919) % pages;
        const t0 = nowNs();
        w.worker.postMessage({ desc: buf.share(), index: page * PAGE_SIZE });
        const reply = await w.next<{ value: number }>();
        const dt = nowNs() - t0;
        if (reply.value !== (page & 0xff))
          throw new Error(`buffer-share dmabuf: read ${reply.value}`);
        if (i >= opts.warmup) out[i - opts.warmup] = dt;
      }
      return out;
    });
  } finally {
    buf.put();
  }
}

export const dmabuf: ShareSide = { name: 'dmabuf-handle', run: dmabufShareRoundTrips };

void DmaBuf;
