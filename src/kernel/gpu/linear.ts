// linear and passthrough on the WebGPU kernel (mergekit linear.py): one weighted-sum pass, also the last pass
// of slerp and model_stock (linearCombination).

import type { MergeOp, SourceRef, TensorJob } from '../kernel.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { float32Sum, sourceWindow, window, type GpuPasses } from './passes.ts';
import { linearCombinationShader } from './wgsl/linear-combination.ts';

export async function weightedSum(
  kernel: GpuPasses,
  job: TensorJob,
  op: Extract<MergeOp, { kind: 'weighted_sum' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const xs: DeviceTensor[] = [];
  for (const input of op.inputs) xs.push(await get(input.ref));
  kernel.checkBindings(job, xs.length + 1);
  // (Σ wᵢxᵢ) / Σ wᵢ with the plain float32 sum of the weights as divisor (no guard), or 1 without normalize.
  const divisor = op.normalize ? float32Sum(op.inputs.map((i) => i.weight)) : 1;
  return linearCombination(
    kernel,
    n,
    xs,
    op.inputs.map((i) => i.weight),
    { divisor },
  );
}

/** out = ((Σ cᵢ·xᵢ) / divisor) · scale + baseCoef · base, then read back. */
export async function linearCombination(
  kernel: GpuPasses,
  n: number,
  xs: readonly DeviceTensor[],
  coef: readonly number[],
  post: { divisor: number; scale?: number; base?: DeviceTensor; baseCoef?: number },
): Promise<Float32Array> {
  const plan = kernel.plan(n);
  const params = new Float32Array(4 + 4 * xs.length);
  params[0] = post.divisor;
  params[1] = post.scale ?? 1;
  params[2] = post.baseCoef ?? 0;
  coef.forEach((c, m) => (params[4 + 4 * m] = c));
  const paramBuf = kernel.uniformData('lc.params', params);
  const out = kernel.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const withBase = post.base !== undefined;
  const pipeline = kernel.gpu.pipeline(
    linearCombinationShader(
      xs.map((x) => x.format),
      post.base?.format,
    ),
  );
  const enc = kernel.gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (const [c, chunk] of plan.chunks.entries()) {
    const entries: GPUBindGroupEntry[] = [
      kernel.chunkEntry(0, plan, c),
      { binding: 1, resource: { buffer: paramBuf } },
      ...xs.map((x, m) => sourceWindow(2 + m, x, chunk)),
      ...(post.base !== undefined ? [sourceWindow(2 + xs.length, post.base, chunk)] : []),
      window(2 + xs.length + (withBase ? 1 : 0), out, chunk),
    ];
    kernel.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / 256));
  }
  pass.end();
  return kernel.readOutput(enc, out, n);
}
