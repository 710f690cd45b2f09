/** Protocol types of the `buffer-share` baselines (main ↔ `buffer-share-worker.ts`). Internal. */

export type ShareMode = 'clone' | 'transfer';

export interface ShareWorkerData {
  mode: ShareMode;
}

/** Main → worker: the buffer (cloned or transferred) and which byte to read. */
export interface ShareRequest {
  bytes: Uint8Array;
  index: number;
}

/** Worker → main: the byte read; in transfer mode, the buffer handed back. */
export interface ShareReply {
  value: number;
  bytes?: Uint8Array;
}
