/**
 * Regression tests for bugs the model-based and thread-death tests found, each the smallest
 * scenario that failed, named after what must hold.
 */

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  A_BUF_GEN,
  A_BUF_SLOT,
  A_DEVNAME,
  A_MAPS,
  A_NEXT,
  A_THREAD,
  B_ATT_HEAD,
} from '../../src/buf/_layout.js';
import { type DmaBuf, type DmaBufMap, Domain } from '../../src/index.js';
import {
  C_GATE_MAP,
  C_GATE_UNMAP,
  C_GATE_VUNMAP,
  CW,
  readCounters,
} from '../../tools/stress/counted-exporter.js';
import { bufView } from '../../tools/stress/inspect.js';
import { Env } from '../model/_runner.js';

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function ok(
  p: Promise<{ ok: boolean; v?: any; code?: string; message?: string }>,
): Promise<any> {
  const r = await p;
  assert.equal(r.ok, true, `${r.code}: ${r.message}`);
  return r.v;
}

/** Thread `t` claims a new share of thread `from`'s reference 1 into its reference `out`. */
async function claimShare(env: Env, t: number, out: number, from = 0): Promise<void> {
  const desc = await ok(env.send(from, { op: 'share', ref: 1 }));
  await ok(env.send(t, { op: 'claim', desc, out }));
}

describe('vmaps of a thread that exits', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('the last vmap of an exited thread is dropped and the exporter vunmaps it', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(env.send(0, { op: 'export', id: 0, kind: 'bound', dynamic: false, out: 1 }));
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 3 }));
    assert.equal(bufView(d, v.slot, v.gen).vmapCount, 1);
    assert.equal(readCounters(env.counters, 0).vmaps, 1);
    await env.kill(1);
    await until(() => bufView(d, v.slot, v.gen).vmapCount === 0);
    await until(() => readCounters(env.counters, 0).vmaps === 0);
    assert.equal(bufView(d, v.slot, v.gen).vmapOwner, 0);
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
    assert.equal(readCounters(env.counters, 0).releases, 1);
  });

  it('a mapping made by an exited thread is handed to another holder: later vmaps still work', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(
      env.send(0, { op: 'export', id: 1, kind: 'shared', dynamic: false, out: 1 }),
    );
    await claimShare(env, 1, 2);
    await claimShare(env, 2, 3);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 4 })); // thread 1 owns the mapping
    await ok(env.send(2, { op: 'vmap', ref: 3, out: 5 }));
    const owner = bufView(d, v.slot, v.gen).vmapOwner;
    await env.kill(1);
    await until(() => bufView(d, v.slot, v.gen).vmapCount === 1);
    await until(() => bufView(d, v.slot, v.gen).vmapOwner !== owner);
    assert.equal(readCounters(env.counters, 1).vmaps, 1, 'still mapped for thread 2');
    // The main thread has no mapping of its own yet: it asks the new owner for it.
    await ok(env.send(0, { op: 'vmap', ref: 1, out: 6 }));
    assert.equal(bufView(d, v.slot, v.gen).vmapCount, 2);
    await ok(env.send(0, { op: 'vunmap', vmap: 6 }));
    await ok(env.send(2, { op: 'vunmap', vmap: 5 }));
    assert.equal(bufView(d, v.slot, v.gen).vmapCount, 0);
    assert.equal(readCounters(env.counters, 1).vmaps, 0);
    await env.respawn(1);
    await ok(env.send(2, { op: 'put', ref: 3 }));
    await ok(env.send(0, { op: 'put', ref: 1 }));
    await until(() => readCounters(env.counters, 1).releases === 1);
  });

  it('a vmap asked of a mapping owner that just exited is answered by another holder', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(
      env.send(0, { op: 'export', id: 3, kind: 'shared', dynamic: false, out: 1 }),
    );
    await claimShare(env, 1, 2);
    await claimShare(env, 2, 3);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 4 })); // thread 1 owns the mapping
    await ok(env.send(2, { op: 'vmap', ref: 3, out: 5 }));
    const buf = env.local.objs.get(1) as DmaBuf;
    // Holding the lock keeps the exit cleanup from handing the mapping over first.
    assert.equal(await buf.resv.lock(null), 0);
    let map: DmaBufMap;
    try {
      await env.kill(1);
      map = await buf.vmap();
      assert.equal(bufView(d, v.slot, v.gen).vmapCount, 3);
    } finally {
      buf.resv.unlock();
    }
    await until(() => bufView(d, v.slot, v.gen).vmapCount === 2);
    await buf.vunmapUnlocked(map);
    await ok(env.send(2, { op: 'vunmap', vmap: 5 }));
    assert.equal(readCounters(env.counters, 3).vmaps, 0);
    await env.respawn(1);
    await ok(env.send(2, { op: 'put', ref: 3 }));
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });

  it('a vmap finding the mapping held only by exited threads retires it and maps afresh', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(
      env.send(0, { op: 'export', id: 4, kind: 'shared', dynamic: false, out: 1 }),
    );
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 3 })); // the only holder
    const buf = env.local.objs.get(1) as DmaBuf;
    // Holding the lock keeps the exit cleanup from dropping the dead thread's share first.
    assert.equal(await buf.resv.lock(null), 0);
    let map: DmaBufMap;
    try {
      await env.kill(1);
      map = await buf.vmap();
      assert.equal(bufView(d, v.slot, v.gen).vmapCount, 1, "the dead thread's share went with it");
      assert.equal(readCounters(env.counters, 4).vmaps, 1, 'old mapping vunmapped, new one mapped');
    } finally {
      buf.resv.unlock();
    }
    await new Promise((r) => setTimeout(r, 20)); // the exit cleanup runs, and must not subtract
    assert.equal(bufView(d, v.slot, v.gen).vmapCount, 1);
    await buf.vunmapUnlocked(map);
    assert.equal(readCounters(env.counters, 4).vmaps, 0);
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });

  it("vunmap after the thread-bound exporter's thread exited drops the vmap", async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(env.send(1, { op: 'export', id: 2, kind: 'bound', dynamic: false, out: 1 }));
    await claimShare(env, 0, 2, 1);
    await ok(env.send(0, { op: 'vmap', ref: 2, out: 3 }));
    await env.kill(1);
    await until(() => bufView(d, v.slot, v.gen).refs === 1);
    await ok(env.send(0, { op: 'vunmap', vmap: 3 }));
    assert.equal(bufView(d, v.slot, v.gen).vmapCount, 0);
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 2 }));
    assert.equal(bufView(d, v.slot, v.gen).live, false);
  });
});

describe('mappings of a thread that exits', () => {
  const env = new Env(1);
  after(() => env.stop());

  for (const dynamic of [false, true]) {
    it(`a shared exporter unmaps what it mapped inside an exited importer thread (${dynamic ? 'dynamic exporter: and unpins' : 'static exporter'})`, async () => {
      await env.start();
      await ok(env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic, out: 1 }));
      await claimShare(env, 1, 2);
      await ok(env.send(1, { op: 'attach', ref: 2, dynamic: false, dev: 'doomed', out: 3 }));
      await ok(env.send(1, { op: 'map', att: 3, out: 4 }));
      await ok(env.send(1, { op: 'map', att: 3, out: 5 }));
      assert.equal(
        readCounters(env.counters, 0).maps,
        2,
        'mapped by the ops rebuilt in the worker',
      );
      await env.kill(1);
      await until(() => readCounters(env.counters, 0).attached === 0);
      const c = readCounters(env.counters, 0);
      assert.equal(c.maps, 0, 'each mapping unmapped');
      assert.equal(c.pins, 0, 'and unpinned');
      await env.respawn(1);
      await ok(env.send(0, { op: 'put', ref: 1 }));
      assert.equal(readCounters(env.counters, 0).releases, 1);
    });
  }
});

describe('mappings in flight when their thread dies', () => {
  const env = new Env(1);
  after(() => env.stop());

  it('a static importer killed while its map waits for a KERNEL fence leaves nothing mapped or pinned', async () => {
    await env.start();
    await ok(env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: true, out: 1 }));
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'attach', ref: 2, dynamic: false, dev: 'doomed', out: 3 }));
    await ok(env.send(0, { op: 'fence', ref: 1, usage: 0, out: 4 })); // a pending move
    const mapping = env.send(1, { op: 'map', att: 3, out: 5 }).catch(() => null);
    await until(() => readCounters(env.counters, 0).maps === 1); // mapped, now waiting
    assert.equal(readCounters(env.counters, 0).pins, 1);
    await env.kill(1);
    await until(() => readCounters(env.counters, 0).attached === 0);
    assert.equal(readCounters(env.counters, 0).maps, 0, 'unmapped');
    assert.equal(readCounters(env.counters, 0).pins, 0, 'and unpinned');
    void mapping;
    await ok(env.send(0, { op: 'signal', fences: [4] }));
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });

  it("a thread-bound exporter's cleanup unmaps only what it mapped, whatever the importer had counted", async () => {
    await env.start();
    const d = Domain.current();
    await ok(env.send(0, { op: 'export', id: 1, kind: 'bound', dynamic: true, out: 1 }));
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'attach', ref: 2, dynamic: false, dev: 'doomed', out: 3 }));
    await ok(env.send(1, { op: 'map', att: 3, out: 4 }));
    // The importer's count runs ahead of the exporter by one, as when it dies between the
    // exporter's unmap and its own decrement.
    const at = d.tables.attach;
    let rec = 0;
    for (let s = 1; s < at.highWater; s++)
      if (at.isAllocated(s) && at.i32[at.base(s) + A_THREAD] === env.workers[1]!.thread) rec = s;
    Atomics.add(at.i32, at.base(rec) + A_MAPS, 1);
    await env.kill(1);
    await until(() => readCounters(env.counters, 1).attached === 0);
    assert.equal(readCounters(env.counters, 1).maps, 0, 'one unmap for the one mapping');
    assert.equal(readCounters(env.counters, 1).pins, 0);
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });
});

describe('forwarded calls in flight when the importer dies', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('a detach already sent home is not sent again by the exit cleanup', async () => {
    await env.start();
    await ok(env.send(1, { op: 'export', id: 0, kind: 'bound', dynamic: true, out: 1 }));
    await claimShare(env, 2, 2, 1);
    await ok(env.send(2, { op: 'attach', ref: 2, dynamic: true, dev: 'doomed', out: 3 }));
    assert.equal(readCounters(env.counters, 0).attached, 1);
    const busy = env.send(1, { op: 'spin', ms: 300 }); // the exporter's thread is slow to answer
    void env.send(2, { op: 'detach', att: 3 }).catch(() => null); // sent, waiting for the answer
    await new Promise((r) => setTimeout(r, 50));
    await env.kill(2);
    await busy;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(readCounters(env.counters, 0).attached, 0, 'detached once');
    await env.respawn(2);
    await ok(env.send(1, { op: 'put', ref: 1 }));
  });

  it('a pin the exporter made for an importer that died before counting it is undone', async () => {
    await env.start();
    await ok(env.send(1, { op: 'export', id: 1, kind: 'bound', dynamic: true, out: 1 }));
    await claimShare(env, 2, 2, 1);
    await ok(env.send(2, { op: 'attach', ref: 2, dynamic: true, dev: 'doomed', out: 3 }));
    const busy = env.send(1, { op: 'spin', ms: 300 });
    void env.send(2, { op: 'pin', att: 3 }).catch(() => null); // pinned later, never counted
    await new Promise((r) => setTimeout(r, 50));
    await env.kill(2);
    await busy;
    await until(() => readCounters(env.counters, 1).attached === 0);
    assert.equal(readCounters(env.counters, 1).pins, 0, 'unpinned');
    await env.respawn(2);
    await ok(env.send(1, { op: 'put', ref: 1 }));
  });
});

describe('a last vunmap in flight when its thread dies', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('the exporter vunmaps once, and the buffer can be vmapped again', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(env.send(1, { op: 'export', id: 0, kind: 'bound', dynamic: false, out: 1 }));
    await claimShare(env, 2, 2, 1);
    await claimShare(env, 0, 3, 1);
    await ok(env.send(2, { op: 'vmap', ref: 2, out: 4 }));
    const busy = env.send(1, { op: 'spin', ms: 300 }); // the exporter's thread answers late
    void env.send(2, { op: 'vunmap', vmap: 4 }).catch(() => null);
    await new Promise((r) => setTimeout(r, 50));
    await env.kill(2);
    await busy;
    await until(() => bufView(d, v.slot, v.gen).vmapCount === 0);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(readCounters(env.counters, 0).vmaps, 0, 'vunmapped once');
    await ok(env.send(0, { op: 'vmap', ref: 3, out: 5 }));
    assert.equal(readCounters(env.counters, 0).vmaps, 1);
    await ok(env.send(0, { op: 'vunmap', vmap: 5 }));
    assert.equal(readCounters(env.counters, 0).vmaps, 0);
    await env.respawn(2);
    await ok(env.send(0, { op: 'put', ref: 3 }));
    await ok(env.send(1, { op: 'put', ref: 1 }));
  });
});

describe('a first vmap in flight when its thread dies', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('the exporter vunmaps what it mapped for the dead thread', async () => {
    await env.start();
    await ok(env.send(1, { op: 'export', id: 0, kind: 'bound', dynamic: false, out: 1 }));
    await claimShare(env, 2, 2, 1);
    const busy = env.send(1, { op: 'spin', ms: 300 }); // the exporter answers after the death
    void env.send(2, { op: 'vmap', ref: 2, out: 3 }).catch(() => null);
    await new Promise((r) => setTimeout(r, 50));
    await env.kill(2);
    await busy;
    await until(
      () =>
        readCounters(env.counters, 0).vmaps === 0 && readCounters(env.counters, 0).releases === 0,
    );
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(readCounters(env.counters, 0).vmaps, 0);
    await env.respawn(2);
    await ok(env.send(1, { op: 'put', ref: 1 }));
  });

  it('vmapUnlocked gets its copy of the mapping before taking the lock (an owner blocked on that lock cannot hold it up)', async () => {
    await env.start();
    await ok(env.send(0, { op: 'export', id: 1, kind: 'shared', dynamic: false, out: 1 }));
    await claimShare(env, 1, 2);
    await claimShare(env, 2, 3);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 4 })); // worker 1 owns the mapping
    await ok(env.send(2, { op: 'hold', ref: 3 })); // somebody else holds the lock
    const buf = env.local.objs.get(1) as DmaBuf;
    const core = (buf as any)._core;
    const vmapping = buf.vmapUnlocked();
    await until(() => core.vmapCache !== null); // asked and answered while the lock is held
    await ok(env.send(2, { op: 'release', ref: 3 }));
    const map = await vmapping;
    await buf.vunmapUnlocked(map);
    await ok(env.send(1, { op: 'vunmap', vmap: 4 }));
    assert.equal(readCounters(env.counters, 1).vmaps, 0);
    await ok(env.send(1, { op: 'put', ref: 2 }));
    await ok(env.send(2, { op: 'put', ref: 3 }));
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });
});

describe('the observing thread while it cleans up after a dead thread', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('(debug mode) other tasks may put the buffer while the exit cleanup holds its lock', async () => {
    const { setDmaBufDebug } = await import('../../src/index.js');
    const was = setDmaBufDebug(true);
    try {
      await env.start();
      // The exporter lives in worker 1, so the cleanup of worker 2's attachment holds the lock
      // across a round trip to worker 1.
      await ok(env.send(1, { op: 'export', id: 0, kind: 'bound', dynamic: true, out: 1 }));
      await claimShare(env, 0, 2, 1);
      await claimShare(env, 2, 3, 1);
      await ok(env.send(2, { op: 'attach', ref: 3, dynamic: false, dev: 'doomed', out: 4 }));
      await ok(env.send(2, { op: 'map', att: 4, out: 5 }));
      const buf = env.local.objs.get(2) as DmaBuf;
      await env.kill(2);
      const end = Date.now() + 2000;
      let puts = 0;
      while (readCounters(env.counters, 0).attached !== 0 && Date.now() < end) {
        buf.get().put(); // must not fail: this task holds no lock
        puts++;
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(readCounters(env.counters, 0).attached, 0);
      assert.ok(puts > 0);
      await env.respawn(2);
      await ok(env.send(0, { op: 'put', ref: 2 }));
      await ok(env.send(1, { op: 'put', ref: 1 }));
    } finally {
      setDmaBufDebug(was);
    }
  });
});

describe('attachments of a thread that died before the exporter attached them', () => {
  const env = new Env(0);
  after(() => env.stop());

  it('are dropped without an exporter detach (none is owed)', async () => {
    await env.start();
    const d = Domain.current();
    await ok(env.send(0, { op: 'export', id: 0, kind: 'bound', dynamic: false, out: 1 }));
    const buf = env.local.objs.get(1) as DmaBuf;
    // A thread that allocated its attachment record and died before the exporter's attach ran.
    const t = d.allocThread();
    const at = d.tables.attach;
    const s = at.alloc();
    const g = at.gen(s);
    const b = at.base(s);
    at.i32[b + A_BUF_SLOT] = (buf as any)._core.slot;
    at.i32[b + A_BUF_GEN] = (buf as any)._core.gen;
    at.i32[b + A_THREAD] = t;
    at.i32[b + A_DEVNAME] = d.strings.intern('never-attached');
    d.threadExited(t);
    await until(() => !at.isAllocated(s) || at.gen(s) !== g);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(readCounters(env.counters, 0).attached, 0, 'no detach without an attach');
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });
});

describe('shared tables grown by another thread', () => {
  const env = new Env(1);
  after(() => env.stop());

  it("a reservation object reads fences in slots beyond this thread's view of the fence table", async () => {
    await env.start();
    const d = Domain.current();
    const { DmaFence: Fence } = await import('../../src/index.js');
    const fops = { getDriverName: () => 'main', getTimelineName: () => 'main' };
    await ok(env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: false, out: 1 }));
    await claimShare(env, 1, 2);
    const mine = new Fence(fops, Fence.contextAlloc(1), 1);
    (mine as any).publish(); // its slot is one this thread has seen
    // The worker grows the fence table past what this thread has seen, then adds a fence there.
    const before = d.tables.fence.i32.length;
    await ok(env.send(1, { op: 'publishFences', n: 1100, out: 3 }));
    const f = await ok(env.send(1, { op: 'fence', ref: 2, usage: 1, out: 4 }));
    assert.ok(
      (f.slot + 1) * d.tables.fence.slotWords > before,
      'the fence sits beyond the view this thread had',
    );
    const buf = env.local.objs.get(1) as DmaBuf;
    const other = new Fence(fops, Fence.contextAlloc(1), 1);
    assert.equal(await buf.resv.lock(null), 0);
    try {
      buf.resv.reserveFences(1);
      buf.resv.addFence(mine, 2); // walks the entries: reads the worker's fence
      buf.resv.replaceFences(f.context, other, 3); // must find it by its context
    } finally {
      buf.resv.unlock();
    }
    assert.equal(buf.resv.getFences(3).includes(other), true, 'replaced');
    other.signal();
    mine.signal();
    await ok(env.send(1, { op: 'signal', fences: [4] }));
    await ok(env.send(1, { op: 'signalAll', fences: 3 }));
    await ok(env.send(1, { op: 'put', ref: 2 }));
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });
});

describe("a shared exporter's op in flight when the importer's thread dies", () => {
  const env = new Env(1);
  after(() => env.stop());

  const gate = (id: number, w: number, v: number): void => {
    Atomics.store(env.counters, id * CW + w, v);
    Atomics.notify(env.counters, id * CW + w);
  };

  it('a static importer killed while the exporter maps, after it pinned, leaves nothing pinned', async () => {
    await env.start();
    await ok(env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: true, out: 1 }));
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'attach', ref: 2, dynamic: false, dev: 'doomed', out: 3 }));
    gate(0, C_GATE_MAP, 1);
    void env.send(1, { op: 'map', att: 3, out: 4 }).catch(() => null);
    await until(() => readCounters(env.counters, 0).pins === 1); // pinned, now inside the map
    await env.kill(1);
    gate(0, C_GATE_MAP, 0);
    await until(() => readCounters(env.counters, 0).attached === 0);
    assert.equal(readCounters(env.counters, 0).pins, 0, 'the pin made for the map is undone');
    assert.equal(readCounters(env.counters, 0).maps, 0, 'nothing was mapped');
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
    assert.equal(readCounters(env.counters, 0).releases, 1);
  });

  it("an importer killed inside the exporter's unmap is not unmapped again", async () => {
    await env.start();
    await ok(env.send(0, { op: 'export', id: 1, kind: 'shared', dynamic: false, out: 1 }));
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'attach', ref: 2, dynamic: false, dev: 'doomed', out: 3 }));
    await ok(env.send(1, { op: 'map', att: 3, out: 4 }));
    gate(1, C_GATE_UNMAP, 1);
    void env.send(1, { op: 'unmap', map: 4 }).catch(() => null);
    await until(() => readCounters(env.counters, 1).maps === 0); // unmapped, not yet uncounted
    await env.kill(1);
    gate(1, C_GATE_UNMAP, 0);
    await until(() => readCounters(env.counters, 1).attached === 0);
    assert.equal(readCounters(env.counters, 1).maps, 0, 'unmapped once');
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
    assert.equal(readCounters(env.counters, 1).releases, 1);
  });
});

describe('the vmap owner of a thread that exits', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('its thread index leaves the owner word at once (a new thread may get the index before the cleanup runs)', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(
      env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: false, out: 1 }),
    );
    await claimShare(env, 1, 2);
    await claimShare(env, 2, 3);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 4 })); // worker 1 owns the mapping
    await ok(env.send(2, { op: 'vmap', ref: 3, out: 5 }));
    const dead = bufView(d, v.slot, v.gen).vmapOwner;
    await ok(env.send(2, { op: 'hold', ref: 3 })); // the cleanup waits for this lock
    await env.kill(1);
    assert.notEqual(bufView(d, v.slot, v.gen).vmapOwner, dead);
    await ok(env.send(2, { op: 'release', ref: 3 }));
    await until(() => bufView(d, v.slot, v.gen).vmapCount === 1);
    // The main thread asks the remaining holder for its copy.
    await ok(env.send(0, { op: 'vmap', ref: 1, out: 6 }));
    await ok(env.send(0, { op: 'vunmap', vmap: 6 }));
    await ok(env.send(2, { op: 'vunmap', vmap: 5 }));
    assert.equal(bufView(d, v.slot, v.gen).vmapCount, 0);
    assert.equal(readCounters(env.counters, 0).vmaps, 0);
    await env.respawn(1);
    await ok(env.send(2, { op: 'put', ref: 3 }));
    await ok(env.send(0, { op: 'put', ref: 1 }));
  });
});

describe('vmapUnlocked when the mapping changes hands while it waits for the lock', () => {
  const env = new Env(1);
  after(() => env.stop());

  for (const orphan of [false, true])
    it(`does not ask ${orphan ? 'a holder of a mapping whose owner exited' : 'the new owner'} under the lock (it may be blocked on it)`, async () => {
      await env.start();
      await ok(env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: false, out: 1 }));
      await claimShare(env, 1, 2);
      await ok(env.send(1, { op: 'hold', ref: 2 }));
      const buf = env.local.objs.get(1) as DmaBuf;
      // Nothing is vmapped yet: nothing to ask before locking. Then it waits for the lock.
      const vmapping = buf.vmapUnlocked();
      // Worker 1 lets this waiter claim the lock, vmaps (becoming the owner), hands the lock over
      // and blocks on it.
      const relock = env.send(1, { op: 'vmapRelock', ref: 2, out: 3, orphan });
      const done = await Promise.race([
        vmapping.then(() => 'mapped'),
        new Promise((r) => setTimeout(() => r('stuck'), 5000)),
      ]);
      assert.equal(done, 'mapped', 'vmapUnlocked and the blocked owner deadlocked');
      await ok(relock);
      await buf.vunmapUnlocked(await vmapping);
      await ok(env.send(1, { op: 'vunmap', vmap: 3 }));
      assert.equal(readCounters(env.counters, 0).vmaps, 0);
      await ok(env.send(1, { op: 'put', ref: 2 }));
      await ok(env.send(0, { op: 'put', ref: 1 }));
    });
});

describe("a buffer's attachment list when the importer dies in the middle of changing it", () => {
  const env = new Env(1);
  after(() => env.stop());

  it('the attachment count follows the list (the importer died between unlinking and uncounting)', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(
      env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: false, out: 1 }),
    );
    await claimShare(env, 1, 2);
    await ok(env.send(1, { op: 'attach', ref: 2, dynamic: false, dev: 'doomed', out: 3 }));
    assert.equal(bufView(d, v.slot, v.gen).attachments, 1);
    // As a detach killed after taking the record off the list, before the count: the list is
    // empty, the count and the record's LISTED flag still say otherwise.
    const buf = env.local.objs.get(1) as DmaBuf;
    await buf.resv.lock(null);
    const bt = d.tables.buf;
    const at = d.tables.attach;
    const head = Atomics.load(bt.i32, bt.base(v.slot) + B_ATT_HEAD);
    Atomics.store(bt.i32, bt.base(v.slot) + B_ATT_HEAD, at.i32[at.base(head) + A_NEXT]!);
    buf.resv.unlock();
    await env.kill(1);
    await until(() => readCounters(env.counters, 0).attached === 0);
    await until(() => bufView(d, v.slot, v.gen).attachments === 0);
    await env.respawn(1);
    await ok(env.send(0, { op: 'put', ref: 1 }));
    assert.equal(readCounters(env.counters, 0).releases, 1);
  });
});

describe('a last vunmap by a thread that is not the owner, killed inside the exporter', () => {
  const env = new Env(2);
  after(() => env.stop());

  it('leaves nothing counted', async () => {
    await env.start();
    const d = Domain.current();
    const v = await ok(
      env.send(0, { op: 'export', id: 0, kind: 'shared', dynamic: false, out: 1 }),
    );
    await claimShare(env, 1, 2);
    await claimShare(env, 2, 3);
    await ok(env.send(1, { op: 'vmap', ref: 2, out: 4 })); // worker 1 owns the mapping
    await ok(env.send(2, { op: 'vmap', ref: 3, out: 5 }));
    await ok(env.send(1, { op: 'vunmap', vmap: 4 })); // still the owner, holding none
    Atomics.store(env.counters, C_GATE_VUNMAP, 1);
    void env.send(2, { op: 'vunmap', vmap: 5 }).catch(() => null); // the last one
    await until(() => readCounters(env.counters, 0).vmaps === 0); // vunmapped, not yet uncounted
    await env.kill(2);
    Atomics.store(env.counters, C_GATE_VUNMAP, 0);
    await until(() => bufView(d, v.slot, v.gen).vmapCount === 0);
    assert.equal(readCounters(env.counters, 0).vmaps, 0, 'vunmapped once');
    await env.respawn(2);
    await ok(env.send(1, { op: 'put', ref: 2 }));
    await ok(env.send(0, { op: 'put', ref: 1 }));
    assert.equal(readCounters(env.counters, 0).releases, 1);
  });
});
