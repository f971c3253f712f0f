// The WebGPU merge kernel: runs each TensorJob as compute passes over resident sources (ResidentCache),
// chunked to the device's storage-binding limit, and reads the merged tensor back as a Float32Array.
// It owns the orchestration and the shared plumbing (passes.ts GpuPasses) only; each method family's passes are
// in their own file (linear.ts, slerp.ts, model-stock.ts, task-arithmetic.ts, nearswap.ts, nuslerp.ts,
// nuslerp-vectors.ts, multislerp.ts, karcher.ts, sce.ts), the shaders in wgsl/*.ts, the device in device.ts.

import { EvomergeError, invariant } from '../../errors.ts';
import type { MergeKernel, MergeOp, SourceRef, TensorJob, TensorReader } from '../kernel.ts';
import { dispatchGrid, GpuDevice, type OpenDeviceOptions } from './device.ts';
import { weightedSum } from './linear.ts';
import { karcher } from './karcher.ts';
import { modelStock } from './model-stock.ts';
import { multislerp } from './multislerp.ts';
import { sourceWindow, type Chunk, type ChunkPlan, type GpuPasses } from './passes.ts';
import { ResidentCache, type DeviceTensor } from './resident-cache.ts';
import { nearswap } from './nearswap.ts';
import { nuslerpFlat } from './nuslerp.ts';
import { nuslerpPerVector } from './nuslerp-vectors.ts';
import { sce } from './sce.ts';
import { arceeFusionGpu, fusionFits } from './arcee-fusion.ts';
import { slerp } from './slerp.ts';
import { taskArithmetic } from './task-arithmetic.ts';
import { runNewerOp, type NewerOp, type NewerOpKind } from '../cpu/newer-methods.ts';
import { BLOCK_ELEMENTS, CHUNK_UNIFORM_STRIDE, TILE_ELEMENTS } from './wgsl/chunk.ts';
import { reduceShader } from './wgsl/reduce.ts';
import { sourceBinding } from './wgsl/source.ts';

export interface GpuKernelOptions extends Partial<OpenDeviceOptions> {
  /** Elements per chunk (a multiple of 8192); default: as many as one storage binding holds. Tests use tiny ones. */
  readonly chunkElements?: number;
  /** Most bytes of sources kept resident; default unlimited (until the device refuses an allocation). */
  readonly residentBudgetBytes?: number;
  /** Where one-line notices go (sources not fitting); default stderr. */
  readonly log?: (line: string) => void;
  /** 'auto' (default): exactly-bf16 sources are kept as packed bf16, half the memory; 'f32': always float32. */
  readonly residentStorage?: 'auto' | 'f32';
}

/**
 * A MergeKernel on a WebGPU device. Jobs run one at a time, in call order.
 * @example const k = await GpuKernel.create({ allowSoftware: true }); const out = await k.mergeTensor(job, read);
 */
export class GpuKernel implements MergeKernel, GpuPasses {
  readonly device: string;
  readonly cache: ResidentCache;
  private readonly chunkElements: number;
  private readonly plans = new Map<number, ChunkPlan>();
  private readonly scratchBuffers = new Map<string, GPUBuffer>();
  private tail: Promise<unknown> = Promise.resolve();
  private keepOutputOnDevice = false;
  private closed = false;
  private readonly log: (line: string) => void;
  private readonly reportedHostOps = new Set<string>();

  private constructor(
    readonly gpu: GpuDevice,
    options: GpuKernelOptions,
  ) {
    this.device = `gpu: ${gpu.adapter.text}`;
    const maxChunk = Math.floor(gpu.maxBindingElements / BLOCK_ELEMENTS) * BLOCK_ELEMENTS;
    const wanted = options.chunkElements ?? maxChunk;
    if (!(Number.isInteger(wanted) && wanted > 0 && wanted % BLOCK_ELEMENTS === 0)) {
      throw new EvomergeError(
        'gpu.bad_option',
        `chunkElements must be a positive multiple of ${BLOCK_ELEMENTS}, got ${wanted}`,
        {
          field: 'chunkElements',
        },
      );
    }
    this.chunkElements = Math.min(wanted, maxChunk);
    this.log = options.log ?? ((line) => process.stderr.write(line + '\n'));
    this.cache = new ResidentCache(gpu, {
      budgetBytes: options.residentBudgetBytes ?? Infinity,
      storage: options.residentStorage ?? 'auto',
      log: this.log,
    });
  }

  /** Opens the device (gpu.no_adapter if none) and returns a kernel on it. */
  static async create(options: GpuKernelOptions = {}): Promise<GpuKernel> {
    const gpu = await GpuDevice.open({
      allowSoftware: options.allowSoftware ?? false,
      hideSoftwareDrivers: options.hideSoftwareDrivers ?? false,
    });
    try {
      return new GpuKernel(gpu, options);
    } catch (err) {
      gpu.destroy();
      throw err;
    }
  }

  mergeTensor(job: TensorJob, read: TensorReader): Promise<Float32Array> {
    const run = this.tail.then(() => this.run(job, read));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs a job but leaves the merged tensor on the device (no copy back): for benchmarks that separate the
   * device's arithmetic from the transfer to the host. Resolves when the device has finished.
   */
  mergeTensorOnDevice(job: TensorJob, read: TensorReader): Promise<void> {
    const run = this.tail.then(async () => {
      this.keepOutputOnDevice = true;
      try {
        await this.run(job, read);
      } finally {
        this.keepOutputOnDevice = false;
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    if (!this.gpu.lost) {
      this.cache.clear();
      for (const b of this.scratchBuffers.values()) b.destroy();
      for (const p of this.plans.values()) p.uniform.destroy();
    }
    this.scratchBuffers.clear();
    this.plans.clear();
    if (!this.gpu.lost) this.gpu.destroy();
  }

  /**
   * Runs a job; when the device runs out of memory with sources resident, releases some of them (then all)
   * and retries, so residency never costs a job. A third failure is gpu.out_of_memory for the caller.
   */
  private async run(job: TensorJob, read: TensorReader): Promise<Float32Array> {
    invariant(!this.closed, 'GpuKernel used after close()');
    const n = job.shape.reduce((a, b) => a * b, 1);
    if (n === 0) return new Float32Array(0);
    // arcee_fusion's row pass binds blocks of whole rows: rows too long for one storage binding run on the host.
    if (job.op.kind === 'arcee_fusion' && !fusionFits(job.shape, this.plan(n)))
      return this.runOnHost(job, job.op, read, n, 'arcee_fusion: rows longer than a storage binding');
    if (onHost(job.op)) return this.runOnHost(job, job.op, read, n);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.runOnce(job, read, n);
      } catch (err) {
        const oom = err instanceof EvomergeError && err.code === 'gpu.out_of_memory';
        if (!oom || attempt >= 2 || this.gpu.lost || this.cache.bytes === 0) throw err;
        // Scratch buffers made in a failed scope may be invalid: start them afresh.
        for (const b of this.scratchBuffers.values()) b.destroy();
        this.scratchBuffers.clear();
        const jobBytes = n * 4 * (sourceCount(job.op) + 4);
        this.cache.evict(attempt === 0 ? 2 * jobBytes : Infinity, `out of device memory merging tensor "${job.name}"`);
      }
    }
  }

  /**
   * STOPGAP: the ops in HOST_OPS have no WGSL passes yet; they run on the host through the CPU kernel's code
   * (same bits as CpuKernel), reported once per op kind through the log. Not GPU support.
   */
  private runOnHost(job: TensorJob, op: NewerOp, read: TensorReader, n: number, what?: string): Float32Array {
    const key = what ?? op.kind;
    if (!this.reportedHostOps.has(key)) {
      this.reportedHostOps.add(key);
      this.log(
        what === undefined
          ? `gpu: ${op.kind} has no GPU passes yet; its tensors are merged on the CPU`
          : `gpu: ${what} have no GPU passes; they are merged on the CPU`,
      );
    }
    const out = runNewerOp(op, job.shape, (ref) => read(ref), new Float32Array(n), job.name);
    if (this.keepOutputOnDevice) return new Float32Array(0);
    return out;
  }

  private async runOnce(job: TensorJob, read: TensorReader, n: number): Promise<Float32Array> {
    return this.gpu.scoped(`merging tensor "${job.name}"`, async () => {
      const acquired: DeviceTensor[] = [];
      const get = async (ref: SourceRef): Promise<DeviceTensor> => {
        const t = await this.cache.acquire(ref, n, read);
        acquired.push(t);
        return t;
      };
      try {
        return await this.runOp(job, job.op, n, get);
      } finally {
        for (const t of acquired) this.cache.release(t);
      }
    });
  }

  private runOp(
    job: TensorJob,
    op: MergeOp,
    n: number,
    get: (r: SourceRef) => Promise<DeviceTensor>,
  ): Promise<Float32Array> {
    switch (op.kind) {
      case 'weighted_sum':
        return weightedSum(this, job, op, n, get);
      case 'task_arithmetic':
        return taskArithmetic(this, job, op, n, get);
      case 'slerp':
        return slerp(this, op, n, get);
      case 'model_stock':
        return modelStock(this, job, op, n, get);
      case 'nearswap':
        return nearswap(this, op, n, get);
      case 'nuslerp':
        return op.flatten ? nuslerpFlat(this, op, n, get) : nuslerpPerVector(this, op, job.shape, n, get);
      case 'multislerp':
        return multislerp(this, job, op, n, get);
      case 'karcher':
        return karcher(this, job, op, n, get);
      case 'sce':
        return sce(this, job, op, n, get);
      case 'arcee_fusion':
        return arceeFusionGpu(this, op, job.shape, n, get);
      default:
        throw new EvomergeError('gpu.unsupported', `no GPU passes for ${(op as MergeOp).kind}`, {
          field: `tensor "${job.name}"`,
        });
    }
  }

  // ---- shared plumbing (GpuPasses, for the families' passes) ----

  /** K sums over the tensor of expressions of x0..x(m−1) (bound at 2..), added in float64 on the host. */
  async sums(n: number, xs: readonly DeviceTensor[], prelude: string, terms: readonly string[]): Promise<number[]> {
    const decls = xs.map((x, m) => sourceBinding(2 + m, `x${m}`, x.format)).join('\n');
    const code = reduceShader({ decls, prelude, terms });
    const enc = this.gpu.device.createCommandEncoder();
    return this.sumsWith(
      enc,
      n,
      code,
      terms.length,
      xs.map((x, m) => (chunk: Chunk) => sourceWindow(2 + m, x, chunk)),
    );
  }

  async sumsWith(
    enc: GPUCommandEncoder,
    n: number,
    code: string,
    k: number,
    extra: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
  ): Promise<number[]> {
    const plan = this.plan(n);
    const tiles = Math.ceil(n / TILE_ELEMENTS);
    const partials = this.scratch('reduce.partials', tiles * k * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const pipeline = this.gpu.pipeline(code);
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (const [c, chunk] of plan.chunks.entries()) {
      const entries: GPUBindGroupEntry[] = [
        this.chunkEntry(0, plan, c),
        { binding: 1, resource: { buffer: partials, size: tiles * k * 4 } },
        ...extra.map((e) => e(chunk)),
      ];
      this.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / TILE_ELEMENTS));
    }
    pass.end();
    const values = await this.readFloats(enc, partials, tiles * k);
    const sums = new Array<number>(k).fill(0);
    for (let t = 0; t < tiles; t++) for (let j = 0; j < k; j++) sums[j] += values[t * k + j];
    return sums;
  }

  dispatch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    entries: GPUBindGroupEntry[],
    groups: number,
  ): void {
    const group = this.gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    pass.setBindGroup(0, group);
    const [x, y] = dispatchGrid(groups, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    if (x > 0) pass.dispatchWorkgroups(x, y);
  }

  /** The job's final readback, or (mergeTensorOnDevice) a submit and a wait for the device to finish. */
  async readOutput(enc: GPUCommandEncoder, out: GPUBuffer, n: number): Promise<Float32Array> {
    if (!this.keepOutputOnDevice) return this.readFloats(enc, out, n);
    this.gpu.device.queue.submit([enc.finish()]);
    await this.gpu.device.queue.onSubmittedWorkDone();
    return new Float32Array(0);
  }

  async readFloats(enc: GPUCommandEncoder, source: GPUBuffer, count: number): Promise<Float32Array> {
    const bytes = count * 4;
    const staging = this.scratch('readback', bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const data = await this.gpu.readBack(
      enc,
      [{ source, sourceOffset: 0, targetOffset: 0, sizeBytes: bytes }],
      bytes,
      staging,
    );
    return new Float32Array(data);
  }

  plan(n: number): ChunkPlan {
    let plan = this.plans.get(n);
    if (plan === undefined) {
      const chunks: Chunk[] = [];
      for (let offset = 0; offset < n; offset += this.chunkElements)
        chunks.push({ offset, count: Math.min(this.chunkElements, n - offset) });
      const data = new Uint32Array((chunks.length * CHUNK_UNIFORM_STRIDE) / 4);
      chunks.forEach((c, i) => {
        data[(i * CHUNK_UNIFORM_STRIDE) / 4] = c.count;
        data[(i * CHUNK_UNIFORM_STRIDE) / 4 + 1] = c.offset;
      });
      const uniform = this.gpu.createBuffer(
        data.byteLength,
        GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        `chunks of ${n}`,
      );
      this.gpu.write(uniform, 0, data);
      plan = { chunks, uniform };
      this.plans.set(n, plan);
    }
    return plan;
  }

  chunkEntry(binding: number, plan: ChunkPlan, index: number): GPUBindGroupEntry {
    return { binding, resource: { buffer: plan.uniform, offset: index * CHUNK_UNIFORM_STRIDE, size: 16 } };
  }

  /** A device buffer reused across jobs (jobs run one at a time), grown when too small. */
  scratch(name: string, bytes: number, usage: GPUBufferUsageFlags): GPUBuffer {
    let b = this.scratchBuffers.get(name);
    if (b === undefined || b.size < bytes) {
      b?.destroy();
      b = this.gpu.createBuffer(bytes, usage, name);
      this.scratchBuffers.set(name, b);
    }
    return b;
  }

  /** A uniform buffer holding `data` (written before the next submit). */
  uniformData(name: string, data: ArrayBufferView): GPUBuffer {
    const b = this.scratch(name, data.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.gpu.write(b, 0, data);
    return b;
  }

  /** Refuses jobs that need more storage bindings than the device allows in one shader. */
  checkBindings(job: TensorJob, storageBindings: number): void {
    const limit = this.gpu.limits.maxStorageBuffersPerShaderStage;
    if (storageBindings > limit) {
      throw new EvomergeError(
        'gpu.unsupported',
        `needs ${storageBindings} storage buffers in one shader, the device allows ${limit}`,
        { field: `tensor "${job.name}"` },
      );
    }
  }
}

/**
 * STOPGAP: the ops GpuKernel computes on the host (CPU kernel code) because they have no WGSL passes yet: none
 * today. (arcee_fusion runs on the host only when its rows do not fit one storage binding: its row pass binds
 * blocks of whole rows; fusionFits.)
 */
export const HOST_OPS: ReadonlySet<NewerOpKind> = new Set<NewerOpKind>([]);

/** Whether GpuKernel computes this op on the host (HOST_OPS). */
export function onHost(op: MergeOp): op is NewerOp {
  return (HOST_OPS as ReadonlySet<string>).has(op.kind);
}

function sourceCount(op: MergeOp): number {
  switch (op.kind) {
    case 'slerp':
    case 'arcee_fusion':
    case 'nearswap':
      return 2;
    case 'nuslerp':
      return op.base === undefined ? 2 : 3;
    case 'weighted_sum':
    case 'multislerp':
      return op.inputs.length + ('base' in op && op.base !== undefined ? 1 : 0);
    case 'karcher':
      return op.inputs.length;
    default:
      return op.inputs.length + 1;
  }
}
