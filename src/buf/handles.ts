/**
 * Handles: the fds of dmabuf. Each thread has its own table of small integers (as each process has
 * its fd table), and an fd names a *file*: a buffer handle, a sync file, or any other kind a module
 * installs. Numbers start at 3 and the lowest free number is always used, as POSIX does.
 *
 * The table itself is thread-local (a Map). What another thread must be able to see — which
 * buffer references a thread holds, so that its exit can put them — is recorded in the domain's
 * `handle` table (see `_layout.ts`): one record per buffer fd, one per (thread, buffer) for plain
 * references, one per descriptor in flight (a *ticket*).
 *
 * All functions here are synchronous, never block, and may be called with any lock held.
 */

import type { Domain } from '../domain/domain.js';
import { checkFlags, describe, fail } from '../errors.js';
import { H_BUF_GEN, H_BUF_SLOT, H_FLAGS, H_KIND, H_THREAD, H_VALUE } from './_layout.js';
import { O_ACCMODE, O_CLOEXEC } from './uapi.js';

/** A file as the fd table sees it. */
export interface FileLike {
  /** 'dmabuf', 'sync_file', … — what `DmaBuf.get` checks (EINVAL for another kind). */
  readonly fileKind: string;
  /** Called once, when its fd is closed. */
  release(): void;
}

/** One fd: its file and its flags (O_CLOEXEC | O_ACCMODE). */
export interface FdEntry {
  readonly file: FileLike;
  readonly flags: number;
}

/** The first fd number handed out (0–2 are the standard streams in a process). */
export const FD_BASE = 3;

const fds = new Map<number, FdEntry>();
let lowestFree = FD_BASE;

/**
 * Installs `file` under the lowest free fd and returns it. EINVAL for something that is not a
 * file (a string `fileKind` and a `release` function) or flags outside O_CLOEXEC | O_ACCMODE.
 */
export function fdInstall(file: FileLike, flags: number): number {
  if (
    file === null ||
    typeof file !== 'object' ||
    typeof file.fileKind !== 'string' ||
    typeof file.release !== 'function'
  )
    fail('EINVAL', `fdInstall needs a file ({ fileKind, release }), got ${describe(file)}`);
  const f = checkFlags(flags, O_CLOEXEC | O_ACCMODE, 'fd flags');
  let fd = lowestFree;
  while (fds.has(fd)) fd++;
  fds.set(fd, { file, flags: f });
  lowestFree = fd + 1;
  return fd;
}

/** The entry of `fd`; EBADF when `fd` is not an open fd of this thread. */
export function fdLookup(fd: unknown): FdEntry {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0)
    fail('EBADF', `bad fd ${describe(fd)}`);
  const e = fds.get(fd);
  if (e === undefined) fail('EBADF', `fd ${fd} is not open in this thread`);
  return e;
}

/** `close(fd)`: removes it and releases its file. EBADF when not open. */
export function fdClose(fd: unknown): void {
  const e = fdLookup(fd);
  fds.delete(fd as number);
  if ((fd as number) < lowestFree) lowestFree = fd as number;
  e.file.release();
}

/** Number of open fds in this thread (diagnostics and tests). */
export function fdCount(): number {
  return fds.size;
}

// ---- shared handle records --------------------------------------------------------------------

/** Allocates a handle record owned by `thread` (0: nobody, for tickets). Returns its slot. */
export function recordAlloc(
  d: Domain,
  thread: number,
  kind: number,
  bufSlot: number,
  bufGen: number,
  value: number,
  flags: number,
): number {
  const t = d.tables.handle;
  const s = t.alloc();
  const b = t.base(s);
  t.i32[b + H_THREAD] = thread;
  t.i32[b + H_BUF_SLOT] = bufSlot;
  t.i32[b + H_BUF_GEN] = bufGen;
  t.i32[b + H_VALUE] = value;
  t.i32[b + H_FLAGS] = flags;
  Atomics.store(t.i32, b + H_KIND, kind);
  return s;
}

/** Frees a handle record. */
export function recordFree(d: Domain, slot: number): void {
  const t = d.tables.handle;
  Atomics.store(t.i32, t.base(slot) + H_KIND, 0);
  t.free(slot);
}

/** Adds `delta` to a record's VALUE word (a hold count); returns the new value. */
export function recordAdd(d: Domain, slot: number, delta: number): number {
  const t = d.tables.handle;
  return Atomics.add(t.i32, t.base(slot) + H_VALUE, delta) + delta;
}
