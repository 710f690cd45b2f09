/**
 * Observability: every diagnostics channel of dmabuf, declared in one table — the kernel's
 * tracepoints and the fence trace events. Messages are published only while a channel has
 * subscribers, so an unobserved program pays one property check per event. dmabuf never logs.
 *
 * Subscribe with `node:diagnostics_channel`:
 * ```ts
 * import diagnostics_channel from 'node:diagnostics_channel';
 * diagnostics_channel.subscribe('dmabuf:fence:signaled', (msg) => console.log(msg));
 * ```
 */

import diagnosticsChannel from 'node:diagnostics_channel';

/** Channel names (stable API) and what their messages carry. */
export const CHANNELS = {
  /** A fence was initialized: `{ fence }`. */
  fenceInit: 'dmabuf:fence:init',
  /** A fence signaled: `{ fence, error, timestamp }`. */
  fenceSignaled: 'dmabuf:fence:signaled',
  /** A wait on a fence started: `{ fence, timeoutMs }`. */
  fenceWaitStart: 'dmabuf:fence:wait-start',
  /** A wait on a fence ended: `{ fence, result }`. */
  fenceWaitEnd: 'dmabuf:fence:wait-end',
  /** A fence was released by this thread (disposed or collected): `{ context, seqno }`. */
  fenceDestroy: 'dmabuf:fence:destroy',
  /** A buffer was exported: `{ buf, expName, size, ino }` (kernel tracepoint dma_buf_export). */
  bufExport: 'dmabuf:buf:export',
  /** A handle was installed for a buffer: `{ buf, expName, size, ino, fd }` (dma_buf_fd). */
  bufFd: 'dmabuf:buf:fd',
  /** A handle was resolved to a buffer: `{ buf, expName, size, ino, fd }` (dma_buf_get). */
  bufGet: 'dmabuf:buf:get',
  /** A reference was dropped: `{ buf, expName, size, ino }` (dma_buf_put). */
  bufPut: 'dmabuf:buf:put',
  /** A buffer was mapped for CPU access: `{ buf, expName, size, ino, offset, length }` (dma_buf_mmap). */
  bufMmap: 'dmabuf:buf:mmap',
  /**
   * An importer attached: `{ buf, expName, size, ino, attachment, dynamic, dev }`
   * (dma_buf_dynamic_attach).
   */
  bufAttach: 'dmabuf:buf:attach',
  /**
   * An importer detached: `{ buf, expName, size, ino, attachment, dynamic, dev }` (dma_buf_detach);
   * `attachment` is null and `exited` true when a dead thread's attachment is detached for it.
   */
  bufDetach: 'dmabuf:buf:detach',
  /** A sw_sync timeline advanced: `{ name, value }` (sync_trace.h's sync_timeline). */
  swSyncTimeline: 'dmabuf:sw-sync:timeline',
  /**
   * Something went wrong where the kernel would WARN (a contract broken by a caller or an
   * exporter, a cleanup step that failed): `{ message, error? }`. dmabuf never logs by itself;
   * subscribe here to see these.
   */
  warning: 'dmabuf:warning',
  /** A reservation lock holder died and the lock was recovered: `{ resv, thread }`. */
  resvOwnerDied: 'dmabuf:resv:owner-died',
} as const;

export type ChannelKey = keyof typeof CHANNELS;

/** The channel objects, created once. */
export const channels: { readonly [K in ChannelKey]: diagnosticsChannel.Channel } =
  Object.fromEntries(
    Object.entries(CHANNELS).map(([k, name]) => [k, diagnosticsChannel.channel(name)]),
  ) as any;

/** Publishes `message` on a channel when somebody listens; builds the message only then. */
export function trace(key: ChannelKey, make: () => object): void {
  const ch = channels[key];
  if (ch.hasSubscribers) ch.publish(make());
}

/** The kernel's WARN: publishes `{ message, error }` on `dmabuf:warning` when subscribed. */
export function warn(message: string, error?: unknown): void {
  const ch = channels.warning;
  if (ch.hasSubscribers) ch.publish(error === undefined ? { message } : { message, error });
}
