/**
 * A movable exporter for tests: a dynamic exporter (pin/unpin) whose buffer lives in one of two
 * placements — 'system' memory, reachable by every device, and 'vram', reachable only by devices
 * that list it in their `placements` — and moves between them the way a GPU driver's memory
 * manager does: under the reservation lock, with the copy done later by a "DMA engine" whose
 * completion is a KERNEL fence, and with importers told through `invalidateMappings`.
 *
 * It exercises what static and dynamic importers must do: static importers are pinned by their
 * mappings (a move then fails with EBUSY) and their map waits for the move's fence; dynamic
 * importers see their mappings go invalid and re-map, waiting for the fence themselves.
 *
 * Thread-bound: its ops run in the thread that made it (other threads are forwarded there).
 */

import type { DmaBufAttachment } from '../buf/attachment.js';
import { DmaBuf } from '../buf/dma-buf.js';
import type { DmaBufDevice, DmaBufOps, DmaBufSegment } from '../buf/ops.js';
import { O_RDWR, PAGE_SIZE } from '../buf/uapi.js';
import { checkUint, DmaBufError, describe, fail } from '../errors.js';
import { DmaFence, type DmaFenceOps } from '../fence/fence.js';
import { DmaResvUsage } from '../resv/resv.js';

export type Placement = 'system' | 'vram';

/** A device that says which placements it can reach (default: both). */
export interface PlacementDevice extends DmaBufDevice {
  readonly placements?: readonly Placement[];
}

export interface MovableExporterOptions {
  /** Bytes (default 4 pages). */
  size?: number;
  /** Where the buffer starts (default 'vram'). */
  initial?: Placement;
  /** How long the DMA engine takes to copy, in ms (default 1). */
  copyDelayMs?: number;
  /** Reject importers that cannot be revoked (EBUSY), as VFIO does. */
  requireRevocable?: boolean;
}

const moveFenceOps: DmaFenceOps = {
  getDriverName: () => 'movable',
  getTimelineName: () => 'copy-engine',
};

function reaches(dev: DmaBufDevice, p: Placement): boolean {
  const ps = (dev as PlacementDevice).placements;
  return ps === undefined || ps.includes(p);
}

export class MovableExporter {
  readonly memory: Record<Placement, SharedArrayBuffer>;
  readonly size: number;
  /** Where new mappings point. */
  placement: Placement;
  /** Pins held (explicit ones and static importers' mappings). */
  pinCount = 0;
  /** Live device mappings. */
  mapCount = 0;
  releases = 0;
  moves = 0;
  readonly calls: string[] = [];
  readonly ops: DmaBufOps;
  readonly buf: DmaBuf;
  private readonly context = DmaFence.contextAlloc(1);
  private seqno = 0;
  private readonly delay: number;
  private readonly attached = new Set<DmaBufAttachment>();

  constructor(opts: MovableExporterOptions = {}) {
    if (opts === null || typeof opts !== 'object')
      fail('EINVAL', `MovableExporter options must be an object, got ${describe(opts)}`);
    if (opts.size !== undefined && checkUint(opts.size, 'size') === 0)
      fail('EINVAL', 'size must be > 0');
    if (opts.initial !== undefined && opts.initial !== 'system' && opts.initial !== 'vram')
      fail('EINVAL', `unknown placement ${describe(opts.initial)}`);
    const delay = opts.copyDelayMs;
    if (delay !== undefined && (typeof delay !== 'number' || Number.isNaN(delay) || delay < 0))
      fail('EINVAL', `copyDelayMs must be >= 0, got ${describe(delay)}`);
    this.size = opts.size ?? 4 * PAGE_SIZE;
    this.memory = {
      system: new SharedArrayBuffer(this.size),
      vram: new SharedArrayBuffer(this.size),
    };
    this.placement = opts.initial ?? 'vram';
    this.delay = opts.copyDelayMs ?? 1;
    const self = this;
    this.ops = {
      attach(_buf, att) {
        self.calls.push(`attach:${att.dev.name}`);
        if (opts.requireRevocable && !att.revocable)
          throw new DmaBufError('EBUSY', 'importer cannot be revoked');
        // A device that cannot reach the current placement is fine while the buffer may still
        // move to one it reaches ('system' is reachable by every device).
        if (!reaches(att.dev, self.placement) && !reaches(att.dev, 'system'))
          throw new DmaBufError('EBUSY', `${att.dev.name} cannot reach the buffer`);
        if (!reaches(att.dev, self.placement) && self.pinCount > 0)
          throw new DmaBufError('EBUSY', 'the buffer is pinned where the device cannot reach it');
        self.attached.add(att);
      },
      detach(_buf, att) {
        self.calls.push(`detach:${att.dev.name}`);
        self.attached.delete(att);
      },
      pin(att) {
        self.calls.push(`pin:${att.dev.name}`);
        if (!reaches(att.dev, self.placement))
          throw new DmaBufError('EBUSY', 'pinned where the device cannot reach it');
        self.pinCount++;
      },
      unpin(att) {
        self.calls.push(`unpin:${att.dev.name}`);
        self.pinCount--;
      },
      mapDmaBuf(att, dir) {
        self.calls.push(`map:${att.dev.name}:${dir}`);
        self.mapCount++;
        return self.segments();
      },
      unmapDmaBuf(att, _table, dir) {
        self.calls.push(`unmap:${att.dev.name}:${dir}`);
        self.mapCount--;
      },
      release() {
        self.calls.push('release');
        self.releases++;
      },
      mmap() {
        return self.segments();
      },
      vmap() {
        return self.segments();
      },
      vunmap() {},
    };
    this.buf = DmaBuf.export({
      ops: this.ops,
      size: this.size,
      flags: O_RDWR,
      priv: this,
      expName: 'movable',
    });
  }

  /** Fresh segments over the current placement. */
  segments(): DmaBufSegment[] {
    return [{ memory: this.memory[this.placement], offset: 0, length: this.size }];
  }

  /**
   * Moves the buffer to `to`: under the reservation lock, refuses when pinned (EBUSY), adds the
   * copy's KERNEL fence, switches the placement and invalidates mappings; the copy happens after
   * `copyDelayMs` and then the fence signals. Resolves with the fence once the lock is dropped.
   */
  async move(to: Placement): Promise<DmaFence> {
    if (to !== 'system' && to !== 'vram') fail('EINVAL', `unknown placement ${describe(to)}`);
    const resv = this.buf.resv;
    const r = await resv.lock(null);
    if (r !== 0) fail('EIO', `lock failed (${r})`);
    let fence: DmaFence;
    try {
      if (this.pinCount > 0) fail('EBUSY', 'the buffer is pinned');
      for (const att of this.attached) {
        if (!reaches(att.dev, to)) fail('EBUSY', `${att.dev.name} cannot reach ${to}`);
      }
      const from = this.placement;
      fence = new DmaFence(moveFenceOps, this.context, ++this.seqno);
      resv.reserveFences(1);
      resv.addFence(fence, DmaResvUsage.KERNEL);
      this.placement = to;
      this.moves++;
      this.buf.invalidateMappings();
      const src = this.memory[from];
      const dst = this.memory[to];
      const f = fence;
      setTimeout(() => {
        if (from !== to) new Uint8Array(dst).set(new Uint8Array(src));
        f.signal();
      }, this.delay);
    } finally {
      resv.unlock();
    }
    return fence;
  }
}
