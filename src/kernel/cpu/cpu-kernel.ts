// The CPU merge backend: executes a TensorJob (kernel.ts) with typed-array loops that reproduce mergekit's
// float32 arithmetic. Dispatches per op kind; each method's arithmetic lives in its own module beside this one.

import { EvomergeError, invariant } from '../../errors.ts';
import type { MergeKernel, SourceRef, TensorJob, TensorReader } from '../kernel.ts';
import { modelStock } from './model-stock.ts';
import { slerp } from './slerp.ts';
import { sparsify, type Trim } from './sparsify.ts';
import { combineTaskVectors } from './task-arithmetic.ts';
import { weightedSum } from './weighted-sum.ts';

/** Deterministic CPU kernel: same job → same bits. */
export class CpuKernel implements MergeKernel {
  readonly device = 'cpu';

  async mergeTensor(job: TensorJob, read: TensorReader): Promise<Float32Array> {
    return mergeTensorSync(job, read);
  }

  async close(): Promise<void> {}
}

/** The synchronous body of CpuKernel.mergeTensor (for callers that are not async). */
export function mergeTensorSync(job: TensorJob, read: TensorReader): Float32Array {
  const n = numelOf(job.shape);
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
        n,
      );
    case 'task_arithmetic': {
      const base = load(op.base);
      const xs = op.inputs.map((i) => load(i.ref));
      const trims: Trim[] = op.inputs.map((input, m) =>
        sparsify({
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
        }),
      );
      return combineTaskVectors({
        base,
        xs,
        weights: op.inputs.map((i) => i.weight),
        trims,
        consensus: op.consensus,
        normalize: op.normalize,
        lambda: op.lambda,
      });
    }
    case 'slerp':
      return slerp(op.t, load(op.a), load(op.b));
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
      );
    }
  }
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
