/**
 * A thread's reference journal: which shared references its views hold, so that the domain can
 * drop them when the thread exits. Internal.
 *
 * The kernel drops a process's references when its files are closed at exit. Here a thread's
 * views (a `DmaFence` view of a published fence, a `DmaResv` or `WwMutex` view of a shared record)
 * each hold one reference on a slot of a shared table, dropped when the view is done with it —
 * which a terminated worker never gets to do. So each view that holds such a reference writes one
 * word into its thread's journal, and clears it before it drops the reference; when the thread
 * exits, the thread that watched it drops every reference still written there (an exit hook of
 * the module that owns the table, {@link journalEntries}).
 *
 * Layout: a growable SharedArrayBuffer of Int32 words, made by the watching thread
 * ({@link createJournal}, carried in the worker's domain descriptor). A word is 0 (free) or
 * `(kind << KIND_SHIFT) | slot`. Only the journal's own thread writes it, with plain stores: the
 * watcher reads it only after the thread has terminated, and a thread's termination orders its
 * writes before the `exit` event that runs the hooks.
 *
 * Order of the steps, so that a thread killed at any instruction leaks a reference at worst,
 * never drops one twice: the reference is taken, then recorded; the record is cleared, then the
 * reference dropped.
 */

import type { SlotTable } from './_slots.js';

/** A fence-table slot (a `DmaFence` view's reference). */
export const J_FENCE = 1;
/** A resv-table record (a `DmaResv` or `WwMutex` view's reference). */
export const J_RECORD = 2;

const KIND_SHIFT = 28;
const SLOT_MASK = (1 << KIND_SHIFT) - 1;
const INITIAL_BYTES = 4096;
/** Room for one reference per slot of the fence and resv tables (2^20 each). */
const MAX_BYTES = 4 << 21;

/** A new, empty journal for a thread about to start. */
export function createJournal(): SharedArrayBuffer {
  return new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES });
}

/** Whether `sab` can be a journal (what a descriptor carries is checked before it is used). */
export function isJournal(sab: unknown): sab is SharedArrayBuffer {
  return (
    sab instanceof SharedArrayBuffer &&
    sab.growable &&
    sab.maxByteLength === MAX_BYTES &&
    sab.byteLength % 4 === 0
  );
}

/** The writing end, in the journal's own thread. */
export class RefJournal {
  readonly sab: SharedArrayBuffer;
  // A fixed-length view (V8 11 accesses length-tracking views of growable buffers ~8x slower),
  // re-made after each growth.
  private i32: Int32Array;
  private readonly freeWords: number[] = [];
  private used = 0;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab, 0, sab.byteLength >> 2);
  }

  /**
   * Records a reference just taken on `slot` of the table `kind`. Returns the word to pass to
   * {@link remove}, or -1 when the journal is full (the reference is then not dropped at exit).
   */
  add(kind: number, slot: number): number {
    let w = this.freeWords.pop();
    if (w === undefined) {
      if (this.used === this.i32.length && !this.grow()) return -1;
      w = this.used++;
    }
    this.i32[w] = (kind << KIND_SHIFT) | slot;
    return w;
  }

  /** Clears word `w` (from {@link add}; -1 is ignored), before its reference is dropped. */
  remove(w: number): void {
    if (w < 0) return;
    this.i32[w] = 0;
    this.freeWords.push(w);
  }

  /** Words in use (for tests). */
  get size(): number {
    return this.used - this.freeWords.length;
  }

  private grow(): boolean {
    const len = this.sab.byteLength;
    if (len >= MAX_BYTES) return false;
    try {
      this.sab.grow(Math.min(MAX_BYTES, len * 2));
    } catch {
      return false; // out of memory: this reference goes unrecorded (leaked if the thread dies)
    }
    this.i32 = new Int32Array(this.sab, 0, this.sab.byteLength >> 2);
    return true;
  }
}

/**
 * The references of `kind` recorded in a dead thread's journal, as slot numbers, each cleared as
 * it is returned (so that a second walk, or another module's, does not see it again).
 */
export function* journalEntries(sab: SharedArrayBuffer, kind: number): Generator<number> {
  const i32 = new Int32Array(sab, 0, sab.byteLength >> 2);
  for (let i = 0; i < i32.length; i++) {
    const v = i32[i]!;
    if (v !== 0 && v >>> KIND_SHIFT === kind) {
      i32[i] = 0;
      yield v & SLOT_MASK;
    }
  }
}

/**
 * For the exit hook of the module that owns `table`: drops with `put` every reference of `kind`
 * that a dead thread's journal (undefined: the thread had none) records on a slot of `table`.
 */
export function dropJournaled(
  journal: SharedArrayBuffer | undefined,
  kind: number,
  table: SlotTable,
  put: (slot: number) => void,
): void {
  if (journal === undefined) return;
  for (const slot of journalEntries(journal, kind)) if (table.isSlot(slot)) put(slot);
}
