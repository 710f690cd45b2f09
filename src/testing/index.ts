/**
 * dmabuf/testing — test-only drivers: the sw_sync timeline, mock exporters and a movable
 * (dynamic) exporter.
 *
 * ```ts
 * import { SwSyncTimeline } from 'dmabuf/testing';
 * const tl = new SwSyncTimeline('frames');
 * const done = tl.createFence(1);   // a SyncFile
 * tl.inc();                          // signals it
 * ```
 *
 * @module dmabuf/testing
 */

export * from './mock-exporter.js';
export * from './movable-exporter.js';
export {
  SW_SYNC_GET_DEADLINE,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SW_SYNC_IOC_MAGIC,
  SwSyncTimeline,
} from './sw-sync.js';
