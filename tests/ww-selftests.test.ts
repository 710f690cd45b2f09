// The kernel's ww_mutex selftests (kernel/locking/test-ww_mutex.c), wait-die class, run twice: as
// async tasks contending inside one thread, and across real worker threads (async and blocking).
// Stress runs are scaled to two cores and bounded to a fraction of a second each.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Domain, EDEADLK, WwMutex } from '../src/index.js';
import { type Rpc, rpc } from './_rpc.js';
import {
  aa,
  abbaSide,
  cycleParty,
  Flags,
  mutexMain,
  mutexWorker,
  type StressResult,
  type StressRole,
  stressInorder,
  stressOne,
  stressReorder,
} from './fixtures/ww-roles.js';

const workerUrl = new URL('./fixtures/ww-worker.js', import.meta.url);
const seed = Number(process.env.DMABUF_SEED ?? Date.now() % 100000);
const STRESS_MS = 250;

function mutexes(n: number): WwMutex[] {
  return Array.from({ length: n }, () => new WwMutex());
}

function checkStress(rs: StressResult[], what: string): void {
  for (const r of rs) {
    assert.equal(r.error, null, `${what}: ${r.error} (seed ${seed})`);
    assert.equal(r.violations, 0, `${what}: mutual exclusion violated (seed ${seed})`);
    assert.ok(r.rounds > 0, `${what}: a party made no progress (seed ${seed})`);
  }
}

describe('ww_mutex selftests, async tasks in one thread', () => {
  for (let mode = 0; mode < 8; mode++) {
    it(`test_mutex(flags=${mode}): the lock excludes a waiting task`, async () => {
      const [m] = mutexes(1);
      const flags = Flags.create(3);
      const w = mutexWorker(m!, flags, mode);
      const failed = await mutexMain(m!, flags, mode, 40);
      await w;
      assert.equal(failed, false, 'mutual exclusion failure');
      assert.equal(m!.isLocked(), false);
    });
  }

  for (const trylock of [false, true]) {
    it(`test_aa(${trylock ? 'trylock' : 'lock'}): relocking with the same context is -EALREADY`, async () => {
      assert.equal(await aa(mutexes(1)[0]!, trylock), null);
    });
  }

  for (let i = 0; i < 4; i++) {
    const trylock = (i & 1) !== 0;
    const resolve = (i & 2) !== 0;
    it(`test_abba(trylock=${trylock}, resolve=${resolve})`, async () => {
      const [a, b] = mutexes(2);
      const flags = Flags.create(2);
      const [ea, eb] = await Promise.all([
        abbaSide(a!, b!, flags, 0, 1, { trylock, resolve }),
        abbaSide(b!, a!, flags, 1, 0, { trylock, resolve }),
      ]);
      if (resolve) assert.deepEqual([ea, eb], [0, 0], 'failed to resolve ABBA deadlock');
      else assert.ok(ea === EDEADLK || eb === EDEADLK, `missed ABBA deadlock: ${ea}, ${eb}`);
      assert.equal(a!.isLocked() || b!.isLocked(), false);
    });
  }

  for (let n = 2; n <= 5; n++) {
    it(`test_cycle(${n}): a cycle of ${n} contexts is resolved`, async () => {
      const locks = mutexes(n);
      const flags = Flags.create(n);
      const rs = await Promise.all(
        locks.map((a, i) => cycleParty(a, locks[(i + 1) % n]!, flags, (i + n - 1) % n, i)),
      );
      assert.deepEqual(rs, new Array(n).fill(0), 'cyclic deadlock not resolved');
    });
  }

  const owners = () => new Int32Array(new SharedArrayBuffer(4 * 128));

  it('stress(16 locks, 4 tasks, in-order)', async () => {
    const locks = mutexes(16);
    const o = owners();
    const rs = await Promise.all(
      [0, 1, 2, 3].map((k) => stressInorder(locks, o, k + 1, STRESS_MS, seed + k)),
    );
    checkStress(rs, 'inorder');
  });

  it('stress(16 locks, 4 tasks, reorder)', async () => {
    const locks = mutexes(16);
    const o = owners();
    const rs = await Promise.all(
      [0, 1, 2, 3].map((k) => stressReorder(locks, o, k + 1, STRESS_MS, seed + k)),
    );
    checkStress(rs, 'reorder');
  });

  it('stress(128 locks, 6 tasks, in-order + reorder + one)', async () => {
    const locks = mutexes(128);
    const o = owners();
    const roles = [stressInorder, stressReorder, stressOne];
    const rs = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((k) => roles[k % 3]!(locks, o, k + 1, STRESS_MS, seed + k)),
    );
    checkStress(rs, 'mixed');
  });
});

describe('ww_mutex selftests across worker threads', () => {
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

  const ok = <T extends { error?: string | null }>(r: T): T => {
    assert.ok(r.error === undefined || r.error === null, r.error ?? '');
    return r;
  };

  for (let mode = 0; mode < 8; mode++) {
    it(`test_mutex(flags=${mode}): a worker waits while the main thread holds the lock`, async () => {
      const [m] = mutexes(1);
      const flags = Flags.create(3);
      const w = a.call('mutex-worker', { m: m!.share(), flags: flags.a.buffer, mode });
      const failed = await mutexMain(m!, flags, mode, 40);
      ok(await w);
      assert.equal(failed, false, 'mutual exclusion failure');
    });
  }

  for (const sync of [false, true]) {
    for (let i = 0; i < 4; i++) {
      const trylock = (i & 1) !== 0;
      const resolve = (i & 2) !== 0;
      it(`test_abba(trylock=${trylock}, resolve=${resolve}), main vs a ${sync ? 'blocking' : 'async'} worker`, async () => {
        const [ma, mb] = mutexes(2);
        const flags = Flags.create(2);
        const other = a.call('abba', {
          first: mb!.share(),
          second: ma!.share(),
          flags: flags.a.buffer,
          mine: 1,
          theirs: 0,
          trylock,
          resolve,
          sync,
        });
        const ea = await abbaSide(ma!, mb!, flags, 0, 1, { trylock, resolve });
        const eb = ok(await other).err;
        if (resolve) assert.deepEqual([ea, eb], [0, 0], 'failed to resolve ABBA deadlock');
        else assert.ok(ea === EDEADLK || eb === EDEADLK, `missed ABBA deadlock: ${ea}, ${eb}`);
      });
    }
  }

  for (const resolve of [false, true]) {
    it(`test_abba(resolve=${resolve}) between two blocking workers`, async () => {
      const [ma, mb] = mutexes(2);
      const flags = Flags.create(2);
      const args = { flags: flags.a.buffer, trylock: false, resolve, sync: true };
      const [ra, rb] = await Promise.all([
        a.call('abba', { ...args, first: ma!.share(), second: mb!.share(), mine: 0, theirs: 1 }),
        b.call('abba', { ...args, first: mb!.share(), second: ma!.share(), mine: 1, theirs: 0 }),
      ]);
      const [ea, eb] = [ok(ra).err, ok(rb).err];
      if (resolve) assert.deepEqual([ea, eb], [0, 0]);
      else assert.ok(ea === EDEADLK || eb === EDEADLK, `missed ABBA deadlock: ${ea}, ${eb}`);
    });
  }

  for (let n = 2; n <= 6; n++) {
    it(`test_cycle(${n}): parties spread over the main thread and two workers`, async () => {
      const locks = mutexes(n);
      const flags = Flags.create(n);
      const rs = await Promise.all(
        locks.map((m, i) => {
          const next = locks[(i + 1) % n]!;
          const aSignal = (i + n - 1) % n;
          if (i % 3 === 0) return cycleParty(m, next, flags, aSignal, i);
          const w = i % 3 === 1 ? a : b;
          return w
            .call('cycle', {
              a: m.share(),
              b: next.share(),
              flags: flags.a.buffer,
              aSignal,
              bSignal: i,
            })
            .then((r: { err: number; error?: string }) => ok(r).err);
        }),
      );
      assert.deepEqual(rs, new Array(n).fill(0), 'cyclic deadlock not resolved');
    });
  }

  async function stressAcross(
    nlocks: number,
    roles: StressRole[],
    sync: boolean,
  ): Promise<StressResult[]> {
    const locks = mutexes(nlocks);
    const owners = new Int32Array(new SharedArrayBuffer(4 * nlocks));
    const calls: Promise<StressResult>[] = [];
    roles.forEach((role, k) => {
      const w = k % 2 === 0 ? a : b;
      calls.push(
        w
          .call('stress', {
            role,
            locks: locks.map((m) => m.share()),
            owners: owners.buffer,
            tag: 100 * (k + 1),
            ms: STRESS_MS,
            seed: seed + 10 * k,
            sync,
            tasks: sync ? 1 : 2,
          })
          .then(ok),
      );
    });
    return Promise.all(calls);
  }

  for (const sync of [false, true]) {
    const how = sync ? 'blocking' : '2 async tasks each';
    it(`stress(16 locks, 2 workers, in-order, ${how})`, async () => {
      checkStress(await stressAcross(16, ['inorder', 'inorder'], sync), 'inorder');
    });
    it(`stress(16 locks, 2 workers, reorder, ${how})`, async () => {
      checkStress(await stressAcross(16, ['reorder', 'reorder'], sync), 'reorder');
    });
    it(`stress(128 locks, 2 workers, in-order + reorder + one, ${how})`, async () => {
      checkStress(await stressAcross(128, ['inorder', 'reorder', 'one', 'inorder'], sync), 'mixed');
    });
  }

  it('stress with tasks of the main thread contending with both workers', async () => {
    const locks = mutexes(16);
    const owners = new Int32Array(new SharedArrayBuffer(4 * 16));
    const remote = [a, b].map((w, k) =>
      w
        .call('stress', {
          role: 'inorder',
          locks: locks.map((m) => m.share()),
          owners: owners.buffer,
          tag: 100 * (k + 1),
          ms: STRESS_MS,
          seed: seed + k,
          sync: k === 1,
          tasks: 1,
        })
        .then(ok),
    );
    const local = [stressReorder(locks, owners, 7, STRESS_MS, seed + 7)];
    checkStress([...(await Promise.all(remote)), ...(await Promise.all(local))], 'main+workers');
  });
});
