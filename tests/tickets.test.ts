/**
 * A descriptor is a plain object, and postMessage clones it: posted twice, two copies arrive. Its
 * one reference must install once (the ticket, src/domain/_tickets.ts): the second copy is EBADF
 * and the reference counts stay right. Before tickets, both copies consumed the same reference and
 * the object was freed while its owner still held it.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { slotPut, slotRefs } from '../src/fence/_shared.js';
import { DmaFence, DmaResv, Domain, SyncFile, WwMutex } from '../src/index.js';
import { R_REFS, recordViews } from '../src/resv/_record.js';
import { type Rpc, rpc } from './_rpc.js';

const workerUrl = new URL('./fixtures/fuzz-worker.js', import.meta.url);
const ops = { getDriverName: () => 'tickets', getTimelineName: () => 'main' };

function recordRefs(slot: number): number {
  const t = Domain.current().tables.resv;
  return Atomics.load(recordViews(t, slot).i32, t.base(slot) + R_REFS);
}

describe('a descriptor posted twice installs once', () => {
  let a: Rpc;
  let b: Rpc;

  before(() => {
    a = rpc(Domain.current().spawn(workerUrl));
    b = rpc(Domain.current().spawn(workerUrl));
  });

  after(async () => {
    await Promise.all([a.worker.terminate(), b.worker.terminate()]);
  });

  /** Posts `desc` to both workers at once; returns [accepted, refused] replies. */
  async function race(kind: string, desc: unknown): Promise<[any, any]> {
    const replies = await Promise.all([
      a.call('take', { kind, desc }),
      b.call('take', { kind, desc }),
    ]);
    const ok = replies.filter((r) => r.ok);
    const refused = replies.filter((r) => !r.ok);
    assert.equal(ok.length, 1, `one copy installs: ${JSON.stringify(replies)}`);
    assert.equal(refused.length, 1);
    assert.equal(refused[0].dmabuf, true);
    assert.equal(refused[0].e.code, 'EBADF', refused[0].e.message);
    return [ok[0], refused[0]];
  }

  it('fence: one worker gets it, the other EBADF; the owner keeps its reference', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const desc = f.share();
    const slot = f._slot;
    assert.equal(slotRefs(Domain.current(), slot), 2, "the owner's and the descriptor's");
    await race('fence', desc); // the winner signals it and drops its view
    assert.equal(slotRefs(Domain.current(), slot), 1, "only the owner's is left");
    assert.equal(f.getStatus(), 1);
  });

  it('reservation object and ww-mutex: the same', async () => {
    const r = new DmaResv();
    await race('resv', r.share());
    assert.equal(recordRefs(r._slot), 1);
    const m = new WwMutex();
    await race('mutex', m.share());
    assert.equal(recordRefs((m as unknown as { _slot: number })._slot), 1);
    r.fini();
    m.destroy();
  });

  it('sync file: its fence descriptor installs once', async () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const s = SyncFile.create(f);
    const desc = s.share();
    await race('sync', desc);
    s.put();
  });

  it("a thread killed between a ticket's claim and its free has the ticket freed at its exit", () => {
    const d = Domain.current();
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const desc = f.share() as unknown as { k: number; n: number; s: number };
    const t = d.allocThread(); // the claimer, about to die
    const tt = d.tables.ticket;
    const b = tt.base(desc.k);
    // What its claim did before the kill: the nonce replaced by -thread, the record not freed.
    assert.equal(Atomics.compareExchange(tt.i32, b + 5, desc.n, -t), desc.n);
    assert.ok(tt.isAllocated(desc.k));
    d.threadExited(t);
    assert.ok(!tt.isAllocated(desc.k), 'freed by the exit');
    assert.throws(() => DmaFence.fromShared(desc as never), { code: 'EBADF' });
    slotPut(d, desc.s); // the reference the dead claimer took over, never used
    f.signal();
  });

  it('in one thread: a clone of a consumed descriptor is EBADF, and a forged nonce too', () => {
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const desc = f.share();
    const copy = structuredClone(desc);
    const forged = { ...structuredClone(desc), n: ((desc as { n: number }).n % 1000) + 1 };
    assert.throws(() => DmaFence.fromShared(forged), { code: 'EBADF' });
    assert.equal(DmaFence.fromShared(desc), f, "this thread's view is the fence itself");
    assert.throws(() => DmaFence.fromShared(copy), { code: 'EBADF' });
    assert.equal(slotRefs(Domain.current(), f._slot), 1);
    f.signal();
  });
});
