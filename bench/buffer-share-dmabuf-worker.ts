/**
 * Worker side of `buffer-share`'s dmabuf variant: installs each posted descriptor as a handle,
 * maps the requested page, reads its first byte, replies, then puts and closes.
 */

import { parentPort } from 'node:worker_threads';
import { DmaBuf, type DmaBufDescriptor, PAGE_SIZE } from '../src/index.js';

const port = parentPort!;

port.on('message', async (m: { desc: DmaBufDescriptor; index: number }) => {
  const fd = DmaBuf.install(m.desc);
  const buf = DmaBuf.get(fd);
  const view = await buf.mmap(m.index, PAGE_SIZE);
  const value = view[0]!;
  buf.put();
  DmaBuf.close(fd);
  port.postMessage({ value });
});
port.postMessage({ ready: true });
