/**
 * A map from slot numbers of a shared table to per-thread objects, backed by an array. Internal.
 *
 * Why not a `Map`: slots are reused LIFO, so the same key is added and deleted over and over. V8's
 * ordered hash tables keep deleted entries in their bucket chain until the next rehash, and with
 * many live entries (a large table) that rehash is far away: lookups of the churned key walk an
 * ever longer chain. Measured with 100k live buffers: export+put went from 7 µs to 175 µs. Slot
 * numbers are small and dense (bounded by the table's high-water mark), so an array indexed by
 * slot is both O(1) and compact.
 */

export class SlotMap<T> {
  private readonly items: (T | undefined)[] = [];
  private count = 0;

  get(slot: number): T | undefined {
    return this.items[slot];
  }

  set(slot: number, value: T): void {
    if (this.items[slot] === undefined) this.count++;
    this.items[slot] = value;
  }

  delete(slot: number): void {
    if (this.items[slot] !== undefined) {
      this.items[slot] = undefined;
      this.count--;
    }
  }

  get size(): number {
    return this.count;
  }

  /** The values, in slot order (a scan of the backing array: O(highest slot used)). */
  *values(): IterableIterator<T> {
    for (const v of this.items) if (v !== undefined) yield v;
  }
}
