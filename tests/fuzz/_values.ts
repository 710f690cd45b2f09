/**
 * The bad-input catalogue of the fuzzer and the parameter kinds that judge it.
 *
 * A {@link Kind} says which values a parameter accepts (`valid`) and which error codes a rejected
 * value may produce (`codes`). The table-driven run passes every value of {@link JUNK} (plus the
 * kind's own extra bad values) to every parameter: a value the kind calls invalid must be rejected
 * with a `DmaBufError` of one of those codes; a valid one must give the documented outcome (a
 * return value, or one of the entry's expected codes). The generative run draws from the same
 * catalogue, from fast-check's `anything()`, and from the live objects of its world.
 */

import fc from 'fast-check';
import type { ErrnoCode } from '../../src/errors.js';
import {
  DmaBufAttachment,
  DmaBufMap,
  DmaBufMapping,
  DmaFence,
  DmaResv,
  SyncFile,
  WwAcquireCtx,
  WwClass,
} from '../../src/index.js';

/** One bad (or doubtful) value, made fresh for each use. */
export interface Junk {
  readonly label: string;
  make(): unknown;
}

const j = (label: string, make: () => unknown): Junk => ({ label, make });

/**
 * Values no API of a typed library should choke on: wrong types, the number edge cases (negative,
 * fractional, NaN, infinities, 2^53, 2^64), bigint where a number is expected and vice versa,
 * objects without a prototype (they cannot be turned into strings), symbols (they break template
 * literals) and look-alikes.
 */
export const JUNK: readonly Junk[] = [
  j('undefined', () => undefined),
  j('null', () => null),
  j('true', () => true),
  j('false', () => false),
  j("''", () => ''),
  j("'x'", () => 'x'),
  j("'3'", () => '3'),
  j("'\\0'", () => '\0'),
  j('long string', () => 'x'.repeat(300)),
  j('[]', () => []),
  j('[1]', () => [1]),
  j('{}', () => ({})),
  j('Object.create(null)', () => Object.create(null)),
  j('Symbol()', () => Symbol('fuzz')),
  j('function', () => () => 0),
  j('0n', () => 0n),
  j('1n', () => 1n),
  j('-1n', () => -1n),
  j('2n**64n', () => 2n ** 64n),
  j('2n**63n', () => 2n ** 63n),
  j('0', () => 0),
  j('-0', () => -0),
  j('1', () => 1),
  j('3', () => 3),
  j('-1', () => -1),
  j('0.5', () => 0.5),
  j('1.5', () => 1.5),
  j('NaN', () => Number.NaN),
  j('Infinity', () => Infinity),
  j('-Infinity', () => -Infinity),
  j('2**31', () => 2 ** 31),
  j('2**32', () => 2 ** 32),
  j('2**53', () => 2 ** 53),
  j('2**64', () => 2 ** 64),
  j('-(2**53)', () => -(2 ** 53)),
  j('MAX_VALUE', () => Number.MAX_VALUE),
  j('MIN_VALUE', () => Number.MIN_VALUE),
  j('{valueOf: 1}', () => ({ valueOf: () => 1 })),
  j('new Date(0)', () => new Date(0)),
  j('Uint8Array(8)', () => new Uint8Array(8)),
  j('SharedArrayBuffer(8)', () => new SharedArrayBuffer(8)),
  j('Promise', () => Promise.resolve(0)),
  j('Error', () => new Error('x')),
  j('Map', () => new Map()),
];

/** `fast-check` junk: arbitrary values of every shape (used by the generative run). */
export const anything: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...JUNK).map((x) => x.make()) },
  {
    weight: 2,
    arbitrary: fc.anything({
      withBigInt: true,
      withNullPrototype: true,
      withBoxedValues: true,
      withTypedArray: true,
      withSparseArray: true,
      withMap: true,
      withSet: true,
      withDate: true,
      maxDepth: 2,
    }),
  },
  { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 33 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 65n), max: 2n ** 65n }) },
);

// ---- kinds ------------------------------------------------------------------------------------

/** What one parameter accepts. */
export interface Kind {
  readonly name: string;
  /** Whether `v` is acceptable (a call with it must not fail *because of* this parameter). */
  valid(v: unknown): boolean;
  /** Codes a rejected value may produce. */
  readonly codes: readonly ErrnoCode[];
  /** Codes an accepted value may still produce (an fd number that is not open: EBADF). */
  readonly validCodes?: readonly ErrnoCode[];
}

const k = (name: string, codes: ErrnoCode[], valid: (v: unknown) => boolean): Kind => ({
  name,
  codes,
  valid,
});

const isUint = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The bit test the kernel's uAPI makes: a u32 word inside `mask` (number or bigint). */
export function flagsValid(v: unknown, mask: number): boolean {
  if (typeof v === 'bigint') return v >= 0n && v <= 0xffff_ffffn && (Number(v) & ~mask) === 0;
  return (
    typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff && (v & ~mask) === 0
  );
}

export const K = {
  /** A non-negative safe integer (sizes, offsets, counts). */
  uint: k('uint', ['EINVAL'], isUint),
  /** A non-negative integer that fits in 32 bits. */
  u32: k('u32', ['EINVAL'], (v) => isUint(v) && v <= 0xffff_ffff),
  /** A positive integer that fits in 32 bits (contextAlloc, reserveFences). */
  pos32: k('pos32', ['EINVAL'], (v) => isUint(v) && v > 0 && v <= 0xffff_ffff),
  /** A fence context or seqno: a non-negative safe integer. */
  seqno: k('seqno', ['EINVAL'], isUint),
  /** A timeout in ms: a number >= 0, Infinity allowed. */
  timeout: k('timeout', ['EINVAL'], (v) => typeof v === 'number' && !Number.isNaN(v) && v >= 0),
  /** Optional timeout (undefined = Infinity). */
  timeoutOpt: k(
    'timeout?',
    ['EINVAL'],
    (v) => v === undefined || (typeof v === 'number' && !Number.isNaN(v) && v >= 0),
  ),
  /** Nanoseconds as a bigint that fits the shared i64 words: 0 <= v < 2^63. */
  ns: k('ns', ['EINVAL'], (v) => typeof v === 'bigint' && v >= 0n && v < 2n ** 63n),
  /** A fence error: an integer in [-4095, -1]. */
  fenceError: k(
    'fenceError',
    ['EINVAL'],
    (v) => typeof v === 'number' && Number.isInteger(v) && v < 0 && v >= -4095,
  ),
  /** DmaResvUsage. */
  usage: k('usage', ['EINVAL'], (v) => v === 0 || v === 1 || v === 2 || v === 3),
  /** DMA direction (DMA_NONE excluded). */
  direction: k('direction', ['EINVAL'], (v) => v === 0 || v === 1 || v === 2),
  bool: k('bool', ['EINVAL'], (v) => typeof v === 'boolean'),
  boolOpt: k('bool?', ['EINVAL'], (v) => v === undefined || typeof v === 'boolean'),
  str: k('string', ['EINVAL'], (v) => typeof v === 'string'),
  strOpt: k('string?', ['EINVAL'], (v) => v === undefined || typeof v === 'string'),
  fn: k('function', ['EINVAL'], (v) => typeof v === 'function'),
  /** `{ signal?: AbortSignal }` (or omitted). */
  opts: k(
    'opts',
    ['EINVAL'],
    (v) =>
      v === undefined ||
      (v !== null &&
        typeof v === 'object' &&
        ((v as { signal?: unknown }).signal === undefined ||
          (v as { signal?: unknown }).signal instanceof AbortSignal)),
  ),
  fence: k('DmaFence', ['EINVAL'], (v) => v instanceof DmaFence),
  /** A fence that is not a container. */
  plainFence: k('plain DmaFence', ['EINVAL'], (v) => v instanceof DmaFence && !v.isContainer),
  fenceOrNull: k('DmaFence|null', ['EINVAL'], (v) => v === null || v instanceof DmaFence),
  syncFile: k('SyncFile', ['EINVAL'], (v) => v instanceof SyncFile && !v.closed),
  resv: k('DmaResv', ['EINVAL'], (v) => v instanceof DmaResv),
  ctx: k('WwAcquireCtx', ['EINVAL'], (v) => v instanceof WwAcquireCtx),
  ctxOrNull: k(
    'WwAcquireCtx|null',
    ['EINVAL'],
    (v) => v === null || v === undefined || v instanceof WwAcquireCtx,
  ),
  wwClass: k('WwClass', ['EINVAL'], (v) => v instanceof WwClass),
  wwClassOpt: k('WwClass?', ['EINVAL'], (v) => v === undefined || v instanceof WwClass),
  device: k(
    'device',
    ['EINVAL'],
    (v) =>
      v !== null &&
      (typeof v === 'object' || typeof v === 'function') &&
      typeof (v as { name?: unknown }).name === 'string',
  ),
  attachment: k('DmaBufAttachment', ['EINVAL'], (v) => v instanceof DmaBufAttachment),
  mapping: k('DmaBufMapping', ['EINVAL'], (v) => v instanceof DmaBufMapping),
  map: k('DmaBufMap', ['EINVAL'], (v) => v instanceof DmaBufMap),
  /** An fd number (whether it is open is the call's business: EBADF). */
  fd: {
    ...k('fd', ['EBADF', 'EINVAL'], (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0),
    validCodes: ['EBADF'],
  },
  fdOpt: {
    ...k(
      'fd?',
      ['EBADF', 'EINVAL'],
      (v) => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0),
    ),
    validCodes: ['EBADF'],
  },
  /** A plain object (info structs, options). */
  object: k('object', ['EINVAL'], (v) => v !== null && typeof v === 'object'),
  objectOpt: k(
    'object?',
    ['EINVAL'],
    (v) => v === undefined || (v !== null && typeof v === 'object'),
  ),
  /** Anything: the parameter accepts every value (a descriptor is judged by its own rows). */
  any: k('any', ['EINVAL', 'EBADF', 'EXDEV'], () => true),
  /** A descriptor: no junk value is one. */
  descriptor: k('descriptor', ['EINVAL', 'EBADF', 'EXDEV'], () => false),
} as const;

/** A flags word inside `mask` (number or bigint, u32). */
export function flagsKind(mask: number, codes: ErrnoCode[] = ['EINVAL']): Kind {
  return k(`flags&0x${mask.toString(16)}`, codes, (v) => flagsValid(v, mask));
}

/** Optional flags word. */
export function flagsOptKind(mask: number): Kind {
  return k(
    `flags?&0x${mask.toString(16)}`,
    ['EINVAL'],
    (v) => v === undefined || flagsValid(v, mask),
  );
}

/** A kind with other codes (e.g. setName's EFAULT for a non-string). */
export function withCodes(kind: Kind, codes: ErrnoCode[]): Kind {
  return { ...kind, codes };
}

/** A kind that also accepts `undefined` (an optional parameter with a default). */
export function optional(kind: Kind): Kind {
  return {
    name: `${kind.name}?`,
    codes: kind.codes,
    validCodes: kind.validCodes,
    valid: (v) => v === undefined || kind.valid(v),
  };
}

/** Describes a value for reports (never throws). */
export function show(v: unknown): string {
  try {
    if (typeof v === 'symbol') return v.toString();
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'string') return JSON.stringify(v.length > 24 ? `${v.slice(0, 24)}…` : v);
    if (typeof v === 'function') return 'function';
    if (v === null || typeof v !== 'object') return String(v);
    const tag = Object.prototype.toString.call(v);
    if (Array.isArray(v)) return `[${v.length} items]`;
    const proto = Object.getPrototypeOf(v);
    const ctor = proto === null ? 'null-proto' : (proto.constructor?.name ?? '?');
    return ctor === 'Object'
      ? `{${Object.keys(v).slice(0, 4).join(',')}}`
      : `${ctor}${tag === '[object Object]' ? '' : ''}`;
  } catch {
    return '<unprintable>';
  }
}
