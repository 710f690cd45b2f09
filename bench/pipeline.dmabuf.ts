/**
 * dmabuf side of the `pipeline` bench: the demo's pipeline (examples/pipeline) with the bench's
 * options — frames in the system heap, slot numbers in shared-memory ticket queues, implicit sync
 * through each buffer's reservation object, two processing stages (one modify, one derive), late
 * hand-off. It takes no `spin`: the pipeline spins only while its threads fit the cores (on the
 * project's 2 cores it never does, like `sab-ring-nospin`).
 */

import { runPipeline } from '../examples/pipeline/pipeline.js';
import type { PipelineOptions, PipelineRaw, PipelineSide } from './pipeline.js';

async function run(o: PipelineOptions): Promise<PipelineRaw> {
  const r = await runPipeline({
    frameBytes: o.frameBytes,
    frames: o.frames,
    warmup: o.warmup,
    pool: o.slots,
    stages: 2,
    // As in fence-wake: let V8's background work from five threads loading dmabuf (compiling,
    // collecting) finish before the first frame, so that it does not take a core from the stages
    // inside the timed frames. The baselines' workers load next to nothing.
    settleMs: 300,
  });
  if (r.failures !== 0 || r.verified !== o.frames + o.warmup) {
    throw new Error(`dmabuf pipeline: ${r.failures} frames failed verification`);
  }
  return { latencies: r.latencies, elapsedNs: r.elapsedNs, frames: r.frames };
}

export const dmabuf: PipelineSide = { name: 'dmabuf', run };
