/**
 * A table of fixed-size records in one growable SharedArrayBuffer, with lock-free allocation.
 * Internal: the fence table, the reservation table and the buffer table are SlotTables.
 *
 * ```
 *  header (64 bytes = 16 Int32 words)
 *  ┌───────┬─────────┬──────────┬──────┬───────┬──────────────┬───────────┬─────┐
 *  │ MAGIC │ VERSION │ SLOT_WDS │ HWM  │ (pad) │ FREE (i64)   │ LINK_WORD │ ... │
 *  │  [0]  │   [1]   │   [2]    │ [3]  │  [4]  │ [6..7]       │    [8]    │     │
 *  └───────┴─────────┴──────────┴──────┴───────┴──────────────┴───────────┴─────┘
 *  slot i (i ≥ 1) at Int32 index i * SLOT_WDS; slot 0 is the header and never handed out.
 *  Every slot: [1]         GEN  (incremented on every allocation; owned by this module)
 *              [LINK_WORD] LINK (-1 while allocated, else the next free slot; owned by this
 *                          module; word 0 unless the table puts it elsewhere, e.g. on a cache
 *                          line that freeing touches anyway)
 *              the rest    the user's words
 * ```
 *
 * Per-thread free chains: a thread frees into a private chain (linked through LINK, no shared
 * write besides LINK) and reuses it first for its own allocations, whose cache lines are then
 * still warm; when the chain reaches LOCAL_FREE_MAX slots it is spliced onto the shared free
 * list with one CAS. A thread that is killed loses its chain: at most LOCAL_FREE_MAX - 1 slots
 * per table, never handed out again (they are not allocated either, so no scan reports them).
 *
 * FREE is a tagged Treiber stack head: low 32 bits the first free slot (0 = empty), high 32 bits a
 * tag bumped on every pop and push, so a pop that raced with a pop/push pair fails its CAS instead
 * of corrupting the list (ABA). HWM is the bump allocator's high-water mark. Both are changed only
 * by CAS, so a thread terminated at any instruction leaves the table consistent (at worst one slot
 * leaks).
 *
 * Growth: when HWM reaches the capacity of the current byte length, the allocating thread grows
 * the buffer (doubling, bounded by maxByteLength). Views made without a length track the growth
 * in every thread.
 */

import { fail } from '../errors.js';

export const T_MAGIC = 0;
export const T_VERSION = 1;
export const T_SLOT_WORDS = 2;
export const T_HWM = 3;
const T_FREE64 = 3; // BigInt64 index of FREE (byte offset 24)
const T_LINK_WORD = 8;
export const HEADER_WORDS = 16;
/** Slots a thread keeps in its private free chain before giving them back to everyone. */
const LOCAL_FREE_MAX = 16;

export const S_GEN = 1;

const LOW32 = 0xffff_ffffn;

export class SlotTable {
  readonly sab: SharedArrayBuffer;
  /**
   * Views of the table. They have a fixed length (the byte length when they were made): V8 11
   * accesses length-tracking views of growable buffers ~8x slower. A slot index that came from
   * another thread may lie beyond them after a growth there: call {@link ensure} (or
   * {@link isSlot}) before touching it. {@link alloc} ensures its own slot.
   */
  i32: Int32Array;
  i64: BigInt64Array;
  f64: Float64Array;
  readonly slotWords: number;
  /** Word of a slot that holds LINK. */
  readonly linkWord: number;
  // This thread's private free chain: head slot (0 = empty), tail, length.
  private localHead = 0;
  private localTail = 0;
  private localCount = 0;

  private constructor(sab: SharedArrayBuffer, slotWords: number, linkWord: number) {
    this.sab = sab;
    this.slotWords = slotWords;
    this.linkWord = linkWord;
    this.i32 = this.i64 = this.f64 = undefined as never;
    this.refresh();
  }

  /** Re-makes the views over the buffer's current length. */
  refresh(): void {
    const len = this.sab.byteLength;
    this.i32 = new Int32Array(this.sab, 0, len >> 2);
    this.i64 = new BigInt64Array(this.sab, 0, len >> 3);
    this.f64 = new Float64Array(this.sab, 0, len >> 3);
  }

  /** Makes sure the views cover `slot` (refreshing them after another thread grew the table). */
  ensure(slot: number): void {
    if ((slot + 1) * this.slotWords > this.i32.length) this.refresh();
  }

  /**
   * Creates a table. `slotWords` must be even (8-byte alignment of 64-bit fields); `linkWord`
   * (default 0) is the word of each slot that holds LINK, anything but GEN (word 1).
   */
  static create(
    magic: number,
    slotWords: number,
    initialSlots: number,
    maxSlots: number,
    linkWord = 0,
  ): SlotTable {
    if (slotWords % 2 !== 0 || slotWords < HEADER_WORDS / 4)
      fail('EINVAL', 'slot size must be even');
    if (!Number.isInteger(linkWord) || linkWord < 0 || linkWord >= slotWords || linkWord === 1)
      fail('EINVAL', 'bad link word');
    const words = Math.max(slotWords, HEADER_WORDS);
    const first = words + initialSlots * slotWords;
    const max = words + maxSlots * slotWords;
    const sab = new SharedArrayBuffer(first * 4, { maxByteLength: max * 4 });
    const t = new SlotTable(sab, slotWords, linkWord);
    t.i32[T_SLOT_WORDS] = slotWords;
    t.i32[T_LINK_WORD] = linkWord;
    t.i32[T_HWM] = Math.ceil(words / slotWords); // first slot after the header
    t.i32[T_VERSION] = 1;
    Atomics.store(t.i32, T_MAGIC, magic);
    return t;
  }

  /** Attaches to a table made in another thread; checks its magic word. */
  static attach(sab: unknown, magic: number): SlotTable {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < HEADER_WORDS * 4 || !sab.growable) {
      fail('EINVAL', 'not a dmabuf shared table');
    }
    const i32 = new Int32Array(sab, 0, HEADER_WORDS);
    if (Atomics.load(i32, T_MAGIC) !== magic || i32[T_VERSION] !== 1) {
      fail('EINVAL', 'shared table has the wrong magic or version');
    }
    return new SlotTable(sab, i32[T_SLOT_WORDS]!, i32[T_LINK_WORD]!);
  }

  /** Int32 index of a slot's first word. */
  base(slot: number): number {
    return slot * this.slotWords;
  }

  /** Number of slots the current byte length holds (including the header slots). */
  get capacity(): number {
    return Math.floor(this.sab.byteLength / 4 / this.slotWords);
  }

  /** Slots handed out so far by the bump allocator (an upper bound for scans). */
  get highWater(): number {
    return Atomics.load(this.i32, T_HWM);
  }

  /** Whether `slot` is a slot index this table could have handed out. */
  isSlot(slot: unknown): slot is number {
    if (
      typeof slot !== 'number' ||
      !Number.isInteger(slot) ||
      slot <= 0 ||
      slot * this.slotWords < HEADER_WORDS ||
      slot >= this.highWater
    ) {
      return false;
    }
    this.ensure(slot);
    return true;
  }

  /**
   * Allocates a slot and returns its index. The user words are zeroed; GEN is bumped and can be
   * read with {@link gen}. Lock-free; may grow the buffer. Throws ENOMEM when the table is full.
   */
  alloc(): number {
    const mine = this.localHead;
    if (mine !== 0) {
      this.ensure(mine);
      this.localHead = Atomics.load(this.i32, this.base(mine) + this.linkWord);
      if (--this.localCount === 0) this.localTail = 0;
      this.prepare(mine);
      return mine;
    }
    for (;;) {
      const { i32, i64 } = this;
      const head = Atomics.load(i64, T_FREE64);
      const idx = Number(head & LOW32);
      if (idx !== 0) {
        if ((idx + 1) * this.slotWords > i32.length) {
          this.refresh();
          continue;
        }
        const next = Atomics.load(i32, this.base(idx) + this.linkWord);
        const tag = ((head >> 32n) + 1n) & 0x7fff_ffffn;
        if (Atomics.compareExchange(i64, T_FREE64, head, (tag << 32n) | BigInt(next)) === head) {
          this.ensure(idx);
          this.prepare(idx);
          return idx;
        }
        continue;
      }
      const hwm = Atomics.load(i32, T_HWM);
      if (hwm >= this.capacity) {
        this.grow(hwm + 1);
        continue;
      }
      if (Atomics.compareExchange(i32, T_HWM, hwm, hwm + 1) === hwm) {
        this.ensure(hwm);
        this.prepare(hwm);
        return hwm;
      }
    }
  }

  private prepare(slot: number): void {
    const b = this.base(slot);
    const i32 = this.i32;
    for (let i = b + 2, end = b + this.slotWords; i < end; i++) i32[i] = 0;
    i32[b] = 0;
    Atomics.store(this.i32, b + this.linkWord, -1);
    Atomics.add(this.i32, b + S_GEN, 1);
  }

  /**
   * Returns a slot to this thread's free chain (spliced onto the shared free list when it is
   * long enough). The caller guarantees nobody uses it any more.
   */
  free(slot: number): void {
    this.ensure(slot);
    Atomics.store(this.i32, this.base(slot) + this.linkWord, this.localHead);
    if (this.localCount++ === 0) this.localTail = slot;
    this.localHead = slot;
    if (this.localCount >= LOCAL_FREE_MAX) this.flushFree();
  }

  /** Gives this thread's free chain back to the shared free list (one CAS). */
  flushFree(): void {
    if (this.localHead === 0) return;
    const { i32, i64 } = this;
    const tail = this.base(this.localTail) + this.linkWord;
    const desired = BigInt(this.localHead);
    for (;;) {
      const head = Atomics.load(i64, T_FREE64);
      Atomics.store(i32, tail, Number(head & LOW32));
      const tag = ((head >> 32n) + 1n) & 0x7fff_ffffn;
      if (Atomics.compareExchange(i64, T_FREE64, head, (tag << 32n) | desired) === head) break;
    }
    this.localHead = this.localTail = this.localCount = 0;
  }

  /**
   * The slots allocated now, in index order from `from`: a scan up to the high-water mark, with
   * the views refreshed first. For exit cleanup, listing and inspection, not for hot paths. A
   * slot allocated or freed during the scan may or may not be seen.
   */
  *allocated(from = 1): Generator<number> {
    const hwm = this.highWater;
    if (hwm <= 1) return;
    this.ensure(hwm - 1);
    for (let s = Math.max(from, Math.ceil(HEADER_WORDS / this.slotWords)); s < hwm; s++) {
      if (this.isAllocated(s)) yield s;
    }
  }

  /** Whether the slot is currently allocated (not on the free list). */
  isAllocated(slot: number): boolean {
    return Atomics.load(this.i32, this.base(slot) + this.linkWord) === -1;
  }

  gen(slot: number): number {
    return Atomics.load(this.i32, this.base(slot) + S_GEN);
  }

  private grow(minSlots: number): void {
    const cap = this.capacity;
    if (minSlots <= cap) return;
    const maxBytes = this.sab.maxByteLength;
    let want = Math.min(maxBytes, Math.max(cap * 2, minSlots) * this.slotWords * 4);
    want -= want % 8;
    if (want < minSlots * this.slotWords * 4) fail('ENOMEM', 'shared table is full');
    try {
      if (this.sab.byteLength < want) this.sab.grow(want);
    } catch {
      // Another thread grew it first (grow() refuses to shrink), or the reservation is exhausted.
      if (this.capacity < minSlots) fail('ENOMEM', 'shared table could not grow');
    }
    this.refresh();
  }
}
