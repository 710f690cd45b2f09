/**
 * Bad input across threads: forged, stale, used and foreign descriptors — and seeded random junk —
 * posted to a real Worker of the domain (tests/fixtures/fuzz-worker.ts), which must answer each
 * with a DmaBufError of the expected code. Then the worker proves it is still healthy, exits, and
 * this thread checks that the domain is back where it was.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DmaBuf,
  DmaFence,
  DmaResv,
  Domain,
  SyncFile,
  systemHeap,
  WwMutex,
} from '../../src/index.js';
import { type Rpc, rpc } from '../_rpc.js';
import { anything } from './_values.js';
import { type Baseline, baseline, foreign, fuzzOps, listCount, occupancy } from './_world.js';

const workerUrl = new URL('../fixtures/fuzz-worker.js', import.meta.url);

/** Sends a descriptor to consume; resolves the reply. */
async function take(w: Rpc, kind: string, desc: unknown): Promise<any> {
  return w.call('take', { kind, desc });
}

function expectCode(reply: any, codes: string[], what: string): void {
  assert.equal(reply.ok, false, `${what}: accepted (${reply.v})`);
  assert.equal(reply.dmabuf, true, `${what}: not a DmaBufError: ${reply.e?.message}`);
  assert.ok(
    codes.includes(reply.e.code),
    `${what}: ${reply.e.code} ${reply.e.message}, expected ${codes.join('|')}`,
  );
}

describe('fuzz: forged and stale descriptors posted to a real worker', () => {
  let w: Rpc;
  let base: Baseline;
  const fence = (): DmaFence => new DmaFence(fuzzOps, DmaFence.contextAlloc(1), 1);

  before(() => {
    base = baseline();
    w = rpc(Domain.current().spawn(workerUrl));
  });

  after(async () => {
    await w.worker.terminate();
  });

  it('fence descriptors: forged, stale, foreign and consumed ones are refused; a real one works', async () => {
    const f = fence();
    const d = f.share();
    const other = foreign().id;
    const cases: [string, unknown, string[]][] = [
      ['forged slot', { ...d, s: 999_999 }, ['EBADF']],
      ['wrong generation', { ...d, g: (d as { g: number }).g + 1 }, ['EBADF']],
      ['another domain', { ...d, d: other }, ['EXDEV']],
      ['no kind', { ...d, t: undefined }, ['EINVAL']],
      ['bad context', { ...d, c: -1 }, ['EINVAL']],
      ['signaled, bad error', { t: 'fence', d: d.d, c: 1, q: 1, f: 0, e: 7, ts: 1n }, ['EINVAL']],
      ['array of junk', { t: 'array', d: d.d, c: 1, q: 1, any: false, f: [1, 2] }, ['EINVAL']],
      ['chain without links', { t: 'chain', d: d.d, l: [] }, ['EINVAL']],
    ];
    for (const [what, desc, codes] of cases) expectCode(await take(w, 'fence', desc), codes, what);
    // A freed fence: signaled and all references gone.
    const g = fence();
    const gd = g.share();
    assert.equal(DmaFence.fromShared(gd), g);
    g.signal();
    expectCode(await take(w, 'fence', gd), ['EBADF'], 'a freed fence');
    // The real descriptor still works: the worker signals the fence, this thread sees it.
    const ok = await take(w, 'fence', d);
    assert.equal(ok.ok, true, ok.e?.message);
    assert.equal(f.getStatus(), 1);
  });

  it('buffer descriptors: a used, forged or foreign ticket is refused; the buffer is intact', async () => {
    const buf = systemHeap.allocateBuffer(8192);
    const d = buf.share();
    const cases: [string, unknown, string[]][] = [
      ['forged ticket', { ...d, t: 999_999 }, ['EBADF']],
      ['forged nonce', { ...d, n: d.n + 1 }, ['EBADF']],
      ['forged mode', { ...d, mode: 1 }, ['EBADF']],
      ['another domain', { ...d, d: foreign().id }, ['EXDEV']],
      ['string slot', { ...d, s: '1' }, ['EBADF']],
      ['a fence descriptor', DmaFence.getStub().share(), ['EINVAL']],
    ];
    for (const kind of ['buf', 'install'])
      for (const [what, desc, codes] of cases)
        expectCode(await take(w, kind, desc), codes, `${kind}: ${what}`);
    const first = await take(w, 'install', d);
    assert.equal(first.ok, true, first.e?.message);
    expectCode(await take(w, 'buf', d), ['EBADF'], 'the same descriptor again');
    assert.equal(buf.refcount, 1, 'only this thread holds the buffer');
    buf.put();
    expectCode(await take(w, 'buf', d), ['EBADF'], 'after release');
  });

  it('reservation, ww-mutex and sync-file descriptors: forged and foreign ones are refused', async () => {
    const r = new DmaResv();
    const rd = r.share();
    const m = new WwMutex();
    const md = m.share();
    const s = SyncFile.create(fence());
    const sd = s.share();
    const cases: [string, string, unknown, string[]][] = [
      ['resv', 'forged slot', { ...rd, s: 999_999 }, ['EBADF']],
      ['resv', 'wrong generation', { ...rd, g: rd.g + 1 }, ['EBADF']],
      ['resv', 'another domain', { ...rd, d: foreign().id }, ['EXDEV']],
      ['resv', 'a ww-mutex record', { ...md, t: 'resv' }, ['EBADF']],
      [
        'mutex',
        'a reservation record',
        { ...rd, t: 'ww-mutex', c: 'reservation_ww_class' },
        ['EBADF'],
      ],
      ['mutex', 'class 5', { ...md, c: 5 }, ['EINVAL']],
      ['mutex', 'another domain', { ...md, d: foreign().id }, ['EXDEV']],
      ['sync', 'name 5', { ...sd, n: 5 }, ['EINVAL']],
      ['sync', 'another domain', { ...sd, d: foreign().id }, ['EXDEV']],
      ['sync', 'forged fence', { ...sd, f: { ...sd.f, s: 999_999 } }, ['EBADF']],
    ];
    for (const [kind, what, desc, codes] of cases)
      expectCode(await take(w, kind, desc), codes, `${kind}: ${what}`);
    for (const [kind, desc] of [
      ['resv', rd],
      ['mutex', md],
      ['sync', sd],
    ] as const) {
      const ok = await take(w, kind, desc);
      assert.equal(ok.ok, true, `${kind}: ${ok.e?.message}`);
    }
    assert.equal(s.poll(), true, 'the worker signaled the sync file');
    s.put();
    r.fini();
    m.destroy();
  });

  it('seeded random junk offered to every consumer is a DmaBufError of EINVAL, EBADF or EXDEV', async () => {
    const seed = Number(process.env['FUZZ_SEED'] ?? 0x5eed);
    // Structured-cloneable junk (no functions or symbols), plus descriptor look-alikes.
    const id = Domain.current().id;
    const shaped = fc.record({
      t: fc.constantFrom('fence', 'array', 'chain', 'resv', 'ww-mutex', 'sync_file', 'x'),
      kind: fc.constantFrom('dmabuf', 'dmabuf-domain', undefined),
      d: fc.oneof(fc.constant(id), fc.integer()),
      s: fc.oneof(fc.integer({ min: -2, max: 4096 }), fc.double()),
      g: fc.integer(),
      t2: fc.integer(),
      c: fc.oneof(fc.integer(), fc.string()),
      q: fc.integer(),
      f: fc.oneof(fc.integer(), fc.constant([]), fc.constant(null)),
      n: fc.oneof(fc.integer(), fc.string()),
      mode: fc.integer({ min: -1, max: 3 }),
    });
    const values = fc.sample(
      fc.oneof(
        shaped,
        anything.filter((v) => cloneable(v)),
      ),
      { seed, numRuns: 150 },
    );
    const reply = await w.call('junk', { values });
    assert.equal(reply.ok, true, reply.e?.message);
    const bad = (reply.v as { kind: string; i: number; what: string }[]).filter(
      (x) => !['EINVAL', 'EBADF', 'EXDEV'].includes(x.what),
    );
    assert.deepEqual(
      bad.map(
        (x) =>
          `${x.kind}(${JSON.stringify(values[x.i], (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}): ${x.what}`,
      ),
      [],
      `seed ${seed} (FUZZ_SEED replays it)`,
    );
  });

  it('the worker is still healthy, and after it exits the domain is back where it was', async () => {
    const h = await w.call('health');
    assert.deepEqual(h.v, [], h.e?.message);
    const exited = new Promise((r) => w.worker.once('exit', r));
    await w.worker.terminate();
    await exited;
    // The exit hooks run in this thread; forwarded clean-up finishes on the next turns.
    for (let i = 0; i < 50 && listCount() !== base.list; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(listCount(), base.list, 'global buffer list');
    const occ = occupancy();
    for (const name of ['buf', 'attach', 'handle', 'resvList'] as const)
      assert.ok(occ[name] <= base.occ[name], `table ${name}: ${occ[name]} > ${base.occ[name]}`);
    assert.equal(DmaBuf.iterBegin(), null);
  });

  it("the references the exited worker's reservation and fence views held are dropped", () => {
    const occ = occupancy();
    for (const name of ['resv', 'fence'] as const)
      assert.ok(occ[name] <= base.occ[name], `table ${name}: ${occ[name]} > ${base.occ[name]}`);
  });
});

function cloneable(v: unknown): boolean {
  try {
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
}
