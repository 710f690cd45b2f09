/**
 * The WebAssembly heap: buffers carved out of one shared `WebAssembly.Memory`, so that WebAssembly
 * code reads and writes a buffer's bytes in place — in any worker that instantiates its module with
 * that memory — while JavaScript sees the same bytes through the buffer's mappings. No copy in or
 * out of the module's memory, and the buffer takes part in implicit sync like any other.
 *
 * A heap is one memory (made here with {@link WasmHeapOptions}, or one the caller made with
 * `shared: true`) and an allocator over its 4 KiB pages: a bitmap in a SharedArrayBuffer, changed
 * under a lock word, so that any thread can allocate (after {@link openWasmHeap}) and free (a
 * buffer's release runs in whichever thread drops its last reference). The memory grows, up to its
 * maximum, when no free run is large enough. Buffers are zeroed when allocated.
 *
 * {@link wasmHeapBuffer} gives a buffer's memory and byte offset: the pointer to pass to the
 * module. Like the system heap its ops are stateless and run in any thread (a shared exporter, kind
 * {@link WASM_HEAP_KIND}); the memory is CPU-coherent, so CPU access has nothing to flush.
 *
 * The lock word holds the holder's thread index: a thread killed while holding it is recognized
 * (its domain thread is no longer alive) and the lock taken over. Pages are marked used before a
 * buffer uses them and cleared after it is gone, so a death inside the lock leaks pages at worst.
 */

import { DmaBuf } from '../buf/dma-buf.js';
import {
  type DmaBufOps,
  type DmaBufSegment,
  registerSharedExporter,
  type SharedExporterBuffer,
} from '../buf/ops.js';
import { PAGE_SIZE } from '../buf/uapi.js';
import { Domain } from '../domain/domain.js';
import { checkUint, describe, fail } from '../errors.js';
import { memoryHeapOps } from './_memory-ops.js';
import { DmaHeap } from './dma-heap.js';

/** The shared-exporter kind of WebAssembly heap buffers. */
export const WASM_HEAP_KIND = 'dmabuf:wasm-heap';

/** Bytes per WebAssembly page. */
export const WASM_PAGE_SIZE = 65536;
/** Most WebAssembly pages a 32-bit memory can have (4 GiB). */
const MAX_WASM_PAGES = 65536;
const PAGES_PER_WASM_PAGE = WASM_PAGE_SIZE / PAGE_SIZE;

/** How to make a WebAssembly heap ({@link createWasmHeap}). */
export interface WasmHeapOptions {
  /** The heap's name in this thread's registry (as the system heap is 'system'). */
  name: string;
  /**
   * Its maximum size in WebAssembly pages of 64 KiB (1..65536): a shared memory must declare one.
   * With `memory`, the maximum that memory was made with.
   */
  maximumPages: number;
  /** Pages the memory starts with when made here (default 1). */
  initialPages?: number;
  /** A shared memory to carve buffers out of, instead of a new one. */
  memory?: WebAssembly.Memory;
  /**
   * Bytes at the start of the memory never handed out, for the module's own data and stack (a
   * PAGE_SIZE multiple, default 0).
   */
  reservedBytes?: number;
}

/** What another thread needs to allocate from the same heap ({@link openWasmHeap}). */
export interface WasmHeapDescriptor {
  t: 'wasm-heap';
  name: string;
  memory: WebAssembly.Memory;
  /** The allocator: lock word, then the page bitmap. */
  alloc: SharedArrayBuffer;
  maximumPages: number;
  reservedBytes: number;
}

/** A WebAssembly heap buffer's place in its memory ({@link wasmHeapBuffer}). */
export interface WasmHeapBuffer {
  readonly memory: WebAssembly.Memory;
  /** Byte offset of the buffer in the memory: the pointer WebAssembly code uses. */
  readonly offset: number;
  /** Bytes (a PAGE_SIZE multiple). */
  readonly size: number;
}

// Allocator words: [0] LOCK (0 free, else the holder's owner id: thread index and incarnation),
// [1] maximumPages, [2] reservedBytes (checked against what a descriptor claims), [3] the heap's
// id (random, non-zero), [4..15] pad, then one bit per 4 KiB page of the maximum size.
const A_LOCK = 0;
const A_MAX = 1;
const A_RESERVED = 2;
const A_ID = 3;
const A_BITS = 16;

// A buffer's exporter words (DmaBuf#exporterWords), written at export, so that a thread importing
// it checks its descriptor's data against them: [0] first page, [1] the heap's id (read from the
// allocator the descriptor names). Without them an altered offset, size or allocator would free
// other pages when the release runs in that thread (after the home thread died). The memory
// itself is not bound: another shared memory given with this heap's allocator is mapped as given,
// while the release still frees this buffer's own pages.
const X_PAGE = 0;
const X_HEAP = 1;

interface Arena {
  readonly memory: WebAssembly.Memory;
  readonly alloc: SharedArrayBuffer;
  readonly a32: Int32Array;
  readonly maximumPages: number;
  readonly reservedBytes: number;
}

/** A buffer's private data: its arena and place (what its descriptor carries). */
interface WasmPriv extends WasmHeapBuffer {
  readonly alloc: SharedArrayBuffer;
  readonly maximumPages: number;
  readonly reservedBytes: number;
}

function isSharedMemory(m: unknown): m is WebAssembly.Memory {
  return m instanceof WebAssembly.Memory && m.buffer instanceof SharedArrayBuffer;
}

function allocBytes(maximumPages: number): number {
  return (A_BITS + Math.ceil((maximumPages * PAGES_PER_WASM_PAGE) / 32)) * 4;
}

function arenaOf(
  memory: unknown,
  alloc: unknown,
  maximumPages: unknown,
  reservedBytes: unknown,
): Arena {
  if (!isSharedMemory(memory)) fail('EINVAL', 'not a shared WebAssembly.Memory');
  const max = checkUint(maximumPages, 'maximumPages');
  const reserved = checkUint(reservedBytes, 'reservedBytes');
  if (max < 1 || max > MAX_WASM_PAGES) fail('EINVAL', `maximumPages must be 1..${MAX_WASM_PAGES}`);
  if (reserved % PAGE_SIZE !== 0 || reserved >= max * WASM_PAGE_SIZE)
    fail('EINVAL', 'reservedBytes must be a PAGE_SIZE multiple below the maximum size');
  if (!(alloc instanceof SharedArrayBuffer) || alloc.byteLength !== allocBytes(max))
    fail('EINVAL', 'not a WebAssembly heap allocator');
  const a32 = new Int32Array(alloc);
  if (Atomics.load(a32, A_MAX) !== max || Atomics.load(a32, A_RESERVED) !== reserved)
    fail('EINVAL', 'the WebAssembly heap allocator was made for another size');
  return {
    memory,
    alloc,
    a32: new Int32Array(alloc),
    maximumPages: max,
    reservedBytes: reserved,
  };
}

// ---- the allocator ------------------------------------------------------------------------------

function lock(a: Arena): void {
  const d = Domain.current();
  const me = d.ownerId; // thread index and incarnation: a reused index is another owner
  for (let spins = 0; ; spins++) {
    const held = Atomics.compareExchange(a.a32, A_LOCK, 0, me);
    if (held === 0) return;
    if (held === me) fail('EDEADLK', 'WebAssembly heap lock already held by this thread');
    // A holder that died inside: take the lock over (it leaked pages at worst).
    if (!d.isOwnerAlive(held) && Atomics.compareExchange(a.a32, A_LOCK, held, me) === held) return;
    if (spins > 64) Atomics.wait(a.a32, A_LOCK, held, 1);
  }
}

function unlock(a: Arena): void {
  Atomics.store(a.a32, A_LOCK, 0);
  Atomics.notify(a.a32, A_LOCK, 1);
}

function used(a: Arena, page: number): boolean {
  return (a.a32[A_BITS + (page >>> 5)]! & (1 << (page & 31))) !== 0;
}

function mark(a: Arena, from: number, to: number, on: boolean): void {
  for (let p = from; p < to; p++) {
    const w = A_BITS + (p >>> 5);
    const bit = 1 << (p & 31);
    a.a32[w] = on ? a.a32[w]! | bit : a.a32[w]! & ~bit;
  }
}

/** First fit: the first run of `pages` free pages at or after the reserved ones, or -1. */
function findRun(a: Arena, pages: number): number {
  const total = a.maximumPages * PAGES_PER_WASM_PAGE;
  let run = 0;
  for (let p = a.reservedBytes / PAGE_SIZE; p < total; p++) {
    if (used(a, p)) run = 0;
    else if (++run === pages) return p - pages + 1;
  }
  return -1;
}

/** Takes `len` bytes (a PAGE_SIZE multiple) from the heap, growing the memory if needed. */
function take(a: Arena, len: number): number {
  const pages = len / PAGE_SIZE;
  lock(a);
  try {
    const first = findRun(a, pages);
    if (first < 0) fail('ENOMEM', `WebAssembly heap: no ${len} free bytes below its maximum`);
    const end = (first + pages) * PAGE_SIZE;
    // The memory's size now (another thread, or the module, may have grown it since this
    // thread's `buffer` was read): grow(0) returns it in pages.
    const have = a.memory.grow(0) * WASM_PAGE_SIZE;
    if (end > have) {
      try {
        a.memory.grow(Math.ceil((end - have) / WASM_PAGE_SIZE));
      } catch (e) {
        fail('ENOMEM', `WebAssembly heap: the memory cannot grow to ${end} bytes (${String(e)})`);
      }
    }
    mark(a, first, first + pages, true);
    return first * PAGE_SIZE;
  } finally {
    unlock(a);
  }
}

function give(a: Arena, offset: number, len: number): void {
  lock(a);
  try {
    mark(a, offset / PAGE_SIZE, (offset + len) / PAGE_SIZE, false);
  } finally {
    unlock(a);
  }
}

// ---- buffers ------------------------------------------------------------------------------------

function privOf(buf: DmaBuf): WasmPriv {
  return buf.priv as WasmPriv;
}

/** A fresh segment over the buffer's bytes [from, to), in the memory's current buffer. */
function segment(p: WasmPriv, from: number, to: number): DmaBufSegment[] {
  return [
    { memory: p.memory.buffer as SharedArrayBuffer, offset: p.offset + from, length: to - from },
  ];
}

/** The WebAssembly heap's buffer ops (stateless: usable from any thread). */
export const wasmHeapBufOps: DmaBufOps = memoryHeapOps(
  (buf, from, to) => segment(privOf(buf), from, to),
  (buf) => {
    const p = privOf(buf);
    give(arenaOf(p.memory, p.alloc, p.maximumPages, p.reservedBytes), p.offset, p.size);
  },
);

function checkPriv(x: unknown, buf: SharedExporterBuffer): WasmPriv {
  const p = x as WasmPriv;
  if (p === null || typeof p !== 'object') fail('EINVAL', 'not a WebAssembly heap buffer');
  const a = arenaOf(p.memory, p.alloc, p.maximumPages, p.reservedBytes);
  const offset = checkUint(p.offset, 'offset');
  const size = checkUint(p.size, 'size');
  if (
    offset % PAGE_SIZE !== 0 ||
    offset < a.reservedBytes ||
    size === 0 ||
    size % PAGE_SIZE !== 0 ||
    offset + size > a.maximumPages * WASM_PAGE_SIZE
  )
    fail('EINVAL', 'not a WebAssembly heap buffer');
  const words = buf.exporterWords;
  if (
    size !== buf.size ||
    Atomics.load(words, X_PAGE) !== offset / PAGE_SIZE ||
    Atomics.load(words, X_HEAP) !== Atomics.load(a.a32, A_ID)
  )
    fail('EINVAL', 'the WebAssembly heap data is not that of this buffer');
  return own(
    Object.freeze({
      memory: a.memory,
      alloc: a.alloc,
      maximumPages: a.maximumPages,
      reservedBytes: a.reservedBytes,
      offset,
      size,
    }),
  );
}

/** The private data of this module's buffers (in this thread), to tell them from others'. */
const privs = new WeakSet<WasmPriv>();

function own(p: WasmPriv): WasmPriv {
  privs.add(p);
  return p;
}

registerSharedExporter(WASM_HEAP_KIND, (data, buf) => ({
  ops: wasmHeapBufOps,
  priv: checkPriv(data, buf),
}));

const arenas = new WeakMap<DmaHeap, Arena>();

function register(name: unknown, a: Arena): DmaHeap {
  if (typeof name !== 'string' || name === '') fail('EINVAL', 'a WebAssembly heap needs a name');
  const heap = DmaHeap.add({
    name,
    ops: {
      allocate(_heap, len, fdFlags) {
        const offset = take(a, len);
        new Uint8Array(a.memory.buffer, offset, len).fill(0);
        const data = {
          memory: a.memory,
          alloc: a.alloc,
          maximumPages: a.maximumPages,
          reservedBytes: a.reservedBytes,
          offset,
          size: len,
        };
        let buf: DmaBuf;
        try {
          buf = DmaBuf.export({
            ops: wasmHeapBufOps,
            size: len,
            flags: fdFlags,
            priv: own(Object.freeze({ ...data })),
            expName: 'wasm',
            shared: { kind: WASM_HEAP_KIND, data },
          });
        } catch (e) {
          give(a, offset, len);
          throw e;
        }
        // Before anybody can have a descriptor of it (share is called on what this returns).
        const words = buf.exporterWords;
        Atomics.store(words, X_PAGE, offset / PAGE_SIZE);
        Atomics.store(words, X_HEAP, Atomics.load(a.a32, A_ID));
        return buf;
      },
    },
  });
  arenas.set(heap, a);
  return heap;
}

/**
 * Makes a WebAssembly heap and registers it in this thread as `name`. EINVAL for a bad option, a
 * memory that is not shared, or a name already registered; ENOMEM when the memory cannot be made.
 */
export function createWasmHeap(options: WasmHeapOptions): DmaHeap {
  if (options === null || typeof options !== 'object')
    fail('EINVAL', `createWasmHeap takes an object, got ${describe(options)}`);
  const { name, maximumPages, initialPages = 1, memory, reservedBytes = 0 } = options;
  if (typeof name !== 'string' || name === '') fail('EINVAL', 'a WebAssembly heap needs a name');
  if (DmaHeap.find(name) !== null) fail('EINVAL', `a heap named ${name} is already registered`);
  const max = checkUint(maximumPages, 'maximumPages');
  if (max < 1 || max > MAX_WASM_PAGES) fail('EINVAL', `maximumPages must be 1..${MAX_WASM_PAGES}`);
  let mem: WebAssembly.Memory;
  if (memory === undefined) {
    const initial = checkUint(initialPages, 'initialPages');
    if (initial > max) fail('EINVAL', 'initialPages is above maximumPages');
    try {
      mem = new WebAssembly.Memory({ initial, maximum: max, shared: true });
    } catch (e) {
      fail('ENOMEM', `cannot make a shared WebAssembly.Memory (${String(e)})`);
    }
  } else {
    if (!isSharedMemory(memory)) fail('EINVAL', 'memory must be a shared WebAssembly.Memory');
    if (memory.buffer.byteLength > max * WASM_PAGE_SIZE)
      fail('EINVAL', 'the memory is larger than maximumPages');
    mem = memory;
  }
  const alloc = new SharedArrayBuffer(allocBytes(max));
  const a32 = new Int32Array(alloc);
  a32[A_MAX] = max;
  a32[A_RESERVED] = typeof reservedBytes === 'number' ? reservedBytes : 0; // checked by arenaOf
  a32[A_ID] = (Math.random() * 0x7fffffff) | 1;
  return register(name, arenaOf(mem, alloc, max, reservedBytes));
}

/** What {@link openWasmHeap} needs in another thread. EINVAL for a heap that is not one. */
export function wasmHeapDescriptor(heap: DmaHeap): WasmHeapDescriptor {
  const a = heap instanceof DmaHeap ? arenas.get(heap) : undefined;
  if (a === undefined) fail('EINVAL', `not a WebAssembly heap: ${describe(heap)}`);
  return {
    t: 'wasm-heap',
    name: heap.name,
    memory: a.memory,
    alloc: a.alloc,
    maximumPages: a.maximumPages,
    reservedBytes: a.reservedBytes,
  };
}

/**
 * Registers, in this thread, the heap another thread made (same memory, same allocator), under
 * the same name. EINVAL for a malformed descriptor or a name already registered here.
 */
export function openWasmHeap(desc: WasmHeapDescriptor): DmaHeap {
  if (desc === null || typeof desc !== 'object' || desc.t !== 'wasm-heap')
    fail('EINVAL', 'not a WebAssembly heap descriptor');
  const a = arenaOf(desc.memory, desc.alloc, desc.maximumPages, desc.reservedBytes);
  if (typeof desc.name !== 'string' || desc.name === '')
    fail('EINVAL', 'a WebAssembly heap needs a name');
  if (DmaHeap.find(desc.name) !== null)
    fail('EINVAL', `a heap named ${desc.name} is already registered`);
  return register(desc.name, a);
}

/**
 * Where a WebAssembly heap buffer lives: its memory and byte offset (the pointer for the module)
 * and size. EINVAL for a buffer of another exporter.
 */
export function wasmHeapBuffer(buf: DmaBuf): WasmHeapBuffer {
  if (!(buf instanceof DmaBuf)) fail('EINVAL', `not a DmaBuf: ${describe(buf)}`);
  const p = buf.priv as WasmPriv;
  if (!privs.has(p)) fail('EINVAL', 'not a WebAssembly heap buffer');
  return { memory: p.memory, offset: p.offset, size: p.size };
}
