// The WebGPU merge kernel: runs each TensorJob as compute passes over resident sources (ResidentCache),
// chunked to the device's storage-binding limit, and reads the merged tensor back as a Float32Array.
// It owns the orchestration only; the arithmetic is in wgsl/*.ts, the device in device.ts.

import { EvomergeError, invariant } from '../../errors.ts';
import type { MergeKernel, MergeOp, SourceRef, TaskVectorInput, TensorJob, TensorReader } from '../kernel.ts';
import { keepThreshold } from '../rng.ts';
import { dispatchGrid, GpuDevice, type OpenDeviceOptions } from './device.ts';
import { ResidentCache, type DeviceTensor } from './resident-cache.ts';
import { BLOCK_ELEMENTS, CHUNK_UNIFORM_STRIDE, TILE_ELEMENTS } from './wgsl/chunk.ts';
import { dellaShader } from './wgsl/della.ts';
import { linearCombinationShader } from './wgsl/linear-combination.ts';
import { offsetBytes, sourceBinding, windowBytes } from './wgsl/source.ts';
import {
  histogramShader,
  maskShader,
  RADIX_BINS,
  RADIX_PASSES,
  SELECTION_STRIDE,
  selectDigitShader,
  tieCountShader,
  tieScanShader,
  type MaskRule,
} from './wgsl/radix-select-kth.ts';
import { reduceShader } from './wgsl/reduce.ts';
import {
  l1NormReduceParts,
  TA_HEADER_BYTES,
  TA_MODEL_BYTES,
  taskArithmeticShader,
  usesMaskBuffer,
  type TaskArithmeticShape,
} from './wgsl/task-arithmetic.ts';

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

interface Chunk {
  readonly offset: number;
  readonly count: number;
}

interface ChunkPlan {
  readonly chunks: readonly Chunk[];
  /** One Chunk uniform per chunk, CHUNK_UNIFORM_STRIDE bytes apart. */
  readonly uniform: GPUBuffer;
}

/** How a model's τ is turned into a keep mask on the device, and the selections it needs. */
interface MaskPlan {
  readonly model: number;
  readonly rule: MaskRule;
  /** k of selection 0 (magnitude: kept; breadcrumbs: n_top, dropped) and of selection 1 (breadcrumbs: n − n_bot, kept). */
  readonly top: number;
  readonly bottom: number;
  /** breadcrumbs with n_top = 0: mergekit's `indices[n_bot:-0]` is empty, the task vector is dropped. */
  readonly dropAll: boolean;
}

/**
 * A MergeKernel on a WebGPU device. Jobs run one at a time, in call order.
 * @example const k = await GpuKernel.create({ allowSoftware: true }); const out = await k.mergeTensor(job, read);
 */
export class GpuKernel implements MergeKernel {
  readonly device: string;
  readonly cache: ResidentCache;
  private readonly chunkElements: number;
  private readonly plans = new Map<number, ChunkPlan>();
  private readonly scratchBuffers = new Map<string, GPUBuffer>();
  private tail: Promise<unknown> = Promise.resolve();
  private keepOutputOnDevice = false;
  private closed = false;

  private constructor(
    readonly gpu: GpuDevice,
    options: GpuKernelOptions,
  ) {
    this.device = `gpu: ${gpu.adapter.text}`;
    const maxChunk = Math.floor(gpu.maxBindingElements / BLOCK_ELEMENTS) * BLOCK_ELEMENTS;
    const wanted = options.chunkElements ?? maxChunk;
    if (!(Number.isInteger(wanted) && wanted > 0 && wanted % BLOCK_ELEMENTS === 0)) {
      throw new EvomergeError('gpu.bad_option', `chunkElements must be a positive multiple of ${BLOCK_ELEMENTS}, got ${wanted}`, {
        field: 'chunkElements',
      });
    }
    this.chunkElements = Math.min(wanted, maxChunk);
    this.cache = new ResidentCache(gpu, {
      budgetBytes: options.residentBudgetBytes ?? Infinity,
      storage: options.residentStorage ?? 'auto',
      log: options.log ?? ((line) => process.stderr.write(line + '\n')),
    });
  }

  /** Opens the device (gpu.no_adapter if none) and returns a kernel on it. */
  static async create(options: GpuKernelOptions = {}): Promise<GpuKernel> {
    const gpu = await GpuDevice.open({ allowSoftware: options.allowSoftware ?? false });
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

  private runOp(job: TensorJob, op: MergeOp, n: number, get: (r: SourceRef) => Promise<DeviceTensor>): Promise<Float32Array> {
    switch (op.kind) {
      case 'weighted_sum':
        return this.weightedSum(job, op, n, get);
      case 'task_arithmetic':
        return this.taskArithmetic(job, op, n, get);
      case 'slerp':
        return this.slerp(op, n, get);
      case 'model_stock':
        return this.modelStock(job, op, n, get);
    }
  }

  // ---- linear / passthrough: mergekit linear.py ----

  private async weightedSum(
    job: TensorJob,
    op: Extract<MergeOp, { kind: 'weighted_sum' }>,
    n: number,
    get: (r: SourceRef) => Promise<DeviceTensor>,
  ): Promise<Float32Array> {
    const xs: DeviceTensor[] = [];
    for (const input of op.inputs) xs.push(await get(input.ref));
    this.checkBindings(job, xs.length + 1);
    // (Σ wᵢxᵢ) / Σ wᵢ with the plain float32 sum of the weights as divisor (no guard), or 1 without normalize.
    const divisor = op.normalize ? float32Sum(op.inputs.map((i) => i.weight)) : 1;
    return this.linearCombination(n, xs, op.inputs.map((i) => i.weight), { divisor });
  }

  /** out = ((Σ cᵢ·xᵢ) / divisor) · scale + baseCoef · base, then read back. */
  private async linearCombination(
    n: number,
    xs: readonly DeviceTensor[],
    coef: readonly number[],
    post: { divisor: number; scale?: number; base?: DeviceTensor; baseCoef?: number },
  ): Promise<Float32Array> {
    const plan = this.plan(n);
    const params = new Float32Array(4 + 4 * xs.length);
    params[0] = post.divisor;
    params[1] = post.scale ?? 1;
    params[2] = post.baseCoef ?? 0;
    coef.forEach((c, m) => (params[4 + 4 * m] = c));
    const paramBuf = this.uniformData('lc.params', params);
    const out = this.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const withBase = post.base !== undefined;
    const pipeline = this.gpu.pipeline(linearCombinationShader(xs.map((x) => x.format), post.base?.format));
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (const [c, chunk] of plan.chunks.entries()) {
      const entries: GPUBindGroupEntry[] = [
        this.chunkEntry(0, plan, c),
        { binding: 1, resource: { buffer: paramBuf } },
        ...xs.map((x, m) => sourceWindow(2 + m, x, chunk)),
        ...(post.base !== undefined ? [sourceWindow(2 + xs.length, post.base, chunk)] : []),
        window(2 + xs.length + (withBase ? 1 : 0), out, chunk),
      ];
      this.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / 256));
    }
    pass.end();
    return this.readOutput(enc, out, n);
  }

  // ---- slerp: mergekit slerp.py (whole tensor as one vector) ----

  private async slerp(
    op: Extract<MergeOp, { kind: 'slerp' }>,
    n: number,
    get: (r: SourceRef) => Promise<DeviceTensor>,
  ): Promise<Float32Array> {
    const a = await get(op.a);
    const b = await get(op.b);
    const [aa, bb, ab] = await this.sums(n, [a, b], 'let va = x0_at(i);\n      let vb = x1_at(i);', ['va * va', 'vb * vb', 'va * vb']);
    const t = op.t;
    // normalize(v, eps=1e-8) divides only when ‖v‖ > eps; dot of the normalised copies.
    const na = Math.sqrt(aa);
    const nb = Math.sqrt(bb);
    const dot = ab / (na > 1e-8 ? na : 1) / (nb > 1e-8 ? nb : 1);
    let c0: number;
    let c1: number;
    if (Math.abs(dot) > 0.9995) {
      c0 = 1 - t; // lerp of the original tensors
      c1 = t;
    } else {
      const theta0 = Math.acos(dot);
      const sinTheta0 = Math.sin(theta0);
      const thetaT = theta0 * t;
      c0 = Math.sin(theta0 - thetaT) / sinTheta0;
      c1 = Math.sin(thetaT) / sinTheta0;
    }
    return this.linearCombination(n, [a, b], [c0, c1], { divisor: 1 });
  }

  // ---- model_stock: mergekit model_stock.py (filter_wise false) ----

  private async modelStock(
    job: TensorJob,
    op: Extract<MergeOp, { kind: 'model_stock' }>,
    n: number,
    get: (r: SourceRef) => Promise<DeviceTensor>,
  ): Promise<Float32Array> {
    const base = await get(op.base);
    const xs: DeviceTensor[] = [];
    for (const r of op.inputs) xs.push(await get(r));
    const count = xs.length;
    this.checkBindings(job, count + 2);
    const prelude = ['let b = x0_at(i);', ...xs.map((_, m) => `let o${m} = x${m + 1}_at(i) - b;`)].join('\n      ');
    const pairs: [number, number][] = [];
    for (let i = 0; i < count; i++) for (let j = i; j < count; j++) pairs.push([i, j]);
    const sums = await this.sums(n, [base, ...xs], prelude, pairs.map(([i, j]) => `o${i} * o${j}`));
    const dotOf = (i: number, j: number) => sums[pairs.findIndex(([p, q]) => p === Math.min(i, j) && q === Math.max(i, j))];
    // The scalar path in float32 like torch (and CpuKernel modelStockT): cos of each pair i<j is
    // (oᵢ·oⱼ) / max(‖oᵢ‖‖oⱼ‖, 1e-6) clamped to [−1, 1]; t = N·cos / (1 + (N−1)·cos) of their mean.
    const f = Math.fround;
    let cosSum = 0;
    let pairCount = 0;
    for (let i = 0; i < count; i++) {
      for (let j = i + 1; j < count; j++) {
        const normProduct = f(f(Math.sqrt(dotOf(i, i))) * f(Math.sqrt(dotOf(j, j))));
        const cos = f(f(dotOf(i, j)) / Math.max(normProduct, f(1e-6)));
        cosSum += Math.min(1, Math.max(-1, cos));
        pairCount++;
      }
    }
    const cos = f(cosSum / pairCount);
    const t = f(f(count * cos) / f(1 + f((count - 1) * cos)));
    // w_h = t·(Σwᵢ / N) + (1 − t)·w₀
    return this.linearCombination(n, xs, xs.map(() => 1), { divisor: count, scale: t, base, baseCoef: f(1 - t) });
  }

  // ---- task_arithmetic, ties, dare_*, breadcrumbs*, della*: generalized_task_arithmetic.py ----

  private async taskArithmetic(
    job: TensorJob,
    op: Extract<MergeOp, { kind: 'task_arithmetic' }>,
    n: number,
    get: (r: SourceRef) => Promise<DeviceTensor>,
  ): Promise<Float32Array> {
    const base = await get(op.base);
    const xs: DeviceTensor[] = [];
    for (const input of op.inputs) xs.push(await get(input.ref));
    const count = xs.length;
    if (count === 0) return this.linearCombination(n, [base], [1], { divisor: 1 });
    this.checkBindings(job, count + 3);
    const shape: TaskArithmeticShape = {
      models: count,
      sparsification: op.sparsification,
      consensus: op.consensus === 'sum',
      normalize: op.normalize,
      baseFormat: base.format,
      // DELLA's combine reads the float32 trim(τ) values its pass wrote, not the sources.
      formats: xs.map((x) => (op.sparsification === 'della_magprune' ? 'f32' : x.format)),
    };
    const plan = this.plan(n);
    const maskWords = Math.ceil(Math.ceil(n / 32) / 64) * 64;
    const masked = usesMaskBuffer(op.sparsification);
    const maskPlans = masked ? op.inputs.map((input, m) => maskPlanFor(op.sparsification, input, m, n)) : [];
    maskPlans.forEach((p, m) => {
      if (p?.top === 0 && p.rule.kind === 'top') {
        const d = op.inputs[m].density;
        throw new EvomergeError(
          'merge.density_zero',
          `density ${d} keeps int(${d}·${n}) = 0 elements of model ${op.inputs[m].ref.model}; mergekit refuses this (assert k > 0): raise density for this tensor`,
          { field: `tensor "${job.name}"` },
        );
      }
    });
    const masks = masked ? this.scratch('ta.masks', count * maskWords * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST) : undefined;
    if (masks !== undefined && count * maskWords > this.gpu.maxBindingElements) {
      throw new EvomergeError('gpu.unsupported', `keep masks of ${count} models exceed one storage binding`, { field: `tensor "${job.name}"` });
    }

    // Parameters: scale starts at 1 and is filled after the L1 reduction when rescaling.
    const params = new ArrayBuffer(TA_HEADER_BYTES + TA_MODEL_BYTES * count);
    const f32 = new Float32Array(params);
    const u32 = new Uint32Array(params);
    f32[0] = op.lambda;
    // Without consensus the divisor is the scalar Σwᵢ, replaced by 1 when |Σwᵢ| < 1e-8.
    const weightSum = float32Sum(op.inputs.map((i) => i.weight));
    f32[1] = Math.abs(weightSum) < 1e-8 ? 1 : weightSum;
    u32[2] = (op.rng.seedLo ^ op.rng.tensorHash) >>> 0;
    u32[3] = op.rng.seedHi >>> 0;
    const sparsified: boolean[] = [];
    op.inputs.forEach((input, m) => {
      const o = (TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4;
      f32[o] = input.weight;
      f32[o + 1] = 1;
      u32[o + 2] = keepThreshold(input.density);
      const isMasked = masked && maskPlans[m] !== undefined;
      u32[o + 3] = isMasked ? 1 : 0;
      u32[o + 4] = input.modelIndex >>> 0;
      u32[o + 5] = m * maskWords;
      f32[o + 6] = 1;
      // mergekit's sparsifiers return τ unchanged (and unrescaled) when density ≥ 1.
      sparsified.push(op.sparsification !== 'none' && input.density < 1);
    });

    let enc = this.gpu.device.createCommandEncoder();
    if (masked && masks !== undefined) {
      this.encodeMasks(enc, plan, n, base, xs, maskPlans, masks, maskWords);
    }
    // DELLA: trim(τ) of every model is computed by its own pass; the combine reads those values.
    let sources: Pick<DeviceTensor, 'buffer' | 'format'>[] = xs;
    let sourceOffset = (_m: number) => 0;
    if (op.sparsification === 'della_magprune') {
      const della = await this.della(job, op, n, base, xs, sparsified);
      sources = xs.map(() => ({ buffer: della.vals, format: 'f32' }));
      sourceOffset = (m) => m * della.stride;
      op.inputs.forEach((_, m) => {
        if (della.scales[m] !== 1) f32[(TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4 + 1] = della.scales[m];
      });
    }

    const needL1 = op.rescale === 'l1' && sparsified.some((s) => s) && op.sparsification !== 'della_magprune';
    if (needL1) {
      const paramBuf = this.uniformData('ta.params', new Uint8Array(params));
      const parts = l1NormReduceParts(shape);
      const extra: ((chunk: Chunk) => GPUBindGroupEntry)[] = [
        () => ({ binding: 2, resource: { buffer: paramBuf } }),
        ...(masks !== undefined ? [() => ({ binding: 3, resource: { buffer: masks, size: count * maskWords * 4 } })] : []),
        (chunk) => sourceWindow(4, base, chunk),
        ...xs.map((x, m) => (chunk: Chunk) => sourceWindow(5 + m, x, chunk)),
      ];
      const sums = await this.sumsWith(enc, n, reduceShader(parts), parts.terms.length, extra);
      enc = this.gpu.device.createCommandEncoder();
      op.inputs.forEach((_, m) => {
        if (!sparsified[m]) return;
        // rescaled_masked_tensor: masked · (‖τ‖₁ / ‖masked‖₁), skipped if either norm is below 1e-7.
        const before = Math.fround(sums[2 * m]);
        const after = Math.fround(sums[2 * m + 1]);
        if (!(before < 1e-7 || after < 1e-7)) f32[(TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4 + 1] = Math.fround(before / after);
      });
    } else if (op.rescale === 'density' && op.sparsification !== 'della_magprune') {
      // The DARE paper's rule: kept entries divided by the keep probability.
      op.inputs.forEach((input, m) => {
        if (sparsified[m]) f32[(TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4 + 6] = input.density;
      });
    }

    const paramBuf = this.uniformData('ta.params2', new Uint8Array(params));
    const out = this.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const pipeline = this.gpu.pipeline(taskArithmeticShader(shape));
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (const [c, chunk] of plan.chunks.entries()) {
      const entries: GPUBindGroupEntry[] = [
        this.chunkEntry(0, plan, c),
        { binding: 1, resource: { buffer: paramBuf } },
        sourceWindow(3, base, chunk),
        ...sources.map((t, m) => sourceWindow(4 + m, t, { offset: sourceOffset(m) + chunk.offset, count: chunk.count })),
        window(4 + count, out, chunk),
      ];
      if (masks !== undefined) entries.push({ binding: 2, resource: { buffer: masks, size: count * maskWords * 4 } });
      this.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / 256));
    }
    pass.end();
    return this.readOutput(enc, out, n);
  }

  /**
   * DELLA (CpuKernel della-magprune.ts): validates like the CPU, then per model a rank/draw pass that writes
   * trim(τ) into `vals` (model m at element m·stride) and the L1 partials; returns the L1 factors.
   */
  private async della(
    job: TensorJob,
    op: Extract<MergeOp, { kind: 'task_arithmetic' }>,
    n: number,
    base: DeviceTensor,
    xs: readonly DeviceTensor[],
    sparsified: readonly boolean[],
  ): Promise<{ vals: GPUBuffer; stride: number; scales: number[] }> {
    const shape = job.shape;
    const d1 = shape.length < 2 ? n : shape[1];
    const d0 = shape.length < 2 ? 1 : shape[0];
    const inner = shape.length < 2 ? 1 : n / (d0 * d1);
    op.inputs.forEach((input) => {
      const { density, epsilon } = input;
      if (density >= 1 || !(density > 0)) return;
      if (density + epsilon >= 1 || density - epsilon <= 0) {
        throw new EvomergeError(
          'merge.della_epsilon',
          `density ${density} ± epsilon ${epsilon} leaves (0, 1) for model ${input.ref.model}; choose epsilon < min(density, 1 − density)`,
          { field: `tensor "${job.name}"` },
        );
      }
      if (d1 < 2) {
        throw new EvomergeError(
          'merge.della_single_column',
          `della ranks magnitudes along dim 1, which has size ${d1} for shape [${shape.join(', ')}]; mergekit fails here too`,
          { field: `tensor "${job.name}"` },
        );
      }
    });
    if (n > this.gpu.maxBindingElements) {
      throw new EvomergeError('gpu.unsupported', `della_magprune ranks whole rows; a tensor of ${n} elements exceeds one storage binding`, {
        field: `tensor "${job.name}"`,
      });
    }
    const count = xs.length;
    const stride = Math.ceil(n / 64) * 64;
    const rowPad = Math.ceil(d1 / 64) * 64;
    const perElement = op.rescale === 'density';
    const rows = d0 * inner;
    const tilesPerRow = Math.ceil(d1 / 256);
    const groups = rows * tilesPerRow;
    const vals = this.scratch('della.vals', count * stride * 4, GPUBufferUsage.STORAGE);
    const thresholds = new Uint32Array(count * rowPad);
    const probs = new Float32Array(count * rowPad);
    const f = Math.fround;
    op.inputs.forEach((input, m) => {
      const { density, epsilon } = input;
      if (density >= 1) thresholds.fill(1 << 24, m * rowPad, (m + 1) * rowPad); // τ unchanged
      else if (!(density > 0)) return; // τ dropped: thresholds stay 0
      else {
        // p = (density − ε) + rank_norm·2·ε with rank_norm = pos/(d1 − 1), float32 like torch and CpuKernel.
        const low = f(density - epsilon);
        const eps32 = f(epsilon);
        const span = f(d1 - 1);
        for (let pos = 0; pos < d1; pos++) {
          const p = f(f(f(f(pos / span) * 2) * eps32) + low);
          thresholds[m * rowPad + pos] = keepThreshold(p);
          probs[m * rowPad + pos] = p;
        }
      }
    });
    const thrBuf = this.scratch('della.thresholds', thresholds.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    this.gpu.write(thrBuf, 0, thresholds);
    const probBuf = this.scratch('della.probs', probs.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    this.gpu.write(probBuf, 0, probs);
    const params = new Uint32Array((count * 256) / 4);
    op.inputs.forEach((input, m) => {
      params.set(
        [rows, d1, inner, tilesPerRow, (op.rng.seedLo ^ op.rng.tensorHash) >>> 0, op.rng.seedHi >>> 0, input.modelIndex >>> 0, 0],
        (m * 256) / 4,
      );
    });
    const paramBuf = this.uniformData('della.params', params);
    const groupsPad = Math.ceil(groups / 32) * 32; // 256-byte aligned windows of (Σ|τ|, Σ|kept τ|) pairs
    const partials = this.scratch('della.partials', count * groupsPad * 2 * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    op.inputs.forEach((_, m) => {
      const pipeline = this.gpu.pipeline(dellaShader(perElement, base.format, xs[m].format));
      pass.setPipeline(pipeline);
      const entries: GPUBindGroupEntry[] = [
        { binding: 0, resource: { buffer: paramBuf, offset: m * 256, size: 32 } },
        { binding: 1, resource: { buffer: thrBuf, offset: m * rowPad * 4, size: rowPad * 4 } },
        sourceWindow(3, base, { offset: 0, count: n }),
        sourceWindow(4, xs[m], { offset: 0, count: n }),
        { binding: 5, resource: { buffer: vals, offset: m * stride * 4, size: n * 4 } },
        { binding: 6, resource: { buffer: partials, offset: m * groupsPad * 2 * 4, size: groups * 2 * 4 } },
      ];
      if (perElement) entries.push({ binding: 2, resource: { buffer: probBuf, offset: m * rowPad * 4, size: rowPad * 4 } });
      this.dispatch(pass, pipeline, entries, groups);
    });
    pass.end();
    const scales = op.inputs.map(() => 1);
    if (op.rescale === 'l1' && sparsified.some((s) => s)) {
      const values = await this.readFloats(enc, partials, count * groupsPad * 2);
      op.inputs.forEach((input, m) => {
        if (!sparsified[m] || !(input.density > 0)) return;
        let before = 0;
        let after = 0;
        for (let g = 0; g < groups; g++) {
          before += values[(m * groupsPad + g) * 2];
          after += values[(m * groupsPad + g) * 2 + 1];
        }
        const b32 = f(before);
        const a32 = f(after);
        if (!(b32 < 1e-7 || a32 < 1e-7)) scales[m] = f(b32 / a32);
      });
    } else {
      this.gpu.device.queue.submit([enc.finish()]);
    }
    return { vals, stride, scales };
  }

  /** Radix selections, tie ranks and bit masks for every model that is trimmed by magnitude. */
  private encodeMasks(
    enc: GPUCommandEncoder,
    plan: ChunkPlan,
    n: number,
    base: DeviceTensor,
    xs: readonly DeviceTensor[],
    maskPlans: readonly (MaskPlan | undefined)[],
    masks: GPUBuffer,
    maskWords: number,
  ): void {
    const blocks = Math.ceil(n / BLOCK_ELEMENTS);
    const blocksPad = Math.ceil((blocks + 1) / 64) * 64; // + the total after the per-block prefixes
    const slots = xs.length * 2;
    const sel = this.scratch('sel.state', slots * SELECTION_STRIDE, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    const hist = this.scratch('sel.hist', slots * RADIX_BINS * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    const counts = this.scratch('sel.counts', slots * blocksPad * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    const scanParams = this.uniformData('sel.scan', new Uint32Array([blocks, 0, 0, 0]));
    const init = new Uint32Array((slots * SELECTION_STRIDE) / 4);
    for (const p of maskPlans) {
      if (p === undefined) continue;
      init[((2 * p.model) * SELECTION_STRIDE) / 4 + 2] = p.top;
      init[((2 * p.model + 1) * SELECTION_STRIDE) / 4 + 2] = p.bottom;
    }
    this.gpu.write(sel, 0, init);
    enc.clearBuffer(hist, 0, slots * RADIX_BINS * 4);
    enc.clearBuffer(counts, 0, slots * blocksPad * 4);
    const selWin = (binding: number, slot: number): GPUBindGroupEntry => ({
      binding,
      resource: { buffer: sel, offset: slot * SELECTION_STRIDE, size: 32 },
    });
    const histWin = (binding: number, slot: number): GPUBindGroupEntry => ({
      binding,
      resource: { buffer: hist, offset: slot * RADIX_BINS * 4, size: RADIX_BINS * 4 },
    });
    const countWin = (binding: number, slot: number): GPUBindGroupEntry => ({
      binding,
      resource: { buffer: counts, offset: slot * blocksPad * 4, size: blocksPad * 4 },
    });

    // breadcrumbs with n_top = 0 keep nothing: an all-zero mask, no selection.
    for (const p of maskPlans) if (p?.dropAll) enc.clearBuffer(masks, p.model * maskWords * 4, maskWords * 4);
    const pass = enc.beginComputePass();
    for (const p of maskPlans) {
      if (p === undefined || p.dropAll) continue;
      const x = xs[p.model];
      const formats = { base: base.format, x: x.format };
      const maskWin: GPUBindGroupEntry = {
        binding: 7,
        resource: { buffer: masks, offset: p.model * maskWords * 4, size: maskWords * 4 },
      };
      const selections: [number, boolean][] = p.rule.kind === 'top' ? [[2 * p.model, true]] : [[2 * p.model, true], [2 * p.model + 1, true]];
      for (const [slot, descending] of selections) {
        for (let k = 0; k < RADIX_PASSES.length; k++) {
          const hp = this.gpu.pipeline(histogramShader(k, formats));
          pass.setPipeline(hp);
          for (const [c, chunk] of plan.chunks.entries()) {
            this.dispatch(
              pass,
              hp,
              [this.chunkEntry(0, plan, c), selWin(1, slot), histWin(2, slot), sourceWindow(3, base, chunk), sourceWindow(4, x, chunk)],
              Math.ceil(chunk.count / TILE_ELEMENTS),
            );
          }
          const sp = this.gpu.pipeline(selectDigitShader(k, descending));
          pass.setPipeline(sp);
          this.dispatch(pass, sp, [selWin(0, slot), histWin(1, slot)], 1);
        }
        const tc = this.gpu.pipeline(tieCountShader(formats));
        pass.setPipeline(tc);
        for (const [c, chunk] of plan.chunks.entries()) {
          this.dispatch(
            pass,
            tc,
            [this.chunkEntry(0, plan, c), selWin(1, slot), countWin(2, slot), sourceWindow(3, base, chunk), sourceWindow(4, x, chunk)],
            Math.ceil(chunk.count / BLOCK_ELEMENTS),
          );
        }
        const ts = this.gpu.pipeline(tieScanShader());
        pass.setPipeline(ts);
        this.dispatch(pass, ts, [{ binding: 0, resource: { buffer: scanParams } }, selWin(1, slot), countWin(2, slot)], 1);
      }
      const mp = this.gpu.pipeline(maskShader(p.rule, formats));
      pass.setPipeline(mp);
      const bottomSlot = p.rule.kind === 'top' ? 2 * p.model : 2 * p.model + 1;
      for (const [c, chunk] of plan.chunks.entries()) {
        this.dispatch(
          pass,
          mp,
          [
            this.chunkEntry(0, plan, c),
            selWin(1, 2 * p.model),
            selWin(2, bottomSlot),
            countWin(3, 2 * p.model),
            countWin(4, bottomSlot),
            sourceWindow(5, base, chunk),
            sourceWindow(6, x, chunk),
            maskWin,
          ],
          Math.ceil(chunk.count / BLOCK_ELEMENTS),
        );
      }
    }
    pass.end();
  }

  // ---- shared plumbing ----

  /** K sums over the tensor of expressions of x0..x(m−1) (bound at 2..), added in float64 on the host. */
  private async sums(n: number, xs: readonly DeviceTensor[], prelude: string, terms: readonly string[]): Promise<number[]> {
    const decls = xs.map((x, m) => sourceBinding(2 + m, `x${m}`, x.format)).join('\n');
    const code = reduceShader({ decls, prelude, terms });
    const enc = this.gpu.device.createCommandEncoder();
    return this.sumsWith(enc, n, code, terms.length, xs.map((x, m) => (chunk: Chunk) => sourceWindow(2 + m, x, chunk)));
  }

  private async sumsWith(
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

  private dispatch(pass: GPUComputePassEncoder, pipeline: GPUComputePipeline, entries: GPUBindGroupEntry[], groups: number): void {
    const group = this.gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    pass.setBindGroup(0, group);
    const [x, y] = dispatchGrid(groups, this.gpu.limits.maxComputeWorkgroupsPerDimension);
    if (x > 0) pass.dispatchWorkgroups(x, y);
  }

  /** The job's final readback, or (mergeTensorOnDevice) a submit and a wait for the device to finish. */
  private async readOutput(enc: GPUCommandEncoder, out: GPUBuffer, n: number): Promise<Float32Array> {
    if (!this.keepOutputOnDevice) return this.readFloats(enc, out, n);
    this.gpu.device.queue.submit([enc.finish()]);
    await this.gpu.device.queue.onSubmittedWorkDone();
    return new Float32Array(0);
  }

  private async readFloats(enc: GPUCommandEncoder, source: GPUBuffer, count: number): Promise<Float32Array> {
    const bytes = count * 4;
    const staging = this.scratch('readback', bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const data = await this.gpu.readBack(enc, [{ source, sourceOffset: 0, targetOffset: 0, sizeBytes: bytes }], bytes, staging);
    return new Float32Array(data);
  }

  private plan(n: number): ChunkPlan {
    let plan = this.plans.get(n);
    if (plan === undefined) {
      const chunks: Chunk[] = [];
      for (let offset = 0; offset < n; offset += this.chunkElements) chunks.push({ offset, count: Math.min(this.chunkElements, n - offset) });
      const data = new Uint32Array((chunks.length * CHUNK_UNIFORM_STRIDE) / 4);
      chunks.forEach((c, i) => {
        data[(i * CHUNK_UNIFORM_STRIDE) / 4] = c.count;
        data[(i * CHUNK_UNIFORM_STRIDE) / 4 + 1] = c.offset;
      });
      const uniform = this.gpu.createBuffer(data.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, `chunks of ${n}`);
      this.gpu.write(uniform, 0, data);
      plan = { chunks, uniform };
      this.plans.set(n, plan);
    }
    return plan;
  }

  private chunkEntry(binding: number, plan: ChunkPlan, index: number): GPUBindGroupEntry {
    return { binding, resource: { buffer: plan.uniform, offset: index * CHUNK_UNIFORM_STRIDE, size: 16 } };
  }

  /** A device buffer reused across jobs (jobs run one at a time), grown when too small. */
  private scratch(name: string, bytes: number, usage: GPUBufferUsageFlags): GPUBuffer {
    let b = this.scratchBuffers.get(name);
    if (b === undefined || b.size < bytes) {
      b?.destroy();
      b = this.gpu.createBuffer(bytes, usage, name);
      this.scratchBuffers.set(name, b);
    }
    return b;
  }

  /** A uniform buffer holding `data` (written before the next submit). */
  private uniformData(name: string, data: ArrayBufferView): GPUBuffer {
    const b = this.scratch(name, data.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.gpu.write(b, 0, data);
    return b;
  }

  /** Refuses jobs that need more storage bindings than the device allows in one shader. */
  private checkBindings(job: TensorJob, storageBindings: number): void {
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

/** A chunk's window of a source tensor in its storage format (offsets are multiples of BLOCK_ELEMENTS elements). */
function sourceWindow(binding: number, t: Pick<DeviceTensor, 'buffer' | 'format'>, chunk: Chunk): GPUBindGroupEntry {
  return { binding, resource: { buffer: t.buffer, offset: offsetBytes(t.format, chunk.offset), size: windowBytes(t.format, chunk.count) } };
}

/** A chunk's window of a whole-tensor float32 buffer (offsets are multiples of BLOCK_ELEMENTS·4 bytes). */
function window(binding: number, buffer: GPUBuffer, chunk: Chunk): GPUBindGroupEntry {
  return { binding, resource: { buffer, offset: chunk.offset * 4, size: chunk.count * 4 } };
}

/** Which selections a model needs (k values as in mergekit sparsify.py); undefined when τ is not trimmed. */
function maskPlanFor(s: MergeOpSparsification, input: TaskVectorInput, model: number, n: number): MaskPlan | undefined {
  if (input.density >= 1) return undefined;
  if (s === 'magnitude') {
    // k = int(density · numel): the k largest |τ| are kept (k = 0 is refused by the caller, as mergekit).
    const k = Math.min(n, Math.trunc(input.density * n));
    return { model, rule: { kind: 'top', tieFirst: true }, top: Math.max(0, k), bottom: 0, dropAll: false };
  }
  // magnitude_outliers: drop the n_top largest and the n_bot smallest.
  const target = Math.trunc(input.density * n);
  let nTop = Math.trunc(input.gamma * n);
  let nBot = n - target - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  // kept = first (n − n_bot) of the order minus its first n_top. With n_top == 0 mergekit's
  // `indices[n_bot:-n_top]` is empty and the whole task vector is dropped (quirk kept, as CpuKernel).
  return {
    model,
    rule: { kind: 'middle', tieFirst: true },
    top: nTop,
    bottom: n - nBot,
    dropAll: nTop === 0 || n - nBot <= nTop,
  };
}

/** How many source tensors a job reads. */
function sourceCount(op: MergeOp): number {
  if (op.kind === 'slerp') return 2;
  if (op.kind === 'weighted_sum') return op.inputs.length;
  return op.inputs.length + 1;
}

/** Σ fround(wᵢ) accumulated in float32, in order (torch's sum of the float32 weights). */
function float32Sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s = Math.fround(s + Math.fround(v));
  return s;
}

type MergeOpSparsification = Extract<MergeOp, { kind: 'task_arithmetic' }>['sparsification'];
