/**
 * docs/kernel-map.md names only things that exist.
 *
 * The map gives, for every kernel symbol, its dmabuf name or `—` and a reason. This test parses
 * the map's tables and checks each name it gives against the code:
 *
 * - `Class#member` is a method, getter or public field of the class (inherited ones count);
 *   `Class.member` is a static member (or a property of an exported object such as
 *   `DmaResvUsage`); `new Class(…)` names an exported class. Interface members
 *   (`DmaBufOps.mapDmaBuf`, `DmaFenceOps#signaled`) are checked against the members declared in
 *   the interface's TypeScript source.
 * - Arguments written in a call (`DmaBuf#llseek(offset, whence)`) are the parameter names of the
 *   declaration, in order (`{ … }` stands for an options object, `…` skips the check).
 * - Bare names are exports of `src/index.ts` or `src/testing/index.ts` (values or types);
 *   diagnostics channels (`dmabuf:…`) are values of `CHANNELS`; paths are files of the repository.
 * - A cell marked *internal* names something private: its names must occur in the sources.
 *   Names after *planned* must not exist yet: when one lands, the row has to map it.
 * - Names must be public: a member declared `private` or marked `@internal` is not a dmabuf name.
 * - Lower-case bare names in struct member rows (`len`, `flags`) are parameter or field names;
 *   literal values, errno codes and snake_case kernel names in code spans are not checked.
 * - A row without an equivalent (`—`) says why, and every reason tag it cites is defined.
 * - The constant tables of "uAPI numbers" give exported constants with their real values.
 * - The dma-buf.c table covers every symbol of the seed (drivers/dma-buf/dma-buf.c), and every
 *   `EXPORT_SYMBOL*` there is a row of kind `export` with its namespace. The seed's symbols are
 *   carried below; where the seed itself is at hand ($DMABUF_KERNEL_SEED, or the project's
 *   shared/reference folder) the test checks that the carried list is still the seed's.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Context, problem, types, values } from './_names.js';
import { codeSpans, type MdRow, markdownTables, ROOT, readRepoFile } from './_source.js';

const MAP = 'docs/kernel-map.md';
const SEED_SECTION = 'drivers/dma-buf/dma-buf.c (the seed)';

/** Fails with every problem listed, one a line. */
function noProblems(problems: string[]): void {
  if (problems.length > 0)
    assert.fail(`${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join('\n')}`);
}

// ---- the map -----------------------------------------------------------------------------------

const mapText = readRepoFile(MAP);
const rows = markdownTables(mapText);
const symbolRows = rows.filter((r) => 'kernel symbol' in r.cells);
const where = (r: MdRow): string => `${MAP}:${r.line} (${r.cells['kernel symbol'] ?? ''})`;

/** The reason tags defined in the map ([GC], [RCU], …). */
const tags = new Set(
  rows.filter((r) => 'tag' in r.cells).map((r) => r.cells.tag.replace(/\*/g, '').trim()),
);

/** The bullets of "Names this map had to invent": `- Owner: names…`. */
function inventedNames(): { line: number; owner: string; spans: string[] }[] {
  const out: { line: number; owner: string; spans: string[] }[] = [];
  let inSection = false;
  mapText.split('\n').forEach((line, k) => {
    if (line.startsWith('## ')) inSection = line.startsWith('## Names this map had to invent');
    const m = inSection ? /^- ([^:]+):(.*)$/.exec(line) : null;
    if (m) out.push({ line: k + 1, owner: m[1].trim(), spans: codeSpans(m[2]) });
  });
  return out;
}

describe('docs/kernel-map.md', () => {
  it('has rows to check', () => {
    assert.ok(symbolRows.length > 500, `only ${symbolRows.length} rows parsed`);
    for (const r of symbolRows)
      assert.equal(Object.keys(r.cells).length, 4, `${where(r)} is not a four-column row`);
  });

  it('names only things that exist in the dmabuf column', () => {
    const problems: string[] = [];
    for (const r of symbolRows) {
      const [cell, planned = ''] = r.cells.dmabuf.split('*planned*');
      const ctx: Context = { kind: r.cells.kind, internal: cell.includes('*internal*') };
      for (const span of codeSpans(cell)) {
        const p = problem(span, ctx);
        if (p) problems.push(`${where(r)}: ${p}`);
      }
      // a planned name is one the code does not have yet: when it lands, the row must say so
      for (const span of codeSpans(planned))
        if (problem(span, { kind: r.cells.kind, internal: false }) === null)
          problems.push(`${where(r)}: ${span} exists now: map it instead of marking it planned`);
    }
    noProblems(problems);
  });

  it('names only things that exist when the notes name a dmabuf member or channel', () => {
    const problems: string[] = [];
    for (const r of symbolRows) {
      for (const span of codeSpans(r.cells.notes)) {
        // qualified names with an exported or declared head, and channels; the rest is prose
        const head = /^(?:new\s+)?([A-Z][A-Za-z0-9]*)[#.(]/.exec(span)?.[1];
        const ours = head !== undefined && (values.has(head) || types.has(head));
        if (!ours && !span.startsWith('dmabuf:')) continue;
        const p = problem(span, { kind: r.cells.kind, internal: false });
        if (p) problems.push(`${where(r)} notes: ${p}`);
      }
    }
    noProblems(problems);
  });

  it('names only things that exist in "Names this map had to invent"', () => {
    const problems: string[] = [];
    const bullets = inventedNames();
    assert.ok(bullets.length > 5);
    for (const b of bullets) {
      const owner = /^\w+$/.test(b.owner) && typeof values.get(b.owner) === 'function';
      for (const span of b.spans) {
        const p = problem(span, {
          kind: '',
          internal: false,
          owner: owner ? b.owner : undefined,
        });
        if (p) problems.push(`${MAP}:${b.line} (${b.owner}): ${p}`);
      }
    }
    noProblems(problems);
  });

  it('says why a kernel symbol has no equivalent, with tags that are defined', () => {
    assert.ok(tags.has('[GC]') && tags.has('[VFS]'), 'the tag table was not found');
    const problems: string[] = [];
    for (const r of symbolRows) {
      const { dmabuf, notes } = r.cells;
      if (dmabuf === '') problems.push(`${where(r)}: the dmabuf column is empty`);
      if (dmabuf === '—' && notes === '') problems.push(`${where(r)}: — without a reason`);
      for (const t of `${dmabuf} ${notes}`.match(/\[[A-Z]+\]/g) ?? [])
        if (!tags.has(t)) problems.push(`${where(r)}: undefined reason tag ${t}`);
    }
    noProblems(problems);
  });

  it('gives the uAPI constants with the values they have', () => {
    const problems: string[] = [];
    const constantRows = rows.filter((r) => 'constant' in r.cells);
    assert.ok(constantRows.length > 30);
    for (const r of constantRows) {
      const names = codeSpans(r.cells.constant);
      const written = codeSpans(r.cells.value);
      names.forEach((name, k) => {
        const [head, member] = name.split('.');
        const holder = values.get(head) as Record<string, unknown> | undefined;
        const value = member === undefined ? holder : holder?.[member];
        if (value === undefined) {
          problems.push(`${MAP}:${r.line}: ${name} is not exported`);
          return;
        }
        const text = written[k];
        if (text === undefined || !/^(0x[0-9a-f]+|0o[0-7]+|\d+)$/i.test(text)) return;
        if (Number(value) !== Number(text))
          problems.push(`${MAP}:${r.line}: ${name} is ${value}, the map says ${text}`);
      });
      for (const span of codeSpans(r.cells['used by'] ?? '')) {
        const p = problem(span, { kind: '', internal: false });
        if (p) problems.push(`${MAP}:${r.line} (used by): ${p}`);
      }
    }
    noProblems(problems);
  });
});

// ---- the seed ----------------------------------------------------------------------------------

/**
 * Every symbol of drivers/dma-buf/dma-buf.c (the seed): function definitions, file-scope
 * variables, macros, structures and their members, DOC sections; `export` marks the functions
 * with `EXPORT_SYMBOL*` and their namespace. Names only, so that the test runs where the seed is
 * not available (a clean clone); where it is, the test checks that this list is the seed's.
 */
const SEED_SYMBOLS: readonly string[] = [
  'macro CREATE_TRACE_POINTS',
  'macro DMA_BUF_TRACE',
  'struct dma_buf_sg_table_wrapper',
  'member .original',
  'member .wrapper',
  'var dmabuf_list_mutex',
  'var dmabuf_list',
  'fn __dma_buf_list_add',
  'fn __dma_buf_list_del',
  'fn dma_buf_iter_begin',
  'fn dma_buf_iter_next',
  'fn dmabuffs_dname',
  'fn dma_buf_release',
  'fn dma_buf_file_release',
  'var dma_buf_dentry_ops',
  'var dma_buf_mnt',
  'fn dma_buf_fs_init_context',
  'var dma_buf_fs_type',
  'fn dma_buf_mmap_internal',
  'fn dma_buf_llseek',
  'doc implicit fence polling',
  'fn dma_buf_poll_cb',
  'fn dma_buf_poll_add_cb',
  'fn dma_buf_poll',
  'fn dma_buf_set_name',
  'fn dma_buf_export_sync_file',
  'fn dma_buf_import_sync_file',
  'fn dma_buf_ioctl',
  'fn dma_buf_show_fdinfo',
  'var dma_buf_fops',
  'fn is_dma_buf_file',
  'fn dma_buf_getfile',
  'var dmabuf_inode',
  'doc dma buf device access',
  'fn dma_buf_export',
  'export dma_buf_export DMA_BUF',
  'fn dma_buf_fd',
  'export dma_buf_fd DMA_BUF',
  'fn dma_buf_get',
  'export dma_buf_get DMA_BUF',
  'fn dma_buf_put',
  'export dma_buf_put DMA_BUF',
  'fn dma_buf_wrap_sg_table',
  'fn dma_buf_unwrap_sg_table',
  'fn dma_buf_attachment_is_dynamic',
  'fn dma_buf_pin_on_map',
  'doc locking convention',
  'fn dma_buf_dynamic_attach',
  'export dma_buf_dynamic_attach DMA_BUF',
  'fn dma_buf_attach',
  'export dma_buf_attach DMA_BUF',
  'fn dma_buf_detach',
  'export dma_buf_detach DMA_BUF',
  'fn dma_buf_pin',
  'export dma_buf_pin DMA_BUF',
  'fn dma_buf_unpin',
  'export dma_buf_unpin DMA_BUF',
  'fn dma_buf_map_attachment',
  'export dma_buf_map_attachment DMA_BUF',
  'fn dma_buf_map_attachment_unlocked',
  'export dma_buf_map_attachment_unlocked DMA_BUF',
  'fn dma_buf_unmap_attachment',
  'export dma_buf_unmap_attachment DMA_BUF',
  'fn dma_buf_unmap_attachment_unlocked',
  'export dma_buf_unmap_attachment_unlocked DMA_BUF',
  'fn dma_buf_attach_revocable',
  'export dma_buf_attach_revocable DMA_BUF',
  'fn dma_buf_invalidate_mappings',
  'export dma_buf_invalidate_mappings DMA_BUF',
  'doc cpu access',
  'fn __dma_buf_begin_cpu_access',
  'fn dma_buf_begin_cpu_access',
  'export dma_buf_begin_cpu_access DMA_BUF',
  'fn dma_buf_end_cpu_access',
  'export dma_buf_end_cpu_access DMA_BUF',
  'fn dma_buf_mmap',
  'export dma_buf_mmap DMA_BUF',
  'fn dma_buf_vmap',
  'export dma_buf_vmap DMA_BUF',
  'fn dma_buf_vmap_unlocked',
  'export dma_buf_vmap_unlocked DMA_BUF',
  'fn dma_buf_vunmap',
  'export dma_buf_vunmap DMA_BUF',
  'fn dma_buf_vunmap_unlocked',
  'export dma_buf_vunmap_unlocked DMA_BUF',
  'fn dma_buf_debug_show',
  'var dma_buf_debug_fops',
  'var dma_buf_debugfs_dir',
  'fn dma_buf_init_debugfs',
  'fn dma_buf_uninit_debugfs',
  'fn dma_buf_init',
  'fn dma_buf_deinit',
];

/** Where the seed may be: $DMABUF_KERNEL_SEED, or the project's shared reference folder. */
function seedText(): string | null {
  const file = 'reference/000_ae16f5aac1aa2814.txt';
  const candidates = [
    process.env.DMABUF_KERNEL_SEED,
    join(ROOT, 'shared', file),
    join(ROOT, '..', 'shared', file),
  ];
  for (const c of candidates) if (c && existsSync(c)) return readFileSync(c, 'utf8');
  return null;
}

/**
 * The symbols of the seed, read from its text. Each line there starts with its line number; a
 * function definition's first line is prefixed with its signature (`name(args)NNN …`).
 */
function seedSymbols(text: string): string[] {
  const out: string[] = [];
  const add = (s: string): void => {
    if (!out.includes(s)) out.push(s);
  };
  let struct: string | null = null;
  for (const raw of text.split('\n')) {
    const def = /^([A-Za-z_]\w*)\([^)]*\)\d+ /.exec(raw);
    if (def) add(`fn ${def[1]}`);
    const line = raw.replace(/^(?:[A-Za-z_]\w*\([^)]*\))?\d+ ?/, '');
    let m: RegExpExecArray | null;
    if (struct !== null) {
      if (/^};/.test(line)) struct = null;
      else if ((m = /(\w+)\s*(?:\[[^\]]*\])?;$/.exec(line))) add(`member .${m[1]}`);
      continue;
    }
    if ((m = /^#define (\w+)/.exec(line))) add(`macro ${m[1]}`);
    else if ((m = /^struct (\w+) \{$/.exec(line))) {
      add(`struct ${m[1]}`);
      struct = m[1];
    } else if ((m = /^static (?:DEFINE_\w+|LIST_HEAD)\((\w+)\);/.exec(line))) add(`var ${m[1]}`);
    else if ((m = /^static (?!inline\b)(?:const )?(?:struct )?\w+ \*?(\w+)(?: =.*|;)$/.exec(line)))
      add(`var ${m[1]}`);
    else if ((m = /^DEFINE_SHOW_ATTRIBUTE\((\w+)\);/.exec(line))) add(`var ${m[1]}_fops`);
    else if ((m = /^\* DOC: (.+)$/.exec(line))) add(`doc ${m[1].trim()}`);
    else if ((m = /^EXPORT_SYMBOL\w*\((\w+)(?:, "(\w+)")?\);/.exec(line)))
      add(`export ${m[1]}${m[2] ? ` ${m[2]}` : ''}`);
  }
  return out;
}

describe('docs/kernel-map.md against the seed (drivers/dma-buf/dma-buf.c)', () => {
  const seedRows = symbolRows.filter((r) => r.section === SEED_SECTION);
  const text = seedText();

  it("carries the seed's symbols", { skip: text === null ? 'the seed is not here' : false }, () => {
    assert.deepEqual(seedSymbols(text!), [...SEED_SYMBOLS]);
  });

  it('has a row for every symbol of the seed', () => {
    assert.ok(seedRows.length > 50, 'the dma-buf.c table was not found');
    const problems: string[] = [];
    for (const entry of SEED_SYMBOLS) {
      const [kind, ...rest] = entry.split(' ');
      if (kind === 'export') continue;
      const name = rest.join(' ');
      const found = seedRows.some((r) => {
        const symbol = r.cells['kernel symbol'];
        if (kind === 'doc') return symbol === `DOC "${name}"`;
        if (kind === 'struct') return codeSpans(symbol).includes(`struct ${name}`);
        return codeSpans(symbol).some((s) => s === name || s.startsWith(`${name}(`));
      });
      if (!found) problems.push(`${entry}: no row in the dma-buf.c table`);
    }
    noProblems(problems);
  });

  it('has a row of kind export, with its namespace, for every EXPORT_SYMBOL*', () => {
    const exports = SEED_SYMBOLS.filter((s) => s.startsWith('export '));
    assert.ok(exports.length >= 22);
    const problems: string[] = [];
    for (const entry of exports) {
      const [, name, ns] = entry.split(' ');
      const row = seedRows.find((r) => codeSpans(r.cells['kernel symbol']).includes(name));
      if (row === undefined) problems.push(`${name}: no row`);
      else if (!row.cells.kind.startsWith('export'))
        problems.push(`${where(row)}: kind is '${row.cells.kind}', not export`);
      else if (ns !== undefined && !row.cells.kind.includes(ns))
        problems.push(`${where(row)}: kind does not give the namespace ${ns}`);
      else if (row.cells.dmabuf === '—' || row.cells.dmabuf === '')
        problems.push(`${where(row)}: an exported symbol without a dmabuf name`);
    }
    // and no row claims an export the seed does not have (removed symbols are marked)
    for (const r of seedRows) {
      if (!r.cells.kind.startsWith('export') || r.cells['kernel symbol'].includes('*(removed)*'))
        continue;
      for (const s of codeSpans(r.cells['kernel symbol']))
        if (!exports.some((e) => e.split(' ')[1] === s))
          problems.push(`${where(r)}: ${s} is not exported by the seed`);
    }
    noProblems(problems);
  });
});
