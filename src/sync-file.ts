/**
 * SyncFile: explicit synchronization — the kernel's `struct sync_file`, an object that wraps one
 * fence (possibly a container) so that it can be handed around, merged, inspected and waited on.
 *
 * ## Contract
 * - {@link SyncFile.create} wraps a fence; {@link SyncFile.merge} makes a new sync file whose fence
 *   signals when both inputs' have (`unwrapMerge`); both inputs stay valid.
 * - {@link SyncFile#info} is `SYNC_IOC_FILE_INFO`: with `numFences` 0 it reports only the count of
 *   unwrapped fences and the status of the whole fence; otherwise one entry per unwrapped fence
 *   and, as status, the first non-positive entry status (else 1). A `numFences` smaller than the
 *   count, or non-zero `flags`/`pad`, is EINVAL.
 * - {@link SyncFile#poll} is ready once the fence has signaled, with or without an error.
 * - Names are the kernel's 32-byte fields: at most 31 UTF-8 bytes.
 * - Everything is synchronous except {@link SyncFile#wait} (a Promise); {@link SyncFile#waitSync}
 *   blocks and is for workers. A sync file that was put ({@link SyncFile#put}, `using`) is closed:
 *   using it is EBADF, as with a closed fd.
 *
 * ## Across threads
 * {@link SyncFile#share} returns a descriptor (the fence's descriptor and the merge name) to post
 * to another thread of the domain, where {@link SyncFile.fromShared} makes a sync file over the
 * same fence. Either side may wait; whoever signals the fence wakes both.
 */

import { cString } from './_cstring.js';
import { Domain } from './domain/domain.js';
import { checkUint, describe, fail } from './errors.js';
import { DmaFence, type DmaFenceCb, type FenceDescriptor } from './fence/fence.js';
import { unwrapFences, unwrapMerge } from './fence/fence-unwrap.js';

/** `SYNC_IOC_MAGIC`: the ioctl type of sync files, `'>'`. Opcodes 0–2 are burned. */
export const SYNC_IOC_MAGIC = 0x3e;
/** `SYNC_IOC_MERGE` = `_IOWR('>', 3, struct sync_merge_data)`; behaviour: {@link SyncFile.merge}. */
export const SYNC_IOC_MERGE = 0xc0303e03;
/** `SYNC_IOC_FILE_INFO` = `_IOWR('>', 4, struct sync_file_info)`; behaviour: {@link SyncFile#info}. */
export const SYNC_IOC_FILE_INFO = 0xc0383e04;
/** `SYNC_IOC_SET_DEADLINE` = `_IOW('>', 5, struct sync_set_deadline)`; {@link SyncFile#setDeadline}. */
export const SYNC_IOC_SET_DEADLINE = 0x40103e05;

/** Size of the name fields of the sync-file uAPI, NUL included. */
const NAME_LEN = 32;

/** `struct sync_fence_info`: one unwrapped fence. */
export interface SyncFenceInfo {
  /** The timeline name (`obj_name`). */
  objName: string;
  driverName: string;
  /** 1 signaled, 0 active, a negative errno when it signaled with an error. */
  status: number;
  /** Always 0. */
  flags: number;
  /** Signal time (ns, monotonic); 0n while active. */
  timestampNs: bigint;
}

/** `struct sync_file_info`: the result of {@link SyncFile#info}. */
export interface SyncFileInfo {
  name: string;
  /** 1 signaled, 0 active, or a negative errno (see {@link SyncFile#info}). */
  status: number;
  /** Always 0. */
  flags: number;
  /** Number of unwrapped fences. */
  numFences: number;
  /** One entry per unwrapped fence; absent when `numFences` 0 was asked for. */
  fences?: SyncFenceInfo[];
}

/** Input of {@link SyncFile#info}, the writable fields of `struct sync_file_info`. */
export interface SyncFileInfoRequest {
  /** 0: only count; otherwise room for at least that many entries. */
  numFences?: number;
  /** Must be 0. */
  flags?: number;
  /** Must be 0. */
  pad?: number;
}

/** How a sync file travels to another thread of the domain (structured-cloneable). */
export type SyncFileDescriptor = {
  t: 'sync_file';
  d: number;
  /** The fence; carries its references. */
  f: FenceDescriptor;
  /** The name given to merge ('' for none). */
  n: string;
};

export class SyncFile {
  readonly #fence: DmaFence;
  /** `user_name`: set by merge, '' otherwise. */
  readonly #userName: string;
  #closed = false;
  /** The poll callback, armed by the first {@link SyncFile#poll}. */
  #pollCb: DmaFenceCb | null = null;
  #pollEnabled = false;

  private constructor(fence: DmaFence, userName: string) {
    this.#fence = fence;
    this.#userName = userName;
  }

  /** `sync_file_create`: a sync file wrapping `fence`. EINVAL if it is not a DmaFence. */
  static create(fence: DmaFence): SyncFile {
    if (!(fence instanceof DmaFence))
      fail('EINVAL', `a sync file wraps a DmaFence, got ${describe(fence)}`);
    return new SyncFile(fence, '');
  }

  /**
   * `SYNC_IOC_MERGE`: a new sync file whose fence signals when the fences of `a` and `b` have
   * both signaled (`unwrapMerge(a.fence, b.fence)`), named `name` (cut to 31 bytes; an empty name
   * means "derive it from the fence"). Merging a file with itself is fine. `name` not a string or
   * `a` not a sync file: EINVAL; `b` not an open sync file: ENOENT (the kernel's answer for a bad
   * `fd2`); `a` closed: EBADF.
   */
  static merge(name: string, a: SyncFile, b: SyncFile): SyncFile {
    if (typeof name !== 'string') fail('EINVAL', 'merge name must be a string');
    if (!(a instanceof SyncFile)) fail('EINVAL', `not a sync file: ${describe(a)}`);
    a.#checkOpen();
    if (!(b instanceof SyncFile) || b.#closed)
      fail('ENOENT', `merge needs a second open sync file, got ${describe(b)}`);
    return new SyncFile(unwrapMerge(a.#fence, b.#fence), cString(name, NAME_LEN));
  }

  /**
   * A sync file over the fence a {@link SyncFile#share} descriptor carries, made in any thread of
   * this domain. Consumes the descriptor's references (use it once). EINVAL for a malformed
   * descriptor, EXDEV for another domain's, EBADF for a stale one.
   */
  static fromShared(desc: SyncFileDescriptor): SyncFile {
    if (desc === null || typeof desc !== 'object' || desc.t !== 'sync_file')
      fail('EINVAL', 'not a sync file descriptor');
    Domain.current().checkId(desc.d);
    if (typeof desc.n !== 'string') fail('EINVAL', 'bad sync file descriptor name');
    return new SyncFile(DmaFence.fromShared(desc.f), cString(desc.n, NAME_LEN));
  }

  /** The wrapped fence. */
  get fence(): DmaFence {
    this.#checkOpen();
    return this.#fence;
  }

  /** `sync_file_get_fence`: the wrapped fence. */
  getFence(): DmaFence {
    return this.fence;
  }

  /** Whether the sync file was put (closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * `sync_file_get_name`: the name given to merge, or else `driver-timeline<context>-<seqno>` of
   * the fence, cut to 31 bytes.
   */
  get name(): string {
    this.#checkOpen();
    if (this.#userName !== '') return this.#userName;
    const f = this.#fence;
    return cString(`${f.driverName}-${f.timelineName}${f.context}-${f.seqno}`, NAME_LEN);
  }

  /**
   * `SYNC_IOC_FILE_INFO` (see the module contract). The answer is a snapshot: fences may signal
   * right after they were looked at, never the other way round. Allocates the result.
   */
  info(req: SyncFileInfoRequest = {}): SyncFileInfo {
    this.#checkOpen();
    if (req === null || typeof req !== 'object') fail('EINVAL', 'info() takes an options object');
    const { numFences = 0, flags = 0, pad = 0 } = req;
    if (checkUint(flags, 'flags') !== 0) fail('EINVAL', 'sync file info flags must be 0');
    if (checkUint(pad, 'pad') !== 0) fail('EINVAL', 'sync file info pad must be 0');
    if (checkUint(numFences, 'numFences') > 0xffff_ffff)
      fail('EINVAL', 'numFences must be a 32-bit count');
    const members = [...unwrapFences(this.#fence)];
    if (numFences === 0) {
      return {
        name: this.name,
        status: this.#fence.getStatus(),
        flags: 0,
        numFences: members.length,
      };
    }
    if (numFences < members.length)
      fail('EINVAL', `numFences ${numFences} is less than the ${members.length} fences`);
    let status = 1;
    const fences = members.map((f): SyncFenceInfo => {
      const st = f.getStatus();
      if (status > 0) status = st;
      return {
        objName: cString(f.timelineName, NAME_LEN),
        driverName: cString(f.driverName, NAME_LEN),
        status: st,
        flags: 0,
        timestampNs: st !== 0 ? f.timestamp : 0n,
      };
    });
    return { name: this.name, status, flags: 0, numFences: members.length, fences };
  }

  /**
   * `poll(POLLIN)`: whether the fence has signaled (an error counts as signaled). The first call
   * enables signaling by arming a callback, as the kernel's poll does. Synchronous, never blocks.
   */
  poll(): boolean {
    this.#checkOpen();
    if (!this.#pollEnabled) {
      this.#pollEnabled = true;
      this.#pollCb = this.#fence.addCallback(() => {
        this.#pollCb = null;
      });
    }
    return this.#fence.isSignaled();
  }

  /**
   * Waits until the fence signals: resolves with the time left in ms (`Infinity` for no timeout),
   * 0 on timeout, and for `timeoutMs` 0 with 1 (signaled) or 0 — {@link DmaFence#waitTimeout}'s
   * rules. Rejects ERESTARTSYS when `signal` aborts.
   */
  wait(timeoutMs = Infinity, opts: { signal?: AbortSignal } = {}): Promise<number> {
    this.#checkOpen();
    return this.#fence.waitTimeout(timeoutMs, opts);
  }

  /** Blocking {@link SyncFile#wait}, for workers. EPERM where blocking is not allowed. */
  waitSync(timeoutMs = Infinity): number {
    this.#checkOpen();
    return this.#fence.waitTimeoutSync(timeoutMs);
  }

  /**
   * `SYNC_IOC_SET_DEADLINE`: asks the fence (for containers: every member) to signal by
   * `deadlineNs` (absolute, monotonic). A non-zero `pad` is EINVAL.
   */
  setDeadline(deadlineNs: bigint, pad: bigint | number = 0n): void {
    this.#checkOpen();
    if ((typeof pad !== 'bigint' && typeof pad !== 'number') || (pad !== 0n && pad !== 0))
      fail('EINVAL', 'sync file deadline pad must be 0');
    this.#fence.setDeadline(deadlineNs);
  }

  /**
   * A descriptor to post to another thread of the domain ({@link SyncFile.fromShared}). Publishes
   * the fence; the descriptor carries one reference per pending fence in it.
   */
  share(): SyncFileDescriptor {
    this.#checkOpen();
    return { t: 'sync_file', d: Domain.current().id, f: this.#fence.share(), n: this.#userName };
  }

  /**
   * Closes the sync file (`sync_file_release`): removes the poll callback. Idempotent. The fence is
   * not disposed; other holders keep using it.
   */
  put(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pollCb !== null) this.#fence.removeCallback(this.#pollCb);
    this.#pollCb = null;
  }

  [Symbol.dispose](): void {
    this.put();
  }

  toString(): string {
    return this.#closed ? 'SyncFile(closed)' : `SyncFile(${this.name})`;
  }

  #checkOpen(): void {
    if (this.#closed) fail('EBADF', 'sync file is closed');
  }
}
