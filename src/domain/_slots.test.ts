// SlotTable: the allocator under every shared table — private free chains, the shared free list,
// and a LINK word placed away from word 0.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlotTable } from './_slots.js';

const MAGIC = 0x54455354;

describe('SlotTable', () => {
  it('a thread reuses what it freed first, and gives slots back to everyone in chains of 16', () => {
    const a = SlotTable.create(MAGIC, 32, 64, 1024, 26);
    const b = SlotTable.attach(a.sab, MAGIC); // another thread's view of the same table
    assert.equal(b.linkWord, 26, 'the link word travels with the table');
    const slots = Array.from({ length: 40 }, () => a.alloc());
    assert.equal(new Set(slots).size, 40);
    for (const s of slots) assert.equal(a.isAllocated(s), true);
    // 15 frees stay in a's chain: b cannot get them, a gets them back last-freed first.
    for (const s of slots.slice(0, 15)) a.free(s);
    for (const s of slots.slice(0, 15)) assert.equal(b.isAllocated(s), false, 'freed is free');
    const fromB = b.alloc();
    assert.equal(slots.includes(fromB), false, 'b bumps the high-water mark instead');
    assert.equal(a.alloc(), slots[14], 'a reuses its last free first');
    // One more free makes 15 again; the 16th splices the chain onto the shared list.
    a.free(slots[14]!);
    a.free(slots[15]!);
    const got = new Set(Array.from({ length: 16 }, () => b.alloc()));
    assert.deepEqual([...got].sort(), slots.slice(0, 16).sort(), 'b now allocates them');
    for (const s of got) assert.equal(a.isAllocated(s), true);
    // GEN moves on every allocation, whoever makes it.
    const g = a.gen(slots[20]!);
    a.free(slots[20]!);
    assert.equal(a.alloc(), slots[20]);
    assert.equal(a.gen(slots[20]!), g + 1);
  });

  it('flushFree hands a short chain over at once', () => {
    const a = SlotTable.create(MAGIC, 8, 16, 256);
    const b = SlotTable.attach(a.sab, MAGIC);
    const s = a.alloc();
    a.free(s);
    a.flushFree();
    assert.equal(b.alloc(), s);
    assert.equal([...a.allocated()].includes(s), true);
  });

  it('rejects a link word on GEN or outside the slot', () => {
    for (const w of [1, 32, -1, 1.5]) {
      assert.throws(() => SlotTable.create(MAGIC, 32, 4, 16, w), { code: 'EINVAL' });
    }
  });
});
