/**
 * Test support for the buffer tests: a sw_sync-like timeline of fences, a client for the command
 * worker (tests/fixtures/buf-worker.ts), and small assertions.
 */

import assert from 'node:assert/strict';
import type { Worker } from 'node:worker_threads';
import { Domain } from '../../src/domain/domain.js';
import { DmaBufError, type ErrnoCode } from '../../src/errors.js';
import { DmaFence, type DmaFenceOps } from '../../src/fence/fence.js';
import { type DmaResv, DmaResvUsage } from '../../src/resv/resv.js';

const tlOps: DmaFenceOps = {
  getDriverName: () => 'test_timeline',
  getTimelineName: () => 'tl',
};

/** A software timeline: fences signal when the value reaches their seqno (sw_sync's model). */
export class Timeline {
  readonly context = DmaFence.contextAlloc(1);
  value = 0;
  private readonly points: DmaFence[] = [];

  fence(seqno: number): DmaFence {
    const f = new DmaFence(tlOps, this.context, seqno);
    if (seqno <= this.value) f.signal();
    else this.points.push(f);
    return f;
  }

  inc(n = 1): void {
    this.value += n;
    for (const f of this.points.splice(0)) {
      if (f.seqno <= this.value) f.signal();
      else this.points.push(f);
    }
  }
}

/** Adds `fence` to `resv` with `usage` under the lock (what a driver's submission does). */
export async function addFence(resv: DmaResv, fence: DmaFence, usage: number): Promise<void> {
  assert.equal(await resv.lock(null), 0);
  try {
    resv.reserveFences(1);
    resv.addFence(fence, usage as DmaResvUsage);
  } finally {
    resv.unlock();
  }
}

export { DmaResvUsage };

/** Asserts that `fn` throws (or rejects with) a DmaBufError of `code`. */
export async function rejects(fn: () => unknown, code: ErrnoCode): Promise<void> {
  let threw = false;
  try {
    await fn();
  } catch (e) {
    threw = true;
    assert.ok(e instanceof DmaBufError, `expected DmaBufError ${code}, got ${String(e)}`);
    assert.equal((e as DmaBufError).code, code, String(e));
  }
  assert.ok(threw, `expected ${code}, nothing was thrown`);
}

/** Synchronous variant of {@link rejects}. */
export function throws(fn: () => unknown, code: ErrnoCode): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DmaBufError, `expected DmaBufError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, String(e));
    return true;
  });
}

export function tick(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until true or `ms` pass. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await tick(2);
  }
}

/** A command worker of the current domain. */
export class WorkerClient {
  readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: any) => void; reject: (e: any) => void }
  >();
  readonly exited: Promise<number>;

  constructor() {
    this.worker = Domain.current().spawn(new URL('../fixtures/buf-worker.js', import.meta.url));
    this.worker.on(
      'message',
      (m: { id: number; ok: boolean; v?: unknown; e?: { code: string; message: string } }) => {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.v);
        else p.reject(new DmaBufError((m.e?.code ?? 'EIO') as ErrnoCode, m.e?.message ?? ''));
      },
    );
    this.exited = new Promise((r) => this.worker.once('exit', r));
  }

  call(cmd: string, args: Record<string, unknown> = {}): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, cmd, ...args });
    });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }
}
