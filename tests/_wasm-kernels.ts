/**
 * A tiny WebAssembly module for the WebAssembly heap's tests, assembled by hand (no toolchain):
 *
 * ```wat
 * (module
 *   (import "env" "memory" (memory 0 65536 shared))
 *   (func (export "fill") (param $p i32) (param $n i32) (param $v i32)
 *     (memory.fill (local.get $p) (local.get $v) (local.get $n)))
 *   (func (export "sum") (param $p i32) (param $n i32) (result i32)
 *     (local $s i32) (local $end i32)
 *     (local.set $end (i32.add (local.get $p) (local.get $n)))
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $p) (local.get $end)))
 *       (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $p))))
 *       (local.set $p (i32.add (local.get $p) (i32.const 1)))
 *       (br 0)))
 *     (local.get $s)))
 * ```
 * `fill(p, n, v)` sets bytes [p, p + n) to `v`; `sum(p, n)` adds them up.
 */
const HEX = `
  00 61 73 6d 01 00 00 00
  01 0d 02 60 03 7f 7f 7f 00 60 02 7f 7f 01 7f
  02 12 01 03 65 6e 76 06 6d 65 6d 6f 72 79 02 03 00 80 80 04
  03 03 02 00 01
  07 0e 02 04 66 69 6c 6c 00 00 03 73 75 6d 00 01
  0a 3b 02
  0b 00 20 00 20 02 20 01 fc 0b 00 0b
  2d 01 02 7f 20 00 20 01 6a 21 03 02 40 03 40 20 00 20 03 4f 0d 01 20 02 20 00 2d 00 00 6a
  21 02 20 00 41 01 6a 21 00 0c 00 0b 0b 20 02 0b`;

export const KERNELS_WASM = new Uint8Array(
  HEX.split(/\s+/)
    .filter((h) => h !== '')
    .map((h) => Number.parseInt(h, 16)),
);

export interface Kernels {
  fill(p: number, n: number, v: number): void;
  sum(p: number, n: number): number;
}

/** The module instantiated over `memory`. */
export function kernels(memory: WebAssembly.Memory): Kernels {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(KERNELS_WASM), { env: { memory } });
  return inst.exports as unknown as Kernels;
}
