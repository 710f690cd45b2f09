/**
 * The main job (`npm start`): frames flow through a producer, processing stages and a consumer,
 * each a worker thread, without a single copy — on the embedded default, the system heap.
 */

import { parseArgs } from 'node:util';
import { DEFAULT_FRAME_BYTES, type PipelineConfig, runPipeline } from './pipeline/pipeline.js';

const HELP = `dmabuf demo: a zero-copy multi-worker pipeline on the system heap

usage: npm start -- [options]

  --frame-size SIZE  bytes per frame, or WIDTHxHEIGHT (RGBA, 4 bytes per pixel);
                     a multiple of 256 bytes                       (default 1920x1080)
  --frames N         frames to measure                              (default 600)
  --warmup N         frames pushed through first, not measured      (default 20)
  --pool N           buffers in the pool = frames in flight at most (default 4)
  --stages N         processing stages between producer and consumer, >= 2:
                     N-1 modify the frame in place, the last derives a checksum (default 2)
  --handoff MODE     late: hand a frame on after its fence signaled (one wake-up per hop);
                     early: as soon as the fence is installed, before the work, so the next
                     stage's implicit-sync wait blocks on it                 (default late)
  -h, --help         this text

Each frame is allocated once from the system heap; workers receive handles, never bytes, and
pass each other tickets (a slot number) through queues in shared memory. Each stage waits for the
implicit fences of its direction, adds its own fence to the buffer's reservation object and
signals it when done; a buffer returns to the pool when its last reader's fence signals. The
consumer verifies every frame.`;

function fail(msg: string): never {
  console.error(`error: ${msg}\n\nRun with --help for the options.`);
  process.exit(2);
}

function parseCount(
  name: string,
  v: string | undefined,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) fail(`--${name} must be a whole number, got '${v}'`);
  const n = Number(v);
  if (n < min || n > max) fail(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function parseSize(v: string | undefined): number {
  if (v === undefined) return DEFAULT_FRAME_BYTES;
  const wh = /^(\d+)x(\d+)$/i.exec(v);
  const n = wh ? Number(wh[1]) * Number(wh[2]) * 4 : /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0)
    fail(`--frame-size must be BYTES or WIDTHxHEIGHT, got '${v}'`);
  if (n % 256 !== 0) fail(`--frame-size must be a multiple of 256 bytes, got ${n}`);
  if (n > 1 << 30) fail(`--frame-size must be at most 1 GiB, got ${n}`);
  return n;
}

function parseHandoff(v: string | undefined): 'early' | 'late' {
  if (v === undefined || v === 'late' || v === 'early') return v ?? 'late';
  return fail(`--handoff must be 'early' or 'late', got '${v}'`);
}

let args: ReturnType<typeof parseArgs>['values'];
try {
  args = parseArgs({
    options: {
      'frame-size': { type: 'string' },
      frames: { type: 'string' },
      warmup: { type: 'string' },
      pool: { type: 'string' },
      stages: { type: 'string' },
      handoff: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
} catch (e) {
  fail((e as Error).message);
}
if (args.help) {
  console.log(HELP);
  process.exit(0);
}

const config: PipelineConfig = {
  frameBytes: parseSize(args['frame-size'] as string | undefined),
  frames: parseCount('frames', args.frames as string | undefined, 600, 1, 10_000_000),
  warmup: parseCount('warmup', args.warmup as string | undefined, 20, 1, 1_000_000),
  pool: parseCount('pool', args.pool as string | undefined, 4, 1, 1024),
  stages: parseCount('stages', args.stages as string | undefined, 2, 2, 16),
  handoff: parseHandoff(args.handoff as string | undefined),
};
const total = config.frames + config.warmup;
const mib = (config.frameBytes / (1 << 20)).toFixed(2);
console.log(
  `dmabuf pipeline: ${total} frames of ${mib} MiB (${config.warmup} warm-up), pool of ${config.pool}, ` +
    `producer → ${config.stages - 1} modify → derive → consumer, ${config.handoff} hand-off`,
);
const t0 = performance.now();
let lastPrint = 0;
const result = await runPipeline({
  ...config,
  bufinfoAt: Math.floor(total / 2),
  onProgress(verified, failures) {
    const now = performance.now();
    if (now - lastPrint < 250 && verified < total) return;
    lastPrint = now;
    const fps = verified / ((now - t0) / 1000);
    const line = `  ${verified}/${total} frames verified, ${failures} failed, ${fps.toFixed(0)} frames/s`;
    if (process.stdout.isTTY) process.stdout.write(`\r${line}`);
    else console.log(line);
  },
});
if (process.stdout.isTTY) process.stdout.write('\n');

const sorted = Float64Array.from(result.latencies).sort();
const pct = (p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const fps = result.frames / (result.elapsedNs / 1e9);
console.log('\nbufinfo, mid-run:');
console.log((result.bufinfo ?? '(not taken)').replace(/^/gm, '  '));
console.log('summary:');
console.log(
  `  frames/s           ${fps.toFixed(1)} (${((fps * config.frameBytes) / (1 << 30)).toFixed(2)} GiB/s of frames)`,
);
console.log(
  `  latency p50 / p99  ${(pct(50) / 1e6).toFixed(2)} ms / ${(pct(99) / 1e6).toFixed(2)} ms`,
);
console.log(`  frames verified    ${result.verified} of ${total}, ${result.failures} failed`);
console.log(`  bytes copied       ${result.messageBytes} (frame bytes copied between threads)`);
console.log(`  fences signaled    ${result.fencesSignaled}`);
console.log(`  buffers leaked     ${result.leakedBuffers}`);
if (result.failures > 0 || result.verified !== total || result.leakedBuffers !== 0)
  process.exitCode = 1;
