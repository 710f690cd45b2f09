// The wait policy: adaptive spinning by default, explicit budgets always honoured, and blocking
// waits that wake under every budget.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DmaBufError } from '../errors.js';
import {
  AUTO_SPIN_SYNC,
  autoSpinFor,
  getWaitPolicy,
  liveThreads,
  setWaitPolicy,
  syncSpinBudget,
  waitWhileEqualsSync,
} from './_wait.js';
import { Domain } from './domain.js';

// A worker of the domain that does nothing until told to exit (it need not load dmabuf: the
// domain counts it from the spawn).
const IDLE_WORKER = new URL(
  `data:text/javascript,${encodeURIComponent(
    "import { parentPort } from 'node:worker_threads';" +
      "parentPort.postMessage('up'); parentPort.once('message', () => process.exit(0));",
  )}`,
);

describe('the wait policy', () => {
  it("spins 4096 by default; setWaitPolicy takes 'auto' and numbers, and hands the old policy back", () => {
    assert.equal(getWaitPolicy().spinSync, 4096);
    const old = setWaitPolicy({ spinSync: 'auto' });
    assert.equal(old.spinSync, 4096);
    assert.equal(getWaitPolicy().spinSync, 'auto');
    setWaitPolicy({ spinSync: 7 });
    assert.equal(syncSpinBudget(), 7, 'an explicit budget applies whatever the thread count');
    setWaitPolicy({ spinSync: 0 });
    assert.equal(syncSpinBudget(), 0);
    setWaitPolicy(old);
    assert.equal(getWaitPolicy().spinSync, 4096);
    assert.throws(() => setWaitPolicy({ spinSync: 'always' as never }), DmaBufError);
    assert.throws(() => setWaitPolicy({ spinAsync: 'auto' as never }), DmaBufError);
    assert.equal(getWaitPolicy().spinSync, 4096);
  });

  it("'auto' spins while the domain's threads fit the cores and not when they outnumber them", async (t) => {
    assert.equal(autoSpinFor(1, 2), AUTO_SPIN_SYNC);
    assert.equal(autoSpinFor(2, 2), AUTO_SPIN_SYNC);
    assert.equal(autoSpinFor(3, 2), 0);
    assert.equal(autoSpinFor(5, 16), AUTO_SPIN_SYNC);
    const cores = availableParallelism();
    const before = liveThreads();
    const old = setWaitPolicy({ spinSync: 'auto' });
    t.after(() => setWaitPolicy(old));
    assert.equal(syncSpinBudget(true), autoSpinFor(before, cores));
    // Spawn workers of this domain until they outnumber the cores: the budget drops to 0.
    const workers: Worker[] = [];
    try {
      while (liveThreads() <= cores) {
        const w = Domain.current().spawn(IDLE_WORKER);
        workers.push(w);
        await once(w, 'message');
      }
      assert.equal(syncSpinBudget(true), 0, `${liveThreads()} threads on ${cores} cores`);
    } finally {
      for (const w of workers) w.postMessage('exit');
      await Promise.all(workers.map((w) => once(w, 'exit')));
    }
    // The exits are seen once the domain has run its exit hooks.
    for (let i = 0; i < 200 && liveThreads() !== before; i++)
      await new Promise((r) => setTimeout(r, 5));
    assert.equal(liveThreads(), before);
    assert.equal(syncSpinBudget(true), autoSpinFor(before, cores));
  });

  for (const spinSync of ['auto', 0, 4096] as const) {
    it(`a blocking wait wakes when another thread changes the word (spinSync ${spinSync})`, async () => {
      const old = setWaitPolicy({ spinSync });
      try {
        const word = new Int32Array(new SharedArrayBuffer(8));
        const w = new Worker(
          `const { workerData: w } = require('node:worker_threads');
           setTimeout(() => { Atomics.store(w, 0, 1); Atomics.notify(w, 0); }, 20);`,
          { eval: true, workerData: word },
        );
        assert.equal(waitWhileEqualsSync(word, 0, 0, 10_000, -1), true);
        assert.equal(Atomics.load(word, 0), 1);
        assert.equal(waitWhileEqualsSync(word, 0, 1, 5, -1), false, 'a timeout answers false');
        await once(w, 'exit');
      } finally {
        setWaitPolicy(old);
      }
    });
  }
});
