/**
 * The hammer: one thread's seeded random loop over the shared objects of a load or fault run —
 * references, handles, descriptors, attachments, mappings, pins, vmaps, poll, CPU access, names,
 * fences and signal bursts, sync files, and wound/wait acquire sequences over several
 * reservation objects and mutexes (with back-off, slow locks, blocking locks in workers, holds
 * long enough to hand locks over to waiters). It runs in the main thread and in workers alike
 * (hammer-worker.ts), until told to stop; then it undoes everything it holds.
 *
 * It checks what one thread can check as it goes — mutual exclusion under the locks (a token
 * written into the buffer under the lock must still be there before unlock), names never torn,
 * no unexpected error — and reports every broken invariant as a string.
 */

import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  DmaBuf,
  type DmaBufAttachment,
  type DmaBufDescriptor,
  DmaBufError,
  type DmaBufMap,
  type DmaBufMapping,
  type DmaDataDirection,
  DmaFence,
  type DmaFenceOps,
  DmaResv,
  DmaResvUsage,
  Domain,
  EDEADLK,
  EPOLLIN,
  EPOLLOUT,
  SyncFile,
  WwAcquireCtx,
  WwMutex,
  type WwMutexDescriptor,
} from '../../src/index.js';
import { prng } from '../../tests/_rpc.js';
import { setThreadNamer } from './counted-exporter.js';

setThreadNamer(() => Domain.current().thread);

/** Kinds of operation, as counted in the stats array. */
export const KINDS = [
  'ref',
  'fd',
  'share',
  'attach',
  'map',
  'pin',
  'vmap',
  'poll',
  'cpu',
  'name',
  'lock',
  'fence',
  'signal',
  'sync',
] as const;
export type OpKind = (typeof KINDS)[number];
/** Stats words per thread slot: one per kind, then progress and violations. */
export const STAT_WORDS = KINDS.length + 2;
export const S_PROGRESS = KINDS.length;
export const S_VIOLATIONS = KINDS.length + 1;

/** What a hammering thread is given. */
export interface HammerInit {
  seed: number;
  /** Stats slot of this thread. */
  slot: number;
  stats: SharedArrayBuffer;
  /** One descriptor per buffer (each carries the reference this thread will hold). */
  bufs: DmaBufDescriptor[];
  mutexes: WwMutexDescriptor[];
  /** Whether blocking (`*Sync`) locks may be used (workers). */
  blocking: boolean;
  /** Longest a lock is held on purpose (ms). */
  holdMs?: number;
}

const fenceOps: DmaFenceOps = {
  getDriverName: () => 'hammer',
  getTimelineName: () => `hammer-${Domain.current().thread}`,
};

const DIRS: readonly DmaDataDirection[] = [DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE];

/** Errors that are expected outcomes under load (aborted waits). */
const EXPECTED = new Set(['ERESTARTSYS', 'EINTR']);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Att {
  b: number;
  att: DmaBufAttachment;
  dynamic: boolean;
  maps: DmaBufMapping[];
  pins: number;
}

export class Hammer {
  readonly violations: string[] = [];
  /** Called with each broken invariant as it is found. */
  onViolation: ((what: string) => void) | null = null;
  private readonly rnd: () => number;
  private readonly stats: Int32Array;
  private readonly base: number;
  private readonly bufs: DmaBuf[];
  private readonly locks: (DmaResv | WwMutex)[];
  private readonly views: Uint8Array[] = [];
  private readonly extra: DmaBuf[][];
  private readonly fds: { b: number; fd: number }[] = [];
  private readonly atts: Att[] = [];
  private readonly vmaps: { b: number; map: DmaBufMap }[] = [];
  private readonly fences: DmaFence[] = [];
  private readonly syncs: SyncFile[] = [];
  private readonly blocking: boolean;
  private readonly holdMs: number;
  private stopped = false;
  private token = 1;
  private readonly context = DmaFence.contextAlloc(1);
  private seqno = 0;

  constructor(init: HammerInit) {
    this.rnd = prng(init.seed);
    this.stats = new Int32Array(init.stats);
    this.base = init.slot * STAT_WORDS;
    this.blocking = init.blocking;
    this.holdMs = init.holdMs ?? 2;
    this.bufs = init.bufs.map((d) => DmaBuf.fromShared(d));
    this.extra = this.bufs.map(() => []);
    this.locks = [
      ...this.bufs.map((b) => b.resv),
      ...init.mutexes.map((m) => WwMutex.fromShared(m)),
    ];
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }

  private count(kind: OpKind): void {
    Atomics.add(this.stats, this.base + KINDS.indexOf(kind), 1);
  }

  private violate(what: string): void {
    const msg = `thread ${Domain.current().thread}: ${what}`;
    this.violations.push(msg);
    this.onViolation?.(msg);
    Atomics.add(this.stats, this.base + S_VIOLATIONS, 1);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs until {@link stop} (or `ms` pass), then undoes everything it holds. */
  async run(ms = Infinity): Promise<void> {
    const end = performance.now() + ms;
    for (let i = 0; !this.stopped && performance.now() < end; i++) {
      try {
        await this.step();
      } catch (e) {
        if (!(e instanceof DmaBufError && EXPECTED.has(e.code)))
          this.violate(`unexpected error: ${String((e as Error)?.stack ?? e)}`);
      }
      Atomics.add(this.stats, this.base + S_PROGRESS, 1);
      if (i % 8 === 7) await yieldNow();
    }
    await this.teardown();
  }

  private async step(): Promise<void> {
    const b = Math.floor(this.rnd() * this.bufs.length);
    const buf = this.bufs[b]!;
    const x = this.rnd();
    if (x < 0.08) return this.refOp(b);
    if (x < 0.14) return this.fdOp(b);
    if (x < 0.18) return this.shareOp(b);
    if (x < 0.26) return this.attachOp(b);
    if (x < 0.36) return this.mapOp();
    if (x < 0.4) return this.pinOp();
    if (x < 0.45) return this.vmapOp(b);
    if (x < 0.5) return this.pollOp(buf);
    if (x < 0.54) return this.cpuOp(buf);
    if (x < 0.57) return this.nameOp(buf);
    if (x < 0.75) return this.lockOp();
    if (x < 0.87) return this.signalOp();
    return this.syncOp(b);
  }

  // ---- references, handles, descriptors ---------------------------------------------------

  private refOp(b: number): void {
    const ex = this.extra[b]!;
    if (ex.length < 4 && this.rnd() < 0.55) ex.push(this.bufs[b]!.get());
    else ex.pop()?.put();
    this.count('ref');
  }

  private fdOp(b: number): void {
    if (this.fds.length < 6 && this.rnd() < 0.55) {
      this.fds.push({ b, fd: this.bufs[b]!.fd() });
    } else if (this.fds.length > 0) {
      const i = Math.floor(this.rnd() * this.fds.length);
      const { fd } = this.fds[i]!;
      DmaBuf.get(fd).put();
      DmaBuf.close(fd);
      this.fds.splice(i, 1);
    }
    this.count('fd');
  }

  private shareOp(b: number): void {
    const desc = this.bufs[b]!.share();
    const ref = DmaBuf.fromShared(desc);
    try {
      DmaBuf.fromShared(desc).put();
      this.violate('a descriptor installed twice');
    } catch (e) {
      if (!(e instanceof DmaBufError && e.code === 'EBADF')) throw e;
    }
    ref.put();
    this.count('share');
  }

  // ---- importers ----------------------------------------------------------------------------

  private async attachOp(b: number): Promise<void> {
    if (this.atts.length < 3 && this.rnd() < 0.55) {
      const dynamic = this.rnd() < 0.5;
      const buf = this.bufs[b]!;
      const dev = { name: `hammer${Domain.current().thread}` };
      const att = dynamic
        ? await buf.dynamicAttach(dev, { invalidateMappings: () => {} })
        : await buf.attach(dev);
      this.atts.push({ b, att, dynamic, maps: [], pins: 0 });
    } else if (this.atts.length > 0) {
      const i = Math.floor(this.rnd() * this.atts.length);
      const a = this.atts[i]!;
      this.atts.splice(i, 1);
      await this.undoAtt(a);
    }
    this.count('attach');
  }

  private async undoAtt(a: Att): Promise<void> {
    for (const m of a.maps.splice(0)) await a.att.unmapAttachmentUnlocked(m);
    if (a.pins > 0) {
      await this.withLock(a.att.dmabuf.resv, async () => {
        for (; a.pins > 0; a.pins--) await a.att.unpin();
      });
    }
    await a.att.dmabuf.detach(a.att);
  }

  private async mapOp(): Promise<void> {
    if (this.atts.length === 0) return;
    const a = this.pick(this.atts);
    if (a.maps.length < 2 && this.rnd() < 0.6) {
      const dir = this.pick(DIRS);
      // Static importers wait for KERNEL fences: bounded here.
      const m = await a.att.mapAttachmentUnlocked(dir, { signal: AbortSignal.timeout(20) });
      if (m.segments.length === 0) this.violate('a mapping with no segments');
      a.maps.push(m);
    } else if (a.maps.length > 0) {
      await a.att.unmapAttachmentUnlocked(a.maps.pop()!);
    }
    this.count('map');
  }

  private async withLock<T>(resv: DmaResv, f: () => Promise<T>): Promise<T> {
    const r = await resv.lockInterruptible(null, { signal: AbortSignal.timeout(3000) });
    if (r !== 0) {
      this.violate(`a plain reservation lock was not granted within 3 s (${r})`);
      throw new DmaBufError('EINTR', 'lock wait too long');
    }
    try {
      return await f();
    } finally {
      resv.unlock();
    }
  }

  private async pinOp(): Promise<void> {
    const dyn = this.atts.filter((a) => a.dynamic);
    if (dyn.length === 0) return;
    const a = this.pick(dyn);
    await this.withLock(a.att.dmabuf.resv, async () => {
      if (a.pins < 2 && this.rnd() < 0.55) {
        await a.att.pin();
        a.pins++;
      } else if (a.pins > 0) {
        await a.att.unpin();
        a.pins--;
      }
    });
    this.count('pin');
  }

  private async vmapOp(b: number): Promise<void> {
    const mine = this.vmaps.filter((v) => v.b === b);
    if (mine.length < 2 && this.rnd() < 0.55) {
      const map = await this.bufs[b]!.vmapUnlocked();
      if (map.segments.length === 0) this.violate('a vmap with no segments');
      this.vmaps.push({ b, map });
    } else if (mine.length > 0) {
      const v = mine[0]!;
      this.vmaps.splice(this.vmaps.indexOf(v), 1);
      await this.bufs[b]!.vunmapUnlocked(v.map);
    }
    this.count('vmap');
  }

  private async pollOp(buf: DmaBuf): Promise<void> {
    if (this.rnd() < 0.7) buf.poll(EPOLLIN | EPOLLOUT);
    else await buf.pollAsync(EPOLLIN | EPOLLOUT, { timeoutMs: 3 });
    this.count('poll');
  }

  private async cpuOp(buf: DmaBuf): Promise<void> {
    const dir = this.pick(DIRS);
    await buf.beginCpuAccess(dir, { signal: AbortSignal.timeout(5) });
    await buf.endCpuAccess(dir);
    this.count('cpu');
  }

  private nameOp(buf: DmaBuf): void {
    if (this.rnd() < 0.5) buf.setName(`n${Domain.current().thread}-${this.token++}`);
    const n = buf.name;
    if (n !== null && !/^n\d+-\d+$/.test(n)) this.violate(`torn buffer name ${JSON.stringify(n)}`);
    this.count('name');
  }

  // ---- locks and fences ---------------------------------------------------------------------

  /**
   * A wound/wait acquire sequence over 1–4 locks in random order: back off on -EDEADLK (drop
   * everything, slow-lock the contended one, retry). Holding them all: check mutual exclusion on
   * the buffers, add fences, sometimes invalidate mappings, sometimes hold on so that waiters
   * queue up for the hand-off.
   */
  private async lockOp(): Promise<void> {
    if (this.blocking && this.rnd() < 0.15) return this.blockingLockOp();
    const n = 1 + Math.floor(this.rnd() * Math.min(4, this.locks.length));
    const want = [...new Set(Array.from({ length: n }, () => this.pick(this.locks)))];
    const ctx = new WwAcquireCtx();
    const held: (DmaResv | WwMutex)[] = [];
    const guard = AbortSignal.timeout(3000);
    try {
      let slow: DmaResv | WwMutex | null = null;
      for (let round = 0; ; round++) {
        if (round > 1000) throw new Error('ww acquire did not converge in 1000 rounds');
        let contended: DmaResv | WwMutex | null = null;
        for (const l of want) {
          if (l === slow) continue;
          const r = await l.lockInterruptible(ctx, { signal: guard });
          if (r === 0) held.push(l);
          else if (r === EDEADLK) {
            contended = l;
            break;
          } else {
            this.violate(`ww lock answered ${r} (waited ${guard.aborted ? '> 3 s' : 'briefly'})`);
            return;
          }
        }
        if (contended === null) break;
        for (const l of held.splice(0)) l.unlock();
        const r = await contended.lockSlowInterruptible(ctx, { signal: guard });
        if (r !== 0) {
          this.violate(`lockSlow answered ${r} (no lock granted within 3 s)`);
          return;
        }
        held.push(contended);
        slow = contended;
      }
      ctx.done();
      await this.holding(held.filter((l): l is DmaResv => l instanceof DmaResv));
    } finally {
      for (const l of held) l.unlock();
      ctx.fini();
    }
    this.count('lock');
  }

  private blockingLockOp(): void {
    const l = this.pick(this.locks);
    l.lockSync(null);
    try {
      if (l instanceof DmaResv) this.exclusive(l, false);
    } finally {
      l.unlock();
    }
    this.count('lock');
  }

  /** Under the locks of `resvs`: mutual exclusion, fences, invalidation, a hand-off pause. */
  private async holding(resvs: DmaResv[]): Promise<void> {
    const tokens = resvs.map((r) => this.exclusive(r, true));
    for (const r of resvs) {
      if (this.fences.length < 24 && this.rnd() < 0.5) {
        const usage = this.pick([
          DmaResvUsage.KERNEL,
          DmaResvUsage.WRITE,
          DmaResvUsage.READ,
          DmaResvUsage.READ,
          DmaResvUsage.BOOKKEEP,
        ]);
        const f = new DmaFence(fenceOps, this.context, ++this.seqno);
        r.reserveFences(1);
        r.addFence(f, usage);
        this.fences.push(f);
        this.count('fence');
      }
      if (this.rnd() < 0.1) {
        const i = this.locks.indexOf(r);
        this.bufs[i]?.invalidateMappings();
      }
    }
    if (this.rnd() < 0.3) await sleep(Math.floor(this.rnd() * this.holdMs) + 1);
    else await yieldNow();
    resvs.forEach((r, i) => {
      const t = tokens[i];
      if (t !== undefined && this.read(r) !== t) this.violate('another thread wrote under my lock');
    });
  }

  /** Writes a fresh token into the locked buffer's first word; returns it (undefined: no view). */
  private exclusive(r: DmaResv, keep: boolean): number | undefined {
    const i = this.locks.indexOf(r);
    const view = this.views[i];
    if (view === undefined) return undefined;
    const tok = ((Domain.current().thread << 22) | (this.token++ & 0x3fffff)) >>> 0;
    const w = new Int32Array(view.buffer, view.byteOffset, 1);
    Atomics.store(w, 0, tok | 0);
    if (!keep && Atomics.load(w, 0) !== (tok | 0))
      this.violate('another thread wrote under my lock');
    return tok | 0;
  }

  private read(r: DmaResv): number | undefined {
    const view = this.views[this.locks.indexOf(r)];
    if (view === undefined) return undefined;
    return Atomics.load(new Int32Array(view.buffer, view.byteOffset, 1), 0);
  }

  /** Maps the first page of each buffer for the mutual-exclusion check (call once, unlocked). */
  async mapViews(): Promise<void> {
    for (const b of this.bufs) this.views.push(await b.mmap(0, 4096, { write: true }));
  }

  /** A burst: signals up to eight of this thread's pending fences, sometimes with an error. */
  private signalOp(): void {
    const n = Math.min(this.fences.length, 1 + Math.floor(this.rnd() * 8));
    for (let i = 0; i < n; i++) {
      const f = this.fences.splice(Math.floor(this.rnd() * this.fences.length), 1)[0]!;
      if (this.rnd() < 0.1) f.setError(-5);
      f.signal();
      this.count('signal');
    }
  }

  private async syncOp(b: number): Promise<void> {
    const x = this.rnd();
    const buf = this.bufs[b]!;
    if (x < 0.35 || this.syncs.length === 0) {
      const sf = buf.exportSyncFile(this.pick([1, 2, 3]));
      this.syncs.push(sf);
      if (this.syncs.length > 4) this.syncs.shift()!.put();
    } else if (x < 0.6) {
      const sf = this.pick(this.syncs);
      const r = await sf.wait(2);
      if (r < 0 || (r > 0 && sf.info().status === 0))
        this.violate(`sync file wait ${r} while pending`);
    } else if (x < 0.8) {
      const m = SyncFile.merge('m', this.pick(this.syncs), this.pick(this.syncs));
      this.syncs.push(m);
      if (this.syncs.length > 4) this.syncs.shift()!.put();
    } else {
      await buf.importSyncFile(this.pick([1, 2]), this.pick(this.syncs));
    }
    this.count('sync');
  }

  // ---- the end --------------------------------------------------------------------------------

  /** Undoes everything this thread holds (after {@link stop}). */
  async teardown(): Promise<void> {
    for (const f of this.fences.splice(0)) f.signal();
    for (const a of this.atts.splice(0)) await this.undoAtt(a);
    for (const v of this.vmaps.splice(0)) await this.bufs[v.b]!.vunmapUnlocked(v.map);
    for (const s of this.syncs.splice(0)) s.put();
    for (const { fd } of this.fds.splice(0)) DmaBuf.close(fd);
    for (const ex of this.extra) for (const r of ex.splice(0)) r.put();
    for (const b of this.bufs) if (b.alive) b.put();
  }
}
