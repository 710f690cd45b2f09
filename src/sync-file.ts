// STAND-IN: replaced by the resv/containers branch
/**
 * Stand-in for the sync file: an explicit-sync object wrapping one fence.
 */

import { Domain } from './domain/domain.js';
import { fail } from './errors.js';
import { DmaFence, type FenceDescriptor } from './fence/fence.js';
import { unwrapFences } from './fence/fence-unwrap.js';

export interface SyncFileDescriptor {
  t: 'sync_file';
  d: number;
  fences: FenceDescriptor[];
}

export class SyncFile {
  readonly fence: DmaFence;

  private constructor(fence: DmaFence) {
    this.fence = fence;
  }

  /** `sync_file_create`: a sync file holding `fence`. */
  static create(fence: DmaFence): SyncFile {
    if (!(fence instanceof DmaFence)) fail('EINVAL', 'SyncFile.create needs a DmaFence');
    return new SyncFile(fence);
  }

  /** 1 signaled, 0 active, < 0 error. */
  get status(): number {
    return this.fence.getStatus();
  }

  share(): SyncFileDescriptor {
    return {
      t: 'sync_file',
      d: Domain.current().id,
      fences: [...unwrapFences(this.fence)].map((f) => f.share()),
    };
  }

  static fromShared(desc: SyncFileDescriptor): SyncFile {
    if (desc === null || typeof desc !== 'object' || desc.t !== 'sync_file')
      fail('EINVAL', 'not a sync file descriptor');
    Domain.current().checkId(desc.d);
    const fences = desc.fences.map((f) => DmaFence.fromShared(f));
    if (fences.length !== 1) fail('EINVAL', 'stand-in sync files carry one fence');
    return new SyncFile(fences[0]!);
  }
}
