/**
 * Shared-memory layout and worker protocol of the `fence-wake` baselines. Internal to `bench/`.
 *
 * ```
 * Int32Array over a 64-byte SharedArrayBuffer
 *  word  name          writer        meaning
 *  0     PING          ping worker   round number the ping side has started
 *  1     PONG          pong worker   round number the pong side has answered
 *  2     PING_WAITERS  pong worker   1 while the pong side sleeps on PING
 *  3     PONG_WAITERS  ping worker   1 while the ping side sleeps on PONG
 *  4     START         main thread   0 until both workers are ready, then 1
 * ```
 */

export const PING = 0;
export const PONG = 1;
export const PING_WAITERS = 2;
export const PONG_WAITERS = 3;
export const START = 4;
export const WAKE_SAB_BYTES = 64;

/** `spin`: spin-then-wait with a waiters word; `block`: always `Atomics.wait`/`notify`;
 * `postMessage`: a MessageChannel between the two workers. */
export type WakeMode = 'spin' | 'block' | 'postMessage';

export interface WakeWorkerData {
  mode: WakeMode;
  role: 'ping' | 'pong';
  rounds: number;
  warmup: number;
  /** Spin iterations before sleeping (`spin` mode). */
  spin: number;
  /** The layout above (`spin` and `block` modes). */
  sab: SharedArrayBuffer;
  /** This worker's end of the channel (`postMessage` mode). */
  port?: import('node:worker_threads').MessagePort;
}

/** Worker → main messages. Only the ping side reports samples. */
export type WakeWorkerMessage = { type: 'ready' } | { type: 'done'; samples: Float64Array };
