// What a family's passes (linear.ts, slerp.ts, model-stock.ts, task-arithmetic.ts) use of the WebGPU kernel:
// the device, the chunking of a tensor to the storage-binding limit, reused scratch and uniform buffers,
// dispatch, reductions and readback. GpuKernel (gpu-kernel.ts) provides it; the families hold the arithmetic.

import type { TensorJob } from '../kernel.ts';
import type { GpuDevice } from './device.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { offsetBytes, windowBytes } from './wgsl/source.ts';

export interface Chunk {
  readonly offset: number;
  readonly count: number;
}

export interface ChunkPlan {
  readonly chunks: readonly Chunk[];
  /** One Chunk uniform per chunk, CHUNK_UNIFORM_STRIDE bytes apart. */
  readonly uniform: GPUBuffer;
}

export interface GpuPasses {
  readonly gpu: GpuDevice;
  /** The chunks of an n-element tensor and their uniforms (cached per n). */
  plan(n: number): ChunkPlan;
  chunkEntry(binding: number, plan: ChunkPlan, index: number): GPUBindGroupEntry;
  /** A device buffer reused across jobs (jobs run one at a time), grown when too small. */
  scratch(name: string, bytes: number, usage: GPUBufferUsageFlags): GPUBuffer;
  /** A uniform buffer holding `data` (written before the next submit). */
  uniformData(name: string, data: ArrayBufferView): GPUBuffer;
  dispatch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    entries: GPUBindGroupEntry[],
    groups: number,
  ): void;
  /** K sums over the tensor of expressions of x0..x(m−1) (bound at 2..), added in float64 on the host. */
  sums(n: number, xs: readonly DeviceTensor[], prelude: string, terms: readonly string[]): Promise<number[]>;
  sumsWith(
    enc: GPUCommandEncoder,
    n: number,
    code: string,
    k: number,
    extra: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
  ): Promise<number[]>;
  /** The job's final readback, or (mergeTensorOnDevice) a submit and a wait for the device to finish. */
  readOutput(enc: GPUCommandEncoder, out: GPUBuffer, n: number): Promise<Float32Array>;
  readFloats(enc: GPUCommandEncoder, source: GPUBuffer, count: number): Promise<Float32Array>;
  /** Refuses jobs that need more storage bindings than the device allows in one shader. */
  checkBindings(job: TensorJob, storageBindings: number): void;
}

/** A chunk's window of a source tensor in its storage format (offsets are multiples of BLOCK_ELEMENTS elements). */
export function sourceWindow(
  binding: number,
  t: Pick<DeviceTensor, 'buffer' | 'format'>,
  chunk: Chunk,
): GPUBindGroupEntry {
  return {
    binding,
    resource: {
      buffer: t.buffer,
      offset: offsetBytes(t.format, chunk.offset),
      size: windowBytes(t.format, chunk.count),
    },
  };
}

/** A chunk's window of a whole-tensor float32 buffer (offsets are multiples of BLOCK_ELEMENTS·4 bytes). */
export function window(binding: number, buffer: GPUBuffer, chunk: Chunk): GPUBindGroupEntry {
  return { binding, resource: { buffer, offset: chunk.offset * 4, size: chunk.count * 4 } };
}

/** Σ fround(wᵢ) accumulated in float32, in order (torch's sum of the float32 weights). */
export function float32Sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s = Math.fround(s + Math.fround(v));
  return s;
}
