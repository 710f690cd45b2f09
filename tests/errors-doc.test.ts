/**
 * docs/errors.md lists every errno code dmabuf uses, with the right number, and names real entry
 * points.
 *
 * A code is "used" when the sources (src/, tests excluded, comments ignored) name it in a string
 * literal (`fail('EINVAL', …)`, `new DmaBufError('EIO', …)`, `codeOf(r) ?? 'EINTR'`, a serialized
 * `{ code: 'EIO' }`) or write its negative number (`export const EDEADLK = -35`, `setError(-35)`,
 * `0 | -114`). `-1` is not counted: it is mostly an index sentinel, and EPERM is used by name.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERRNO, type ErrnoCode } from '../src/index.js';
import { problem } from './_names.js';
import { codeOnly, codeSpans, markdownTables, readRepoFile, sourceFiles } from './_source.js';

const DOC = 'docs/errors.md';
const PRODUCED = 'Codes dmabuf produces';
const KNOWN = 'Codes dmabuf knows but does not produce';

const codes = Object.keys(ERRNO) as ErrnoCode[];
const byNumber = new Map<number, ErrnoCode>(codes.map((c) => [ERRNO[c], c]));

/** Every code the sources use, with the files that use it. */
function usedCodes(): Map<ErrnoCode, Set<string>> {
  const used = new Map<ErrnoCode, Set<string>>();
  const use = (code: ErrnoCode, file: string): void => {
    used.set(code, (used.get(code) ?? new Set()).add(file));
  };
  for (const file of sourceFiles()) {
    const text = readRepoFile(file);
    const code = codeOnly(text);
    for (const m of text.matchAll(/(['"`])(E[A-Z0-9]+)\1/g)) {
      // the opening quote survives in code-only text unless it sits in a comment
      if (code[m.index ?? 0] === m[1] && m[2] in ERRNO) use(m[2] as ErrnoCode, file);
    }
    for (const m of code.matchAll(/(?:^|[^\w$.)\]\s])\s*-\s*(\d+)\b(?!\.)/g)) {
      const n = Number(m[1]);
      const c = byNumber.get(n);
      if (n > 1 && c !== undefined) use(c, file);
    }
  }
  return used;
}

const rows = markdownTables(readRepoFile(DOC));
const produced = rows.filter((r) => r.section === PRODUCED);
const known = rows.filter((r) => r.section === KNOWN);
const codeOf = (cell: string): string => codeSpans(cell)[0] ?? cell;

/** Fails with every problem listed, one a line. */
function noProblems(problems: string[]): void {
  if (problems.length > 0)
    assert.fail(`${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

describe('docs/errors.md', () => {
  const used = usedCodes();

  it('finds the codes the sources use', () => {
    assert.ok(used.has('EINVAL') && used.has('EDEADLK') && used.has('EALREADY'));
    assert.ok(produced.length >= 10 && known.length >= 1, 'the two tables were not found');
  });

  it('lists every code used in src/ in the table of codes dmabuf produces', () => {
    const listed = new Set(produced.map((r) => codeOf(r.cells.code)));
    const missing = [...used].filter(([c]) => !listed.has(c));
    noProblems(missing.map(([c, files]) => `${c} (used in ${[...files].join(', ')}) is missing`));
  });

  it('lists only codes the sources use as produced, and every other ERRNO code as known', () => {
    const problems: string[] = [];
    for (const r of produced) {
      const c = codeOf(r.cells.code);
      if (!used.has(c as ErrnoCode))
        problems.push(`${c} is not used in src/: move it to "${KNOWN}"`);
    }
    const listed = [...produced, ...known].map((r) => codeOf(r.cells.code));
    for (const c of codes) {
      const n = listed.filter((l) => l === c).length;
      if (n !== 1) problems.push(`${c} appears ${n} times (once expected)`);
    }
    noProblems(problems);
  });

  it('gives each code its number and a meaning', () => {
    const problems: string[] = [];
    for (const r of [...produced, ...known]) {
      const c = codeOf(r.cells.code);
      if (!(c in ERRNO)) {
        problems.push(`${c} is not in ERRNO`);
        continue;
      }
      const want = -ERRNO[c as ErrnoCode];
      if (r.cells.errno !== String(want))
        problems.push(`${c}: errno is ${want}, the page says ${r.cells.errno}`);
      if ((r.cells['meaning in dmabuf'] ?? r.cells.meaning ?? '') === '')
        problems.push(`${c}: no meaning`);
    }
    noProblems(problems);
  });

  it('names entry points that exist', () => {
    const problems: string[] = [];
    for (const r of produced) {
      const cell = r.cells['thrown or returned by'] ?? '';
      if (cell === '') problems.push(`${codeOf(r.cells.code)}: no entry points`);
      for (const span of codeSpans(cell)) {
        // lower-case bare names are parameters and fields (`signal`, `fdFlags`), as in the map
        const p = problem(span, { kind: 'member', internal: false });
        if (p) problems.push(`${codeOf(r.cells.code)}: ${p}`);
      }
    }
    noProblems(problems);
  });
});
