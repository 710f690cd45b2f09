/**
 * A counting exporter for the model, fault and load tests (and the stress tool): every op adds to (or takes from) a
 * counter in shared memory, so that any thread — the test's main thread above all — can check
 * what the exporter saw, wherever the op ran and whichever thread died meanwhile.
 *
 * Two flavours over the same ops:
 * - `bound`: a thread-bound exporter (ops are closures of the exporting thread; other threads are
 *   forwarded there, and the exporter is gone when that thread dies);
 * - `shared`: a shared exporter (kind {@link COUNTED_KIND}): any thread that installs the buffer
 *   rebuilds the ops from the descriptor and runs them itself.
 * Either may be dynamic (pin/unpin: static importers are pinned by their mappings).
 *
 * Counters of buffer `id` live at `counters[id * CW + C_*]` (Int32, atomic add).
 */

import { isMainThread } from 'node:worker_threads';
import {
  DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
  type DmaBufSegment,
  PAGE_SIZE,
  registerSharedExporter,
} from '../../src/index.js';

/** Words per buffer in the counter array. */
export const CW = 16;
/** Exporter `release` calls. */
export const C_RELEASES = 0;
/** Attachments the exporter holds (attach − detach). */
export const C_ATTACHED = 1;
/** Device mappings the exporter holds (map − unmap). */
export const C_MAPS = 2;
/** Pins the exporter holds (pin − unpin). */
export const C_PINS = 3;
/** Kernel mappings the exporter holds (vmap − vunmap). */
export const C_VMAPS = 4;
/** beginCpuAccess calls. */
export const C_CPU_BEGIN = 5;
/** endCpuAccess calls. */
export const C_CPU_END = 6;
/** Ops called after release (must stay 0). */
export const C_AFTER_RELEASE = 7;
/** Which thread ran the release (0 = not yet). */
export const C_RELEASE_THREAD = 8;
/** Total op calls (for load figures). */
export const C_CALLS = 9;
/**
 * Gates for the regression tests: while non-zero, `mapDmaBuf` blocks its thread before it maps
 * (after the pin of a static importer), `unmapDmaBuf` after it unmapped — an exporter op the
 * importer's thread can be killed in. Set and cleared by the test (store 0 and notify); only
 * workers wait at them.
 */
export const C_GATE_MAP = 10;
export const C_GATE_UNMAP = 11;
/** Like {@link C_GATE_UNMAP} for `vunmap` (blocks after it vunmapped). */
export const C_GATE_VUNMAP = 12;

export const COUNTED_KIND = 'dmabuf-test:counted';

export type ExporterKind = 'bound' | 'shared';

/** What a counted buffer's descriptor carries. */
export interface CountedData {
  memory: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  id: number;
  dynamic: boolean;
}

export const COUNTED_SIZE = 2 * PAGE_SIZE;

/** A counter array for `n` buffers. */
export function counterArray(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * CW * 4));
}

function countedOps(data: CountedData, thread: () => number): DmaBufOps {
  const c = new Int32Array(data.counters);
  const base = data.id * CW;
  const bump = (w: number, n: number): void => {
    Atomics.add(c, base + C_CALLS, 1);
    if (Atomics.load(c, base + C_RELEASES) > 0) Atomics.add(c, base + C_AFTER_RELEASE, 1);
    Atomics.add(c, base + w, n);
  };
  const gate = (w: number): void => {
    if (isMainThread) return; // the test's own thread opens the gates: it never waits at one
    for (let v = Atomics.load(c, base + w); v !== 0; v = Atomics.load(c, base + w))
      Atomics.wait(c, base + w, v, 50);
  };
  const segs = (): DmaBufSegment[] => [
    { memory: data.memory, offset: 0, length: data.memory.byteLength },
  ];
  const ops: DmaBufOps = {
    attach: (_b, _a: DmaBufAttachment) => bump(C_ATTACHED, 1),
    detach: () => bump(C_ATTACHED, -1),
    mapDmaBuf: () => {
      gate(C_GATE_MAP);
      bump(C_MAPS, 1);
      return segs();
    },
    unmapDmaBuf: () => {
      bump(C_MAPS, -1);
      gate(C_GATE_UNMAP);
    },
    release: () => {
      bump(C_RELEASES, 1);
      Atomics.store(c, base + C_RELEASE_THREAD, thread());
    },
    beginCpuAccess: () => bump(C_CPU_BEGIN, 1),
    endCpuAccess: () => bump(C_CPU_END, 1),
    mmap: () => segs(),
    vmap: () => {
      bump(C_VMAPS, 1);
      return segs();
    },
    vunmap: () => {
      bump(C_VMAPS, -1);
      gate(C_GATE_VUNMAP);
    },
  };
  if (data.dynamic) {
    ops.pin = () => bump(C_PINS, 1);
    ops.unpin = () => bump(C_PINS, -1);
  }
  return ops;
}

let currentThread: () => number = () => 0;

/** Tells the exporter how to name the calling thread (Domain.current().thread). */
export function setThreadNamer(f: () => number): void {
  currentThread = f;
}

registerSharedExporter(COUNTED_KIND, (data) => {
  const d = data as CountedData;
  return { ops: countedOps(d, () => currentThread()), priv: d };
});

/** Exports counted buffer `id` from the calling thread; returns its first reference. */
export function exportCounted(
  counters: SharedArrayBuffer,
  id: number,
  kind: ExporterKind,
  dynamic: boolean,
  size = COUNTED_SIZE,
): DmaBuf {
  const data: CountedData = { memory: new SharedArrayBuffer(size), counters, id, dynamic };
  return DmaBuf.export({
    ops: countedOps(data, () => currentThread()),
    size,
    priv: data,
    expName: kind === 'shared' ? 'counted-shared' : 'counted',
    shared: kind === 'shared' ? { kind: COUNTED_KIND, data } : undefined,
  });
}

/** The counters of buffer `id`, as an object. */
export function readCounters(c: Int32Array, id: number): Record<string, number> {
  const b = id * CW;
  return {
    releases: Atomics.load(c, b + C_RELEASES),
    attached: Atomics.load(c, b + C_ATTACHED),
    maps: Atomics.load(c, b + C_MAPS),
    pins: Atomics.load(c, b + C_PINS),
    vmaps: Atomics.load(c, b + C_VMAPS),
    cpuBegin: Atomics.load(c, b + C_CPU_BEGIN),
    cpuEnd: Atomics.load(c, b + C_CPU_END),
    afterRelease: Atomics.load(c, b + C_AFTER_RELEASE),
  };
}
