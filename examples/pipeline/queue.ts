/**
 * The hand-off between two pipeline stages: a single-producer, single-consumer queue of *tickets*
 * in a SharedArrayBuffer. A ticket names a pool slot and carries three numbers (frame number,
 * producer start time, checksum): never frame bytes, which stay in the system heap's buffers.
 * Order between the stages' accesses to a frame comes from the fences in the buffer's reservation
 * object (implicit sync), not from this queue: the queue only says "frame k is in slot s".
 *
 * Why not `postMessage`: with more busy threads than cores, every message costs the sender a
 * wake-up of the receiver's event loop and the receiver a trip through it (about 100 µs per hop
 * measured on a 2-core VM); a stage blocked in `Atomics.wait` is woken by one `Atomics.notify`,
 * and only when it sleeps.
 *
 * Layout (Int32 words; head and tail on separate cache lines, one ticket per half cache line):
 * ```
 *  [0] MAGIC 'TQ01'   [1] VERSION 1   [2] CAPACITY        main thread, before any stage starts
 *  [16] TAIL          tickets pushed (mod 2^32)           the pushing stage: Atomics.store
 *  [17] TAIL_WAITERS  popper asleep on TAIL               the popping stage: Atomics.add/sub
 *  [32] HEAD          tickets popped                      the popping stage: Atomics.store
 *  [33] HEAD_WAITERS  pusher asleep on HEAD (queue full)  the pushing stage: Atomics.add/sub
 *  [48 + 8i ..]       ticket i: SLOT, FRAME, SUM, pad, T0 (Float64 at words +4..+5), pad, pad
 * ```
 * A ticket's words are plain stores by the pusher, written before its `Atomics.store` of TAIL; the
 * popper reads them only after an `Atomics.load` of TAIL returned that store, so it sees them
 * complete. The pusher reuses a ticket only after HEAD has moved past it, likewise.
 *
 * Waiting: spin `spin` times on the word (0 when there are more busy threads than cores: the
 * spinner would steal the core the other stage needs), then sleep in `Atomics.wait`. A waker
 * calls `Atomics.notify` only when the waiters word says somebody sleeps; all accesses to the
 * word and to the waiters count are sequentially consistent, so no wake-up is lost (see
 * bench/_spin-wait.ts for the argument).
 */

const MAGIC = 0x31305154; // 'TQ01'
const VERSION = 1;
const W_MAGIC = 0;
const W_VERSION = 1;
const W_CAPACITY = 2;
const W_TAIL = 16;
const W_TAIL_WAITERS = 17;
const W_HEAD = 32;
const W_HEAD_WAITERS = 33;
const W_TICKETS = 48;
const TICKET_WORDS = 8;
const T_SLOT = 0;
const T_FRAME = 1;
const T_SUM = 2;
const T_T0 = 4;

/** A ticket as the popping stage reads it (one object per queue, reused: pop allocates nothing). */
export interface Ticket {
  /** Pool slot holding the frame. */
  slot: number;
  /** Frame number. */
  frame: number;
  /** Producer's start time (`nowNs()`). */
  t0: number;
  /** The deriving stage's checksum (0 before it). */
  sum: number;
}

/** Bytes of the SharedArrayBuffer for a queue of `capacity` tickets. */
export function queueBytes(capacity: number): number {
  return (W_TICKETS + capacity * TICKET_WORDS) * 4;
}

/** Makes the shared memory of a queue (main thread, before the stages start). */
export function createQueue(capacity: number): SharedArrayBuffer {
  if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 1 << 20)
    throw new RangeError(`queue capacity must be 1..2^20, got ${capacity}`);
  const sab = new SharedArrayBuffer(queueBytes(capacity));
  const i32 = new Int32Array(sab);
  i32[W_MAGIC] = MAGIC;
  i32[W_VERSION] = VERSION;
  i32[W_CAPACITY] = capacity;
  return sab;
}

/** One end's view of a queue. Each queue has one pushing and one popping thread. */
export class TicketQueue {
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #capacity: number;
  readonly #spin: number;
  /** Cached copies of the words this end writes (it is their only writer). */
  #tail: number;
  #head: number;
  /** Ticket index of the next push / pop (0..capacity-1; the counters wrap at 2^32, these never). */
  #tailAt: number;
  #headAt: number;

  constructor(sab: SharedArrayBuffer, spin: number) {
    const i32 = new Int32Array(sab);
    if (i32[W_MAGIC] !== MAGIC || i32[W_VERSION] !== VERSION)
      throw new TypeError('not a ticket queue (bad magic or version)');
    this.#i32 = i32;
    this.#f64 = new Float64Array(sab);
    this.#capacity = i32[W_CAPACITY]!;
    if (sab.byteLength < queueBytes(this.#capacity)) throw new TypeError('ticket queue too short');
    this.#spin = spin;
    this.#tail = Atomics.load(i32, W_TAIL);
    this.#head = Atomics.load(i32, W_HEAD);
    // Exact while fewer than 2^32 tickets went through before this end attached (the pipeline's
    // ends attach before the first ticket).
    this.#tailAt = (this.#tail >>> 0) % this.#capacity;
    this.#headAt = (this.#head >>> 0) % this.#capacity;
  }

  /** Pusher: appends a ticket, blocking while the queue is full. Allocates nothing. */
  push(slot: number, frame: number, t0: number, sum: number): void {
    const i32 = this.#i32;
    const tail = this.#tail;
    // Full when tail - head === capacity (mod 2^32).
    let head = Atomics.load(i32, W_HEAD);
    while (((tail - head) | 0) >= this.#capacity) {
      this.#wait(W_HEAD, head, W_HEAD_WAITERS);
      head = Atomics.load(i32, W_HEAD);
    }
    const b = W_TICKETS + this.#tailAt * TICKET_WORDS;
    this.#tailAt = this.#tailAt + 1 === this.#capacity ? 0 : this.#tailAt + 1;
    i32[b + T_SLOT] = slot;
    i32[b + T_FRAME] = frame;
    i32[b + T_SUM] = sum;
    this.#f64[(b + T_T0) >> 1] = t0;
    this.#tail = (tail + 1) | 0;
    Atomics.store(i32, W_TAIL, this.#tail);
    if (Atomics.load(i32, W_TAIL_WAITERS) !== 0) Atomics.notify(i32, W_TAIL);
  }

  /** Popper: takes the oldest ticket into `into`, blocking while the queue is empty. */
  pop(into: Ticket): Ticket {
    const i32 = this.#i32;
    const head = this.#head;
    let tail = Atomics.load(i32, W_TAIL);
    while (tail === head) {
      this.#wait(W_TAIL, tail, W_TAIL_WAITERS);
      tail = Atomics.load(i32, W_TAIL);
    }
    const b = W_TICKETS + this.#headAt * TICKET_WORDS;
    this.#headAt = this.#headAt + 1 === this.#capacity ? 0 : this.#headAt + 1;
    into.slot = i32[b + T_SLOT]!;
    into.frame = i32[b + T_FRAME]!;
    into.sum = i32[b + T_SUM]!;
    into.t0 = this.#f64[(b + T_T0) >> 1]!;
    this.#head = (head + 1) | 0;
    Atomics.store(i32, W_HEAD, this.#head);
    if (Atomics.load(i32, W_HEAD_WAITERS) !== 0) Atomics.notify(i32, W_HEAD);
    return into;
  }

  /** Spins, then sleeps, while `i32[word] === seen`. */
  #wait(word: number, seen: number, waiters: number): void {
    const i32 = this.#i32;
    for (let k = 0; k < this.#spin; k++) if (Atomics.load(i32, word) !== seen) return;
    Atomics.add(i32, waiters, 1);
    Atomics.wait(i32, word, seen);
    Atomics.sub(i32, waiters, 1);
  }
}

/** A ticket to pop into. */
export function newTicket(): Ticket {
  return { slot: 0, frame: 0, t0: 0, sum: 0 };
}
