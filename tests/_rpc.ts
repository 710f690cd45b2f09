// A tiny request/response helper over a Worker for the cross-thread tests.
import type { Worker } from 'node:worker_threads';

let nextId = 1;

export interface Rpc {
  worker: Worker;
  /** Sends a command and resolves with the first reply carrying the same id. */
  call(op: string, args?: Record<string, unknown>): Promise<any>;
  /** Sends a command and returns a function that awaits the n-th reply to it. */
  stream(op: string, args?: Record<string, unknown>): (n: number) => Promise<any>;
}

export function rpc(worker: Worker): Rpc {
  const replies = new Map<number, any[]>();
  const waiters = new Map<number, { n: number; resolve: (v: any) => void }[]>();
  worker.on('message', (m: { id: number }) => {
    const list = replies.get(m.id) ?? [];
    list.push(m);
    replies.set(m.id, list);
    for (const w of waiters.get(m.id) ?? []) if (list.length > w.n) w.resolve(list[w.n]);
  });
  const stream = (
    op: string,
    args: Record<string, unknown> = {},
  ): ((n: number) => Promise<any>) => {
    const id = nextId++;
    worker.postMessage({ id, op, ...args });
    return (n: number) =>
      new Promise((resolve) => {
        const list = replies.get(id) ?? [];
        if (list.length > n) return resolve(list[n]);
        const ws = waiters.get(id) ?? [];
        ws.push({ n, resolve });
        waiters.set(id, ws);
      });
  };
  return { worker, stream, call: (op, args) => stream(op, args)(0) };
}

/** A deterministic PRNG (mulberry32) for seeded stress tests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
