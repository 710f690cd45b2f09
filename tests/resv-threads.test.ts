// Reservation objects and ww-mutexes across real worker threads: shared fences and waits, lock-free
// readers racing a writer that replaces lists, and holders that die with locks held.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CHANNELS,
  DmaFence,
  type DmaFenceOps,
  DmaResv,
  DmaResvUsage,
  Domain,
  WwMutex,
} from '../src/index.js';
import { R_CLAIM_OWNER } from '../src/resv/_record.js';
import { type Rpc, rpc } from './_rpc.js';

const ops: DmaFenceOps = { getDriverName: () => 'main', getTimelineName: () => 'main-tl' };
const workerUrl = new URL('./fixtures/resv-worker.js', import.meta.url);
const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 100000);

const ok = <T extends { error?: string }>(r: T): T => {
  assert.equal(r.error, undefined, r.error);
  return r;
};

describe('reservation objects across worker threads', () => {
  let a: Rpc;
  let b: Rpc;
  before(() => {
    const d = Domain.current();
    a = rpc(d.spawn(workerUrl));
    b = rpc(d.spawn(workerUrl));
  });
  after(async () => {
    await a.worker.terminate();
    await b.worker.terminate();
  });

  it('fences added in a worker are seen here, and fences signaled here are seen there', async () => {
    const r = new DmaResv();
    const { fences, contexts } = ok(
      await a.call('add-fences', { resv: r.share(), n: 3, usage: DmaResvUsage.WRITE }),
    );
    const mine = r.getFences(DmaResvUsage.WRITE);
    assert.deepEqual(
      mine.map((f) => f.context),
      contexts,
    );
    assert.equal(mine[0]!.driverName, 'worker');
    assert.equal(r.testSignaled(DmaResvUsage.KERNEL), true);
    assert.equal(r.testSignaled(DmaResvUsage.WRITE), false);
    for (const f of fences) DmaFence.fromShared(f).signal();
    assert.equal(r.testSignaled(DmaResvUsage.BOOKKEEP), true);
    const seen = ok(await b.call('get-fences', { resv: r.share(), usage: DmaResvUsage.BOOKKEEP }));
    assert.deepEqual(seen.fences, []);
    assert.match(seen.describe, /^\twrite fence:\d+:1 w\d+ worker signalled\n/);
  });

  for (const sync of [false, true]) {
    it(`a ${sync ? 'blocking' : 'async'} wait in a worker ends when the main thread signals`, async () => {
      const r = new DmaResv();
      assert.equal(r.trylock(), true);
      const fs = [1, 2].map((i) => new DmaFence(ops, DmaFence.contextAlloc(), i));
      r.reserveFences(2);
      r.addFence(fs[0]!, DmaResvUsage.KERNEL);
      r.addFence(fs[1]!, DmaResvUsage.READ);
      r.unlock();
      const w = a.stream('wait', {
        resv: r.share(),
        usage: DmaResvUsage.READ,
        timeout: 10_000,
        sync,
      });
      ok(await w(0));
      fs[1]!.signal();
      await new Promise((res) => setTimeout(res, 10));
      fs[0]!.signal();
      const res = ok(await w(1));
      assert.ok(res.r >= 1 && res.r <= 10_000);
      assert.equal(res.signaled, true);
    });
  }

  it('a worker adding under a blocking lock waits for the main thread to unlock', async () => {
    const r = new DmaResv();
    assert.equal(await r.lock(null), 0);
    const added = a.call('add-fences', {
      resv: r.share(),
      n: 1,
      usage: DmaResvUsage.READ,
      sync: true,
    });
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(r.numFences, 0, 'the worker is still waiting for the lock');
    r.unlock();
    ok(await added);
    assert.equal(r.numFences, 1);
  });

  it('lock-free readers never see a torn or foreign entry while a writer replaces lists', async () => {
    const base = DmaFence.contextAlloc(16);
    const r0 = new DmaResv();
    const r1 = new DmaResv();
    const ms = 400;
    const [w, x, y] = await Promise.all([
      a.stream('churn', { resvs: [r0.share(), r1.share()], base, ms, seed })(1),
      b.call('read', { resv: r0.share(), base, ms }),
      (async () => {
        // The main thread reads the other object meanwhile.
        const end = performance.now() + ms;
        let bad = 0;
        let items = 0;
        while (performance.now() < end) {
          for (const e of r1.fencesUnlocked(DmaResvUsage.BOOKKEEP)) {
            items++;
            if (e.fence.context < base + 8 || e.fence.context >= base + 16) bad++;
          }
          await new Promise((res) => setImmediate(res));
        }
        return { bad, items };
      })(),
    ]);
    ok(w);
    ok(x);
    assert.ok(w.ops > 50, `writer made ${w.ops} changes (seed ${seed})`);
    assert.equal(x.bad, 0, `reader saw foreign fences (seed ${seed})`);
    assert.equal(y.bad, 0, `main saw foreign fences (seed ${seed})`);
    assert.ok(x.passes > 0 && x.items > 0, 'the reader read something');
    for (const r of [r0, r1]) {
      assert.equal(r.trylock(), true);
      const n = r.numFences;
      assert.equal([...r.fences(DmaResvUsage.BOOKKEEP)].length, n);
      r.unlock();
      assert.equal(r.testSignaled(DmaResvUsage.BOOKKEEP), true, 'the writer signaled everything');
    }
  });
});

describe('holders that die', () => {
  const died: { resv: number; thread: number; kind: string }[] = [];
  const onMsg = (m: unknown): void => {
    died.push(m as never);
  };
  before(() => diagnosticsChannel.subscribe(CHANNELS.resvOwnerDied, onMsg));
  after(() => diagnosticsChannel.unsubscribe(CHANNELS.resvOwnerDied, onMsg));

  for (const sync of [false, true]) {
    it(`a worker terminated while holding a ww-mutex (${sync ? 'blocking' : 'async'} lock): the next locker gets it and learns`, async () => {
      const w = rpc(Domain.current().spawn(workerUrl));
      const m = new WwMutex();
      assert.equal(ok(await w.call('hold', { m: m.share(), sync })).locked, true);
      assert.equal(m.isLocked(), true);
      const waiting = m.lock(null); // already waiting when the holder dies
      died.length = 0;
      await w.worker.terminate();
      assert.equal(await waiting, 0);
      assert.equal(m.ownerDied, true);
      assert.equal(died.length, 1);
      assert.equal(died[0]!.kind, 'ww-mutex');
      assert.equal(died[0]!.resv, m._slot);
      m.unlock();
      assert.equal(await m.lock(null), 0);
      assert.equal(m.ownerDied, false);
      m.unlock();
    });
  }

  it('a worker terminated while holding a reservation lock: fences stay, the lock is recovered', async () => {
    const w = rpc(Domain.current().spawn(workerUrl));
    const r = new DmaResv();
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    assert.equal(r.trylock(), true);
    r.reserveFences(1);
    r.addFence(f, DmaResvUsage.WRITE);
    r.unlock();
    assert.equal(ok(await w.call('hold', { resv: r.share(), reserve: 4 })).locked, true);
    died.length = 0;
    await w.worker.terminate();
    assert.deepEqual(
      died.map((x) => x.kind),
      ['resv'],
    );
    assert.equal(r.trylock(), true);
    assert.equal(r.ownerDied, true);
    assert.deepEqual(r.getFences(DmaResvUsage.WRITE), [f]);
    assert.throws(() => r.addFence(f, DmaResvUsage.READ), /EINVAL/, 'its reservation is gone');
    r.unlock();
  });

  for (const killAfter of [7, 23, 61]) {
    it(`a writer killed ${killAfter} ms into changing the lists leaves them consistent`, async () => {
      const w = rpc(Domain.current().spawn(workerUrl));
      const base = DmaFence.contextAlloc(16);
      const rs = [new DmaResv(), new DmaResv()];
      const churn = w.stream('churn', { resvs: rs.map((r) => r.share()), base, ms: 10_000, seed });
      ok(await churn(0));
      await new Promise((res) => setTimeout(res, killAfter));
      await w.worker.terminate();
      for (const [k, r] of rs.entries()) {
        assert.equal(await r.lock(null), 0, 'the lock is recovered');
        const n = r.numFences;
        const all = [...r.fences(DmaResvUsage.BOOKKEEP)];
        assert.equal(all.length, n, `seed ${seed}`);
        for (const { fence, usage } of all) {
          assert.ok(fence.context >= base + 8 * k && fence.context < base + 8 * k + 8);
          assert.ok(usage >= 0 && usage <= 3);
        }
        // The writer signaled some; the fence exit hook signaled the rest with -ENOENT.
        assert.equal(r.testSignaled(DmaResvUsage.BOOKKEEP), true);
        for (const { fence } of all) assert.ok([1, -2].includes(fence.getStatus()));
        r.reserveFences(3);
        const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
        r.addFence(f, DmaResvUsage.WRITE);
        assert.deepEqual(r.getFences(DmaResvUsage.BOOKKEEP), [f]);
        r.unlock();
        f.signal();
      }
    });
  }

  it('a waiter that dies leaves no claim behind', async () => {
    const w = rpc(Domain.current().spawn(workerUrl));
    const m = new WwMutex();
    const T = Domain.current().tables.resv;
    const claimed = (): boolean => Atomics.load(T.i32, m._b + R_CLAIM_OWNER) !== 0;
    await m.lock(null);
    try {
      const s = w.stream('wait-lock', { m: m.share() });
      ok(await s(0));
      // Release and retake at once until the worker, woken and beaten, claims the lock.
      for (let i = 0; i < 200; i++) {
        await new Promise((res) => setTimeout(res, 2));
        if (claimed()) break;
        m.unlock();
        if (!m.trylock()) break;
      }
      assert.equal(claimed(), true, 'the waiting worker claimed the lock');
      assert.equal(m.isHeld(), true);
    } finally {
      await w.worker.terminate();
    }
    m.unlock();
    assert.equal(claimed(), false);
    assert.equal(m.trylock(), true, 'free, and nobody is in line for it');
    m.unlock();
  });
});

describe('event-loop liveness', () => {
  it('an async lock keeps Node alive until it is granted, then lets it exit', () => {
    const script = fileURLToPath(new URL('./fixtures/lock-keepalive-main.js', import.meta.url));
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /locked 0/);
  });
});
