/**
 * The reference model of the model-based tests: a plain TypeScript account of what exists —
 * buffers and their holders (references, handles, descriptors in flight, armed poll callbacks),
 * attachments, mappings, pins, vmaps, fences and their states, sync files, waiters, and what the
 * counting exporter must have seen — and what each operation must answer.
 *
 * An operation is generated as a *raw* step `{ k, t, r }` (a kind, a thread slot and random
 * numbers). It is resolved against the model when it runs: the random numbers pick among the
 * objects that exist then, so a sequence with steps removed (shrinking) still means something;
 * a step with nothing to act on is skipped.
 *
 * Where the library may legitimately do either of two things (a poll callback armed on one of
 * several fences fires when *its* fence signals; which one is the reservation list's business),
 * the model keeps what it knows — the candidates — and accepts any answer consistent with it.
 */

import {
  DMA_BIDIRECTIONAL,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_WRITE,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  DmaResvUsage,
  EPOLLIN,
  EPOLLOUT,
} from '../../src/index.js';
import type { ExporterKind } from '../../tools/stress/counted-exporter.js';
import type { ExecMsg, ExecResult } from './_exec.js';

export type Kind =
  | 'export'
  | 'get'
  | 'put'
  | 'fd'
  | 'close'
  | 'getFd'
  | 'share'
  | 'claim'
  | 'attach'
  | 'detach'
  | 'map'
  | 'unmap'
  | 'pin'
  | 'unpin'
  | 'invalidate'
  | 'begin'
  | 'end'
  | 'vmap'
  | 'vunmap'
  | 'poll'
  | 'fence'
  | 'signal'
  | 'waitResv'
  | 'exportSync'
  | 'importSync'
  | 'mergeSync'
  | 'shareSync'
  | 'waitSync'
  | 'putSync'
  | 'kill'
  // bad input: each must fail with its errno and change nothing
  | 'badPut'
  | 'badClaim'
  | 'badUnpin'
  | 'badSync'
  | 'badPoll'
  | 'badDetach';

/** A generated step: kind, thread slot, and random numbers that pick its objects and options. */
export interface RawOp {
  k: Kind;
  t: number;
  r: number[];
}

/** A step resolved against the model: what to send where, and how to judge and apply the answer. */
export interface Step {
  t: number;
  msg: ExecMsg;
  /** Human-readable form, with the objects it names. */
  text: string;
  /** Returns a complaint, or null when the answer is one the model allows. */
  check(r: ExecResult): string | null;
  /** Updates the model with the (allowed) answer. */
  apply(r: ExecResult): void;
  /** Threads to restart (kill). */
  kill?: number;
}

export interface ExpCounters {
  attached: number;
  maps: number;
  pins: number;
  vmaps: number;
  cpuBegin: number;
  cpuEnd: number;
}

interface Armed {
  t: number;
  /** Fences pending when it armed: it fires when the one it chose among them signals. */
  cands: Set<number>;
}

export interface MBuf {
  id: number;
  home: number;
  kind: ExporterKind;
  dynamic: boolean;
  slot: number;
  gen: number;
  inode: number;
  /** References held by objects, handles and descriptors in flight (not poll callbacks). */
  holders: number;
  released: boolean;
  homeDead: boolean;
  /** Whether the exporter's counters are still known exactly (see {@link Model.kill}). */
  checked: boolean;
  /** Whether the release must have run the exporter's release (false: at most once). */
  mustRelease: boolean;
  fences: Map<number, number>;
  vmapCount: number;
  vmapOwner: number | null;
  poll: [Armed | null, Armed | null];
  exp: ExpCounters;
}

interface MRef {
  buf: number;
  t: number;
}
interface MAtt {
  buf: number;
  t: number;
  dynamic: boolean;
  pins: number;
  maps: Set<number>;
  invalidations: number;
}
interface MMap {
  att: number;
  valid: boolean;
  pinOnMap: boolean;
}
export interface MFence {
  home: number;
  signaled: boolean;
  error: number;
  slot: number;
  gen: number;
}
interface MSync {
  t: number;
  fences: Set<number>;
}
interface MWaiter {
  t: number;
  must: Set<number>;
  may: Set<number>;
  buf: number | null;
  usage: number;
}

const USAGES = [DmaResvUsage.KERNEL, DmaResvUsage.WRITE, DmaResvUsage.READ, DmaResvUsage.BOOKKEEP];
const DIRS = [DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE];
/** How long an operation that must block is given before it is aborted (ms). */
export const ABORT_MS = 15;
const EIO = -5;

function pick<T>(list: T[], r: number): T | undefined {
  return list.length === 0 ? undefined : list[r % list.length];
}

function fmtSet(s: Iterable<number>): string {
  return `{${[...s].join(',')}}`;
}

export class Model {
  readonly threads: number;
  nextId = 1;
  /** Counter ids handed to exported buffers (index into the counter array). */
  nextCounter = 0;
  readonly maxCounters: number;
  readonly bufs = new Map<number, MBuf>();
  readonly refs = new Map<number, MRef>();
  readonly deadRefs = new Map<number, MRef>();
  readonly fds = new Map<number, MRef>();
  readonly tickets = new Map<number, { buf: number; desc: any }>();
  readonly usedDescs: { buf: number; desc: any }[] = [];
  readonly atts = new Map<number, MAtt>();
  readonly maps = new Map<number, MMap>();
  readonly vmaps = new Map<number, { buf: number; t: number }>();
  readonly fences = new Map<number, MFence>();
  readonly sfs = new Map<number, MSync>();
  readonly waiters = new Map<number, MWaiter>();
  /** Domain thread number of each slot's current thread. */
  readonly domainThread: number[];
  /** Domain thread numbers of killed threads. */
  readonly deadThreads: number[] = [];
  kills = 0;

  constructor(threads: number, domainThread: number[], maxCounters: number) {
    this.threads = threads;
    this.domainThread = domainThread;
    this.maxCounters = maxCounters;
  }

  // ---- queries ------------------------------------------------------------------------------

  private idsIn<V extends { t: number }>(
    m: Map<number, V>,
    t: number,
    f?: (v: V) => boolean,
  ): number[] {
    const out: number[] = [];
    for (const [id, v] of m) if (v.t === t && (f === undefined || f(v))) out.push(id);
    return out;
  }

  liveBufs(): MBuf[] {
    return [...this.bufs.values()].filter((b) => !b.released);
  }

  /** Whether the exporter's ops can run (a thread-bound exporter dies with its home thread). */
  reach(b: MBuf): boolean {
    return !(b.kind === 'bound' && b.homeDead);
  }

  pending(b: MBuf, maxUsage: number): number[] {
    const out: number[] = [];
    for (const [f, u] of b.fences) if (u <= maxUsage && !this.fences.get(f)!.signaled) out.push(f);
    return out;
  }

  private attsOf(b: number): number[] {
    return [...this.atts].filter(([, a]) => a.buf === b).map(([id]) => id);
  }

  private vmapsOf(b: number, t?: number): number[] {
    return [...this.vmaps]
      .filter(([, v]) => v.buf === b && (t === undefined || v.t === t))
      .map(([id]) => id);
  }

  /**
   * Whether thread `t` may drop one of its holders of `b`: an importer keeps a reference of its
   * own for as long as it has attachments or vmaps (its last put comes after detach and vunmap).
   */
  private safeDrop(b: MBuf, t: number): boolean {
    const mine =
      [...this.refs.values()].filter((r) => r.buf === b.id && r.t === t).length +
      [...this.fds.values()].filter((r) => r.buf === b.id && r.t === t).length;
    return (
      mine > 1 ||
      (this.attsOf(b.id).every((a) => this.atts.get(a)!.t !== t) &&
        this.vmapsOf(b.id, t).length === 0)
    );
  }

  // ---- generation ---------------------------------------------------------------------------

  /** Generates one raw step from the current state. */
  generate(rnd: () => number, allowKill: boolean): RawOp {
    const r = [0, 0, 0, 0].map(() => Math.floor(rnd() * 0x7fffffff));
    const t = this.threads === 0 ? 0 : Math.floor(rnd() * (this.threads + 1));
    const refs = this.idsIn(this.refs, t);
    const has = {
      ref: refs.length > 0,
      fd: this.idsIn(this.fds, t).length > 0,
      att: this.idsIn(this.atts, t).length > 0,
      map: [...this.maps.values()].some((m) => this.atts.get(m.att)!.t === t),
      vmap: this.idsIn(this.vmaps, t).length > 0,
      sf: this.idsIn(this.sfs, t).length > 0,
      fence: [...this.fences.values()].some((f) => f.home === t && !f.signaled),
      ticket: this.tickets.size > 0,
    };
    const holdings =
      this.idsIn(this.atts, t).length +
      [...this.maps.values()].filter((m) => this.atts.get(m.att)!.t === t).length +
      this.idsIn(this.vmaps, t).length +
      (has.fence ? 1 : 0);
    const table: [Kind, number][] = [
      ['export', this.liveBufs().length < 4 && this.nextCounter < this.maxCounters ? 6 : 0],
      ['get', has.ref ? 4 : 0],
      ['put', has.ref ? 5 : 0],
      ['fd', has.ref ? 3 : 0],
      ['close', has.fd ? 3 : 0],
      ['getFd', has.fd ? 2 : 0],
      ['share', has.ref ? 4 : 0],
      ['claim', has.ticket ? 6 : 0],
      ['attach', has.ref ? 5 : 0],
      ['detach', has.att ? 3 : 0],
      ['map', has.att ? 5 : 0],
      ['unmap', has.map ? 4 : 0],
      ['pin', has.att ? 2 : 0],
      ['unpin', has.att ? 2 : 0],
      ['invalidate', has.ref ? 2 : 0],
      ['begin', has.ref ? 2 : 0],
      ['end', has.ref ? 2 : 0],
      ['vmap', has.ref ? 3 : 0],
      ['vunmap', has.vmap ? 3 : 0],
      ['poll', has.ref ? 4 : 0],
      ['fence', has.ref ? 6 : 0],
      ['signal', has.fence ? 6 : 0],
      ['waitResv', has.ref ? 2 : 0],
      ['exportSync', has.ref ? 3 : 0],
      ['importSync', has.ref && has.sf ? 2 : 0],
      ['mergeSync', has.sf ? 2 : 0],
      ['shareSync', has.sf && this.threads > 0 ? 2 : 0],
      ['waitSync', has.sf ? 2 : 0],
      ['putSync', has.sf ? 2 : 0],
      // Kills aim at threads holding the most (attachments, mappings, vmaps, fences).
      ['kill', allowKill && t > 0 ? 0.2 + 0.4 * holdings : 0],
      ['badPut', has.ref ? 1 : 0],
      ['badClaim', this.usedDescs.length > 0 || has.ticket ? 1 : 0],
      ['badUnpin', has.att ? 1 : 0],
      ['badSync', has.ref ? 1 : 0],
      ['badPoll', has.ref ? 1 : 0],
      ['badDetach', has.att ? 1 : 0],
    ];
    const total = table.reduce((sum, [, w]) => sum + w, 0);
    let x = rnd() * total;
    for (const [k, w] of table) {
      if (x < w) return { k, t, r };
      x -= w;
    }
    return { k: 'export', t, r };
  }

  // ---- resolution ---------------------------------------------------------------------------

  private ok(r: ExecResult, what: string): string | null {
    return r.ok ? null : `${what}: expected success, got ${r.code} (${r.message})`;
  }

  private err(r: ExecResult, code: string, what: string): string | null {
    if (r.ok) return `${what}: expected ${code}, got success`;
    return r.code === code ? null : `${what}: expected ${code}, got ${r.code} (${r.message})`;
  }

  /** Resolves a raw step against the current state; null when it has nothing to act on. */
  resolve(op: RawOp): Step | null {
    const { t, r } = op;
    const [r0, r1, r2] = r as [number, number, number, number];
    const refOf = (id: number | undefined) => (id === undefined ? undefined : this.refs.get(id));
    switch (op.k) {
      case 'export': {
        if (this.nextCounter >= this.maxCounters) return null;
        const kind: ExporterKind = r0 % 2 === 0 ? 'bound' : 'shared';
        const dynamic = r1 % 2 === 0;
        const out = this.nextId++;
        const cid = this.nextCounter;
        return {
          t,
          msg: { op: 'export', id: cid, kind, dynamic, out },
          text: `export ${kind}${dynamic ? ' dynamic' : ''} → buf ${cid}, ref ${out}`,
          check: (x) => this.ok(x, 'export'),
          apply: (x) => {
            this.nextCounter++;
            const v = (x as { v: { slot: number; gen: number; inode: number } }).v;
            this.bufs.set(cid, {
              id: cid,
              home: t,
              kind,
              dynamic,
              slot: v.slot,
              gen: v.gen,
              inode: v.inode,
              holders: 1,
              released: false,
              homeDead: false,
              checked: true,
              mustRelease: true,
              fences: new Map(),
              vmapCount: 0,
              vmapOwner: null,
              poll: [null, null],
              exp: { attached: 0, maps: 0, pins: 0, vmaps: 0, cpuBegin: 0, cpuEnd: 0 },
            });
            this.refs.set(out, { buf: cid, t });
          },
        };
      }
      case 'get': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const out = this.nextId++;
        return {
          t,
          msg: { op: 'get', ref, out },
          text: `get ref ${ref} (buf ${b.id}) → ref ${out}`,
          check: (x) => this.ok(x, 'get'),
          apply: () => {
            b.holders++;
            this.refs.set(out, { buf: b.id, t });
          },
        };
      }
      case 'put':
      case 'badPut': {
        const ref = pick(
          this.idsIn(this.refs, t, (v) => this.safeDrop(this.bufs.get(v.buf)!, t)),
          r0,
        );
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const bad = op.k === 'badPut';
        return {
          t,
          msg: { op: bad ? 'putTwice' : 'put', ref },
          text: `${bad ? 'put twice' : 'put'} ref ${ref} (buf ${b.id})`,
          check: (x) =>
            bad
              ? (this.ok(x, 'put') ??
                (x.ok && x.v === 'EBADF'
                  ? null
                  : `second put: expected EBADF, got ${JSON.stringify((x as any).v)}`))
              : this.ok(x, 'put'),
          apply: () => {
            this.refs.delete(ref);
            this.drop(b, 1);
          },
        };
      }
      case 'fd': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const out = this.nextId++;
        return {
          t,
          msg: { op: 'fd', ref, out },
          text: `fd of ref ${ref} (buf ${b.id}) → fd ${out}`,
          check: (x) => this.ok(x, 'fd'),
          apply: () => {
            b.holders++;
            this.fds.set(out, { buf: b.id, t });
          },
        };
      }
      case 'close': {
        const fd = pick(
          this.idsIn(this.fds, t, (v) => this.safeDrop(this.bufs.get(v.buf)!, t)),
          r0,
        );
        if (fd === undefined) return null;
        const b = this.bufs.get(this.fds.get(fd)!.buf)!;
        const twice = r1 % 4 === 0;
        return {
          t,
          msg: { op: twice ? 'closeTwice' : 'close', fd },
          text: `close${twice ? ' twice' : ''} fd ${fd} (buf ${b.id})`,
          check: (x) =>
            twice
              ? (this.ok(x, 'close') ??
                (x.ok && x.v === 'EBADF'
                  ? null
                  : `second close: expected EBADF, got ${JSON.stringify((x as any).v)}`))
              : this.ok(x, 'close'),
          apply: () => {
            this.fds.delete(fd);
            this.drop(b, 1);
          },
        };
      }
      case 'getFd': {
        const fd = pick(this.idsIn(this.fds, t), r0);
        if (fd === undefined) return null;
        const b = this.bufs.get(this.fds.get(fd)!.buf)!;
        const out = this.nextId++;
        return {
          t,
          msg: { op: 'getFd', fd, out },
          text: `get from fd ${fd} (buf ${b.id}) → ref ${out}`,
          check: (x) => this.ok(x, 'getFd'),
          apply: () => {
            b.holders++;
            this.refs.set(out, { buf: b.id, t });
          },
        };
      }
      case 'share': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const out = this.nextId++;
        return {
          t,
          msg: { op: 'share', ref },
          text: `share ref ${ref} (buf ${b.id}) → ticket ${out}`,
          check: (x) => this.ok(x, 'share'),
          apply: (x) => {
            b.holders++;
            this.tickets.set(out, { buf: b.id, desc: (x as { v: unknown }).v });
          },
        };
      }
      case 'claim': {
        const ticket = pick([...this.tickets.keys()], r0);
        if (ticket === undefined) return null;
        const tk = this.tickets.get(ticket)!;
        const asFd = r1 % 3 === 0;
        const out = this.nextId++;
        return {
          t,
          msg: { op: 'claim', desc: tk.desc, as: asFd ? 'fd' : 'ref', out },
          text: `claim ticket ${ticket} (buf ${tk.buf}) as ${asFd ? 'fd' : 'ref'} ${out}`,
          check: (x) => this.ok(x, 'claim'),
          apply: () => {
            this.tickets.delete(ticket);
            this.usedDescs.push(tk);
            (asFd ? this.fds : this.refs).set(out, { buf: tk.buf, t });
          },
        };
      }
      case 'badClaim': {
        // A descriptor that was installed already, or a live one with its nonce changed.
        const live = pick([...this.tickets.values()], r0);
        const used = pick(this.usedDescs, r0);
        const useLive = live !== undefined && (used === undefined || r1 % 2 === 0);
        const desc = useLive ? { ...live!.desc, n: live!.desc.n ^ 0x10 } : used!.desc;
        return {
          t,
          msg: { op: 'claim', desc, as: r2 % 2 === 0 ? 'fd' : 'ref', out: 0 },
          text: `claim a ${useLive ? 'forged' : 'used'} descriptor of buf ${(useLive ? live! : used!).buf}`,
          check: (x) => this.err(x, 'EBADF', 'bad claim'),
          apply: () => {},
        };
      }
      case 'attach': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const dynamic = r1 % 2 === 0;
        const out = this.nextId++;
        const reach = this.reach(b);
        return {
          t,
          msg: { op: 'attach', ref, dynamic, dev: `dev${out}`, out },
          text: `${dynamic ? 'dynamic ' : ''}attach ref ${ref} (buf ${b.id}) → att ${out}`,
          check: (x) =>
            reach ? this.ok(x, 'attach') : this.err(x, 'ENODEV', 'attach (exporter gone)'),
          apply: () => {
            if (!reach) return;
            this.atts.set(out, {
              buf: b.id,
              t,
              dynamic,
              pins: 0,
              maps: new Set(),
              invalidations: 0,
            });
            b.exp.attached++;
          },
        };
      }
      case 'detach':
      case 'badDetach': {
        const att = pick(
          this.idsIn(this.atts, t, (a) => a.maps.size === 0 && a.pins === 0),
          r0,
        );
        if (att === undefined) return null;
        const a = this.atts.get(att)!;
        const b = this.bufs.get(a.buf)!;
        const bad = op.k === 'badDetach';
        return {
          t,
          msg: { op: bad ? 'detachTwice' : 'detach', att },
          text: `detach${bad ? ' twice' : ''} att ${att} (buf ${b.id})`,
          check: (x) =>
            bad
              ? (this.ok(x, 'detach') ??
                (x.ok && x.v === 'EINVAL'
                  ? null
                  : `second detach: expected EINVAL, got ${JSON.stringify((x as any).v)}`))
              : this.ok(x, 'detach'),
          apply: () => {
            this.atts.delete(att);
            if (this.reach(b)) b.exp.attached--;
          },
        };
      }
      case 'map': {
        const att = pick(this.idsIn(this.atts, t), r0);
        if (att === undefined) return null;
        const a = this.atts.get(att)!;
        const b = this.bufs.get(a.buf)!;
        const dir = DIRS[r1 % 3]!;
        const out = this.nextId++;
        const reach = this.reach(b);
        // Static importers wait for KERNEL fences (moves): with one pending the map must block.
        const blocks = !a.dynamic && this.pending(b, DmaResvUsage.KERNEL).length > 0;
        const pinOnMap = b.dynamic && !a.dynamic;
        return {
          t,
          msg: { op: 'map', att, dir, out, abortMs: blocks ? ABORT_MS : undefined },
          text: `map att ${att} (buf ${b.id}) dir ${dir} → map ${out}${blocks ? ' (blocks: aborted)' : ''}`,
          check: (x) => {
            if (!reach) return this.err(x, 'ENODEV', 'map (exporter gone)');
            if (blocks) return this.err(x, 'ERESTARTSYS', 'map waiting for a KERNEL fence');
            return (
              this.ok(x, 'map') ?? ((x as any).v === true ? null : 'a new mapping is not valid')
            );
          },
          apply: (x) => {
            if (!x.ok) return;
            this.maps.set(out, { att, valid: true, pinOnMap });
            a.maps.add(out);
            b.exp.maps++;
            if (pinOnMap) b.exp.pins++;
          },
        };
      }
      case 'unmap': {
        const map = pick(
          [...this.maps].filter(([, m]) => this.atts.get(m.att)!.t === t).map(([id]) => id),
          r0,
        );
        if (map === undefined) return null;
        const m = this.maps.get(map)!;
        const a = this.atts.get(m.att)!;
        const b = this.bufs.get(a.buf)!;
        const twice = r1 % 5 === 0;
        return {
          t,
          msg: { op: twice ? 'unmapTwice' : 'unmap', map },
          text: `unmap${twice ? ' twice' : ''} map ${map} (att ${m.att}, buf ${b.id})`,
          check: (x) => {
            if (!this.reach(b)) return null; // nothing left to undo: either answer
            if (twice)
              return (
                this.ok(x, 'unmap') ??
                (x.ok && x.v === 'EINVAL'
                  ? null
                  : `second unmap: expected EINVAL, got ${JSON.stringify((x as any).v)}`)
              );
            return this.ok(x, 'unmap');
          },
          apply: () => {
            this.maps.delete(map);
            a.maps.delete(map);
            if (this.reach(b)) {
              b.exp.maps--;
              if (m.pinOnMap) b.exp.pins--;
            }
          },
        };
      }
      case 'pin':
      case 'unpin':
      case 'badUnpin': {
        const unpin = op.k !== 'pin';
        const bad = op.k === 'badUnpin';
        const att = pick(
          this.idsIn(
            this.atts,
            t,
            (a) => a.dynamic && (!unpin || (bad ? a.pins === 0 : a.pins > 0)),
          ),
          r0,
        );
        if (att === undefined) return null;
        const a = this.atts.get(att)!;
        const b = this.bufs.get(a.buf)!;
        const reach = this.reach(b);
        return {
          t,
          msg: { op: unpin ? 'unpin' : 'pin', att },
          text: `${bad ? 'unpin without a pin' : unpin ? 'unpin' : 'pin'} att ${att} (buf ${b.id})`,
          check: (x) => {
            if (bad) return this.err(x, 'EINVAL', 'unpin without pin');
            if (!reach && !unpin && b.dynamic) return this.err(x, 'ENODEV', 'pin (exporter gone)');
            if (!reach) return null;
            return this.ok(x, op.k);
          },
          apply: (x) => {
            if (bad) return;
            if (!unpin && !x.ok) return;
            a.pins += unpin ? -1 : 1;
            if (b.dynamic && reach) b.exp.pins += unpin ? -1 : 1;
          },
        };
      }
      case 'invalidate': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        return {
          t,
          msg: { op: 'invalidate', ref },
          text: `invalidate mappings of buf ${b.id} (ref ${ref})`,
          check: (x) => this.ok(x, 'invalidate'),
          apply: () => {
            for (const id of this.attsOf(b.id)) {
              const a = this.atts.get(id)!;
              if (a.dynamic) a.invalidations++;
              for (const m of a.maps) this.maps.get(m)!.valid = false;
            }
          },
        };
      }
      case 'begin':
      case 'end': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const dir = DIRS[r1 % 3]!;
        const write = dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE;
        const usage = write ? DmaResvUsage.READ : DmaResvUsage.WRITE;
        const end = op.k === 'end';
        const blocks = !end && this.pending(b, usage).length > 0;
        const reach = this.reach(b);
        return {
          t,
          msg: { op: op.k, ref, dir, abortMs: blocks ? ABORT_MS : undefined },
          text: `${end ? 'end' : 'begin'} CPU access ${dir} on buf ${b.id}${blocks ? ' (blocks: aborted)' : ''}`,
          check: (x) => {
            if (!reach) return this.err(x, 'ENODEV', `${op.k} (exporter gone)`);
            if (blocks) return this.err(x, 'ERESTARTSYS', 'begin waiting for fences');
            return this.ok(x, op.k);
          },
          apply: () => {
            if (!reach) return;
            if (end) b.exp.cpuEnd++;
            else b.exp.cpuBegin++;
          },
        };
      }
      case 'vmap': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const out = this.nextId++;
        const first = b.vmapCount === 0;
        const reach = this.reach(b);
        return {
          t,
          msg: { op: 'vmap', ref, out },
          text: `vmap buf ${b.id} (ref ${ref}) → vmap ${out}`,
          check: (x) =>
            first && !reach ? this.err(x, 'ENODEV', 'vmap (exporter gone)') : this.ok(x, 'vmap'),
          apply: (x) => {
            if (!x.ok) return;
            this.vmaps.set(out, { buf: b.id, t });
            b.vmapCount++;
            if (first) {
              b.vmapOwner = t;
              b.exp.vmaps++;
            }
          },
        };
      }
      case 'vunmap': {
        const vm = pick(this.idsIn(this.vmaps, t), r0);
        if (vm === undefined) return null;
        const b = this.bufs.get(this.vmaps.get(vm)!.buf)!;
        return {
          t,
          msg: { op: 'vunmap', vmap: vm },
          text: `vunmap vmap ${vm} (buf ${b.id})`,
          check: (x) => this.ok(x, 'vunmap'),
          apply: () => {
            this.vmaps.delete(vm);
            b.vmapCount--;
            if (b.vmapCount === 0) {
              b.vmapOwner = null;
              if (this.reach(b)) b.exp.vmaps--;
            }
          },
        };
      }
      case 'poll':
      case 'badPoll': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        if (op.k === 'badPoll')
          return {
            t,
            msg: { op: 'poll', ref, events: 1.5 },
            text: `poll buf ${b.id} with events 1.5`,
            check: (x) => this.err(x, 'EINVAL', 'poll with bad events'),
            apply: () => {},
          };
        const events = [EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT][r1 % 3]!;
        return this.pollStep(t, ref, b, events);
      }
      case 'fence': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const usage = USAGES[r1 % 4]!;
        const out = this.nextId++;
        return {
          t,
          msg: { op: 'fence', ref, usage, out },
          text: `fence ${out} of thread ${t} added to buf ${b.id} as ${['KERNEL', 'WRITE', 'READ', 'BOOKKEEP'][usage]}`,
          check: (x) => this.ok(x, 'fence'),
          apply: (x) => {
            const v = (x as { v: { slot: number; gen: number } }).v;
            this.fences.set(out, { home: t, signaled: false, error: 0, slot: v.slot, gen: v.gen });
            this.addFence(b, out, usage);
          },
        };
      }
      case 'signal': {
        const mine = [...this.fences]
          .filter(([, f]) => f.home === t && !f.signaled)
          .map(([id]) => id);
        if (mine.length === 0) return null;
        // A burst: up to three fences at once, sometimes with an error.
        const n = 1 + (r1 % Math.min(3, mine.length));
        const chosen: number[] = [];
        for (let i = 0; i < n; i++) {
          const f = mine[(r0 + i) % mine.length]!;
          if (!chosen.includes(f)) chosen.push(f);
        }
        const error = r2 % 5 === 0 ? EIO : undefined;
        return {
          t,
          msg: { op: 'signal', fences: chosen, error },
          text: `signal fences ${chosen.join(',')}${error ? ' with -EIO' : ''}`,
          check: (x) => this.ok(x, 'signal'),
          apply: () => {
            for (const f of chosen) {
              const mf = this.fences.get(f)!;
              mf.signaled = true;
              mf.error = error ?? 0;
            }
          },
        };
      }
      case 'waitResv': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const usage = USAGES[r1 % 4]!;
        const out = this.nextId++;
        const must = new Set(this.pending(b, usage));
        return {
          t,
          msg: { op: 'waitResv', ref, usage, out },
          text: `waiter ${out}: wait for buf ${b.id} usage ≤ ${usage} (pending ${fmtSet(must)})`,
          check: (x) => this.ok(x, 'waitResv'),
          apply: () => this.waiters.set(out, { t, must, may: new Set(), buf: b.id, usage }),
        };
      }
      case 'exportSync': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const flags = [
          DMA_BUF_SYNC_READ,
          DMA_BUF_SYNC_WRITE,
          DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE,
        ][r1 % 3]!;
        const usage = (flags & DMA_BUF_SYNC_WRITE) !== 0 ? DmaResvUsage.READ : DmaResvUsage.WRITE;
        const out = this.nextId++;
        const fences = new Set(this.pending(b, usage));
        return {
          t,
          msg: { op: 'exportSync', ref, flags, out },
          text: `export sync file ${out} from buf ${b.id} flags ${flags} (${fmtSet(fences)})`,
          check: (x) => this.ok(x, 'exportSync'),
          apply: () => this.sfs.set(out, { t, fences }),
        };
      }
      case 'importSync': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        const sf = pick(this.idsIn(this.sfs, t), r1);
        if (ref === undefined || sf === undefined) return null;
        const b = this.bufs.get(refOf(ref)!.buf)!;
        const write = r2 % 2 === 0;
        const s = this.sfs.get(sf)!;
        return {
          t,
          msg: { op: 'importSync', ref, sf, flags: write ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ },
          text: `import sync file ${sf} ${fmtSet(s.fences)} into buf ${b.id} as ${write ? 'WRITE' : 'READ'}`,
          check: (x) => this.ok(x, 'importSync'),
          apply: () => {
            for (const f of s.fences)
              this.addFence(b, f, write ? DmaResvUsage.WRITE : DmaResvUsage.READ);
          },
        };
      }
      case 'mergeSync': {
        const mine = this.idsIn(this.sfs, t);
        const a = pick(mine, r0);
        const c = pick(mine, r1);
        if (a === undefined || c === undefined) return null;
        const out = this.nextId++;
        // The merge keeps only the fences still pending (the kernel's unwrap-merge drops signaled
        // ones, errors included: all signaled gives a signaled stub).
        const fences = new Set(
          [...this.sfs.get(a)!.fences, ...this.sfs.get(c)!.fences].filter(
            (f) => !this.fences.get(f)!.signaled,
          ),
        );
        return {
          t,
          msg: { op: 'mergeSync', a, b: c, out },
          text: `merge sync files ${a} and ${c} → ${out} ${fmtSet(fences)}`,
          check: (x) => this.ok(x, 'mergeSync'),
          apply: () => this.sfs.set(out, { t, fences }),
        };
      }
      case 'shareSync': {
        const sf = pick(this.idsIn(this.sfs, t), r0);
        if (sf === undefined) return null;
        const to = r1 % (this.threads + 1);
        const out = this.nextId++;
        const fences = this.sfs.get(sf)!.fences;
        return {
          t,
          msg: { op: 'shareSync', sf, to, out },
          text: `share sync file ${sf} with thread ${to} → ${out}`,
          check: (x) => this.ok(x, 'shareSync'),
          apply: () => this.sfs.set(out, { t: to, fences: new Set(fences) }),
        };
      }
      case 'waitSync': {
        const sf = pick(this.idsIn(this.sfs, t), r0);
        if (sf === undefined) return null;
        const out = this.nextId++;
        const must = new Set(
          [...this.sfs.get(sf)!.fences].filter((f) => !this.fences.get(f)!.signaled),
        );
        return {
          t,
          msg: { op: 'waitSync', sf, out },
          text: `waiter ${out}: wait for sync file ${sf} (pending ${fmtSet(must)})`,
          check: (x) => this.ok(x, 'waitSync'),
          apply: () => this.waiters.set(out, { t, must, may: new Set(), buf: null, usage: 0 }),
        };
      }
      case 'putSync': {
        const sf = pick(this.idsIn(this.sfs, t), r0);
        if (sf === undefined) return null;
        return {
          t,
          msg: { op: 'putSync', sf },
          text: `put sync file ${sf}`,
          check: (x) => this.ok(x, 'putSync'),
          apply: () => this.sfs.delete(sf),
        };
      }
      case 'badSync': {
        const ref = pick(this.idsIn(this.refs, t), r0);
        if (ref === undefined) return null;
        const flags = [0, 8, 0x100, DMA_BUF_SYNC_READ | 0x40][r1 % 4]!;
        return {
          t,
          msg: { op: 'badSync', ref, flags },
          text: `sync ioctl on ref ${ref} with flags ${flags}`,
          check: (x) => this.err(x, 'EINVAL', 'sync with bad flags'),
          apply: () => {},
        };
      }
      case 'kill': {
        if (this.threads === 0) return null;
        const w = op.t;
        return {
          t: 0,
          kill: w,
          msg: { op: 'nop' },
          text: `kill thread slot ${w} (domain thread ${this.domainThread[w]})`,
          check: () => null,
          apply: () => this.kill(w),
        };
      }
    }
  }

  private addFence(b: MBuf, f: number, usage: number): void {
    const old = b.fences.get(f);
    b.fences.set(f, old === undefined ? usage : Math.min(old, usage));
    if (this.fences.get(f)!.signaled) return;
    for (const w of this.waiters.values()) {
      if (w.buf === b.id && usage <= w.usage) w.may.add(f);
    }
  }

  private pollStep(t: number, ref: number, b: MBuf, events: number): Step {
    // For each direction: [possible "ready" answers], and how the arming changes.
    const dirs: [0 | 1, number, number][] = [
      [1, EPOLLOUT, DmaResvUsage.READ],
      [0, EPOLLIN, DmaResvUsage.WRITE],
    ];
    const want = dirs.filter(([, ev]) => (events & ev) !== 0);
    const before = want.map(([d]) => b.poll[d]);
    return {
      t,
      msg: { op: 'poll', ref, events },
      text: `poll buf ${b.id} events ${events} (ref ${ref})`,
      check: (x) => {
        if (!x.ok) return `poll: ${x.code} ${x.message}`;
        const got = x.v as number;
        for (const [i, [d, ev, usage]] of want.entries()) {
          const ready = (got & ev) !== 0;
          const armed = before[i];
          const pend = this.pending(b, usage);
          if (armed !== null && armed !== undefined) {
            // Armed and none of its fences signaled: it cannot have fired.
            const anySignaled = [...armed.cands].some((f) => this.fences.get(f)!.signaled);
            if (!anySignaled && ready)
              return `poll dir ${d}: ready while the armed callback cannot have fired`;
            if (ready && pend.length > 0) return `poll dir ${d}: ready with pending fences ${pend}`;
          } else if (ready !== (pend.length === 0)) {
            return `poll dir ${d}: ${ready ? 'ready' : 'not ready'} with pending fences ${fmtSet(pend)}`;
          }
        }
        return (got & ~events) !== 0 ? `poll returned events ${got} beyond ${events}` : null;
      },
      apply: (x) => {
        const got = (x as { v: number }).v;
        for (const [i, [d, ev, usage]] of want.entries()) {
          const ready = (got & ev) !== 0;
          const armed = before[i];
          const pend = this.pending(b, usage);
          if (ready) b.poll[d] = null;
          else if (armed === null || armed === undefined) b.poll[d] = { t, cands: new Set(pend) };
          else if ([...armed.cands].some((f) => this.fences.get(f)!.signaled)) {
            // It may have fired and re-armed here: keep every fence it may wait for.
            b.poll[d] = { t: -1, cands: new Set([...armed.cands, ...pend]) };
          }
        }
      },
    };
  }

  /** One holder of `b` fewer. */
  private drop(b: MBuf, n: number): void {
    b.holders -= n;
  }

  /**
   * A thread died (slot `w`): what the domain must do for it — its references, handles and poll
   * callbacks are put, its attachments detached (mappings unmapped, pins undone), its vmaps
   * dropped, its pending fences signaled with -ENOENT; the buffers it exported lose a thread-bound
   * exporter. Objects it held vanish.
   */
  kill(w: number): void {
    this.kills++;
    const ENOENT = -2;
    const touched = new Set<number>();
    for (const [id, r] of [...this.refs]) {
      if (r.t !== w) continue;
      this.refs.delete(id);
      this.bufs.get(r.buf)!.holders--;
      touched.add(r.buf);
    }
    for (const [id, r] of [...this.fds]) {
      if (r.t !== w) continue;
      this.fds.delete(id);
      this.bufs.get(r.buf)!.holders--;
      touched.add(r.buf);
    }
    for (const [id, r] of [...this.deadRefs]) if (r.t === w) this.deadRefs.delete(id);
    // Buffers it exported lose their home (a thread-bound exporter with it).
    for (const b of this.bufs.values()) {
      if (b.home === w && !b.released) {
        b.homeDead = true;
        if (b.kind === 'bound') b.checked = false;
      }
    }
    for (const [id, a] of [...this.atts]) {
      if (a.t !== w) continue;
      const b = this.bufs.get(a.buf)!;
      touched.add(b.id);
      for (const m of a.maps) {
        const mm = this.maps.get(m)!;
        this.maps.delete(m);
        b.exp.maps--;
        if (mm.pinOnMap) b.exp.pins--;
      }
      if (b.dynamic) b.exp.pins -= a.pins;
      b.exp.attached--;
      this.atts.delete(id);
    }
    for (const [id, v] of [...this.vmaps]) {
      if (v.t !== w) continue;
      const b = this.bufs.get(v.buf)!;
      this.vmaps.delete(id);
      b.vmapCount--;
      touched.add(b.id);
      if (b.vmapCount === 0) {
        b.vmapOwner = null;
        b.exp.vmaps--;
      } else if (b.vmapOwner === w) {
        b.vmapOwner = this.vmaps.get(this.vmapsOf(b.id)[0]!)!.t;
      }
    }
    for (const f of this.fences.values()) {
      if (f.home === w && !f.signaled) {
        f.signaled = true;
        f.error = ENOENT;
      }
    }
    for (const [id, s] of [...this.sfs]) if (s.t === w) this.sfs.delete(id);
    for (const [id, x] of [...this.waiters]) if (x.t === w) this.waiters.delete(id);
    for (const b of this.bufs.values()) {
      for (const d of [0, 1] as const) {
        // Its armed poll callbacks are disarmed and their references put.
        if (b.poll[d]?.t === w) {
          b.poll[d] = null;
          touched.add(b.id);
        }
      }
      // The cleanup runs in the observing (main) thread: a shared exporter whose home is gone can
      // only be reached there if that thread has rebuilt its ops, which the model does not track.
      if (touched.has(b.id) && b.homeDead && b.kind === 'shared' && b.home !== 0) {
        b.checked = false;
        if (b.holders === 0) b.mustRelease = false;
      }
      if (b.homeDead && b.kind === 'bound') b.mustRelease = false;
    }
  }
}
