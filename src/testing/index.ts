/**
 * dmabuf/testing — drivers for tests: mock exporters, a movable (dynamic) exporter, and (from the
 * fence work) the sw_sync timeline.
 */

export * from './mock-exporter.js';
export * from './movable-exporter.js';
