/**
 * Errors that speak errno.
 *
 * Every contract violation dmabuf reports is a {@link DmaBufError} with a stable symbolic `code`
 * (`'EINVAL'`) and the kernel's negative `errno` (`-22`). Expected outcomes — a fence that was
 * already signaled, a wait that timed out — are return values, never errors, as in the kernel.
 *
 * Errors that cross threads travel as `{ code, message }` ({@link serializeError}) and are rebuilt
 * on arrival ({@link deserializeError}).
 */

/** Linux generic errno values used by dmabuf (positive, as in `errno.h`). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EXDEV: 18,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ESPIPE: 29,
  EDEADLK: 35,
  ENODATA: 61,
  ETIME: 62,
  EOWNERDEAD: 130,
  EOVERFLOW: 75,
  ETIMEDOUT: 110,
  EALREADY: 114,
  ECANCELED: 125,
  ERESTARTSYS: 512,
} as const;

export type ErrnoCode = keyof typeof ERRNO;

/** The one error class of dmabuf. `errno` is negative, as kernel functions return it. */
export class DmaBufError extends Error {
  override readonly name = 'DmaBufError';
  readonly code: ErrnoCode;
  readonly errno: number;

  /**
   * A code dmabuf does not know becomes EIO (with the code named in the message), so that `errno`
   * is always a real errno; a message that is not a string is described rather than thrown on.
   */
  constructor(code: ErrnoCode, message: string, options?: { cause?: unknown }) {
    const known = typeof code === 'string' && Object.hasOwn(ERRNO, code);
    const text = typeof message === 'string' ? message : describe(message);
    super(
      known ? `${code}: ${text}` : `EIO: unknown error code ${describe(code)}: ${text}`,
      options,
    );
    this.code = known ? code : 'EIO';
    this.errno = -ERRNO[this.code];
  }
}

/** Throws a {@link DmaBufError}. Typed `never` so that it can end expressions. */
export function fail(code: ErrnoCode, message: string): never {
  throw new DmaBufError(code, message);
}

/** The symbolic code of a negative errno, or undefined for a value dmabuf does not know. */
export function codeOf(errno: number): ErrnoCode | undefined {
  if (typeof errno !== 'number') return undefined;
  const n = -errno;
  for (const k of Object.keys(ERRNO) as ErrnoCode[]) if (ERRNO[k] === n) return k;
  return undefined;
}

/** Wire form of an error crossing threads. */
export interface SerializedError {
  code: string;
  message: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof DmaBufError)
    return { code: e.code, message: e.message.slice(e.code.length + 2) };
  if (e instanceof Error) return { code: 'EIO', message: `${e.name}: ${e.message}` };
  return { code: 'EIO', message: describe(e) };
}

/**
 * Rebuilds an error sent with {@link serializeError}. An unknown code becomes EIO; a malformed wire
 * form (not an object, a message that is not a string) is rebuilt as EIO rather than thrown.
 */
export function deserializeError(s: SerializedError): DmaBufError {
  if (s === null || typeof s !== 'object')
    return new DmaBufError('EIO', `malformed error from another thread: ${describe(s)}`);
  const code = (
    typeof s.code === 'string' && Object.hasOwn(ERRNO, s.code) ? s.code : 'EIO'
  ) as ErrnoCode;
  return new DmaBufError(code, typeof s.message === 'string' ? s.message : describe(s.message));
}

// ---- validation helpers shared by every public entry point ------------------------------------

/** A non-negative safe integer, or EINVAL naming the parameter. */
export function checkUint(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail('EINVAL', `${what} must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

/** A flags word whose bits must all lie inside `valid`, or EINVAL. Accepts number or bigint. */
export function checkFlags(value: unknown, valid: number, what: string): number {
  if (typeof value === 'bigint') {
    if (value < 0n || value > 0xffff_ffffn || (Number(value) & ~valid) !== 0) {
      fail('EINVAL', `${what} has unknown bits: ${value}`);
    }
    return Number(value);
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    fail('EINVAL', `${what} must be an unsigned 32-bit integer, got ${describe(value)}`);
  }
  if ((value & ~valid) !== 0) fail('EINVAL', `${what} has unknown bits: 0x${value.toString(16)}`);
  return value;
}

/** Largest value a shared 64-bit time word holds (timestamps and deadlines, ns). */
const I64_MAX = 2n ** 63n - 1n;

/** Nanoseconds as a bigint that fits the shared signed 64-bit words (0 ≤ v < 2^63), or EINVAL. */
export function checkNs(value: unknown, what: string): bigint {
  if (typeof value !== 'bigint' || value < 0n || value > I64_MAX)
    fail('EINVAL', `${what} must be a bigint of nanoseconds in [0, 2^63), got ${describe(value)}`);
  return value;
}

/**
 * The `{ signal?: AbortSignal }` options of a call that may wait: omitted, or an object whose
 * `signal` is absent or an AbortSignal. EINVAL otherwise. Returns the signal.
 */
export function checkSignalOpts(opts: unknown, what: string): AbortSignal | undefined {
  if (opts === undefined) return undefined;
  if (opts === null || typeof opts !== 'object')
    fail('EINVAL', `${what}: options must be an object, got ${describe(opts)}`);
  const signal = (opts as { signal?: unknown }).signal;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    fail('EINVAL', `${what}: options.signal must be an AbortSignal, got ${describe(signal)}`);
  return signal;
}

/** Short, safe description of an arbitrary value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Object.prototype.toString.call(value);
}
