/**
 * The fuzzer's world: the live objects calls are made on and with, their clean-up, and the health
 * check that runs after bad calls.
 *
 * Every object a row or an episode makes (fences, reservation objects, buffers, fds, sync files,
 * attachments, mappings, vmaps, acquire contexts, ww-mutexes, timelines, descriptors) is recorded
 * here, and {@link World#teardown} undoes all of it in a safe order: mappings unmapped, vmaps
 * dropped, attachments detached, the locks *the fuzzer* took released, buffers put, fds closed,
 * unconsumed descriptors consumed, sync files put, fences signaled, timelines destroyed. A lock
 * the library left held is not released by the teardown: the health check reports it.
 *
 * {@link health} then checks that the domain is back where it was: the global buffer list, this
 * thread's buffer cores, exported buffers and fds, the occupancy of every shared table, no lock
 * held on any object the world made, no uncaught exception or unhandled rejection, the debug switch
 * and the wait policy unchanged — and that a fresh fence, reservation and buffer cycle works.
 */

import assert from 'node:assert/strict';
import { bufStats } from '../../src/buf/dma-buf.js';
import { isDebug } from '../../src/debug/lockdep.js';
import type { TableName } from '../../src/domain/domain.js';
import { DmaBufError } from '../../src/errors.js';
import {
  DMA_BIDIRECTIONAL,
  DmaBuf,
  type DmaBufAttachment,
  type DmaBufDescriptor,
  type DmaBufMap,
  type DmaBufMapping,
  DmaFence,
  DmaFenceArray,
  DmaFenceChain,
  type DmaFenceOps,
  DmaResv,
  type DmaResvDescriptor,
  DmaResvUsage,
  Domain,
  type FenceDescriptor,
  getWaitPolicy,
  SyncFile,
  type SyncFileDescriptor,
  systemHeap,
  WwAcquireCtx,
  WwMutex,
  type WwMutexDescriptor,
} from '../../src/index.js';
import { MockExporter, MovableExporter, SwSyncTimeline } from '../../src/testing/index.js';

export const fuzzOps: DmaFenceOps = {
  getDriverName: () => 'fuzz',
  getTimelineName: () => 'fuzz-tl',
};

/** A second domain, for descriptors and objects that belong elsewhere (EXDEV). */
let foreignDomain: Domain | undefined;
export function foreign(): Domain {
  foreignDomain ??= Domain.create();
  return foreignDomain;
}

/** Runs `fn` with the foreign domain as this thread's current one. */
export function inForeign<T>(fn: () => T): T {
  const home = Domain.current();
  Domain.setCurrent(foreign());
  try {
    return fn();
  } finally {
    Domain.setCurrent(home);
  }
}

type Desc =
  | { kind: 'buf'; desc: DmaBufDescriptor }
  | { kind: 'fence'; desc: FenceDescriptor; foreign?: boolean }
  | { kind: 'resv'; desc: DmaResvDescriptor }
  | { kind: 'mutex'; desc: WwMutexDescriptor }
  | { kind: 'sync'; desc: SyncFileDescriptor };

export class World {
  readonly d = Domain.current();
  readonly context = DmaFence.contextAlloc(1);
  private seq = 0;
  readonly fences: DmaFence[] = [];
  readonly foreignFences: DmaFence[] = [];
  readonly resvs: DmaResv[] = [];
  readonly mutexes: WwMutex[] = [];
  readonly ctxs: WwAcquireCtx[] = [];
  /** Locks the fuzzer took (released by the teardown, in reverse order). */
  readonly held: { lock: DmaResv | WwMutex; ctx: WwAcquireCtx | null }[] = [];
  readonly bufs: DmaBuf[] = [];
  readonly fds: number[] = [];
  readonly syncFiles: SyncFile[] = [];
  readonly atts: { buf: DmaBuf; att: DmaBufAttachment }[] = [];
  readonly mappings: DmaBufMapping[] = [];
  readonly vmaps: { buf: DmaBuf; map: DmaBufMap }[] = [];
  readonly timelines: SwSyncTimeline[] = [];
  readonly descs: Desc[] = [];
  private readonly consumed = new WeakSet<object>();

  // ---- fences ----------------------------------------------------------------------------------

  fence(): DmaFence {
    const f = new DmaFence(fuzzOps, this.context, ++this.seq);
    this.fences.push(f);
    return f;
  }

  signaled(): DmaFence {
    const f = this.fence();
    f.signal();
    return f;
  }

  errored(): DmaFence {
    const f = this.fence();
    f.setError(-5);
    f.signal();
    return f;
  }

  /** A published (shared) pending fence; the descriptor's reference is consumed at teardown. */
  shared(): DmaFence {
    const f = this.fence();
    this.track({ kind: 'fence', desc: f.share() });
    return f;
  }

  array(): DmaFenceArray {
    const a = DmaFenceArray.create([this.fence(), this.fence()], DmaFence.contextAlloc(1), 1);
    this.fences.push(a);
    return a;
  }

  chain(): DmaFenceChain {
    const c = new DmaFenceChain(null, this.fence(), 1);
    this.fences.push(c);
    return c;
  }

  /** A pending fence published in the foreign domain. */
  foreignFence(): DmaFence {
    return inForeign(() => {
      const f = new DmaFence(fuzzOps, DmaFence.contextAlloc(1), 1);
      this.foreignFences.push(f);
      this.track({ kind: 'fence', desc: f.share(), foreign: true });
      return f;
    });
  }

  syncFile(fence: DmaFence = this.fence()): SyncFile {
    const s = SyncFile.create(fence);
    this.syncFiles.push(s);
    return s;
  }

  closedSyncFile(): SyncFile {
    const s = this.syncFile();
    s.put();
    return s;
  }

  timeline(): SwSyncTimeline {
    const t = new SwSyncTimeline('fuzz');
    this.timelines.push(t);
    return t;
  }

  // ---- reservation objects and locks ---------------------------------------------------------------

  resv(): DmaResv {
    const r = new DmaResv();
    this.resvs.push(r);
    return r;
  }

  deadResv(): DmaResv {
    const r = new DmaResv();
    r.fini();
    return r;
  }

  /** A reservation object locked by the fuzzer (no context), with `reserved` slots reserved. */
  lockedResv(reserved = 0): DmaResv {
    const r = this.resv();
    assert.ok(r.trylock(null));
    this.held.push({ lock: r, ctx: null });
    if (reserved > 0) r.reserveFences(reserved);
    return r;
  }

  /** A reservation object holding one pending fence of each usage. */
  busyResv(): DmaResv {
    const r = this.resv();
    assert.ok(r.trylock(null));
    try {
      r.reserveFences(4);
      for (const u of [0, 1, 2, 3] as const) r.addFence(this.fence(), u);
    } finally {
      r.unlock();
    }
    return r;
  }

  foreignResv(): DmaResv {
    return inForeign(() => {
      const r = new DmaResv();
      this.resvs.push(r);
      return r;
    });
  }

  ctx(): WwAcquireCtx {
    const c = new WwAcquireCtx();
    this.ctxs.push(c);
    return c;
  }

  finishedCtx(): WwAcquireCtx {
    const c = new WwAcquireCtx();
    c.fini();
    return c;
  }

  mutex(): WwMutex {
    const m = new WwMutex();
    this.mutexes.push(m);
    return m;
  }

  deadMutex(): WwMutex {
    const m = new WwMutex();
    m.destroy();
    return m;
  }

  /** Records a lock the fuzzer took through a call (`lock` resolved 0, `trylock` true). */
  tookLock(lock: DmaResv | WwMutex, ctx: unknown): void {
    this.held.push({ lock, ctx: ctx instanceof WwAcquireCtx ? ctx : null });
  }

  /** Records that a fuzzed call released a lock the fuzzer held. */
  droppedLock(lock: DmaResv | WwMutex): void {
    const i = this.held.findIndex((h) => h.lock === lock);
    if (i >= 0) this.held.splice(i, 1);
  }

  // ---- buffers -----------------------------------------------------------------------------------

  buf(size = 2 * 4096): DmaBuf {
    const b = systemHeap.allocateBuffer(size);
    this.bufs.push(b);
    return b;
  }

  /** A buffer of the mock exporter (vmap, cpu hooks, no shared exporter). */
  mockBuf(opts: ConstructorParameters<typeof MockExporter>[0] = {}): DmaBuf {
    const b = new MockExporter(opts).export();
    this.bufs.push(b);
    return b;
  }

  putBuf(): DmaBuf {
    const b = systemHeap.allocateBuffer(4096);
    b.put();
    return b;
  }

  fd(buf: DmaBuf = this.buf()): number {
    const fd = buf.fd();
    this.fds.push(fd);
    return fd;
  }

  closedFd(): number {
    const b = systemHeap.allocateBuffer(4096);
    const fd = b.fd();
    b.put();
    DmaBuf.close(fd);
    return fd;
  }

  /** An fd of a sync file (DMA_BUF_IOCTL_EXPORT_SYNC_FILE). */
  async syncFd(): Promise<number> {
    const arg: { flags: number; fd?: number } = { flags: 1 };
    await this.buf().ioctl(0xc0086202, arg);
    this.fds.push(arg.fd!);
    return arg.fd!;
  }

  async att(buf: DmaBuf = this.buf(), dynamic = false): Promise<DmaBufAttachment> {
    const att = dynamic
      ? await buf.dynamicAttach({ name: 'fuzz-dev' }, { invalidateMappings() {} })
      : await buf.attach({ name: 'fuzz-dev' });
    this.atts.push({ buf, att });
    return att;
  }

  async detachedAtt(): Promise<DmaBufAttachment> {
    const buf = this.buf();
    const att = await buf.attach({ name: 'fuzz-dev' });
    await buf.detach(att);
    return att;
  }

  /** A mapping of `att` (made under the lock when the fuzzer holds it, else unlocked). */
  async mapping(att?: DmaBufAttachment): Promise<DmaBufMapping> {
    const a = att ?? (await this.att());
    const m = a._core.resv.isHeld()
      ? await a.mapAttachment(DMA_BIDIRECTIONAL)
      : await a.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    this.mappings.push(m);
    return m;
  }

  /** A buffer whose reservation lock the fuzzer holds. */
  lockedBuf(): DmaBuf {
    const b = this.buf();
    assert.ok(b.resv.trylock(null));
    this.held.push({ lock: b.resv, ctx: null });
    return b;
  }

  /** An attachment whose buffer's reservation lock the fuzzer holds. */
  async lockedAtt(dynamic: boolean): Promise<DmaBufAttachment> {
    const att = await this.att(this.buf(), dynamic);
    assert.ok(att._core.resv.trylock(null));
    this.held.push({ lock: att._core.resv, ctx: null });
    return att;
  }

  /** The vmap of `buf` (under the lock when the fuzzer holds it, else unlocked). */
  async vmapOf(buf: DmaBuf): Promise<DmaBufMap> {
    const map = buf.resv.isHeld() ? await buf.vmap() : await buf.vmapUnlocked();
    this.vmaps.push({ buf, map });
    return map;
  }

  movable(): MovableExporter {
    const m = new MovableExporter({ copyDelayMs: 0 });
    this.bufs.push(m.buf);
    return m;
  }

  async unmapped(): Promise<DmaBufMapping> {
    const a = await this.att();
    const m = await a.mapAttachmentUnlocked(DMA_BIDIRECTIONAL);
    await a.unmapAttachmentUnlocked(m);
    return m;
  }

  async vmap(buf: DmaBuf = this.mockBuf()): Promise<DmaBufMap> {
    const map = await buf.vmapUnlocked();
    this.vmaps.push({ buf, map });
    return map;
  }

  // ---- descriptors -------------------------------------------------------------------------------

  track(d: Desc): Desc['desc'] {
    this.descs.push(d);
    return d.desc;
  }

  /** Marks a descriptor consumed (a call that takes it succeeded). */
  consume(desc: unknown): void {
    if (desc !== null && typeof desc === 'object') this.consumed.add(desc);
  }

  bufDesc(): DmaBufDescriptor {
    return this.track({ kind: 'buf', desc: this.buf().share() }) as DmaBufDescriptor;
  }

  fenceDesc(): FenceDescriptor {
    return this.track({ kind: 'fence', desc: this.fence().share() }) as FenceDescriptor;
  }

  resvDesc(): DmaResvDescriptor {
    return this.track({ kind: 'resv', desc: this.resv().share() }) as DmaResvDescriptor;
  }

  mutexDesc(): WwMutexDescriptor {
    return this.track({ kind: 'mutex', desc: this.mutex().share() }) as WwMutexDescriptor;
  }

  syncDesc(): SyncFileDescriptor {
    return this.track({ kind: 'sync', desc: this.syncFile().share() }) as SyncFileDescriptor;
  }

  // ---- clean-up --------------------------------------------------------------------------------------

  /** Adopts what a call returned, so that the teardown can undo it. */
  adopt(v: unknown): void {
    if (v instanceof DmaBuf) {
      if ((v as unknown as { _state: number })._state === 0) this.bufs.push(v);
    } else if (v instanceof SyncFile) this.syncFiles.push(v);
    else if (v instanceof DmaFence) this.fences.push(v);
    else if (v instanceof DmaResv) this.resvs.push(v);
    else if (v instanceof WwMutex) this.mutexes.push(v);
    else if (v instanceof WwAcquireCtx) this.ctxs.push(v);
    else if (v instanceof SwSyncTimeline) this.timelines.push(v);
  }

  async teardown(): Promise<string[]> {
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        problems.push(`teardown ${what}: ${String(e)}`);
      }
    };
    const quiet = async (fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        if (!(e instanceof DmaBufError)) throw e;
      }
    };
    for (const { lock } of this.held.splice(0).reverse()) {
      await quiet(() => {
        if (lock.isHeld()) lock.unlock();
      });
    }
    for (const m of this.mappings.splice(0)) {
      if (m._unmapped || m.attachment._detached || m.attachment._core.released) continue;
      await attempt('unmap', () => m.attachment.unmapAttachmentUnlocked(m));
    }
    for (const { buf, map } of this.vmaps.splice(0)) {
      if (!buf.alive) continue;
      await quiet(() => buf.vunmapUnlocked(map));
    }
    for (const { buf, att } of this.atts.splice(0)) {
      if (att._detached) continue;
      await quiet(() => (buf.alive ? buf.detach(att) : att[Symbol.asyncDispose]()));
    }
    for (const c of this.ctxs.splice(0)) await attempt('ctx fini', () => c.fini());
    for (const b of this.bufs.splice(0)) {
      if ((b as unknown as { _state: number })._state === 0) await attempt('put', () => b.put());
    }
    for (const fd of this.fds.splice(0)) await quiet(() => DmaBuf.close(fd));
    for (const d of this.descs.splice(0)) {
      if (this.consumed.has(d.desc)) continue;
      await quiet(() => {
        switch (d.kind) {
          case 'buf':
            DmaBuf.fromShared(d.desc).put();
            break;
          case 'fence':
            if (d.foreign) inForeign(() => DmaFence.fromShared(d.desc));
            else DmaFence.fromShared(d.desc);
            break;
          case 'resv': {
            // The existing view, or a new one holding the descriptor's reference: end that one.
            const r = DmaResv.fromShared(d.desc);
            if (!this.resvs.includes(r)) r.fini();
            break;
          }
          case 'mutex': {
            const m = WwMutex.fromShared(d.desc);
            if (!this.mutexes.includes(m)) m.destroy();
            break;
          }
          case 'sync':
            SyncFile.fromShared(d.desc).put();
            break;
        }
      });
    }
    for (const s of this.syncFiles.splice(0)) s.put();
    for (const f of this.fences.splice(0)) await quiet(() => f.signal());
    for (const f of this.foreignFences.splice(0)) await quiet(() => inForeign(() => f.signal()));
    for (const t of this.timelines.splice(0)) await quiet(() => t.destroy());
    for (const m of this.mutexes.splice(0)) {
      await quiet(() => {
        if (m.isLocked()) problems.push('a ww-mutex is left locked');
        else m.destroy();
      });
    }
    for (const r of this.resvs.splice(0)) {
      if (r._dead) continue;
      if (r.isLocked()) problems.push('a reservation object is left locked');
      else await quiet(() => (r._d === this.d ? r.fini() : inForeign(() => r.fini())));
    }
    return problems;
  }
}

// ---- the health check -------------------------------------------------------------------------------

const TABLES: TableName[] = ['fence', 'resv', 'resvList', 'buf', 'attach', 'handle', 'ticket'];

/** Allocated slots of each shared table. */
export function occupancy(d: Domain = Domain.current()): Record<TableName, number> {
  const out = {} as Record<TableName, number>;
  for (const name of TABLES) {
    const t = d.tables[name];
    const hwm = t.highWater;
    t.ensure(hwm - 1);
    let n = 0;
    const first = Math.ceil(16 / t.slotWords);
    for (let s = Math.max(1, first); s < hwm; s++) if (t.isAllocated(s)) n++;
    out[name] = n;
  }
  return out;
}

/** Buffers on the global list. */
export function listCount(): number {
  let n = 0;
  for (let b = DmaBuf.iterBegin(); b !== null; b = DmaBuf.iterNext(b)) n++;
  return n;
}

/** Uncaught exceptions and unhandled rejections seen while a {@link Watch} is on. */
export class Watch {
  readonly seen: string[] = [];
  private readonly onErr = (e: unknown): void => {
    this.seen.push(`uncaught: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  };
  private readonly onRej = (e: unknown): void => {
    this.seen.push(
      `unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
    );
  };
  start(): this {
    process.on('uncaughtException', this.onErr);
    process.on('unhandledRejection', this.onRej);
    return this;
  }
  stop(): void {
    process.off('uncaughtException', this.onErr);
    process.off('unhandledRejection', this.onRej);
  }
  take(): string[] {
    return this.seen.splice(0);
  }
}

export interface Baseline {
  /** Set once a leak was reported: leaked objects may still be collected (and put) later, so
   * counts may then go down without anything being wrong. */
  tainted?: boolean;
  domain: Domain;
  list: number;
  stats: ReturnType<typeof bufStats>;
  occ: Record<TableName, number>;
  debug: boolean;
  policy: string;
}

export function baseline(): Baseline {
  return {
    domain: Domain.current(),
    list: listCount(),
    stats: bufStats(),
    occ: occupancy(),
    debug: isDebug(),
    policy: JSON.stringify(getWaitPolicy()),
  };
}

/** The buffer list, this thread's buffer bookkeeping and the tables, against the baseline. */
function countProblems(base: Baseline): string[] {
  const problems: string[] = [];
  const list = listCount();
  const off = (now: number, then: number): boolean => now > then || (now < then && !base.tainted);
  if (off(list, base.list))
    problems.push(`global buffer list: ${list} buffers, expected ${base.list}`);
  const stats = bufStats();
  if (
    off(stats.cores, base.stats.cores) ||
    off(stats.exported, base.stats.exported) ||
    off(stats.fds, base.stats.fds)
  )
    problems.push(
      `buffer bookkeeping ${JSON.stringify(stats)}, expected ${JSON.stringify(base.stats)}`,
    );
  const occ = occupancy();
  for (const name of TABLES) {
    if (occ[name] > base.occ[name])
      problems.push(`table ${name}: ${occ[name]} slots in use, expected at most ${base.occ[name]}`);
  }
  return problems;
}

const cycleOps: DmaFenceOps = { getDriverName: () => 'health', getTimelineName: () => 'health' };

/**
 * Everything the module overview lists. Returns the problems found (empty: healthy). Leaves the
 * world empty: it runs the teardown first.
 */
export async function health(w: World, base: Baseline, watch?: Watch): Promise<string[]> {
  const problems: string[] = [];
  if (Domain.current() !== base.domain) {
    problems.push("this thread's current domain changed");
    Domain.setCurrent(base.domain);
  }
  try {
    problems.push(...(await checkHealth(w, base, watch)));
  } catch (e) {
    problems.push(
      `health check failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
    );
  }
  return problems;
}

async function checkHealth(w: World, base: Baseline, watch?: Watch): Promise<string[]> {
  const problems = await w.teardown();
  // Let forwarded work and callbacks settle (poll callbacks, releases, watchers).
  await new Promise((r) => setImmediate(r));
  if (watch !== undefined) problems.push(...watch.take());
  if (isDebug() !== base.debug) problems.push('the debug switch changed');
  if (JSON.stringify(getWaitPolicy()) !== base.policy)
    problems.push(`the wait policy changed: ${JSON.stringify(getWaitPolicy())}`);
  let counted = countProblems(base);
  // What only garbage collection reclaims (a view dropped without fini, a reference left to its
  // finalizer) is not lost: with --expose-gc (npm run fuzz), collect and look again.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (counted.length > 0 && gc !== undefined) {
    gc();
    for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 0));
    counted = countProblems(base);
  }
  problems.push(...counted);
  const list = listCount();
  // A fresh fence, reservation and buffer cycle.
  try {
    const f = new DmaFence(cycleOps, DmaFence.contextAlloc(1), 1);
    let ran = 0;
    if (f.addCallback(() => ran++) === null) problems.push('cycle: addCallback on a new fence');
    f.signal();
    if (ran !== 1 || f.getStatus() !== 1) problems.push('cycle: fence callback or status wrong');
    const r = new DmaResv();
    if (!r.trylock(null)) problems.push('cycle: trylock of a new reservation object failed');
    else {
      r.reserveFences(1);
      const g = new DmaFence(cycleOps, DmaFence.contextAlloc(1), 1);
      r.addFence(g, DmaResvUsage.WRITE);
      r.unlock();
      if (r.isLocked() || r.testSignaled(DmaResvUsage.WRITE)) problems.push('cycle: resv state');
      g.signal();
      if (!r.testSignaled(DmaResvUsage.BOOKKEEP)) problems.push('cycle: resv after signal');
    }
    r.fini();
    const b = systemHeap.allocateBuffer(4096);
    try {
      const v = await b.mmap(0, 4096, { write: true });
      v[0] = 7;
      if ((await b.mmap(0, 4096))[0] !== 7) problems.push('cycle: mmap does not share memory');
      await b.beginCpuAccess(DMA_BIDIRECTIONAL);
      await b.endCpuAccess(DMA_BIDIRECTIONAL);
      if (listCount() !== list + 1) problems.push('cycle: a new buffer is not on the list');
    } finally {
      b.put();
    }
    if (listCount() !== list) problems.push('cycle: a put buffer stays on the list');
  } catch (e) {
    problems.push(`cycle failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
  return problems;
}
