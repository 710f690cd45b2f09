/**
 * The work each stage of the `pipeline` bench does to a frame, shared by every variant — the
 * baselines here and the dmabuf variant — so that they differ only in how frames move between
 * threads. Pure functions over a `Uint32Array` view of one frame (a plain or a shared buffer);
 * none allocates.
 *
 * A frame is `frameBytes` long, a multiple of {@link FRAME_ALIGN}. The stages touch one Uint32 per
 * 64-byte cache line, so every pass moves the whole frame through the cache, as real per-pixel
 * work would, while the arithmetic stays negligible:
 *
 * 1. producer — {@link fillFrame}: word `16k` := `pattern(frame, k)` (every cache line);
 * 2. stage 1 — {@link modifyFrame}: word `64j` ^= {@link MODIFY_XOR} (every 4th cache line, in
 *    place);
 * 3. stage 2 — {@link checksumFrame}: a checksum over words `16k` (every cache line);
 * 4. consumer — {@link verifyFrame}: every word `16k` equals what 1 and 2 must have produced for
 *    this frame number, and the checksum stage 2 computed matches.
 *
 * Words the producer does not write keep whatever the buffer held; nobody reads them. A stale
 * frame (a buffer still holding frame `n - K`) fails verification, because the pattern depends on
 * the frame number.
 */

/** Words between two words the producer writes: one Uint32 per 64-byte cache line. */
export const FILL_STRIDE = 16;
/** Words between two words stage 1 modifies: one Uint32 per 256 bytes. */
export const MODIFY_STRIDE = 64;
/** What stage 1 XORs into the words it modifies. */
export const MODIFY_XOR = 0x5a5a5a5a;
/** Frame sizes must be a multiple of this many bytes. */
export const FRAME_ALIGN = MODIFY_STRIDE * 4;

/** Per-frame seed of the pattern: differs for every frame number. */
function seed(frame: number): number {
  return Math.imul(frame + 1, 0x9e3779b1);
}

/** The value the producer writes into word `FILL_STRIDE * k` of frame `frame` (unsigned). */
export function patternWord(frame: number, k: number): number {
  return (seed(frame) + k) >>> 0;
}

/** Throws unless `frameBytes` is a positive multiple of {@link FRAME_ALIGN}. */
export function checkFrameBytes(frameBytes: number): number {
  if (!Number.isSafeInteger(frameBytes) || frameBytes <= 0 || frameBytes % FRAME_ALIGN !== 0) {
    throw new RangeError(
      `frame size must be a positive multiple of ${FRAME_ALIGN}, got ${frameBytes}`,
    );
  }
  return frameBytes;
}

/** Producer: writes frame `frame`'s pattern into `words`. */
export function fillFrame(words: Uint32Array, frame: number): void {
  const s = seed(frame);
  const n = words.length;
  for (let i = 0, k = 0; i < n; i += FILL_STRIDE, k++) words[i] = (s + k) | 0;
}

/** Stage 1: XORs every {@link MODIFY_STRIDE}-th word with {@link MODIFY_XOR}, in place. */
export function modifyFrame(words: Uint32Array): void {
  const n = words.length;
  for (let i = 0; i < n; i += MODIFY_STRIDE) words[i] = words[i]! ^ MODIFY_XOR;
}

/** Stage 2: a checksum (int32) over the words the producer wrote. */
export function checksumFrame(words: Uint32Array): number {
  const n = words.length;
  let sum = 0;
  for (let i = 0; i < n; i += FILL_STRIDE) sum = (Math.imul(sum, 31) + words[i]!) | 0;
  return sum;
}

/**
 * Consumer: true when `words` holds exactly what the producer and stage 1 make of frame `frame`,
 * and `checksum` is what stage 2 computes over that content.
 */
export function verifyFrame(words: Uint32Array, frame: number, checksum: number): boolean {
  const s = seed(frame);
  const n = words.length;
  const ratio = MODIFY_STRIDE / FILL_STRIDE;
  let sum = 0;
  let bad = 0;
  for (let i = 0, k = 0; i < n; i += FILL_STRIDE, k++) {
    const want = ((s + k) ^ (k % ratio === 0 ? MODIFY_XOR : 0)) >>> 0;
    if (words[i] !== want) bad++;
    sum = (Math.imul(sum, 31) + want) | 0;
  }
  return bad === 0 && sum === checksum;
}
