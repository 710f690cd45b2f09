/**
 * Table-driven bad-input fuzzing of every public entry point (`_surface.ts`): each entry with
 * valid arguments, then with every junk value, struct field, extra bad value and stale receiver,
 * each call in a fresh world followed by the health check. About 12,000 calls, 2-3 s.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configureSystemHeap } from '../../src/index.js';
import { runTable } from './_run.js';
import { ENTRIES, NOT_ENTRY_POINTS, runtimeEntryPoints } from './_surface.js';

describe('fuzz: the table of entry points', () => {
  it('has a row for every public entry point (or a documented reason not to)', async () => {
    const runtime = await runtimeEntryPoints();
    const rows = new Set(ENTRIES.map((e) => e.name));
    assert.equal(rows.size, ENTRIES.length, 'duplicate rows');
    assert.deepEqual(
      runtime.filter((n) => !rows.has(n) && !(n in NOT_ENTRY_POINTS)),
      [],
      'entry points without a row',
    );
    assert.deepEqual(
      [...rows, ...Object.keys(NOT_ENTRY_POINTS)].filter((n) => !runtime.includes(n)),
      [],
      'rows or exclusions for names that do not exist',
    );
  });

  it('answers bad input with a DmaBufError of an expected code, and the domain stays healthy', async () => {
    // Valid but huge sizes are tried too: keep them cheap (ENOMEM above 16 MiB).
    const old = configureSystemHeap({ maxBytes: 1 << 24 });
    try {
      const s = await runTable();
      const report = s.failures.map((f) => `${f.entry} [${f.row}]: ${f.problem}`);
      assert.deepEqual(report, [], `${report.length} failures in ${s.total} calls`);
      assert.ok(
        s.calls.size === ENTRIES.length,
        `${s.calls.size} of ${ENTRIES.length} entries ran`,
      );
      assert.ok(s.total > 10_000, `only ${s.total} calls`);
    } finally {
      configureSystemHeap(old);
    }
  });
});
