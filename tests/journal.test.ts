/**
 * A terminated worker cannot drop the shared references its views hold; the thread that watched
 * it drops them from the worker's reference journal (src/domain/_journal.ts): fence views (its own
 * published fences, its views of others', a pending async wait's extra reference), DmaResv and
 * WwMutex views. References the worker dropped itself are not dropped again.
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import {
  createJournal,
  J_FENCE,
  J_RECORD,
  journalEntries,
  RefJournal,
} from '../src/domain/_journal.js';
import { slotRefs } from '../src/fence/_shared.js';
import { DmaFence, DmaResv, Domain, WwMutex } from '../src/index.js';
import { R_REFS, recordViews } from '../src/resv/_record.js';

const workerUrl = new URL('./fixtures/journal-worker.js', import.meta.url);
const ops = { getDriverName: () => 'journal', getTimelineName: () => 'main' };

function recordRefs(slot: number): number {
  const d = Domain.current();
  const t = d.tables.resv;
  return Atomics.load(recordViews(t, slot).i32, t.base(slot) + R_REFS);
}

describe('thread exit drops the references of the dead thread’s views', () => {
  it('fences, async waits, reservation objects and ww-mutexes; nothing twice', async () => {
    const d = Domain.current();
    const f = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const extra = new DmaFence(ops, DmaFence.contextAlloc(), 1);
    const resv = new DmaResv();
    const mutex = new WwMutex();
    const data = {
      fence: f.share(),
      extra: extra.share(),
      resv: resv.share(),
      mutex: mutex.share(),
    };
    const fSlot = f._slot;
    const extraSlot = extra._slot;
    const w = d.spawn(workerUrl, { workerData: data });
    const [reply] = (await once(w, 'message')) as [{ mine: unknown }];
    const mine = DmaFence.fromShared(reply.mine as never);
    const mineSlot = mine._slot;
    // Main's own + the worker's view + its pending async wait.
    assert.equal(slotRefs(d, fSlot), 3);
    // Main's own: the worker dropped its view itself.
    assert.equal(slotRefs(d, extraSlot), 1);
    // The worker's own + main's view.
    assert.equal(slotRefs(d, mineSlot), 2);
    assert.equal(recordRefs(resv._slot), 2);
    assert.equal(recordRefs((mutex as unknown as { _slot: number })._slot), 2);

    const exited = once(w, 'exit');
    await w.terminate();
    await exited;
    assert.equal(slotRefs(d, fSlot), 1, 'main fence: only main’s reference is left');
    assert.equal(slotRefs(d, extraSlot), 1, 'a reference the worker dropped is not dropped again');
    assert.equal(recordRefs(resv._slot), 1, 'reservation object');
    assert.equal(recordRefs((mutex as unknown as { _slot: number })._slot), 1, 'ww-mutex');
    // The worker's pending fence was signaled with -ENOENT (its home thread died), and its own
    // reference dropped: main's view holds the last one.
    assert.equal(mine.getStatus(), -2);
    for (const x of [f, extra]) x.signal();
    resv.fini();
    mutex.destroy();
  });
});

describe('RefJournal', () => {
  it('reuses cleared words, grows, and lists each kind once', () => {
    const sab = createJournal();
    const j = new RefJournal(sab);
    const words: number[] = [];
    for (let i = 1; i <= 3000; i++) words.push(j.add(i % 2 === 0 ? J_FENCE : J_RECORD, i));
    assert.ok(sab.byteLength > 4096, 'grew past its first page');
    assert.equal(j.size, 3000);
    for (const w of words.slice(0, 1000)) j.remove(w);
    j.remove(-1); // a view that was never journaled
    assert.equal(j.size, 2000);
    const w = j.add(J_FENCE, 5);
    assert.ok(words.slice(0, 1000).includes(w), 'a cleared word is reused');
    const fences = [...journalEntries(sab, J_FENCE)].sort((a, b) => a - b);
    assert.deepEqual(fences, [5, ...Array.from({ length: 1000 }, (_, k) => 1002 + 2 * k)]);
    assert.equal([...journalEntries(sab, J_FENCE)].length, 0, 'a walk clears what it returns');
    assert.equal([...journalEntries(sab, J_RECORD)].length, 1000);
  });
});
