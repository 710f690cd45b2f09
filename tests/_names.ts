/**
 * Checking that a name written in the docs exists in the code: the reader of `docs/kernel-map.md`
 * and `docs/errors.md` (see tests/kernel-map.test.ts for the notation). A name is a code span of
 * the Markdown: `Class#member(args)`, `Class.static`, `Interface.member`, `new Class(args)`,
 * `fn(args)`, an exported constant or type, a diagnostics channel (`dmabuf:…`) or a path.
 */

import * as api from '../src/index.js';
import * as testingApi from '../src/testing/index.js';
import {
  codeOnly,
  functionDeclarations,
  type MemberInfo,
  readRepoFile,
  repoPathExists,
  sourceFiles,
  type TypeDecl,
  typeDeclarations,
  typeExports,
} from './_source.js';

// ---- what exists -------------------------------------------------------------------------------

/** The runtime exports of both entry points. */
export const values = new Map<string, unknown>([
  ...Object.entries(api),
  ...Object.entries(testingApi),
]);
/** The type-only exports of both entry points. */
export const types = new Set([
  ...typeExports('src/index.ts'),
  ...typeExports('src/testing/index.ts'),
]);
const decls = typeDeclarations();
const functions = functionDeclarations();
const channels = new Set<string>(Object.values(api.CHANNELS));
const sourceWords = new Set(
  sourceFiles().flatMap((f) => codeOnly(readRepoFile(f)).match(/[A-Za-z_$][\w$]*/g) ?? []),
);

/** A member of a declared type, looked up through what it extends. */
function declaredMember(
  typeName: string,
  member: string,
  isStatic = false,
): MemberInfo | undefined {
  const seen = new Set<string>();
  let queue = [typeName];
  while (queue.length > 0) {
    const next: string[] = [];
    for (const name of queue) {
      if (seen.has(name)) continue;
      seen.add(name);
      const decl: TypeDecl | undefined = decls.get(name);
      if (decl === undefined) continue;
      const info =
        decl.members.get(isStatic ? `static ${member}` : member) ??
        (decl.kind === 'class' ? undefined : decl.members.get(member));
      if (info !== undefined) return info;
      next.push(...decl.extends);
    }
    queue = next;
  }
  return undefined;
}

// ---- reading one name --------------------------------------------------------------------------

export interface Context {
  /** The row's kind column (`member`, `export (DMA_BUF)`, …). */
  kind: string;
  /** The cell says *internal*: its names are private and need only occur in the sources. */
  internal: boolean;
  /** The class a leading `#member` belongs to (the bullets of "Names this map had to invent"). */
  owner?: string;
}

/** Parameter names written in a call, or null when the map gives none or elides them (`…`). */
function writtenArgs(args: string | undefined): string[] | null {
  if (args === undefined || args.includes('…')) return null;
  const inner = args.slice(1, -1).trim();
  if (inner === '') return [];
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of inner) {
    if ('{[('.includes(c)) depth++;
    if ('}])'.includes(c)) depth--;
    if (c === ',' && depth === 0) {
      parts.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  parts.push(cur.trim());
  return parts.map((p) => (p.startsWith('{') ? '{}' : p.replace(/\?$/, '')));
}

/** Whether the written arguments fit one of the declared parameter lists. */
function argsFit(written: string[], declared: string[][]): boolean {
  return declared.some(
    (params) =>
      (written.length <= params.length || params.some((p) => p.startsWith('...'))) &&
      written.every((w, k) => w === '{}' || w === params[k]),
  );
}

function argsProblem(what: string, args: string | undefined, declared: string[][]): string | null {
  const written = writtenArgs(args);
  if (written === null || declared.length === 0) return null;
  if (argsFit(written, declared)) return null;
  const real = declared.map((p) => `(${p.join(', ')})`).join(' or ');
  return `${what}${args} does not match the declaration ${what}${real}`;
}

const NAME =
  /^([A-Za-z_$][\w$]*)(?:([#.])(\[Symbol\.\w+\]|[A-Za-z_$][\w$]*))?(\((?:[^()]|\([^()]*\))*\))?(\?\..*)?$/;

/** Why a code span of the map does not name something that exists, or null if it does. */
export function problem(span: string, ctx: Context): string | null {
  let tok = span.trim();
  if (tok.startsWith('dmabuf:'))
    return channels.has(tok) ? null : `no diagnostics channel '${tok}' in CHANNELS`;
  // code and message or entry shapes, string literals: not names
  if (/^[({'"]|^for\b|=>/.test(tok)) return null;
  // literal values, errno codes and kernel identifiers (dmabuf's names are never snake_case)
  const literal = /^(?:true|false|null|undefined|-?\d+n?|-?E[A-Z0-9]+|_*[a-z0-9]+(?:_[a-z0-9]+)+)$/;
  if (literal.test(tok) && !values.has(tok)) return null;
  // `Head.a/b/c` lists members
  let m = /^([A-Za-z_$][\w$]*[#.])([\w$]+(?:\/[\w$]+)+)$/.exec(tok);
  if (m) {
    const [, head, list] = m;
    for (const member of list.split('/')) {
      const p = problem(head + member, ctx);
      if (p) return p;
    }
    return null;
  }
  if (/^[\w.-]*\/[\w./-]*$/.test(tok))
    return repoPathExists(tok) || repoPathExists(`src/${tok}`) ? null : `no file ${tok}`;
  if (tok.includes('*')) {
    const glob = new RegExp(`^${tok.replace(/\*/g, '\\w*')}$`);
    return [...values.keys()].some((k) => glob.test(k)) ? null : `no export matches ${tok}`;
  }
  m = /^instanceof\s+(\w+)$/.exec(tok);
  if (m) return typeof values.get(m[1]) === 'function' ? null : `${m[1]} is not an exported class`;
  m = /^(\w+)\s+extends\s+(\w+)$/.exec(tok);
  if (m) {
    const [sub, base] = [values.get(m[1]), values.get(m[2])];
    if (typeof sub !== 'function' || typeof base !== 'function')
      return `${m[1]} or ${m[2]} is not an exported class`;
    return sub.prototype instanceof base ? null : `${m[1]} does not extend ${m[2]}`;
  }
  const isNew = tok.startsWith('new ');
  if (isNew) tok = tok.slice(4).trim();
  if (tok.startsWith('#')) {
    if (ctx.owner === undefined) return `'${tok}' does not say whose member it is`;
    tok = ctx.owner + tok;
  }
  const n = NAME.exec(tok);
  if (!n) return `'${span}' is not a name this test can read`;
  const [, head, sep, member, args] = n;
  if (isNew) {
    if (typeof values.get(head) !== 'function') return `${head} is not an exported class`;
    return argsProblem(`new ${head}`, args, declaredMember(head, 'constructor')?.params ?? []);
  }
  if (sep === undefined) return bareProblem(head, args, ctx);
  return memberProblem(head, sep, member, args, ctx);
}

function bareProblem(name: string, args: string | undefined, ctx: Context): string | null {
  const value = values.get(name);
  if (value !== undefined) {
    if (args === undefined) return null;
    if (typeof value !== 'function') return `${name} is not a function`;
    return argsProblem(name, args, functions.get(name) ?? []);
  }
  if (types.has(name)) return args === undefined ? null : `${name} is a type, not a function`;
  if (ctx.internal) return sourceWords.has(name) ? null : `${name} occurs nowhere in src/`;
  // a struct member row names the parameter or field that stands for the member
  if (/\bmember\b/.test(ctx.kind) && /^[a-z]/.test(name) && args === undefined) return null;
  return `${name} is not exported from dmabuf or dmabuf/testing`;
}

function memberProblem(
  head: string,
  sep: string,
  member: string,
  args: string | undefined,
  ctx: Context,
): string | null {
  const value = values.get(head);
  const written = `${head}${sep}${member}`;
  if (value === undefined) {
    if (types.has(head)) {
      const info = declaredMember(head, member);
      if (info === undefined) return `${head} declares no member ${member}`;
      return argsProblem(written, args, info.params);
    }
    if (ctx.internal && sourceWords.has(head)) return null;
    return `${head} is not exported from dmabuf or dmabuf/testing`;
  }
  const symbol = /^\[Symbol\.(\w+)\]$/.exec(member);
  const key: PropertyKey = symbol ? (Symbol as any)[symbol[1]] : member;
  const info = declaredMember(head, member, sep === '.');
  if (info?.private) return `${written} is private`;
  if (info?.internal && !ctx.internal) return `${written} is marked @internal`;
  if (typeof value !== 'function') {
    // an exported object: a member is a property
    if (value === null || typeof value !== 'object' || !(key in value))
      return `${head} has no property ${member}`;
    return null;
  }
  const proto = (value as { prototype?: object }).prototype ?? {};
  if (sep === '#') {
    if (!(key in proto) && info === undefined) {
      if (key in value) return `${written} is static: write ${head}.${member}`;
      return `${head} has no instance member ${member} (method, getter or field)`;
    }
  } else if (!(key in value)) {
    if (key in proto || declaredMember(head, member) !== undefined)
      return `${written} is an instance member: write ${head}#${member}`;
    return `${head} has no static member ${member}`;
  }
  if (args !== undefined) {
    const target = sep === '#' ? proto : value;
    const descriptor = findDescriptor(target, key);
    if (descriptor?.get !== undefined)
      return `${written} is a getter: write it without parentheses`;
    if (
      descriptor !== undefined &&
      typeof descriptor.value !== 'function' &&
      info?.params.length === 0
    )
      return `${written} is not a method`;
    return argsProblem(written, args, info?.params ?? []);
  }
  return null;
}

function findDescriptor(obj: object, key: PropertyKey): PropertyDescriptor | undefined {
  for (let o: object | null = obj; o !== null; o = Object.getPrototypeOf(o)) {
    const d = Object.getOwnPropertyDescriptor(o, key);
    if (d !== undefined) return d;
  }
  return undefined;
}
