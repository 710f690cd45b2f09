/**
 * Reading the repository's own text for the documentation tests: the Markdown under docs/ and the
 * TypeScript under src/ (the sources, not the build), with a small scanner that finds class and
 * interface bodies and the members declared at their top level. It is not a TypeScript parser; it
 * knows comments, string and template literals and brace depth, which is all the docs tests need.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/tests/_source.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function readRepoFile(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8');
}

export function repoPathExists(path: string): boolean {
  return existsSync(join(ROOT, path));
}

/** Every `.ts` file under src/ except tests, as repository-relative paths. */
export function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(p);
    }
  };
  walk('src');
  return out.sort();
}

/**
 * The text with comments removed and the contents of string, template and regular-expression
 * literals blanked (each character becomes a space, so offsets are kept). Template
 * substitutions (`${…}`) stay code.
 */
export function codeOnly(text: string): string {
  const out = text.split('');
  const blank = (from: number, to: number): void => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  const templateDepth: number[] = []; // brace depth at which each open `${` resumes its template
  let depth = 0;
  let i = 0;
  let lastSignificant = '';
  const scanTemplate = (start: number): number => {
    // start is just after the opening backtick or the closing brace of a substitution
    let k = start;
    while (k < text.length) {
      const c = text[k];
      if (c === '\\') {
        k += 2;
        continue;
      }
      if (c === '`') {
        blank(start, k);
        return k + 1;
      }
      if (c === '$' && text[k + 1] === '{') {
        blank(start, k);
        templateDepth.push(depth);
        depth++;
        return k + 2;
      }
      k++;
    }
    blank(start, k);
    return k;
  };
  while (i < text.length) {
    const c = text[i];
    const n = text[i + 1];
    if (c === '/' && n === '/') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      blank(i, stop);
      i = stop;
      continue;
    }
    if (c === '/' && n === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      blank(i, stop);
      i = stop;
      continue;
    }
    if (c === '"' || c === "'") {
      let k = i + 1;
      while (k < text.length && text[k] !== c && text[k] !== '\n') k += text[k] === '\\' ? 2 : 1;
      blank(i + 1, k);
      i = k + 1;
      lastSignificant = 'x';
      continue;
    }
    if (c === '`') {
      i = scanTemplate(i + 1);
      lastSignificant = 'x';
      continue;
    }
    if (c === '/' && (lastSignificant === '' || '(,=:[!&|?{};'.includes(lastSignificant))) {
      // a regular-expression literal
      let k = i + 1;
      let inClass = false;
      while (k < text.length && text[k] !== '\n') {
        if (text[k] === '\\') k++;
        else if (text[k] === '[') inClass = true;
        else if (text[k] === ']') inClass = false;
        else if (text[k] === '/' && !inClass) break;
        k++;
      }
      blank(i + 1, k);
      i = k + 1;
      lastSignificant = 'x';
      continue;
    }
    if (c === '{') depth++;
    if (c === '}') {
      depth--;
      if (templateDepth.length > 0 && templateDepth[templateDepth.length - 1] === depth) {
        templateDepth.pop();
        i = scanTemplate(i + 1);
        continue;
      }
    }
    if (!/\s/.test(c)) lastSignificant = c;
    i++;
  }
  return out.join('');
}

/** The text between the `{` at `open` and its matching `}` (exclusive), in code-only text. */
function bodyAt(code: string, open: number): string {
  let depth = 0;
  for (let k = open; k < code.length; k++) {
    if (code[k] === '{') depth++;
    else if (code[k] === '}' && --depth === 0) return code.slice(open + 1, k);
  }
  throw new Error('unbalanced braces');
}

/** The body with everything nested deeper than its top level blanked. */
function topLevel(body: string): string {
  let depth = 0;
  let out = '';
  for (const c of body) {
    if (c === '{' || c === '(' || c === '[') depth++;
    out += depth === 0 || c === '\n' ? c : ' ';
    if (c === '}' || c === ')' || c === ']') depth--;
  }
  return out;
}

export interface MemberInfo {
  /** Declared with `private`, `protected` or as a `#private` name. */
  private: boolean;
  /** Declared with `static`. */
  static: boolean;
  /** The doc comment above it says `@internal`. */
  internal: boolean;
  /** Parameter names of each call signature declared for it (none for a field or accessor). */
  params: string[][];
}

export interface TypeDecl {
  kind: 'class' | 'interface' | 'type';
  file: string;
  /** Names of the types it extends (class: one, interface: any number). */
  extends: string[];
  /**
   * Members declared at the top level of its body (fields, methods, accessors, properties);
   * static ones under `static name`.
   */
  members: Map<string, MemberInfo>;
}

/** Every class, interface and object-literal type alias declared in src/ (tests excluded). */
export function typeDeclarations(): Map<string, TypeDecl> {
  const decls = new Map<string, TypeDecl>();
  for (const file of sourceFiles()) {
    const text = readRepoFile(file);
    const code = codeOnly(text);
    const head =
      /(?:^|\n)[ \t]*(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(class|interface|type)\s+([A-Za-z_$][\w$]*)(?:<[^>{=]*>)?([^{=;]*)(=\s*)?\{/g;
    for (const m of code.matchAll(head)) {
      const [whole, kind, name, heritage, eq] = m;
      if (kind === 'type' && eq === undefined) continue;
      if (kind !== 'type' && eq !== undefined) continue;
      const open = (m.index ?? 0) + whole.length - 1;
      const body = bodyAt(code, open);
      const ext = /\bextends\s+([^{]+?)(?:\bimplements\b|$)/.exec(heritage ?? '');
      const parents = ext
        ? ext[1]
            .split(',')
            .map((s) => s.replace(/<.*$/, '').trim())
            .filter(Boolean)
        : [];
      decls.set(name, {
        kind: kind as TypeDecl['kind'],
        file,
        extends: parents,
        members: membersOf(body, text.slice(open + 1, open + 1 + body.length)),
      });
    }
  }
  return decls;
}

function membersOf(body: string, original: string): Map<string, MemberInfo> {
  const top = topLevel(body);
  const members = new Map<string, MemberInfo>();
  const member =
    /(?:^|[;\n}])[ \t]*((?:(?:public|private|protected|static|readonly|override|declare|abstract|async|get|set|accessor)\s+)*)(\*\s*)?(#?[A-Za-z_$][\w$]*|\[Symbol\.\w+\])\s*[?!]?\s*(?=[:(=;<\n])/g;
  for (const m of top.matchAll(member)) {
    const modifiers = m[1] ?? '';
    const name = m[3];
    const nameEnd = (m.index ?? 0) + m[0].lastIndexOf(name) + name.length;
    const params = paramsAfter(body, nameEnd);
    if (name === 'constructor' && params !== null) {
      const open = body.indexOf('(', nameEnd);
      const list = body.slice(open + 1, matchParen(body, open));
      for (const p of list.matchAll(
        /(?:^|,)\s*((?:public|private|protected|readonly|override)\s+)+([A-Za-z_$][\w$]*)/g,
      )) {
        members.set(p[2], {
          private: /private|protected/.test(p[1]),
          static: false,
          internal: false,
          params: [],
        });
      }
    }
    const start = (m.index ?? 0) + m[0].search(/[^\s;}]/);
    const before = original.slice(Math.max(0, start - 400), start);
    const doc = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*$/.exec(before);
    const info: MemberInfo = {
      private: /\b(private|protected)\b/.test(modifiers) || name.startsWith('#'),
      static: /\bstatic\b/.test(modifiers),
      internal: doc !== null && /@internal\b/.test(doc[1]),
      params: params === null ? [] : [params],
    };
    // static members are kept under `static name`, beside an instance member of the same name
    const key = info.static ? `static ${name}` : name;
    const prev = members.get(key);
    // an accessor pair or overloads: public wins, and internal only if every declaration says so
    if (prev)
      members.set(key, {
        private: prev.private && info.private,
        static: prev.static || info.static,
        internal: prev.internal && info.internal,
        params: [...prev.params, ...info.params],
      });
    else members.set(key, info);
  }
  return members;
}

/** The parameter names of a call signature that starts at `at` (after the name), or null. */
function paramsAfter(code: string, at: number): string[] | null {
  let k = at;
  while (k < code.length && /\s/.test(code[k])) k++;
  if (code[k] === '?') k++;
  if (code[k] === '<') {
    let depth = 0;
    for (; k < code.length; k++) {
      if (code[k] === '<') depth++;
      else if (code[k] === '>' && code[k - 1] !== '=' && --depth === 0) break;
    }
    k++;
  }
  if (code[k] !== '(') return null;
  return parseParams(code.slice(k + 1, matchParen(code, k)));
}

/** Parameter names of a parameter list: `'{}'` for a destructured one, `'...name'` for a rest. */
function parseParams(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (let k = 0; k < list.length; k++) {
    const c = list[k];
    if ('({[<'.includes(c)) depth++;
    else if (')}]'.includes(c) || (c === '>' && list[k - 1] !== '=')) depth--;
    if (c === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  const names: string[] = [];
  for (const part of parts) {
    const p = part.trim().replace(/^(?:(?:public|private|protected|readonly|override)\s+)+/, '');
    if (p === '') continue;
    if (p.startsWith('{') || p.startsWith('[')) names.push('{}');
    else {
      const m = /^(\.\.\.)?([A-Za-z_$][\w$]*)/.exec(p);
      if (m && m[2] !== 'this') names.push((m[1] ?? '') + m[2]);
    }
  }
  return names;
}

function matchParen(code: string, open: number): number {
  let depth = 0;
  for (let k = open; k < code.length; k++) {
    if (code[k] === '(') depth++;
    else if (code[k] === ')' && --depth === 0) return k;
  }
  return code.length;
}

/** Every function declared with `export function` in src/ (tests excluded): its parameter lists. */
export function functionDeclarations(): Map<string, string[][]> {
  const fns = new Map<string, string[][]>();
  for (const file of sourceFiles()) {
    const code = codeOnly(readRepoFile(file));
    for (const m of code.matchAll(/export\s+(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)/g)) {
      const params = paramsAfter(code, (m.index ?? 0) + m[0].length);
      if (params !== null) fns.set(m[1], [...(fns.get(m[1]) ?? []), params]);
    }
  }
  return fns;
}

/**
 * Names exported as types only (interfaces and type aliases) by an entry file: `export type { … }`
 * lists and the `export interface` / `export type` declarations of modules it re-exports with
 * `export *`.
 */
export function typeExports(entry: string): Set<string> {
  const names = new Set<string>();
  const dir = entry.slice(0, entry.lastIndexOf('/'));
  const code = codeOnly(readRepoFile(entry));
  for (const m of code.matchAll(/export\s+type\s*\{([^}]*)\}/g)) {
    for (const n of m[1].split(',')) {
      const name = n
        .trim()
        .split(/\s+as\s+/)
        .pop();
      if (name) names.add(name);
    }
  }
  for (const m of readRepoFile(entry).matchAll(/export\s+\*\s+from\s+'\.\/([^']+)\.js'/g)) {
    const mod = codeOnly(readRepoFile(`${dir}/${m[1]}.ts`));
    for (const d of mod.matchAll(/export\s+(?:interface|type)\s+([A-Za-z_$][\w$]*)/g))
      names.add(d[1]);
  }
  return names;
}

// ---- Markdown tables ---------------------------------------------------------------------------

export interface MdRow {
  /** The `##`/`###` heading the table sits under. */
  section: string;
  /** 1-based line number in the file. */
  line: number;
  /** Cells by lower-cased header name. */
  cells: Record<string, string>;
}

/** Every row of every pipe table in a Markdown text, keyed by the table's header cells. */
export function markdownTables(text: string): MdRow[] {
  const rows: MdRow[] = [];
  let section = '';
  let header: string[] | null = null;
  const lines = text.split('\n');
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k];
    if (/^#{2,3} /.test(line)) section = line.replace(/^#+\s*/, '');
    if (!line.startsWith('|')) {
      header = null;
      continue;
    }
    const cells = splitRow(line);
    if (header === null) {
      header = cells.map((c) => c.toLowerCase());
      continue;
    }
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
    const record: Record<string, string> = {};
    header.forEach((h, j) => {
      record[h] = cells[j] ?? '';
    });
    rows.push({ section, line: k + 1, cells: record });
  }
  return rows;
}

/** Splits a table row on unescaped pipes (as GitHub does, code spans included). */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  for (let k = 1; k < line.length; k++) {
    const c = line[k];
    if (c === '\\' && line[k + 1] === '|') {
      cur += '|';
      k++;
      continue;
    }
    if (c === '|') {
      cells.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim() !== '') cells.push(cur.trim());
  return cells;
}

/** The contents of the code spans of a Markdown fragment (fenced code blocks are skipped). */
export function codeSpans(md: string): string[] {
  const prose = md.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '');
  return [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
}
