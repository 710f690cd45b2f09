/**
 * Forwarding a call to another thread of the domain: how a buffer reaches a thread-bound exporter
 * (its ops run only in its home thread), how a release is forwarded home, and how an exporter
 * reaches an importer's `invalidateMappings` in the importer's thread. Internal.
 *
 * Each thread that uses buffers listens on one `BroadcastChannel` named
 * `dmabuf:<domain id>:<thread>` (its inbox, unref'd: it never keeps a thread alive by itself).
 * A request `{ k: 0, id, from, op, a }` runs the handler registered under `op` in the receiving
 * thread; its result (or error, as `{ code, message }`) comes back to the caller's inbox. Arguments
 * and results are structured-cloned: SharedArrayBuffers travel by reference, nothing else is
 * shared. While replies are pending the caller holds a ref'd timer that also checks, every
 * {@link LIVENESS_MS} ms, that the callee's thread is still alive (ENODEV otherwise), so a call to
 * a thread that dies never hangs.
 *
 * Ordering: requests from one thread to another are handled in the order they were sent.
 */

import { BroadcastChannel } from 'node:worker_threads';
import type { Domain } from '../domain/domain.js';
import {
  DmaBufError,
  deserializeError,
  fail,
  type SerializedError,
  serializeError,
} from '../errors.js';
import { warn } from '../trace.js';

/** A handler runs in the receiving thread; `from` is the calling thread. */
export type RpcHandler = (args: any, from: number) => unknown;

interface Req {
  k: 0;
  id: number;
  from: number;
  op: string;
  a: unknown;
  oneway: boolean;
}

interface Res {
  k: 1;
  id: number;
  ok: boolean;
  v?: unknown;
  e?: SerializedError;
}

const LIVENESS_MS = 20;

const handlers = new Map<string, RpcHandler>();
const outboxes = new Map<string, BroadcastChannel>();
const pending = new Map<
  number,
  { d: Domain; target: number; resolve: (v: unknown) => void; reject: (e: unknown) => void }
>();
let inbox: BroadcastChannel | null = null;
let inboxName = '';
let nextId = 1;
let liveness: ReturnType<typeof setInterval> | undefined;

/** Registers the handler for `op` in this thread (module load time). */
export function registerRpc(op: string, h: RpcHandler): void {
  handlers.set(op, h);
}

function channelName(d: Domain, thread: number): string {
  return `dmabuf:${d.id}:${thread}`;
}

/** Opens this thread's inbox (idempotent). Call before anything can be asked of this thread. */
export function ensureInbox(d: Domain): void {
  const name = channelName(d, d.thread);
  if (inbox !== null && inboxName === name) return;
  inbox?.close();
  inbox = new BroadcastChannel(name);
  inboxName = name;
  (inbox as any).onmessage = (ev: { data: Req | Res }) => onMessage(d, ev.data);
  inbox.unref();
}

function outbox(d: Domain, thread: number): BroadcastChannel {
  const name = channelName(d, thread);
  let ch = outboxes.get(name);
  if (ch === undefined) {
    ch = new BroadcastChannel(name);
    ch.unref();
    outboxes.set(name, ch);
  }
  return ch;
}

function onMessage(d: Domain, msg: Req | Res): void {
  if (msg === null || typeof msg !== 'object') return;
  if (msg.k === 1) {
    const p = pending.get(msg.id);
    if (p === undefined) return;
    pending.delete(msg.id);
    stopLivenessIfIdle();
    if (msg.ok) p.resolve(msg.v);
    else p.reject(deserializeError(msg.e ?? { code: 'EIO', message: 'remote call failed' }));
    return;
  }
  if (msg.k !== 0) return;
  const h = handlers.get(msg.op);
  const run = async (): Promise<unknown> => {
    if (h === undefined) fail('ENOTTY', `no handler for ${msg.op}`);
    return h(msg.a, msg.from);
  };
  run().then(
    (v) => {
      if (!msg.oneway) post(d, msg.from, { k: 1, id: msg.id, ok: true, v });
    },
    (e) => {
      if (!msg.oneway) post(d, msg.from, { k: 1, id: msg.id, ok: false, e: serializeError(e) });
      else warn(`dmabuf: forwarded ${msg.op} failed: ${String(e)}`);
    },
  );
}

function post(d: Domain, thread: number, msg: Req | Res): void {
  try {
    outbox(d, thread).postMessage(msg);
  } catch (e) {
    if (msg.k === 1) {
      // A result that cannot be cloned: report that instead.
      outbox(d, thread).postMessage({
        k: 1,
        id: msg.id,
        ok: false,
        e: { code: 'EINVAL', message: `result of a forwarded call cannot be cloned: ${String(e)}` },
      } satisfies Res);
      return;
    }
    throw new DmaBufError('EINVAL', `arguments cannot be sent to thread ${thread}: ${String(e)}`);
  }
}

function startLiveness(): void {
  if (liveness !== undefined) return;
  liveness = setInterval(() => {
    for (const [id, p] of pending) {
      if (!p.d.isThreadAlive(p.target)) {
        pending.delete(id);
        p.reject(new DmaBufError('ENODEV', `thread ${p.target} exited before answering`));
      }
    }
    stopLivenessIfIdle();
  }, LIVENESS_MS);
}

function stopLivenessIfIdle(): void {
  if (pending.size === 0 && liveness !== undefined) {
    clearInterval(liveness);
    liveness = undefined;
  }
}

/**
 * Runs `op(args)` in thread `target` and resolves with its result. Runs it here (still
 * asynchronously) when `target` is this thread. ENODEV when the target is not alive or dies first.
 */
export async function rpcCall(d: Domain, target: number, op: string, args: unknown): Promise<any> {
  if (target === d.thread) {
    const h = handlers.get(op);
    if (h === undefined) fail('ENOTTY', `no handler for ${op}`);
    return h(args, d.thread);
  }
  if (!d.isThreadAlive(target)) fail('ENODEV', `thread ${target} is not alive`);
  ensureInbox(d);
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { d, target, resolve, reject });
    startLiveness();
    try {
      post(d, target, { k: 0, id, from: d.thread, op, a: args, oneway: false });
    } catch (e) {
      pending.delete(id);
      stopLivenessIfIdle();
      reject(e);
    }
  });
}

/** Posts `op(args)` to `target` without waiting for (or getting) an answer. */
export function rpcSend(d: Domain, target: number, op: string, args: unknown): void {
  if (target === d.thread) {
    const h = handlers.get(op);
    if (h === undefined) return;
    queueMicrotask(() => {
      Promise.resolve()
        .then(() => h(args, d.thread))
        .catch((e) => warn(`dmabuf: ${op} failed: ${String(e)}`));
    });
    return;
  }
  if (!d.isThreadAlive(target)) return;
  ensureInbox(d);
  post(d, target, { k: 0, id: 0, from: d.thread, op, a: args, oneway: true });
}
