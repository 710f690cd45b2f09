/**
 * An append-only table of short strings in shared memory, so that names (fence driver and timeline
 * names, buffer exporter names) can be read by any thread of a domain. Internal.
 *
 * ```
 *  [0] MAGIC  [1] VERSION  [2] TAIL (byte offset of the next free byte)  [3] pad
 *  then entries: Int32 byte length, UTF-8 bytes, padded to 4 bytes.
 * ```
 * An id is an entry's byte offset (0 means "no string"). TAIL is bumped by CAS; the entry's bytes
 * are written before its id is published (by an atomic store elsewhere), so a reader never sees
 * a partial entry. Strings are truncated to {@link MAX_STRING_BYTES}. Each thread caches ids both
 * ways; two threads interning the same string may create two entries (harmless).
 */

import { fail } from '../errors.js';

const MAGIC = 0x53545231; // 'STR1'
const TAIL = 2;
const HEADER_BYTES = 16;
export const MAX_STRING_BYTES = 64;

const enc = new TextEncoder();
const dec = new TextDecoder();

export class StringTable {
  readonly sab: SharedArrayBuffer;
  // Fixed-length views (length-tracking ones are slow in V8 11), re-made after growth.
  private i32: Int32Array;
  private u8: Uint8Array;
  private readonly ids = new Map<string, number>();
  private readonly strs = new Map<number, string>();

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab, 0, sab.byteLength >> 2);
    this.u8 = new Uint8Array(sab, 0, sab.byteLength);
  }

  private refresh(): void {
    this.i32 = new Int32Array(this.sab, 0, this.sab.byteLength >> 2);
    this.u8 = new Uint8Array(this.sab, 0, this.sab.byteLength);
  }

  static create(initialBytes = 64 * 1024, maxBytes = 64 * 1024 * 1024): StringTable {
    const sab = new SharedArrayBuffer(initialBytes, { maxByteLength: maxBytes });
    const t = new StringTable(sab);
    t.i32[1] = 1;
    t.i32[TAIL] = HEADER_BYTES;
    Atomics.store(t.i32, 0, MAGIC);
    return t;
  }

  static attach(sab: unknown): StringTable {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < HEADER_BYTES)
      fail('EINVAL', 'not a string table');
    const t = new StringTable(sab);
    if (Atomics.load(t.i32, 0) !== MAGIC) fail('EINVAL', 'string table has the wrong magic');
    return t;
  }

  /** The id of `s`, appending it when this thread has not interned it yet. */
  intern(s: string): number {
    const cached = this.ids.get(s);
    if (cached !== undefined) return cached;
    let bytes = enc.encode(s);
    if (bytes.length > MAX_STRING_BYTES) bytes = bytes.subarray(0, MAX_STRING_BYTES);
    const size = 4 + ((bytes.length + 3) & ~3);
    let off: number;
    for (;;) {
      off = Atomics.load(this.i32, TAIL);
      const end = off + size;
      if (end > this.sab.byteLength) {
        try {
          this.sab.grow(Math.min(this.sab.maxByteLength, Math.max(end, this.sab.byteLength * 2)));
        } catch {
          if (end > this.sab.byteLength) fail('ENOMEM', 'string table is full');
        }
        continue;
      }
      if (Atomics.compareExchange(this.i32, TAIL, off, end) === off) break;
    }
    if (off + size > this.u8.length) this.refresh();
    this.u8.set(bytes, off + 4);
    Atomics.store(this.i32, off >> 2, bytes.length);
    const str = dec.decode(bytes);
    this.ids.set(s, off);
    this.strs.set(off, str);
    return off;
  }

  /** The string with id `id` ('' for 0 or an id that does not name an entry). */
  get(id: number): string {
    if (id === 0) return '';
    const cached = this.strs.get(id);
    if (cached !== undefined) return cached;
    if (id < HEADER_BYTES || id % 4 !== 0 || id >= Atomics.load(this.i32, TAIL)) return '';
    if (id + 4 + MAX_STRING_BYTES > this.u8.length) this.refresh();
    const len = Atomics.load(this.i32, id >> 2);
    if (len < 0 || len > MAX_STRING_BYTES) return '';
    // TextDecoder refuses views over shared memory: copy the few bytes out.
    const s = dec.decode(this.u8.slice(id + 4, id + 4 + len));
    this.strs.set(id, s);
    return s;
  }
}
