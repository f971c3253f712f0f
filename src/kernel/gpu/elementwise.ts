// Runs a mapShader (wgsl/map.ts) over a whole tensor, chunk by chunk, and reads the result back: the last pass
// of the methods whose per-element formula is their own (multislerp, karcher, per-vector nuslerp).

import { window, type Chunk, type GpuPasses } from './passes.ts';

/** out = the shader's body per element; `extra` gives bindings 2.. for each chunk. */
export async function elementwise(
  kernel: GpuPasses,
  n: number,
  code: string,
  extra: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
): Promise<Float32Array> {
  const plan = kernel.plan(n);
  const out = kernel.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const pipeline = kernel.gpu.pipeline(code);
  const enc = kernel.gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (const [c, chunk] of plan.chunks.entries()) {
    const entries: GPUBindGroupEntry[] = [
      kernel.chunkEntry(0, plan, c),
      window(1, out, chunk),
      ...extra.map((e) => e(chunk)),
    ];
    kernel.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / 256));
  }
  pass.end();
  return kernel.readOutput(enc, out, n);
}
