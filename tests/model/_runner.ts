/**
 * Runs model sequences against the library — in the main thread alone or across real workers —
 * checking every answer against the model and, after every step, auditing the shared records
 * (refcounts, attachment and handle records, vmap counts, armed poll callbacks, locks, fences),
 * the counting exporter and each thread's own objects (mapping validity, invalidations, waiters,
 * sync-file status). A failing sequence is shrunk by dropping steps while it still fails.
 */

import type { Worker } from 'node:worker_threads';
import { Domain } from '../../src/index.js';
import { C_RELEASES, CW, counterArray, readCounters } from '../../tools/stress/counted-exporter.js';
import {
  attachmentRecords,
  bufView,
  deadThreadFacts,
  fenceView,
  handleCounts,
  liveInodes,
  lockState,
  tableUse,
} from '../../tools/stress/inspect.js';
import { prng } from '../_rpc.js';
import { type ExecMsg, type ExecResult, Executor } from './_exec.js';
import { Model, type RawOp, type Step } from './_model.js';

const WORKER_URL = new URL('../fixtures/model-worker.js', import.meta.url);
/** Longest any one step may take before it counts as a deadlock (ms). */
export const STEP_TIMEOUT_MS = 5000;
/** How long the audit waits for eventual facts (a release forwarded home, a callback) (ms). */
const SETTLE_MS = 1500;
const MAX_COUNTERS = 48;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A model worker and its request channel. */
class ModelWorker {
  readonly worker: Worker;
  thread = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ExecResult) => void>();
  readonly exited: Promise<void>;
  dead = false;

  constructor() {
    this.worker = Domain.current().spawn(WORKER_URL);
    this.worker.on('message', (m: { rid: number; r: ExecResult }) => {
      const w = this.waiting.get(m.rid);
      this.waiting.delete(m.rid);
      w?.(m.r);
    });
    this.worker.on('error', () => {});
    this.exited = new Promise((r) =>
      this.worker.once('exit', () => {
        this.dead = true;
        r();
      }),
    );
  }

  call(msg: ExecMsg): Promise<ExecResult> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.worker.postMessage({ ...msg, rid: id });
    });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} did not finish in ${ms} ms (deadlock?)`)),
        ms,
      );
    }),
  ]);
}

export interface RunFailure {
  seed: number;
  step: number;
  text: string;
  complaint: string;
  /** The steps run, as text. */
  trace: string[];
}

export interface CaseResult {
  steps: number;
  skipped: number;
  kills: number;
  checks: number;
  failure: RunFailure | null;
  ops: RawOp[];
  leaks: Record<string, number>;
}

/** Threads of a model run: slot 0 is the calling thread, slots 1..n workers. */
export class Env {
  readonly threads: number;
  workers: (ModelWorker | null)[] = [];
  local = new Executor();
  counters = counterArray(MAX_COUNTERS);
  checks = 0;
  /** What the main thread held before the case (subtracted from what the tables say). */
  base = { fds: 0, holds: 0, atts: 0 };

  constructor(threads: number) {
    this.threads = threads;
  }

  async start(): Promise<void> {
    await this.local.scrub();
    this.local = new Executor();
    this.counters = counterArray(MAX_COUNTERS);
    await this.local.run({ op: 'init', counters: this.counters.buffer });
    if (this.workers.length === this.threads + 1 && this.workers.slice(1).every((w) => !w!.dead)) {
      // Reuse the workers of the previous (passing, cleaned-up) case.
      for (const w of this.workers.slice(1)) {
        const r = await withTimeout(
          w!.call({ op: 'init', counters: this.counters.buffer }),
          STEP_TIMEOUT_MS,
          'worker init',
        );
        if (!r.ok) throw new Error(`worker init failed: ${r.message}`);
      }
      return;
    }
    await this.stop();
    this.workers = [null];
    for (let i = 1; i <= this.threads; i++) this.workers.push(await this.spawn());
  }

  private async spawn(): Promise<ModelWorker> {
    const w = new ModelWorker();
    const r = await withTimeout(
      w.call({ op: 'init', counters: this.counters.buffer }),
      STEP_TIMEOUT_MS,
      'worker start',
    );
    if (!r.ok) throw new Error(`worker init failed: ${r.message}`);
    w.thread = r.v as number;
    return w;
  }

  domainThreads(): number[] {
    return [Domain.current().thread, ...this.workers.slice(1).map((w) => w!.thread)];
  }

  send(t: number, msg: ExecMsg): Promise<ExecResult> {
    const p = t === 0 ? this.local.run(msg) : this.workers[t]!.call(msg);
    return withTimeout(p, STEP_TIMEOUT_MS, `${msg.op} in thread slot ${t}`);
  }

  /** Terminates the worker of slot `t` (`respawn` starts a fresh one there). */
  async kill(t: number): Promise<void> {
    await this.workers[t]!.terminate();
  }

  async respawn(t: number): Promise<void> {
    this.workers[t] = await this.spawn();
  }

  async stop(): Promise<void> {
    for (const w of this.workers) await w?.terminate();
    this.workers = [];
  }
}

/** Runs one sequence: generated from `seed` (`ops` absent) or replayed (`ops` given). */
export async function runCase(
  env: Env,
  seed: number,
  opts: { steps: number; kills: boolean; ops?: RawOp[] },
): Promise<CaseResult> {
  await env.start();
  const d = Domain.current();
  const baseline = tableUse(d);
  const baseTickets = handleCounts(d, 0).tickets;
  // What this (main) thread holds from elsewhere — other tests, an earlier failed case.
  const mine = handleCounts(d, d.thread);
  env.base = { fds: mine.fds, holds: mine.holds, atts: attachmentRecords(d, d.thread) };
  const model = new Model(env.threads, env.domainThreads(), MAX_COUNTERS);
  const rnd = prng(seed);
  const ops: RawOp[] = [];
  const trace: string[] = [];
  let skipped = 0;
  const fail = (i: number, text: string, complaint: string): CaseResult => ({
    steps: ops.length,
    skipped,
    kills: model.kills,
    checks: env.checks,
    failure: { seed, step: i, text, complaint, trace },
    ops,
    leaks: {},
  });
  const n = opts.ops?.length ?? opts.steps;
  try {
    for (let i = 0; i < n; i++) {
      const raw = opts.ops ? opts.ops[i]! : model.generate(rnd, opts.kills);
      ops.push(raw);
      const step = model.resolve(raw);
      if (step === null) {
        skipped++;
        continue;
      }
      trace.push(`[${step.t}] ${step.text}`);
      const bad = await runStep(env, model, step);
      if (bad !== null) return fail(i, step.text, bad);
      const audit = await settle(env, model, baseTickets);
      if (audit !== null) return fail(i, step.text, audit);
    }
    // Cleanup through the model: signal, unmap, unpin, detach, vunmap, put sync files, claim
    // descriptors in flight, close, put — then everything must be gone.
    for (let guard = 0; guard < 2000; guard++) {
      const step = cleanupStep(model);
      if (step === null) break;
      trace.push(`(cleanup) ${step.text}`);
      const bad = await runStep(env, model, step);
      if (bad !== null) return fail(-1, step.text, bad);
      const audit = await settle(env, model, baseTickets);
      if (audit !== null) return fail(-1, step.text, audit);
    }
    const left = [...model.bufs.values()].filter((b) => !b.released);
    if (left.length > 0)
      return fail(
        -1,
        'end',
        `buffers not released after cleanup: ${left.map((b) => b.id).join(',')}`,
      );
    if (model.waiters.size > 0) {
      const open = await openWaiters(env, model);
      if (open !== null) return fail(-1, 'end', open);
    }
  } catch (e) {
    return fail(ops.length - 1, trace.at(-1) ?? '', String((e as Error)?.stack ?? e));
  }
  const now = tableUse(d);
  const leaks: Record<string, number> = {};
  for (const k of Object.keys(now)) leaks[k] = now[k]! - baseline[k]!;
  for (const t of ['buf', 'attach', 'handle'] as const) {
    if (leaks[t] !== 0)
      return { ...fail(-1, 'end', `${leaks[t]} ${t} records left after cleanup`), leaks };
  }
  return {
    steps: ops.length,
    skipped,
    kills: model.kills,
    checks: env.checks,
    failure: null,
    ops,
    leaks,
  };
}

async function runStep(env: Env, model: Model, step: Step): Promise<string | null> {
  if (step.kill !== undefined) {
    // Kill, check what the domain must have done for the dead thread (before its index can be
    // reused), then start a new worker in its slot.
    const dead = model.domainThread[step.kill]!;
    await env.kill(step.kill);
    step.apply({ ok: true });
    const end = performance.now() + SETTLE_MS;
    for (;;) {
      const bad = deadThreadFacts(Domain.current(), dead);
      if (bad === null) break;
      if (performance.now() > end) return bad;
      await sleep(2);
    }
    await env.respawn(step.kill);
    model.domainThread[step.kill] = env.workers[step.kill]!.thread;
    return null;
  }
  let r: ExecResult;
  if (step.msg.op === 'shareSync') {
    const a = await env.send(step.t, step.msg);
    r = a.ok ? await env.send(step.msg.to, { op: 'claimSync', desc: a.v, out: step.msg.out }) : a;
  } else {
    r = await env.send(step.t, step.msg);
  }
  const bad = step.check(r);
  if (bad !== null) return bad;
  step.apply(r);
  return null;
}

/** The next cleanup step, or null when nothing is left to undo. */
function cleanupStep(model: Model): Step | null {
  const order = [
    'signal',
    'unmap',
    'unpin',
    'detach',
    'vunmap',
    'putSync',
    'claim',
    'close',
    'put',
  ] as const;
  for (const k of order) {
    for (let t = 0; t <= model.threads; t++) {
      const s = model.resolve({ k, t, r: [0, 1, 1, 0] });
      if (s !== null) return s;
    }
  }
  return null;
}

/** Audits until everything agrees with the model or {@link SETTLE_MS} passes. */
async function settle(env: Env, model: Model, baseTickets: number): Promise<string | null> {
  const end = performance.now() + SETTLE_MS;
  for (let i = 0; ; i++) {
    const bad = await audit(env, model, baseTickets);
    env.checks++;
    if (bad === null) return null;
    if (performance.now() > end) return bad;
    await sleep(i < 5 ? 0 : 2);
  }
}

function slotOf(model: Model, thread: number): number {
  return model.domainThread.indexOf(thread);
}

/** One pass of every check. Returns the first complaint, or null. Updates resolved facts. */
async function audit(env: Env, model: Model, baseTickets: number): Promise<string | null> {
  const d = Domain.current();
  const c = env.counters;
  const armedBy = new Map<number, number>();
  let inodes: Set<number> | null = null;
  for (const b of model.bufs.values()) {
    const v = bufView(d, b.slot, b.gen);
    const cnt = readCounters(c, b.id);
    if (cnt.afterRelease !== 0) return `buf ${b.id}: exporter op called after release`;
    if (cnt.releases > 1) return `buf ${b.id}: exporter released ${cnt.releases} times`;
    const exporterAgrees = (): string | null => {
      if (!b.checked) return null;
      for (const k of ['attached', 'maps', 'pins', 'vmaps', 'cpuBegin', 'cpuEnd'] as const) {
        if (cnt[k] !== b.exp[k]) return `buf ${b.id}: exporter ${k} ${cnt[k]}, model ${b.exp[k]}`;
      }
      return null;
    };
    if (b.released) {
      if (v.live) return `buf ${b.id}: record alive again after release`;
      const bad = exporterAgrees();
      if (bad !== null) return bad;
      continue;
    }
    const obs = [v.pollIn, v.pollOut];
    for (const x of obs) if (x !== 0) armedBy.set(x, (armedBy.get(x) ?? 0) + 1);
    if (b.holders === 0 && obs[0] === 0 && obs[1] === 0) {
      if (v.live) return `buf ${b.id}: no holder left but not released (refs ${v.refs})`;
      inodes ??= liveInodes();
      if (inodes.has(b.inode)) return `buf ${b.id}: released but still on the global list`;
      const bad = exporterAgrees();
      if (bad !== null) return bad;
      if (b.mustRelease && cnt.releases !== 1)
        return `buf ${b.id}: released without the exporter's release (${cnt.releases})`;
      if (!b.mustRelease && cnt.releases !== 0 && cnt.releases !== 1)
        return `buf ${b.id}: release count ${cnt.releases}`;
      continue;
    }
    if (!v.live) return `buf ${b.id}: released while held (holders ${b.holders})`;
    if (cnt.releases !== 0) return `buf ${b.id}: exporter released while held`;
    const want = b.holders + (obs[0] !== 0 ? 1 : 0) + (obs[1] !== 0 ? 1 : 0);
    if (v.refs !== want)
      return `buf ${b.id}: refcount ${v.refs}, model ${b.holders} holders + ${want - b.holders} armed poll callbacks`;
    const atts = [...model.atts.values()].filter((a) => a.buf === b.id).length;
    if (v.attachments !== atts) return `buf ${b.id}: ${v.attachments} attachments, model ${atts}`;
    if (v.vmapCount !== b.vmapCount)
      return `buf ${b.id}: vmap count ${v.vmapCount}, model ${b.vmapCount}`;
    const lock = lockState(d, v.resvSlot);
    if (lock.holder !== 0 || lock.claimant !== 0)
      return `buf ${b.id}: reservation lock held (${lock.holder}) or claimed (${lock.claimant}) between steps`;
    for (const dir of [0, 1] as const) {
      const m = b.poll[dir];
      const o = obs[dir]!;
      if (m === null) {
        if (o !== 0)
          return `buf ${b.id}: poll dir ${dir} armed by thread ${o}, model says not armed`;
        continue;
      }
      const sig = [...m.cands].filter((f) => model.fences.get(f)!.signaled).length;
      if (sig === 0 && o === 0)
        return `buf ${b.id}: poll dir ${dir} callback fired before any of its fences signaled`;
      if (sig === m.cands.size && o !== 0)
        return `buf ${b.id}: poll dir ${dir} callback never fired (every candidate fence ${[...m.cands]} signaled)`;
    }
    const bad = exporterAgrees();
    if (bad !== null) return bad;
  }
  // What each live thread holds, as the handle and attachment tables record it.
  for (let t = 0; t <= model.threads; t++) {
    const T = model.domainThread[t]!;
    const h = handleCounts(d, T);
    if (t === 0) {
      h.fds -= env.base.fds;
      h.holds -= env.base.holds;
    }
    const fds = [...model.fds.values()].filter((x) => x.t === t).length;
    const refs = [...model.refs.values()].filter((x) => x.t === t).length;
    if (h.fds !== fds) return `thread ${t}: ${h.fds} fd records, model ${fds}`;
    if (h.holds !== refs + (armedBy.get(T) ?? 0))
      return `thread ${t}: holds ${h.holds} references, model ${refs} + ${armedBy.get(T) ?? 0} poll callbacks`;
    const atts = [...model.atts.values()].filter((a) => a.t === t).length;
    const ar = attachmentRecords(d, T) - (t === 0 ? env.base.atts : 0);
    if (ar !== atts) return `thread ${t}: ${ar} attachment records, model ${atts}`;
  }
  const tickets = handleCounts(d, 0).tickets - baseTickets;
  if (tickets !== model.tickets.size)
    return `${tickets} descriptors in flight, model ${model.tickets.size}`;
  for (const [id, f] of model.fences) {
    const v = fenceView(d, f.slot, f.gen);
    if (!f.signaled && v.state !== 'pending') return `fence ${id}: ${v.state}, model pending`;
    if (f.signaled && v.state === 'pending') return `fence ${id}: pending, model signaled`;
    if (v.state === 'signaled' && v.error !== f.error)
      return `fence ${id}: error ${v.error}, model ${f.error}`;
  }
  // Thread-local facts, reported by each thread.
  for (let t = 0; t <= model.threads; t++) {
    const ids: number[] = [];
    for (const [id, m] of model.maps) if (model.atts.get(m.att)!.t === t) ids.push(id);
    for (const [id, a] of model.atts) if (a.t === t && a.dynamic) ids.push(id);
    for (const [id, w] of model.waiters) if (w.t === t) ids.push(id);
    for (const [id, s] of model.sfs) if (s.t === t) ids.push(id);
    if (ids.length === 0) continue;
    const r = await env.send(t, { op: 'report', ids });
    if (!r.ok) return `report from thread ${t}: ${r.message}`;
    const rep = r.v as Record<number, any>;
    for (const id of ids) {
      const x = rep[id];
      if (x === null || x === undefined) return `thread ${t} lost object ${id}`;
      const m = model.maps.get(id);
      if (m !== undefined && x.valid !== m.valid)
        return `map ${id}: valid ${x.valid}, model ${m.valid}`;
      const a = model.atts.get(id);
      if (a !== undefined && x.invalidations !== a.invalidations)
        return `att ${id}: ${x.invalidations} invalidations, model ${a.invalidations}`;
      const w = model.waiters.get(id);
      if (w !== undefined) {
        const early = [...w.must].filter((f) => !model.fences.get(f)!.signaled);
        if (x.done && x.code !== null) return `waiter ${id} failed with ${x.code}`;
        if (x.done && early.length > 0) return `waiter ${id} woke before fences ${early} signaled`;
        if (x.done && !(x.value > 0)) return `waiter ${id} returned ${x.value}`;
        const all = [...w.must, ...w.may].every((f) => model.fences.get(f)!.signaled);
        if (all && !x.done)
          return `waiter ${id} did not wake though every fence it waits for signaled`;
      }
      const s = model.sfs.get(id);
      if (s !== undefined) {
        const fs = [...s.fences].map((f) => model.fences.get(f)!);
        const want = fs.some((f) => !f.signaled) ? 0 : fs.some((f) => f.error < 0) ? -1 : 1;
        const got = Math.sign(x.status);
        if (got !== want) return `sync file ${id}: status ${x.status}, model ${want}`;
      }
    }
  }
  // Everything agrees: record what was resolved by observation.
  for (const b of model.bufs.values()) {
    if (b.released) continue;
    const v = bufView(d, b.slot, b.gen);
    if (b.holders === 0 && !v.live) {
      b.released = true;
      continue;
    }
    const obs = [v.pollIn, v.pollOut];
    for (const dir of [0, 1] as const) {
      const m = b.poll[dir];
      if (m === null) continue;
      if (obs[dir] === 0) b.poll[dir] = null;
      else m.t = slotOf(model, obs[dir]!);
    }
  }
  for (const [id, w] of model.waiters) {
    if ([...w.must, ...w.may].every((f) => model.fences.get(f)!.signaled)) model.waiters.delete(id);
  }
  return null;
}

async function openWaiters(_env: Env, model: Model): Promise<string | null> {
  return model.waiters.size > 0 ? `waiters never resolved: ${[...model.waiters.keys()]}` : null;
}

/** The exporter release counter of buffer `id` (tests). */
export function releases(env: Env, id: number): number {
  return Atomics.load(env.counters, id * CW + C_RELEASES);
}

export function describeFailure(f: RunFailure, ops: RawOp[]): string {
  return [
    `model failure (DMABUF_SEED=${f.seed}) at step ${f.step}: ${f.text}`,
    `  ${f.complaint}`,
    `  shrunk sequence (${f.trace.length} steps run):`,
    ...f.trace.map((s, i) => `    ${String(i).padStart(3)} ${s}`),
    `  raw: ${JSON.stringify(ops)}`,
  ].join('\n');
}

function category(f: RunFailure): string {
  return f.complaint.replace(/\d+/g, 'N').slice(0, 60);
}

/**
 * Shrinks a failing sequence: drops chunks of steps (halves, quarters, … single steps) while the
 * replay still fails the same way, within `budgetMs`. Returns the smallest failing replay.
 */
export async function shrink(
  env: Env,
  seed: number,
  first: CaseResult,
  budgetMs = 60_000,
): Promise<CaseResult> {
  let best = first;
  const want = category(first.failure!);
  const end = performance.now() + budgetMs;
  let ops = first.ops.slice(
    0,
    first.failure!.step >= 0 ? first.failure!.step + 1 : first.ops.length,
  );
  const tryOps = async (cand: RawOp[]): Promise<CaseResult | null> => {
    await env.stop();
    const r = await runCase(env, seed, { steps: cand.length, kills: true, ops: cand });
    return r.failure !== null && category(r.failure) === want ? r : null;
  };
  for (let chunk = Math.max(1, ops.length >> 1); chunk >= 1 && performance.now() < end; ) {
    let removed = false;
    for (let i = 0; i < ops.length && performance.now() < end; i += chunk) {
      const cand = [...ops.slice(0, i), ...ops.slice(i + chunk)];
      const r = await tryOps(cand);
      if (r !== null) {
        ops = r.failure!.step >= 0 ? cand.slice(0, r.failure!.step + 1) : cand;
        best = r;
        removed = true;
        i -= chunk;
      }
    }
    if (!removed) chunk >>= 1;
  }
  await env.stop();
  return { ...best, ops };
}
