/**
 * Fixed-size C string fields of the kernel's uAPI structs (`char name[32]`) as JS strings. Internal.
 */

const enc = new TextEncoder();

/**
 * What a `char field[size]` holds after the kernel copied `s` into it with a terminating NUL: the
 * text up to the first NUL, cut to at most `size - 1` UTF-8 bytes. A cut never splits a code
 * point (the kernel's byte cut could; a JS string cannot hold half a character). Allocates only
 * when the string is long enough to need a cut.
 */
export function cString(s: string, size: number): string {
  const nul = s.indexOf('\0');
  if (nul >= 0) s = s.slice(0, nul);
  const max = size - 1;
  if (s.length <= max / 3) return s; // every UTF-16 unit encodes to at most 3 bytes
  if (enc.encode(s).length <= max) return s;
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return s.slice(0, end);
}
