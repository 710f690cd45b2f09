/**
 * The README and the guides point at things that exist, and the checked-in API reference
 * (docs/api, made by `npm run docs:api`) has a page for every export.
 *
 * - Markdown links to local files resolve from the page that holds them.
 * - Code spans that are repository paths exist: a path whose first folder is one of the
 *   repository's or of src/ (`src/trace.ts`, `docs/`, `buf/dma-buf.ts`), or a file name
 *   (`kernel-map.md` next to the page, `_core.ts` somewhere in src/). Kernel paths
 *   (`drivers/dma-buf/dma-buf.c`) and package names (`dmabuf/testing`) are not repository paths.
 *   The project documents kept outside the repository (DESIGN.md, STYLE.md, the kernel reference
 *   under `reference/`) are not checked.
 */

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as api from '../src/index.js';
import * as testingApi from '../src/testing/index.js';
import { codeSpans, readRepoFile, repoPathExists, sourceFiles, typeExports } from './_source.js';

const OUTSIDE = /^(?:DESIGN\.md|STYLE\.md|reference\/.*)$/;

/** Folders a repository path in a code span starts with: top-level ones and those of src/. */
const ROOTS = new Set(
  [
    ...readdirSync(new URL('../../', import.meta.url), { withFileTypes: true }),
    ...readdirSync(new URL('../../src/', import.meta.url), { withFileTypes: true }),
  ]
    .filter((e) => e.isDirectory() && !/^(?:\.|node_modules$|dist$)/.test(e.name))
    .map((e) => e.name),
);

/** README.md and every hand-written page under docs/ (not the generated docs/api). */
function docPages(): string[] {
  const docs = readdirSync(new URL('../../docs/', import.meta.url)).filter((n) =>
    n.endsWith('.md'),
  );
  return ['README.md', ...docs.map((n) => `docs/${n}`)];
}

function dirOf(page: string): string {
  const k = page.lastIndexOf('/');
  return k < 0 ? '' : page.slice(0, k + 1);
}

/** Whether `path`, written on `page`, names something in the repository. */
function resolves(page: string, path: string): boolean {
  const clean = path.replace(/[#?].*$/, '');
  const bases = [dirOf(page), '', 'src/'];
  if (bases.some((b) => repoPathExists(`${b}${clean}`))) return true;
  // a bare file name of the sources (`_core.ts`)
  return !clean.includes('/') && sourceFiles().some((f) => f.endsWith(`/${clean}`));
}

/** Fails with every problem listed, one a line. */
function noProblems(problems: string[]): void {
  if (problems.length > 0)
    assert.fail(`${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

describe('links and paths in the docs', () => {
  it('has pages to check', () => {
    assert.ok(docPages().includes('docs/kernel-map.md'));
  });

  it('links only to files that exist', () => {
    const problems: string[] = [];
    for (const page of docPages()) {
      for (const m of readRepoFile(page).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue;
        if (!resolves(page, target)) problems.push(`${page}: link to ${target} does not resolve`);
      }
    }
    noProblems(problems);
  });

  it('names only repository paths that exist', () => {
    const problems: string[] = [];
    for (const page of docPages()) {
      for (const span of codeSpans(readRepoFile(page))) {
        const path = /^[\w.-]+(?:\/[\w.-]*)*$/.test(span) ? span : null;
        if (path === null || OUTSIDE.test(path)) continue;
        const first = path.split('/')[0];
        const looksLikePath = path.includes('/')
          ? ROOTS.has(first)
          : /^[\w.-]+\.(?:md|ts|js|json)$/.test(path);
        if (!looksLikePath) continue;
        if (!resolves(page, path)) problems.push(`${page}: ${path} does not exist`);
      }
    }
    noProblems(problems);
  });
});

describe('docs/api', () => {
  /** The page names TypeDoc gives an entry point's exports. */
  const KINDS = ['classes', 'enumerations', 'functions', 'interfaces', 'type-aliases', 'variables'];

  function pagesOf(module: string): Set<string> {
    const out = new Set<string>();
    const root = new URL(`../../docs/api/${module}/`, import.meta.url);
    for (const kind of KINDS) {
      let files: string[];
      try {
        files = readdirSync(new URL(`${kind}/`, root));
      } catch {
        continue; // a module without exports of this kind
      }
      for (const f of files) out.add(f.replace(/\.md$/, ''));
    }
    return out;
  }

  // the module names are those of the `@module` tags of the entry files
  const entries = [
    ['dmabuf', 'src/index.ts', api],
    ['dmabuf/testing', 'src/testing/index.ts', testingApi],
  ] as const;

  for (const [entry, file, module] of entries) {
    it(`has a page for every export of ${file} (run npm run docs:api)`, () => {
      const have = pagesOf(entry);
      const names = [...Object.keys(module), ...typeExports(file)];
      const missing = names.filter((n) => !have.has(n));
      noProblems(missing.map((n) => `${n} has no page under docs/api/${entry}/`));
    });
  }
});
