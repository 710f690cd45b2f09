/**
 * A mock exporter for tests: memory in one SharedArrayBuffer, every op logged, every op able to
 * fail on demand. Thread-bound (its ops are closures of the thread that made it): calls from other
 * threads are forwarded there, which is what tests of forwarding need.
 */

import type { DmaBufAttachment } from '../buf/attachment.js';
import { DmaBuf } from '../buf/dma-buf.js';
import type { DmaBufOps, DmaBufOwner, DmaBufSegment, DmaBufVma } from '../buf/ops.js';
import { O_RDWR, PAGE_SIZE } from '../buf/uapi.js';
import { checkUint, DmaBufError, describe, type ErrnoCode, fail } from '../errors.js';
import type { DmaResv } from '../resv/resv.js';

export interface MockExporterOptions {
  /** Bytes (default 4 pages). */
  size?: number;
  /** Give the exporter pin/unpin (a dynamic exporter). */
  dynamic?: boolean;
  /** Provide mmap (default true). */
  mmap?: boolean;
  /** Provide vmap/vunmap (default true). */
  vmap?: boolean;
  /** Provide begin/end CPU access (default true). */
  cpu?: boolean;
  /** Split the memory into segments of this many bytes (default: one segment). */
  segmentSize?: number;
  flags?: number;
  resv?: DmaResv;
  owner?: DmaBufOwner;
  expName?: string;
  /** Devices (by name) the exporter cannot reach: attach fails with EBUSY. */
  unreachable?: string[];
  /** Reject importers that cannot be revoked (EBUSY), as VFIO does. */
  requireRevocable?: boolean;
}

/** An op name → the errno it should fail with next (once). */
export type MockFailures = Partial<Record<keyof DmaBufOps, ErrnoCode>>;

export class MockExporter {
  readonly memory: SharedArrayBuffer;
  readonly size: number;
  /** Every op call, in order: 'attach:<dev>', 'map:<dir>', 'release', … */
  readonly calls: string[] = [];
  /** Ops that fail on their next call. */
  readonly fail: MockFailures = {};
  pins = 0;
  maps = 0;
  vmaps = 0;
  releases = 0;
  attachments = 0;
  readonly ops: DmaBufOps;
  private readonly opts: MockExporterOptions;

  constructor(opts: MockExporterOptions = {}) {
    if (opts === null || typeof opts !== 'object')
      fail('EINVAL', `MockExporter options must be an object, got ${describe(opts)}`);
    for (const k of ['size', 'segmentSize'] as const)
      if (opts[k] !== undefined && checkUint(opts[k], k) === 0) fail('EINVAL', `${k} must be > 0`);
    this.opts = opts;
    this.size = opts.size ?? 4 * PAGE_SIZE;
    this.memory = new SharedArrayBuffer(this.size);
    const self = this;
    const maybeFail = (op: keyof DmaBufOps): void => {
      const code = self.fail[op];
      if (code !== undefined) {
        delete self.fail[op];
        throw new DmaBufError(code, `mock ${op} failure`);
      }
    };
    const ops: DmaBufOps = {
      attach(_buf, att: DmaBufAttachment) {
        self.calls.push(`attach:${att.dev.name}`);
        maybeFail('attach');
        if (opts.unreachable?.includes(att.dev.name))
          throw new DmaBufError('EBUSY', `${att.dev.name} cannot reach this memory`);
        if (opts.requireRevocable && !att.revocable)
          throw new DmaBufError('EBUSY', 'importer cannot be revoked');
        att.priv = { dev: att.dev.name };
        self.attachments++;
      },
      detach(_buf, att: DmaBufAttachment) {
        self.calls.push(`detach:${att.dev.name}`);
        self.attachments--;
      },
      mapDmaBuf(_att: DmaBufAttachment, dir) {
        self.calls.push(`map:${dir}`);
        maybeFail('mapDmaBuf');
        self.maps++;
        return self.segments(0, self.size);
      },
      unmapDmaBuf(_att, _table, dir) {
        self.calls.push(`unmap:${dir}`);
        self.maps--;
      },
      release() {
        self.calls.push('release');
        self.releases++;
      },
    };
    if (opts.dynamic) {
      ops.pin = () => {
        self.calls.push('pin');
        maybeFail('pin');
        self.pins++;
      };
      ops.unpin = () => {
        self.calls.push('unpin');
        self.pins--;
      };
    }
    if (opts.mmap !== false) {
      ops.mmap = (_buf, vma: DmaBufVma) => {
        self.calls.push(`mmap:${vma.pgoff}+${vma.pages}${vma.write ? ':w' : ''}`);
        maybeFail('mmap');
        return self.segments(vma.pgoff * PAGE_SIZE, (vma.pgoff + vma.pages) * PAGE_SIZE);
      };
    }
    if (opts.vmap !== false) {
      ops.vmap = () => {
        self.calls.push('vmap');
        maybeFail('vmap');
        self.vmaps++;
        return self.segments(0, self.size);
      };
      ops.vunmap = () => {
        self.calls.push('vunmap');
        self.vmaps--;
      };
    }
    if (opts.cpu !== false) {
      ops.beginCpuAccess = (_buf, dir) => {
        self.calls.push(`begin:${dir}`);
        maybeFail('beginCpuAccess');
      };
      ops.endCpuAccess = (_buf, dir) => {
        self.calls.push(`end:${dir}`);
        maybeFail('endCpuAccess');
      };
    }
    this.ops = ops;
  }

  /** Fresh segments over bytes [from, to). */
  segments(from: number, to: number): DmaBufSegment[] {
    checkUint(from, 'from');
    checkUint(to, 'to');
    const seg = this.opts.segmentSize ?? this.size;
    const out: DmaBufSegment[] = [];
    for (let p = from; p < Math.min(to, this.size); ) {
      const n = Math.min(seg - (p % seg), Math.min(to, this.size) - p);
      out.push({ memory: this.memory, offset: p, length: n });
      p += n;
    }
    return out;
  }

  /** Exports the buffer and returns its first reference. */
  export(): DmaBuf {
    return DmaBuf.export({
      ops: this.ops,
      size: this.size,
      flags: this.opts.flags ?? O_RDWR,
      resv: this.opts.resv,
      owner: this.opts.owner,
      priv: this,
      expName: this.opts.expName ?? 'mock',
    });
  }
}
