/**
 * `debug-cost`: what debug mode (lockdep-lite, `DMABUF_DEBUG=1` / `setDmaBufDebug(true)`) costs on
 * the hot paths, and what its hooks cost when it is off.
 *
 * The code without the hooks is not available to compare against, so each hot path is measured
 * with debug mode **off** (reported as the `dmabuf` side) against the same path with it **on**
 * (the `debug-on` baseline), interleaved; `speedup` is on/off, and an extra `off/on` line gives
 * the ratio the other way round (1.0 = debug mode costs nothing there):
 *
 * - `debug-cost/fence`: new fence + addCallback + signal (the callback runs inside a signalling
 *   section: beginSignalling / endSignalling), ns per fence;
 * - `debug-cost/resv`: uncontended `await resv.lock(null)` + `unlock()`, ns per pair;
 * - `debug-cost/cpu-access`: `beginCpuAccess` + `endCpuAccess` on an idle system-heap buffer (the
 *   locking-convention check `forbidHeld` on each), ns per pair.
 *
 * Then the hooks themselves with debug mode off, against an empty function call of the same shape
 * (`empty-call`): `mightWait`, `forbidHeld`, and a `beginSignalling` / `endSignalling` pair, in ns
 * per call. Run: `node dist/bench/run.js debug-cost` (`BENCH_QUICK=1` for a smoke run).
 */

import { forbidHeld, setDmaBufDebug } from '../src/buf/debug.js';
import { beginSignalling, endSignalling, mightWait } from '../src/debug/lockdep.js';
import {
  DMA_BIDIRECTIONAL,
  DmaFence,
  type DmaFenceOps,
  DmaResv,
  systemHeap,
} from '../src/index.js';
import {
  type Bench,
  compare,
  NS_PER_OP_METRICS,
  type NsPerOpRaw,
  nsPerOp,
  type Result,
  type RunOptions,
  round,
  type SampleOptions,
  type Side,
} from './_harness.js';

type Batch = (iterations: number) => void | Promise<void>;

const ops: DmaFenceOps = { getDriverName: () => 'bench', getTimelineName: () => 'debug-cost' };
let ran = 0;
function onSignal(): void {
  ran++;
}

function fenceBatch(): Batch {
  const context = DmaFence.contextAlloc(1);
  let seqno = 0;
  return (n) => {
    const before = ran;
    for (let i = 0; i < n; i++) {
      const f = new DmaFence(ops, context, ++seqno);
      f.addCallback(onSignal);
      f.signal();
    }
    if (ran - before !== n) throw new Error('debug-cost: callbacks lost');
  };
}

function resvBatch(): Batch {
  const r = new DmaResv();
  return async (n) => {
    for (let i = 0; i < n; i++) {
      await r.lock(null);
      r.unlock();
    }
  };
}

function cpuBatch(): Batch {
  const buf = systemHeap.allocateBuffer(4096);
  return async (n) => {
    for (let i = 0; i < n; i++) {
      await buf.beginCpuAccess(DMA_BIDIRECTIONAL);
      await buf.endCpuAccess(DMA_BIDIRECTIONAL);
    }
  };
}

/** A side that runs `make()`'s batch with debug mode set to `on`, restoring it afterwards. */
function side(name: string, on: boolean, make: () => Batch): Side<SampleOptions, NsPerOpRaw> {
  return {
    name,
    async run(o) {
      const old = setDmaBufDebug(on);
      try {
        return await nsPerOp(o, make());
      } finally {
        setDmaBufDebug(old);
      }
    },
  };
}

// ---- the hooks, debug mode off ------------------------------------------------------------------

// An empty call of the same shape as each hook (kept out of line so that it is a real call, as the
// hooks are: module functions of another module).
function emptyString(_what: string): void {}
function emptyPair(_resv: DmaResv | null, _what: string): void {}
let depth = 0;
function emptyBegin(): number {
  return depth++;
}
function emptyEnd(cookie: number): void {
  depth = cookie;
}

function hookBatches(): { name: string; hook: Batch; empty: Batch }[] {
  const r = new DmaResv();
  return [
    {
      name: 'mightWait',
      hook: (n) => {
        for (let i = 0; i < n; i++) mightWait('bench');
      },
      empty: (n) => {
        for (let i = 0; i < n; i++) emptyString('bench');
      },
    },
    {
      name: 'forbidHeld',
      hook: (n) => {
        for (let i = 0; i < n; i++) forbidHeld(r, 'bench');
      },
      empty: (n) => {
        for (let i = 0; i < n; i++) emptyPair(r, 'bench');
      },
    },
    {
      name: 'signalling-section',
      hook: (n) => {
        for (let i = 0; i < n; i++) endSignalling(beginSignalling());
      },
      empty: (n) => {
        for (let i = 0; i < n; i++) emptyEnd(emptyBegin());
      },
    },
  ];
}

/** One extra result line: the off/on ratio of the p50s (1.0 = free). */
function ratioLine(bench: string, results: readonly Result[]): Result | null {
  const p50 = results.find((r) => r.metric === 'p50');
  if (p50 === undefined || p50.dmabuf === null) return null;
  return {
    bench,
    metric: 'off/on',
    unit: 'ratio',
    dmabuf: round(p50.dmabuf / p50.baselineValue, 3),
    baseline: 'debug-on',
    baselineValue: 1,
    speedup: null,
  };
}

export function debugCostOptions(run: RunOptions): {
  fence: SampleOptions;
  resv: SampleOptions;
  cpu: SampleOptions;
  hook: SampleOptions;
} {
  return {
    fence: { iterations: run.scale(50_000, 1000), warmup: 3, samples: 9 },
    resv: { iterations: run.scale(50_000, 1000), warmup: 3, samples: 9 },
    cpu: { iterations: run.scale(10_000, 500), warmup: 3, samples: 9 },
    hook: { iterations: run.scale(2_000_000, 100_000), warmup: 3, samples: 9 },
  };
}

export const debugCost: Bench = {
  name: 'debug-cost',
  description: 'debug mode (lockdep-lite) off vs on on the hot paths; its hooks when off (ns)',
  async run(run) {
    const o = debugCostOptions(run);
    const out: Result[] = [];
    const paths: [string, SampleOptions, () => Batch][] = [
      ['debug-cost/fence', o.fence, fenceBatch],
      ['debug-cost/resv', o.resv, resvBatch],
      ['debug-cost/cpu-access', o.cpu, cpuBatch],
    ];
    for (const [bench, options, make] of paths) {
      const results = await compare({
        bench,
        options,
        metrics: NS_PER_OP_METRICS,
        baselines: [side('debug-on', true, make)],
        dmabuf: [side('debug-off', false, make)],
        repeat: 3,
        run,
      });
      out.push(...results);
      const ratio = ratioLine(bench, results);
      if (ratio !== null) out.push(ratio);
    }
    const old = setDmaBufDebug(false);
    try {
      for (const h of hookBatches()) {
        const results = await compare({
          bench: `debug-cost/hook:${h.name}`,
          options: o.hook,
          metrics: [{ ...NS_PER_OP_METRICS[0]!, unit: 'ns/call' }],
          baselines: [{ name: 'empty-call', run: (x) => nsPerOp(x, h.empty) }],
          dmabuf: [{ name: 'hook-off', run: (x) => nsPerOp(x, h.hook) }],
          repeat: 3,
          run,
        });
        out.push(...results);
      }
    } finally {
      setDmaBufDebug(old);
    }
    return out;
  },
};
