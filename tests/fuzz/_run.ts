/**
 * The fuzzer's two drivers over the entry table (`_surface.ts`).
 *
 * - {@link runTable}: for every entry, a call with valid arguments, then one call per (parameter,
 *   bad value) — every {@link JUNK} value, every struct field, every extra bad value of that
 *   parameter — and one per stale or wrong-state receiver. Each row runs in a fresh
 *   {@link World}, followed by the health check.
 * - {@link runGenerative}: fast-check episodes of random calls on one world: random entries, random
 *   receivers (good, stale, or any live object of the world), arguments drawn from valid values,
 *   the junk catalogue, `fc.anything()`, extra bad values and the world's live and dead objects.
 *   A call that does not settle is given a chance — every fence of the world signaled, every lock
 *   the fuzzer holds released, every mapping unmapped — and must then settle. The health check
 *   runs after each episode.
 *
 * The oracle is the same for both: a rejected call must throw (or reject with) a `DmaBufError`
 * whose code is one the parameter kinds and the entry allow; never another error, never a hang,
 * never an uncaught exception, and the world must be healthy afterwards.
 */

import fc from 'fast-check';
import { DmaBufError, type ErrnoCode } from '../../src/errors.js';
import { DmaFence, SyncFile } from '../../src/index.js';
import { ENTRIES, type Entry, type Extra, type Param } from './_surface.js';
import { anything, JUNK, K, show } from './_values.js';
import { type Baseline, baseline, health, Watch, World } from './_world.js';

export interface Failure {
  entry: string;
  row: string;
  problem: string;
}

export class Stats {
  readonly calls = new Map<string, number>();
  readonly failures: Failure[] = [];
  total = 0;
  count(entry: string): void {
    this.calls.set(entry, (this.calls.get(entry) ?? 0) + 1);
    this.total++;
  }
  fail(entry: string, row: string, problem: string): void {
    this.failures.push({ entry, row, problem });
  }
}

type Outcome = { kind: 'ok'; v: unknown } | { kind: 'err'; e: unknown } | { kind: 'hang' };

/** Calls `thunk`, awaiting a returned Promise for at most `ms`. */
export async function invoke(thunk: () => unknown, ms: number): Promise<Outcome> {
  let v: unknown;
  try {
    v = thunk();
  } catch (e) {
    return { kind: 'err', e };
  }
  if (!(v instanceof Promise)) return { kind: 'ok', v };
  return settle(v, ms);
}

async function settle(p: Promise<unknown>, ms: number): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<Outcome>((r) => {
    timer = setTimeout(() => r({ kind: 'hang' }), ms);
  });
  try {
    return await Promise.race([
      p.then(
        (v): Outcome => ({ kind: 'ok', v }),
        (e): Outcome => ({ kind: 'err', e }),
      ),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a row expects: codes, and whether a return value is acceptable. */
interface Expect {
  codes: readonly ErrnoCode[];
  ok: boolean;
}

function describeErr(e: unknown): string {
  if (e instanceof DmaBufError) return `DmaBufError ${e.message}`;
  if (e instanceof Error)
    return `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 4).join('\n')}`;
  return `a non-Error value (${show(e)})`;
}

/** The verdict on one outcome; null when it is acceptable. */
export function judge(o: Outcome, x: Expect): string | null {
  if (o.kind === 'hang') return 'did not settle (hang)';
  if (o.kind === 'ok')
    return x.ok ? null : `accepted (returned ${show(o.v)}); expected ${x.codes.join('|')}`;
  const e = o.e;
  if (!(e instanceof DmaBufError)) return `threw ${describeErr(e)}`;
  if (!x.codes.includes(e.code))
    return `wrong code: ${e.message}; expected ${x.ok ? 'success or ' : ''}${x.codes.join('|') || 'success'}`;
  return null;
}

// ---- table-driven ------------------------------------------------------------------------------------

interface Row {
  label: string;
  /** A stale receiver (args are still built from a good one). */
  stale?: Extra;
  /** Index of the parameter replaced, and how. */
  param?: number;
  field?: string;
  /** The replacement value, boxed (a Promise junk value must reach the call as a Promise). */
  value?: (w: World) => Promise<{ v: unknown }>;
  expect: Expect;
}

function union(...lists: (readonly ErrnoCode[] | undefined)[]): ErrnoCode[] {
  return [...new Set(lists.flatMap((l) => l ?? []))];
}

function valueRows(p: Param, i: number, field: string | undefined, entry: Entry): Row[] {
  const rows: Row[] = [];
  const where = field === undefined ? `arg ${i}` : `arg ${i}.${field}`;
  for (const junk of JUNK) {
    const probe = junk.make();
    const valid = p.kind.valid(probe);
    if (valid && p.skip?.(probe)) continue;
    rows.push({
      label: `${where} = ${junk.label}`,
      param: i,
      field,
      value: async () => ({ v: junk.make() }),
      expect: valid
        ? { codes: union(entry.codes, p.kind.validCodes), ok: true }
        : { codes: union(p.kind.codes, entry.codes), ok: false },
    });
  }
  for (const x of p.extra ?? []) {
    rows.push({
      label: `${where} = ${x.label}`,
      param: i,
      field,
      value: async (w) => ({ v: await x.make(w) }),
      expect:
        x.codes === 'ok'
          ? { codes: union(entry.codes), ok: true }
          : { codes: union(x.codes), ok: false },
    });
  }
  return rows;
}

function rowsOf(entry: Entry): Row[] {
  const rows: Row[] = [
    { label: 'valid arguments', expect: { codes: union(entry.codes), ok: true } },
  ];
  entry.params.forEach((p, i) => {
    rows.push(...valueRows(p, i, undefined, entry));
    for (const [f, fp] of Object.entries(p.fields ?? {})) rows.push(...valueRows(fp, i, f, entry));
  });
  for (const s of entry.stale ?? []) {
    rows.push({
      label: `receiver: ${s.label}`,
      stale: s,
      expect:
        s.codes === 'ok'
          ? { codes: union(entry.codes), ok: true }
          : { codes: union(s.codes), ok: false },
    });
  }
  return rows;
}

async function buildArgs(entry: Entry, w: World, r: unknown, row: Row | null): Promise<unknown[]> {
  const args: unknown[] = [];
  for (let i = 0; i < entry.params.length; i++) {
    const p = entry.params[i]!;
    if (row?.param === i && row.field === undefined) {
      args.push((await row.value!(w)).v);
      continue;
    }
    let v = await p.good(w, r);
    if (row?.param === i && row.field !== undefined) {
      v = { ...(v as object), [row.field]: (await row.value!(w)).v };
    }
    args.push(v);
  }
  // Trailing undefined arguments stay (they exercise the defaults).
  return args;
}

const CALL_MS = 2000;

/** Runs one entry's rows; returns the number of calls made. */
export async function runEntry(
  entry: Entry,
  stats: Stats,
  watch: Watch,
  base: { b: Baseline },
): Promise<void> {
  for (const row of rowsOf(entry)) {
    const w = new World();
    let recv: unknown;
    let args: unknown[];
    try {
      const good = entry.recv ? await entry.recv(w) : undefined;
      args = await buildArgs(entry, w, good, row);
      recv = row.stale ? await row.stale.make(w) : good;
      if (row.stale) w.adopt(recv);
    } catch (e) {
      stats.fail(entry.name, row.label, `row setup failed: ${describeErr(e)}`);
      await w.teardown();
      base.b = baseline();
      continue;
    }
    const o = await invoke(() => entry.call(recv, args), CALL_MS);
    stats.count(entry.name);
    const verdict = judge(o, row.expect) ?? (o.kind === 'ok' ? (entry.ret?.(o.v) ?? null) : null);
    if (verdict !== null) stats.fail(entry.name, row.label, verdict);
    if (o.kind === 'ok') {
      try {
        await (entry.post ? entry.post(w, recv, args, o.v) : w.adopt(o.v));
      } catch (e) {
        stats.fail(entry.name, row.label, `post: ${describeErr(e)}`);
      }
    }
    const problems = await health(w, base.b, watch);
    if (problems.length > 0) {
      stats.fail(entry.name, row.label, `unhealthy afterwards: ${problems.join('; ')}`);
      base.b = { ...baseline(), tainted: true };
    }
  }
}

export async function runTable(filter?: (e: Entry) => boolean): Promise<Stats> {
  const stats = new Stats();
  const watch = new Watch().start();
  const base = { b: baseline() };
  try {
    for (const entry of ENTRIES) {
      if (filter && !filter(entry)) continue;
      await runEntry(entry, stats, watch, base);
    }
  } finally {
    watch.stop();
  }
  return stats;
}

// ---- generative --------------------------------------------------------------------------------------

/** One abstract step: which entry, which receiver, and for each parameter where its value comes from. */
interface Step {
  entry: number;
  recv: number; // 0..69 good, 70..84 stale, 85..99 a pool object
  args: { src: number; pick: number; junk: unknown }[];
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  entry: fc.nat({ max: 1 << 16 }),
  recv: fc.nat({ max: 99 }),
  args: fc.array(
    fc.record({ src: fc.nat({ max: 99 }), pick: fc.nat({ max: 1 << 16 }), junk: anything }),
    { minLength: 5, maxLength: 5 },
  ),
});

const GEN_ENTRIES = ENTRIES.filter((e) => !e.noGen);

/** Liveness: how long a call may take before the world is released, and after. */
const GEN_WAIT_MS = 150;
const GEN_RELEASE_MS = 2000;

function isTimeoutKind(p: Param): boolean {
  return p.kind === K.timeout || p.kind === K.timeoutOpt || p.kind.name === 'timeout?';
}

async function genArg(
  w: World,
  p: Param,
  r: unknown,
  a: Step['args'][number],
  pool: unknown[],
): Promise<unknown> {
  let v: unknown;
  const s = a.src;
  if (s < 45) v = await p.good(w, r);
  else if (s < 65) v = JUNK[a.pick % JUNK.length]!.make();
  else if (s < 80) v = a.junk;
  else if (s < 90 && (p.extra?.length ?? 0) > 0)
    v = await p.extra![a.pick % p.extra!.length]!.make(w);
  else if (pool.length > 0) v = pool[a.pick % pool.length];
  else v = await p.good(w, r);
  // Keep blocking calls bounded: a valid timeout longer than a few ms becomes 3 ms.
  if (isTimeoutKind(p) && (v === undefined || (typeof v === 'number' && v > 3))) v = 3;
  if (
    p.kind.name === 'object?' &&
    p.fields?.timeoutMs !== undefined &&
    v !== null &&
    typeof v === 'object'
  ) {
    const t = (v as { timeoutMs?: unknown }).timeoutMs;
    if (t === undefined || (typeof t === 'number' && t > 3)) v = { ...(v as object), timeoutMs: 3 };
  }
  return v;
}

/** Every object the world knows, live or dead (what a pool pick may hand to any parameter). */
function poolOf(w: World): unknown[] {
  return [
    ...w.fences,
    ...w.resvs,
    ...w.bufs,
    ...w.fds,
    ...w.syncFiles,
    ...w.atts.map((a) => a.att),
    ...w.mappings,
    ...w.vmaps.map((m) => m.map),
    ...w.ctxs,
    ...w.mutexes,
    ...w.timelines,
    ...w.descs.map((d) => d.desc),
  ];
}

/** Lets every blocked call finish: signals the world's fences, drops its locks and mappings. */
async function releaseWorld(w: World): Promise<void> {
  for (const { lock } of w.held.splice(0).reverse()) {
    try {
      if (lock.isHeld()) lock.unlock();
    } catch {
      // dead object
    }
  }
  for (const f of [...w.fences]) {
    try {
      f.signal();
    } catch {
      // callback errors are the call's business
    }
  }
  for (const t of w.timelines) {
    try {
      t.destroy();
    } catch {
      // already
    }
  }
  for (const m of w.mappings.splice(0)) {
    try {
      if (!m._unmapped && !m.attachment._detached) await m.attachment.unmapAttachmentUnlocked(m);
    } catch {
      // already gone
    }
  }
}

/** Runs one generative step; returns a problem or null. */
async function genStep(w: World, step: Step, stats: Stats): Promise<string | null> {
  const entry = GEN_ENTRIES[step.entry % GEN_ENTRIES.length]!;
  const pool = poolOf(w);
  let recv: unknown;
  const args: unknown[] = [];
  try {
    const good = entry.recv ? await entry.recv(w) : undefined;
    recv = good;
    if (entry.recv && step.recv >= 70 && step.recv < 85 && (entry.stale?.length ?? 0) > 0) {
      recv = await entry.stale![step.recv % entry.stale!.length]!.make(w);
      w.adopt(recv);
    } else if (entry.recv && step.recv >= 85 && pool.length > 0) {
      const cand = pool[step.recv % pool.length];
      // Only objects of the receiver's own class: calling a method on another type is not the API.
      if (
        cand !== null &&
        typeof cand === 'object' &&
        Object.getPrototypeOf(cand) === Object.getPrototypeOf(good)
      )
        recv = cand;
    }
    for (let i = 0; i < entry.params.length; i++)
      args.push(await genArg(w, entry.params[i]!, good, step.args[i % step.args.length]!, pool));
  } catch (e) {
    // A valid value could not be made in this world state (e.g. the buffer was revoked): skip.
    if (e instanceof DmaBufError) return null;
    return `${entry.name}: step setup failed: ${describeErr(e)}`;
  }
  // A blocking wait with no timeout is only made on a receiver that cannot block.
  if (entry.name === 'DmaFence#waitSync' && recv instanceof DmaFence)
    safe(() => (recv as DmaFence).signal());
  if (entry.name === 'SyncFile#waitSync' && recv instanceof SyncFile && !recv.closed)
    safe(() => (recv as SyncFile).fence.signal());
  stats.count(entry.name);
  let v: unknown;
  try {
    v = entry.call(recv, args);
  } catch (e) {
    return verdictOf(entry, { kind: 'err', e }, recv, args);
  }
  let o: Outcome;
  if (v instanceof Promise) {
    o = await settle(v, GEN_WAIT_MS);
    if (o.kind === 'hang') {
      await releaseWorld(w);
      o = await settle(v, GEN_RELEASE_MS);
    }
  } else o = { kind: 'ok', v };
  if (o.kind === 'ok') {
    try {
      await (entry.post ? entry.post(w, recv, args, o.v) : w.adopt(o.v));
    } catch (e) {
      if (!(e instanceof DmaBufError)) return `${entry.name}: post: ${describeErr(e)}`;
    }
  }
  return verdictOf(entry, o, recv, args);
}

function safe(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // ignore
  }
}

/** Every code a call of `entry` may produce for some argument or receiver. */
function allowedCodes(entry: Entry): ErrnoCode[] {
  const codes = new Set<ErrnoCode>(entry.codes ?? []);
  for (const p of entry.params) {
    for (const c of p.kind.codes) codes.add(c);
    for (const x of p.extra ?? []) if (x.codes !== 'ok') for (const c of x.codes) codes.add(c);
    for (const fp of Object.values(p.fields ?? {})) {
      for (const c of fp.kind.codes) codes.add(c);
      for (const x of fp.extra ?? []) if (x.codes !== 'ok') for (const c of x.codes) codes.add(c);
    }
  }
  for (const s of entry.stale ?? []) if (s.codes !== 'ok') for (const c of s.codes) codes.add(c);
  // Objects from the pool may be stale in every way the world knows.
  for (const c of GENERIC_STATE_CODES) codes.add(c);
  return [...codes];
}

/** Codes any call may meet in a random world: stale objects, wrong lock state, debug-mode checks. */
const GENERIC_STATE_CODES: ErrnoCode[] = [
  'EINVAL',
  'EBADF',
  'EPERM',
  'EDEADLK',
  'EBUSY',
  'ENODEV',
  'EXDEV',
  'EACCES',
  'ERESTARTSYS',
  'EINTR',
  'ENOENT',
];

function verdictOf(entry: Entry, o: Outcome, recv: unknown, args: unknown[]): string | null {
  const v =
    judge(o, { codes: allowedCodes(entry), ok: true }) ??
    (o.kind === 'ok' ? (entry.ret?.(o.v) ?? null) : null);
  if (v === null) return null;
  return `${entry.name}(${args.map(show).join(', ')}) on ${show(recv)}: ${v}`;
}

export interface GenOptions {
  seconds: number;
  seed?: number;
  /** Steps per episode (default 12). */
  steps?: number;
}

export interface GenResult {
  stats: Stats;
  seeds: number[];
  episodes: number;
}

/**
 * Runs fast-check episodes until `seconds` are spent. Each fast-check run uses its own seed
 * (printed with any failure); with `seed`, the first run replays it.
 */
export async function runGenerative(o: GenOptions): Promise<GenResult> {
  const stats = new Stats();
  const watch = new Watch().start();
  const seeds: number[] = [];
  let episodes = 0;
  const deadline = performance.now() + o.seconds * 1000;
  const base = { b: baseline() };
  let seed = o.seed ?? (Math.random() * 0x7fff_ffff) | 0;
  try {
    while (performance.now() < deadline) {
      seeds.push(seed);
      const left = Math.max(100, deadline - performance.now());
      const prop = fc.asyncProperty(
        fc.array(stepArb, { minLength: 1, maxLength: o.steps ?? 12 }),
        async (steps) => {
          episodes++;
          const w = new World();
          const problems: string[] = [];
          try {
            for (const s of steps) {
              const p = await genStep(w, s, stats);
              if (p !== null) {
                problems.push(p);
                break;
              }
            }
            await releaseWorld(w);
          } catch (e) {
            problems.push(`the episode threw: ${describeErr(e)}`);
          }
          const h = await health(w, base.b, watch);
          if (h.length > 0) {
            problems.push(`unhealthy after the episode: ${h.join('; ')}`);
            try {
              base.b = { ...baseline(), tainted: true };
            } catch (e) {
              problems.push(`no new baseline: ${describeErr(e)}`);
            }
          }
          if (problems.length > 0) {
            const names = steps.map((st) => {
              const e = GEN_ENTRIES[st.entry % GEN_ENTRIES.length]!;
              const r = !e.recv
                ? ''
                : st.recv >= 85
                  ? ' (pool receiver)'
                  : st.recv >= 70
                    ? ' (stale receiver)'
                    : '';
              return `${e.name}${r}`;
            });
            throw new Error(`${problems.join('\n')}\nsteps: ${names.join(' ; ')}`);
          }
        },
      );
      const r = await fc.check(prop, {
        seed,
        numRuns: 1_000_000,
        interruptAfterTimeLimit: left,
        markInterruptAsFailure: false,
        endOnFailure: false,
        maxSkipsPerRun: 1,
      });
      if (r.failed) {
        const msg =
          r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance);
        stats.fail(
          'generative',
          `seed ${seed} path ${r.counterexamplePath}`,
          `${msg}\ncounterexample: ${fc.stringify(r.counterexample).slice(0, 2000)}`,
        );
      }
      seed = (seed * 1103515245 + 12345) & 0x7fff_ffff;
      if (!r.interrupted && !r.failed) continue;
      if (r.interrupted) break;
    }
  } finally {
    watch.stop();
  }
  return { stats, seeds, episodes };
}
