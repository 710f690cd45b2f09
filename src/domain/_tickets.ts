/**
 * Tickets: the exactly-once claim of a reference that travels in a descriptor. Internal.
 *
 * A fence, reservation-object or ww-mutex descriptor carries one reference, to be consumed by
 * exactly one `fromShared`. A descriptor is a plain object, and `postMessage` clones it: posted
 * twice (to two workers, or twice to one), two copies would each consume the single reference,
 * and the second consumer's drop would free an object still in use. So `share` issues a ticket —
 * a record in the domain's `ticket` table naming the object (its table kind, slot and generation)
 * with a random nonce — and the descriptor names the ticket; `fromShared` claims it with one CAS,
 * which only one copy can win. The kernel gets the same from its file table: an fd passed over a
 * socket is installed once per receipt, each with its own reference. (Buffers have had tickets
 * from the start, in the handle table; see src/buf/dma-buf.ts.)
 *
 * Record (Int32 words): [0] LINK (allocator) [1] GEN (allocator) [2] KIND (0 = free or claimed)
 * [3] SLOT [4] GEN of the object [5] NONCE. A ticket never claimed (its descriptor was dropped,
 * or its receiver died first) keeps its record and its reference: the leak that the reference
 * alone was before.
 */

import type { SlotTable } from './_slots.js';
import { type Domain, onThreadExit } from './domain.js';

export const TK_FENCE = 1;
export const TK_RESV = 2;
export const TK_MUTEX = 3;

const W_KIND = 2;
const W_SLOT = 3;
const W_OGEN = 4;
const W_NONCE = 5;

/** What a descriptor carries to name its ticket. */
export interface TicketFields {
  /** Ticket slot. */
  k: number;
  /** Ticket slot generation. */
  kg: number;
  /** Nonce. */
  n: number;
}

/**
 * Issues a ticket for the reference the caller just took on `slot` (generation `gen`). ENOMEM
 * when the ticket table is full: the caller drops that reference.
 */
export function ticketIssue(d: Domain, kind: number, slot: number, gen: number): TicketFields {
  const t = d.tables.ticket;
  const k = t.alloc();
  const b = t.base(k);
  const n = ((Math.random() * 0x7fff_fffe) | 0) + 1;
  t.i32[b + W_SLOT] = slot;
  t.i32[b + W_OGEN] = gen;
  t.i32[b + W_NONCE] = n;
  Atomics.store(t.i32, b + W_KIND, kind);
  return { k, kg: t.gen(k), n };
}

/**
 * Claims the ticket a descriptor names, for an object of `kind` at `slot`/`gen`: true for the one
 * caller that wins it (the ticket is freed), false for a forged, stale or already-claimed one.
 * Malformed fields are false too.
 */
export function ticketClaim(
  d: Domain,
  kind: number,
  slot: number,
  gen: number,
  f: Partial<Record<keyof TicketFields, unknown>>,
): boolean {
  const { k, kg, n } = f;
  if (typeof k !== 'number' || typeof kg !== 'number' || typeof n !== 'number') return false;
  const t = d.tables.ticket;
  if (!t.isSlot(k) || t.gen(k) !== kg) return false;
  const b = t.base(k);
  if (
    Atomics.load(t.i32, b + W_KIND) !== kind ||
    t.i32[b + W_SLOT] !== slot ||
    t.i32[b + W_OGEN] !== gen ||
    t.i32[b + W_NONCE] !== n
  )
    return false;
  return claimRecord(d, t, k, kg, W_KIND, W_NONCE, n);
}

/**
 * The claim of a ticket record whose fields the caller has checked — this table's, and buffers'
 * tickets in the handle table (src/buf/dma-buf.ts): true for the one caller that wins it, which
 * frees the record (its kind word to 0). The claim is a CAS of the issue's nonce, not of the kind:
 * a kind CAS could not tell this issue from the next one of the same record (claimed, freed and
 * issued again while the caller was between its checks and its CAS), and would consume the new
 * ticket. A new issue has a new random nonce; should it draw the same one, the generation check
 * after the CAS catches it. The nonce becomes -thread: a thread killed before the free has the
 * record freed at its exit (the tables' exit hooks look for -thread).
 */
export function claimRecord(
  d: Domain,
  t: SlotTable,
  k: number,
  kg: number,
  kindWord: number,
  nonceWord: number,
  n: number,
): boolean {
  const b = t.base(k);
  const me = -d.thread;
  if (Atomics.compareExchange(t.i32, b + nonceWord, n, me) !== n) return false;
  if (t.gen(k) !== kg) {
    Atomics.compareExchange(t.i32, b + nonceWord, me, n); // not ours: give it back
    return false;
  }
  Atomics.store(t.i32, b + kindWord, 0);
  t.free(k);
  return true;
}

// A thread killed between a claim and its free leaves the ticket claimed (nonce -thread): free it.
onThreadExit(20, (d, thread) => {
  const t = d.tables.ticket;
  for (const k of t.allocated()) {
    const b = t.base(k);
    if (Atomics.load(t.i32, b + W_KIND) !== 0 && Atomics.load(t.i32, b + W_NONCE) === -thread) {
      Atomics.store(t.i32, b + W_KIND, 0);
      t.free(k);
    }
  }
});
