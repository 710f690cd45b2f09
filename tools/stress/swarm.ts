/**
 * A swarm of hammering threads over shared buffers, fences and locks — the main thread and any
 * number of workers (hammer-worker.ts) — with the checks a run needs from the main thread:
 * what the domain must have done for a worker that was killed (its handles, references,
 * attachments, locks, claims and pending fences gone), that the survivors keep making progress,
 * that the global list and `bufinfo` (which takes every buffer's lock) still answer, that
 * exporters release at most once and never run an op after release, and at the end, once every
 * thread has undone what it held, that everything is back where it started and each exporter
 * released exactly once. Used by the thread-death test and by the stress tool.
 */

import type { Worker } from 'node:worker_threads';
import {
  DmaBuf,
  type DmaBufDescriptor,
  Domain,
  type SyncFile,
  systemHeap,
  WwMutex,
} from '../../src/index.js';
import { COUNTED_SIZE, counterArray, exportCounted, readCounters } from './counted-exporter.js';
import { Hammer, KINDS, S_PROGRESS, S_VIOLATIONS, STAT_WORDS } from './hammer.js';
import { bufView, deadThreadFacts, liveInodes, lockState, tableUse } from './inspect.js';

const WORKER_URL = new URL('./hammer-worker.js', import.meta.url);
const MAX_SLOTS = 512;
const MAX_COUNTERS = 1024;

export interface SwarmOptions {
  workers: number;
  seed: number;
  /** Buffers exported by the main thread (counted bound, counted shared, system heap in turn). */
  buffers?: number;
  /** Standalone ww-mutexes in the acquire sets. */
  mutexes?: number;
  /** Whether the main thread hammers too. */
  mainHammer?: boolean;
  /** Longest a lock is held on purpose (ms). */
  holdMs?: number;
}

interface MainBuf {
  /** Counter id, or -1 for a system-heap buffer. */
  id: number;
  ref: DmaBuf;
  slot: number;
  gen: number;
  inode: number;
}

interface Member {
  slot: number;
  worker: Worker;
  thread: number;
  exited: Promise<void>;
  stopped: Promise<void> | null;
  /** Descriptors sent to it (reclaimed if it dies before installing them). */
  sent: DmaBufDescriptor[];
  ownId: number;
  own: DmaBuf | null;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), ms);
    }),
  ]);
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(2);
  }
  return true;
}

export class Swarm {
  readonly opts: Required<SwarmOptions>;
  readonly d = Domain.current();
  readonly counters = counterArray(MAX_COUNTERS);
  readonly stats = new Int32Array(new SharedArrayBuffer(MAX_SLOTS * STAT_WORDS * 4));
  readonly violations: string[] = [];
  /**
   * What a thread killed inside one of the known windows leaves behind (docs/reliability.md,
   * "Known limits"): a reference, when the kill falls in the few statements of get/fd/share/
   * install/close/put/poll that hand a reference over — on a shared buffer or on a killed
   * worker's own one; a mapping or pin, when it falls between a shared exporter's op and the
   * store that counts it. Always something kept too long, never released or undone early or
   * twice. Counted apart from {@link violations}, so that callers can bound them without hiding
   * anything else.
   */
  readonly refLeaks: string[] = [];
  /** Killed workers' own buffers: released once the main thread's reference is put. */
  private readonly orphanBufs: { slot: number; gen: number; inode: number }[] = [];
  readonly bufs: MainBuf[] = [];
  readonly mutexes: WwMutex[] = [];
  readonly members = new Map<number, Member>();
  /** Exporter ids of workers that were killed: their exporter died with them. */
  readonly orphaned: number[] = [];
  kills = 0;
  reclaimed = 0;
  checks = 0;
  private nextSlot = 1;
  private nextCounter = 0;
  private mainHammer: Hammer | null = null;
  private mainRun: Promise<void> | null = null;
  private readonly waiters: { p: Promise<number>; done: boolean; sf: SyncFile }[] = [];
  private baseline: Record<string, number> = {};
  private started = 0;

  constructor(opts: SwarmOptions) {
    this.opts = { buffers: 6, mutexes: 2, mainHammer: true, holdMs: 2, ...opts };
  }

  private violate(what: string): void {
    this.violations.push(what);
  }

  /** Exports the shared objects and starts every thread. */
  async start(): Promise<void> {
    this.baseline = tableUse(this.d);
    for (let i = 0; i < this.opts.buffers; i++) {
      let ref: DmaBuf;
      let id = -1;
      if (i % 3 === 2) ref = systemHeap.allocateBuffer(COUNTED_SIZE);
      else {
        id = this.nextCounter++;
        ref = exportCounted(
          this.counters.buffer as SharedArrayBuffer,
          id,
          i % 3 === 0 ? 'bound' : 'shared',
          i % 2 === 0,
        );
      }
      const core = (ref as any)._core;
      this.bufs.push({ id, ref, slot: core.slot, gen: core.gen, inode: ref.inode });
    }
    for (let i = 0; i < this.opts.mutexes; i++) this.mutexes.push(new WwMutex());
    this.started = performance.now();
    if (this.opts.mainHammer) {
      this.mainHammer = new Hammer({
        seed: this.opts.seed,
        slot: 0,
        stats: this.stats.buffer as SharedArrayBuffer,
        bufs: this.bufs.map((b) => b.ref.share()),
        mutexes: this.mutexes.map((m) => m.share()),
        blocking: false,
        holdMs: this.opts.holdMs,
      });
      this.mainHammer.onViolation = (w) => this.violate(w);
      await this.mainHammer.mapViews();
      this.mainRun = this.mainHammer.run();
    }
    for (let i = 0; i < this.opts.workers; i++) await this.spawn();
  }

  /** Starts one more hammering worker; resolves once it runs. */
  async spawn(): Promise<Member> {
    const slot = this.nextSlot++;
    if (slot >= MAX_SLOTS) throw new Error('too many workers for the stats array');
    const worker = Domain.current().spawn(WORKER_URL);
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    worker.on('error', (e) => this.violate(`worker ${slot} error: ${String(e)}`));
    const sent = this.bufs.map((b) => b.ref.share());
    const ownId = this.nextCounter++;
    const m: Member = { slot, worker, thread: 0, exited, stopped: null, sent, ownId, own: null };
    const started = new Promise<DmaBufDescriptor>((resolve) => {
      worker.on('message', (msg: { type: string; what?: string; desc?: DmaBufDescriptor }) => {
        if (msg.type === 'violation') this.violate(msg.what!);
        else if (msg.type === 'started') resolve(msg.desc!);
      });
    });
    worker.postMessage({
      type: 'start',
      counters: this.counters.buffer,
      exportId: ownId,
      init: {
        seed: this.opts.seed * 7919 + slot,
        slot,
        stats: this.stats.buffer,
        bufs: sent,
        mutexes: this.mutexes.map((x) => x.share()),
        blocking: true,
        holdMs: this.opts.holdMs,
      },
    });
    const desc = await withTimeout(started, 10_000);
    if (desc === 'timeout') throw new Error(`worker ${slot} did not start`);
    m.own = DmaBuf.fromShared(desc);
    m.thread = m.own.homeThread;
    this.members.set(slot, m);
    return m;
  }

  /**
   * Terminates a worker wherever it is, then checks what the domain must have done for it.
   * Descriptors it never installed are reclaimed here (a descriptor in flight is nobody's).
   */
  async kill(slot: number): Promise<void> {
    const m = this.members.get(slot)!;
    this.members.delete(slot);
    // Bounded, so that a kill that never completes is reported, not a silent hang of the run.
    if ((await withTimeout(m.worker.terminate(), 10_000)) === 'timeout')
      throw new Error(`worker ${m.slot}: terminate() did not finish in 10 s`);
    if ((await withTimeout(m.exited, 10_000)) === 'timeout')
      throw new Error(`worker ${m.slot}: no exit event 10 s after terminate()`);
    this.kills++;
    for (const desc of m.sent) {
      try {
        DmaBuf.fromShared(desc).put();
        this.reclaimed++;
      } catch {
        // installed by the worker: put by the domain with the rest of what it held
      }
    }
    const done = await until(() => deadThreadFacts(this.d, m.thread) === null, 3000);
    if (!done) this.violate(`after kill ${this.kills}: ${deadThreadFacts(this.d, m.thread)}`);
    // Its own buffer: still referenced here, its exporter gone with it.
    const own = m.own!;
    const v = bufView(this.d, (own as any)._core.slot, (own as any)._core.gen);
    if (!v.live) this.violate(`a killed worker's buffer was released while referenced here`);
    try {
      const r = await withTimeout(own.attach({ name: 'late' }), 5000);
      if (r === 'timeout') throw new Error('attach did not answer in 5 s');
      this.violate('attach to a buffer whose thread-bound exporter died succeeded');
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENODEV')
        this.violate(`attach after the exporter died: ${String(e)} (want ENODEV)`);
    }
    const oc = (own as any)._core;
    this.orphanBufs.push({ slot: oc.slot, gen: oc.gen, inode: own.inode });
    own.put();
    this.orphaned.push(m.ownId);
  }

  /** Live worker slots. */
  slots(): number[] {
    return [...this.members.keys()];
  }

  /** Checks that can be made while everybody runs. */
  async checkLive(): Promise<void> {
    this.checks++;
    for (let id = 0; id < this.nextCounter; id++) {
      const c = readCounters(this.counters, id);
      if (c.releases > 1) this.violate(`exporter ${id} released ${c.releases} times`);
      if (c.afterRelease !== 0) this.violate(`exporter ${id}: op after release`);
    }
    for (const b of this.bufs) {
      if (!bufView(this.d, b.slot, b.gen).live)
        this.violate(`buffer ${b.inode} released while held`);
    }
    const inodes = liveInodes();
    for (const b of this.bufs)
      if (!inodes.has(b.inode)) this.violate(`buffer ${b.inode} off the list`);
    // bufinfo takes every buffer's lock in turn: a lock nobody can get shows up here.
    const info = await withTimeout(DmaBuf.bufinfo(), 5000);
    if (info === 'timeout')
      this.violate('bufinfo did not finish in 5 s (a reservation lock is stuck)');
    // The survivors keep working.
    const before = new Map(this.slots().map((s) => [s, this.progress(s)]));
    const moved = await until(
      () => this.slots().every((s) => this.progress(s) > before.get(s)!),
      5000,
    );
    if (!moved) {
      const stuck = this.slots().filter((s) => this.progress(s) === before.get(s));
      this.violate(`workers ${stuck} made no progress for 5 s (deadlock?)`);
    }
    // A waiter on the current implicit fences: it must wake once every fence has signaled.
    const b = this.bufs[this.checks % this.bufs.length]!;
    const sf = b.ref.exportSyncFile(3);
    const w = { p: sf.wait(30_000), done: false, sf };
    void w.p.then(
      () => (w.done = true),
      () => (w.done = true),
    );
    this.waiters.push(w);
  }

  progress(slot: number): number {
    return Atomics.load(this.stats, slot * STAT_WORDS + S_PROGRESS);
  }

  /**
   * Stops every thread (each undoes what it holds), checks that nothing is left over, releases
   * everything and checks each exporter released exactly once.
   */
  async stop(): Promise<void> {
    this.mainHammer?.stop();
    await this.mainRun;
    const ms = [...this.members.values()];
    for (const m of ms) {
      m.stopped = new Promise((r) =>
        m.worker.on('message', (x: { type: string }) => x.type === 'stopped' && r()),
      );
      m.worker.postMessage({ type: 'stop' });
    }
    for (const m of ms) {
      if ((await withTimeout(m.stopped!, 10_000)) === 'timeout')
        this.violate(`worker ${m.slot} did not stop in 10 s`);
    }
    const elapsed = performance.now() - this.started;
    // Every fence has signaled now: every waiter wakes.
    if (!(await until(() => this.waiters.every((w) => w.done), 3000)))
      this.violate(`${this.waiters.filter((w) => !w.done).length} waiters never woke`);
    for (const w of this.waiters) w.sf.put();
    const leaked = new Set<number>();
    for (const b of this.bufs) {
      const ok = await until(() => {
        const v = bufView(this.d, b.slot, b.gen);
        return v.refs === 1 && v.pollIn === 0 && v.pollOut === 0;
      }, 3000);
      const v = bufView(this.d, b.slot, b.gen);
      if (!ok) {
        const what = `buffer ${b.inode}: ${v.refs} references left after every thread stopped (1 expected)`;
        if (v.refs > 1 && v.pollIn === 0 && v.pollOut === 0) {
          this.refLeaks.push(what);
          leaked.add(b.inode);
        } else this.violate(what);
      }
      if (v.attachments !== 0) this.violate(`buffer ${b.inode}: ${v.attachments} attachments left`);
      if (v.vmapCount !== 0) this.violate(`buffer ${b.inode}: vmap count ${v.vmapCount} left`);
      const l = lockState(this.d, v.resvSlot);
      if (l.holder !== 0 || l.claimant !== 0)
        this.violate(`buffer ${b.inode}: lock left held/claimed`);
    }
    // Workers' own buffers: released by the exporter in their (live) thread.
    for (const m of ms) {
      m.own!.put();
      if (!(await until(() => readCounters(this.counters, m.ownId).releases === 1, 3000)))
        this.violate(`worker ${m.slot}'s exporter never released its buffer`);
    }
    for (const m of ms) {
      if (
        (await withTimeout(
          m.worker.terminate().then(() => m.exited),
          10_000,
        )) === 'timeout'
      ) {
        this.violate(`worker ${m.slot}: terminate() did not finish in 10 s`);
        continue;
      }
      this.members.delete(m.slot);
      if (!(await until(() => deadThreadFacts(this.d, m.thread) === null, 3000)))
        this.violate(`worker ${m.slot} left: ${deadThreadFacts(this.d, m.thread)}`);
    }
    for (const b of this.bufs) b.ref.put();
    for (const m of this.mutexes) m.destroy();
    for (const b of this.bufs) {
      if (b.id < 0) continue;
      const c = readCounters(this.counters, b.id);
      if (c.releases === 0 && leaked.has(b.inode)) continue; // the leaked reference keeps it
      if (c.releases !== 1)
        this.violate(`exporter ${b.id} released ${c.releases} times (1 expected)`);
      for (const k of ['attached', 'maps', 'pins', 'vmaps'] as const) {
        if (c[k] === 0) continue;
        const what = `exporter ${b.id}: ${k} ${c[k]} left`;
        // A kill after a shared exporter's map or pin, before its count: kept, never undone.
        if ((k === 'maps' || k === 'pins') && c[k]! > 0 && c.attached === 0)
          this.refLeaks.push(`${what} (an op left uncounted by a kill)`);
        else this.violate(what);
      }
    }
    for (const id of this.orphaned) {
      const c = readCounters(this.counters, id);
      if (c.releases !== 0) this.violate(`exporter ${id} ran a release after its thread died`);
    }
    const inodes = liveInodes();
    for (const b of this.bufs)
      if (inodes.has(b.inode) && !leaked.has(b.inode))
        this.violate(`buffer ${b.inode} never released`);
    if (
      !(await until(
        () => this.leaks().buf === 0 && this.leaks().handle === 0 && this.leaks().attach === 0,
        3000,
      ))
    ) {
      const t = this.d.tables.buf;
      const left: string[] = [];
      let unexplained = 0;
      let orphans = 0;
      for (const s of t.allocated()) {
        const g = t.gen(s);
        const v = bufView(this.d, s, g);
        if (!v.live) continue;
        left.push(`slot ${s}: ${v.refs} refs, home thread ${v.home}`);
        const mine = this.bufs.find((b) => b.slot === s && b.gen === g);
        if (mine !== undefined && leaked.has(mine.inode)) continue;
        // A killed worker's own buffer kept by a reference its worker was handing over.
        const orphan = this.orphanBufs.find((b) => b.slot === s && b.gen === g);
        if (orphan !== undefined && v.refs > 0 && v.pollIn === 0 && v.pollOut === 0) {
          orphans++;
          this.refLeaks.push(
            `a killed worker's buffer ${orphan.inode}: ${v.refs} references left with no holder`,
          );
          continue;
        }
        unexplained++;
      }
      const what = `records left: ${JSON.stringify(this.leaks())}; live buffers: ${left.join('; ')}`;
      // The leaked references' buffers (and their handle records) stay: that is the same leak.
      const l = this.leaks();
      if (unexplained === 0 && l.attach === 0 && l.handle <= leaked.size + orphans)
        this.refLeaks.push(what);
      else this.violate(what);
    }
    this.elapsedMs = elapsed;
  }

  elapsedMs = 0;

  /** Slots allocated since start, per shared table. */
  leaks(): Record<string, number> {
    const now = tableUse(this.d);
    const out: Record<string, number> = {};
    for (const k of Object.keys(now)) out[k] = now[k]! - (this.baseline[k] ?? 0);
    return out;
  }

  /** Operations per kind over every thread that ran. */
  totals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [i, k] of KINDS.entries()) {
      let n = 0;
      for (let s = 0; s < this.nextSlot; s++) n += Atomics.load(this.stats, s * STAT_WORDS + i);
      out[k] = n;
    }
    return out;
  }

  /** Violations counted in the stats (including those of killed workers not yet posted). */
  countedViolations(): number {
    let n = 0;
    for (let s = 0; s < this.nextSlot; s++)
      n += Atomics.load(this.stats, s * STAT_WORDS + S_VIOLATIONS);
    return n;
  }
}
