/**
 * Every public entry point of `dmabuf` and `dmabuf/testing`, as rows the fuzzer can drive: how to
 * make a receiver (and stale or wrong-state receivers), what each parameter accepts ({@link Kind})
 * with a valid value for it, the extra bad values that only make sense for that parameter (closed
 * fds, put buffers, consumed or forged descriptors, a fence of another domain), the error codes a
 * valid call may still produce, and what to record from the result for the teardown.
 *
 * Names follow the runtime shape: `new X`, `X.static`, `X#method`, `get X#prop`, `fn`. The
 * coverage test compares them with what the two entry modules actually export.
 */

import type { ErrnoCode } from '../../src/errors.js';
import {
  codeOf,
  configureSystemHeap,
  createWasmHeap,
  DMA_BIDIRECTIONAL,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME,
  DMA_HEAP_IOCTL_ALLOC,
  DmaBuf,
  DmaBufAttachment,
  DmaBufError,
  DmaBufMap,
  DmaBufMapping,
  DmaFence,
  DmaFenceArray,
  DmaFenceCb,
  DmaFenceChain,
  DmaHeap,
  DmaResv,
  DmaResvIter,
  Domain,
  dedupArray,
  deserializeError,
  ERRNO,
  fdClose,
  fdInstall,
  fdLookup,
  getWaitPolicy,
  IOC,
  IOC_DIR,
  IOC_NR,
  IOC_SIZE,
  IOC_TYPE,
  inSignallingSection,
  isDebug,
  isDmaBufDebug,
  nowNs,
  O_CLOEXEC,
  O_RDWR,
  onThreadExit,
  openWasmHeap,
  pageAlign,
  registerSharedExporter,
  SEEK_END,
  SEEK_SET,
  SyncFile,
  seqnoIsLater,
  serializeError,
  setDebug,
  setDmaBufDebug,
  setWaitPolicy,
  systemHeap,
  unwrapFences,
  unwrapMerge,
  unwrapMergeContext,
  WwAcquireCtx,
  WwClass,
  WwMutex,
  wasmHeapBuffer,
  wasmHeapDescriptor,
} from '../../src/index.js';
import { MockExporter, MovableExporter, SwSyncTimeline } from '../../src/testing/index.js';
import { flagsKind, flagsOptKind, K, type Kind, optional, withCodes } from './_values.js';
import { foreign, fuzzOps, type World } from './_world.js';

/** A bad value that only makes sense for one parameter or receiver. */
export interface Extra {
  readonly label: string;
  make(w: World): unknown;
  /** Codes it may produce, or 'ok' when the documented outcome is a return value. */
  readonly codes: readonly ErrnoCode[] | 'ok';
}

export interface Param {
  readonly kind: Kind;
  /** A valid value (may be a Promise); `r` is the call's receiver, if any. */
  good(w: World, r: any): unknown;
  readonly extra?: readonly Extra[];
  /** For struct parameters: each field is fuzzed in turn inside `good()`'s object. */
  readonly fields?: Readonly<Record<string, Param>>;
  /** Valid values too costly to try (huge allocations, endless waits). */
  skip?(v: unknown): boolean;
}

export interface Entry {
  readonly name: string;
  /** Makes the receiver (absent for statics and functions). */
  recv?(w: World): unknown;
  /** Stale or wrong-state receivers, called with valid arguments. */
  readonly stale?: readonly Extra[];
  readonly params: readonly Param[];
  call(r: any, a: any[]): unknown;
  /** Codes a call with valid arguments may still produce. */
  readonly codes?: readonly ErrnoCode[];
  /** Records the result for the teardown (default: {@link World#adopt}). */
  post?(w: World, r: any, a: any[], v: unknown): void | Promise<void>;
  /** Not for the generative run (spawns threads, creates domains, fills registries). */
  readonly noGen?: boolean;
  /** Checks a returned value against the documented one: a problem, or null. */
  ret?(v: unknown): string | null;
}

const P = (kind: Kind, good: (w: World, r: any) => unknown, more: Partial<Param> = {}): Param => ({
  kind,
  good,
  ...more,
});
const X = (
  label: string,
  make: (w: World) => unknown,
  codes: readonly ErrnoCode[] | 'ok',
): Extra => ({
  label,
  make,
  codes,
});

const DISPOSE = String(Symbol.dispose);

// The WebAssembly heap the wasm rows allocate from, and fresh heap names.
let wasmHeaps = 0;
const wasmName = (): string => `fuzz-wasm-${++wasmHeaps}`;
const wasmFuzzHeap = (): DmaHeap =>
  DmaHeap.find('fuzz-wasm') ?? createWasmHeap({ name: 'fuzz-wasm', maximumPages: 64 });
const ASYNC_DISPOSE = String(Symbol.asyncDispose);

// ---- shared parameter specs --------------------------------------------------------------------------

const timeout = P(K.timeout, () => 1);
const timeoutOpt = P(K.timeoutOpt, () => undefined);
const opts = P(K.opts, () => ({}), {
  extra: [
    X('{ signal: "x" }', () => ({ signal: 'x' }), ['EINVAL']),
    X('{ signal: {} }', () => ({ signal: {} }), ['EINVAL']),
    X('{ signal: 5 }', () => ({ signal: 5 }), ['EINVAL']),
    X('aborted signal', () => ({ signal: AbortSignal.abort() }), 'ok'),
  ],
});
const usage = P(K.usage, () => 2);
const direction = P(K.direction, () => DMA_BIDIRECTIONAL);
const ns = P(K.ns, () => 1_000n);
const nsOpt = P(optional(K.ns), () => undefined);
const seqno = P(K.seqno, () => 1);
const fence = P(K.fence, (w) => w.fence(), {
  extra: [X('a signaled fence', (w) => w.signaled(), 'ok')],
});
const plainFence = P(K.plainFence, (w) => w.fence(), {
  extra: [
    X('a fence array', (w) => w.array(), ['EINVAL']),
    X('a fence chain', (w) => w.chain(), ['EINVAL']),
  ],
});
const ctxOrNull = P(K.ctxOrNull, () => null, {
  extra: [
    X('a finished context', (w) => w.finishedCtx(), ['EINVAL']),
    X(
      'a done context',
      (w) => {
        const c = w.ctx();
        c.done();
        return c;
      },
      ['EINVAL'],
    ),
  ],
});
const ctx = P(K.ctx, (w) => w.ctx(), {
  extra: [X('a finished context', (w) => w.finishedCtx(), ['EINVAL'])],
});
const ctxOpt = P(optional(K.ctxOrNull), () => undefined);
const resvP = P(K.resv, (w) => w.resv(), {
  extra: [
    X('a finished reservation object', (w) => w.deadResv(), ['EBADF']),
    X('a reservation object of another domain', (w) => w.foreignResv(), ['EXDEV']),
  ],
});
const device = P(K.device, () => ({ name: 'fuzz-dev' }), {
  extra: [X('{ name: 5 }', () => ({ name: 5 }), ['EINVAL'])],
});
const fdOfBuf = P(K.fd, (w) => w.fd(), {
  extra: [
    X('a closed fd', (w) => w.closedFd(), ['EBADF']),
    X('fd 0', () => 0, ['EBADF']),
    X('fd 2**31-1', () => 2 ** 31 - 1, ['EBADF']),
    X('a sync file fd', (w) => w.syncFd(), ['EINVAL']),
  ],
});
/** Any open fd (closing or looking up a sync file's is fine too). */
const fdAny = P(K.fd, (w) => w.fd(), {
  extra: [
    X('a closed fd', (w) => w.closedFd(), ['EBADF']),
    X('fd 0', () => 0, ['EBADF']),
    X('a sync file fd', (w) => w.syncFd(), 'ok'),
  ],
});
const fdFlags = P(flagsOptKind(O_CLOEXEC | 3), () => undefined, {
  extra: [X('O_ACCMODE (3)', () => 3, ['EINVAL'])],
});
const accMode = P(
  {
    name: 'mode?',
    codes: ['EINVAL'],
    valid: (v) => v === undefined || v === 0 || v === 1 || v === 2,
  },
  () => undefined,
);

function fenceDescExtras(): Extra[] {
  const real = (w: World): Record<string, unknown> => ({ ...(w.fenceDesc() as object) });
  return [
    X('another domain', (w) => ({ ...real(w), d: foreign().id }), ['EXDEV']),
    X('forged slot', (w) => ({ ...real(w), s: 999_999 }), ['EBADF']),
    X('slot 0', (w) => ({ ...real(w), s: 0 }), ['EBADF']),
    X('slot "1"', (w) => ({ ...real(w), s: '1' }), ['EBADF', 'EINVAL']),
    X(
      'wrong generation',
      (w) => {
        const d = real(w);
        return { ...d, g: (d.g as number) + 1 };
      },
      ['EBADF'],
    ),
    X('generation 1.5', (w) => ({ ...real(w), g: 1.5 }), ['EBADF', 'EINVAL']),
    X('bad context', (w) => ({ ...real(w), c: -1 }), ['EINVAL']),
    X('seqno NaN', (w) => ({ ...real(w), q: Number.NaN }), ['EINVAL']),
    X('unknown kind', (w) => ({ ...real(w), t: 'nope' }), ['EINVAL']),
    X('kind 5', (w) => ({ ...real(w), t: 5 }), ['EINVAL']),
    X(
      'consumed',
      (w) => {
        const d = w.fenceDesc();
        DmaFence.fromShared(d);
        w.consume(d);
        return d;
      },
      ['EBADF'],
    ),
    X(
      'a freed fence',
      (w) => {
        const f = new DmaFence(fuzzOps, w.context, 1);
        const d = f.share();
        DmaFence.fromShared(d);
        f.signal();
        return d;
      },
      ['EBADF'],
    ),
    X(
      'signaled, error 5',
      () => ({ t: 'fence', d: Domain.current().id, c: 1, q: 1, f: 0, e: 5, ts: 1n }),
      ['EINVAL'],
    ),
    X(
      'signaled, error -1e20',
      () => ({ t: 'fence', d: Domain.current().id, c: 1, q: 1, f: 0, e: -1e20, ts: 1n }),
      ['EINVAL'],
    ),
    X(
      'signaled, flags Symbol',
      () => ({ t: 'fence', d: Domain.current().id, c: 1, q: 1, f: Symbol('f'), e: 0, ts: 1n }),
      ['EINVAL'],
    ),
    X(
      'signaled, flags 1n',
      () => ({ t: 'fence', d: Domain.current().id, c: 1, q: 1, f: 1n, e: 0, ts: 1n }),
      ['EINVAL'],
    ),
    X(
      'signaled, ts "x"',
      () => ({ t: 'fence', d: Domain.current().id, c: 1, q: 1, f: 0, e: 0, ts: 'x' }),
      ['EINVAL'],
    ),
    X(
      'signaled, ts -1n',
      () => ({ t: 'fence', d: Domain.current().id, c: 1, q: 1, f: 0, e: 0, ts: -1n }),
      ['EINVAL'],
    ),
    X(
      'signaled, names Symbol',
      () => ({
        t: 'fence',
        d: Domain.current().id,
        c: 1,
        q: 1,
        f: 0,
        e: 0,
        ts: 1n,
        dn: Symbol('n'),
      }),
      ['EINVAL'],
    ),
    X(
      'array, no members',
      () => ({ t: 'array', d: Domain.current().id, c: 1, q: 1, any: false, f: [] }),
      ['EINVAL'],
    ),
    X(
      'array, junk member',
      () => ({ t: 'array', d: Domain.current().id, c: 1, q: 1, any: false, f: [null] }),
      ['EINVAL'],
    ),
    X(
      'array, nested array',
      (w) => ({
        t: 'array',
        d: Domain.current().id,
        c: 1,
        q: 1,
        any: false,
        f: [w.track({ kind: 'fence', desc: w.array().share() })],
      }),
      ['EINVAL'],
    ),
    X(
      'array, any "yes"',
      (w) => ({ t: 'array', d: Domain.current().id, c: 1, q: 1, any: 'yes', f: [w.fenceDesc()] }),
      ['EINVAL'],
    ),
    X(
      'array, 2**31 members',
      () => ({
        t: 'array',
        d: Domain.current().id,
        c: 1,
        q: 1,
        any: false,
        f: { length: 2 ** 31 },
      }),
      ['EINVAL'],
    ),
    X('chain, no links', () => ({ t: 'chain', d: Domain.current().id, l: [] }), ['EINVAL']),
    X('chain, junk link', () => ({ t: 'chain', d: Domain.current().id, l: [5] }), ['EINVAL']),
    X(
      'chain, link of a chain',
      (w) => ({
        t: 'chain',
        d: Domain.current().id,
        l: [{ c: 1, q: 1, pq: 0, f: w.track({ kind: 'fence', desc: w.chain().share() }) }],
      }),
      ['EINVAL'],
    ),
    X(
      'chain, negative seqno',
      (w) => ({
        t: 'chain',
        d: Domain.current().id,
        l: [{ c: 1, q: -1, pq: 0, f: w.fenceDesc() }],
      }),
      ['EINVAL'],
    ),
  ];
}

const fenceDesc = P(K.descriptor, (w) => w.fenceDesc(), { extra: fenceDescExtras() });

const bufDesc = P(K.descriptor, (w) => w.bufDesc(), {
  extra: [
    X('another domain', (w) => ({ ...w.bufDesc(), d: foreign().id }), ['EXDEV']),
    X('forged ticket', (w) => ({ ...w.bufDesc(), t: 999_999 }), ['EBADF']),
    X(
      'forged nonce',
      (w) => {
        const d = w.bufDesc();
        return { ...d, n: d.n + 1 };
      },
      ['EBADF'],
    ),
    X('forged mode', (w) => ({ ...w.bufDesc(), mode: 1 }), ['EBADF']),
    X(
      'forged buffer slot',
      (w) => {
        const d = w.bufDesc();
        return { ...d, s: d.s + 1 };
      },
      ['EBADF'],
    ),
    X('string ticket', (w) => ({ ...w.bufDesc(), t: '1' }), ['EBADF']),
    X(
      'installed once',
      (w) => {
        const d = w.bufDesc();
        DmaBuf.fromShared(d).put();
        w.consume(d);
        return d;
      },
      ['EBADF'],
    ),
    X('kind "fence"', (w) => ({ ...w.bufDesc(), kind: 'fence' }), ['EINVAL']),
    X('a fence descriptor', (w) => w.fenceDesc(), ['EINVAL']),
    X(
      'exp junk (ignored)',
      (w) => ({ ...w.bufDesc(), exp: { kind: Symbol('k'), data: null } }),
      'ok',
    ),
  ],
});

const resvDesc = P(K.descriptor, (w) => w.resvDesc(), {
  extra: [
    X('another domain', (w) => ({ ...w.resvDesc(), d: foreign().id }), ['EXDEV']),
    X('forged slot', (w) => ({ ...w.resvDesc(), s: 999_999 }), ['EBADF']),
    X(
      'wrong generation',
      (w) => {
        const d = w.resvDesc();
        return { ...d, g: d.g + 1 };
      },
      ['EBADF'],
    ),
    X('a ww-mutex descriptor as resv', (w) => ({ ...w.mutexDesc(), t: 'resv' }), ['EBADF']),
    X('a finished object', () => {
      const r = new DmaResv();
      const d = r.share();
      DmaResv.fromShared(d);
      r.fini();
      return d;
    }, ['EBADF']),
    X('kind "ww-mutex"', (w) => ({ ...w.resvDesc(), t: 'ww-mutex' }), ['EINVAL']),
  ],
});

const mutexDesc = P(K.descriptor, (w) => w.mutexDesc(), {
  extra: [
    X('another domain', (w) => ({ ...w.mutexDesc(), d: foreign().id }), ['EXDEV']),
    X('forged slot', (w) => ({ ...w.mutexDesc(), s: 999_999 }), ['EBADF']),
    X(
      'a resv descriptor as mutex',
      (w) => ({ ...w.resvDesc(), t: 'ww-mutex', c: 'reservation_ww_class' }),
      ['EBADF'],
    ),
    X('class 5', (w) => ({ ...w.mutexDesc(), c: 5 }), ['EINVAL']),
    X('class ""', (w) => ({ ...w.mutexDesc(), c: '' }), ['EINVAL']),
  ],
});

const syncDesc = P(K.descriptor, (w) => w.syncDesc(), {
  extra: [
    X('another domain', (w) => ({ ...w.syncDesc(), d: foreign().id }), ['EXDEV']),
    X('name Symbol', (w) => ({ ...w.syncDesc(), n: Symbol('n') }), ['EINVAL']),
    X('fence junk', (w) => ({ ...w.syncDesc(), f: null }), ['EINVAL']),
    X(
      'fence forged',
      (w) => ({
        ...w.syncDesc(),
        f: { t: 'fence', d: Domain.current().id, c: 1, q: 1, f: 0, s: 999_999, g: 1 },
      }),
      ['EBADF'],
    ),
  ],
});

const fenceArr = P(
  {
    name: 'DmaFence[]',
    codes: ['EINVAL'],
    valid: (v) =>
      Array.isArray(v) && v.length > 0 && v.every((f) => f instanceof DmaFence && !f.isContainer),
  },
  (w) => [w.fence(), w.fence()],
  {
    extra: [
      X('[]', () => [], ['EINVAL']),
      X('[fence, null]', (w) => [w.fence(), null], ['EINVAL']),
      X('[array]', (w) => [w.array()], ['EINVAL']),
      X(
        'sparse',
        (w) => {
          const a: DmaFence[] = [];
          a[2] = w.fence();
          return a;
        },
        ['EINVAL'],
      ),
    ],
  },
);

const fenceOps = P(
  {
    name: 'DmaFenceOps',
    codes: ['EINVAL'],
    valid: (v) =>
      v !== null &&
      typeof v === 'object' &&
      typeof (v as any).getDriverName === 'function' &&
      typeof (v as any).getTimelineName === 'function',
  },
  () => fuzzOps,
  {
    extra: [
      X('no getTimelineName', () => ({ getDriverName: () => 'x' }), ['EINVAL']),
      X('signaled: 5', () => ({ ...fuzzOps, signaled: 5 }), ['EINVAL']),
    ],
  },
);

// ---- buffers -----------------------------------------------------------------------------------------

const staleBuf: Extra[] = [X('a put reference', (w) => w.putBuf(), ['EBADF'])];
const staleBufOk: Extra[] = [X('a put reference', (w) => w.putBuf(), 'ok')];

const exportInfo = (): Record<string, unknown> => {
  const m = new MockExporter({ size: 4096 });
  return { ops: m.ops, size: 4096, priv: m, expName: 'fuzz' };
};

const exportOps = P(
  {
    name: 'DmaBufOps',
    codes: ['EINVAL'],
    valid: (v) =>
      v !== null &&
      typeof v === 'object' &&
      typeof (v as any).mapDmaBuf === 'function' &&
      typeof (v as any).unmapDmaBuf === 'function' &&
      typeof (v as any).release === 'function',
  },
  () => new MockExporter({ size: 4096 }).ops,
  {
    extra: [
      X('pin without unpin', () => ({ ...new MockExporter().ops, pin: () => {} }), ['EINVAL']),
      X('mmap: "x"', () => ({ ...new MockExporter().ops, mmap: 'x' }), ['EINVAL']),
      X('no release', () => {
        const o: Record<string, unknown> = { ...new MockExporter().ops };
        delete o.release;
        return o;
      }, ['EINVAL']),
    ],
  },
);

const exportInfoP = P(K.object, exportInfo, {
  fields: {
    ops: exportOps,
    size: P(K.uint, () => 4096),
    priv: P(
      { name: 'priv', codes: ['EINVAL'], valid: (v) => v !== undefined && v !== null },
      () => ({}),
    ),
    expName: P(
      { name: 'expName', codes: ['EINVAL'], valid: (v) => typeof v === 'string' && v !== '' },
      () => 'fuzz',
    ),
    flags: P(flagsOptKind(0xffff_ffff), () => undefined),
    resv: P(optional(K.resv), () => undefined, {
      extra: [
        X('a finished resv', (w) => w.deadResv(), ['EBADF']),
        X('a resv of another domain', (w) => w.foreignResv(), ['EXDEV']),
      ],
    }),
    owner: P(K.objectOpt, () => undefined, {
      extra: [
        X('unavailable owner', () => ({ available: false }), ['ENOENT']),
        X('owner.get() false', () => ({ get: () => false }), ['ENOENT']),
      ],
    }),
    shared: P(K.objectOpt, () => undefined, {
      extra: [
        X('unknown kind', () => ({ kind: 'no-such-kind', data: null }), ['EINVAL']),
        X('kind 5', () => ({ kind: 5, data: null }), ['EINVAL']),
      ],
    }),
  },
});

const SYNC_RW = 3;
const mapOf = (w: World): Promise<DmaBufMap> => w.vmap();

// ---- the table ---------------------------------------------------------------------------------------

const get = (
  cls: string,
  prop: string,
  recv: (w: World) => unknown,
  stale?: Extra[],
  codes?: ErrnoCode[],
): Entry => ({
  name: `get ${cls}#${prop}`,
  recv,
  stale,
  params: [],
  call: (r) => r[prop],
  codes,
});

const method = (
  cls: string,
  name: string,
  recv: (w: World) => unknown,
  params: Param[],
  more: Partial<Entry> = {},
): Entry => ({
  name: `${cls}#${name}`,
  recv,
  params,
  call: (r, a) => r[name](...a),
  ...more,
});

const fn = (
  name: string,
  f: (...a: any[]) => unknown,
  params: Param[],
  more: Partial<Entry> = {},
): Entry => ({
  name,
  params,
  call: (_r, a) => f(...a),
  ...more,
});

const lockPost = (w: World, r: any, a: any[], v: unknown): void => {
  if (v === 0 || v === true) w.tookLock(r, a[0]);
};

const fenceRecv = (w: World): DmaFence => w.fence();
const sigRecv = (w: World): DmaFence => w.signaled();
const resvRecv = (w: World): DmaResv => w.resv();
const deadResv: Extra[] = [X('a finished reservation object', (w) => w.deadResv(), ['EBADF'])];
const mutexRecv = (w: World): WwMutex => w.mutex();
const deadMutex: Extra[] = [X('a destroyed ww-mutex', (w) => w.deadMutex(), ['EBADF'])];
const sfRecv = (w: World): SyncFile => w.syncFile(w.signaled());
const closedSf: Extra[] = [X('a closed sync file', (w) => w.closedSyncFile(), ['EBADF'])];
const closedSfOk: Extra[] = [X('a closed sync file', (w) => w.closedSyncFile(), 'ok')];
const tlRecv = (w: World): SwSyncTimeline => w.timeline();
const deadTl: Extra[] = [
  X(
    'a destroyed timeline',
    (w) => {
      const t = w.timeline();
      t.destroy();
      return t;
    },
    ['EBADF'],
  ),
];
const attRecv = (w: World): Promise<DmaBufAttachment> => w.att();
const detached: Extra[] = [X('a detached attachment', (w) => w.detachedAtt(), ['EINVAL', 'EBADF'])];
const detachedOk: Extra[] = [X('a detached attachment', (w) => w.detachedAtt(), 'ok')];

export const ENTRIES: readonly Entry[] = [
  // ---- DmaFence -----------------------------------------------------------------------------------
  fn('new DmaFence', (o, c, s) => new DmaFence(o, c, s), [fenceOps, seqno, seqno]),
  fn('DmaFence.init64', (o, c, s) => DmaFence.init64(o, c, s), [fenceOps, seqno, seqno]),
  fn('DmaFence.contextAlloc', (n) => DmaFence.contextAlloc(n), [
    P(optional(K.pos32), () => undefined),
  ]),
  fn('DmaFence.getStub', () => DmaFence.getStub(), []),
  fn('DmaFence.allocatePrivateStub', (t) => DmaFence.allocatePrivateStub(t), [nsOpt]),
  fn('DmaFence.later', (a, b) => DmaFence.later(a, b), [fence, fence]),
  fn('DmaFence.waitAnyTimeout', (f, t, o) => DmaFence.waitAnyTimeout(f, t, o), [
    P(
      {
        name: 'DmaFence[]',
        codes: ['EINVAL'],
        valid: (v) => Array.isArray(v) && v.length > 0 && v.every((f) => f instanceof DmaFence),
      },
      (w) => [w.signaled()],
      { extra: fenceArr.extra?.filter((x) => x.label !== '[array]') },
    ),
    timeout,
    opts,
  ]),
  fn('DmaFence.fromShared', (d) => DmaFence.fromShared(d), [fenceDesc], {
    post: (w, _r, a, v) => {
      w.consume(a[0]);
      w.adopt(v);
    },
  }),
  get('DmaFence', 'driverName', fenceRecv),
  get('DmaFence', 'timelineName', fenceRecv),
  get('DmaFence', 'isContainer', fenceRecv),
  get('DmaFence', 'isArray', fenceRecv),
  get('DmaFence', 'isChain', fenceRecv),
  get('DmaFence', 'error', fenceRecv),
  get('DmaFence', 'timestamp', fenceRecv),
  get('DmaFence', 'deadline', (w) => w.shared()),
  method('DmaFence', 'matchContext', fenceRecv, [P(K.any, () => 1)]),
  method('DmaFence', 'isLater', fenceRecv, [fence]),
  method('DmaFence', 'isLaterOrSame', fenceRecv, [fence]),
  method('DmaFence', 'setError', fenceRecv, [P(K.fenceError, () => -5)], {
    stale: [X('a signaled fence', sigRecv, ['EINVAL'])],
  }),
  method('DmaFence', 'testSignaledFlag', fenceRecv, []),
  method('DmaFence', 'isSignaled', fenceRecv, []),
  method('DmaFence', 'getStatus', fenceRecv, []),
  method('DmaFence', 'signal', fenceRecv, [], { stale: [X('a signaled fence', sigRecv, 'ok')] }),
  method('DmaFence', 'signalTimestamp', fenceRecv, [ns], {
    stale: [X('a signaled fence', sigRecv, 'ok')],
  }),
  method('DmaFence', 'checkAndSignal', fenceRecv, [], {
    stale: [X('a signaled fence', sigRecv, 'ok')],
  }),
  method('DmaFence', 'enableSwSignaling', fenceRecv, []),
  method(
    'DmaFence',
    'addCallback',
    fenceRecv,
    [
      P(
        {
          name: 'callback',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'function' || (v instanceof DmaFenceCb && !v.pending),
        },
        () => () => {},
        {
          extra: [
            X(
              'a queued node',
              (w) => {
                const n = new DmaFenceCb(() => {});
                w.fence().addCallback(n);
                return n;
              },
              ['EBUSY'],
            ),
          ],
        },
      ),
    ],
    { stale: [X('a signaled fence', sigRecv, 'ok')] },
  ),
  method('DmaFence', 'removeCallback', fenceRecv, [P(K.any, () => new DmaFenceCb(() => {}))]),
  method('DmaFence', 'waitTimeout', sigRecv, [timeout, opts], {
    stale: [X('a pending fence', fenceRecv, 'ok')],
  }),
  method('DmaFence', 'wait', sigRecv, [opts]),
  method('DmaFence', 'waitTimeoutSync', sigRecv, [timeout], {
    stale: [X('a pending fence', fenceRecv, 'ok')],
  }),
  method('DmaFence', 'waitSync', sigRecv, []),
  method('DmaFence', 'setDeadline', fenceRecv, [ns], {
    stale: [X('a published fence', (w) => w.shared(), 'ok')],
  }),
  method('DmaFence', 'describe', fenceRecv, []),
  method('DmaFence', 'toString', fenceRecv, []),
  method('DmaFence', 'share', fenceRecv, [], {
    stale: [X('a fence of another domain', (w) => w.foreignFence(), ['EXDEV'])],
    post: (w, _r, _a, v) => {
      w.track({ kind: 'fence', desc: v as any });
    },
  }),
  method('DmaFence', DISPOSE, sigRecv, [], { call: (r) => r[Symbol.dispose]() }),

  // ---- DmaFenceCb ---------------------------------------------------------------------------------
  fn('new DmaFenceCb', (f) => new DmaFenceCb(f), [P(K.fn, () => () => {})]),
  get('DmaFenceCb', 'pending', () => new DmaFenceCb(() => {})),

  // ---- DmaFenceArray ------------------------------------------------------------------------------
  fn('DmaFenceArray.create', (f, c, s, a) => DmaFenceArray.create(f, c, s, a), [
    fenceArr,
    seqno,
    seqno,
    P(K.boolOpt, () => undefined),
  ]),
  fn('DmaFenceArray.toArray', (f) => DmaFenceArray.toArray(f), [P(K.any, (w) => w.array())]),
  fn('DmaFenceArray.first', (f) => DmaFenceArray.first(f), [
    P(optional(K.fenceOrNull), (w) => w.array()),
  ]),
  fn('DmaFenceArray.next', (f, i) => DmaFenceArray.next(f, i), [
    P(optional(K.fenceOrNull), (w) => w.array()),
    P(K.uint, () => 1),
  ]),
  get('DmaFenceArray', 'isContainer', (w) => w.array()),
  get('DmaFenceArray', 'isArray', (w) => w.array()),
  get('DmaFenceArray', 'fences', (w) => w.array()),
  get('DmaFenceArray', 'numFences', (w) => w.array()),
  method('DmaFenceArray', 'matchContext', (w) => w.array(), [P(K.any, () => 1)]),
  method(
    'DmaFenceArray',
    'waitTimeoutSync',
    (w) => {
      const a = w.array();
      for (const f of a.fences) f.signal();
      return a;
    },
    [timeout],
  ),
  method('DmaFenceArray', 'share', (w) => w.array(), [], {
    post: (w, _r, _a, v) => {
      w.track({ kind: 'fence', desc: v as any });
    },
  }),

  // ---- DmaFenceChain ------------------------------------------------------------------------------
  fn('new DmaFenceChain', (p, f, s) => new DmaFenceChain(p, f, s), [
    P(K.fenceOrNull, () => null),
    P(
      {
        name: 'non-chain fence',
        codes: ['EINVAL'],
        valid: (v) => v instanceof DmaFence && !v.isChain,
      },
      (w) => w.fence(),
      { extra: [X('a chain', (w) => w.chain(), ['EINVAL'])] },
    ),
    seqno,
  ]),
  fn('DmaFenceChain.toChain', (f) => DmaFenceChain.toChain(f), [P(K.any, (w) => w.chain())]),
  fn('DmaFenceChain.contained', (f) => DmaFenceChain.contained(f), [P(K.fence, (w) => w.chain())]),
  fn('DmaFenceChain.iterate', (f) => [...DmaFenceChain.iterate(f)], [P(K.fence, (w) => w.chain())]),
  fn(
    'DmaFenceChain.findSeqno',
    (f, s) => DmaFenceChain.findSeqno(f, s),
    [
      P(K.fence, (w) => w.chain(), { extra: [X('a plain fence', (w) => w.fence(), ['EINVAL'])] }),
      P(K.seqno, () => 1, { extra: [X('a future seqno', () => 99, ['EINVAL'])] }),
    ],
    { codes: ['EINVAL'] },
  ),
  get('DmaFenceChain', 'isContainer', (w) => w.chain()),
  get('DmaFenceChain', 'isChain', (w) => w.chain()),
  get('DmaFenceChain', 'fence', (w) => w.chain()),
  get('DmaFenceChain', 'contained', (w) => w.chain()),
  get('DmaFenceChain', 'prev', (w) => w.chain()),
  method('DmaFenceChain', 'walk', (w) => w.chain(), []),
  method(
    'DmaFenceChain',
    'waitTimeoutSync',
    (w) => {
      const c = w.chain();
      c.fence.signal();
      return c;
    },
    [timeout],
  ),
  method('DmaFenceChain', 'share', (w) => w.chain(), [], {
    post: (w, _r, _a, v) => {
      w.track({ kind: 'fence', desc: v as any });
    },
  }),

  // ---- unwrap and helpers -------------------------------------------------------------------------
  fn('unwrapFences', (f) => [...unwrapFences(f)], [P(K.fence, (w) => w.chain())]),
  fn('unwrapMerge', (a, b) => unwrapMerge(a, b), [fence, fence]),
  fn('unwrapMergeContext', (c, a, b) => unwrapMergeContext(c, a, b), [seqno, fence, fence]),
  fn('dedupArray', (a) => dedupArray(a), [
    P(
      {
        name: 'DmaFence[]',
        codes: ['EINVAL'],
        valid: (v) => Array.isArray(v) && v.every((f) => f instanceof DmaFence),
      },
      (w) => [w.fence(), w.fence()],
    ),
  ]),
  fn('seqnoIsLater', (a, b, s) => seqnoIsLater(a, b, s), [
    P({ name: 'number', codes: ['EINVAL'], valid: (v) => typeof v === 'number' }, () => 2),
    P({ name: 'number', codes: ['EINVAL'], valid: (v) => typeof v === 'number' }, () => 1),
    P(K.any, () => false),
  ]),

  // ---- SyncFile -----------------------------------------------------------------------------------
  fn('SyncFile.create', (f) => SyncFile.create(f), [fence]),
  fn('SyncFile.merge', (n, a, b) => SyncFile.merge(n, a, b), [
    P(K.str, () => 'merged'),
    P(K.syncFile, (w) => w.syncFile(), {
      extra: [X('a closed sync file', (w) => w.closedSyncFile(), ['EBADF'])],
    }),
    P(withCodes(K.syncFile, ['ENOENT']), (w) => w.syncFile(), {
      extra: [
        X('a closed sync file', (w) => w.closedSyncFile(), ['ENOENT']),
        X('a sync file of another domain', (w) => w.syncFile(w.foreignFence()), 'ok'),
      ],
    }),
  ]),
  fn('SyncFile.fromShared', (d) => SyncFile.fromShared(d), [syncDesc], {
    post: (w, _r, a, v) => {
      w.consume(a[0]);
      w.adopt(v);
    },
  }),
  get('SyncFile', 'fence', sfRecv, closedSf),
  method('SyncFile', 'getFence', sfRecv, [], { stale: closedSf }),
  get('SyncFile', 'closed', sfRecv, closedSfOk),
  get('SyncFile', 'name', sfRecv, closedSf),
  method(
    'SyncFile',
    'info',
    (w) => w.syncFile(w.array()),
    [
      P(K.objectOpt, () => ({}), {
        fields: {
          numFences: P(optional(K.u32), () => undefined, {
            extra: [X('1 (fewer than the 2 fences)', () => 1, ['EINVAL'])],
          }),
          flags: P(
            { name: '0', codes: ['EINVAL'], valid: (v) => v === undefined || v === 0 },
            () => undefined,
          ),
          pad: P(
            { name: '0', codes: ['EINVAL'], valid: (v) => v === undefined || v === 0 },
            () => undefined,
          ),
        },
      }),
    ],
    { stale: closedSf, codes: ['EINVAL'] },
  ),
  method('SyncFile', 'poll', sfRecv, [], { stale: closedSf }),
  method('SyncFile', 'wait', sfRecv, [timeoutOpt, opts], { stale: closedSf }),
  method('SyncFile', 'waitSync', sfRecv, [timeoutOpt], { stale: closedSf }),
  method(
    'SyncFile',
    'setDeadline',
    sfRecv,
    [
      ns,
      P(
        { name: 'pad 0', codes: ['EINVAL'], valid: (v) => v === undefined || v === 0 || v === 0n },
        () => undefined,
      ),
    ],
    { stale: closedSf },
  ),
  method('SyncFile', 'share', sfRecv, [], {
    stale: [
      ...closedSf,
      X('a sync file of another domain', (w) => w.syncFile(w.foreignFence()), ['EXDEV']),
    ],
    post: (w, _r, _a, v) => {
      w.track({ kind: 'sync', desc: v as any });
    },
  }),
  method('SyncFile', 'put', sfRecv, [], { stale: closedSfOk }),
  method('SyncFile', 'toString', sfRecv, [], { stale: closedSfOk }),
  method('SyncFile', DISPOSE, sfRecv, [], { call: (r) => r[Symbol.dispose](), stale: closedSfOk }),

  // ---- SwSyncTimeline (testing) -------------------------------------------------------------------
  fn('new SwSyncTimeline', (n) => new SwSyncTimeline(n), [P(K.strOpt, () => 'fuzz')]),
  fn('SwSyncTimeline.create', (n) => SwSyncTimeline.create(n), [P(K.strOpt, () => 'fuzz')]),
  fn('SwSyncTimeline.debugInfo', () => SwSyncTimeline.debugInfo(), []),
  get('SwSyncTimeline', 'value', tlRecv),
  get('SwSyncTimeline', 'destroyed', tlRecv),
  method('SwSyncTimeline', 'createPoint', tlRecv, [P(K.u32, () => 5)], { stale: deadTl }),
  method('SwSyncTimeline', 'createFence', tlRecv, [P(K.u32, () => 5)], { stale: deadTl }),
  method('SwSyncTimeline', 'inc', tlRecv, [P(optional(K.u32), () => 1)], { stale: deadTl }),
  method(
    'SwSyncTimeline',
    'getDeadline',
    tlRecv,
    [
      P(
        K.syncFile,
        (w) => {
          const t = w.timeline();
          const s = t.createFence(3);
          w.syncFiles.push(s);
          s.setDeadline(5n);
          return s;
        },
        {
          extra: [
            X("a sync file of another timeline's point... of a plain fence", (w) => w.syncFile(), [
              'EINVAL',
            ]),
            X('a closed sync file', (w) => w.closedSyncFile(), ['EBADF']),
          ],
        },
      ),
    ],
    { stale: deadTl, codes: ['ENOENT', 'EINVAL'] },
  ),
  method('SwSyncTimeline', 'destroy', tlRecv, []),
  method('SwSyncTimeline', 'toString', tlRecv, []),
  method('SwSyncTimeline', DISPOSE, tlRecv, [], { call: (r) => r[Symbol.dispose]() }),

  // ---- DmaResv ------------------------------------------------------------------------------------
  fn('new DmaResv', () => new DmaResv(), []),
  fn('DmaResv.create', () => DmaResv.create(), []),
  fn('DmaResv.usageRw', (x) => DmaResv.usageRw(x), [P(K.bool, () => true)]),
  fn('DmaResv.fromShared', (d) => DmaResv.fromShared(d), [resvDesc], {
    post: (w, _r, a, v) => {
      w.consume(a[0]);
      w.adopt(v);
    },
  }),
  method('DmaResv', 'share', resvRecv, [], {
    stale: deadResv,
    post: (w, _r, _a, v) => {
      w.track({ kind: 'resv', desc: v as any });
    },
  }),
  method('DmaResv', 'fini', resvRecv, [], {
    stale: [
      ...deadResv.map((x) => ({ ...x, codes: 'ok' as const })),
      X('a locked object', (w) => w.lockedResv(), ['EBUSY']),
    ],
  }),
  method('DmaResv', 'lock', resvRecv, [ctxOrNull], { stale: deadResv, post: lockPost }),
  method('DmaResv', 'lockInterruptible', resvRecv, [ctxOrNull, opts], {
    stale: deadResv,
    post: lockPost,
  }),
  method('DmaResv', 'lockSlow', resvRecv, [ctx], { stale: deadResv, post: lockPost }),
  method('DmaResv', 'lockSlowInterruptible', resvRecv, [ctx, opts], {
    stale: deadResv,
    post: lockPost,
  }),
  method('DmaResv', 'lockSync', resvRecv, [ctxOrNull], {
    stale: [...deadResv, X('locked by this thread', (w) => w.lockedResv(), ['EDEADLK'])],
    post: lockPost,
  }),
  method('DmaResv', 'lockSlowSync', resvRecv, [ctx], { stale: deadResv, post: lockPost }),
  method('DmaResv', 'trylock', resvRecv, [ctxOpt], {
    stale: [...deadResv, X('locked', (w) => w.lockedResv(), 'ok')],
    post: lockPost,
  }),
  method('DmaResv', 'unlock', (w) => w.lockedResv(), [], {
    stale: [...deadResv, X('an unlocked object', resvRecv, ['EPERM'])],
    post: (w, r) => w.droppedLock(r),
  }),
  method('DmaResv', 'isLocked', resvRecv, [], { stale: deadResv }),
  method('DmaResv', 'isHeld', resvRecv, [ctxOpt], { stale: deadResv }),
  method('DmaResv', 'assertHeld', (w) => w.lockedResv(), [ctxOpt], {
    stale: [...deadResv, X('an unlocked object', resvRecv, ['EPERM'])],
  }),
  get('DmaResv', 'lockingCtx', resvRecv, deadResv),
  get('DmaResv', 'ownerDied', resvRecv, deadResv),
  method(
    'DmaResv',
    'reserveFences',
    (w) => w.lockedResv(),
    [
      P(
        {
          name: 'count > 0',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0,
        },
        () => 2,
      ),
    ],
    { stale: [...deadResv, X('an unlocked object', resvRecv, ['EPERM'])], codes: ['ENOMEM'] },
  ),
  method(
    'DmaResv',
    'addFence',
    (w) => w.lockedResv(1),
    [
      P(K.plainFence, (w) => w.fence(), {
        extra: [
          ...(plainFence.extra ?? []),
          X('a fence of another domain', (w) => w.foreignFence(), ['EXDEV']),
          X('a signaled fence', (w) => w.signaled(), 'ok'),
        ],
      }),
      usage,
    ],
    {
      stale: [
        ...deadResv,
        X('locked, nothing reserved', (w) => w.lockedResv(0), ['EINVAL']),
        X('an unlocked object', resvRecv, ['EPERM']),
      ],
    },
  ),
  method('DmaResv', 'replaceFences', (w) => w.lockedResv(), [seqno, plainFence, usage], {
    stale: [...deadResv, X('an unlocked object', resvRecv, ['EPERM'])],
  }),
  method('DmaResv', 'copyFences', (w) => w.lockedResv(), [resvP], {
    stale: [...deadResv, X('an unlocked object', resvRecv, ['EPERM'])],
  }),
  method('DmaResv', 'fences', (w) => w.lockedResv(), [usage], {
    call: (r, a) => [...r.fences(...a)],
    stale: [...deadResv, X('an unlocked object', (w) => w.busyResv(), ['EPERM'])],
  }),
  method('DmaResv', 'fencesUnlocked', (w) => w.busyResv(), [usage], {
    call: (r, a) => [...r.fencesUnlocked(...a)],
    stale: deadResv,
  }),
  method('DmaResv', 'getFences', (w) => w.busyResv(), [usage], { stale: deadResv }),
  method('DmaResv', 'getSingleton', (w) => w.busyResv(), [usage], { stale: deadResv }),
  method('DmaResv', 'testSignaled', (w) => w.busyResv(), [usage], { stale: deadResv }),
  method('DmaResv', 'waitTimeout', resvRecv, [usage, timeout, opts], { stale: deadResv }),
  method('DmaResv', 'waitTimeoutSync', resvRecv, [usage, timeout], { stale: deadResv }),
  method('DmaResv', 'setDeadline', (w) => w.busyResv(), [usage, ns], { stale: deadResv }),
  method('DmaResv', 'describe', (w) => w.busyResv(), [], { stale: deadResv }),
  get('DmaResv', 'numFences', (w) => w.busyResv(), deadResv),
  method('DmaResv', DISPOSE, resvRecv, [], {
    call: (r) => r[Symbol.dispose](),
    stale: deadResv.map((x) => ({ ...x, codes: 'ok' as const })),
  }),

  // ---- DmaResvIter ---------------------------------------------------------------------------------
  fn('new DmaResvIter', (r, u) => new DmaResvIter(r, u), [P(K.resv, (w) => w.busyResv()), usage]),
  method('DmaResvIter', 'next', (w) => w.busyResv().fencesUnlocked(3), [], {
    stale: [
      X('over a finished reservation object', () => {
        const r = new DmaResv();
        const it = r.fencesUnlocked(3);
        r.fini();
        return it;
      }, ['EBADF']),
    ],
  }),
  method('DmaResvIter', 'return', (w) => w.busyResv().fencesUnlocked(3), []),
  method('DmaResvIter', String(Symbol.iterator), (w) => w.busyResv().fencesUnlocked(3), [], {
    call: (r) => r[Symbol.iterator](),
  }),

  // ---- WwClass, WwAcquireCtx, WwMutex ---------------------------------------------------------------
  fn('new WwClass', (n, o) => new WwClass(n, o), [
    P(
      {
        name: 'name (1..64)',
        codes: ['EINVAL'],
        valid: (v) => typeof v === 'string' && v.length >= 1 && v.length <= 64,
      },
      () => 'fuzz_class',
    ),
    P(K.objectOpt, () => undefined, {
      fields: undefined,
      extra: [
        X('{ waitDie: false }', () => ({ waitDie: false }), ['EINVAL']),
        X('{ waitDie: "yes" }', () => ({ waitDie: 'yes' }), ['EINVAL']),
      ],
    }),
  ]),
  fn('new WwAcquireCtx', (c) => new WwAcquireCtx(c), [P(K.wwClassOpt, () => undefined)]),
  get('WwAcquireCtx', 'acquired', (w) => w.ctx()),
  method('WwAcquireCtx', 'done', (w) => w.ctx(), [], {
    stale: [X('a finished context', (w) => w.finishedCtx(), ['EINVAL'])],
  }),
  method('WwAcquireCtx', 'fini', (w) => w.ctx(), [], {
    stale: [
      X('a finished context', (w) => w.finishedCtx(), 'ok'),
      X(
        'a context holding a lock',
        (w) => {
          const c = w.ctx();
          const r = w.resv();
          if (r.trylock(c)) w.tookLock(r, c);
          return c;
        },
        ['EBUSY'],
      ),
    ],
  }),
  method('WwAcquireCtx', DISPOSE, (w) => w.ctx(), [], { call: (r) => r[Symbol.dispose]() }),
  fn('new WwMutex', (c) => new WwMutex(c), [P(K.wwClassOpt, () => undefined)]),
  fn('WwMutex.fromShared', (d) => WwMutex.fromShared(d), [mutexDesc], {
    post: (w, _r, a, v) => {
      w.consume(a[0]);
      w.adopt(v);
    },
  }),
  method('WwMutex', 'share', mutexRecv, [], {
    stale: deadMutex,
    post: (w, _r, _a, v) => {
      w.track({ kind: 'mutex', desc: v as any });
    },
  }),
  method('WwMutex', 'destroy', mutexRecv, [], {
    stale: deadMutex.map((x) => ({ ...x, codes: 'ok' as const })),
  }),
  method('WwMutex', 'isLocked', mutexRecv, [], { stale: deadMutex }),
  method('WwMutex', 'isHeld', mutexRecv, [ctxOpt], { stale: deadMutex }),
  method('WwMutex', 'assertHeld', mutexRecv, [ctxOpt], { stale: deadMutex, codes: ['EPERM'] }),
  get('WwMutex', 'lockingCtx', mutexRecv, deadMutex),
  get('WwMutex', 'ownerDied', mutexRecv, deadMutex),
  get('WwMutex', 'ctx', mutexRecv, deadMutex),
  method('WwMutex', 'lock', mutexRecv, [ctxOrNull], { stale: deadMutex, post: lockPost }),
  method('WwMutex', 'lockInterruptible', mutexRecv, [ctxOrNull, opts], {
    stale: deadMutex,
    post: lockPost,
  }),
  method('WwMutex', 'lockSlow', mutexRecv, [ctx], { stale: deadMutex, post: lockPost }),
  method('WwMutex', 'lockSlowInterruptible', mutexRecv, [ctx, opts], {
    stale: deadMutex,
    post: lockPost,
  }),
  method('WwMutex', 'lockSync', mutexRecv, [ctxOrNull], { stale: deadMutex, post: lockPost }),
  method('WwMutex', 'lockSlowSync', mutexRecv, [ctx], { stale: deadMutex, post: lockPost }),
  method('WwMutex', 'trylock', mutexRecv, [ctxOpt], { stale: deadMutex, post: lockPost }),
  method(
    'WwMutex',
    'unlock',
    (w) => {
      const m = w.mutex();
      m.trylock(null);
      w.tookLock(m, null);
      return m;
    },
    [],
    {
      stale: [...deadMutex, X('an unlocked mutex', mutexRecv, ['EPERM'])],
      post: (w, r) => w.droppedLock(r),
    },
  ),
  method('WwMutex', DISPOSE, mutexRecv, [], {
    call: (r) => r[Symbol.dispose](),
    stale: deadMutex.map((x) => ({ ...x, codes: 'ok' as const })),
  }),

  // ---- DmaBuf -------------------------------------------------------------------------------------
  fn('DmaBuf.export', (i) => DmaBuf.export(i), [exportInfoP], { codes: ['EINVAL'] }),
  fn('DmaBuf.get', (fd) => DmaBuf.get(fd), [fdOfBuf]),
  fn('DmaBuf.close', (fd) => DmaBuf.close(fd), [fdAny], {
    post: (w, _r, a) => {
      const i = w.fds.indexOf(a[0]);
      if (i >= 0) w.fds.splice(i, 1);
    },
  }),
  fn('DmaBuf.fromShared', (d) => DmaBuf.fromShared(d), [bufDesc], {
    post: (w, _r, a, v) => {
      w.consume(a[0]);
      w.adopt(v);
    },
  }),
  fn('DmaBuf.install', (d, f) => DmaBuf.install(d, f), [bufDesc, fdFlags], {
    codes: ['EINVAL'],
    post: (w, _r, a, v) => {
      w.consume(a[0]);
      w.fds.push(v as number);
    },
  }),
  fn('DmaBuf.iterBegin', () => DmaBuf.iterBegin(), []),
  fn('DmaBuf.iterNext', (b) => DmaBuf.iterNext(b), [
    P(K.object, (w) => w.buf(), {
      kind: { name: 'DmaBuf', codes: ['EINVAL'], valid: (v) => v instanceof DmaBuf },
      extra: [X('a put reference', (w) => w.putBuf(), ['EBADF'])],
    }),
  ]),
  fn('DmaBuf.fdinfo', (fd) => DmaBuf.fdinfo(fd), [fdOfBuf]),
  fn('DmaBuf.bufinfo', (o) => DmaBuf.bufinfo(o), [opts]),
  // Fixed at export: still answered after put.
  ...(
    [
      'size',
      'inode',
      'expName',
      'flags',
      'mode',
      'priv',
      'homeThread',
      'isDynamic',
      'alive',
    ] as const
  ).map((p) => get('DmaBuf', p, (w) => w.buf(), staleBufOk)),
  // The reservation object: EBADF once the buffer (and an embedded one with it) was released.
  get('DmaBuf', 'resv', (w) => w.buf(), staleBufOk, ['EBADF']),
  // Read from the shared record, which may belong to another buffer after the release: EBADF.
  ...(
    ['revoked', 'refcount', 'attachmentCount', 'vmapCount', 'name', 'exporterWords'] as const
  ).map((p) => get('DmaBuf', p, (w) => w.buf(), staleBuf)),
  method('DmaBuf', 'toString', (w) => w.buf(), [], { stale: staleBufOk }),
  method('DmaBuf', 'get', (w) => w.buf(), [accMode], { stale: staleBuf }),
  method('DmaBuf', 'put', (w) => w.buf(), [], {
    stale: [...staleBuf, X('a borrowed view', async (w) => (await w.att()).dmabuf, ['EINVAL'])],
    post: () => {},
  }),
  method('DmaBuf', 'fd', (w) => w.buf(), [fdFlags], {
    stale: staleBuf,
    codes: ['EINVAL'],
    post: (w, _r, _a, v) => {
      w.fds.push(v as number);
    },
  }),
  method(
    'DmaBuf',
    'share',
    (w) => w.buf(),
    [
      P(K.fdOpt, () => undefined, {
        extra: [
          X('an fd of another buffer', (w) => w.fd(), ['EINVAL']),
          X('a closed fd', (w) => w.closedFd(), ['EBADF']),
        ],
      }),
    ],
    {
      stale: staleBuf,
      post: (w, _r, _a, v) => {
        w.track({ kind: 'buf', desc: v as any });
      },
    },
  ),
  method('DmaBuf', 'attach', (w) => w.buf(), [device], {
    stale: [
      ...staleBuf,
      X(
        'a revoked buffer',
        async (w) => {
          const b = w.buf();
          await b.revoke();
          return b;
        },
        ['ENODEV'],
      ),
    ],
    post: (w, r, _a, v) => {
      w.atts.push({ buf: r, att: v as DmaBufAttachment });
    },
  }),
  method(
    'DmaBuf',
    'dynamicAttach',
    (w) => w.buf(),
    [
      device,
      P(
        {
          name: 'importer ops',
          codes: ['EINVAL'],
          valid: (v) => v !== null && typeof v === 'object',
        },
        () => ({ invalidateMappings() {} }),
        {
          extra: [
            X('invalidateMappings: 5', () => ({ invalidateMappings: 5 }), ['EINVAL']),
            X('allowPeer2peer: "yes"', () => ({ allowPeer2peer: 'yes' }), ['EINVAL']),
          ],
        },
      ),
      P(K.any, () => undefined),
    ],
    {
      stale: staleBuf,
      post: (w, r, _a, v) => {
        w.atts.push({ buf: r, att: v as DmaBufAttachment });
      },
    },
  ),
  method(
    'DmaBuf',
    'detach',
    (w) => w.buf(),
    [
      P(K.attachment, (w, r) => w.att(r), {
        extra: [
          X('a detached attachment', (w) => w.detachedAtt(), ['EINVAL']),
          X('an attachment of another buffer', (w) => w.att(), ['EINVAL']),
        ],
      }),
    ],
    { stale: staleBuf },
  ),
  method('DmaBuf', 'invalidateMappings', (w) => w.lockedBuf(), [], {
    stale: [...staleBuf, X('unlocked', (w) => w.buf(), ['EPERM'])],
  }),
  method('DmaBuf', 'revoke', (w) => w.buf(), [opts], { stale: staleBuf, codes: ['EINTR'] }),
  method('DmaBuf', 'beginCpuAccess', (w) => w.buf(), [direction, opts], {
    stale: staleBuf,
    codes: ['ERESTARTSYS', 'EINTR'],
  }),
  method('DmaBuf', 'endCpuAccess', (w) => w.buf(), [direction], { stale: staleBuf }),
  method('DmaBuf', 'beginCpuAccessSync', (w) => w.buf(), [direction], { stale: staleBuf }),
  method('DmaBuf', 'endCpuAccessSync', (w) => w.buf(), [direction], { stale: staleBuf }),
  method(
    'DmaBuf',
    'mmap',
    (w) => w.buf(),
    [
      P(optional(K.uint), () => 0, {
        extra: [
          X('4095 (not a page multiple)', () => 4095, ['EINVAL']),
          X('8192 (past the end)', () => 8192, ['EINVAL']),
        ],
      }),
      P(optional(K.uint), () => 4096, {
        extra: [X('8193 (past the end)', () => 8193, ['EINVAL'])],
      }),
      P(K.objectOpt, () => ({}), { fields: { write: P(K.any, () => undefined) } }),
    ],
    {
      stale: [...staleBuf, X('a write-only reference', (w) => w.buf().get(1), ['EACCES'])],
      codes: ['EINVAL', 'EOVERFLOW'],
    },
  ),
  method(
    'DmaBuf',
    'mmapSegments',
    (w) => w.buf(),
    [
      P(optional(K.uint), () => 0),
      P(optional(K.uint), () => 4096),
      P(K.objectOpt, () => ({})),
      P(K.strOpt, () => undefined),
    ],
    { stale: staleBuf, codes: ['EINVAL', 'EOVERFLOW'] },
  ),
  method('DmaBuf', 'vmap', (w) => w.lockedBuf(), [], {
    stale: [...staleBuf, X('unlocked', (w) => w.mockBuf(), ['EPERM'])],
    post: (w, r, _a, v) => {
      w.vmaps.push({ buf: r, map: v as DmaBufMap });
    },
  }),
  method(
    'DmaBuf',
    'vunmap',
    (w) => w.lockedBuf(),
    [
      P(K.map, (w, r) => w.vmapOf(r), {
        extra: [X('a map of another buffer', (w) => mapOf(w), ['EINVAL'])],
      }),
    ],
    {
      stale: [...staleBuf],
      codes: ['EINVAL'],
    },
  ),
  method('DmaBuf', 'vmapUnlocked', (w) => w.mockBuf(), [], {
    stale: staleBuf,
    post: (w, r, _a, v) => {
      w.vmaps.push({ buf: r, map: v as DmaBufMap });
    },
  }),
  method(
    'DmaBuf',
    'vunmapUnlocked',
    (w) => w.mockBuf(),
    [
      P(K.map, () => undefined, {
        extra: [X('a map of another buffer', (w) => mapOf(w), ['EINVAL'])],
      }),
    ],
    { stale: staleBuf, codes: ['EINVAL'] },
  ),
  method(
    'DmaBuf',
    'poll',
    (w) => w.buf(),
    [
      P(
        {
          name: 'events',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'number' && Number.isInteger(v),
        },
        () => 5,
      ),
    ],
    {
      stale: staleBuf,
    },
  ),
  method(
    'DmaBuf',
    'pollAsync',
    (w) => w.buf(),
    [
      P(
        {
          name: 'events',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'number' && Number.isInteger(v),
        },
        () => 5,
      ),
      P(K.objectOpt, () => ({ timeoutMs: 1 }), {
        fields: {
          timeoutMs: P(K.timeoutOpt, () => 1),
          signal: P(
            {
              name: 'AbortSignal?',
              codes: ['EINVAL'],
              valid: (v) => v === undefined || v instanceof AbortSignal,
            },
            () => undefined,
          ),
        },
      }),
    ],
    { stale: staleBuf, codes: ['ERESTARTSYS'] },
  ),
  method(
    'DmaBuf',
    'sync',
    (w) => w.buf(),
    [
      P(flagsKind(7), () => SYNC_RW, {
        extra: [X('END only (no direction)', () => 4, ['EINVAL']), X('0', () => 0, ['EINVAL'])],
      }),
      opts,
    ],
    {
      stale: staleBuf,
      codes: ['EINVAL', 'ERESTARTSYS', 'EINTR'],
    },
  ),
  method(
    'DmaBuf',
    'setName',
    (w) => w.buf(),
    [
      P(withCodes(K.str, ['EFAULT']), () => 'fuzz', {
        extra: [X('32 bytes', () => 'x'.repeat(32), ['EINVAL'])],
      }),
    ],
    { stale: staleBuf, codes: ['EINVAL'] },
  ),
  method(
    'DmaBuf',
    'exportSyncFile',
    (w) => w.buf(),
    [P(flagsKind(SYNC_RW), () => SYNC_RW, { extra: [X('0', () => 0, ['EINVAL'])] })],
    {
      stale: staleBuf,
      codes: ['EINVAL'],
    },
  ),
  method(
    'DmaBuf',
    'importSyncFile',
    (w) => w.buf(),
    [
      P(flagsKind(SYNC_RW), () => SYNC_RW, { extra: [X('0', () => 0, ['EINVAL'])] }),
      P(
        {
          name: 'SyncFile|fd',
          codes: ['EINVAL'],
          valid: (v) => v instanceof SyncFile && !v.closed,
        },
        (w) => w.syncFile(),
        {
          extra: [
            X('a closed sync file', (w) => w.closedSyncFile(), ['EINVAL']),
            X('a buffer fd', (w) => w.fd(), ['EINVAL']),
            X('a closed fd', (w) => w.closedFd(), ['EINVAL']),
            X('a sync file fd', (w) => w.syncFd(), 'ok'),
            X('a sync file of another domain', (w) => w.syncFile(w.foreignFence()), ['EXDEV']),
          ],
        },
      ),
    ],
    { stale: staleBuf, codes: ['EINVAL'] },
  ),
  method(
    'DmaBuf',
    'ioctl',
    (w) => w.buf(),
    [
      P(
        {
          name: 'ioctl number',
          codes: ['ENOTTY'],
          valid: (v) =>
            [
              DMA_BUF_IOCTL_SYNC,
              DMA_BUF_SET_NAME,
              0x40046201,
              DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
              DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
            ].includes(v as number),
        },
        () => DMA_BUF_IOCTL_SYNC,
      ),
      P(
        {
          name: 'struct',
          codes: ['EFAULT', 'EINVAL'],
          valid: (v) => v !== null && typeof v === 'object' && flagsValidSync((v as any).flags),
        },
        () => ({ flags: SYNC_RW }),
        {
          extra: [X('SET_NAME with a struct', () => ({ flags: 3 }), 'ok')],
        },
      ),
    ],
    {
      stale: staleBuf,
      codes: ['EINVAL', 'EFAULT'],
      post: (w, _r, a) => {
        if (a[0] === DMA_BUF_IOCTL_EXPORT_SYNC_FILE && typeof a[1]?.fd === 'number')
          w.fds.push(a[1].fd);
      },
    },
  ),
  method(
    'DmaBuf',
    'llseek',
    (w) => w.buf(),
    [
      P({ name: 'offset 0', codes: ['EINVAL'], valid: (v) => v === 0 || v === 0n }, () => 0),
      P(
        {
          name: 'SEEK_SET|SEEK_END',
          codes: ['EINVAL'],
          valid: (v) => v === SEEK_SET || v === SEEK_END,
        },
        () => SEEK_END,
      ),
    ],
    { stale: staleBuf },
  ),
  method(
    'DmaBuf',
    'fdinfo',
    (w) => w.buf(),
    [
      P(K.fdOpt, () => undefined, {
        extra: [
          X('an fd of another buffer', (w) => w.fd(), ['EINVAL']),
          X('a closed fd', (w) => w.closedFd(), ['EBADF']),
        ],
      }),
    ],
    { stale: staleBuf },
  ),
  method('DmaBuf', DISPOSE, (w) => w.buf(), [], {
    call: (r) => r[Symbol.dispose](),
    stale: staleBufOk,
    post: () => {},
  }),

  // ---- attachments and mappings --------------------------------------------------------------------
  fn(
    'new DmaBufAttachment',
    (...a) => new (DmaBufAttachment as any)(...a),
    [
      P(K.object, () => ({}), {
        kind: { name: 'internal', codes: ['EINVAL'], valid: () => false },
      }),
    ],
    {
      codes: ['EINVAL'],
    },
  ),
  // Fixed at attach: still answered after detach.
  ...(['dmabuf', 'isDynamic', 'peer2peer', 'revocable'] as const).map((p) =>
    get('DmaBufAttachment', p, attRecv, detachedOk),
  ),
  // Read from the shared record, which may belong to another attachment after detach: EINVAL.
  ...(['mapCount', 'exporterWords'] as const).map((p) =>
    get('DmaBufAttachment', p, attRecv, detached),
  ),
  method('DmaBufAttachment', 'pin', (w) => w.lockedAtt(true), [], {
    stale: [
      ...detached,
      X('a static attachment', (w) => w.lockedAtt(false), ['EINVAL']),
      X('unlocked', (w) => w.att(undefined, true), ['EPERM']),
    ],
  }),
  method('DmaBufAttachment', 'unpin', (w) => w.lockedAtt(true), [], {
    stale: [...detached, X('a static attachment', (w) => w.lockedAtt(false), ['EINVAL'])],
    codes: ['EINVAL'],
  }),
  method('DmaBufAttachment', 'mapAttachment', (w) => w.lockedAtt(false), [direction, opts], {
    stale: [...detached, X('unlocked', attRecv, ['EPERM'])],
    codes: ['ERESTARTSYS', 'EINTR'],
    post: (w, _r, _a, v) => {
      w.mappings.push(v as DmaBufMapping);
    },
  }),
  method(
    'DmaBufAttachment',
    'unmapAttachment',
    (w) => w.lockedAtt(false),
    [
      P(K.mapping, (w, r) => w.mapping(r), {
        extra: [
          X('a mapping of another attachment', (w) => w.mapping(), ['EINVAL']),
          X('an unmapped mapping', (w) => w.unmapped(), ['EINVAL']),
        ],
      }),
    ],
    { stale: [X('unlocked', attRecv, ['EPERM', 'EINVAL'])], codes: ['EINVAL'] },
  ),
  method('DmaBufAttachment', 'mapAttachmentUnlocked', attRecv, [direction, opts], {
    stale: detached,
    codes: ['ERESTARTSYS', 'EINTR'],
    post: (w, _r, _a, v) => {
      w.mappings.push(v as DmaBufMapping);
    },
  }),
  method(
    'DmaBufAttachment',
    'unmapAttachmentUnlocked',
    attRecv,
    [
      P(K.mapping, () => undefined, {
        extra: [
          X('a mapping of another attachment', (w) => w.mapping(), ['EINVAL']),
          X('an unmapped mapping', (w) => w.unmapped(), ['EINVAL']),
        ],
      }),
    ],
    { stale: detached, codes: ['EINVAL'] },
  ),
  method('DmaBufAttachment', 'toString', attRecv, [], { stale: detachedOk }),
  method('DmaBufAttachment', ASYNC_DISPOSE, attRecv, [], {
    call: (r) => r[Symbol.asyncDispose](),
    stale: [X('a detached attachment', (w) => w.detachedAtt(), 'ok')],
  }),
  fn(
    'new DmaBufMapping',
    (...a) => new (DmaBufMapping as any)(...a),
    [
      P(K.object, () => ({}), {
        kind: { name: 'internal', codes: ['EINVAL'], valid: () => false },
      }),
    ],
    {
      codes: ['EINVAL'],
    },
  ),
  get('DmaBufMapping', 'valid', (w) => w.mapping(), [X('unmapped', (w) => w.unmapped(), 'ok')]),
  get('DmaBufMapping', 'byteLength', (w) => w.mapping(), [
    X('unmapped', (w) => w.unmapped(), 'ok'),
  ]),
  method('DmaBufMapping', 'views', (w) => w.mapping(), [], {
    stale: [X('unmapped', (w) => w.unmapped(), 'ok')],
  }),
  fn(
    'new DmaBufMap',
    (...a) => new (DmaBufMap as any)(...a),
    [
      P(K.object, () => ({}), {
        kind: { name: 'internal', codes: ['EINVAL'], valid: () => false },
      }),
    ],
    {
      codes: ['EINVAL'],
    },
  ),

  // ---- heaps --------------------------------------------------------------------------------------
  fn(
    'DmaHeap.add',
    (i) => DmaHeap.add(i),
    [
      P(
        K.object,
        () => ({
          name: `fuzz-heap-${heapSeq++}`,
          ops: { allocate: () => systemHeap.allocateBuffer(4096) },
        }),
        {
          fields: {
            name: P(
              {
                name: 'non-empty string',
                codes: ['EINVAL'],
                valid: (v) => typeof v === 'string' && v !== '',
              },
              () => `fuzz-heap-${heapSeq++}`,
            ),
            ops: P(
              {
                name: 'heap ops',
                codes: ['EINVAL'],
                valid: (v) =>
                  v !== null && typeof v === 'object' && typeof (v as any).allocate === 'function',
              },
              () => ({ allocate: () => systemHeap.allocateBuffer(4096) }),
            ),
          },
          extra: [
            X('the name "system"', () => ({ name: 'system', ops: { allocate: () => null } }), [
              'EINVAL',
            ]),
          ],
        },
      ),
    ],
    { codes: ['EBUSY', 'EINVAL'], noGen: true },
  ),
  fn('DmaHeap.list', () => DmaHeap.list(), []),
  fn('DmaHeap.find', (n) => DmaHeap.find(n), [P(K.any, () => 'system')]),
  method(
    'DmaHeap',
    'allocate',
    () => systemHeap,
    [
      P(
        {
          name: 'len',
          codes: ['EINVAL'],
          valid: (v) =>
            (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) ||
            (typeof v === 'bigint' && v > 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)),
        },
        () => 4096,
      ),
      P(flagsOptKind(O_CLOEXEC | 3), () => undefined, {
        extra: [X('O_ACCMODE (3)', () => 3, 'ok')],
      }),
      P(
        {
          name: 'heap flags 0',
          codes: ['EINVAL'],
          valid: (v) => v === undefined || v === 0 || v === 0n,
        },
        () => undefined,
      ),
    ],
    {
      codes: ['ENOMEM', 'EINVAL'],
      post: (w, _r, _a, v) => {
        w.fds.push(v as number);
      },
    },
  ),
  method(
    'DmaHeap',
    'allocateBuffer',
    () => systemHeap,
    [
      P(
        {
          name: 'len',
          codes: ['EINVAL'],
          valid: (v) =>
            (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) ||
            (typeof v === 'bigint' && v > 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)),
        },
        () => 4096,
      ),
      P(flagsOptKind(O_CLOEXEC | 3), () => undefined, {
        extra: [X('O_ACCMODE (3)', () => 3, 'ok')],
      }),
      P(
        {
          name: 'heap flags 0',
          codes: ['EINVAL'],
          valid: (v) => v === undefined || v === 0 || v === 0n,
        },
        () => undefined,
      ),
    ],
    { codes: ['ENOMEM', 'EINVAL'] },
  ),
  method(
    'DmaHeap',
    'ioctl',
    () => systemHeap,
    [
      P(
        { name: 'ioctl number', codes: ['EINVAL'], valid: (v) => v === DMA_HEAP_IOCTL_ALLOC },
        () => DMA_HEAP_IOCTL_ALLOC,
        {
          extra: [
            X('16-byte variant', () => 0xc0104800, 'ok'),
            X('nr 1', () => 0xc0184801, ['EINVAL']),
          ],
        },
      ),
      P(
        {
          name: 'struct bytes',
          codes: ['EFAULT'],
          valid: (v) => ArrayBuffer.isView(v) && v.byteLength >= 24,
        },
        () => heapArg(4096, 0, O_RDWR, 0n),
        {
          extra: [
            X('fd != 0', () => heapArg(4096, 7, O_RDWR, 0n), ['EINVAL']),
            X('fd_flags bit 30', () => heapArg(4096, 0, 1 << 30, 0n), ['EINVAL']),
            X('heap_flags 1', () => heapArg(4096, 0, O_RDWR, 1n), ['EINVAL']),
            X('len 0', () => heapArg(0, 0, O_RDWR, 0n), ['EINVAL']),
            X('len 2**64-1', () => heapArg(-1, 0, O_RDWR, 0n), ['EINVAL']),
          ],
        },
      ),
    ],
    {
      codes: ['EINVAL', 'ENOMEM', 'EFAULT'],
      post: (w, _r, a) => {
        if (ArrayBuffer.isView(a[1]) && a[1].byteLength >= 12) {
          const fd = new DataView(a[1].buffer, a[1].byteOffset).getUint32(8, true);
          if (fd !== 0) w.fds.push(fd);
        }
      },
    },
  ),
  fn(
    'configureSystemHeap',
    (c) => {
      const old = configureSystemHeap(c);
      configureSystemHeap(old);
      return old;
    },
    [
      P(K.object, () => ({}), {
        fields: {
          chunkSize: P(optional(K.uint), () => undefined, {
            extra: [X('not a page multiple', () => 4097, ['EINVAL']), X('0', () => 0, ['EINVAL'])],
          }),
          maxBytes: P(optional(K.uint), () => undefined),
        },
      }),
    ],
    { codes: ['EINVAL'] },
  ),

  // ---- WebAssembly heap -------------------------------------------------------------------------------
  // Heaps cannot be removed from a thread's registry (nor in the kernel): these rows make a few
  // each, with fresh names, and stay out of the generative run.
  fn(
    'createWasmHeap',
    (o) => createWasmHeap(o),
    [
      P(K.object, () => ({ name: wasmName(), maximumPages: 2 }), {
        fields: {
          name: P(K.str, () => wasmName()),
          maximumPages: P(K.uint, () => 2, {
            extra: [X('0', () => 0, ['EINVAL']), X('65537', () => 65537, ['EINVAL'])],
          }),
          initialPages: P(optional(K.uint), () => undefined, {
            extra: [X('above the maximum', () => 3, ['EINVAL'])],
          }),
          reservedBytes: P(optional(K.uint), () => undefined, {
            extra: [X('not a page multiple', () => 100, ['EINVAL'])],
          }),
          memory: P(K.objectOpt, () => undefined, {
            extra: [
              X('not shared', () => new WebAssembly.Memory({ initial: 1, maximum: 2 }), ['EINVAL']),
            ],
          }),
        },
      }),
    ],
    { codes: ['EINVAL', 'ENOMEM', 'EBUSY'], noGen: true, post: () => {} },
  ),
  fn(
    'wasmHeapDescriptor',
    (h) => wasmHeapDescriptor(h),
    [
      P(
        { name: 'DmaHeap', codes: ['EINVAL'], valid: (v) => v instanceof DmaHeap },
        () => wasmFuzzHeap(),
        { extra: [X('the system heap', () => systemHeap, ['EINVAL'])] },
      ),
    ],
    { codes: ['EINVAL'] },
  ),
  fn(
    'openWasmHeap',
    (d) => openWasmHeap(d),
    [
      P(K.descriptor, () => ({ ...wasmHeapDescriptor(wasmFuzzHeap()), name: wasmName() }), {
        extra: [
          X('a name registered here', () => wasmHeapDescriptor(wasmFuzzHeap()), ['EINVAL']),
          X(
            'a foreign allocator',
            () => ({
              ...wasmHeapDescriptor(wasmFuzzHeap()),
              name: wasmName(),
              alloc: new SharedArrayBuffer(64),
            }),
            ['EINVAL'],
          ),
        ],
      }),
    ],
    { codes: ['EINVAL', 'EBUSY'], noGen: true, post: () => {} },
  ),
  fn(
    'wasmHeapBuffer',
    (b) => wasmHeapBuffer(b),
    [
      P(
        { name: 'DmaBuf', codes: ['EINVAL'], valid: (v) => v instanceof DmaBuf },
        (w) => {
          const b = wasmFuzzHeap().allocateBuffer(4096);
          w.adopt(b);
          return b;
        },
        { extra: [X('a system heap buffer', (w) => w.buf(), ['EINVAL'])] },
      ),
    ],
    { codes: ['EINVAL'] },
  ),

  // ---- Domain -------------------------------------------------------------------------------------
  fn('Domain.create', () => Domain.create(), [], { noGen: true }),
  fn(
    'Domain.join',
    (d) => Domain.join(d),
    [
      P(K.descriptor, () => Domain.current().descriptor(Domain.current().thread), {
        extra: [
          X('thread 0', () => ({ ...Domain.current().descriptor(1), thread: 0 }), ['EINVAL']),
          X('thread "1"', () => ({ ...Domain.current().descriptor(1), thread: '1' }), ['EINVAL']),
          X('a freed thread', () => ({ ...Domain.current().descriptor(1), thread: 200 }), [
            'EINVAL',
          ]),
          X('wrong id', () => ({ ...Domain.current().descriptor(1), id: 5 }), ['EINVAL']),
          X('tables missing', () => ({ ...Domain.current().descriptor(1), tables: {} }), [
            'EINVAL',
          ]),
          X('tables swapped', () => {
            const d = Domain.current().descriptor(1);
            return { ...d, tables: { ...d.tables, fence: d.tables.buf } };
          }, ['EINVAL']),
          X(
            'strings junk',
            () => ({ ...Domain.current().descriptor(1), strings: new SharedArrayBuffer(8) }),
            ['EINVAL'],
          ),
        ],
      }),
    ],
    { codes: ['EINVAL'] },
  ),
  fn('Domain.current', () => Domain.current(), []),
  fn('Domain.setCurrent', (d) => Domain.setCurrent(d), [
    P({ name: 'Domain', codes: ['EINVAL'], valid: (v) => v instanceof Domain }, () =>
      Domain.current(),
    ),
  ]),
  method('Domain', 'checkId', () => Domain.current(), [P(K.any, () => Domain.current().id)], {
    codes: ['EXDEV'],
  }),
  method('Domain', 'allocContexts', () => Domain.current(), [P(K.pos32, () => 1)]),
  method('Domain', 'allocInode', () => Domain.current(), []),
  method('Domain', 'allocStamp', () => Domain.current(), []),
  method('Domain', 'allocToken', () => Domain.current(), []),
  method('Domain', 'threadState', () => Domain.current(), [P(K.any, () => 1)]),
  method('Domain', 'isThreadAlive', () => Domain.current(), [P(K.any, () => 1)]),
  method('Domain', 'allocThread', () => Domain.current(), [], {
    post: (_w, r, _a, v) => r.threadExited(v),
    noGen: true,
  }),
  method('Domain', 'descriptor', () => Domain.current(), [
    P(
      {
        name: 'thread index',
        codes: ['EINVAL'],
        valid: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < 256,
      },
      () => 1,
    ),
  ]),
  method('Domain', 'threadData', () => Domain.current(), [P(K.objectOpt, () => ({}))], {
    post: (_w, r, _a, v) => r.threadExited((v as any).dmabufDomain.thread),
    noGen: true,
  }),
  method(
    'Domain',
    'watch',
    () => Domain.current(),
    [
      P(
        {
          name: 'Worker',
          codes: ['EINVAL'],
          valid: (v) =>
            v !== null && typeof v === 'object' && typeof (v as any).once === 'function',
        },
        () => ({ once() {} }),
      ),
      P(
        {
          name: 'workerData',
          codes: ['EINVAL'],
          valid: (v) =>
            v !== null && typeof v === 'object' && (v as any).dmabufDomain !== undefined,
        },
        () => ({ dmabufDomain: Domain.current().descriptor(1) }),
      ),
    ],
    { codes: ['EINVAL'], noGen: true },
  ),
  method(
    'Domain',
    'spawn',
    () => Domain.current(),
    [
      P(
        {
          name: 'string|URL',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'string' || v instanceof URL,
        },
        () => new URL('data:text/javascript,'),
        {
          skip: () => true,
        },
      ),
      P(K.objectOpt, () => undefined, { skip: () => true }),
    ],
    { noGen: true },
  ),
  method(
    'Domain',
    'threadExited',
    () => Domain.current(),
    [
      P(
        {
          name: 'thread index',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < 256,
        },
        () => 255,
        {
          skip: (v) => v === 1,
        },
      ),
    ],
    { noGen: true },
  ),

  // ---- functions ----------------------------------------------------------------------------------
  fn('IOC', (a, b, c, d) => IOC(a, b, c, d), [
    P(
      {
        name: 'dir 0..3',
        codes: ['EINVAL'],
        valid: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 3,
      },
      () => 3,
    ),
    P(
      {
        name: 'type u8',
        codes: ['EINVAL'],
        valid: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255,
      },
      () => 0x62,
    ),
    P(
      {
        name: 'nr u8',
        codes: ['EINVAL'],
        valid: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255,
      },
      () => 2,
    ),
    P(
      {
        name: 'size 14 bits',
        codes: ['EINVAL'],
        valid: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x3fff,
      },
      () => 8,
    ),
  ]),
  ...(
    [
      ['IOC_DIR', IOC_DIR],
      ['IOC_NR', IOC_NR],
      ['IOC_SIZE', IOC_SIZE],
      ['IOC_TYPE', IOC_TYPE],
    ] as const
  ).map(([n, f]) => fn(n, (c) => f(c), [P(K.u32, () => DMA_BUF_IOCTL_SYNC)])),
  fn('pageAlign', (n) => pageAlign(n), [P(K.uint, () => 5000)]),
  fn('codeOf', (e) => codeOf(e), [P(K.any, () => -22)], {
    ret: (v) =>
      v === undefined || (typeof v === 'string' && v in ERRNO) ? null : `not a code: ${String(v)}`,
  }),
  fn('serializeError', (e) => serializeError(e), [P(K.any, () => new DmaBufError('EIO', 'x'))], {
    ret: (v) => {
      const s = v as { code?: unknown; message?: unknown };
      return typeof s.code === 'string' && typeof s.message === 'string'
        ? null
        : 'not { code, message } strings';
    },
  }),
  fn(
    'deserializeError',
    (s) => deserializeError(s),
    [
      P(K.any, () => ({ code: 'EINVAL', message: 'x' }), {
        fields: { code: P(K.any, () => 'EINVAL'), message: P(K.any, () => 'x') },
      }),
    ],
    { ret: realError },
  ),
  fn(
    'new DmaBufError',
    (c, m, o) => new DmaBufError(c, m, o),
    [P(K.any, () => 'EINVAL'), P(K.any, () => 'x'), P(K.any, () => undefined)],
    {
      ret: realError,
    },
  ),
  fn('fdClose', (fd) => fdClose(fd), [fdAny], {
    post: (w, _r, a) => {
      const i = w.fds.indexOf(a[0]);
      if (i >= 0) w.fds.splice(i, 1);
    },
  }),
  fn(
    'fdInstall',
    (f, fl) => fdInstall(f, fl),
    [
      P(K.object, () => ({ fileKind: 'fuzz', release() {} }), {
        kind: {
          name: 'FileLike',
          codes: ['EINVAL'],
          valid: (v) =>
            v !== null &&
            typeof v === 'object' &&
            typeof (v as any).fileKind === 'string' &&
            typeof (v as any).release === 'function',
        },
        fields: {
          fileKind: P(K.str, () => 'fuzz'),
          release: P(K.fn, () => () => {}),
        },
      }),
      P(flagsKind(O_CLOEXEC | 3), () => O_CLOEXEC),
    ],
    {
      post: (w, _r, _a, v) => {
        w.fds.push(v as number);
      },
    },
  ),
  fn('fdLookup', (fd) => fdLookup(fd), [fdAny]),
  fn('getWaitPolicy', () => getWaitPolicy(), []),
  fn(
    'setWaitPolicy',
    (p) => {
      const old = setWaitPolicy(p);
      setWaitPolicy(old);
      return old;
    },
    [
      P(K.object, () => ({}), {
        fields: {
          spinSync: P(optional(K.u32), () => undefined),
          spinAsync: P(optional(K.u32), () => undefined),
          useWaitAsync: P(K.boolOpt, () => undefined),
        },
      }),
    ],
  ),
  fn('isDmaBufDebug', () => isDmaBufDebug(), []),
  fn('isDebug', () => isDebug(), []),
  fn(
    'setDebug',
    (on) => {
      const old = setDebug(on);
      setDebug(old);
      return old;
    },
    [P(K.bool, () => isDebug())],
  ),
  fn('inSignallingSection', () => inSignallingSection(), []),
  fn(
    'setDmaBufDebug',
    (on) => {
      const old = setDmaBufDebug(on);
      setDmaBufDebug(old);
      return old;
    },
    [P(K.bool, () => isDmaBufDebug())],
  ),
  fn('nowNs', () => nowNs(), []),
  fn(
    'onThreadExit',
    (o, h) => onThreadExit(o, h),
    [
      P(
        {
          name: 'finite number',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'number' && Number.isFinite(v),
        },
        () => 99,
      ),
      P(K.fn, () => () => {}),
    ],
    { noGen: true },
  ),
  fn(
    'registerSharedExporter',
    (k, r) => registerSharedExporter(k, r),
    [
      P(
        {
          name: 'non-empty string',
          codes: ['EINVAL'],
          valid: (v) => typeof v === 'string' && v !== '',
        },
        () => 'fuzz-kind',
      ),
      P(K.fn, () => () => ({ ops: new MockExporter().ops, priv: null })),
    ],
    { noGen: true },
  ),

  // ---- testing exporters --------------------------------------------------------------------------
  fn(
    'new MockExporter',
    (o) => new MockExporter(o),
    [
      P(K.objectOpt, () => ({}), {
        fields: {
          size: P(
            {
              name: 'size > 0',
              codes: ['EINVAL'],
              valid: (v) =>
                v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v > 0),
            },
            () => 8192,
            { skip: (v) => (v as number) > 1 << 20 },
          ),
          segmentSize: P(
            {
              name: 'size > 0',
              codes: ['EINVAL'],
              valid: (v) =>
                v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v > 0),
            },
            () => 4096,
          ),
        },
      }),
    ],
    { post: () => {}, codes: ['EINVAL'] },
  ),
  method('MockExporter', 'segments', () => new MockExporter({ size: 8192, segmentSize: 4096 }), [
    P(K.uint, () => 0),
    P(K.uint, () => 8192),
  ]),
  method('MockExporter', 'export', () => new MockExporter(), []),
  fn(
    'new MovableExporter',
    (o) => new MovableExporter(o),
    [
      P(K.objectOpt, () => ({}), {
        fields: {
          size: P(
            {
              name: 'size > 0',
              codes: ['EINVAL'],
              valid: (v) =>
                v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v > 0),
            },
            () => 8192,
            { skip: (v) => (v as number) > 1 << 20 },
          ),
          initial: P(
            {
              name: 'placement',
              codes: ['EINVAL'],
              valid: (v) => v === undefined || v === 'system' || v === 'vram',
            },
            () => undefined,
          ),
          copyDelayMs: P(K.timeoutOpt, () => undefined, { skip: (v) => (v as number) > 5 }),
        },
      }),
    ],
    {
      codes: ['EINVAL'],
      post: (w, _r, _a, v) => {
        w.bufs.push((v as MovableExporter).buf);
      },
    },
  ),
  method('MovableExporter', 'segments', (w) => w.movable(), []),
  method(
    'MovableExporter',
    'move',
    (w) => w.movable(),
    [
      P(
        { name: 'placement', codes: ['EINVAL'], valid: (v) => v === 'system' || v === 'vram' },
        () => 'system',
      ),
    ],
    { codes: ['EBUSY'], post: (w, _r, _a, v) => w.adopt(v) },
  ),
];

/** A DmaBufError whose code is one dmabuf knows and whose errno matches it. */
function realError(v: unknown): string | null {
  if (!(v instanceof DmaBufError)) return 'not a DmaBufError';
  if (!Object.hasOwn(ERRNO, v.code) || v.errno !== -ERRNO[v.code])
    return `bad code/errno ${String(v.code)}/${v.errno}`;
  return null;
}

let heapSeq = 0;

function flagsValidSync(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 7 && (v & 3) !== 0;
}

function heapArg(len: number, fd: number, fdFlags: number, heapFlags: bigint): Uint8Array {
  const a = new Uint8Array(24);
  const v = new DataView(a.buffer);
  v.setBigUint64(0, len < 0 ? 2n ** 64n - 1n : BigInt(len), true);
  v.setUint32(8, fd, true);
  v.setUint32(12, fdFlags, true);
  v.setBigUint64(16, heapFlags, true);
  return a;
}

// ---- coverage ----------------------------------------------------------------------------------------

const TS_PRIVATE = 'TypeScript-private (not callable from typed code)';
const SECTIONS =
  'lockdep-lite sections and tasks: a section left open by one junk call would flag every later call of the run; their bad input is tested in src/debug/lockdep.test.ts';
const INTERNAL = '@internal (documented as not part of the API)';
const DRIVER_OP = 'an exporter op: called by the core with its own objects, not an entry point';

/**
 * Members that exist at runtime but are not entry points of the typed API, and why. The coverage
 * test checks that each still exists (so that the list stays honest) and that everything else has
 * a row in {@link ENTRIES}. Names starting with `_` are internal by convention and skipped.
 */
export const NOT_ENTRY_POINTS: Readonly<Record<string, string>> = {
  'new DmaBuf': TS_PRIVATE,
  'DmaBuf#live': TS_PRIVATE,
  'get DmaBufAttachment#rec': TS_PRIVATE,
  'get DmaBufAttachment#flags': TS_PRIVATE,
  'DmaBufAttachment#liveRec': TS_PRIVATE,
  'DmaFence.fromSlot': INTERNAL,
  // Raw journal words and slots of this thread's reference journal: junk recorded there would be
  // put at the thread's exit. Tested in tests/journal.test.ts.
  'Domain#journalOf': INTERNAL,
  'Domain#journalAdd': INTERNAL,
  'Domain#journalRemove': INTERNAL,
  'Domain#isOwnerAlive': INTERNAL,
  'DmaFence#doSignal': TS_PRIVATE,
  'DmaFence#finishSignal': TS_PRIVATE,
  'DmaFence#syncFromSlot': INTERNAL,
  'DmaFence#enableSignaling': TS_PRIVATE,
  'DmaFence#watch': TS_PRIVATE,
  'DmaFence#defaultWait': TS_PRIVATE,
  'DmaFence#publish': INTERNAL,
  'DmaFence#dropSlot': TS_PRIVATE,
  'DmaFence#putSlotRef': TS_PRIVATE,
  'new DmaFenceArray': TS_PRIVATE,
  'new DmaHeap': TS_PRIVATE,
  'DmaResv#check': TS_PRIVATE,
  'DmaResv#maxOf': TS_PRIVATE,
  'DmaResv#arrOf': TS_PRIVATE,
  'DmaResv#entryIdx': TS_PRIVATE,
  'DmaResv#readEntry': TS_PRIVATE,
  'DmaResv#writeEntry': TS_PRIVATE,
  'DmaResv#setCount': TS_PRIVATE,
  'DmaResv#newList': TS_PRIVATE,
  'DmaResv#publish': TS_PRIVATE,
  'DmaResv#remember': TS_PRIVATE,
  'DmaResv#prune': TS_PRIVATE,
  'DmaResv#forget': TS_PRIVATE,
  'DmaResv#entrySignaled': TS_PRIVATE,
  'DmaResv#fenceRef': TS_PRIVATE,
  'DmaResvIter#walk': TS_PRIVATE,
  'new Domain': TS_PRIVATE,
  'new SyncFile': TS_PRIVATE,
  'WwClass.named': INTERNAL,
  'WwMutex#check': TS_PRIVATE,
  'WwMutex#checkCtx': TS_PRIVATE,
  'WwMutex#enqueue': TS_PRIVATE,
  'WwMutex#fastAcquire': TS_PRIVATE,
  'WwMutex.claimStamp': TS_PRIVATE,
  beginSignalling: SECTIONS,
  endSignalling: SECTIONS,
  lockdepTask: SECTIONS,
  'WwMutex#begin': TS_PRIVATE,
  'WwMutex#lockCommon': TS_PRIVATE,
  'WwMutex#lockAsyncLoop': TS_PRIVATE,
  'WwMutex#lockSyncLoop': TS_PRIVATE,
  'WwMutex#mustDie': TS_PRIVATE,
  'WwMutex#attempt': TS_PRIVATE,
  'WwMutex#claim': TS_PRIVATE,
  'WwMutex#dropClaim': TS_PRIVATE,
  'WwMutex#acquired': TS_PRIVATE,
  'systemHeapBufOps.attach': DRIVER_OP,
  'wasmHeapBufOps.attach': DRIVER_OP,
  'wasmHeapBufOps.detach': DRIVER_OP,
  'wasmHeapBufOps.mapDmaBuf': DRIVER_OP,
  'wasmHeapBufOps.unmapDmaBuf': DRIVER_OP,
  'wasmHeapBufOps.release': DRIVER_OP,
  'wasmHeapBufOps.beginCpuAccess': DRIVER_OP,
  'wasmHeapBufOps.endCpuAccess': DRIVER_OP,
  'wasmHeapBufOps.mmap': DRIVER_OP,
  'wasmHeapBufOps.vmap': DRIVER_OP,
  'wasmHeapBufOps.vunmap': DRIVER_OP,
  'systemHeapBufOps.detach': DRIVER_OP,
  'systemHeapBufOps.mapDmaBuf': DRIVER_OP,
  'systemHeapBufOps.unmapDmaBuf': DRIVER_OP,
  'systemHeapBufOps.release': DRIVER_OP,
  'systemHeapBufOps.beginCpuAccess': DRIVER_OP,
  'systemHeapBufOps.endCpuAccess': DRIVER_OP,
  'systemHeapBufOps.mmap': DRIVER_OP,
  'systemHeapBufOps.vmap': DRIVER_OP,
  'systemHeapBufOps.vunmap': DRIVER_OP,
};

/**
 * Every callable the two entry modules expose at runtime: functions, constructors, statics,
 * methods and getters of exported classes, and functions of exported objects.
 */
export async function runtimeEntryPoints(): Promise<string[]> {
  const mods = [await import('../../src/index.js'), await import('../../src/testing/index.js')];
  const out = new Set<string>();
  for (const m of mods) {
    for (const [k, v] of Object.entries(m)) {
      if (typeof v === 'function') {
        if (!/^class\b/.test(Function.prototype.toString.call(v))) {
          out.add(k);
          continue;
        }
        out.add(`new ${k}`);
        for (const s of Object.getOwnPropertyNames(v)) {
          if (s === 'length' || s === 'name' || s === 'prototype' || s.startsWith('_')) continue;
          const d = Object.getOwnPropertyDescriptor(v, s)!;
          if (typeof d.value === 'function' || d.get) out.add(`${k}.${s}`);
        }
        const proto = v.prototype as object;
        const keys: (string | symbol)[] = [
          ...Object.getOwnPropertyNames(proto),
          ...Object.getOwnPropertySymbols(proto),
        ];
        for (const s of keys) {
          const name = String(s);
          if (name === 'constructor' || name.startsWith('_')) continue;
          const d = Object.getOwnPropertyDescriptor(proto, s)!;
          if (d.get) out.add(`get ${k}#${name}`);
          else if (typeof d.value === 'function') out.add(`${k}#${name}`);
        }
      } else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [s, f] of Object.entries(v)) if (typeof f === 'function') out.add(`${k}.${s}`);
      }
    }
  }
  return [...out].sort();
}
