// The CPU merge backend: executes a TensorJob (kernel.ts) reproducing mergekit's float32 arithmetic, with the
// task-arithmetic hot loops in WebAssembly SIMD (simd-runtime.ts, wasm-*.ts) and plain typed-array loops as reference.

import { EvomergeError, invariant } from '../../errors.ts';
import type { MergeKernel, SourceRef, StoredReader, TensorJob, TensorReader } from '../kernel.ts';
import { modelStock } from './model-stock.ts';
import { SimdRuntime } from './simd/simd-runtime.ts';
import { combineTaskVectorsSimd } from './simd/simd-task-arithmetic.ts';
import { denseFromStored, isDenseTaskArithmetic, weightedSumFromStored } from './simd/simd-stored.ts';
import { slerp } from './slerp.ts';
import { selectCutsSimd } from './simd/simd-select-kth.ts';
import { bernoulliMaskSimd, maskedL1ManySimd } from './simd/simd-dare.ts';
import { plainPasses, sparsifyAll, type SparsifyPasses } from './sparsify.ts';
import { combineTaskVectors } from './task-arithmetic.ts';
import { weightedSum } from './weighted-sum.ts';
import { runNewerOp, type NewerOp } from './newer-methods.ts';

export interface CpuKernelOptions {
  /** Use the WebAssembly SIMD loops where the runtime supports them (default true); false forces the plain loops. */
  readonly simd?: boolean;
}

/** Deterministic CPU kernel: same job → same bits, with or without SIMD. */
export class CpuKernel implements MergeKernel {
  readonly device: string;
  private readonly simd: SimdRuntime | null;
  private readonly passes: SparsifyPasses;

  constructor(options: CpuKernelOptions = {}) {
    const rt = options.simd === false ? null : SimdRuntime.create();
    this.simd = rt;
    this.device = rt === null ? 'cpu' : 'cpu (wasm simd)';
    this.passes =
      rt === null
        ? plainPasses
        : {
            selectCuts: (base, requests) => selectCutsSimd(rt, base, requests),
            bernoulliMask: (key, model, n, density) => bernoulliMaskSimd(rt, key, model, n, density),
            maskedL1Many: (base, items) => maskedL1ManySimd(rt, base, items),
          };
  }

  async mergeTensor(job: TensorJob, read: TensorReader): Promise<Float32Array> {
    return this.mergeTensorInto(job, read, new Float32Array(numelOf(job.shape)));
  }

  /** Computes the job into `out` (length numel(shape)), e.g. a buffer reused across tensors; returns out. */
  mergeTensorInto(job: TensorJob, read: TensorReader, out: Float32Array): Float32Array {
    const n = numelOf(job.shape);
    invariant(out.length === n, `output buffer of ${out.length} elements for job "${job.name}" of ${n}`);
    const load = (ref: SourceRef): Float32Array => {
      const data = read(ref);
      invariant(
        data.length === n,
        `tensor "${ref.tensor}" of ${ref.model} has ${data.length} elements, job "${job.name}" expects ${n}`,
      );
      return data;
    };
    const op = job.op;
    switch (op.kind) {
      case 'weighted_sum':
        return weightedSum(
          op.inputs.map((i) => load(i.ref)),
          op.inputs.map((i) => i.weight),
          op.normalize,
          out,
        );
      case 'task_arithmetic': {
        const base = load(op.base);
        const xs = op.inputs.map((i) => load(i.ref));
        const trims = sparsifyAll(
          op.inputs.map((input, m) => ({
            x: xs[m],
            base,
            shape: job.shape,
            method: op.sparsification,
            density: input.density,
            gamma: input.gamma,
            epsilon: input.epsilon,
            rescale: op.rescale,
            rng: op.rng,
            modelIndex: input.modelIndex,
            tensorName: job.name,
            modelName: input.ref.model,
          })),
          this.passes,
        );
        const combine = {
          base,
          xs,
          weights: op.inputs.map((i) => i.weight),
          trims,
          consensus: op.consensus,
          normalize: op.normalize,
          lambda: op.lambda,
        };
        return this.simd === null ? combineTaskVectors(combine, out) : combineTaskVectorsSimd(this.simd, combine, out);
      }
      case 'slerp':
        return slerp(op.t, load(op.a), load(op.b), out);
      case 'model_stock': {
        if (op.inputs.length < 2) {
          throw new EvomergeError(
            'merge.model_stock_models',
            `model_stock needs the base plus at least 2 models, got ${op.inputs.length}`,
            { field: `tensor "${job.name}"` },
          );
        }
        return modelStock(
          load(op.base),
          op.inputs.map((r) => load(r)),
          out,
        );
      }
      default:
        return runNewerOp(op satisfies NewerOp, job.shape, load, out, job.name);
    }
  }

  /**
   * Dense task arithmetic (task_arithmetic, or any density-1 member of its family without consensus) and linear
   * (weighted_sum: linear, passthrough) from the inputs as stored, with SIMD: decoded chunk by chunk into the
   * runtime's memory, guarded there (simd-stored.ts). Null for every other job, without SIMD, and where a NaN or
   * ±Inf is met.
   */
  mergeStoredInto(job: TensorJob, stored: StoredReader, out: Float32Array): Float32Array | null {
    const n = numelOf(job.shape);
    invariant(out.length === n, `output buffer of ${out.length} elements for job "${job.name}" of ${n}`);
    const op = job.op;
    if (this.simd === null) return null;
    if (op.kind === 'weighted_sum') return weightedSumFromStored(this.simd, op.inputs, op.normalize, stored, out);
    if (op.kind !== 'task_arithmetic' || !isDenseTaskArithmetic(op)) return null;
    return denseFromStored(this.simd, op, stored, out);
  }

  async close(): Promise<void> {}
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
