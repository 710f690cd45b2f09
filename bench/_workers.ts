/**
 * Main-side helpers for benches that run real `node:worker_threads` Workers. Internal to `bench/`.
 *
 * {@link spawn} wraps a Worker so that its messages can be awaited in order
 * ({@link BenchWorker.next}); a worker that throws or exits early rejects the pending and all later
 * `next()` calls instead of hanging the run. Every wait has a deadline ({@link DEFAULT_TIMEOUT_MS}).
 */

import { type TransferListItem, Worker } from 'node:worker_threads';

/** How long a bench waits for one message before it gives up (a hung worker, a lost wake-up). */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface BenchWorker {
  readonly worker: Worker;
  /** The next message from the worker, in arrival order. Rejects when the worker failed or exited,
   * or after `timeoutMs`. */
  next<T = unknown>(timeoutMs?: number): Promise<T>;
  /** Rejects when the worker throws or exits with a non-zero code; never resolves. Race it
   * against another worker's `next()` so that one crashed stage does not leave the run waiting. */
  readonly failed: Promise<never>;
  /** Terminates the worker (idempotent). */
  terminate(): Promise<void>;
}

/** Starts the compiled worker script `url` (e.g. `new URL('./x-worker.js', import.meta.url)`). */
export function spawn(
  url: URL,
  workerData: unknown,
  transferList: TransferListItem[] = [],
): BenchWorker {
  const worker = new Worker(url, { workerData, transferList });
  const queue: unknown[] = [];
  const waiting: { resolve(v: unknown): void; reject(e: unknown): void }[] = [];
  let failure: Error | undefined;
  let terminated = false;
  let rejectFailed!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => {
    rejectFailed = reject;
  });
  failed.catch(() => {}); // observed through next() or by whoever races it
  /** No more messages will come: reject every pending and later `next()`; a crash also rejects
   * `failed` (a clean exit, code 0, does not: a worker may finish before its peers report). */
  const fail = (e: Error, crashed: boolean): void => {
    failure ??= e;
    if (crashed) rejectFailed(e);
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  worker.on('message', (m) => {
    const w = waiting.shift();
    if (w !== undefined) w.resolve(m);
    else queue.push(m);
  });
  worker.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e)), true));
  worker.on('exit', (code) => {
    if (!terminated) fail(new Error(`worker ${url.pathname} exited with code ${code}`), code !== 0);
  });
  return {
    worker,
    failed,
    next<T>(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<T> {
      if (queue.length > 0) return Promise.resolve(queue.shift() as T);
      if (failure !== undefined) return Promise.reject(failure);
      return new Promise<T>((resolve, reject) => {
        const entry = {
          resolve: (v: unknown) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e: unknown) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        const timer = setTimeout(() => {
          const i = waiting.indexOf(entry);
          if (i >= 0) waiting.splice(i, 1);
          reject(new Error(`no message from ${url.pathname} within ${timeoutMs} ms`));
        }, timeoutMs);
        timer.unref(); // the live worker keeps the process up; a stale deadline must not
        waiting.push(entry);
      });
    },
    async terminate(): Promise<void> {
      if (terminated) return;
      terminated = true;
      fail(new Error(`worker ${url.pathname} was terminated`), false); // clears pending timers
      await worker.terminate();
    },
  };
}

/** The next message of `from`, or the first failure of any of `all`. */
export function nextOrFailure<T>(
  from: BenchWorker,
  all: readonly BenchWorker[],
  timeoutMs?: number,
): Promise<T> {
  return Promise.race([from.next<T>(timeoutMs), ...all.map((w) => w.failed)]);
}

/** Terminates all `workers`, even when one of them fails to. */
export async function terminateAll(workers: readonly BenchWorker[]): Promise<void> {
  await Promise.allSettled(workers.map((w) => w.terminate()));
}

/**
 * Runs `body` with `workers` and terminates them afterwards, whatever happens. A worker that
 * exits by itself after posting its last message is fine: termination is idempotent.
 */
export async function withWorkers<T>(
  workers: readonly BenchWorker[],
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } finally {
    await terminateAll(workers);
  }
}
