/**
 * Runs the model's operations in the calling thread: the main thread of a model test, or a model
 * worker (tests/fixtures/model-worker.ts). Objects are named by the ids the model gives them; each
 * thread keeps the objects it holds. Results are plain data; errors come back as their errno code.
 */

import { B_VMAP_OWNER } from '../../src/buf/_layout.js';
import {
  DMA_BIDIRECTIONAL,
  DmaBuf,
  type DmaBufAttachment,
  type DmaBufDescriptor,
  type DmaBufMap,
  type DmaBufMapping,
  type DmaDataDirection,
  DmaFence,
  type DmaFenceOps,
  type DmaResvUsage,
  Domain,
  SyncFile,
  type SyncFileDescriptor,
  serializeError,
} from '../../src/index.js';
import { R_CLAIM_OWNER, R_SEQ } from '../../src/resv/_record.js';
import {
  type ExporterKind,
  exportCounted,
  setThreadNamer,
} from '../../tools/stress/counted-exporter.js';

setThreadNamer(() => Domain.current().thread);

/** One operation as it travels to the thread that runs it. */
export interface ExecMsg {
  op: string;
  [k: string]: any;
}

export type ExecResult = { ok: true; v?: any } | { ok: false; code: string; message: string };

interface Waiter {
  done: boolean;
  value: number | null;
  code: string | null;
}

interface HeldMap {
  map: DmaBufMap;
  buf: DmaBuf;
}

const fenceOps: DmaFenceOps = {
  getDriverName: () => 'model',
  getTimelineName: () => `t${Domain.current().thread}`,
};

/** Per-thread table of the objects the model named. */
export class Executor {
  readonly objs = new Map<number, any>();
  counters: SharedArrayBuffer | null = null;

  private get<T>(id: unknown, what: string): T {
    const o = this.objs.get(id as number);
    if (o === undefined)
      throw new Error(`model: thread ${Domain.current().thread} has no ${what} ${String(id)}`);
    return o as T;
  }

  private borrowed(ref: DmaBuf): DmaBuf {
    return (ref as any)._core.borrowed as DmaBuf;
  }

  async run(m: ExecMsg): Promise<ExecResult> {
    try {
      return { ok: true, v: await this.exec(m) };
    } catch (e) {
      const s = serializeError(e);
      return { ok: false, code: s.code, message: s.message };
    }
  }

  /** Starts a wait in the background; its outcome is read by `report`. */
  private track(id: number, p: Promise<number>): void {
    const w: Waiter = { done: false, value: null, code: null };
    this.objs.set(id, w);
    p.then(
      (v) => {
        w.done = true;
        w.value = v;
      },
      (e) => {
        w.done = true;
        w.code = serializeError(e).code;
      },
    );
  }

  private async exec(m: ExecMsg): Promise<unknown> {
    switch (m.op) {
      case 'init':
        this.objs.clear();
        this.counters = m.counters;
        return Domain.current().thread;
      case 'export': {
        const buf = exportCounted(this.counters!, m.id, m.kind as ExporterKind, m.dynamic === true);
        this.objs.set(m.out, buf);
        const core = (buf as any)._core;
        return { slot: core.slot, gen: core.gen, inode: buf.inode };
      }
      case 'get':
        this.objs.set(m.out, this.get<DmaBuf>(m.ref, 'ref').get());
        return;
      case 'put':
        this.get<DmaBuf>(m.ref, 'ref').put();
        if (m.keep !== true) this.objs.delete(m.ref);
        return;
      case 'fd':
        this.objs.set(m.out, this.get<DmaBuf>(m.ref, 'ref').fd());
        return;
      case 'close':
        DmaBuf.close(this.get<number>(m.fd, 'fd'));
        if (m.keep !== true) this.objs.delete(m.fd);
        return;
      case 'getFd':
        this.objs.set(m.out, DmaBuf.get(this.get<number>(m.fd, 'fd')));
        return;
      case 'share':
        return this.get<DmaBuf>(m.ref, 'ref').share();
      case 'claim': {
        const desc = m.desc as DmaBufDescriptor;
        if (m.as === 'fd') this.objs.set(m.out, DmaBuf.install(desc));
        else this.objs.set(m.out, DmaBuf.fromShared(desc));
        return;
      }
      case 'attach': {
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        const log = { invalidations: 0 };
        const att = m.dynamic
          ? await buf.dynamicAttach(
              { name: m.dev },
              { invalidateMappings: () => log.invalidations++ },
            )
          : await buf.attach({ name: m.dev });
        this.objs.set(m.out, { att, log });
        return;
      }
      case 'detach': {
        const { att } = this.get<{ att: DmaBufAttachment }>(m.att, 'attachment');
        await att.dmabuf.detach(att);
        if (m.keep !== true) this.objs.delete(m.att);
        return;
      }
      case 'map': {
        const { att } = this.get<{ att: DmaBufAttachment }>(m.att, 'attachment');
        const signal = m.abortMs !== undefined ? AbortSignal.timeout(m.abortMs) : undefined;
        const map = await att.mapAttachmentUnlocked(m.dir ?? DMA_BIDIRECTIONAL, { signal });
        this.objs.set(m.out, map);
        return map.valid;
      }
      case 'unmap': {
        const map = this.get<DmaBufMapping>(m.map, 'mapping');
        try {
          await map.attachment.unmapAttachmentUnlocked(map);
        } finally {
          if (m.keep !== true) this.objs.delete(m.map);
        }
        return;
      }
      case 'pin':
      case 'unpin': {
        const { att } = this.get<{ att: DmaBufAttachment }>(m.att, 'attachment');
        const resv = att.dmabuf.resv;
        await resv.lock(null);
        try {
          if (m.op === 'pin') await att.pin();
          else await att.unpin();
        } finally {
          resv.unlock();
        }
        return;
      }
      case 'invalidate': {
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        await buf.resv.lock(null);
        try {
          buf.invalidateMappings();
        } finally {
          buf.resv.unlock();
        }
        return;
      }
      case 'begin': {
        const signal = m.abortMs !== undefined ? AbortSignal.timeout(m.abortMs) : undefined;
        return this.get<DmaBuf>(m.ref, 'ref').beginCpuAccess(m.dir as DmaDataDirection, { signal });
      }
      case 'end':
        return this.get<DmaBuf>(m.ref, 'ref').endCpuAccess(m.dir as DmaDataDirection);
      case 'vmap': {
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        const map = await buf.vmapUnlocked();
        this.objs.set(m.out, { map, buf: this.borrowed(buf) } satisfies HeldMap);
        return map.view?.byteLength ?? 0;
      }
      case 'vunmap': {
        const h = this.get<HeldMap>(m.vmap, 'vmap');
        try {
          await h.buf.vunmapUnlocked(h.map);
        } finally {
          if (m.keep !== true) this.objs.delete(m.vmap);
        }
        return;
      }
      case 'poll':
        return this.get<DmaBuf>(m.ref, 'ref').poll(m.events);
      case 'fence': {
        // A fence of this thread's "device", added to the buffer's implicit fences.
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        const f = new DmaFence(fenceOps, DmaFence.contextAlloc(1), 1);
        await buf.resv.lock(null);
        try {
          buf.resv.reserveFences(1);
          buf.resv.addFence(f, m.usage as DmaResvUsage);
        } finally {
          buf.resv.unlock();
        }
        this.objs.set(m.out, f);
        return { slot: (f as any)._slot, gen: (f as any)._gen, context: f.context };
      }
      case 'signal': {
        for (const id of m.fences as number[]) {
          const f = this.get<DmaFence>(id, 'fence');
          if (m.error !== undefined) f.setError(m.error);
          f.signal();
        }
        return;
      }
      case 'waitResv': {
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        this.track(m.out, buf.resv.waitTimeout(m.usage as DmaResvUsage, m.timeoutMs ?? 30_000));
        return;
      }
      case 'waitSync': {
        const sf = this.get<SyncFile>(m.sf, 'sync file');
        this.track(m.out, sf.wait(m.timeoutMs ?? 30_000));
        return;
      }
      case 'exportSync':
        this.objs.set(m.out, this.get<DmaBuf>(m.ref, 'ref').exportSyncFile(m.flags));
        return;
      case 'importSync':
        return this.get<DmaBuf>(m.ref, 'ref').importSyncFile(
          m.flags,
          this.get<SyncFile>(m.sf, 'sync file'),
        );
      case 'mergeSync':
        this.objs.set(
          m.out,
          SyncFile.merge(
            'm',
            this.get<SyncFile>(m.a, 'sync file'),
            this.get<SyncFile>(m.b, 'sync file'),
          ),
        );
        return;
      case 'shareSync':
        return this.get<SyncFile>(m.sf, 'sync file').share();
      case 'claimSync':
        this.objs.set(m.out, SyncFile.fromShared(m.desc as SyncFileDescriptor));
        return;
      case 'putSync':
        this.get<SyncFile>(m.sf, 'sync file').put();
        this.objs.delete(m.sf);
        return;
      case 'syncStatus':
        return this.get<SyncFile>(m.sf, 'sync file').info().status;
      // ---- bad input: the first call must work, the second fail; the code of its error is returned
      case 'putTwice':
      case 'closeTwice':
      case 'detachTwice':
      case 'unmapTwice': {
        const first = m.op.replace('Twice', '');
        const key =
          first === 'put' ? 'ref' : first === 'close' ? 'fd' : first === 'detach' ? 'att' : 'map';
        const again = await this.exec({ ...m, op: first, keep: true });
        void again;
        const r = await this.run({ ...m, op: first, keep: true });
        this.objs.delete(m[key]);
        return r.ok ? 'succeeded' : r.code;
      }
      case 'badSync':
        return this.get<DmaBuf>(m.ref, 'ref').sync(m.flags);
      case 'nop':
        return;
      case 'hold': {
        // Takes the buffer's reservation lock and keeps it until 'release'.
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        await buf.resv.lock(null);
        return;
      }
      case 'release':
        this.get<DmaBuf>(m.ref, 'ref').resv.unlock();
        return;
      case 'vmapRelock': {
        // Holding the buffer's lock ('hold'): wakes its waiters without releasing it, so that the
        // one waiting lines up (claims it); vmaps; then releases it — to the claimant — and at
        // once blocks on it (lockSync), answering no message until it gets it back.
        const buf = this.get<DmaBuf>(m.ref, 'ref');
        const mtx = (buf.resv as any)._lock;
        const r32 = mtx._r32 as Int32Array;
        Atomics.add(r32, mtx._b + R_SEQ, 1);
        Atomics.notify(r32, mtx._b + R_SEQ);
        const end = performance.now() + 2000;
        while (Atomics.load(r32, mtx._b + R_CLAIM_OWNER) === 0 && performance.now() < end)
          await new Promise((r) => setTimeout(r, 1));
        const map = await buf.vmap();
        this.objs.set(m.out, { map, buf: this.borrowed(buf) } satisfies HeldMap);
        // `orphan`: as if the mapping's owner had exited (its exit hook clears the owner word)
        // and this thread were only another holder.
        if (m.orphan === true) {
          const core = (buf as any)._core;
          Atomics.store(core.i32, core.b + B_VMAP_OWNER, 0);
        }
        buf.resv.unlock();
        buf.resv.lockSync(null);
        buf.resv.unlock();
        return;
      }
      case 'publishFences': {
        // n pending fences of this thread, published (shared state in the fence table), kept.
        const keep: DmaFence[] = [];
        for (let i = 0; i < m.n; i++) {
          const f = new DmaFence(fenceOps, DmaFence.contextAlloc(1), 1);
          (f as any).publish();
          keep.push(f);
        }
        this.objs.set(m.out, keep);
        return;
      }
      case 'signalAll':
        for (const f of this.get<DmaFence[]>(m.fences, 'fences')) f.signal();
        return;
      case 'spin': {
        // Keeps this thread busy (its inbox unread) for `ms`, as a slow exporter would.
        const end = performance.now() + m.ms;
        while (performance.now() < end) {
          // busy
        }
        return;
      }
      case 'report':
        return this.report(m.ids as number[]);
      case 'forget':
        for (const id of m.ids as number[]) this.objs.delete(id);
        return;
      default:
        throw new Error(`model: unknown op ${m.op}`);
    }
  }

  /**
   * Best effort: undoes whatever this thread still holds (after a failed case), so that what it
   * leaves does not show up in the next case's accounting when garbage collection finds it.
   */
  async scrub(): Promise<void> {
    const all = [...this.objs.values()];
    this.objs.clear();
    const quiet = async (f: () => unknown): Promise<void> => {
      try {
        await f();
      } catch {
        // already gone
      }
    };
    for (const o of all) {
      if (o !== null && typeof o === 'object' && 'valid' in o) {
        const m = o as DmaBufMapping;
        await quiet(() => m.attachment.unmapAttachmentUnlocked(m));
      }
    }
    for (const o of all) {
      if (o !== null && typeof o === 'object' && 'map' in o && 'buf' in o) {
        const h = o as HeldMap;
        await quiet(() => h.buf.vunmapUnlocked(h.map));
      }
    }
    for (const o of all) {
      if (o !== null && typeof o === 'object' && 'log' in o) {
        const { att } = o as { att: DmaBufAttachment };
        await quiet(() => att.dmabuf.detach(att));
      }
    }
    for (const o of all) {
      if (o instanceof SyncFile) await quiet(() => o.put());
      else if (o instanceof DmaFence) await quiet(() => o.signal());
    }
    for (const o of all) {
      if (o instanceof DmaBuf && o.alive) await quiet(() => o.put());
      else if (typeof o === 'number') await quiet(() => DmaBuf.close(o));
    }
  }

  /** The thread-local facts the model checks: mapping validity, invalidations, waits, sync files. */
  private report(ids: number[]): Record<number, unknown> {
    const out: Record<number, unknown> = {};
    for (const id of ids) {
      const o = this.objs.get(id);
      if (o === undefined) out[id] = null;
      else if (o instanceof SyncFile) out[id] = { status: o.closed ? null : o.info().status };
      else if (typeof o === 'object' && 'done' in o)
        out[id] = { done: o.done, value: o.value, code: o.code };
      else if (typeof o === 'object' && 'log' in o)
        out[id] = { invalidations: o.log.invalidations };
      else if (typeof o === 'object' && 'valid' in o)
        out[id] = { valid: (o as DmaBufMapping).valid };
      else out[id] = {};
    }
    return out;
  }
}
