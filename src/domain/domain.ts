/**
 * The domain: a main thread and its workers sharing dmabuf's registries in SharedArrayBuffers —
 * what "kernel memory shared by all CPUs" is to the kernel.
 *
 * Every thread that uses dmabuf belongs to exactly one domain. The first thread to use dmabuf
 * creates one ({@link Domain.current}); workers started with {@link Domain#spawn} (or given
 * {@link Domain#threadData} and watched with {@link Domain#watch}) join it automatically when they
 * load dmabuf. A thread is a small index into the domain's thread table; it is what the kernel
 * calls a task or a process: it owns handles, locks and fences, and when it exits the domain does
 * what process exit does in the kernel (see {@link onThreadExit}).
 *
 * Control block layout (Int32 words unless noted):
 * ```
 *  [0] MAGIC  [1] VERSION  [2] DOMAIN_ID  [3] pad
 *  i64[2] NEXT_CONTEXT   i64[3] NEXT_INODE   i64[4] NEXT_STAMP   i64[5] NEXT_TOKEN
 *  [64 + 4*t] thread t: STATE (0 free, 1 alive, 2 exiting), PARENT, INCARNATION, pad   t in 1..255
 *             (INCARNATION counts the index's allocations: it tells a reused index's thread
 *             from the dead one that had it before)
 * ```
 * Counters are only changed by atomic add; a thread's STATE word by CAS.
 */

import type { Worker, WorkerOptions } from 'node:worker_threads';
import { isMainThread, Worker as NodeWorker, workerData } from 'node:worker_threads';
import { DmaBufError, describe, fail } from '../errors.js';
import { warn } from '../trace.js';
import { createJournal, isJournal, RefJournal } from './_journal.js';
import { SlotTable } from './_slots.js';
import { StringTable } from './_strings.js';

const MAGIC = 0x444d4142; // 'DMAB'
const C_DOMAIN_ID = 2;
const C_NEXT_CONTEXT = 2; // i64 index
const C_NEXT_INODE = 3;
const C_NEXT_STAMP = 4;
const C_NEXT_TOKEN = 5;
const C_THREADS = 64;
export const MAX_THREADS = 256;
/** Bits of a thread's incarnation count in an owner id. */
const INC_MASK = (1 << 23) - 1;
const CONTROL_BYTES = (C_THREADS + 4 * MAX_THREADS) * 4;

export const THREAD_FREE = 0;
export const THREAD_ALIVE = 1;
export const THREAD_EXITING = 2;

/** The key under which a domain travels in a worker's `workerData`. */
export const WORKER_DATA_KEY = 'dmabufDomain';

/** Shape of one shared table owned by some module, declared in {@link TABLES}. */
interface TableSpec {
  magic: number;
  slotWords: number;
  initial: number;
  max: number;
  /** Word of a slot that holds the allocator's LINK (default 0). */
  linkWord?: number;
}

/**
 * Every shared table of a domain. A module that needs one adds it here; the domain creates them all
 * at once so that one descriptor carries every table to a new thread.
 */
export const TABLES = {
  // LINK on the second cache line, with the refcount: freeing touches only that line.
  fence: { magic: 0x46454e31, slotWords: 32, initial: 1024, max: 1 << 20, linkWord: 26 },
  resv: { magic: 0x52535632, slotWords: 24, initial: 1024, max: 1 << 20 },
  resvList: { magic: 0x524c5331, slotWords: 64, initial: 256, max: 1 << 18 },
  buf: { magic: 0x42554631, slotWords: 40, initial: 1024, max: 1 << 20 },
  attach: { magic: 0x41545431, slotWords: 16, initial: 1024, max: 1 << 20 },
  handle: { magic: 0x484e4431, slotWords: 8, initial: 1024, max: 1 << 21 },
  // Exactly-once claims of the references fence, resv and ww-mutex descriptors carry (_tickets.ts).
  ticket: { magic: 0x544b5431, slotWords: 8, initial: 1024, max: 1 << 21 },
} as const satisfies Record<string, TableSpec>;

export type TableName = keyof typeof TABLES;

/** A domain as it travels to another thread (structured-cloneable). */
export interface DomainDescriptor {
  kind: 'dmabuf-domain';
  id: number;
  thread: number;
  control: SharedArrayBuffer;
  strings: SharedArrayBuffer;
  tables: Record<TableName, SharedArrayBuffer>;
  /** The new thread's reference journal (see _journal.ts), kept by the thread that watches it. */
  journal?: SharedArrayBuffer;
}

/** Called when a thread of the domain has exited, in the thread that observed the exit. */
export type ThreadExitHook = (domain: Domain, thread: number) => void;

const exitHooks: { order: number; hook: ThreadExitHook }[] = [];

/**
 * Registers what a module does when a thread exits (put its handles, free its locks, signal its
 * pending fences with -ENOENT, …). Lower `order` runs first. Hooks must not throw; errors are
 * caught and reported on the `dmabuf:warning` channel.
 */
export function onThreadExit(order: number, hook: ThreadExitHook): void {
  if (typeof order !== 'number' || !Number.isFinite(order))
    fail('EINVAL', `onThreadExit order must be a finite number, got ${describe(order)}`);
  if (typeof hook !== 'function') fail('EINVAL', 'onThreadExit needs a function');
  exitHooks.push({ order, hook });
  exitHooks.sort((a, b) => a.order - b.order);
}

let current: Domain | undefined;

export class Domain {
  readonly id: number;
  /** This thread's index in the domain (1..255). */
  readonly thread: number;
  /** @internal The control block (header words and the thread table). */
  readonly control: Int32Array;
  /** @internal The control block's 64-bit counters. */
  readonly control64: BigInt64Array;
  /** @internal The shared string table (names of fences, buffers, timelines). */
  readonly strings: StringTable;
  /** @internal The shared slot tables, one per kind of object. */
  readonly tables: Record<TableName, SlotTable>;
  /**
   * @internal This thread's reference journal: the shared references its views hold, dropped by
   * the thread that watches it when it exits. Null in a thread nobody watches (the domain's
   * creator, a worker joined by hand).
   */
  readonly journal: RefJournal | null;
  /**
   * @internal This thread's owner id for lock words: `(thread << 23) | incarnation` (23 bits),
   * never the same as that of a dead thread that had the same index. See {@link isOwnerAlive}.
   */
  readonly ownerId: number;
  private readonly controlSab: SharedArrayBuffer;
  /** Journals of the threads this thread watches, by thread index. */
  private readonly journals = new Map<number, SharedArrayBuffer>();

  private constructor(
    controlSab: SharedArrayBuffer,
    strings: StringTable,
    tables: Record<TableName, SlotTable>,
    thread: number,
    journal: RefJournal | null,
  ) {
    this.journal = journal;
    this.controlSab = controlSab;
    this.control = new Int32Array(controlSab);
    this.control64 = new BigInt64Array(controlSab);
    this.strings = strings;
    this.tables = tables;
    this.thread = thread;
    this.id = this.control[C_DOMAIN_ID]!;
    this.ownerId =
      (thread << 23) | (Atomics.load(this.control, C_THREADS + 4 * thread + 2) & INC_MASK);
  }

  /** Creates a new domain whose first thread is the calling one. */
  static create(): Domain {
    const controlSab = new SharedArrayBuffer(CONTROL_BYTES);
    const c = new Int32Array(controlSab);
    const c64 = new BigInt64Array(controlSab);
    c[1] = 1;
    c[C_DOMAIN_ID] = (Math.random() * 0x7fff_fffe + 1) | 0;
    c64[C_NEXT_CONTEXT] = 1n; // context 0 is reserved for stubs
    c64[C_NEXT_INODE] = 1n;
    c64[C_NEXT_STAMP] = 1n;
    c64[C_NEXT_TOKEN] = 1n;
    c[C_THREADS + 4] = THREAD_ALIVE; // thread 1: the creator
    Atomics.store(c, 0, MAGIC);
    const tables = {} as Record<TableName, SlotTable>;
    for (const [name, spec] of Object.entries(TABLES) as [TableName, TableSpec][]) {
      tables[name] = SlotTable.create(
        spec.magic,
        spec.slotWords,
        spec.initial,
        spec.max,
        spec.linkWord,
      );
    }
    return new Domain(controlSab, StringTable.create(), tables, 1, null);
  }

  /** Joins the domain a descriptor describes, as the thread it names. */
  static join(desc: DomainDescriptor): Domain {
    if (desc === null || typeof desc !== 'object' || desc.kind !== 'dmabuf-domain') {
      fail('EINVAL', 'not a dmabuf domain descriptor');
    }
    if (!(desc.control instanceof SharedArrayBuffer) || desc.control.byteLength !== CONTROL_BYTES) {
      fail('EINVAL', 'domain descriptor has no control block');
    }
    const c = new Int32Array(desc.control);
    if (Atomics.load(c, 0) !== MAGIC || c[C_DOMAIN_ID] !== desc.id)
      fail('EINVAL', 'bad domain control block');
    const t = desc.thread;
    if (!Number.isInteger(t) || t < 1 || t >= MAX_THREADS) fail('EINVAL', 'bad thread index');
    if (Atomics.load(c, C_THREADS + 4 * t) !== THREAD_ALIVE)
      fail('EINVAL', `thread ${t} is not alive`);
    if (desc.journal !== undefined && !isJournal(desc.journal))
      fail('EINVAL', 'domain descriptor has a bad reference journal');
    const tables = {} as Record<TableName, SlotTable>;
    for (const [name, spec] of Object.entries(TABLES) as [TableName, TableSpec][]) {
      tables[name] = SlotTable.attach(desc.tables?.[name], spec.magic);
    }
    const journal = desc.journal === undefined ? null : new RefJournal(desc.journal);
    return new Domain(desc.control, StringTable.attach(desc.strings), tables, t, journal);
  }

  /**
   * This thread's domain: the one it joined, or (first call in a thread that joined none) a new one.
   */
  static current(): Domain {
    if (current === undefined) current = Domain.create();
    return current;
  }

  /** Makes `d` this thread's domain (for tests and for threads that join by hand). */
  static setCurrent(d: Domain): void {
    if (!(d instanceof Domain)) fail('EINVAL', `not a Domain: ${describe(d)}`);
    current = d;
  }

  /**
   * Whether an object or descriptor claiming domain id `id` belongs to this domain. EXDEV if not.
   * @internal
   */
  checkId(id: unknown): void {
    if (id !== this.id) throw new DmaBufError('EXDEV', 'object belongs to another dmabuf domain');
  }

  // ---- counters ----------------------------------------------------------------------------------

  /**
   * Reserves `n` consecutive fence contexts and returns the first (never 0, never reused).
   * @internal
   */
  allocContexts(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0 || n > 0xffff_ffff)
      fail('EINVAL', `allocContexts needs a positive 32-bit count, got ${describe(n)}`);
    return Number(Atomics.add(this.control64, C_NEXT_CONTEXT, BigInt(n)));
  }

  /** @internal A new unique, monotonic inode number for a buffer. */
  allocInode(): number {
    return Number(Atomics.add(this.control64, C_NEXT_INODE, 1n));
  }

  /** @internal A new acquire-context stamp (wait-die age: smaller is older). */
  allocStamp(): bigint {
    return Atomics.add(this.control64, C_NEXT_STAMP, 1n);
  }

  /**
   * A new domain-unique 31-bit token (lock owners). Wraps after 2^31 tokens, skipping 0.
   * @internal
   */
  allocToken(): number {
    for (;;) {
      const t = Number(Atomics.add(this.control64, C_NEXT_TOKEN, 1n) & 0x7fff_ffffn);
      if (t !== 0) return t;
    }
  }

  // ---- threads -----------------------------------------------------------------------------------

  /** @internal The state word of thread `t` (free, alive, exiting). */
  threadState(t: number): number {
    if (!Number.isInteger(t) || t < 1 || t >= MAX_THREADS) return THREAD_FREE;
    return Atomics.load(this.control, C_THREADS + 4 * t);
  }

  /** @internal Whether thread `t` of the domain is alive. */
  isThreadAlive(t: number): boolean {
    return this.threadState(t) === THREAD_ALIVE;
  }

  /**
   * @internal Whether the thread an {@link ownerId} names is still alive: the index is alive and
   * has not been handed to another thread since.
   */
  isOwnerAlive(id: number): boolean {
    if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0) return false;
    const t = id >>> 23;
    if (!this.isThreadAlive(t)) return false;
    return (Atomics.load(this.control, C_THREADS + 4 * t + 2) & INC_MASK) === (id & INC_MASK);
  }

  /** @internal Reserves a thread index for a worker about to start. */
  allocThread(): number {
    for (let t = 2; t < MAX_THREADS; t++) {
      const w = C_THREADS + 4 * t;
      if (Atomics.compareExchange(this.control, w, THREAD_FREE, THREAD_ALIVE) === THREAD_FREE) {
        Atomics.store(this.control, w + 1, this.thread);
        Atomics.add(this.control, w + 2, 1);
        return t;
      }
    }
    return fail('EAGAIN', `a domain holds at most ${MAX_THREADS - 1} threads`);
  }

  /** @internal The descriptor a new thread `t` joins with. */
  descriptor(t: number): DomainDescriptor {
    checkThread(t);
    const tables = {} as Record<TableName, SharedArrayBuffer>;
    for (const name of Object.keys(TABLES) as TableName[]) tables[name] = this.tables[name].sab;
    return {
      kind: 'dmabuf-domain',
      id: this.id,
      thread: t,
      control: this.controlSab,
      strings: this.strings.sab,
      tables,
    };
  }

  /**
   * `workerData` for a worker that will join this domain: reserves a thread index. Pass the result
   * (merged with your own fields) as `workerData`, then call {@link watch} with the worker.
   */
  threadData(extra: Record<string, unknown> = {}): Record<string, unknown> {
    if (extra === null || typeof extra !== 'object') fail('EINVAL', 'workerData must be an object');
    const desc = this.descriptor(this.allocThread());
    desc.journal = createJournal();
    this.journals.set(desc.thread, desc.journal);
    return { ...extra, [WORKER_DATA_KEY]: desc };
  }

  /**
   * @internal The reference journal of thread `t`, when this thread made its {@link threadData}
   * (exit hooks drop what it records); undefined otherwise.
   */
  journalOf(t: number): SharedArrayBuffer | undefined {
    return this.journals.get(t);
  }

  /** @internal Records a reference a view of this thread just took ({@link RefJournal#add}). */
  journalAdd(kind: number, slot: number): number {
    return this.journal === null ? -1 : this.journal.add(kind, slot);
  }

  /** @internal Clears a record before its reference is dropped ({@link RefJournal#remove}). */
  journalRemove(w: number): void {
    if (w >= 0 && this.journal !== null) this.journal.remove(w);
  }

  /**
   * Watches a worker started with {@link threadData}: when it exits, its resources are cleaned up
   * in this thread (handles put, locks freed, pending fences signaled with -ENOENT).
   */
  watch(worker: Worker, data: Record<string, unknown>): Worker {
    if (worker === null || typeof worker !== 'object' || typeof worker.once !== 'function')
      fail('EINVAL', `watch needs a Worker, got ${describe(worker)}`);
    const desc =
      data !== null && typeof data === 'object'
        ? (data[WORKER_DATA_KEY] as DomainDescriptor | undefined)
        : undefined;
    if (desc === null || typeof desc !== 'object' || desc.kind !== 'dmabuf-domain')
      fail('EINVAL', 'workerData was not made by Domain#threadData');
    checkThread(desc.thread);
    worker.once('exit', () => this.threadExited(desc.thread));
    return worker;
  }

  /** Starts a worker that joins this domain when it loads dmabuf. `workerData` must be an object. */
  spawn(filename: string | URL, options: WorkerOptions = {}): Worker {
    if (typeof filename !== 'string' && !(filename instanceof URL))
      fail('EINVAL', `spawn needs a file name or URL, got ${describe(filename)}`);
    if (options === null || typeof options !== 'object')
      fail('EINVAL', `spawn options must be an object, got ${describe(options)}`);
    const data = this.threadData((options.workerData as Record<string, unknown>) ?? {});
    let worker: Worker;
    try {
      worker = new NodeWorker(filename, { ...options, workerData: data });
    } catch (e) {
      this.threadExited((data[WORKER_DATA_KEY] as DomainDescriptor).thread);
      // Node rejects a bad path or bad options synchronously with its own TypeError/RangeError.
      if (e instanceof TypeError || e instanceof RangeError)
        throw new DmaBufError('EINVAL', `spawn: ${e.message}`, { cause: e });
      throw e;
    }
    return this.watch(worker, data);
  }

  /**
   * Runs the exit hooks for thread `t` and frees its index. Called by {@link watch}; tests may call
   * it to simulate a death. Idempotent.
   */
  threadExited(t: number): void {
    checkThread(t);
    const w = C_THREADS + 4 * t;
    if (Atomics.compareExchange(this.control, w, THREAD_ALIVE, THREAD_EXITING) !== THREAD_ALIVE)
      return;
    for (const { hook } of exitHooks) {
      try {
        hook(this, t);
      } catch (e) {
        warn(`dmabuf: thread-exit cleanup failed: ${String(e)}`);
      }
    }
    this.journals.delete(t);
    Atomics.store(this.control, w, THREAD_FREE);
  }
}

/** A thread index of the control block (1..MAX_THREADS-1), or EINVAL. */
function checkThread(t: unknown): asserts t is number {
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t >= MAX_THREADS)
    fail('EINVAL', `bad thread index ${describe(t)}`);
}

// A worker started by Domain#spawn joins its domain as soon as dmabuf is loaded there.
if (
  !isMainThread &&
  workerData !== null &&
  typeof workerData === 'object' &&
  WORKER_DATA_KEY in workerData
) {
  current = Domain.join((workerData as Record<string, DomainDescriptor>)[WORKER_DATA_KEY]!);
}
