// nearswap on the WebGPU kernel (mergekit nearswap.py): one element-wise pass over base and the other model.

import type { MergeOp, SourceRef } from '../kernel.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { sourceWindow, window, type GpuPasses } from './passes.ts';
import { nearswapShader } from './wgsl/nearswap.ts';

export async function nearswap(
  kernel: GpuPasses,
  op: Extract<MergeOp, { kind: 'nearswap' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const base = await get(op.base);
  const other = await get(op.other);
  const plan = kernel.plan(n);
  const paramBuf = kernel.uniformData('nearswap.params', new Float32Array([op.t, 0, 0, 0]));
  const out = kernel.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const pipeline = kernel.gpu.pipeline(nearswapShader(base.format, other.format));
  const enc = kernel.gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (const [c, chunk] of plan.chunks.entries()) {
    kernel.dispatch(
      pass,
      pipeline,
      [
        kernel.chunkEntry(0, plan, c),
        { binding: 1, resource: { buffer: paramBuf } },
        sourceWindow(2, base, chunk),
        sourceWindow(3, other, chunk),
        window(4, out, chunk),
      ],
      Math.ceil(chunk.count / 256),
    );
  }
  pass.end();
  return kernel.readOutput(enc, out, n);
}
