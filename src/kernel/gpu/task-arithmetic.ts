// The task-arithmetic family on the WebGPU kernel (mergekit generalized_task_arithmetic.py: task_arithmetic,
// ties, dare_*, breadcrumbs*, della*): keep masks from radix selections, DELLA's rank-and-draw pass, the L1
// rescale reduction, then one combine pass.

import { EvomergeError } from '../../errors.ts';
import type { MergeOp, SourceRef, TaskVectorInput, TensorJob } from '../kernel.ts';
import { keepThreshold } from '../rng.ts';
import { linearCombination } from './linear.ts';
import { float32Sum, sourceWindow, window, type Chunk, type ChunkPlan, type GpuPasses } from './passes.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { BLOCK_ELEMENTS, TILE_ELEMENTS } from './wgsl/chunk.ts';
import { dellaShader } from './wgsl/della.ts';
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

export async function taskArithmetic(
  kernel: GpuPasses,
  job: TensorJob,
  op: Extract<MergeOp, { kind: 'task_arithmetic' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const base = await get(op.base);
  const xs: DeviceTensor[] = [];
  for (const input of op.inputs) xs.push(await get(input.ref));
  const count = xs.length;
  if (count === 0) return linearCombination(kernel, n, [base], [1], { divisor: 1 });
  kernel.checkBindings(job, count + 3);
  const shape: TaskArithmeticShape = {
    models: count,
    sparsification: op.sparsification,
    consensus: op.consensus === 'sum',
    normalize: op.normalize,
    baseFormat: base.format,
    // DELLA's combine reads the float32 trim(τ) values its pass wrote, not the sources.
    formats: xs.map((x) => (op.sparsification === 'della_magprune' ? 'f32' : x.format)),
  };
  const plan = kernel.plan(n);
  const maskWords = Math.ceil(Math.ceil(n / 32) / 64) * 64;
  const masked = usesMaskBuffer(op.sparsification);
  const maskPlans = masked ? op.inputs.map((input, m) => maskPlanFor(op.sparsification, input, m, n)) : [];
  maskPlans.forEach((p, m) => {
    if (p?.top === 0 && p.rule.kind === 'top') {
      const d = op.inputs[m].density;
      throw new EvomergeError(
        'merge.density_zero',
        `density ${d} keeps int(${d}·${n}) = 0 elements of model ${op.inputs[m].ref.model}; mergekit refuses this ` +
          `(assert k > 0): raise density for this tensor`,
        { field: `tensor "${job.name}"` },
      );
    }
  });
  const masks = masked
    ? kernel.scratch('ta.masks', count * maskWords * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST)
    : undefined;
  if (masks !== undefined && count * maskWords > kernel.gpu.maxBindingElements) {
    throw new EvomergeError('gpu.unsupported', `keep masks of ${count} models exceed one storage binding`, {
      field: `tensor "${job.name}"`,
    });
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

  let enc = kernel.gpu.device.createCommandEncoder();
  if (masked && masks !== undefined) {
    encodeMasks(kernel, enc, plan, n, base, xs, maskPlans, masks, maskWords);
  }
  // DELLA: trim(τ) of every model is computed by its own pass; the combine reads those values.
  let sources: Pick<DeviceTensor, 'buffer' | 'format'>[] = xs;
  let sourceOffset = (_m: number) => 0;
  if (op.sparsification === 'della_magprune') {
    const trimmed = await della(kernel, job, op, n, base, xs, sparsified);
    sources = xs.map(() => ({ buffer: trimmed.vals, format: 'f32' }));
    sourceOffset = (m) => m * trimmed.stride;
    op.inputs.forEach((_, m) => {
      if (trimmed.scales[m] !== 1) f32[(TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4 + 1] = trimmed.scales[m];
    });
  }

  const needL1 = op.rescale === 'l1' && sparsified.some((s) => s) && op.sparsification !== 'della_magprune';
  if (needL1) {
    const paramBuf = kernel.uniformData('ta.params', new Uint8Array(params));
    const parts = l1NormReduceParts(shape);
    const extra: ((chunk: Chunk) => GPUBindGroupEntry)[] = [
      () => ({ binding: 2, resource: { buffer: paramBuf } }),
      ...(masks !== undefined
        ? [() => ({ binding: 3, resource: { buffer: masks, size: count * maskWords * 4 } })]
        : []),
      (chunk) => sourceWindow(4, base, chunk),
      ...xs.map((x, m) => (chunk: Chunk) => sourceWindow(5 + m, x, chunk)),
    ];
    const sums = await kernel.sumsWith(enc, n, reduceShader(parts), parts.terms.length, extra);
    enc = kernel.gpu.device.createCommandEncoder();
    op.inputs.forEach((_, m) => {
      if (!sparsified[m]) return;
      // rescaled_masked_tensor: masked · (‖τ‖₁ / ‖masked‖₁), skipped if either norm is below 1e-7.
      const before = Math.fround(sums[2 * m]);
      const after = Math.fround(sums[2 * m + 1]);
      if (!(before < 1e-7 || after < 1e-7))
        f32[(TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4 + 1] = Math.fround(before / after);
    });
  } else if (op.rescale === 'density' && op.sparsification !== 'della_magprune') {
    // The DARE paper's rule: kept entries divided by the keep probability.
    op.inputs.forEach((input, m) => {
      if (sparsified[m]) f32[(TA_HEADER_BYTES + TA_MODEL_BYTES * m) / 4 + 6] = input.density;
    });
  }

  const paramBuf = kernel.uniformData('ta.params2', new Uint8Array(params));
  const out = kernel.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const pipeline = kernel.gpu.pipeline(taskArithmeticShader(shape));
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (const [c, chunk] of plan.chunks.entries()) {
    const entries: GPUBindGroupEntry[] = [
      kernel.chunkEntry(0, plan, c),
      { binding: 1, resource: { buffer: paramBuf } },
      sourceWindow(3, base, chunk),
      ...sources.map((t, m) => sourceWindow(4 + m, t, { offset: sourceOffset(m) + chunk.offset, count: chunk.count })),
      window(4 + count, out, chunk),
    ];
    if (masks !== undefined) entries.push({ binding: 2, resource: { buffer: masks, size: count * maskWords * 4 } });
    kernel.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / 256));
  }
  pass.end();
  return kernel.readOutput(enc, out, n);
}

/**
 * DELLA (CpuKernel della-magprune.ts): validates like the CPU, then per model a rank/draw pass that writes
 * trim(τ) into `vals` (model m at element m·stride) and the L1 partials; returns the L1 factors.
 */
export async function della(
  kernel: GpuPasses,
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
  if (n > kernel.gpu.maxBindingElements) {
    throw new EvomergeError(
      'gpu.unsupported',
      `della_magprune ranks whole rows; a tensor of ${n} elements exceeds one storage binding`,
      {
        field: `tensor "${job.name}"`,
      },
    );
  }
  const count = xs.length;
  const stride = Math.ceil(n / 64) * 64;
  const rowPad = Math.ceil(d1 / 64) * 64;
  const perElement = op.rescale === 'density';
  const rows = d0 * inner;
  const tilesPerRow = Math.ceil(d1 / 256);
  const groups = rows * tilesPerRow;
  const vals = kernel.scratch('trimmed.vals', count * stride * 4, GPUBufferUsage.STORAGE);
  const thresholds = new Uint32Array(count * rowPad);
  const probs = new Float32Array(count * rowPad);
  const f = Math.fround;
  op.inputs.forEach((input, m) => {
    const { density, epsilon } = input;
    if (density >= 1)
      thresholds.fill(1 << 24, m * rowPad, (m + 1) * rowPad); // τ unchanged
    else if (!(density > 0))
      return; // τ dropped: thresholds stay 0
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
  const thrBuf = kernel.scratch(
    'della.thresholds',
    thresholds.byteLength,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  );
  kernel.gpu.write(thrBuf, 0, thresholds);
  const probBuf = kernel.scratch('della.probs', probs.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  kernel.gpu.write(probBuf, 0, probs);
  const params = new Uint32Array((count * 256) / 4);
  op.inputs.forEach((input, m) => {
    params.set(
      [
        rows,
        d1,
        inner,
        tilesPerRow,
        (op.rng.seedLo ^ op.rng.tensorHash) >>> 0,
        op.rng.seedHi >>> 0,
        input.modelIndex >>> 0,
        0,
      ],
      (m * 256) / 4,
    );
  });
  const paramBuf = kernel.uniformData('della.params', params);
  const groupsPad = Math.ceil(groups / 32) * 32; // 256-byte aligned windows of (Σ|τ|, Σ|kept τ|) pairs
  const partials = kernel.scratch(
    'della.partials',
    count * groupsPad * 2 * 4,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  );
  const enc = kernel.gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  op.inputs.forEach((_, m) => {
    const pipeline = kernel.gpu.pipeline(dellaShader(perElement, base.format, xs[m].format));
    pass.setPipeline(pipeline);
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: paramBuf, offset: m * 256, size: 32 } },
      { binding: 1, resource: { buffer: thrBuf, offset: m * rowPad * 4, size: rowPad * 4 } },
      sourceWindow(3, base, { offset: 0, count: n }),
      sourceWindow(4, xs[m], { offset: 0, count: n }),
      { binding: 5, resource: { buffer: vals, offset: m * stride * 4, size: n * 4 } },
      { binding: 6, resource: { buffer: partials, offset: m * groupsPad * 2 * 4, size: groups * 2 * 4 } },
    ];
    if (perElement)
      entries.push({ binding: 2, resource: { buffer: probBuf, offset: m * rowPad * 4, size: rowPad * 4 } });
    kernel.dispatch(pass, pipeline, entries, groups);
  });
  pass.end();
  const scales = op.inputs.map(() => 1);
  if (op.rescale === 'l1' && sparsified.some((s) => s)) {
    const values = await kernel.readFloats(enc, partials, count * groupsPad * 2);
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
    kernel.gpu.device.queue.submit([enc.finish()]);
  }
  return { vals, stride, scales };
}

/** Radix selections, tie ranks and bit masks for every model that is trimmed by magnitude. */
export function encodeMasks(
  kernel: GpuPasses,
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
  const sel = kernel.scratch('sel.state', slots * SELECTION_STRIDE, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  const hist = kernel.scratch('sel.hist', slots * RADIX_BINS * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  const counts = kernel.scratch('sel.counts', slots * blocksPad * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  const scanParams = kernel.uniformData('sel.scan', new Uint32Array([blocks, 0, 0, 0]));
  const init = new Uint32Array((slots * SELECTION_STRIDE) / 4);
  for (const p of maskPlans) {
    if (p === undefined) continue;
    init[(2 * p.model * SELECTION_STRIDE) / 4 + 2] = p.top;
    init[((2 * p.model + 1) * SELECTION_STRIDE) / 4 + 2] = p.bottom;
  }
  kernel.gpu.write(sel, 0, init);
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
    const selections: [number, boolean][] =
      p.rule.kind === 'top'
        ? [[2 * p.model, true]]
        : [
            [2 * p.model, true],
            [2 * p.model + 1, true],
          ];
    for (const [slot, descending] of selections) {
      for (let k = 0; k < RADIX_PASSES.length; k++) {
        const hp = kernel.gpu.pipeline(histogramShader(k, formats));
        pass.setPipeline(hp);
        for (const [c, chunk] of plan.chunks.entries()) {
          kernel.dispatch(
            pass,
            hp,
            [
              kernel.chunkEntry(0, plan, c),
              selWin(1, slot),
              histWin(2, slot),
              sourceWindow(3, base, chunk),
              sourceWindow(4, x, chunk),
            ],
            Math.ceil(chunk.count / TILE_ELEMENTS),
          );
        }
        const sp = kernel.gpu.pipeline(selectDigitShader(k, descending));
        pass.setPipeline(sp);
        kernel.dispatch(pass, sp, [selWin(0, slot), histWin(1, slot)], 1);
      }
      const tc = kernel.gpu.pipeline(tieCountShader(formats));
      pass.setPipeline(tc);
      for (const [c, chunk] of plan.chunks.entries()) {
        kernel.dispatch(
          pass,
          tc,
          [
            kernel.chunkEntry(0, plan, c),
            selWin(1, slot),
            countWin(2, slot),
            sourceWindow(3, base, chunk),
            sourceWindow(4, x, chunk),
          ],
          Math.ceil(chunk.count / BLOCK_ELEMENTS),
        );
      }
      const ts = kernel.gpu.pipeline(tieScanShader());
      pass.setPipeline(ts);
      kernel.dispatch(
        pass,
        ts,
        [{ binding: 0, resource: { buffer: scanParams } }, selWin(1, slot), countWin(2, slot)],
        1,
      );
    }
    const mp = kernel.gpu.pipeline(maskShader(p.rule, formats));
    pass.setPipeline(mp);
    const bottomSlot = p.rule.kind === 'top' ? 2 * p.model : 2 * p.model + 1;
    for (const [c, chunk] of plan.chunks.entries()) {
      kernel.dispatch(
        pass,
        mp,
        [
          kernel.chunkEntry(0, plan, c),
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

type MergeOpSparsification = Extract<MergeOp, { kind: 'task_arithmetic' }>['sparsification'];
